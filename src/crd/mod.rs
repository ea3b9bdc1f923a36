//! The custom resources: the product's user interface.
//!
//! One module per kind. The YAML in `crds/` is generated from these types
//! (`alicloud-rollouts crds`) and never edited by hand.

pub mod common;
pub mod container_app;
pub mod eas;
pub mod routine;

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
