//! The `alicloud-rollouts` binary: a thin wrapper wiring subcommands to the library.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "alicloud-rollouts",
    version,
    about = "Progressive rollouts of Alibaba Cloud services, declared as Kubernetes resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (one controller per kind).
    Run(alicloud_rollouts::controller::RunArgs),
    /// Run the local EAS/ESA cloud simulator.
    Simulator(alicloud_rollouts::simulator::SimulatorArgs),
    /// Print every CustomResourceDefinition as YAML.
    Crds,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => alicloud_rollouts::controller::run(args).await,
        Command::Simulator(args) => alicloud_rollouts::simulator::run(args).await,
        Command::Crds => {
            print!("{}", alicloud_rollouts::crd::render_yaml()?);
            Ok(())
        }
    }
}
