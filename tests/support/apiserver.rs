//! The local real Kubernetes control plane (scripts/local-apiserver.sh) for integration
//! tests.
//!
//! `up` is idempotent, so every test binary may call it; the first starts the server.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A running local API server.
#[derive(Debug, Clone)]
pub struct ApiServer {
    pub kubeconfig: PathBuf,
    /// Directory holding the matching `kubectl`.
    pub bin_dir: PathBuf,
}

impl ApiServer {
    /// `kubectl` with KUBECONFIG set for this server.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Create the namespace `name` (it may exist already): the API server refuses objects
    /// in a namespace that does not exist.
    pub fn create_namespace(&self, name: &str) {
        let out = self
            .kubectl()
            .args(["create", "namespace", name])
            .output()
            .expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("AlreadyExists"),
            "creating namespace {name}: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Start deleting the namespace `name` and everything in it (the controller-manager
    /// finishes the job); does not wait.
    pub fn delete_namespace(&self, name: &str) {
        let _ = self
            .kubectl()
            .args([
                "delete",
                "namespace",
                name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }

    /// A kube client for this server.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .expect("the local API server's kubeconfig is readable");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("the local API server's kubeconfig is valid");
        kube::Client::try_from(config).expect("a client for the local API server")
    }
}

/// Start the local API server if needed (scripts/local-apiserver.sh up) and return it.
/// Fails the test, with the script's output, when it cannot be started.
pub fn ensure() -> ApiServer {
    static SERVER: OnceLock<ApiServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out = Command::new("bash")
                .arg(root.join("scripts/local-apiserver.sh"))
                .arg("up")
                .output()
                .expect("scripts/local-apiserver.sh can be run");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "scripts/local-apiserver.sh up failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut kubeconfig = None;
            let mut bin_dir = None;
            for line in stdout.lines() {
                if let Some(v) = line.strip_prefix("export KUBECONFIG=") {
                    kubeconfig = Some(PathBuf::from(v.trim().trim_matches('"')));
                } else if let Some(v) = line.strip_prefix("export PATH=") {
                    let first = v.trim().trim_matches('"').split(':').next().unwrap_or("");
                    bin_dir = Some(PathBuf::from(first));
                }
            }
            ApiServer {
                kubeconfig: kubeconfig.expect("`up` prints export KUBECONFIG=..."),
                bin_dir: bin_dir.expect("`up` prints export PATH=<kubectl dir>:..."),
            }
        })
        .clone()
}
