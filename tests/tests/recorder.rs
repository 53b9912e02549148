//! End-to-end tests of the recorder: real `vms-recorder` and `vms-camsim` processes on
//! 127.0.0.1, checked with ffprobe/ffmpeg, the simulator's record of what it sent, and
//! `vms-recorder reindex --verify`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::Rng;
use vms_core::time::Time90k;
use vms_core::wire;
use vms_tests::ffmpeg::ffprobe;
use vms_tests::recorder::{RecorderDirs, RemoteRecorder, camera_toml, eventually, now, sim, t};

/// The video length of a file, which `ffprobe -v error` must read without a word.
fn ffprobe_segment(path: &Path) -> f64 {
    let out = ffprobe(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=start_time,duration",
            "-of",
            "csv=p=0",
        ],
    );
    let mut fields = out.split(',').map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    let (start, end) = (
        fields.next().unwrap_or(f64::NAN),
        fields.next().unwrap_or(f64::NAN),
    );
    end - start
}

/// Decodes a whole file with ffmpeg; returns what it reported on error level.
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const TWO_CAMERAS: &str = r#"
    [[camera]]
    name = "north"
    count = 2
    [[camera.streams]]
    name = "main"
    codec = "h264"
    width = 640
    height = 360
    fps = 15
    gop_frames = 15
    audio = true
    [[camera.streams]]
    name = "sub"
    codec = "h265"
    width = 320
    height = 180
    fps = 15
    gop_frames = 15
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_two_cameras_main_and_sub_for_a_minute() {
    let sim = sim(TWO_CAMERAS);
    let mut cameras = String::from("segment_secs = 20\n");
    for cam in ["north-0001", "north-0002"] {
        cameras.push_str(&camera_toml(
            cam,
            &[
                ("main", sim.url(cam, "main", None)),
                ("sub", sim.url(cam, "sub", None)),
            ],
        ));
    }
    let dirs = RecorderDirs::new(&cameras);
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let connected = eventually(Duration::from_secs(20), || async {
        let list = rec.cameras().await.ok()?;
        list.cameras
            .iter()
            .all(|c| {
                c.streams
                    .iter()
                    .all(|s| s.status.connected && s.status.last_frame_age_ms.is_some())
            })
            .then_some(list)
    })
    .await
    .expect("every stream connects");
    assert_eq!(connected.cameras.len(), 2);

    // The scenario: a minute of recording, then a clean stop.
    tokio::time::sleep(Duration::from_secs(62)).await;
    let stopped_at = now();
    let status = rec
        .process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    assert!(status.success(), "recorder exit: {status}");
    // The recorder takes frames until it exits, a little after the signal.
    let exited_at = now();
    dirs.verify_index()
        .expect("index matches the files after a clean stop");

    // Every closed segment plays on its own without a single error.
    let files = dirs.segment_files();
    assert!(
        files.len() >= 4 * 3,
        "at least 3 segments per stream: {files:?}"
    );
    let mut length_by_stream: std::collections::BTreeMap<String, f64> = Default::default();
    for f in &files {
        let length = ffprobe_segment(f);
        assert_eq!(decode_errors(f), "", "decoding {}", f.display());
        let stream = f.ancestors().nth(4).unwrap().display().to_string();
        *length_by_stream.entry(stream).or_default() += length;
    }

    // Restart to read the listing of the first session back.
    let rec = RemoteRecorder::start(&dirs).expect("recorder restarts");
    let (from, to) = (
        stopped_at - vms_core::time::Duration90k::from_secs(600),
        stopped_at,
    );
    for cam in &connected.cameras {
        let simulated = cam.name.as_str();
        for stream in ["main", "sub"] {
            let listing = rec
                .recordings(&cam.id, stream, &from.to_rfc3339(), &to.to_rfc3339())
                .await
                .expect("listing");
            let first = &listing.ranges[0];
            assert_eq!(
                listing.ranges.len(),
                1,
                "{simulated}/{stream}: one unbroken range: {listing:?}"
            );
            assert!(
                listing.gaps.is_empty(),
                "{simulated}/{stream}: {:?}",
                listing.gaps
            );
            let span = first.end_90k - first.start_90k;
            assert!(
                span >= 58 * 90_000,
                "{simulated}/{stream}: only {} s",
                span / 90_000
            );
            // No frame missing inside: the camera's 15 fps grid is exact.
            assert_eq!(
                first.frames as i64 * 6000,
                span,
                "{simulated}/{stream}: frames vs duration"
            );

            // Frames stored against frames the simulator sent while the recorder played.
            let sent = sim
                .frames(simulated, stream, None)
                .await
                .unwrap()
                .iter()
                .filter(|f| i128::from(f.sent_unix_us) * 1000 < exited_at.unix_nanos())
                .count() as u64;
            assert!(
                first.frames <= sent,
                "{simulated}/{stream}: {} stored, {sent} sent",
                first.frames
            );
            assert!(
                sent - first.frames <= 15,
                "{simulated}/{stream}: {} stored of {sent} sent",
                first.frames
            );

            // Segment durations add up to the recorded wall time within 1 s.
            let key = Path::new(&dirs.storage)
                .join(&cam.id)
                .join(stream)
                .display()
                .to_string();
            let total = length_by_stream[&key];
            assert!(
                (total - span as f64 / 90_000.0).abs() < 1.0,
                "{simulated}/{stream}: {total} s in files, {} s listed",
                span / 90_000
            );
        }
    }
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
}

/// The first recorded range that starts at or after `after`.
fn range_after(listing: &wire::Recordings, after: Time90k) -> Option<&wire::RecordedRange> {
    listing.ranges.iter().find(|r| t(&r.start) >= after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_loses_at_most_the_fragment_in_flight() {
    let sim = sim(
        "[[camera]]\nname = \"k\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\ngop_frames = 15\n",
    );
    let dirs = RecorderDirs::new(&format!(
        "segment_secs = 10\n{}",
        camera_toml("k", &[("main", sim.url("k", "main", None))])
    ));
    let test_start = now();
    let mut camera_id = None;
    let mut rng = rand::rng();

    // Starts the recorder and waits until footage recorded after this start is durable.
    async fn start_and_resume(
        dirs: &RecorderDirs,
        camera_id: &mut Option<String>,
        test_start: Time90k,
    ) -> (RemoteRecorder, Time90k) {
        let started = now();
        let rec = RemoteRecorder::start(dirs).expect("recorder starts");
        let id = match camera_id {
            Some(id) => id.clone(),
            None => rec.cameras().await.unwrap().cameras[0].id.clone(),
        };
        *camera_id = Some(id.clone());
        let resumed = eventually(Duration::from_secs(10), || async {
            let l = rec
                .recordings(
                    &id,
                    "main",
                    &test_start.to_rfc3339(),
                    &(now() + vms_core::time::Duration90k::from_secs(60)).to_rfc3339(),
                )
                .await
                .ok()?;
            range_after(&l, started)
                .filter(|r| t(&r.end) > t(&r.start))
                .map(|r| t(&r.start))
        })
        .await
        .expect("recording resumes");
        assert!(
            resumed - started <= vms_core::time::Duration90k::from_secs(5),
            "resumed {} ms after start",
            (resumed - started).as_millis()
        );
        (rec, started)
    }

    for round in 0..20 {
        let (rec, _) = start_and_resume(&dirs, &mut camera_id, test_start).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        let killed_at = now();
        rec.process.kill9();

        // The restart recovers the archive; the crash leaves a gap that begins at most one
        // fragment (1 s) and a frame before the kill.
        let (rec, _) = start_and_resume(&dirs, &mut camera_id, test_start).await;
        let id = camera_id.clone().unwrap();
        let listing = rec
            .recordings(&id, "main", &test_start.to_rfc3339(), &now().to_rfc3339())
            .await
            .unwrap();
        let crash = listing
            .gaps
            .iter()
            .filter(|g| g.reason == "crash")
            .min_by_key(|g| (t(&g.start) - killed_at).0.abs())
            .unwrap_or_else(|| panic!("round {round}: no crash gap in {listing:?}"));
        let lost = killed_at - t(&crash.start);
        assert!(
            lost.as_millis() <= 1500,
            "round {round}: {} ms lost before the kill",
            lost.as_millis()
        );

        // After recovery the index matches the files, and reindex rebuilds the same index.
        rec.process
            .terminate(Duration::from_secs(20))
            .expect("clean stop");
        dirs.verify_index()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_gets_clear_errors_and_leaves_the_archive_alone() {
    let dirs = RecorderDirs::new("");
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let http = rec.http();
    let j = |v: serde_json::Value| v;
    let good = j(
        serde_json::json!({"name": "Gate", "region": "751110000", "class": "city",
        "streams": [{"name": "main", "url": "rtsp://127.0.0.1:9/x", "username": "u", "password": "secret-pw"}]}),
    );
    let cases: Vec<(reqwest::Method, String, Option<serde_json::Value>, u16, &str)> = vec![
        (reqwest::Method::GET, "/api/v1/cameras/not-an-id".into(), None, 404, "not_found"),
        (reqwest::Method::GET, "/api/v1/cameras/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(), None, 404, "not_found"),
        (reqwest::Method::GET, "/api/v1/cameras/%FF%00".into(), None, 404, "not_found"),
        (reqwest::Method::DELETE, "/api/v1/holds/%2e%2e".into(), None, 404, "not_found"),
        (reqwest::Method::GET, "/api/v1/holds?camera=..%2f".into(), None, 404, "not_found"),
        (reqwest::Method::GET, "/api/v1/cameras/..%2f..%2fetc%2fpasswd/recordings?stream=main&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z".into(), None, 404, "not_found"),
        (reqwest::Method::POST, "/api/v1/cameras".into(), Some(j(serde_json::json!({"name": "x"}))), 400, "invalid_argument"),
        (reqwest::Method::POST, "/api/v1/cameras".into(), Some({ let mut b = good.clone(); b["region"] = "12".into(); b }), 400, "invalid_argument"),
        (reqwest::Method::POST, "/api/v1/cameras".into(), Some({ let mut b = good.clone(); b["streams"][0]["name"] = "../../x".into(); b }), 400, "invalid_argument"),
        (reqwest::Method::POST, "/api/v1/cameras".into(), Some({ let mut b = good.clone(); b["streams"][0]["url"] = "rtsp://u:p@127.0.0.1/x".into(); b }), 400, "invalid_argument"),
    ];
    for (method, path, body, status, code) in cases {
        let mut r = rec.request(method.clone(), &path);
        if let Some(b) = &body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let e: wire::ErrorBody = r.json().await.unwrap();
        assert_eq!(e.error.code, code, "{method} {path}: {}", e.error.message);
    }
    // Without the token nothing but health answers.
    let r = http.get(rec.url("/api/v1/cameras")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(rec.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // An oversized body is refused. The server then closes that connection, so this request
    // goes on a client of its own rather than poisoning the shared connection pool.
    let huge = "x".repeat(1 << 20);
    let r = reqwest::Client::new()
        .post(rec.url("/api/v1/cameras"))
        .bearer_auth(vms_tests::recorder::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A good camera: created with an id, its password never returned.
    let r = rec
        .request(reqwest::Method::POST, "/api/v1/cameras")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains("secret-pw"), "{text}");
    let created: wire::CameraResponse = serde_json::from_str(&text).unwrap();
    assert!(created.streams[0].has_password);
    // A PUT without the password keeps it.
    let mut update = good.clone();
    update["name"] = "Gate 2".into();
    update["streams"][0]
        .as_object_mut()
        .unwrap()
        .remove("password");
    let r = rec
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/cameras/{}", created.id),
        )
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: wire::CameraResponse = r.json().await.unwrap();
    assert!(updated.streams[0].has_password && updated.name == "Gate 2");
    let listing = rec
        .request(reqwest::Method::GET, &format!("/api/v1/cameras/{}/recordings?stream=main&start=2026-02-01T00:00:00Z&end=2026-01-01T00:00:00Z", created.id))
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 400, "inverted range");
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    assert!(dirs.segment_files().is_empty(), "nothing was written");
    let journal = std::fs::read_to_string(dirs.data.join("cameras.json")).unwrap();
    assert!(journal.contains("Gate 2"), "the journal holds the change");
}

#[test]
fn bad_config_fails_naming_the_field_and_touches_nothing() {
    let dirs = RecorderDirs::new("segment_secs = 5\n");
    let out = Command::new(vms_tests::process::workspace_binary("vms-recorder"))
        .args(["run", "--config"])
        .arg(&dirs.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("segment_secs"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!dirs.data.exists(), "no data directory was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulator_fault_is_survived_and_recorded_with_its_reason() {
    use vms_tests::camsim::stream::Fault;
    let sim = sim(
        "[[camera]]\nname = \"f\"\ncount = 6\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\ngop_frames = 15\n",
    );
    let names: Vec<String> = (1..=6).map(|i| format!("f-{i:04}")).collect();
    let mut config = String::from("stall_timeout_secs = 3\nsegment_secs = 60\n");
    for n in &names {
        config.push_str(&camera_toml(n, &[("main", sim.url(n, "main", None))]));
    }
    let dirs = RecorderDirs::new(&config);
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let begin = now();
    let ids: std::collections::HashMap<String, String> =
        eventually(Duration::from_secs(20), || async {
            let l = rec.cameras().await.ok()?;
            l.cameras
                .iter()
                .all(|c| {
                    c.streams[0].status.connected && c.streams[0].status.last_frame_age_ms.is_some()
                })
                .then(|| {
                    l.cameras
                        .iter()
                        .map(|c| (c.name.clone(), c.id.clone()))
                        .collect()
                })
        })
        .await
        .expect("every stream connects");
    // Some footage before the faults.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let faults = [
        Fault::Drop,
        Fault::Stall { duration_ms: 5000 },
        Fault::TimestampJump { offset_ms: 20_000 },
        Fault::Corrupt { packets: 1 },
        Fault::Resolution {
            width: 160,
            height: 90,
        },
        Fault::ClockSkew { offset_ms: 4000 },
    ];
    for (n, f) in names.iter().zip(&faults) {
        sim.fault(n, "main", f).await.expect("fault accepted");
    }
    let faulted = now();
    // Every stream records again after its fault (the stall needs its 5 s and a reconnect).
    let listings = eventually(Duration::from_secs(30), || async {
        let mut out = Vec::new();
        for n in &names {
            let l = rec
                .recordings(
                    &ids[n],
                    "main",
                    &begin.to_rfc3339(),
                    &(now() + vms_core::time::Duration90k::from_secs(60)).to_rfc3339(),
                )
                .await
                .ok()?;
            let recording_again = l
                .ranges
                .last()
                .is_some_and(|r| t(&r.end) > faulted + vms_core::time::Duration90k::from_secs(8));
            if !recording_again {
                return None;
            }
            out.push(l);
        }
        Some(out)
    })
    .await
    .expect("every stream records again after its fault");
    let reasons =
        |l: &wire::Recordings| l.gaps.iter().map(|g| g.reason.clone()).collect::<Vec<_>>();
    assert!(
        reasons(&listings[0]).contains(&"disconnect".to_owned()),
        "drop: {:?}",
        listings[0].gaps
    );
    assert!(
        reasons(&listings[1]).contains(&"stall".to_owned()),
        "stall: {:?}",
        listings[1].gaps
    );
    assert!(
        listings[2].ranges.len() >= 2,
        "a timestamp jump starts a new run: {:?}",
        listings[2]
    );
    assert!(
        reasons(&listings[2]).contains(&"clock_step".to_owned())
            || listings[2]
                .ranges
                .windows(2)
                .any(|w| w[0].run != w[1].run && w[0].end == w[1].start),
        "jump: {:?}",
        listings[2]
    );
    assert!(
        reasons(&listings[3]).contains(&"camera_error".to_owned()),
        "corrupt: {:?}",
        listings[3].gaps
    );
    // A resolution change is a new segment in the same run, without a gap.
    let res = &listings[4];
    assert!(
        res.gaps.is_empty(),
        "resolution change leaves no gap: {:?}",
        res.gaps
    );
    assert!(
        res.ranges.iter().any(|r| r.segments >= 2),
        "resolution change starts a segment: {:?}",
        res.ranges
    );
    // A skewed camera clock is recorded, and the footage still follows the recorder clock.
    let skewed = eventually(Duration::from_secs(15), || async {
        let l = rec
            .recordings(
                &ids[&names[5]],
                "main",
                &begin.to_rfc3339(),
                &(now() + vms_core::time::Duration90k::from_secs(60)).to_rfc3339(),
            )
            .await
            .ok()?;
        l.ranges
            .last()?
            .time_quality
            .camera_offset_ms
            .filter(|o| (3000..5000).contains(o))
    })
    .await;
    assert!(
        skewed.is_some(),
        "the camera offset of about 4000 ms is recorded"
    );
    let last = listings[5].ranges.last().unwrap();
    assert!(
        (now() - t(&last.end)).as_millis().abs() < 3000,
        "wall times follow the recorder clock"
    );
    // Nothing panicked: the recorder still answers, and a clean stop leaves a consistent archive.
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    dirs.verify_index().expect("index matches the files");
    for f in dirs.segment_files() {
        // Fails the test on any error output.
        ffprobe_segment(&f);
    }
}

/// Reads one sample of a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_quota_evicts_the_oldest_first_keeps_holds_and_never_stops_recording() {
    const QUOTA: u64 = 3_000_000;
    let sim = sim(
        "[[camera]]\nname = \"q\"\n[[camera.streams]]\nwidth = 640\nheight = 360\nfps = 15\n\
         gop_frames = 15\nbitrate_kbps = 1000\n",
    );
    let dirs = RecorderDirs::with_storage_options(
        &format!(
            "segment_secs = 10\n[retention.city]\nmin_age = \"1h\"\n{}",
            camera_toml("q", &[("main", sim.url("q", "main", None))])
        ),
        &format!("quota_bytes = {QUOTA}\nheld_alert_percent = 10\n"),
    );
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let test_start = now();
    let id = rec.cameras().await.unwrap().cameras[0].id.clone();
    let listing = || async {
        rec.recordings(&id, "main", &test_start.to_rfc3339(), &now().to_rfc3339())
            .await
            .unwrap()
    };

    // Bad holds are refused with the field named, and place nothing.
    let holds_path = format!("/api/v1/cameras/{id}/holds");
    let hold_body = |start: Time90k, end: Time90k, case: &str| {
        serde_json::json!({"start": start.to_rfc3339(), "end": end.to_rfc3339(),
            "case": case, "reason": "assault near the gate"})
    };
    let d = vms_core::time::Duration90k::from_secs(1);
    for (path, body, status, says) in [
        (
            holds_path.clone(),
            hold_body(now(), now() - d, "c-1"),
            400,
            "end",
        ),
        (
            holds_path.clone(),
            hold_body(now() - d, now(), ""),
            400,
            "case",
        ),
        (
            "/api/v1/cameras/01ARZ3NDEKTSV4RRFFQ69G5FAV/holds".into(),
            hold_body(now() - d, now(), "c-1"),
            404,
            "no camera",
        ),
    ] {
        let r = rec
            .request(reqwest::Method::POST, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{says:?} not in {text}");
    }
    let none: wire::Holds = rec.get("/api/v1/holds").await.unwrap();
    assert!(none.holds.is_empty());

    // Once the first segment is closed, hold a second of it.
    let first = eventually(Duration::from_secs(40), || async {
        let l = listing().await;
        (l.ranges.first()?.segments >= 2).then(|| l.ranges[0].start.clone())
    })
    .await
    .expect("a first segment closes");
    let held_start = t(&first) + d;
    let r = rec
        .request(reqwest::Method::POST, &holds_path)
        .json(&hold_body(held_start, held_start + d, "2026-0042"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let hold: wire::Hold = r.json().await.unwrap();
    let files_at_hold = dirs.segment_files();
    let held_file = files_at_hold[0].clone();

    // The quota holds about two segments: the ones after the held one go, oldest first,
    // while recording goes on.
    let evicted = eventually(Duration::from_secs(90), || async {
        let l = listing().await;
        let gone = files_at_hold[1..].iter().filter(|f| !f.exists()).count();
        (gone == files_at_hold.len() - 1 && l.gaps.iter().any(|g| g.reason == "evicted"))
            .then_some(l)
    })
    .await
    .unwrap_or_else(|| panic!("no eviction; files {:?}", dirs.segment_files()));
    assert!(held_file.exists(), "the held segment stays");
    assert_eq!(
        t(&evicted.ranges[0].start),
        t(&first),
        "the held footage is still listed"
    );
    let reasons: Vec<&str> = evicted.gaps.iter().map(|g| g.reason.as_str()).collect();
    assert_eq!(reasons, ["evicted"], "recording never stopped: {evicted:?}");
    let last = evicted.ranges.last().unwrap();
    assert!(
        now() - t(&last.end) < vms_core::time::Duration90k::from_secs(3),
        "footage is still being recorded: {last:?}"
    );
    let cam = rec.cameras().await.unwrap().cameras.remove(0);
    assert!(cam.streams[0].status.connected);
    assert_eq!(cam.streams[0].status.reconnects, 0);

    // Usage stays near the quota: at most one segment's worth of growth between passes.
    let metrics = rec
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let used = metric(&metrics, "vms_storage_used_bytes").expect("used bytes metric");
    assert!(used <= (QUOTA + 2_000_000) as f64, "{used} bytes used");

    // Young footage was evicted (minimum age 1 h), and held footage is over 10 % of the quota.
    // A pass reports what it found once it has finished: the files may go a moment before.
    let alerts = eventually(Duration::from_secs(15), || async {
        let alerts: wire::Alerts = rec.get("/api/v1/alerts").await.ok()?;
        let kinds: Vec<&str> = alerts.alerts.iter().map(|a| a.kind.as_str()).collect();
        (kinds.contains(&"min_age_breach") && kinds.contains(&"held_share")).then_some(alerts)
    })
    .await;
    assert!(
        alerts.is_some(),
        "{:?}",
        rec.get::<wire::Alerts>("/api/v1/alerts").await
    );

    // Released, the held footage goes too.
    let r = rec
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/holds/{}", hold.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    eventually(Duration::from_secs(30), || async {
        (!held_file.exists()).then_some(())
    })
    .await
    .expect("the released segment is evicted");

    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    dirs.verify_index().expect("index matches the files");
}
