//! Camera conformance (`spec/camera-conformance.md`): probes an RTSP stream for a while and
//! judges it against a camera profile, rule by rule, into a report for people and for the
//! API. `vms-recorder check-camera` runs it from the command line; the recorder runs it when
//! a camera is onboarded. It speaks RTSP itself rather than through ingest's client, because
//! it must see exactly what the camera sends, not what a tolerant client recovers.

mod nal;
mod probe;
pub mod profile;
mod rtp;
mod rtsp;
mod rules;
mod sdp;

use std::fmt::Write as _;
use std::time::Duration;

use vms_core::wire::{
    CONFORMANCE_REPORT_VERSION, ConformanceReport, ConformanceRule, ConformanceStream,
};
use vms_core::{Error, bail};

pub use probe::Target;
pub use profile::Role;
pub use rules::RULES;

use crate::cameras::CameraClass;
use crate::clock::Clocks;

/// The probe lasts this long unless told otherwise, and within these bounds.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
pub const MIN_DURATION: Duration = Duration::from_secs(10);
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Checks a probe duration against the allowed range.
pub fn check_duration(d: Duration) -> Result<Duration, Error> {
    if !(MIN_DURATION..=MAX_DURATION).contains(&d) {
        bail!(
            InvalidArgument,
            "duration: {} s is outside {}..={} s",
            d.as_secs(),
            MIN_DURATION.as_secs(),
            MAX_DURATION.as_secs()
        );
    }
    Ok(d)
}

/// Probes `target` and judges it against the profile of `class` for a stream of `role`.
pub async fn check(
    target: &Target,
    class: CameraClass,
    role: Role,
    clocks: &dyn Clocks,
) -> ConformanceReport {
    let started_at = clocks.realtime();
    let observations = probe::run(target, clocks).await;
    let requirements = profile::requirements(class, role);
    let measured = rules::measure(&observations);
    let verdicts = rules::evaluate(&observations, &requirements, &measured);
    let sps = observations.sps.as_ref().and_then(|s| s.as_ref().ok());
    let video = observations.video.as_ref().ok();
    let stream = ConformanceStream {
        codec: video.map(|v| v.encoding.to_ascii_lowercase()),
        profile: sps
            .zip(video.and_then(|v| v.codec))
            .map(|(s, c)| s.profile_name(c)),
        width: sps.map(|s| s.width),
        height: sps.map(|s| s.height),
        declared_fps: measured.declared_fps.map(round2),
        measured_fps: measured.measured_fps.map(round2),
        keyframe_interval_ms: measured.longest_keyframe_interval_ms,
        bitrate_kbps: measured.bitrate_kbps,
        frames: observations.frames.len() as u64,
        session_timeout_secs: observations
            .setup
            .as_ref()
            .ok()
            .and_then(|s| s.timeout_secs),
        camera_clock_offset_ms: measured.clock_offset_ms,
    };
    let failed = verdicts
        .iter()
        .any(|(_, s)| matches!(s, rules::Status::Fail(_)));
    ConformanceReport {
        version: CONFORMANCE_REPORT_VERSION,
        url: target.url.to_string(),
        profile: class.to_string(),
        role: role.to_string(),
        started_at: started_at.to_rfc3339(),
        duration_ms: observations.duration.as_millis() as u64,
        verdict: if failed { "fail" } else { "pass" }.to_owned(),
        stream,
        rules: verdicts
            .into_iter()
            .map(|(id, status)| ConformanceRule {
                id: id.to_owned(),
                status: status.name().to_owned(),
                message: status.message().to_owned(),
            })
            .collect(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The report for people: a heading, one line per rule, and the verdict.
pub fn human(report: &ConformanceReport) -> String {
    let mut out = String::new();
    let s = &report.stream;
    let size = match (s.width, s.height) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "size unknown".into(),
    };
    let fps = s
        .measured_fps
        .map_or_else(|| "fps unknown".into(), |f| format!("{f} fps"));
    let kbps = s
        .bitrate_kbps
        .map_or_else(|| "bitrate unknown".into(), |b| format!("{b} kbit/s"));
    let _ = writeln!(
        out,
        "Camera conformance v{}: {} (profile {}, {} stream), {:.1} s probed from {}",
        report.version,
        report.url,
        report.profile,
        report.role,
        report.duration_ms as f64 / 1000.0,
        report.started_at
    );
    let _ = writeln!(
        out,
        "  {} {} {size}, {fps}, {kbps}, {} frames",
        s.codec.as_deref().unwrap_or("codec unknown"),
        s.profile.as_deref().unwrap_or(""),
        s.frames
    );
    for rule in &report.rules {
        let mark = match rule.status.as_str() {
            "pass" => "PASS",
            "fail" => "FAIL",
            _ => "----",
        };
        let _ = writeln!(out, "  {mark} {:<15} {}", rule.id, rule.message);
    }
    let failed = report.rules.iter().filter(|r| r.status == "fail").count();
    let _ = writeln!(
        out,
        "{}: {} of {} rules failed",
        if failed == 0 {
            "CONFORMING"
        } else {
            "NOT CONFORMING"
        },
        failed,
        report.rules.len()
    );
    out
}
