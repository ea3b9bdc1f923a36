//! The permissions of deploy/ on the real control plane. The operator binary, signed in
//! with a token of deploy/'s ServiceAccount (TokenRequest, as a Pod would get), takes one
//! rollout of each kind to Ready with the keys of a real Secret, writing native Events and
//! holding the native Lease, and cleans up when the whole namespace is deleted: the RBAC
//! grants enough. The API server's audit log (scripts/local-apiserver.sh records every
//! request of a ServiceAccount) then shows which (group, resource, verb) the operator
//! used, and everything the ServiceAccount is granted (`kubectl auth can-i --list`, i.e. a
//! SelfSubjectRulesReview) must be among them: the RBAC grants no more than is used.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::e2e::{
    Env, Kubectl, Operator, Sim, cluster, condition, namespace, repo_root, wait_for,
};

const OPERATOR_NS: &str = "alicloud-rollouts";
const SERVICE_ACCOUNT: &str = "alicloud-rollouts";

const SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 2
    config: {containers: [{image: "bert:v1"}]}
routines:
  - name: image-resizer
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048]
    deployed: ver-879626371616514000
"#;

fn kubectl_ok(api: &ApiServer, args: &[&str]) -> String {
    let out = api.kubectl().args(args).output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// deploy/ installed, and a kubeconfig that signs in as its ServiceAccount with a fresh
/// token from the TokenRequest API (no client certificate).
fn install_and_sign_in(api: &ApiServer, dir: &Path) -> PathBuf {
    let deploy = repo_root().join("deploy");
    kubectl_ok(api, &["apply", "-k", &deploy.to_string_lossy()]);
    let token = kubectl_ok(
        api,
        &[
            "create",
            "token",
            SERVICE_ACCOUNT,
            "-n",
            OPERATOR_NS,
            "--duration=1h",
        ],
    );
    let server = kubectl_ok(
        api,
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    let ca = kubectl_ok(
        api,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
    );
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "operator", "user": {"token": token.trim()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    });
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).expect("kubeconfig written");
    path
}

fn ready(obj: &Value) -> Result<(), String> {
    match condition(obj, "Ready") {
        Some((status, _)) if status == "True" => Ok(()),
        other => Err(format!("Ready is {other:?}")),
    }
}

type Grant = (String, String, String);

/// Grants that the test run cannot exercise, each with the reason. Anything else granted
/// and not used in the run fails the test: drop it from the RBAC, or exercise it here.
const CANNOT_BE_EXERCISED: &[(&str, &str, &str, &str)] = &[];

/// The credential id the API server records for `kubeconfig`'s token (`JTI=...` of a
/// ServiceAccount token), from a SelfSubjectReview (`kubectl auth whoami`).
fn credential_id(api: &ApiServer, kubeconfig: &Path) -> String {
    let out = api
        .kubectl()
        .env("KUBECONFIG", kubeconfig)
        .args(["auth", "whoami", "-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "whoami: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: Value = serde_json::from_slice(&out.stdout).expect("review JSON");
    let user = &review["status"]["userInfo"];
    assert_eq!(
        user["username"],
        format!("system:serviceaccount:{OPERATOR_NS}:{SERVICE_ACCOUNT}"),
        "{review}"
    );
    user["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .filter(|id| id.starts_with("JTI="))
        .unwrap_or_else(|| panic!("the token has a credential id: {review}"))
        .to_string()
}

/// The requests made with the token whose credential id is `id`, from the audit log:
/// (group, resource[/subresource], verb) with the namespaces seen, and the requests RBAC
/// refused.
fn used(api: &ApiServer, id: &str) -> (BTreeMap<Grant, BTreeSet<String>>, Vec<Value>) {
    let state = api
        .kubeconfig
        .parent()
        .expect("the kubeconfig is in the state dir");
    let log = state.join("logs/audit.log");
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The control plane was started without an audit log: \
             `scripts/local-apiserver.sh down` and run again",
            log.display()
        )
    });
    let mut seen: BTreeMap<Grant, BTreeSet<String>> = BTreeMap::new();
    let mut refused = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let ids = &event["user"]["extra"]["authentication.kubernetes.io/credential-id"];
        if !ids
            .as_array()
            .is_some_and(|ids| ids.iter().any(|i| i == id))
        {
            continue;
        }
        if event["annotations"]["authorization.k8s.io/decision"] == "forbid" {
            refused.push(event.clone());
        }
        let object = &event["objectRef"];
        let Some(resource) = object["resource"].as_str() else {
            continue; // a non-resource URL (discovery)
        };
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let group = object["apiGroup"].as_str().unwrap_or_default().to_string();
        let verb = event["verb"].as_str().unwrap_or_default().to_string();
        let namespace = object["namespace"]
            .as_str()
            .unwrap_or("<cluster>")
            .to_string();
        seen.entry((group, resource, verb))
            .or_default()
            .insert(namespace);
    }
    (seen, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_of_deploy_may_do_what_the_operator_does_and_nothing_more() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = install_and_sign_in(&api, dir.path());
    let token_id = credential_id(&api, &kubeconfig);
    // A Lease left by an earlier run would hold this one off until it expires.
    kubectl_ok(
        &api,
        &[
            "delete",
            "lease",
            "-n",
            OPERATOR_NS,
            "alicloud-rollouts",
            "--ignore-not-found",
        ],
    );

    let ns = namespace("rbac");
    let kubectl = Kubectl::new(&api, &ns);
    let sim = Sim::start_with_keys(
        SEED,
        100.0,
        vec![("tenant-id".into(), "tenant-secret".into())],
    )
    .await;
    kubectl.must(&[
        "create",
        "secret",
        "generic",
        "tenant",
        "--from-literal=accessKeyId=tenant-id",
        "--from-literal=accessKeySecret=tenant-secret",
    ]);
    let instance = format!("rbac-test-{}", std::process::id());
    let operator = Operator::start_as(
        &api,
        &sim,
        &ns,
        "eas,routine,containerapp",
        &kubeconfig,
        &[
            "--leader-elect",
            "--leader-election-namespace",
            OPERATOR_NS,
            "--operator-namespace",
            OPERATOR_NS,
            "--instance",
            &instance,
        ],
    );
    let mut env = Env {
        api,
        sim,
        operator,
        kubectl,
        namespace: ns.clone(),
    };

    let creds = json!({"name": "tenant"});
    let web_url = format!("{}/metrics", env.sim.url());
    let cluster_template = format!("rbac-smoke-{}", std::process::id());
    for manifest in [
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "eas"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "bert_embeddings",
                "strategy": {"batch": {"size": "100%"}},
                "deletionPolicy": "Delete",
                "credentialsSecretRef": creds,
                "serviceConfig": {"containers": [{"image": "bert:v2"}]}
            }
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "routine"},
            "spec": {
                "routine": "image-resizer",
                "env": "production",
                "codeVersions": [
                    {"codeVersion": "1723688023417750321", "percentage": 10},
                    {"codeVersion": "1723599747213377175", "percentage": 90}
                ],
                "credentialsSecretRef": creds
            }
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaContainerAppRollout",
            "metadata": {"name": "app"},
            "spec": {
                "appId": "app-880688675783794688",
                "versionId": "ver-879626371616514048",
                "env": "production",
                "percentage": 50,
                "credentialsSecretRef": creds
            }
        }),
        // Analysed steps: the operator reads a namespaced and a cluster-wide template
        // (web metrics: a 2xx from the simulator passes).
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "smoke"},
            "spec": {"metrics": [{"name": "up", "provider": {"web": {"url": web_url}}}]}
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": cluster_template},
            "spec": {"metrics": [{"name": "up", "provider": {"web": {"url": web_url}}}]}
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "analysed"},
            "spec": {
                "routine": "image-resizer",
                "env": "staging",
                "canary": {
                    "stableVersion": "1723599747213377175",
                    "canaryVersion": "1723688023417750321",
                    "steps": [
                        {"percentage": 10, "pause": "1s",
                         "analysis": {"templateRef": {"name": "smoke"}}},
                        {"percentage": 50, "pause": "1s",
                         "analysis": {"templateRef": {"name": cluster_template, "clusterScope": true}}}
                    ]
                },
                "credentialsSecretRef": creds
            }
        }),
        // Its Secret does not exist: the same Warning again at every look, which the
        // Event recorder folds into one series (a patch of the first Event).
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "no-keys"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "other",
                "strategy": {"partition": "0"},
                "credentialsSecretRef": {"name": "missing"}
            }
        }),
    ] {
        env.kubectl.apply(&manifest.to_string());
    }
    for resource in [
        "easservicerollout/eas",
        "esaroutinerollout/routine",
        "esacontainerapprollout/app",
        "esaroutinerollout/analysed",
    ] {
        env.wait_obj("Ready", resource, Duration::from_secs(120), ready)
            .await;
    }

    // Native Events from the operator, one for each of the three cloud mutations at least.
    let events: Value =
        serde_json::from_str(
            &env.kubectl
                .must(&["get", "events.events.k8s.io", "-o", "json"]),
        )
        .expect("events JSON");
    let kinds: BTreeSet<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reportingController"] == "alicloud-rollouts" && e["type"] == "Normal")
        .filter_map(|e| e["regarding"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "EasServiceRollout",
            "EsaContainerAppRollout",
            "EsaRoutineRollout"
        ]),
        "Events: {events}"
    );
    // The repeated Warning became a series.
    wait_for(
        "the repeated CredentialsUnavailable Warning to become a series",
        Duration::from_secs(60),
        || async {
            let events: Value = serde_json::from_str(&env.kubectl.must(&[
                "get",
                "events.events.k8s.io",
                "-o",
                "json",
            ]))
            .map_err(|e| e.to_string())?;
            events["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| {
                    e["regarding"]["name"] == "no-keys"
                        && e["reason"] == "CredentialsUnavailable"
                        && e["series"]["count"].as_u64().unwrap_or(0) >= 2
                })
                .then_some(())
                .ok_or_else(|| format!("no series yet: {events}"))
        },
    )
    .await;
    // The native Lease, held by this replica.
    let holder = kubectl_ok(
        &env.api,
        &[
            "get",
            "lease",
            "-n",
            OPERATOR_NS,
            "alicloud-rollouts",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(holder, instance);

    // The whole namespace goes: the Secret and the rollouts together. The deletion
    // completes, and the EAS rollout under deletionPolicy Delete is deleted in the cloud.
    env.api.delete_namespace(&ns);
    wait_for(
        "the namespace to be gone",
        Duration::from_secs(120),
        || async {
            let out = env
                .api
                .kubectl()
                .args(["get", "namespace", &ns, "--ignore-not-found", "-o", "name"])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() && out.stdout.is_empty() {
                Ok(())
            } else {
                Err(format!("still there\n{}", env.operator.log_tail()))
            }
        },
    )
    .await;
    let state = env.sim.state().await;
    assert!(
        state["services"]["cn-hangzhou/bert_embeddings"]["rollout"].is_null(),
        "the cloud rollout was deleted: {state}"
    );

    // SIGTERM: the replica gives the Lease up (an update of it) and exits.
    env.operator.signal("TERM");
    let status = env.operator.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "exit status {status}");

    // What the operator did, as the API server recorded it; and what it may do.
    let (used, refused) = used(&env.api, &token_id);
    assert!(
        refused.is_empty(),
        "RBAC refused requests of the operator: {refused:#?}"
    );
    let review_ns = namespace("rbac-list");
    let mut granted_anywhere: BTreeSet<Grant> = BTreeSet::new();
    for namespace in [review_ns.as_str(), OPERATOR_NS] {
        let got = granted(&env.api, &kubeconfig, namespace);
        for (g, r, v) in &got {
            assert!(
                g != "*" && r != "*" && v != "*",
                "a wildcard is granted in {namespace}: {g}/{r} {v}"
            );
        }
        granted_anywhere.extend(got);
    }
    let justified: BTreeSet<Grant> = CANNOT_BE_EXERCISED
        .iter()
        .map(|(g, r, v, _why)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    let unused: Vec<&Grant> = granted_anywhere
        .iter()
        .filter(|g| !used.contains_key(*g) && !justified.contains(*g))
        .collect();
    assert!(
        unused.is_empty(),
        "granted but never used by the operator: {unused:?}\nused: {used:#?}"
    );
    // Everything it used is granted (RBAC refused nothing), and the Lease only in its own
    // namespace.
    for ((g, r, v), namespaces) in &used {
        if g == "coordination.k8s.io" {
            assert_eq!(
                namespaces,
                &BTreeSet::from([OPERATOR_NS.to_string()]),
                "{r} {v}"
            );
        }
    }
    env.api.delete_namespace(&review_ns);
}

/// (API group, resource, verb) triples the ServiceAccount may use in `namespace`, as the
/// API server computes them for `kubectl auth can-i --list` (a SelfSubjectRulesReview
/// made with the ServiceAccount's own token), less what every signed-in user may do.
fn granted(
    api: &ApiServer,
    kubeconfig: &Path,
    namespace: &str,
) -> BTreeSet<(String, String, String)> {
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace}
    });
    let mut cmd = api.kubectl();
    cmd.env("KUBECONFIG", kubeconfig)
        .args(["create", "--validate=false", "-o", "json", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        review.to_string().as_bytes(),
    )
    .expect("review written");
    let out = child.wait_with_output().expect("kubectl finishes");
    assert!(
        out.status.success(),
        "SelfSubjectRulesReview as the ServiceAccount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("review JSON");
    assert_eq!(answer["status"]["incomplete"], false, "{answer}");
    let everyone = [
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut triples = BTreeSet::new();
    for rule in answer["status"]["resourceRules"]
        .as_array()
        .into_iter()
        .flatten()
    {
        // The one per-name rule: the default cluster id of the ownership markers, the uid
        // of namespace kube-system (docs/ownership.md).
        let cluster_id = strings(&rule["resources"]) == ["namespaces"]
            && strings(&rule["resourceNames"]) == ["kube-system"];
        assert!(
            cluster_id
                || rule["resourceNames"]
                    .as_array()
                    .is_none_or(|n| n.is_empty()),
            "unexpected per-name rule {rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                if everyone.contains(&(group.as_str(), resource.as_str())) {
                    continue;
                }
                for verb in strings(&rule["verbs"]) {
                    triples.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    triples
}
