//! End-to-end tests of playback: a real recorder records a simulated camera across several
//! segments and a reconnect; the HLS playlist must play in ffmpeg without an error, byte
//! ranges must equal the whole file, and bad requests must get clear 4xx answers.

use std::process::Command;
use std::time::Duration;

use rand::Rng;
use vms_core::time::{Duration90k, Time90k};
use vms_core::wire;
use vms_tests::camsim::stream::Fault;
use vms_tests::ffmpeg::ffprobe;
use vms_tests::process::workspace_binary;
use vms_tests::recorder::{
    ADMIN_TOKEN, RecorderDirs, RemoteRecorder, camera_toml, eventually, now, sim, t,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_playback_over_segments_and_a_reconnect_plays_in_ffmpeg() {
    let sim = sim(
        "[[camera]]\nname = \"p\"\n[[camera.streams]]\nwidth = 640\nheight = 360\nfps = 15\n\
         gop_frames = 15\naudio = true\n[[camera.streams]]\nname = \"sub\"\ncodec = \"h265\"\nwidth = 320\n\
         height = 180\nfps = 15\ngop_frames = 15\n",
    );
    let dirs = RecorderDirs::new(&format!(
        "segment_secs = 10\n{}",
        camera_toml(
            "p",
            &[
                ("main", sim.url("p", "main", None)),
                ("sub", sim.url("p", "sub", None))
            ]
        )
    ));
    // The log at its most detailed, to check that the token in URLs never reaches it.
    let log_dir = tempfile::tempdir().unwrap();
    let log_file = log_dir.path().join("recorder.log");
    let rec = RemoteRecorder::start_logged(&dirs, "debug", &log_file).expect("recorder starts");
    let id = rec.cameras().await.unwrap().cameras[0].id.clone();
    let from = now() - Duration90k::from_secs(5);
    let listing = || async {
        rec.recordings(&id, "main", &from.to_rfc3339(), &now().to_rfc3339())
            .await
            .unwrap()
    };
    // Two closed segments, then a dropped connection, then one more closed segment.
    eventually(Duration::from_secs(40), || async {
        (listing().await.ranges.first()?.segments >= 3).then_some(())
    })
    .await
    .expect("segments close");
    sim.fault("p", "main", &Fault::Drop).await.unwrap();
    let l = eventually(Duration::from_secs(40), || async {
        let l = listing().await;
        (l.ranges.len() >= 2 && l.ranges[1].segments >= 2).then_some(l)
    })
    .await
    .expect("recording resumes after the drop");
    assert!(l.gaps.iter().any(|g| g.reason == "disconnect"), "{l:?}");
    let (start, end) = (
        t(&l.ranges[0].start) + Duration90k::from_secs(2),
        t(&l.ranges[1].end),
    );

    // The playlist, with the token in the query as a <video> element would send it.
    let url = |start: Time90k, end: Time90k| {
        rec.url(&format!(
            "/api/v1/cameras/{id}/playback.m3u8?stream=main&start={}&end={}&token={ADMIN_TOKEN}",
            start.to_rfc3339(),
            end.to_rfc3339()
        ))
    };
    let r = reqwest::get(url(start, end)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1, "{text}");
    assert!(!text.contains("Authorization"));

    // ffmpeg plays it end to end without an error, and decodes about the frames of the range.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(url(start, end))
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");
    let decoded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as i64;
    let frames_in_ranges: i64 = l.ranges.iter().map(|r| r.frames as i64).sum();
    // The playlist starts at the keyframe before `start` (at most one GOP, 15 frames, early).
    let skipped = (start - t(&l.ranges[0].start)).0 / 6000;
    let expected = frames_in_ranges - skipped;
    assert!(
        (expected - 15..=expected).contains(&decoded),
        "decoded {decoded}, expected {expected} less at most a GOP"
    );

    // Every byte range of a segment equals the same bytes of the whole file.
    let segment = text
        .lines()
        .find(|l| l.starts_with("segments/"))
        .expect("a media URI")
        .to_owned();
    let seg_url = rec.url(&format!("/api/v1/cameras/{id}/{segment}"));
    let whole = reqwest::get(&seg_url).await.unwrap();
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].clone();
    let whole = whole.bytes().await.unwrap();
    assert!(whole.len() > 10_000);
    let mut rng = rand::rng();
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let a = rng.random_range(0..whole.len());
        let b = rng.random_range(a..whole.len());
        let r = http
            .get(&seg_url)
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["etag"], etag);
        assert_eq!(r.bytes().await.unwrap(), whole[a..=b]);
    }
    let r = http
        .get(&seg_url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = http
        .get(&seg_url)
        .header("range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // An MP4 export across the segments and the reconnect: exact in length (less the gap),
    // clean in ffprobe, with the wall clock as text.
    let gap = l.gaps.iter().find(|g| g.reason == "disconnect").unwrap();
    let (gap_start, gap_end) = (t(&gap.start), t(&gap.end));
    let (x_start, x_end) = (
        t(&l.ranges[0].start) + Duration90k::from_millis(2500),
        t(&l.ranges[1].end) - Duration90k::from_secs(1),
    );
    let export_url = rec.url(&format!(
        "/api/v1/cameras/{id}/export.mp4?stream=main&start={}&end={}&token={ADMIN_TOKEN}",
        x_start.to_rfc3339(),
        x_end.to_rfc3339()
    ));
    let r = reqwest::get(&export_url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-export-gaps"], "1");
    assert_eq!(r.headers()["x-export-parts"], "1");
    let export_etag = r.headers()["etag"].clone();
    let export = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.mp4");
    std::fs::write(&file, &export).unwrap();
    let probe = ffprobe(
        &file,
        &[
            "-show_entries",
            "format=duration:stream=codec_type,nb_frames",
            "-of",
            "json",
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&probe).unwrap();
    let duration: f64 = info["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let want = (x_end - x_start).as_secs_f64() - (gap_end - gap_start).as_secs_f64();
    assert!(
        (duration - want).abs() <= 1.0 / 15.0 + 1e-3,
        "export lasts {duration} s, the range less the gap {want} s"
    );
    let kinds: Vec<&str> = info["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"video")
            && kinds.contains(&"audio")
            && (kinds.contains(&"subtitle") || kinds.contains(&"data")),
        "{kinds:?}"
    );
    // The audio decodes, and lasts as long as the video.
    let audio_secs: f64 = ffprobe(
        &file,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
        ],
    )
    .parse()
    .unwrap_or(0.0);
    assert!(
        (audio_secs - want).abs() < 0.25,
        "audio {audio_secs} s, video {want} s"
    );
    // Its first presented frame is the frame the simulator sent at the requested start: the
    // run began at the keyframe the recorder received first (sent just before the range's
    // start, by the network's latency), and the edit list skips to the frame sent at
    // `x_start`, counted in the simulator's own record.
    let sent = sim.frames("p", "main", None).await.unwrap();
    let run_start = t(&l.ranges[0].start).unix_nanos();
    let keyframe = sent
        .iter()
        .rfind(|f| f.keyframe && i128::from(f.sent_unix_us) * 1000 <= run_start)
        .expect("the simulator's record reaches back to the run's start");
    let latency = run_start - i128::from(keyframe.sent_unix_us) * 1000;
    assert!(
        latency < 500_000_000,
        "{latency} ns from sending to recording"
    );
    let at_start = sent
        .iter()
        .rfind(|f| i128::from(f.sent_unix_us) * 1000 + latency <= x_start.unix_nanos())
        .unwrap();
    let frames_in = at_start.rtp_timestamp.wrapping_sub(keyframe.rtp_timestamp) / 6000;
    let elst = export
        .windows(4)
        .position(|w| w == b"elst")
        .expect("an edit list");
    let media_time = i64::from_be_bytes(export[elst + 20..elst + 28].try_into().unwrap());
    assert_eq!(
        media_time / 6000,
        i64::from(frames_in % 15),
        "the export starts {media_time} ticks into its GOP; the simulator sent frame \
         {frames_in} of the run at the requested start"
    );

    // The wall-clock track decodes, and shows the jump over the gap.
    let subs = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-map", "0:s:0", "-f", "srt", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        subs.status.success(),
        "{}",
        String::from_utf8_lossy(&subs.stderr)
    );
    let srt = String::from_utf8_lossy(&subs.stdout);
    let clock = |t: Time90k| t.timestamp().strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    assert!(srt.contains(&clock(x_start)), "{srt}");
    let before_gap = clock(gap_start - Duration90k::from_millis(100));
    let after_gap = clock(gap_end + Duration90k::from_millis(100));
    // (A gap under a second can begin and end in the same second of the clock: then both
    // are the same cue text, and what counts is that it is there.)
    let (a, b) = (srt.find(&before_gap), srt.rfind(&after_gap));
    assert!(
        a.is_some() && b.is_some() && a <= b,
        "no jump from {before_gap} to {after_gap}: {srt}"
    );
    // The whole file decodes without an error.
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(String::from_utf8_lossy(&decode.stderr).trim().is_empty());
    // Ranges of the export equal the same bytes of the whole download.
    for _ in 0..20 {
        let a = rng.random_range(0..export.len());
        let b = rng.random_range(a..export.len());
        let r = http
            .get(&export_url)
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["etag"], export_etag);
        assert_eq!(r.bytes().await.unwrap(), export[a..=b]);
    }

    // Snapshots: of a recorded moment at full size, as a thumbnail, and of the live stream.
    for (query, size) in [
        (format!("time={}", x_start.to_rfc3339()), "640x360"),
        (format!("time={}&width=160", x_start.to_rfc3339()), "160x90"),
        (String::new(), "640x360"),
    ] {
        let r = rec
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/cameras/{id}/snapshot.jpg?stream=main&{query}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{query}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let jpeg = dir.path().join("snapshot.jpg");
        std::fs::write(&jpeg, r.bytes().await.unwrap()).unwrap();
        let probe = ffprobe(
            &jpeg,
            &[
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0:s=x",
            ],
        );
        assert_eq!(probe, format!("mjpegx{size}"), "{query}");
    }

    // The H.265 sub stream transcoded to H.264 with the clock burned in: ffprobe decodes it.
    let (t_start, t_end) = (x_start, x_start + Duration90k::from_secs(4));
    let r = rec
        .request(
            reqwest::Method::GET,
            &format!(
                "/api/v1/cameras/{id}/transcoded.mp4?stream=sub&start={}&end={}",
                t_start.to_rfc3339(),
                t_end.to_rfc3339()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let transcoded = dir.path().join("transcoded.mp4");
    std::fs::write(&transcoded, r.bytes().await.unwrap()).unwrap();
    let probe = ffprobe(
        &transcoded,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ],
    );
    let fields: Vec<&str> = probe.split(',').collect();
    assert_eq!(fields[..3], ["h264", "320", "180"], "{fields:?}");
    let frames: i64 = fields[3].parse().unwrap();
    // Four seconds, from the keyframe at or before the start (at most a GOP earlier).
    assert!((60..=75).contains(&frames), "{frames} frames");

    // An evidence package of the same range: it verifies offline, and the export is in it.
    let r = rec
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/cameras/{id}/evidence"),
        )
        .json(
            &serde_json::json!({"stream": "main", "start": x_start.to_rfc3339(),
            "end": x_end.to_rfc3339(), "case": "KZ-2026-0042", "reason": "theft at the gate",
            "operator": "Inspector Abenov"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let announced: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let package = r.bytes().await.unwrap();
    assert_eq!(package.len(), announced);
    let tar = dir.path().join("evidence.tar");
    std::fs::write(&tar, &package).unwrap();
    let verify = Command::new(workspace_binary("vms-recorder"))
        .arg("verify")
        .arg(&tar)
        .output()
        .expect("verify runs");
    let verdict = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && verdict.starts_with("VERIFIED"),
        "{verdict}"
    );
    // And with the recorder's own key as the trusted one, which its API gives.
    let key: wire::EvidenceKey = rec.get("/api/v1/evidence/key").await.unwrap();
    let key_file = dir.path().join("recorder-key.pem");
    std::fs::write(&key_file, &key.public_key_pem).unwrap();
    let trusted = Command::new(workspace_binary("vms-recorder"))
        .arg("verify")
        .arg(&tar)
        .arg("--trusted-key")
        .arg(&key_file)
        .output()
        .expect("verify runs");
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stdout)
    );
    assert!(
        package
            .windows(export.len().min(4096))
            .any(|w| w == &export[..export.len().min(4096)]),
        "the package holds the export"
    );

    // Bad requests: clear 4xx, nothing outside the archive opened.
    let base = format!("/api/v1/cameras/{id}");
    let range = |a: Time90k, b: Time90k| format!("start={}&end={}", a.to_rfc3339(), b.to_rfc3339());
    let far = Time90k::parse_rfc3339("2001-01-01T00:00:00Z").unwrap();
    for (path, status) in [
        (
            format!("{base}/playback.m3u8?stream=main&{}", range(end, start)),
            400,
        ),
        (
            format!("{base}/playback.m3u8?stream=main&start=yesterday&end=today"),
            400,
        ),
        (
            format!(
                "{base}/playback.m3u8?stream=main&{}",
                range(far, far + Duration90k::from_secs(3600 * 48))
            ),
            400,
        ),
        (
            format!(
                "{base}/playback.m3u8?stream=main&{}",
                range(far, far + Duration90k::from_secs(60))
            ),
            404,
        ),
        (
            format!("{base}/playback.m3u8?stream=..%2F..&{}", range(start, end)),
            400,
        ),
        (
            format!("{base}/playback.m3u8?stream=main%00&{}", range(start, end)),
            400,
        ),
        (
            format!(
                "/api/v1/cameras/01ARZ3NDEKTSV4RRFFQ69G5FAV/playback.m3u8?stream=main&{}",
                range(start, end)
            ),
            404,
        ),
        (
            format!("{base}/segments/..%2F..%2F..%2Fetc%2Fpasswd?stream=main"),
            404,
        ),
        (format!("{base}/segments/%2e%2e.mp4?stream=main"), 404),
        (format!("{base}/segments/123.mp4?stream=main"), 404),
        (format!("{base}/segments/123.mp4?stream=..%2F"), 400),
        (
            format!("{base}/export.mp4?stream=main&{}", range(end, start)),
            400,
        ),
        (
            format!(
                "{base}/export.mp4?stream=main&{}",
                range(far, far + Duration90k::from_secs(60))
            ),
            404,
        ),
        (
            format!("{base}/export.mp4?stream=main&part=1&{}", range(start, end)),
            404,
        ),
        (
            format!("{base}/export.mp4?stream=%2e%2e&{}", range(start, end)),
            400,
        ),
        (
            format!("{base}/snapshot.jpg?stream=main&time={}", far.to_rfc3339()),
            404,
        ),
        (format!("{base}/snapshot.jpg?stream=main&width=5"), 400),
        (format!("{base}/snapshot.jpg?stream=main&time=noon"), 400),
        (format!("{base}/snapshot.jpg?stream=nope"), 404),
    ] {
        let r = rec
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let e: wire::ErrorBody = r.json().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!e.error.message.is_empty());
    }
    // Without a token, nothing.
    let r = reqwest::get(url(start, end).replace(&format!("&token={ADMIN_TOKEN}"), ""))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::get(url(start, end).replace(ADMIN_TOKEN, "wrong-token-0123456789"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Every playback, export, snapshot and evidence export is in the audit log, whose chain
    // holds.
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    let audit = Command::new(workspace_binary("vms-recorder"))
        .args(["audit-verify", "--data-dir"])
        .arg(&dirs.data)
        .output()
        .expect("audit-verify runs");
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let recorder_log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        recorder_log.contains("processing request"),
        "a debug log of every request"
    );
    assert!(
        !recorder_log.contains(ADMIN_TOKEN),
        "the token reached the log"
    );
    let log = std::fs::read_to_string(dirs.data.join("audit.log")).unwrap();
    for action in ["playback", "export", "snapshot", "evidence_export"] {
        assert!(
            log.contains(&format!("\"action\":\"{action}\"")),
            "no {action} in {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_udp_records() {
    let sim = sim(
        "[[camera]]\nname = \"u\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\n\
         gop_frames = 15\n",
    );
    let mut camera = camera_toml("u", &[("main", sim.url("u", "main", None))]);
    camera.push_str("transport = \"udp\"\n");
    let dirs = RecorderDirs::new(&camera);
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let id = rec.cameras().await.unwrap().cameras[0].id.clone();
    let from = now();
    // Three seconds of footage made durable over RTP/UDP.
    let frames = eventually(Duration::from_secs(30), || async {
        let l = rec
            .recordings(&id, "main", &from.to_rfc3339(), &now().to_rfc3339())
            .await
            .ok()?;
        let frames: u64 = l.ranges.iter().map(|r| r.frames).sum();
        (frames >= 45).then_some(frames)
    })
    .await;
    let cam = rec.cameras().await.unwrap().cameras.remove(0);
    assert_eq!(cam.streams[0].transport, "udp");
    assert!(
        frames.is_some(),
        "no footage over UDP: {:?}",
        cam.streams[0].status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_across_a_resolution_change_comes_in_two_parts() {
    let sim = sim(
        "[[camera]]\nname = \"r\"\n[[camera.streams]]\nwidth = 640\nheight = 360\nfps = 15\n\
         gop_frames = 15\n",
    );
    // Segments of 60 s: the footage after the change is still in the open segment, whose
    // durable fragments an export serves too.
    let dirs = RecorderDirs::new(&camera_toml("r", &[("main", sim.url("r", "main", None))]));
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let id = rec.cameras().await.unwrap().cameras[0].id.clone();
    let from = now();
    let frames = || async {
        let l = rec
            .recordings(&id, "main", &from.to_rfc3339(), &now().to_rfc3339())
            .await
            .ok()?;
        Some(l.ranges.iter().map(|r| r.frames).sum::<u64>())
    };
    eventually(Duration::from_secs(30), || async {
        (frames().await? >= 45).then_some(())
    })
    .await
    .expect("footage before the change");
    sim.fault(
        "r",
        "main",
        &Fault::Resolution {
            width: 320,
            height: 180,
        },
    )
    .await
    .unwrap();
    let before = frames().await.unwrap();
    eventually(Duration::from_secs(30), || async {
        (frames().await? >= before + 45).then_some(())
    })
    .await
    .expect("footage after the change");
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    for part in 0..2 {
        let r = rec
            .request(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/cameras/{id}/export.mp4?stream=main&start={}&end={}&part={part}",
                    from.to_rfc3339(),
                    now().to_rfc3339()
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let parts = r.headers()["x-export-parts"].clone();
        if parts != "2" {
            let l = rec
                .recordings(&id, "main", &from.to_rfc3339(), &now().to_rfc3339())
                .await;
            panic!("{parts:?} parts; listing {l:?}");
        }
        let file = dir.path().join(format!("part{part}.mp4"));
        std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
        sizes.push(ffprobe(
            &file,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0:s=x",
            ],
        ));
    }
    assert_eq!(sizes, ["640x360", "320x180"]);
}
