//! Running our binaries as real processes: the ready line a server prints once it serves,
//! shutdown signals, logging set-up, and a child handle for tests that kills on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Logs go to standard error; the filter comes from `VMS_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints the ready line: one JSON object on standard output, the only thing a server prints
/// there, so that whoever started it knows where it listens.
pub fn announce_ready(ready: &impl Serialize) -> std::io::Result<()> {
    let line = serde_json::to_string(ready)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A child process that is killed when the handle is dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `program` and waits up to `timeout` for its ready line. Its log goes to the
    /// test's standard error, at level `warn` unless `VMS_LOG` asks for more.
    pub fn start<T: DeserializeOwned + Send + 'static>(
        program: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(Process, T), String> {
        let log = std::env::var("VMS_LOG").unwrap_or_else(|_| "warn".to_owned());
        Process::start_logging(program, args, timeout, &log, Stdio::inherit())
    }

    /// Like [`Process::start`], with the log at `level` written to `log_file`, for tests of
    /// what a process logs.
    pub fn start_logged<T: DeserializeOwned + Send + 'static>(
        program: &Path,
        args: &[&str],
        timeout: Duration,
        level: &str,
        log_file: &Path,
    ) -> Result<(Process, T), String> {
        let file = std::fs::File::create(log_file)
            .map_err(|e| format!("cannot create {}: {e}", log_file.display()))?;
        Process::start_logging(program, args, timeout, level, Stdio::from(file))
    }

    fn start_logging<T: DeserializeOwned + Send + 'static>(
        program: &Path,
        args: &[&str],
        timeout: Duration,
        level: &str,
        stderr: Stdio,
    ) -> Result<(Process, T), String> {
        let mut child = Command::new(program)
            .args(args)
            .env("VMS_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut process = Process { child };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(timeout) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(_) => {
                let status = process
                    .child
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "{} exited before it was ready ({status})",
                    program.display()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "{} not ready within {timeout:?}",
                    program.display()
                ));
            }
        };
        let ready = serde_json::from_str(&line)
            .map_err(|e| format!("bad ready line {line:?} from {}: {e}", program.display()))?;
        Ok((process, ready))
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after `grace`).
    pub fn terminate(mut self, grace: Duration) -> Result<std::process::ExitStatus, String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "pid {} ignored SIGTERM for {grace:?}",
                    self.child.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A binary of this workspace, next to the test executable's `deps/` directory
/// (`deploy/test.sh` builds them all before the tests run), or in `VMS_BIN_DIR`.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("VMS_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps")
                .to_owned()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
