//! End-to-end tests of the camera simulator: a real `vms-camsim` process on 127.0.0.1, checked
//! with clients we did not write (ffprobe, retina) and a raw RTSP request.

mod raw;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use vms_core::time::ntp_to_unix_us;
use vms_tests::camsim::config::{ParameterSets, Profile, Transport};
use vms_tests::camsim::remote::RemoteSim;
use vms_tests::camsim::stream::Fault;
use vms_tests::rtsp_client::{Event, Player, VideoFrame};

/// The longest a test waits for the next frame before it calls the stream dead.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vms-camsim"))
}

fn sim(config: &str) -> RemoteSim {
    RemoteSim::start(binary(), config).expect("simulator starts")
}

/// `ffprobe -show_streams` of an RTSP URL over TCP, bounded in time.
fn ffprobe(url: &str) -> Result<Value, String> {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-rtsp_transport", "tcp"])
        .args(["-show_streams", "-of", "json", url])
        .output()
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn stream_of<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

#[test]
fn ffprobe_reads_configured_codec_resolution_rate_and_audio() {
    let sim = sim(r#"
        [[camera]]
        name = "avc"
        [[camera.streams]]
        name = "main"
        codec = "h264"
        width = 640
        height = 360
        fps = 15
        audio = true
        [[camera]]
        name = "hevc"
        [[camera.streams]]
        name = "sub"
        codec = "h265"
        width = 480
        height = 270
        fps = 10
        [[camera]]
        name = "clock"
        [[camera.streams]]
        name = "main"
        mode = "live"
        codec = "h264"
        width = 320
        height = 240
        fps = 12
    "#);
    let cases = [
        ("avc", "main", "h264", 640, 360, "15/1"),
        ("hevc", "sub", "hevc", 480, 270, "10/1"),
        ("clock", "main", "h264", 320, 240, "12/1"),
    ];
    for (camera, stream, codec, width, height, rate) in cases {
        let probe = ffprobe(&sim.url(camera, stream, None)).expect("ffprobe reads the stream");
        let v = stream_of(&probe, "video");
        assert_eq!(v["codec_name"], codec, "{camera}: {v}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(width), Some(height))
        );
        assert_eq!(v["r_frame_rate"], rate, "{camera}: {v}");
    }
    let probe = ffprobe(&sim.url("avc", "main", None)).unwrap();
    let a = stream_of(&probe, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
}

/// Sends one raw RTSP request and returns the response head.
fn raw_rtsp(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed mid-response: {head:?}");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn digest_auth_rejects_wrong_password_and_accepts_right_one() {
    let sim = sim(r#"
        [[camera]]
        name = "locked"
        username = "admin"
        password = "right-one"
        [[camera]]
        name = "open"
    "#);
    let url = |creds| sim.url("locked", "main", creds);
    ffprobe(&url(Some(("admin", "right-one")))).expect("right password is accepted");
    let wrong = ffprobe(&url(Some(("admin", "wrong")))).unwrap_err();
    assert!(wrong.contains("401"), "wrong password: {wrong}");
    let none = ffprobe(&url(None)).unwrap_err();
    assert!(none.contains("401"), "no credentials: {none}");
    ffprobe(&sim.url("open", "main", None)).expect("an open camera needs no credentials");

    // The challenge is Digest, never Basic: a password must not cross the wire in clear.
    let head = raw_rtsp(
        sim.ready.rtsp,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url(None)),
    );
    assert!(head.starts_with("RTSP/1.0 401"), "{head}");
    let challenges: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert!(!challenges.is_empty(), "{head}");
    assert!(challenges.iter().all(|l| l.contains("Digest")), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_keeps_timestamps_monotonic_and_even_across_the_loop() {
    // A 1 s clip at 25 fps: 90 frames cross the loop boundary three times.
    let sim = sim(r#"
        [[camera]]
        name = "loop"
        [[camera.streams]]
        fps = 25
        gop_frames = 25
        loop_secs = 1
        width = 320
        height = 180
    "#);
    let mut player = Player::start(&sim.url("loop", "main", None));
    let mut got: Vec<VideoFrame> = Vec::new();
    while got.len() < 90 {
        let (_, f) = player
            .next_video(FRAME_TIMEOUT)
            .await
            .expect("frames keep coming");
        got.push(f);
    }
    player.finish().await.expect("session was healthy");

    for pair in got.windows(2) {
        let delta = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        assert_eq!(delta, 90_000 / 25, "uneven step {pair:?}");
    }
    // Keyframes exactly every 25 frames, loop boundaries included.
    let first_key = got.iter().position(|f| f.keyframe).expect("a keyframe");
    for (i, f) in got.iter().enumerate().skip(first_key) {
        assert_eq!(f.keyframe, (i - first_key) % 25 == 0, "frame {i}");
    }

    // The simulator's record agrees with what the client received.
    let record = sim.frames("loop", "main", None).await.unwrap();
    for pair in record.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(
            pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp),
            3600
        );
        assert!(pair[1].sent_unix_us > pair[0].sent_unix_us);
    }
    let start = record
        .iter()
        .position(|r| r.rtp_timestamp == got[0].rtp_timestamp)
        .expect("the first received frame is in the record");
    for (r, f) in record[start..].iter().zip(&got) {
        assert_eq!((r.rtp_timestamp, r.keyframe), (f.rtp_timestamp, f.keyframe));
    }
}

const FAULT_CAMERAS: &str = r#"
    [[camera]]
    name = "f"
    count = 6
    [[camera.streams]]
    width = 320
    height = 180
    fps = 15
    gop_frames = 15
"#;

/// Plays a camera of [`FAULT_CAMERAS`], waits for `warmup` frames, injects `fault`, and
/// returns the player and the frames seen before the fault.
async fn play_then_fault(
    sim: &RemoteSim,
    camera: &str,
    warmup: usize,
    fault: Fault,
) -> (Player, Vec<VideoFrame>) {
    let mut player = Player::start(&sim.url(camera, "main", None));
    let mut before = Vec::new();
    while before.len() < warmup {
        let (_, f) = player
            .next_video(FRAME_TIMEOUT)
            .await
            .expect("frames before the fault");
        before.push(f);
    }
    sim.fault(camera, "main", &fault)
        .await
        .expect("fault accepted");
    (player, before)
}

async fn drop_ends_the_session(sim: &RemoteSim) {
    let (mut player, _) = play_then_fault(sim, "f-0001", 5, Fault::Drop).await;
    let mut after = 0;
    while player.next_video(FRAME_TIMEOUT).await.is_some() {
        after += 1;
        assert!(after < 30, "the session outlived the drop");
    }
    assert!(
        player.finish().await.is_err(),
        "a dropped session ends in an error"
    );
}

async fn stall_pauses_then_resumes(sim: &RemoteSim) {
    let (mut player, before) =
        play_then_fault(sim, "f-0002", 5, Fault::Stall { duration_ms: 2500 }).await;
    let mut prev = (std::time::Instant::now(), *before.last().unwrap());
    let mut gap = None;
    let mut after_gap = 0;
    while after_gap < 10 {
        let (at, f) = player
            .next_video(FRAME_TIMEOUT)
            .await
            .expect("stream resumes");
        if at - prev.0 >= Duration::from_secs(2) {
            gap = Some((
                at - prev.0,
                f.rtp_timestamp.wrapping_sub(prev.1.rtp_timestamp),
            ));
        }
        if gap.is_some() {
            after_gap += 1;
        }
        prev = (at, f);
    }
    let (pause, ts_step) = gap.expect("a pause of at least 2 s");
    assert!(pause < Duration::from_secs(4), "pause of {pause:?}");
    assert!(
        ts_step >= 2 * 90_000,
        "media time moved on by the stall: {ts_step}"
    );
    player
        .finish()
        .await
        .expect("the session survived the stall");
}

async fn timestamp_jump_shows_in_rtp(sim: &RemoteSim) {
    let jump_ms = 7000;
    let (mut player, before) = play_then_fault(
        sim,
        "f-0003",
        5,
        Fault::TimestampJump { offset_ms: jump_ms },
    )
    .await;
    let mut prev = *before.last().unwrap();
    let mut steps = Vec::new();
    for _ in 0..20 {
        let (_, f) = player
            .next_video(FRAME_TIMEOUT)
            .await
            .expect("frames after the jump");
        steps.push(f.rtp_timestamp.wrapping_sub(prev.rtp_timestamp));
        prev = f;
    }
    let period = 90_000 / 15;
    let jumped: Vec<u32> = steps.iter().copied().filter(|&s| s != period).collect();
    assert_eq!(jumped, [period + 7000 * 90], "steps {steps:?}");
    player
        .finish()
        .await
        .expect("the session survived the jump");
}

async fn corrupt_packet_is_rejected_by_the_client(sim: &RemoteSim) {
    let (mut player, _) = play_then_fault(sim, "f-0004", 5, Fault::Corrupt { packets: 1 }).await;
    while player.next_video(FRAME_TIMEOUT).await.is_some() {}
    let err = player
        .finish()
        .await
        .expect_err("retina refuses a corrupt NAL header");
    assert!(err.contains("F bit"), "{err}");
}

async fn resolution_change_brings_a_new_sps(sim: &RemoteSim) {
    let (mut player, before) = play_then_fault(
        sim,
        "f-0005",
        5,
        Fault::Resolution {
            width: 160,
            height: 90,
        },
    )
    .await;
    assert_eq!(before[0].new_dimensions, Some((320, 180)));
    loop {
        let (_, f) = player
            .next_video(FRAME_TIMEOUT)
            .await
            .expect("frames after the change");
        if let Some(dims) = f.new_dimensions {
            assert_eq!(dims, (160, 90));
            assert!(f.keyframe, "new parameters come with a keyframe");
            break;
        }
    }
    player
        .finish()
        .await
        .expect("the session survived the change");
    let listed = sim.cameras().await.unwrap();
    let cam = listed.cameras.iter().find(|c| c.name == "f-0005").unwrap();
    assert_eq!((cam.streams[0].width, cam.streams[0].height), (160, 90));
}

/// Camera clock minus local receive time of the next sender report, in ms.
async fn next_report_offset_ms(player: &mut Player) -> i64 {
    loop {
        match player.next(FRAME_TIMEOUT).await.expect("stream alive").1 {
            Event::SenderReport {
                ntp,
                received_unix_us,
            } => {
                return (ntp_to_unix_us(ntp) - received_unix_us) / 1000;
            }
            _ => continue,
        }
    }
}

async fn clock_skew_shows_in_sender_reports(sim: &RemoteSim) {
    let mut player = Player::start(&sim.url("f-0006", "main", None));
    let honest = next_report_offset_ms(&mut player).await;
    assert!(
        honest.abs() < 1000,
        "an unskewed camera clock is off by {honest} ms"
    );
    sim.fault("f-0006", "main", &Fault::ClockSkew { offset_ms: 4000 })
        .await
        .unwrap();
    let skewed = next_report_offset_ms(&mut player).await;
    assert!(
        (3000..5000).contains(&skewed),
        "skewed by {skewed} ms, want about 4000"
    );
    player
        .finish()
        .await
        .expect("the session survived the skew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_observable_by_a_client() {
    let sim = sim(FAULT_CAMERAS);
    tokio::join!(
        drop_ends_the_session(&sim),
        stall_pauses_then_resumes(&sim),
        timestamp_jump_shows_in_rtp(&sim),
        corrupt_packet_is_rejected_by_the_client(&sim),
        resolution_change_brings_a_new_sps(&sim),
        clock_skew_shows_in_sender_reports(&sim),
    );
}

#[tokio::test]
async fn control_api_refuses_bad_requests() {
    let sim = sim("[[camera]]\nname = \"c\"\n");
    let err = sim.fault("nope", "main", &Fault::Drop).await.unwrap_err();
    assert!(err.starts_with("404"), "{err}");
    let err = sim
        .fault(
            "c",
            "main",
            &Fault::Resolution {
                width: 321,
                height: 180,
            },
        )
        .await
        .unwrap_err();
    assert!(err.starts_with("400") && err.contains("even"), "{err}");
    let err = sim.frames("c", "../main", None).await.unwrap_err();
    assert!(err.starts_with("404"), "{err}");

    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/api/v1/cameras/c/streams/main/faults",
        sim.ready.control
    );
    let r = http
        .post(&url)
        .body(r#"{"kind":"explode"}"#)
        .header("content-type", "application/json");
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
}

#[test]
fn bad_config_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[camera]]\nname = \"x\"\n[[camera.streams]]\nfps = 0\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("camera[0].streams[0].fps"), "{stderr}");
    assert!(out.stdout.is_empty(), "no ready line on failure");
}

/// TOML of one camera whose streams are 320x180 (15 fps, GOP 10) with some more settings:
/// `(stream name, further TOML lines)`.
fn small_camera(camera: &str, streams: &[(&str, &str)]) -> String {
    let mut toml = format!("[[camera]]\nname = \"{camera}\"\n");
    for (name, more) in streams {
        toml.push_str(&format!(
            "[[camera.streams]]\nname = \"{name}\"\nwidth = 320\nheight = 180\ngop_frames = 10\n{more}\n"
        ));
    }
    toml
}

#[test]
fn the_sps_declares_the_configured_profile() {
    let sim = sim(&small_camera(
        "p",
        &[
            ("baseline", "profile = \"baseline\""),
            ("main", "profile = \"main\""),
            ("high", ""),
            ("hevc", "codec = \"h265\""),
        ],
    ));
    let cases = [
        ("baseline", "h264", "Constrained Baseline"),
        ("main", "h264", "Main"),
        ("high", "h264", "High"),
        ("hevc", "hevc", "Main"),
    ];
    for (stream, codec, profile) in cases {
        let probe = ffprobe(&sim.url("p", stream, None)).expect("ffprobe reads the stream");
        let v = stream_of(&probe, "video");
        assert_eq!(
            (v["codec_name"].as_str(), v["profile"].as_str()),
            (Some(codec), Some(profile)),
            "{stream}: {v}"
        );
    }
}

/// The `sprop-*` parameters of the video fmtp in an SDP, decoded, by key.
fn sdp_parameter_sets(sdp: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let fmtp = sdp
        .lines()
        .find(|l| l.starts_with("a=fmtp:96"))
        .unwrap_or_default();
    fmtp.split([' ', ';'])
        .filter_map(|p| p.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("sprop-"))
        .map(|(k, v)| {
            let units = v
                .split(',')
                .map(|u| {
                    base64::engine::general_purpose::STANDARD
                        .decode(u)
                        .expect("base64")
                })
                .collect();
            (k.to_owned(), units)
        })
        .collect()
}

/// What a session's first keyframes carried in-band.
struct InBand {
    /// For each of the first keyframes (frames with an IDR/IRAP picture): whether the same
    /// access unit carried every parameter-set type.
    keyframes_with_sets: Vec<bool>,
    /// Every parameter-set NAL unit seen, whole (they travel as single NAL unit packets).
    sets: Vec<Vec<u8>>,
}

/// Plays a stream over TCP until `keyframes` keyframes went by.
fn in_band_parameter_sets(
    rtsp: std::net::SocketAddr,
    path: &str,
    h265: bool,
    keyframes: usize,
) -> InBand {
    let (sets_types, irap): (&[u8], fn(u8) -> bool) = if h265 {
        (&[32, 33, 34], |t| (16..=21).contains(&t))
    } else {
        (&[7, 8], |t| t == 5)
    };
    let mut client = raw::Client::play(rtsp, path, true);
    let mut frames: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut sets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames
        .iter()
        .filter(|(_, t)| t.iter().any(|&t| irap(t)))
        .count()
        <= keyframes
    {
        assert!(Instant::now() < deadline, "{path}: too few keyframes");
        let Some(p) = client.next_packet(FRAME_TIMEOUT) else {
            panic!("{path}: media stopped");
        };
        if p.rtcp {
            continue;
        }
        let (ts, payload) = raw::rtp_parts(&p.data).expect("an RTP packet");
        let types = raw::payload_nal_types(h265, payload);
        if types.len() == 1 && sets_types.contains(&types[0]) {
            sets.push(payload.to_vec());
        }
        match frames.last_mut() {
            Some((t, all)) if *t == ts => all.extend(types),
            _ => frames.push((ts, types)),
        }
    }
    // The last frame may be incomplete, and the first may have started before we listened.
    let keyframes_with_sets = frames[1..frames.len() - 1]
        .iter()
        .filter(|(_, t)| t.iter().any(|&t| irap(t)))
        .map(|(_, t)| sets_types.iter().all(|s| t.contains(s)))
        .collect();
    InBand {
        keyframes_with_sets,
        sets,
    }
}

#[test]
fn parameter_sets_travel_where_configured() {
    let sim = sim(&small_camera(
        "ps",
        &[
            ("both", ""),
            ("in_band", "parameter_sets = \"in_band\""),
            ("sdp", "parameter_sets = \"sdp\""),
            ("none", "parameter_sets = \"none\""),
            (
                "hevc_in_band",
                "codec = \"h265\"\nparameter_sets = \"in_band\"",
            ),
            ("hevc_sdp", "codec = \"h265\"\nparameter_sets = \"sdp\""),
        ],
    ));
    let rtsp = sim.ready.rtsp;
    let h264_keys = ["sprop-parameter-sets"];
    let h265_keys = ["sprop-pps", "sprop-sps", "sprop-vps"];
    // (stream, H.265, the SDP carries them, in-band carries them)
    let cases = [
        ("both", false, true, true),
        ("in_band", false, false, true),
        ("sdp", false, true, false),
        ("none", false, false, false),
        ("hevc_in_band", true, false, true),
        ("hevc_sdp", true, true, false),
    ];
    let mut seen = BTreeMap::new();
    for (stream, h265, in_sdp, in_band) in cases {
        let path = format!("/ps/{stream}");
        let sdp = raw::Client::connect(rtsp, &path).describe();
        assert_eq!(sdp.status, 200, "{stream}: {sdp:?}");
        let from_sdp = sdp_parameter_sets(&sdp.body);
        let want_keys: Vec<&str> = match (in_sdp, h265) {
            (false, _) => vec![],
            (true, false) => h264_keys.to_vec(),
            (true, true) => h265_keys.to_vec(),
        };
        assert_eq!(
            from_sdp.keys().map(String::as_str).collect::<Vec<_>>(),
            want_keys,
            "{stream}: {}",
            sdp.body
        );
        if !h265 {
            assert!(
                sdp.body.contains("packetization-mode=1"),
                "{stream}: {}",
                sdp.body
            );
        }
        let got = in_band_parameter_sets(rtsp, &path, h265, 3);
        assert!(
            got.keyframes_with_sets.len() >= 2,
            "{stream}: {} keyframes",
            got.keyframes_with_sets.len()
        );
        if in_band {
            assert!(
                got.keyframes_with_sets.iter().all(|&w| w),
                "{stream}: a keyframe without its parameter sets"
            );
        } else {
            assert!(got.sets.is_empty(), "{stream}: parameter sets went in-band");
        }
        seen.insert(stream, (from_sdp, got.sets));
    }
    // Where both carry them they are the same units, and the SDP-only stream (which replays
    // the same clip) describes the very units the in-band stream sends.
    let (both_sdp, both_band) = &seen["both"];
    let sdp_units = &both_sdp["sprop-parameter-sets"];
    assert!(
        sdp_units.iter().all(|u| both_band.contains(u)),
        "SDP and in-band differ"
    );
    assert_eq!(&seen["sdp"].0["sprop-parameter-sets"], sdp_units);
    let hevc_band = &seen["hevc_in_band"].1;
    for units in seen["hevc_sdp"].0.values() {
        assert!(
            units.iter().all(|u| hevc_band.contains(u)),
            "H.265 SDP sets are not the in-band ones"
        );
    }
    // A decoder starts from either place alone.
    for stream in ["in_band", "sdp", "hevc_in_band", "hevc_sdp"] {
        let probe = ffprobe(&sim.url("ps", stream, None)).expect("ffprobe decodes");
        let v = stream_of(&probe, "video");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(320), Some(180)),
            "{stream}: {v}"
        );
    }
}

/// Counts what two sessions receive until the first has had `reports` sender reports:
/// (RTP packets, sender reports) of each.
fn count_until_reports(
    first: &mut raw::Client,
    second: &mut raw::Client,
    reports: usize,
) -> [(usize, usize); 2] {
    let mut counts = [(0, 0); 2];
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts[0].1 < reports {
        assert!(
            Instant::now() < deadline,
            "too few sender reports: {counts:?}"
        );
        for (i, c) in [&mut *first, &mut *second].into_iter().enumerate() {
            if let Some(p) = c.next_packet(Duration::from_millis(5)) {
                if !p.rtcp {
                    counts[i].0 += 1;
                } else if raw::rtcp_types(&p.data).contains(&200) {
                    counts[i].1 += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn without_rtcp_no_sender_report_arrives_over_tcp_or_udp() {
    let sim = sim(&[
        small_camera("on", &[("main", "")]),
        small_camera("off", &[("main", "rtcp = false")]),
    ]
    .concat());
    let rtsp = sim.ready.rtsp;
    let listed = sim_cameras(&sim);
    let rtcp: Vec<(String, bool)> = listed
        .cameras
        .iter()
        .map(|c| (c.name.clone(), c.streams[0].rtcp))
        .collect();
    assert_eq!(rtcp, [("on".to_owned(), true), ("off".to_owned(), false)]);
    let runs: Vec<_> = [true, false]
        .into_iter()
        .map(|tcp| {
            std::thread::spawn(move || {
                let mut on = raw::Client::play(rtsp, "/on/main", tcp);
                let mut off = raw::Client::play(rtsp, "/off/main", tcp);
                // Two reports of the honest stream span at least one RTCP interval.
                (tcp, count_until_reports(&mut on, &mut off, 2))
            })
        })
        .collect();
    for run in runs {
        let (tcp, [on, off]) = run.join().expect("session thread");
        assert!(on.0 > 0, "tcp={tcp}: the honest stream sent no RTP");
        assert!(
            off.0 > on.0 / 2,
            "tcp={tcp}: RTP of the stream without RTCP: {off:?} against {on:?}"
        );
        assert_eq!(
            off.1, 0,
            "tcp={tcp}: a stream without RTCP sent a sender report"
        );
    }
}

fn sim_cameras(sim: &RemoteSim) -> vms_tests::camsim::control::CameraList {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sim.cameras())
        .expect("camera list")
}

#[test]
fn transports_limit_what_setup_accepts() {
    let sim = sim(&[
        small_camera("tcp", &[("main", "transports = [\"tcp\"]")]),
        small_camera("udp", &[("main", "transports = [\"udp\"]")]),
        small_camera("both", &[("main", "")]),
    ]
    .concat());
    let rtsp = sim.ready.rtsp;
    let cases = [
        ("tcp", true, 200),
        ("tcp", false, 461),
        ("udp", true, 461),
        ("udp", false, 200),
        ("both", true, 200),
        ("both", false, 200),
    ];
    for (camera, tcp, status) in cases {
        let path = format!("/{camera}/main");
        let r = raw::Client::connect(rtsp, &path).setup(tcp);
        assert_eq!(
            r.status,
            status,
            "{camera} over {}: {}",
            if tcp { "TCP" } else { "UDP" },
            r.head
        );
    }
    // What is accepted delivers media.
    for (camera, tcp) in [("tcp", true), ("udp", false)] {
        let mut c = raw::Client::play(rtsp, &format!("/{camera}/main"), tcp);
        let rtp = std::iter::from_fn(|| c.next_packet(FRAME_TIMEOUT)).find(|p| !p.rtcp);
        assert!(rtp.is_some(), "{camera}: no RTP");
    }
    let listed = sim_cameras(&sim);
    let transports: Vec<Vec<Transport>> = listed
        .cameras
        .iter()
        .map(|c| c.streams[0].transports.clone())
        .collect();
    assert_eq!(
        transports,
        [
            vec![Transport::Tcp],
            vec![Transport::Udp],
            vec![Transport::Tcp, Transport::Udp]
        ]
    );
}

#[test]
fn streams_that_encode_alike_share_one_clip() {
    let knobs = "rtcp = false\nparameter_sets = \"none\"\ntransports = [\"udp\"]";
    let same = small_camera("same", &[("main", ""), ("sub", knobs)])
        .replace("name = \"same\"\n", "name = \"same\"\ncount = 3\n");
    let locked = small_camera(
        "locked",
        &[("main", "parameter_sets = \"sdp\"\nprofile = \"high\"")],
    )
    .replace(
        "name = \"locked\"\n",
        "name = \"locked\"\nusername = \"u\"\npassword = \"p\"\n",
    );
    let sim = sim(&[
        same,
        locked,
        small_camera("main_profile", &[("main", "profile = \"main\"")]),
        small_camera("slower", &[("main", "bitrate_kbps = 500")]),
        small_camera("live", &[("main", "mode = \"live\"")]),
    ]
    .concat());
    let listed = sim_cameras(&sim);
    let clips: BTreeMap<String, Vec<Option<u64>>> = listed
        .cameras
        .iter()
        .map(|c| (c.name.clone(), c.streams.iter().map(|s| s.clip).collect()))
        .collect();
    let shared = clips["same-0001"][0];
    assert!(shared.is_some(), "{clips:?}");
    for name in ["same-0001", "same-0002", "same-0003"] {
        assert_eq!(clips[name], [shared, shared], "{clips:?}");
    }
    assert_eq!(clips["locked"], [shared], "{clips:?}");
    let (main, slower) = (clips["main_profile"][0], clips["slower"][0]);
    assert!(
        main.is_some() && slower.is_some() && main != shared && slower != shared && main != slower,
        "{clips:?}"
    );
    assert_eq!(clips["live"], [None]);
    let main_profile = &listed
        .cameras
        .iter()
        .find(|c| c.name == "main_profile")
        .unwrap()
        .streams[0];
    assert_eq!(main_profile.profile, Profile::Main);
    let sub = &listed.cameras[0].streams[1];
    assert_eq!((sub.rtcp, sub.parameter_sets), (false, ParameterSets::None));
}

/// The video RTP payload rate of one whole loop of a stream, in kbit/s.
fn delivered_kbps(rtsp: std::net::SocketAddr, path: &str, fps: u32, frames: usize) -> f64 {
    let mut client = raw::Client::play(rtsp, path, true);
    let mut bytes = 0usize;
    let mut timestamps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{path}: too slow");
        let p = client
            .next_packet(FRAME_TIMEOUT)
            .expect("media keeps coming");
        if p.rtcp {
            continue;
        }
        let (ts, payload) = raw::rtp_parts(&p.data).expect("an RTP packet");
        if timestamps.last() != Some(&ts) {
            if timestamps.len() == frames {
                break;
            }
            timestamps.push(ts);
        }
        bytes += payload.len();
    }
    bytes as f64 * 8.0 / (frames as f64 / f64::from(fps)) / 1000.0
}

#[test]
fn delivered_bitrate_is_within_a_quarter_of_the_target() {
    // (camera, codec, width, height, target kbit/s), all at 25 fps with a GOP of 2 s.
    let cases = [
        ("hd", "h264", 1280, 720, 2000.0),
        ("sd", "h264", 640, 360, 500.0),
        ("sd_hevc", "h265", 640, 360, 500.0),
    ];
    let config: String = cases
        .iter()
        .map(|(camera, codec, width, height, kbps)| {
            format!(
                "[[camera]]\nname = \"{camera}\"\n[[camera.streams]]\ncodec = \"{codec}\"\n\
                 width = {width}\nheight = {height}\nfps = 25\ngop_frames = 50\n\
                 bitrate_kbps = {kbps}\nloop_secs = 4\n"
            )
        })
        .collect();
    let sim = sim(&config);
    let rtsp = sim.ready.rtsp;
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(camera, _, _, _, target)| {
            // One whole loop: 4 s at 25 fps.
            std::thread::spawn(move || {
                let path = format!("/{camera}/main");
                (camera, target, delivered_kbps(rtsp, &path, 25, 100))
            })
        })
        .collect();
    for run in runs {
        let (camera, target, kbps) = run.join().expect("session thread");
        eprintln!("{camera}: {kbps:.0} kbit/s delivered for a target of {target}");
        assert!(
            (kbps - target).abs() <= target / 4.0,
            "{camera}: {kbps:.0} kbit/s for a target of {target}"
        );
    }
}

#[test]
fn a_client_right_after_another_gets_the_stream() {
    // gst-rtsp-server shuts a shared media down in the background once its last client went;
    // a client arriving meanwhile must get a new media, not "503 Service Unavailable".
    let sim = sim(&small_camera("again", &[("main", "")]));
    let rtsp = sim.ready.rtsp;
    // Two clients at a time, each closing right after its DESCRIBE.
    let describers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    let r = raw::Client::connect(rtsp, "/again/main").describe();
                    assert_eq!(r.status, 200, "DESCRIBE {i} after a closed one: {}", r.head);
                }
            })
        })
        .collect();
    for d in describers {
        d.join().expect("every DESCRIBE answered 200");
    }
    for i in 0..5 {
        let mut c = raw::Client::play(rtsp, "/again/main", true);
        let rtp = std::iter::from_fn(|| c.next_packet(Duration::from_secs(2))).find(|p| !p.rtcp);
        assert!(rtp.is_some(), "session {i}: no RTP within 2 s");
        assert_eq!(c.teardown().status, 200, "TEARDOWN {i}");
    }
}
