//! `vms-api`: the central service.
//!
//! - `vms-api run --config FILE.toml` serves the client API and the recorders' TLS port until
//!   SIGINT/SIGTERM. Once both are bound it prints one JSON line on standard output:
//!   `{"api":"127.0.0.1:PORT","channel":"127.0.0.1:PORT","root_sha256":"…"}`.
//! - `vms-api create-admin --config FILE.toml --username NAME` makes the first national
//!   administrator (scope: the whole republic) and prints
//!   `{"username":"…","password":"…"}`. Run it while central is stopped.
//! - `vms-api audit-verify --config FILE.toml` checks central's audit log and its copies of
//!   every recorder's log against their signed checkpoints, and prints `VERIFIED: …` (exit 0)
//!   or `FAILED: …` (exit 1). Run it while central is stopped.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vms_api::audit::{Keys, verify_command};
use vms_api::config::Config;
use vms_api::pki::Pki;
use vms_api::registry::Registry;
use vms_api::service::{self, Central};
use vms_api::store::Store;
use vms_api::users::{Users, bootstrap_admin};

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
    /// Make the first national administrator and print the generated password.
    CreateAdmin {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        username: String,
    },
    /// Check every audit log central holds: chains, and signed checkpoints (truncation).
    AuditVerify {
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

/// The store of a stopped central.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.data_dir.join("store")).map_err(|e| {
        anyhow::anyhow!("{e} (is central running? stop it first: the store has one user at a time)")
    })
}

fn main() -> anyhow::Result<ExitCode> {
    init_logging();
    match Args::parse().command {
        Command::CreateAdmin { config, username } => {
            let config = Config::load(&config)?;
            std::fs::create_dir_all(&config.data_dir)?;
            let store = open_store(&config)?;
            let users = Users::open(&store, Duration::from_secs(config.session_ttl_secs))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let password =
                rt.block_on(bootstrap_admin(&users, &username, jiff::Timestamp::now()))?;
            store.flush()?;
            let line = serde_json::json!({"username": username, "password": password});
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        Command::AuditVerify { config } => {
            let config = Config::load(&config)?;
            let store = open_store(&config)?;
            let pki = Pki::load_or_create(&config.data_dir, &config.tls_names)?;
            let mut recorders = HashMap::new();
            for r in Registry::open(&store)?.list()? {
                recorders.insert(r.id, vms_api::channel::recorder_key(&r)?);
            }
            let keys = Keys {
                central: pki.token_key().verifying_key(),
                recorders,
            };
            let verdict = verify_command(&store, &keys);
            let mut out = std::io::stdout().lock();
            return Ok(match verdict {
                Ok(v) => {
                    writeln!(out, "VERIFIED: {v}")?;
                    ExitCode::SUCCESS
                }
                Err(v) => {
                    writeln!(out, "FAILED: {v}")?;
                    ExitCode::FAILURE
                }
            });
        }
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
    Ok(ExitCode::SUCCESS)
}
