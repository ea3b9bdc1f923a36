//! The install manifests in deploy/: they render with kustomize, install on a cluster under
//! Pod Security "restricted", grant the operator what it uses, and start it with
//! arguments it accepts.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use alicloud_rollouts::controller::RunArgs;
use clap::Parser;
use serde::Deserialize;
use serde_yaml::Value;

#[derive(Parser, Debug)]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

fn rendered() -> Vec<Value> {
    let server = support::apiserver::ensure();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = server
        .kubectl()
        .arg("kustomize")
        .arg(root.join("deploy"))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("each rendered document is YAML"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// May the rules let `verb` on `group`/`resource`?
fn allows(rules: &[&Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        strings(&r["apiGroups"]).contains(group)
            && strings(&r["resources"]).contains(resource)
            && strings(&r["verbs"]).contains(verb)
    })
}

#[test]
fn rbac_grants_what_the_operator_uses() {
    let docs = rendered();
    let cluster_rules: Vec<&Value> = of_kind(&docs, "ClusterRole")
        .iter()
        .flat_map(|r| r["rules"].as_sequence().into_iter().flatten())
        .collect();
    // The three rollout kinds: watched, their status written.
    for plural in [
        "easservicerollouts",
        "esaroutinerollouts",
        "esacontainerapprollouts",
    ] {
        for verb in ["list", "watch"] {
            assert!(
                allows(&cluster_rules, "rollouts.alicloud.dev", plural, verb),
                "{verb} {plural}"
            );
        }
        assert!(allows(
            &cluster_rules,
            "rollouts.alicloud.dev",
            &format!("{plural}/status"),
            "patch"
        ));
    }
    // CloudAccounts are watched; analysis templates are read by name when a step needs one.
    for verb in ["list", "watch"] {
        assert!(
            allows(
                &cluster_rules,
                "rollouts.alicloud.dev",
                "cloudaccounts",
                verb
            ),
            "{verb} cloudaccounts"
        );
    }
    for plural in ["analysistemplates", "clusteranalysistemplates"] {
        assert!(
            allows(&cluster_rules, "rollouts.alicloud.dev", plural, "get"),
            "get {plural}"
        );
    }
    // Every kind the operator defines is covered above.
    assert_eq!(alicloud_rollouts::crd::all().len(), 6);
    // The cleanup finalizer (tests/e2e_rbac.rs proves from the audit log that nothing
    // granted goes unused).
    assert!(allows(
        &cluster_rules,
        "rollouts.alicloud.dev",
        "easservicerollouts",
        "patch"
    ));
    assert!(allows(&cluster_rules, "", "secrets", "get"));
    assert!(
        !allows(&cluster_rules, "", "secrets", "list"),
        "no listing of Secrets"
    );
    assert!(allows(&cluster_rules, "events.k8s.io", "events", "create"));
    let lease_rules: Vec<&Value> = of_kind(&docs, "Role")
        .iter()
        .flat_map(|r| r["rules"].as_sequence().into_iter().flatten())
        .collect();
    for verb in ["get", "create", "update"] {
        assert!(
            allows(&lease_rules, "coordination.k8s.io", "leases", verb),
            "{verb} leases"
        );
    }
}

#[test]
fn the_deployment_starts_the_operator_with_arguments_it_accepts() {
    let docs = rendered();
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let container = &deployments[0]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    let parsed = Run::try_parse_from(args.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("deploy/deployment.yaml args {args:?} are refused: {e}"));
    assert!(
        parsed.args.leader_elect,
        "two replicas need leader election"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let probe = &container["livenessProbe"]["httpGet"]["path"];
    assert_eq!(probe, "/healthz");
    // A follower is ready (otherwise a PodDisruptionBudget and rolling updates stall);
    // the leader once its caches synced.
    let ready = &container["readinessProbe"]["httpGet"]["path"];
    assert_eq!(ready, "/readyz");
}

/// `kubectl apply -k deploy/` as on a cluster: every object is accepted, the namespace
/// enforces Pod Security "restricted", and the controller-manager creates the operator's
/// Pods through admission (they stay Pending: the test control plane has no node).
#[test]
fn the_kustomize_install_is_accepted_and_its_pods_pass_restricted_admission() {
    let server = support::apiserver::ensure();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kubectl = |args: &[&str]| {
        let out = server.kubectl().args(args).output().expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let deploy = root.join("deploy");
    let ns = "alicloud-rollouts";
    // A control plane reused from an earlier run may hold an install of an older deploy/
    // whose rolling update cannot finish (no node): start from a fresh install.
    let (ok, _, stderr) = kubectl(&[
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]);
    assert!(ok, "removing an earlier install: {stderr}");
    let (ok, stdout, stderr) = kubectl(&["apply", "-k", &deploy.to_string_lossy()]);
    assert!(ok, "kubectl apply -k deploy/ failed:\n{stdout}{stderr}");

    let (_, enforce, _) = kubectl(&[
        "get",
        "namespace",
        ns,
        "-o",
        r"jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}",
    ]);
    assert_eq!(
        enforce, "restricted",
        "deploy/ namespace's Pod Security level"
    );
    // ...and the level is enforced there: a Pod that may run as root is refused.
    let rooty = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"rooty"},
        "spec":{"containers":[{"name":"c","image":"registry.invalid/x:1"}]}}"#;
    let mut cmd = server.kubectl();
    cmd.args(["create", "--dry-run=server", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), rooty.as_bytes())
        .expect("manifest written");
    let out = child.wait_with_output().expect("kubectl finishes");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("PodSecurity"),
        "a non-compliant Pod is refused in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The Deployment's two replicas exist as Pods: each passed admission.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (_, pods, _) = kubectl(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/name=alicloud-rollouts",
            "-o",
            "name",
        ]);
        if pods.lines().count() == 2 {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let (_, rs, _) = kubectl(&["get", "replicasets", "-n", ns, "-o", "yaml"]);
            let (_, events, _) = kubectl(&["get", "events", "-n", ns]);
            panic!("the operator's Pods were not created: {pods}\n{rs}\n{events}");
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
