//! `vms-conformance`: the recorder conformance suite of the interoperability standard. It runs
//! the API tests of spec/ against any recorder, given its URL and an administrator token, over
//! HTTP only (spec/recorder-conformance.md).

mod checks;
mod evidence;
mod hls;
mod http;
mod mp4;
mod report;
mod tar;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vms-conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the recorder API checks against a running recorder.
    Recorder(RecorderArgs),
}

#[derive(clap::Args)]
pub struct RecorderArgs {
    /// The recorder's API root, `http://HOST:PORT`.
    #[arg(long)]
    pub url: String,
    /// The recorder's administrator bearer token. Never printed.
    #[arg(long)]
    pub token: String,
    /// The camera to test (a ULID); by default one with recorded footage.
    #[arg(long)]
    pub camera: Option<String>,
    /// The stream to test; by default one with recorded footage.
    #[arg(long)]
    pub stream: Option<String>,
    /// Also writes the results as JSON to FILE (`-`: standard output, the lines then go to
    /// standard error).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<String>,
    /// A spec directory to read `openapi/recorder.yaml` (and its siblings) from instead of
    /// the documents compiled in.
    #[arg(long, value_name = "DIR")]
    pub spec: Option<PathBuf>,
}

fn main() -> ExitCode {
    let Command::Recorder(args) = Cli::parse().command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return cannot_run(&format!("cannot start the runtime: {e}"), &args.token),
    };
    let report = match runtime.block_on(checks::run(&args)) {
        Ok(r) => r,
        Err(e) => return cannot_run(&e, &args.token),
    };
    let lines = report.lines();
    let written = match args.json.as_deref() {
        Some("-") => write_all(&mut std::io::stderr(), &lines).and_then(|()| {
            write_all(
                &mut std::io::stdout(),
                &format!("{}\n", report.json(&args.url)),
            )
        }),
        Some(file) => write_all(&mut std::io::stdout(), &lines).and_then(|()| {
            std::fs::write(file, format!("{:#}\n", report.json(&args.url)))
                .map_err(|e| format!("--json {file}: {e}"))
        }),
        None => write_all(&mut std::io::stdout(), &lines),
    };
    if let Err(e) = written {
        return cannot_run(&e, &args.token);
    }
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn write_all(out: &mut dyn Write, text: &str) -> Result<(), String> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the results: {e}"))
}

/// Exit 2: the suite could not run.
fn cannot_run(why: &str, token: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "vms-conformance: cannot run: {}",
        report::scrub(why, token)
    );
    ExitCode::from(2)
}
