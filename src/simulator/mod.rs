//! A local stand-in for the EAS and ESA endpoints (`alicloud-rollouts simulator`).

/// Command-line options of `alicloud-rollouts simulator`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: std::net::SocketAddr,
}

/// Run the simulator until interrupted.
pub async fn run(_args: SimulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulator is not implemented yet")
}
