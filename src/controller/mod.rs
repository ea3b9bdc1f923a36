//! The reconcilers, one per kind (`alicloud-rollouts run`).

pub mod app_plan;
pub mod conditions;
pub mod routine_plan;
pub mod steps;

/// Command-line options of `alicloud-rollouts run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {}

/// Run the operator until interrupted.
pub async fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("the controller is not implemented yet")
}
