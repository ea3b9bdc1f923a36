//! The permissions of deploy/ on the real control plane: the operator binary, signed in
//! with a token of deploy/'s ServiceAccount (TokenRequest, as a Pod would get), takes one
//! rollout of each kind to Ready with the keys of a real Secret, writing native Events and
//! holding the native Lease; and the ServiceAccount may do nothing else.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::e2e::{Env, Kubectl, Operator, Sim, cluster, condition, namespace, repo_root};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_of_deploy_is_enough_to_roll_out_every_kind() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = install_and_sign_in(&api, dir.path());
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
            "--instance",
            &instance,
        ],
    );
    let env = Env {
        api,
        sim,
        operator,
        kubectl,
        namespace: ns.clone(),
    };

    let creds = json!({"name": "tenant"});
    for manifest in [
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "eas"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "bert_embeddings",
                "strategy": {"batch": {"size": "100%"}},
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
    ] {
        env.kubectl.apply(&manifest.to_string());
    }
    for resource in [
        "easservicerollout/eas",
        "esaroutinerollout/routine",
        "esacontainerapprollout/app",
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
        .filter(|e| e["reportingController"] == "alicloud-rollouts")
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
    // Nothing it tried was refused.
    let log = std::fs::read_to_string(&env.operator.log).expect("operator log readable");
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "a request was refused:\n{}",
        env.operator.log_tail()
    );
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
        assert!(
            rule["resourceNames"]
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

#[test]
fn the_service_account_of_deploy_may_do_nothing_else() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = install_and_sign_in(&api, dir.path());
    let ns = namespace("rbac-list");

    let mut expected = BTreeSet::new();
    let grant = |set: &mut BTreeSet<_>, group: &str, resources: &[String], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                set.insert((group.to_string(), r.clone(), v.to_string()));
            }
        }
    };
    let plurals: Vec<String> = alicloud_rollouts::crd::all()
        .into_iter()
        .map(|c| c.spec.names.plural)
        .collect();
    let sub = |s: &str| -> Vec<String> { plurals.iter().map(|p| format!("{p}/{s}")).collect() };
    let group = "rollouts.alicloud.dev";
    grant(
        &mut expected,
        group,
        &plurals,
        &["get", "list", "watch", "patch", "update"],
    );
    grant(
        &mut expected,
        group,
        &sub("status"),
        &["get", "patch", "update"],
    );
    grant(&mut expected, group, &sub("finalizers"), &["update"]);
    grant(&mut expected, "", &["secrets".to_string()], &["get"]);
    grant(
        &mut expected,
        "events.k8s.io",
        &["events".to_string()],
        &["create", "patch"],
    );
    let in_any_namespace = expected.clone();
    grant(
        &mut expected,
        "coordination.k8s.io",
        &["leases".to_string()],
        &["get", "create", "update", "patch"],
    );
    let in_own_namespace = expected;

    for (namespace, want) in [
        (ns.as_str(), &in_any_namespace),
        (OPERATOR_NS, &in_own_namespace),
    ] {
        let got = granted(&api, &kubeconfig, namespace);
        for (g, r, v) in &got {
            assert!(
                g != "*" && r != "*" && v != "*",
                "a wildcard is granted in {namespace}: {g}/{r} {v}"
            );
        }
        let extra: Vec<_> = got.difference(want).collect();
        let missing: Vec<_> = want.difference(&got).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "in namespace {namespace}: granted beyond what the operator uses: {extra:?}; \
             missing: {missing:?}"
        );
    }
}
