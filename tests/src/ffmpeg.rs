//! Checking media with the FFmpeg command-line tools, as a player would see it.

use std::path::Path;
use std::process::Command;

/// Runs `ffprobe -v error ARGS PATH` and returns what it printed. Any error output fails the
/// calling test: a clean probe is part of every check.
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "ffprobe {}: {errors}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
