//! The Helm chart deploy/helm/alicloud-rollouts, with Helm built from its Go module
//! (scripts/helm.sh): it lints, renders the same RBAC as deploy/, refuses values it does
//! not know, ships the generated CRDs, and installs on the real control plane into a
//! namespace enforcing Pod Security "restricted".

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alicloud_rollouts::controller::RunArgs;
use clap::Parser;
use serde::Deserialize;
use serde_yaml::Value;

#[derive(Parser, Debug)]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("deploy/helm/alicloud-rollouts")
}

/// The helm binary (built and cached by `scripts/helm.sh path` on first use).
fn helm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("scripts/helm.sh"))
            .arg("path")
            .output()
            .expect("scripts/helm.sh can be run");
        assert!(
            out.status.success(),
            "scripts/helm.sh path failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// `helm` with its configuration, cache and data in a throw-away directory.
fn helm(home: &Path) -> Command {
    let mut cmd = Command::new(helm_bin());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG");
    cmd
}

fn run(mut cmd: Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the command runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn parse_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("each rendered document is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `args` (e.g. `--set`), or its error output.
fn template(args: &[&str]) -> Result<Vec<Value>, String> {
    let home = tempfile::tempdir().expect("temp dir");
    let mut cmd = helm(home.path());
    cmd.args([
        "template",
        "it",
        &chart().to_string_lossy(),
        "-n",
        "operators",
    ])
    .args(args);
    let (ok, stdout, stderr) = run(cmd);
    if ok {
        Ok(parse_docs(&stdout))
    } else {
        Err(stderr)
    }
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Every (apiGroup, resource, verb) the rules of these Roles or ClusterRoles grant.
fn grants(roles: &[&Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for role in roles {
        for rule in role["rules"].as_sequence().into_iter().flatten() {
            // A rule limited to named objects grants on those only: `resource[name]`.
            let names = strings(&rule["resourceNames"]);
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    let targets: Vec<String> = if names.is_empty() {
                        vec![r.clone()]
                    } else {
                        names.iter().map(|n| format!("{r}[{n}]")).collect()
                    };
                    for t in targets {
                        for v in strings(&rule["verbs"]) {
                            out.insert((g.clone(), t.clone(), v));
                        }
                    }
                }
            }
            assert!(
                rule["nonResourceURLs"].is_null(),
                "unexpected rule shape: {rule:?}"
            );
        }
    }
    out
}

fn kustomize_rendered() -> Vec<Value> {
    let server = support::apiserver::ensure();
    let (ok, stdout, stderr) = run({
        let mut c = server.kubectl();
        c.arg("kustomize").arg(root().join("deploy"));
        c
    });
    assert!(ok, "kubectl kustomize deploy/ failed: {stderr}");
    parse_docs(&stdout)
}

fn deployment_args(docs: &[Value]) -> Vec<String> {
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    strings(&deployments[0]["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn parse_run_args(args: &[String]) -> RunArgs {
    assert_eq!(args.first().map(String::as_str), Some("run"));
    Run::try_parse_from(args.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("the chart's args {args:?} are refused: {e}"))
        .args
}

/// The chart's crds/ are byte for byte the generated CRDs (the same files as crds/):
/// regenerate both with `cargo run -- crds --out-dir crds` and
/// `cargo run -- crds --out-dir deploy/helm/alicloud-rollouts/crds`.
#[test]
fn the_charts_crds_are_the_generated_ones() {
    let expected = alicloud_rollouts::crd::render_files().expect("CRDs render");
    let dir = chart().join("crds");
    let mut present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("the chart has crds/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for (file, body) in &expected {
        let path = dir.join(file);
        let actual = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e})", path.display()));
        assert!(
            actual == *body,
            "{} differs from the generated CRD; run `cargo run -- crds --out-dir {}`",
            path.display(),
            "deploy/helm/alicloud-rollouts/crds"
        );
        present.remove(file);
    }
    assert!(
        present.is_empty(),
        "stale files in the chart's crds/: {present:?}"
    );
}

#[test]
fn helm_lint_passes() {
    let home = tempfile::tempdir().expect("temp dir");
    let mut cmd = helm(home.path());
    cmd.args(["lint", "--strict", &chart().to_string_lossy()]);
    let (ok, stdout, stderr) = run(cmd);
    assert!(ok, "helm lint --strict failed:\n{stdout}{stderr}");
    // ...and it does look: a value of the wrong type fails it.
    let mut cmd = helm(home.path());
    cmd.args([
        "lint",
        "--strict",
        &chart().to_string_lossy(),
        "--set",
        "replicas=two",
    ]);
    let (ok, _, _) = run(cmd);
    assert!(!ok, "helm lint accepts replicas=two");
}

/// The chart grants exactly what deploy/ grants: the same (group, resource, verb) triples
/// cluster-wide and for the Lease, no wildcard.
#[test]
fn the_chart_grants_the_same_rules_as_deploy() {
    let chart = template(&[]).expect("the chart renders with its defaults");
    let kustomize = kustomize_rendered();
    let chart_cluster = grants(&of_kind(&chart, "ClusterRole"));
    let deploy_cluster = grants(&of_kind(&kustomize, "ClusterRole"));
    assert!(!deploy_cluster.is_empty());
    assert_eq!(chart_cluster, deploy_cluster, "cluster-wide rules");
    let chart_ns = grants(&of_kind(&chart, "Role"));
    let deploy_ns = grants(&of_kind(&kustomize, "Role"));
    assert!(!deploy_ns.is_empty());
    assert_eq!(chart_ns, deploy_ns, "the leader-election Role");
    for (g, r, v) in chart_cluster.iter().chain(&chart_ns) {
        assert!(g != "*" && r != "*" && v != "*", "wildcard in {g}/{r}/{v}");
    }
    // Each binding names the chart's ServiceAccount in the release namespace.
    let sa = of_kind(&chart, "ServiceAccount");
    assert_eq!(sa.len(), 1);
    let sa_name = &sa[0]["metadata"]["name"];
    for binding in of_kind(&chart, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&chart, "RoleBinding"))
    {
        assert_eq!(binding["subjects"][0]["name"], *sa_name);
        assert_eq!(binding["subjects"][0]["namespace"], "operators");
    }
}

/// With watchNamespaces the same rules are granted in those namespaces only.
#[test]
fn watched_namespaces_confine_the_rules_to_them() {
    let all = template(&[]).expect("renders");
    let cluster_wide = grants(&of_kind(&all, "ClusterRole"));
    let docs = template(&["--set", "watchNamespaces={team-a,team-b}"]).expect("renders");
    // Only the cluster-scoped reads of tenancy stay cluster-wide: the CloudAccounts and
    // the namespaces' labels.
    let tenancy = grants(&of_kind(&docs, "ClusterRole"));
    let reads: BTreeSet<(String, String, String)> = [
        ("rollouts.alicloud.dev", "cloudaccounts", "list"),
        ("rollouts.alicloud.dev", "cloudaccounts", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
    ]
    .iter()
    .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
    .collect();
    assert_eq!(tenancy, reads);
    assert_eq!(of_kind(&docs, "ClusterRoleBinding").len(), 1);
    // The default cluster id (the uid of namespace kube-system) is read through a Role in
    // kube-system.
    let cluster_id: BTreeSet<(String, String, String)> = [(
        String::new(),
        "namespaces[kube-system]".to_string(),
        "get".to_string(),
    )]
    .into();
    let in_kube_system: Vec<&Value> = of_kind(&docs, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] == "kube-system")
        .collect();
    assert_eq!(grants(&in_kube_system), cluster_id);
    let namespaced: BTreeSet<_> = cluster_wide
        .difference(&reads)
        .filter(|g| !cluster_id.contains(*g))
        .cloned()
        .collect();
    for ns in ["team-a", "team-b"] {
        let roles: Vec<&Value> = of_kind(&docs, "Role")
            .into_iter()
            .filter(|r| r["metadata"]["namespace"] == ns)
            .collect();
        assert_eq!(grants(&roles), namespaced, "the rules in {ns}");
        assert!(
            of_kind(&docs, "RoleBinding")
                .iter()
                .any(|b| b["metadata"]["namespace"] == ns)
        );
    }
    // What a cleanup leaves behind in a namespace being deleted is reported with an Event
    // in the release namespace: the operator may create Events there too.
    let own: Vec<&Value> = of_kind(&docs, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] == "operators")
        .collect();
    assert!(
        grants(&own).contains(&(
            "events.k8s.io".to_string(),
            "events".to_string(),
            "create".to_string()
        )),
        "{own:?}"
    );
    let args = parse_run_args(&deployment_args(&docs));
    assert_eq!(args.namespaces, ["team-a", "team-b"]);
}

/// The Deployment: two replicas with leader election, arguments the binary accepts,
/// secure by default, and each credentials mode as documented.
#[test]
fn the_deployment_is_secure_and_configured_by_the_values() {
    let docs = template(&[]).expect("renders");
    let deployment = of_kind(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args = parse_run_args(&deployment_args(&docs));
    assert!(args.leader_elect, "two replicas need leader election");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    // Liveness is the work loop's heartbeat; readiness waits for the caches and knows
    // followers are ready (as deploy/ does).
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        strings(&c["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    assert_eq!(c["image"], "alicloud-rollouts:0.1.0");
    // The default credentials: the optional Secret <fullname>-credentials.
    assert_eq!(
        c["envFrom"][0]["secretRef"]["name"],
        "it-alicloud-rollouts-credentials"
    );
    for kind in ["Service", "PodDisruptionBudget", "NetworkPolicy"] {
        assert_eq!(of_kind(&docs, kind).len(), 1, "{kind}");
    }
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());

    // Values reach the arguments.
    let docs = template(&[
        "--set",
        "logFormat=text,rateLimit.perSecond=7,rateLimit.burst=9,endpoints.eas=127.0.0.1:1,endpoints.esa=127.0.0.1:2,endpoints.sts=127.0.0.1:3,endpoints.vpc=true,metrics.serviceMonitor.enabled=true",
    ])
    .expect("renders");
    let args = parse_run_args(&deployment_args(&docs));
    assert_eq!(
        args.log_format,
        alicloud_rollouts::controller::LogFormat::Text
    );
    assert_eq!(args.client.rate_limit_per_api, 7);
    assert_eq!(args.client.rate_limit_burst, 9);
    assert_eq!(args.client.eas_endpoint.as_deref(), Some("127.0.0.1:1"));
    assert_eq!(args.client.esa_endpoint.as_deref(), Some("127.0.0.1:2"));
    assert_eq!(args.client.sts_endpoint.as_deref(), Some("127.0.0.1:3"));
    assert!(args.client.vpc_endpoints);
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);

    // RRSA: the ServiceAccount names the RAM role, and no Secret is read.
    let docs = template(&[
        "--set",
        "credentials.mode=rrsa,credentials.rrsa.roleName=rollouts-operator",
    ])
    .expect("renders");
    let sa = of_kind(&docs, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"],
        "rollouts-operator"
    );
    let c = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(c["envFrom"].is_null(), "RRSA reads no Secret: {c:?}");
    let err = template(&["--set", "credentials.mode=rrsa"]).expect_err("RRSA without a role");
    assert!(err.contains("credentials.rrsa.roleName"), "{err}");
    // A required, named Secret.
    let docs = template(&[
        "--set",
        "credentials.secret.name=keys,credentials.secret.optional=false",
    ])
    .expect("renders");
    let c = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "keys");
    assert_eq!(c["envFrom"][0]["secretRef"]["optional"], false);
    // None: no Secret, no annotation.
    let docs = template(&["--set", "credentials.mode=none"]).expect("renders");
    let c = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(c["envFrom"].is_null());
    // Two replicas without leader election would run two reconcilers.
    let err = template(&["--set", "leaderElection.enabled=false"]).expect_err("refused");
    assert!(err.contains("leaderElection"), "{err}");
}

/// values.schema.json refuses a key it does not know, at the top level and nested, and
/// says which one.
#[test]
fn the_schema_refuses_unknown_keys() {
    for (set, key) in [
        ("replica=3", "replica"),
        ("image.tags=v2", "tags"),
        ("credentials.rrsa.role=x", "role"),
        ("resources.limits.gpu=1", "gpu"),
        ("metrics.serviceMonitor.label=x", "label"),
    ] {
        let err = template(&["--set", set]).expect_err(set);
        assert!(
            err.contains("additional properties") && err.contains(key),
            "--set {set}: the error does not name the unknown key: {err}"
        );
    }
    let err = template(&["--set", "credentials.mode=static"]).expect_err("unknown mode");
    assert!(err.contains("credentials") && err.contains("mode"), "{err}");
}

/// `helm install` on the real control plane into a namespace enforcing Pod Security
/// "restricted": every object is accepted, and the controller-manager creates the
/// ReplicaSet and both Pods through admission (they stay Pending: there is no node).
#[test]
fn helm_install_is_accepted_and_its_pods_pass_restricted_admission() {
    let server = support::apiserver::ensure();
    let suffix: u32 = rand::random::<u32>() % 1_000_000;
    let ns = format!("helm-{suffix}");
    let release = format!("ar{suffix}");
    let kubectl = |args: &[&str]| {
        run({
            let mut c = server.kubectl();
            c.args(args);
            c
        })
    };
    server.create_namespace(&ns);
    let (ok, _, err) = kubectl(&[
        "label",
        "namespace",
        &ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]);
    assert!(ok, "{err}");
    // The level is enforced there: a Pod that may run as root is refused.
    let (ok, _, err) = kubectl(&[
        "run",
        "rooty",
        "-n",
        &ns,
        "--image=registry.invalid/x:1",
        "--dry-run=server",
    ]);
    assert!(
        !ok && err.contains("PodSecurity"),
        "a root Pod is refused: {err}"
    );

    let home = tempfile::tempdir().expect("temp dir");
    let mut cmd = helm(home.path());
    // The CRDs are cluster-wide and already applied (server-side, by kubectl) by the other
    // tests on this control plane; the chart's copies are the same files (checked above),
    // so taking over their fields is safe.
    cmd.args([
        "install",
        &release,
        &chart().to_string_lossy(),
        "-n",
        &ns,
        "--force-conflicts",
        "--kubeconfig",
        &server.kubeconfig.to_string_lossy(),
    ]);
    let (ok, stdout, stderr) = run(cmd);
    assert!(ok, "helm install failed:\n{stdout}{stderr}");

    // Every object of the release is there.
    let mut cmd = helm(home.path());
    cmd.args([
        "get",
        "manifest",
        &release,
        "-n",
        &ns,
        "--kubeconfig",
        &server.kubeconfig.to_string_lossy(),
    ]);
    let (ok, manifest, stderr) = run(cmd);
    assert!(ok, "{stderr}");
    let docs = parse_docs(&manifest);
    assert!(docs.len() >= 9, "{} objects: {manifest}", docs.len());
    for doc in &docs {
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().expect("name");
        let mut args = vec!["get", kind, name];
        if let Some(n) = doc["metadata"]["namespace"].as_str() {
            args.extend(["-n", n]);
        }
        let (ok, _, err) = kubectl(&args);
        assert!(ok, "{kind} {name} is not on the cluster: {err}");
    }

    let selector = format!("app.kubernetes.io/instance={release}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, rs, _) = kubectl(&[
            "get",
            "replicasets",
            "-n",
            &ns,
            "-l",
            &selector,
            "-o",
            "name",
        ]);
        let (_, pods, _) = kubectl(&["get", "pods", "-n", &ns, "-l", &selector, "-o", "name"]);
        if rs.lines().count() == 1 && pods.lines().count() == 2 {
            break;
        }
        if Instant::now() >= deadline {
            let (_, rs, _) = kubectl(&["get", "replicasets", "-n", &ns, "-o", "yaml"]);
            let (_, events, _) = kubectl(&["get", "events", "-n", &ns]);
            panic!("the operator's Pods were not created: {pods}\n{rs}\n{events}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut cmd = helm(home.path());
    cmd.args([
        "uninstall",
        &release,
        "-n",
        &ns,
        "--kubeconfig",
        &server.kubeconfig.to_string_lossy(),
    ]);
    let (ok, _, stderr) = run(cmd);
    assert!(ok, "helm uninstall: {stderr}");
    server.delete_namespace(&ns);
}
