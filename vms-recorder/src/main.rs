//! `vms-recorder`: the regional recorder.
//!
//! - `vms-recorder run --config FILE.toml` records and serves the API until SIGINT/SIGTERM
//!   (a second signal forces exit). Once it serves, it prints one JSON line on standard
//!   output: `{"api":"127.0.0.1:PORT","recorder":"ID"}`.
//! - `vms-recorder reindex --config FILE.toml [--verify]` rebuilds the index of a stopped
//!   recorder from its segment files; with `--verify` it only checks that they agree.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vms_recorder::config::Config;
use vms_recorder::service::{self, Service};

#[derive(Parser)]
#[command(version, about = "The regional recorder of the vms network")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record every configured camera and serve the API.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Rebuild the index of a stopped recorder from its segment files alone.
    Reindex {
        #[arg(long)]
        config: PathBuf,
        /// Compare the live index with the files instead of replacing it; exit 1 if they differ.
        #[arg(long)]
        verify: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    match args.command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.enable_all();
            // Wake-up coalescing: a worker with nothing to do waits this long before it
            // parks, so the packets of many cameras are read in one wake-up instead of one
            // wake-up each. Ingest, API and timers gain at most this much latency.
            let coalesce = std::time::Duration::from_millis(u64::from(config.io_coalesce_ms));
            if !coalesce.is_zero() {
                runtime.on_thread_park(move || std::thread::sleep(coalesce));
            }
            runtime.build()?.block_on(run(config))
        }
        Command::Reindex { config, verify } => {
            let config = Config::load(&config)?;
            let verdict = service::reindex(&config, verify)?;
            tracing::info!("{verdict}");
            Ok(())
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", config.listen))?;
    let service = Service::start(&config).await?;
    let ready =
        serde_json::json!({"api": listener.local_addr()?, "recorder": service.id.to_string()});
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }
    tracing::info!(recorder = %service.id, api = %listener.local_addr()?, "recorder running");
    let app = vms_recorder::api::router(service.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // A second signal while streams close forces the exit.
    tokio::select! {
        () = service.shutdown() => {}
        () = shutdown_signal() => tracing::warn!("second signal: exiting without closing segments"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
