//! The rules of camera conformance (`spec/camera-conformance.md`), judged from what a probe
//! observed. Evaluation is a pure function of the observations and the profile, so every
//! rule's edge is unit-tested without a camera. Each requirement of the standard belongs to
//! exactly one rule, so that one fault fails one rule.

use std::time::Duration;

use super::nal::{Codec, SpsInfo};
use super::profile::Requirements;
use super::rtp::{Frame, PacketStats};

/// The methods a camera's `Public` header must list.
pub const REQUIRED_METHODS: [&str; 5] = ["DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER"];
/// The first keyframe and the first sender report must come this soon after PLAY.
const FIRST_KEYFRAME_WITHIN: Duration = Duration::from_secs(2);
const FIRST_SENDER_REPORT_WITHIN: Duration = Duration::from_secs(5);
/// Sender reports at least this often (RFC 3550 randomises a 5 s interval up to ~6.2 s).
const SENDER_REPORT_EVERY: Duration = Duration::from_secs(10);
/// A sender report's clock within this much of the checker's.
const MAX_CLOCK_OFFSET_MS: i64 = 1000;
/// Between two frames, RTP time and arrival time advance alike within this much.
const MAX_TIMESTAMP_JUMP_MS: f64 = 1000.0;
/// A new session after TEARDOWN delivers media this soon.
pub const RECONNECT_WITHIN: Duration = Duration::from_secs(2);

/// How authentication went.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthOutcome {
    /// The camera answered an unauthenticated DESCRIBE with 200.
    NotRequired,
    /// It asked for credentials and the checker had none.
    NoCredentials,
    Challenged {
        digest: bool,
        basic: bool,
        /// The status a wrong password got, or what went wrong.
        wrong_password: Result<u16, String>,
        /// The status the right credentials got.
        right_password: Result<u16, String>,
    },
    /// Anything else: the status or error of the unauthenticated DESCRIBE.
    Unexpected(String),
}

/// Everything a probe saw, in the order it happened.
#[derive(Clone, Debug)]
pub struct Observations {
    /// Could not connect at all.
    pub connect: Result<(), String>,
    /// OPTIONS: the `Public` methods, or the status/error.
    pub options: Result<Vec<String>, String>,
    pub auth: AuthOutcome,
    /// The SDP's video section: its encoding, or what went wrong.
    pub video: Result<VideoInfo, String>,
    /// SETUP over interleaved TCP: session timeout and SSRC, or the status/error.
    pub setup: Result<SetupInfo, String>,
    pub play: Result<(), String>,
    pub frames: Vec<Frame>,
    pub stats: PacketStats,
    /// Interleaved frames on channels other than the SETUP's.
    pub foreign_channel_frames: u64,
    pub in_band_parameter_sets: Vec<Vec<u8>>,
    /// The SPS the stream uses, parsed (in-band if seen, else the SDP's).
    pub sps: Option<Result<SpsInfo, String>>,
    /// Frame rate declared by an H.265 VPS.
    pub vps_fps: Option<f64>,
    /// Sender reports: arrival since PLAY, and the camera's clock minus the checker's (ms).
    pub sender_reports: Vec<(Duration, i64)>,
    pub checker_clock_synced: bool,
    /// Keep-alives: when, which method, and the status or error.
    pub keepalives: Vec<(Duration, &'static str, Result<u16, String>)>,
    /// The media ended before the probe did: when and why.
    pub ended_early: Option<(Duration, String)>,
    /// How long media was received for.
    pub duration: Duration,
    pub teardown: Option<Result<u16, String>>,
    /// The session after TEARDOWN: time from its PLAY answer to its first RTP packet.
    pub reconnect: Option<Result<Duration, String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub encoding: String,
    pub clock_rate: u32,
    pub codec: Option<Codec>,
    pub framerate: Option<f64>,
    pub parameter_sets: Vec<Vec<u8>>,
    pub bad_parameter_sets: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SetupInfo {
    /// `None` when the Session header gave none (then 60 s applies).
    pub timeout_secs: Option<u64>,
    pub ssrc: Option<u32>,
}

impl Observations {
    /// Observations of a probe that has not got anywhere yet.
    pub fn new() -> Observations {
        fn not_reached<T>() -> Result<T, String> {
            Err("not reached".to_owned())
        }
        Observations {
            connect: Ok(()),
            options: not_reached(),
            auth: AuthOutcome::Unexpected("not reached".into()),
            video: not_reached(),
            setup: not_reached(),
            play: not_reached(),
            frames: Vec::new(),
            stats: PacketStats::default(),
            foreign_channel_frames: 0,
            in_band_parameter_sets: Vec::new(),
            sps: None,
            vps_fps: None,
            sender_reports: Vec::new(),
            checker_clock_synced: false,
            keepalives: Vec::new(),
            ended_early: None,
            duration: Duration::ZERO,
            teardown: None,
            reconnect: None,
        }
    }
}

impl Default for Observations {
    fn default() -> Self {
        Observations::new()
    }
}

/// A rule's verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Pass(String),
    Fail(String),
    NotChecked(String),
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pass(_) => "pass",
            Status::Fail(_) => "fail",
            Status::NotChecked(_) => "not_checked",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Status::Pass(m) | Status::Fail(m) | Status::NotChecked(m) => m,
        }
    }
}

/// Passes with `ok` when `problems` is empty, else fails listing them.
fn verdict(problems: Vec<String>, ok: String) -> Status {
    if problems.is_empty() {
        Status::Pass(ok)
    } else {
        Status::Fail(problems.join("; "))
    }
}

/// The measurements the rules share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// Median RTP step between consecutive frames, in 90 kHz units.
    pub frame_step_90k: Option<f64>,
    pub measured_fps: Option<f64>,
    pub declared_fps: Option<f64>,
    pub longest_keyframe_interval_ms: Option<u64>,
    /// An arrival gap this long or longer is a stall.
    pub stall_ms: f64,
    pub bitrate_kbps: Option<u64>,
    pub clock_offset_ms: Option<i64>,
}

/// The shared measurements of `o`.
pub fn measure(o: &Observations) -> Measured {
    let mut steps: Vec<i64> = o
        .frames
        .windows(2)
        .map(|w| w[1].timestamp - w[0].timestamp)
        .filter(|&s| s > 0)
        .collect();
    steps.sort_unstable();
    let frame_step_90k = steps.get(steps.len() / 2).map(|&s| s as f64);
    let measured_fps = frame_step_90k.map(|s| 90_000.0 / s);
    let declared_fps = o
        .sps
        .as_ref()
        .and_then(|s| s.as_ref().ok())
        .and_then(|s| s.fps)
        .or(o.vps_fps)
        .or(o.video.as_ref().ok().and_then(|v| v.framerate));
    // A delivery stall is judged by `frame_rate`; a keyframe interval it interrupts (frames
    // the camera never sent) says nothing about the encoder and is left out.
    let nominal_ms = 1000.0 / declared_fps.or(measured_fps).unwrap_or(25.0);
    let stall_ms = (3.0 * nominal_ms).max(100.0);
    let stalled = |a: usize, b: usize| {
        o.frames[a..=b]
            .windows(2)
            .any(|w| w[1].arrival.saturating_sub(w[0].arrival).as_secs_f64() * 1000.0 >= stall_ms)
    };
    let keyframes: Vec<usize> = o
        .frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.keyframe.then_some(i))
        .collect();
    let longest_keyframe_interval_ms = frame_step_90k.and_then(|step| {
        keyframes
            .windows(2)
            .filter(|w| !stalled(w[0], w[1]))
            .map(|w| ((w[1] - w[0]) as f64 * step / 90.0).round() as u64)
            .max()
    });
    let bitrate_kbps = frame_step_90k.filter(|_| !o.frames.is_empty()).map(|step| {
        let bytes: usize = o.frames.iter().map(|f| f.bytes).sum();
        let secs = o.frames.len() as f64 * step / 90_000.0;
        (bytes as f64 * 8.0 / 1000.0 / secs).round() as u64
    });
    let mut offsets: Vec<i64> = o.sender_reports.iter().map(|&(_, off)| off).collect();
    offsets.sort_unstable();
    Measured {
        frame_step_90k,
        measured_fps,
        declared_fps,
        longest_keyframe_interval_ms,
        stall_ms,
        bitrate_kbps,
        clock_offset_ms: offsets.get(offsets.len() / 2).copied(),
    }
}

/// The verdict of every rule, in the standard's order, with the rule ids.
pub fn evaluate(o: &Observations, req: &Requirements, m: &Measured) -> Vec<(&'static str, Status)> {
    let auth = auth(o);
    // Nothing past authentication could be seen: the rest is not checked.
    if let Err(e) = &o.connect {
        let mut out = vec![("rtsp", Status::Fail(format!("cannot connect: {e}")))];
        out.extend(rest_not_checked(&out, "the camera could not be reached"));
        return out;
    }
    if matches!(o.auth, AuthOutcome::NoCredentials) {
        let mut out = vec![
            ("rtsp", Status::NotChecked("credentials needed".into())),
            ("auth", auth),
        ];
        out.extend(rest_not_checked(
            &out,
            "the checker was given no credentials",
        ));
        return out;
    }
    let media = !o.frames.is_empty();
    let mut out = vec![("rtsp", rtsp(o)), ("auth", auth)];
    if !media {
        out.extend(rest_not_checked(&out, "no media was received"));
        return out;
    }
    out.push(("codec", codec(o)));
    out.push(("resolution", resolution(o, req)));
    out.push(("frame_rate", frame_rate(o, req, m)));
    out.push(("keyframes", keyframes(o, req, m)));
    out.push(("parameter_sets", parameter_sets(o)));
    out.push(("bitrate", bitrate(req, m)));
    out.push(("rtp", rtp(o)));
    out.push(("clock", clock(o, m)));
    out.push(("session", session(o)));
    out
}

/// The rule ids, in order.
pub const RULES: [&str; 11] = [
    "rtsp",
    "auth",
    "codec",
    "resolution",
    "frame_rate",
    "keyframes",
    "parameter_sets",
    "bitrate",
    "rtp",
    "clock",
    "session",
];

fn rest_not_checked(done: &[(&'static str, Status)], why: &str) -> Vec<(&'static str, Status)> {
    RULES
        .iter()
        .filter(|id| !done.iter().any(|(d, _)| d == *id))
        .map(|&id| (id, Status::NotChecked(why.to_owned())))
        .collect()
}

fn rtsp(o: &Observations) -> Status {
    let mut problems = Vec::new();
    match &o.options {
        Ok(public) => {
            let missing: Vec<&str> = REQUIRED_METHODS
                .iter()
                .copied()
                .filter(|m| !public.iter().any(|p| p.eq_ignore_ascii_case(m)))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "OPTIONS: Public does not list {}",
                    missing.join(", ")
                ));
            }
        }
        Err(e) => problems.push(format!("OPTIONS: {e}")),
    }
    if let Err(e) = &o.video {
        problems.push(format!("DESCRIBE: {e}"));
    }
    if let Err(e) = &o.setup {
        problems.push(format!("SETUP over interleaved TCP: {e}"));
    }
    if let (Ok(_), Err(e)) = (&o.setup, &o.play) {
        problems.push(format!("PLAY: {e}"));
    } else if o.play.is_ok() && o.frames.is_empty() {
        problems.push("no RTP arrived on the interleaved channel SETUP named".into());
    }
    verdict(
        problems,
        "OPTIONS, DESCRIBE, SETUP (RTP/AVP/TCP interleaved) and PLAY answered 200".into(),
    )
}

fn auth(o: &Observations) -> Status {
    match &o.auth {
        AuthOutcome::NotRequired => Status::Fail(
            "an unauthenticated DESCRIBE was answered 200: authentication is not enforced".into(),
        ),
        AuthOutcome::NoCredentials => {
            Status::Fail("the camera asks for credentials and the checker was given none".into())
        }
        AuthOutcome::Unexpected(e) => Status::Fail(format!("unauthenticated DESCRIBE: {e}")),
        AuthOutcome::Challenged {
            digest,
            basic,
            wrong_password,
            right_password,
        } => {
            let mut problems = Vec::new();
            if !digest {
                problems.push("the 401 offers no Digest challenge".to_owned());
            }
            match wrong_password {
                Ok(401) => {}
                Ok(s) => problems.push(format!("a wrong password was answered {s}, not 401")),
                Err(e) => problems.push(format!("a wrong password: {e}")),
            }
            match right_password {
                Ok(200) => {}
                Ok(s) => problems.push(format!("the right credentials were answered {s}")),
                Err(e) => problems.push(format!("the right credentials: {e}")),
            }
            let basic_note = if *basic {
                " (it also offers Basic, which it SHOULD NOT)"
            } else {
                ""
            };
            verdict(
                problems,
                format!(
                    "401 with a Digest challenge without credentials and with a wrong password{basic_note}"
                ),
            )
        }
    }
}

fn the_sps(o: &Observations) -> Result<&SpsInfo, Status> {
    match &o.sps {
        Some(Ok(sps)) => Ok(sps),
        Some(Err(e)) => Err(Status::Fail(format!("the SPS cannot be parsed: {e}"))),
        None => Err(Status::NotChecked(
            "no SPS was seen, in the SDP or in-band".into(),
        )),
    }
}

fn codec(o: &Observations) -> Status {
    let video = match &o.video {
        Ok(v) => v,
        Err(_) => return Status::NotChecked("no SDP".into()),
    };
    let Some(codec) = video.codec else {
        return Status::Fail(format!(
            "the encoding {:?} is not H264 or H265",
            video.encoding
        ));
    };
    let mut problems = Vec::new();
    if video.clock_rate != 90_000 {
        problems.push(format!(
            "the RTP clock rate is {}, not 90000",
            video.clock_rate
        ));
    }
    let sps = match the_sps(o) {
        Ok(sps) => sps,
        Err(status) if problems.is_empty() => return status,
        Err(status) => {
            problems.push(status.message().to_owned());
            return Status::Fail(problems.join("; "));
        }
    };
    let name = sps.profile_name(codec);
    let profile_ok = match codec {
        Codec::H264 => matches!(sps.profile_idc, 77 | 100),
        Codec::H265 => sps.profile_idc == 1 || sps.compatibility & (1 << 30) != 0,
    };
    if !profile_ok {
        let allowed = match codec {
            Codec::H264 => "Main or High",
            Codec::H265 => "Main",
        };
        problems.push(format!("profile {name}, not {allowed}"));
    }
    if sps.chroma_format_idc != 1 {
        problems.push(format!(
            "chroma_format_idc {}, not 4:2:0",
            sps.chroma_format_idc
        ));
    }
    if sps.bit_depth_luma != 8 || sps.bit_depth_chroma != 8 {
        problems.push(format!(
            "bit depth {}/{}, not 8",
            sps.bit_depth_luma, sps.bit_depth_chroma
        ));
    }
    let codec_name = match codec {
        Codec::H264 => "H.264",
        Codec::H265 => "H.265",
    };
    verdict(problems, format!("{codec_name} {name}, 8-bit 4:2:0"))
}

fn resolution(o: &Observations, req: &Requirements) -> Status {
    let sps = match the_sps(o) {
        Ok(sps) => sps,
        Err(Status::Fail(_)) => return Status::NotChecked("the SPS cannot be parsed".into()),
        Err(status) => return status,
    };
    let size = format!("{}x{}", sps.width, sps.height);
    if sps.width < req.min_width || sps.height < req.min_height {
        Status::Fail(format!(
            "{size} is below the minimum {}x{}",
            req.min_width, req.min_height
        ))
    } else {
        Status::Pass(format!(
            "{size}, at least {}x{}",
            req.min_width, req.min_height
        ))
    }
}

fn frame_rate(o: &Observations, req: &Requirements, m: &Measured) -> Status {
    let Some(measured) = m.measured_fps else {
        return Status::NotChecked("fewer than two frames".into());
    };
    let mut problems = Vec::new();
    if measured < req.min_fps * 0.995 {
        problems.push(format!(
            "{measured:.2} fps is below the minimum {}",
            req.min_fps
        ));
    }
    if let Some(declared) = m.declared_fps
        && (measured - declared).abs() > declared * 0.10
    {
        problems.push(format!(
            "{measured:.2} fps measured is not within 10 % of the {declared:.2} declared"
        ));
    }
    let allowed_ms = m.stall_ms;
    let (at, gap_ms) = o
        .frames
        .windows(2)
        .map(|w| {
            (
                w[1].arrival,
                w[1].arrival.saturating_sub(w[0].arrival).as_secs_f64() * 1000.0,
            )
        })
        .fold((Duration::ZERO, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    if gap_ms >= allowed_ms {
        problems.push(format!(
            "frames stopped for {gap_ms:.0} ms (at {:.1} s), more than {allowed_ms:.0} ms",
            at.as_secs_f64()
        ));
    }
    let declared = m.declared_fps.map_or_else(
        || "none declared".to_owned(),
        |d| format!("{d:.2} declared"),
    );
    verdict(
        problems,
        format!("{measured:.2} fps measured ({declared}), largest gap {gap_ms:.0} ms"),
    )
}

fn keyframes(o: &Observations, req: &Requirements, m: &Measured) -> Status {
    let Some(first) = o.frames.iter().find(|f| f.keyframe) else {
        return Status::Fail("no keyframe arrived".into());
    };
    let mut problems = Vec::new();
    if first.arrival > FIRST_KEYFRAME_WITHIN {
        problems.push(format!(
            "the first keyframe came {:.2} s after PLAY, more than 2 s",
            first.arrival.as_secs_f64()
        ));
    }
    // One frame of tolerance: an interval of exactly the maximum passes.
    let slack_ms = m.frame_step_90k.map_or(0.0, |s| s / 90.0 / 2.0) as u64;
    match m.longest_keyframe_interval_ms {
        Some(longest) if longest > req.max_keyframe_interval_ms + slack_ms => {
            problems.push(format!(
                "a keyframe interval of {longest} ms, more than {} ms",
                req.max_keyframe_interval_ms
            ))
        }
        Some(_) => {}
        None => {
            // One keyframe only: the stretch after it must already be short enough.
            let after = o.frames.iter().skip_while(|f| !f.keyframe).count();
            let span_ms = m.frame_step_90k.map_or(0.0, |s| after as f64 * s / 90.0) as u64;
            if span_ms > req.max_keyframe_interval_ms + slack_ms {
                problems.push(format!(
                    "only one keyframe in {span_ms} ms, more than {} ms",
                    req.max_keyframe_interval_ms
                ));
            }
        }
    }
    let longest = m.longest_keyframe_interval_ms.map_or_else(
        || "one keyframe".into(),
        |l| format!("longest interval {l} ms"),
    );
    verdict(
        problems,
        format!(
            "{longest}, at most {} ms; first after {:.2} s",
            req.max_keyframe_interval_ms,
            first.arrival.as_secs_f64()
        ),
    )
}

fn parameter_sets(o: &Observations) -> Status {
    let Ok(video) = &o.video else {
        return Status::NotChecked("no SDP".into());
    };
    let Some(codec) = video.codec else {
        return Status::NotChecked("not H.264 or H.265".into());
    };
    use super::nal::NalKind;
    let kinds = |sets: &[Vec<u8>]| -> (bool, bool, bool) {
        let has = |k| sets.iter().any(|s| codec.kind(s) == Some(k));
        (has(NalKind::Vps), has(NalKind::Sps), has(NalKind::Pps))
    };
    let complete =
        |(vps, sps, pps): (bool, bool, bool)| sps && pps && (vps || codec == Codec::H264);
    let in_sdp = complete(kinds(&video.parameter_sets));
    let keyframes: Vec<&Frame> = o.frames.iter().filter(|f| f.keyframe).collect();
    let bare = keyframes
        .iter()
        .filter(|f| !complete((f.has_vps, f.has_sps, f.has_pps)))
        .count();
    let in_band = !keyframes.is_empty() && bare == 0;
    let mut problems = Vec::new();
    if video.bad_parameter_sets > 0 {
        problems.push(format!(
            "{} SDP parameter sets are not valid base64",
            video.bad_parameter_sets
        ));
    }
    if !in_sdp && !in_band {
        problems.push(if keyframes.is_empty() {
            "the SDP carries no complete parameter sets and no keyframe arrived".to_owned()
        } else {
            format!(
                "the SDP carries no complete parameter sets and {bare} of {} keyframes came without them in-band",
                keyframes.len()
            )
        });
    }
    if in_sdp {
        let differing = o
            .in_band_parameter_sets
            .iter()
            .filter(|s| !video.parameter_sets.contains(s))
            .count();
        if differing > 0 {
            problems.push(format!(
                "{differing} in-band parameter sets differ from the SDP's"
            ));
        }
    }
    let place = match (in_sdp, in_band) {
        (true, true) => "in the SDP and before every keyframe, identical",
        (true, false) => "in the SDP",
        _ => "before every keyframe",
    };
    verdict(problems, format!("parameter sets {place}"))
}

fn bitrate(req: &Requirements, m: &Measured) -> Status {
    let Some(kbps) = m.bitrate_kbps else {
        return Status::NotChecked("fewer than two frames".into());
    };
    let band = format!("{}–{} kbit/s", req.min_kbps, req.max_kbps);
    if (req.min_kbps..=req.max_kbps).contains(&kbps) {
        Status::Pass(format!("{kbps} kbit/s, within {band}"))
    } else {
        Status::Fail(format!("{kbps} kbit/s is outside {band}"))
    }
}

fn rtp(o: &Observations) -> Status {
    let s = &o.stats;
    let mut problems = Vec::new();
    // Counters that fail the rule when any is above zero, with what they count.
    let counted = [
        (s.lost, "packets missing from the sequence"),
        (s.reordered, "packets out of order or repeated"),
        (s.unmarked_frames, "frames ended without the marker bit"),
        (s.forbidden_bit, "NAL units with the forbidden bit set"),
        (s.malformed, "malformed packets"),
        (
            s.wrong_payload_type,
            "packets of another payload type than the SDP's",
        ),
        (
            s.unsupported,
            "packets use STAP-B, MTAP, FU-B or PACI (packetization-mode 0 or 1 is required)",
        ),
    ];
    for (n, what) in counted {
        if n > 0 {
            problems.push(format!("{n} {what}"));
        }
    }
    if s.ssrcs.len() > 1 {
        problems.push(format!("{} SSRCs on one track", s.ssrcs.len()));
    }
    if let (
        Ok(SetupInfo {
            ssrc: Some(named), ..
        }),
        Some(first),
    ) = (&o.setup, s.ssrcs.first())
        && named != first
    {
        problems.push(format!(
            "SETUP named SSRC {named:08x}, the packets carry {first:08x}"
        ));
    }
    if s.backwards > 0 {
        problems.push(format!(
            "the timestamp went backwards {} times (by up to {} ms)",
            s.backwards,
            s.largest_backward_90k / 90
        ));
    }
    let jump = o
        .frames
        .windows(2)
        .map(|w| {
            let rtp_ms = (w[1].timestamp - w[0].timestamp) as f64 / 90.0;
            let arrival_ms = (w[1].arrival.as_secs_f64() - w[0].arrival.as_secs_f64()) * 1000.0;
            (w[1].arrival, rtp_ms - arrival_ms)
        })
        .fold((Duration::ZERO, 0.0f64), |a, b| {
            if b.1.abs() > a.1.abs() { b } else { a }
        });
    if jump.1.abs() > MAX_TIMESTAMP_JUMP_MS {
        problems.push(format!(
            "the timestamp jumped {:+.0} ms against arrival time at {:.1} s",
            jump.1,
            jump.0.as_secs_f64()
        ));
    }
    if s.excess_frames > 0 {
        problems.push(format!(
            "{} frames beyond {} (120 fps for 600 s): not a video stream",
            s.excess_frames,
            super::rtp::MAX_FRAMES
        ));
    }
    verdict(
        problems,
        format!(
            "{} packets: contiguous, one SSRC, monotonic timestamps, marker bits at frame ends",
            s.packets
        ),
    )
}

fn clock(o: &Observations, m: &Measured) -> Status {
    let synced = if o.checker_clock_synced {
        "the checker's clock is synchronised"
    } else {
        "the checker's clock is NOT synchronised, so offsets are relative to it"
    };
    let Some(&(first, _)) = o.sender_reports.first() else {
        return Status::Fail(format!(
            "no RTCP sender report in {:.1} s",
            o.duration.as_secs_f64()
        ));
    };
    let mut problems = Vec::new();
    if first > FIRST_SENDER_REPORT_WITHIN {
        problems.push(format!(
            "the first sender report came {:.1} s after PLAY, more than 5 s",
            first.as_secs_f64()
        ));
    }
    let times: Vec<Duration> = o
        .sender_reports
        .iter()
        .map(|&(t, _)| t)
        .chain([o.duration])
        .collect();
    if let Some(gap) = times.windows(2).map(|w| w[1].saturating_sub(w[0])).max()
        && gap > SENDER_REPORT_EVERY
    {
        problems.push(format!(
            "{:.1} s without a sender report, more than 10 s",
            gap.as_secs_f64()
        ));
    }
    if let Some(&(_, worst)) = o
        .sender_reports
        .iter()
        .max_by_key(|(_, off)| off.unsigned_abs())
        && worst.abs() > MAX_CLOCK_OFFSET_MS
    {
        problems.push(format!(
            "a sender report's clock is {worst:+} ms off the checker's, more than ±1000 ms"
        ));
    }
    let offset = m.clock_offset_ms.unwrap_or_default();
    if problems.is_empty() {
        Status::Pass(format!(
            "{} sender reports, camera clock {offset:+} ms; {synced}",
            o.sender_reports.len()
        ))
    } else {
        Status::Fail(format!("{}; {synced}", problems.join("; ")))
    }
}

fn session(o: &Observations) -> Status {
    let mut problems = Vec::new();
    for (at, method, result) in &o.keepalives {
        match result {
            Ok(200) => {}
            Ok(s) => problems.push(format!(
                "the {method} keep-alive at {:.1} s was answered {s}",
                at.as_secs_f64()
            )),
            Err(e) => problems.push(format!(
                "the {method} keep-alive at {:.1} s: {e}",
                at.as_secs_f64()
            )),
        }
    }
    if let Some((at, why)) = &o.ended_early {
        problems.push(format!(
            "the session ended after {:.1} s: {why}",
            at.as_secs_f64()
        ));
    }
    match &o.teardown {
        Some(Ok(200)) | None => {}
        Some(Ok(s)) => problems.push(format!("TEARDOWN was answered {s}")),
        Some(Err(e)) => problems.push(format!("TEARDOWN: {e}")),
    }
    match &o.reconnect {
        Some(Ok(t)) if *t <= RECONNECT_WITHIN => {}
        Some(Ok(t)) => problems.push(format!(
            "a new session after TEARDOWN took {:.2} s to deliver media, more than 2 s",
            t.as_secs_f64()
        )),
        Some(Err(e)) => problems.push(format!("a new session after TEARDOWN: {e}")),
        None if o.ended_early.is_none() => {
            problems.push("no new session was tried after TEARDOWN".into())
        }
        None => {}
    }
    let timeout = match &o.setup {
        Ok(SetupInfo {
            timeout_secs: Some(t),
            ..
        }) => format!("timeout {t} s"),
        _ => "timeout 60 s (not stated)".into(),
    };
    verdict(
        problems,
        format!(
            "{timeout}; {} keep-alives answered; kept for {:.1} s; a new session after TEARDOWN played",
            o.keepalives.len(),
            o.duration.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests;
