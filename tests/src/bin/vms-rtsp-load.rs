//! `vms-rtsp-load`: plays many RTSP streams at once with retina and reports, for a measured
//! window, the frames each stream delivered, the frames missing from its RTP timeline, and the
//! CPU time another process (the server under test) spent meanwhile. Prints one JSON object.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tokio::sync::Notify;
use vms_tests::camsim::control::CameraList;
use vms_tests::rtsp_client::{self, Event};

/// Load generator for RTSP servers.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A simulator control API (`http://127.0.0.1:PORT`): play every stream it lists.
    #[arg(long)]
    camsim: Option<String>,
    /// RTSP URLs to play (in addition to those of --camsim).
    urls: Vec<String>,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Frame rate the streams are expected to have (for the missing-frame count).
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Process whose CPU time is measured over the window.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Default, Clone, Serialize)]
struct StreamStats {
    url: String,
    frames: u64,
    missing_frames: u64,
    lost_packets: u64,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    streams: usize,
    window_secs: f64,
    expected_frames_per_stream: u64,
    frames_per_stream_min: u64,
    frames_per_stream_median: u64,
    missing_frames_total: u64,
    lost_packets_total: u64,
    failed_streams: usize,
    measured_pid_cpu_secs: Option<f64>,
    measured_pid_cpu_pct_of_core_per_stream: Option<f64>,
    measured_pid_rss_kib: Option<u64>,
    per_stream: Vec<StreamStats>,
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz: f64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()?
            .stdout,
    )?
    .trim()
    .parse()?;
    Ok(ticks as f64 / hz)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut urls = args.urls.clone();
    if let Some(control) = &args.camsim {
        let list: CameraList = reqwest::get(format!("{control}/api/v1/cameras"))
            .await?
            .error_for_status()?
            .json()
            .await?;
        urls.extend(
            list.cameras
                .into_iter()
                .flat_map(|c| c.streams)
                .map(|s| s.url),
        );
    }
    if urls.is_empty() {
        bail!("no streams to play");
    }
    let period_90k = 90_000 / args.fps;
    let started = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(Notify::new());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let n = urls.len();
    let mut tasks = Vec::new();
    for url in urls {
        let (started, all_started, measuring, stop) = (
            started.clone(),
            all_started.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stats = StreamStats {
                url: url.clone(),
                ..Default::default()
            };
            let mut first = true;
            let mut last_ts: Option<u32> = None;
            let arrived = |started: &AtomicUsize| {
                if started.fetch_add(1, Ordering::AcqRel) + 1 == n {
                    all_started.notify_one();
                }
            };
            let result = rtsp_client::play(&url, |event| {
                if stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                let Event::Video(frame) = event else {
                    return ControlFlow::Continue(());
                };
                if first {
                    first = false;
                    arrived(&started);
                }
                if measuring.load(Ordering::Relaxed) {
                    stats.frames += 1;
                    stats.lost_packets += u64::from(frame.loss);
                    if let Some(prev) = last_ts {
                        let delta = frame.rtp_timestamp.wrapping_sub(prev);
                        stats.missing_frames += u64::from((delta / period_90k).saturating_sub(1));
                    }
                    last_ts = Some(frame.rtp_timestamp);
                }
                ControlFlow::Continue(())
            })
            .await;
            if first {
                arrived(&started); // failed before its first frame: do not wait for it
            }
            stats.error = result.err();
            stats
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), all_started.notified())
        .await
        .context("not every stream delivered a frame within 120 s")?;
    let cpu0 = args.pid.map(cpu_secs).transpose()?;
    let t0 = std::time::Instant::now();
    measuring.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Release);
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = args.pid.map(cpu_secs).transpose()?;
    let rss = args.pid.and_then(rss_kib);
    stop.store(true, Ordering::Release);
    let mut per_stream = Vec::new();
    for t in tasks {
        per_stream.push(t.await?);
    }
    let mut frames: Vec<u64> = per_stream.iter().map(|s| s.frames).collect();
    frames.sort_unstable();
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    let report = Report {
        streams: n,
        window_secs: window,
        expected_frames_per_stream: (window * f64::from(args.fps)).round() as u64,
        frames_per_stream_min: frames[0],
        frames_per_stream_median: frames[frames.len() / 2],
        missing_frames_total: per_stream.iter().map(|s| s.missing_frames).sum(),
        lost_packets_total: per_stream.iter().map(|s| s.lost_packets).sum(),
        failed_streams: per_stream
            .iter()
            .filter(|s| s.error.as_deref().is_some_and(|e| !e.is_empty()))
            .count(),
        measured_pid_cpu_secs: cpu,
        measured_pid_cpu_pct_of_core_per_stream: cpu.map(|c| 100.0 * c / window / n as f64),
        measured_pid_rss_kib: rss,
        per_stream,
    };
    let out = serde_json::to_string_pretty(&report)?;
    std::io::Write::write_all(&mut std::io::stdout().lock(), format!("{out}\n").as_bytes())?;
    Ok(())
}
