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
    Run(Box<alicloud_rollouts::controller::RunArgs>),
    /// Run the local EAS/ESA cloud simulator.
    Simulator(alicloud_rollouts::simulator::SimulatorArgs),
    /// Benchmark the operator against its targets (KUBECONFIG's API server, a simulator
    /// it starts); see scripts/bench.sh.
    Bench(alicloud_rollouts::bench::BenchArgs),
    /// Print every CustomResourceDefinition as YAML (or write one file per kind).
    Crds(CrdsArgs),
}

#[derive(clap::Args, Debug)]
struct CrdsArgs {
    /// Write one `<plural>.yaml` per kind into this directory instead of printing them all
    /// (`crds/` in the repository is generated with `--out-dir crds`).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => alicloud_rollouts::controller::run(*args).await,
        Command::Simulator(args) => alicloud_rollouts::simulator::run(args).await,
        Command::Bench(args) => alicloud_rollouts::bench::run(args).await,
        Command::Crds(CrdsArgs { out_dir: None }) => {
            print!("{}", alicloud_rollouts::crd::render_yaml()?);
            Ok(())
        }
        Command::Crds(CrdsArgs { out_dir: Some(dir) }) => {
            for path in alicloud_rollouts::crd::write_files(&dir)? {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}
