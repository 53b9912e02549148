//! `vms-api`: the central service.
//!
//! - `vms-api run --config FILE.toml` serves the client API and the recorders' TLS port until
//!   SIGINT/SIGTERM. Once both are bound it prints one JSON line on standard output:
//!   `{"api":"127.0.0.1:PORT","channel":"127.0.0.1:PORT","root_sha256":"…"}`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vms_api::config::Config;
use vms_api::service::{self, Central};

#[derive(Parser)]
#[command(version, about = "The central service of the vms network")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the client API and the recorders' port.
    Run {
        #[arg(long)]
        config: PathBuf,
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

/// Resolves at the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping; a second signal exits at once");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
}

fn main() -> anyhow::Result<()> {
    init_logging();
    match Args::parse().command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("vms-central")
                .build()?;
            rt.block_on(async {
                let central = Arc::new(Central::open(config)?);
                let root = central.pki.root_fingerprint();
                service::run(central, shutdown_signal(), |bound| {
                    let line = serde_json::json!({
                        "api": bound.api.to_string(),
                        "channel": bound.channel.to_string(),
                        "root_sha256": root,
                    });
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                    tracing::info!(api = %bound.api, channel = %bound.channel, "central serving");
                })
                .await
            })?;
        }
    }
    Ok(())
}
