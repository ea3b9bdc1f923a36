//! The local control plane that every other integration test runs against behaves like a
//! cluster in the ways the operator and its manifests rely on: native Leases and Events,
//! namespaces (objects refused in a missing one, deletion completes), Secrets,
//! ServiceAccount tokens, RBAC, Pod Security admission, and the controller-manager's
//! Deployment, ReplicaSet and garbage-collection controllers. The checks live in
//! hack/controlplane/smoke-test.sh so that they can be run by hand too.

mod support;

use std::process::Command;

#[test]
fn control_plane_behaves_like_a_cluster() {
    let api = support::apiserver::ensure();
    let script = support::e2e::repo_root().join("hack/controlplane/smoke-test.sh");
    let out = Command::new("bash")
        .arg(&script)
        // The script starts the control plane itself (`up` is idempotent); point its
        // kubectl at the same binaries as ours.
        .env(
            "PATH",
            format!(
                "{}:{}",
                api.bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("the smoke test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "smoke test failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: u32 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 30 && summary.ends_with(" passed, 0 failed"),
        "unexpected summary {summary:?}:\n{stdout}"
    );
}
