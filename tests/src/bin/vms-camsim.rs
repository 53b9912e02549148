//! `vms-camsim`: serves simulated RTSP cameras from a TOML file (see `spec/camsim.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vms_tests::camsim::{Ready, Simulator, config::Config};

/// Simulated RTSP cameras for tests, benchmarks and the demo.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The simulator configuration (TOML).
    #[arg(long)]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    vms_tests::process::init_logging();
    let args = Args::parse();
    let config = Config::load(&args.config).map_err(anyhow::Error::msg)?;
    let simulator = Simulator::start(&config).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.control_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.control_listen))?;
        let ready = Ready {
            rtsp: simulator.rtsp_addr(),
            control: listener.local_addr()?,
        };
        vms_tests::process::announce_ready(&ready)?;
        for url in simulator.stream_urls() {
            tracing::info!(%url, "serving");
        }
        simulator
            .serve_control(listener, vms_tests::process::shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    tracing::info!("stopped");
    Ok(())
}
