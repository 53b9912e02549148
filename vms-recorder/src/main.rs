//! `vms-recorder`: the regional recorder.
//!
//! - `vms-recorder run --config FILE.toml` records and serves the API until SIGINT/SIGTERM
//!   (a second signal forces exit). Once it serves, it prints one JSON line on standard
//!   output: `{"api":"127.0.0.1:PORT","recorder":"ID"}`.
//! - `vms-recorder reindex --config FILE.toml [--verify]` rebuilds the index of a stopped
//!   recorder from its segment files; with `--verify` it only checks that they agree.
//! - `vms-recorder verify PACKAGE.tar [--trusted-key KEY.pem] [--trusted-root ROOT.pem]…`
//!   checks an evidence package offline and prints `VERIFIED: …` (exit 0) or
//!   `FAILED: <reason>` (exit 1).
//! - `vms-recorder check-camera --url rtsp://… --profile CLASS [--role main|sub] [--username U]
//!   [--duration-secs N] [--json FILE|-]` probes a camera stream and judges it against the
//!   standard's camera profile (`spec/camera-conformance.md`). The password comes from the
//!   environment variable `VMS_CAMERA_PASSWORD`. Exit 0 when it conforms, 1 when it does not,
//!   2 when the arguments are wrong.
//! - `vms-recorder audit-verify (--data-dir DIR | --log FILE) [--checkpoint SEQ:HASH]…`
//!   checks the audit log's hash chain the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vms_core::audit::{Head, Violation};
use vms_recorder::audit;
use vms_recorder::cameras::{CameraClass, StreamSpec};
use vms_recorder::clock::RealClocks;
use vms_recorder::config::Config;
use vms_recorder::conformance::{self, Role, Target};
use vms_recorder::evidence::{self, PublicKey, Trust, TrustedRoot};
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
    /// Verify an evidence package offline: layout, signature, key, every file's SHA-256,
    /// and with a trusted root the certificate chain. Needs no configuration. Exit 0 when it
    /// verifies, 1 when it does not.
    Verify {
        /// The package (`.tar`).
        package: PathBuf,
        /// The recorder's public key (SPKI PEM) obtained out of band: the package's key must
        /// be this one. Without it or a trusted root, the package only proves it was signed by
        /// the key it carries.
        #[arg(long, value_name = "KEY.pem")]
        trusted_key: Option<PathBuf>,
        /// A national root certificate (PEM) obtained out of band: the package's
        /// `certificate.pem` must be issued by it for the package's key and recorder, and
        /// both must be valid at the export time. Repeatable: any one of the roots may have
        /// issued it. Combines with `--trusted-key`.
        #[arg(long = "trusted-root", value_name = "ROOT.pem")]
        trusted_roots: Vec<PathBuf>,
    },
    /// Probe a camera stream for a while and check it against a camera profile of the
    /// standard, rule by rule (spec/camera-conformance.md). The password is read from the
    /// environment variable VMS_CAMERA_PASSWORD, never from the command line. Exit 0 when the
    /// stream conforms, 1 when it does not, 2 when the arguments are wrong.
    CheckCamera {
        /// The stream, `rtsp://host[:port]/path`, without credentials.
        #[arg(long)]
        url: String,
        /// The camera profile: `city`, `safe_yard` or `traffic`.
        #[arg(long)]
        profile: String,
        /// `main` (the camera's first stream) or `sub`.
        #[arg(long, default_value = "main")]
        role: String,
        /// The RTSP user name, if the camera needs one.
        #[arg(long)]
        username: Option<String>,
        /// How long to play the stream, 10..=600 seconds.
        #[arg(long, default_value_t = 30)]
        duration_secs: u64,
        /// Also write the report as JSON to this file; `-` writes it to standard output and
        /// the human report to standard error.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Check the audit log's hash chain: every record's hash, sequence and link to the one
    /// before. Exit 0 when it holds, 1 when it does not.
    AuditVerify {
        /// The recorder's data directory (the log is `audit.log` in it).
        #[arg(long, required_unless_present = "log", conflicts_with = "log")]
        data_dir: Option<PathBuf>,
        /// The log file itself.
        #[arg(long)]
        log: Option<PathBuf>,
        /// A head noted earlier (`SEQ:HASH`, as this command prints it): the log must still
        /// hold that record with that hash. Catches records removed from the end, which the
        /// chain alone cannot. Repeatable.
        #[arg(long = "checkpoint", value_name = "SEQ:HASH")]
        checkpoints: Vec<Head>,
    },
}

/// `check-camera`: exit 2 for bad arguments, 1 for a camera that does not conform.
fn check_camera(
    url: &str,
    profile: &str,
    role: &str,
    username: Option<String>,
    duration_secs: u64,
    json: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let password = std::env::var("VMS_CAMERA_PASSWORD").ok();
    let target = (|| {
        let class: CameraClass = profile.parse()?;
        let role: Role = role.parse()?;
        let duration = conformance::check_duration(std::time::Duration::from_secs(duration_secs))?;
        let url = StreamSpec {
            name: "main".into(),
            url: url.to_owned(),
            username: username.clone(),
            password: password.clone(),
            transport: Default::default(),
        }
        .parsed_url()?;
        Ok::<_, vms_core::Error>((
            class,
            role,
            Target {
                url,
                username,
                password,
                duration,
            },
        ))
    })();
    let (class, role, target) = match target {
        Ok(t) => t,
        Err(e) => {
            eprintln!("check-camera: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(conformance::check(&target, class, role, &RealClocks));
    let text = conformance::human(&report);
    let body = serde_json::to_vec_pretty(&report)?;
    match json.as_deref() {
        Some(p) if p == Path::new("-") => {
            eprint!("{text}");
            let mut out = std::io::stdout().lock();
            out.write_all(&body)?;
            out.write_all(b"\n")?;
        }
        Some(p) => {
            std::fs::write(p, &body).with_context(|| format!("writing {}", p.display()))?;
            print_stdout(&text)?;
        }
        None => print_stdout(&text)?,
    }
    Ok(if report.verdict == "pass" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_stdout(text: &str) -> std::io::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<ExitCode> {
    init_logging();
    let args = Args::parse();
    match args.command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            // Recording (ingest, writing, retention) runs on a runtime of its own with
            // wake-up coalescing: a worker with nothing to do waits this long before it
            // parks, so the packets of many cameras are read in one wake-up instead of one
            // wake-up each. Ingest and its timers gain at most this much latency.
            let mut recording = tokio::runtime::Builder::new_multi_thread();
            recording.enable_all().thread_name("vms-recording");
            let coalesce = std::time::Duration::from_millis(u64::from(config.io_coalesce_ms));
            if !coalesce.is_zero() {
                recording.on_thread_park(move || std::thread::sleep(coalesce));
            }
            let recording = recording.build()?;
            // The API runs on its own runtime, without coalescing: a request, or each step
            // of a download, would otherwise wait out a worker's nap.
            let api = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("vms-api")
                .build()?;
            api.block_on(run(config, recording.handle().clone()))?;
        }
        Command::Reindex { config, verify } => {
            let config = Config::load(&config)?;
            let verdict = service::reindex(&config, verify)?;
            tracing::info!("{verdict}");
        }
        Command::Verify {
            package,
            trusted_key,
            trusted_roots,
        } => {
            let verdict = verify_package(&package, trusted_key.as_deref(), &trusted_roots);
            return verdict_line(verdict);
        }
        Command::CheckCamera {
            url,
            profile,
            role,
            username,
            duration_secs,
            json,
        } => return check_camera(&url, &profile, &role, username, duration_secs, json),
        Command::AuditVerify {
            data_dir,
            log,
            checkpoints,
        } => {
            let path = log
                .or_else(|| data_dir.map(|d| d.join(audit::AUDIT_FILE)))
                .context("--data-dir or --log is required")?;
            return verdict_line(verify_audit(&path, &checkpoints));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `VERIFIED: …` or `FAILED: …` on standard output; the exit code follows.
fn verdict_line(verdict: Result<String, String>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let code = match verdict {
        Ok(v) => {
            writeln!(out, "VERIFIED: {v}")?;
            ExitCode::SUCCESS
        }
        Err(reason) => {
            writeln!(out, "FAILED: {reason}")?;
            ExitCode::FAILURE
        }
    };
    out.flush()?;
    Ok(code)
}

fn verify_audit(path: &Path, checkpoints: &[Head]) -> Result<String, String> {
    let s = audit::verify(path, checkpoints).map_err(|v| match v {
        // Already names the file.
        Violation::Unreadable(e) => e.to_string(),
        v => format!("{}: {v}", path.display()),
    })?;
    let mut verdict = format!("{}: {s}", path.display());
    if !checkpoints.is_empty() {
        verdict.push_str(&format!(", {} checkpoints matched", checkpoints.len()));
    }
    if s.torn_tail_bytes > 0 {
        verdict.push_str(&format!(
            "; it ends in a torn line of {} bytes (a crash mid-append, never acknowledged), \
             cut off when the recorder next opens the log",
            s.torn_tail_bytes
        ));
    }
    Ok(verdict)
}

fn verify_package(
    package: &Path,
    trusted_key: Option<&Path>,
    trusted_roots: &[PathBuf],
) -> Result<String, String> {
    let key = match trusted_key {
        None => None,
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("--trusted-key {}: {e}", path.display()))?;
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| format!("--trusted-key {}: {e}", path.display()))?;
            Some(key)
        }
    };
    let roots = trusted_roots
        .iter()
        .map(|path| TrustedRoot::load(path).map_err(|e| format!("--trusted-root {e}")))
        .collect::<Result<_, _>>()?;
    let trust = Trust { key, roots };
    let file = std::fs::File::open(package)
        .map_err(|e| format!("cannot open {}: {e}", package.display()))?;
    let verified = evidence::verify_package(std::io::BufReader::new(file), &trust)
        .map_err(|e| e.to_string())?;
    Ok(verified.to_string())
}

/// Serves the API on the current runtime; the service and its streams run on `recording`.
async fn run(mut config: Config, recording: tokio::runtime::Handle) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", config.listen))?;
    let central = config.central.take();
    let service = recording
        .spawn(async move { Service::start(&config).await })
        .await??;
    let ready =
        serde_json::json!({"api": listener.local_addr()?, "recorder": service.id.to_string()});
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }
    tracing::info!(recorder = %service.id, api = %listener.local_addr()?, "recorder running");
    // Cameras onboarded from the config file (or whose check a stop cut short) are checked
    // against the standard now, on this runtime.
    service.check_unchecked().await;
    // The link to central runs beside the API; recording never waits on it.
    let (stop_link, link_stopped) = tokio::sync::watch::channel(false);
    if let Some(central) = central {
        tokio::spawn(vms_recorder::link::run(
            service.clone(),
            central,
            link_stopped,
        ));
    }
    let app = vms_recorder::api::router(service.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop_link.send(true);
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
