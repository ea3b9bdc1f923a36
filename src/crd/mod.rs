//! The custom resources: the product's user interface.
//!
//! One module per kind. The YAML in `crds/` is generated from these types
//! (`alicloud-rollouts crds`) and never edited by hand.

pub mod analysis;
pub mod common;
pub mod container_app;
pub mod eas;
pub mod eas_config;
pub mod routine;
pub mod validation;

pub use common::*;
pub use container_app::*;
pub use eas::*;
pub use routine::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every kind this operator serves.
pub const GROUP: &str = "rollouts.alicloud.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The category that makes `kubectl get alicloud-rollouts` list every kind.
pub const CATEGORY: &str = "alicloud-rollouts";

/// Every CRD, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        EasServiceRollout::crd(),
        EsaRoutineRollout::crd(),
        EsaContainerAppRollout::crd(),
        analysis::AnalysisTemplate::crd(),
        analysis::ClusterAnalysisTemplate::crd(),
    ]
}

/// Every CRD as one multi-document YAML stream (what `alicloud-rollouts crds` prints).
pub fn render_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// How to regenerate `crds/`, as said in each generated file and by the staleness test.
pub const REGENERATE: &str = "cargo run -- crds --out-dir crds";

/// The files of `crds/`: one `<plural>.yaml` per kind, in the order of [`all`].
pub fn render_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    all()
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.spec.names.plural);
            let body = format!(
                "# Generated from src/crd by `{REGENERATE}`: do not edit by hand.\n---\n{}",
                serde_yaml::to_string(&crd)?
            );
            Ok((file, body))
        })
        .collect()
}

/// Write [`render_files`] into `dir` (created if missing); returns the paths written.
pub fn write_files(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (file, body) in render_files()? {
        let path = dir.join(file);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
