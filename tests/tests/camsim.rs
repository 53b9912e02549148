//! End-to-end tests of the camera simulator: a real `vms-camsim` process on 127.0.0.1, checked
//! with clients we did not write (ffprobe, retina) and a raw RTSP request.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vms_core::time::ntp_to_unix_us;
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
