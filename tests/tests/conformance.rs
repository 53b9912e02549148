//! End-to-end tests of camera conformance (spec/camera-conformance.md): the real
//! `vms-recorder check-camera` against simulated cameras that break one rule each, and the
//! recorder checking the cameras it onboards. Real processes on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vms_core::wire;
use vms_recorder::conformance::RULES;
use vms_tests::camsim::remote::RemoteSim;
use vms_tests::camsim::stream::Fault;
use vms_tests::process::workspace_binary;
use vms_tests::recorder::{RecorderDirs, RemoteRecorder, camera_toml, eventually, sim};

const USER: &str = "regional-it";
const PASSWORD: &str = "conformance-pw-91";

/// A conforming 1080p25 stream's fields, with `overrides` replacing or adding some.
fn stream_toml(overrides: &[(&str, &str)]) -> String {
    let mut fields: BTreeMap<&str, &str> = [
        ("width", "1920"),
        ("height", "1080"),
        ("fps", "25"),
        ("gop_frames", "50"),
        ("bitrate_kbps", "4000"),
        ("loop_secs", "4"),
    ]
    .into();
    fields.extend(overrides.iter().copied());
    fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

/// One simulated camera of the violation set.
struct Case {
    camera: &'static str,
    /// Stream fields that differ from a conforming stream.
    stream: &'static [(&'static str, &'static str)],
    /// Whether the camera asks for Digest credentials.
    auth: bool,
    /// A fault injected once the checker is playing the stream.
    fault: Option<Fault>,
    /// The rules that must fail; every other rule passes, or is among `not_checked`.
    fails: &'static [&'static str],
    not_checked: &'static [&'static str],
}

/// The rules that need media: all but `rtsp` and `auth`.
const MEDIA_RULES: &[&str] = RULES.split_at(2).1;

fn cases() -> Vec<Case> {
    let case = |camera, stream, fails| Case {
        camera,
        stream,
        auth: true,
        fault: None,
        fails,
        not_checked: &[],
    };
    vec![
        case("conforming", &[], &[]),
        case("conforming-h265", &[("codec", "\"h265\"")], &[]),
        Case {
            not_checked: MEDIA_RULES,
            ..case("no-tcp", &[("transports", "[\"udp\"]")], &["rtsp"])
        },
        Case {
            auth: false,
            ..case("no-auth", &[], &["auth"])
        },
        case("baseline", &[("profile", "\"baseline\"")], &["codec"]),
        case(
            "low-res",
            &[("width", "1280"), ("height", "720")],
            &["resolution"],
        ),
        case(
            "low-fps",
            &[("fps", "10"), ("gop_frames", "10")],
            &["frame_rate"],
        ),
        case("long-gop", &[("gop_frames", "100")], &["keyframes"]),
        Case {
            not_checked: &["codec", "resolution"],
            ..case(
                "no-params",
                &[("parameter_sets", "\"none\"")],
                &["parameter_sets"],
            )
        },
        case("low-bitrate", &[("bitrate_kbps", "300")], &["bitrate"]),
        case("no-rtcp", &[("rtcp", "false")], &["clock"]),
        Case {
            fault: Some(Fault::Stall { duration_ms: 1500 }),
            ..case("stall", &[], &["frame_rate"])
        },
        Case {
            fault: Some(Fault::TimestampJump { offset_ms: 5000 }),
            ..case("ts-jump", &[], &["rtp"])
        },
        Case {
            fault: Some(Fault::ClockSkew { offset_ms: 5000 }),
            ..case("clock-skew", &[], &["clock"])
        },
        Case {
            fault: Some(Fault::Drop),
            ..case("drop", &[], &["session"])
        },
    ]
}

fn camsim_config(cases: &[Case]) -> String {
    let mut s = String::new();
    for c in cases {
        s.push_str(&format!("[[camera]]\nname = \"{}\"\n", c.camera));
        if c.auth {
            s.push_str(&format!(
                "username = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
            ));
        }
        s.push_str("[[camera.streams]]\nname = \"main\"\n");
        s.push_str(&stream_toml(c.stream));
    }
    s
}

/// What one `check-camera` run gave.
struct Run {
    code: Option<i32>,
    report: wire::ConformanceReport,
    human: String,
    elapsed: Duration,
}

/// Runs `vms-recorder check-camera` with the password in its environment, JSON on stdout.
async fn check_camera(url: &str, profile: &str, role: &str, secs: u64) -> Result<Run, String> {
    let started = Instant::now();
    let out = tokio::process::Command::new(workspace_binary("vms-recorder"))
        .args([
            "check-camera",
            "--url",
            url,
            "--profile",
            profile,
            "--role",
            role,
        ])
        .args(["--username", USER, "--json", "-"])
        .args(["--duration-secs", &secs.to_string()])
        .env("VMS_CAMERA_PASSWORD", PASSWORD)
        .env("VMS_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running check-camera: {e}"))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let human = String::from_utf8_lossy(&out.stderr).into_owned();
    for text in [&stdout, &human] {
        if text.contains(PASSWORD) {
            return Err(format!("the password appears in the output:\n{text}"));
        }
    }
    let report = serde_json::from_str(&stdout)
        .map_err(|e| format!("the JSON report does not parse ({e}):\n{stdout}\n{human}"))?;
    Ok(Run {
        code: out.status.code(),
        report,
        human,
        elapsed,
    })
}

fn with_status<'a>(report: &'a wire::ConformanceReport, status: &str) -> Vec<&'a str> {
    report
        .rules
        .iter()
        .filter(|r| r.status == status)
        .map(|r| r.id.as_str())
        .collect()
}

/// Waits until the simulator has sent `frames` frames of the stream since `after`: the
/// checker is then playing it.
async fn playing(sim: &RemoteSim, camera: &str, after: Option<u64>, frames: usize) -> bool {
    eventually(Duration::from_secs(20), || async {
        let sent = sim.frames(camera, "main", after).await.ok()?;
        (sent.len() >= frames).then_some(())
    })
    .await
    .is_some()
}

/// The checker's verdict on every camera of the violation set: each breaks one requirement
/// and fails exactly its rule; the conforming cameras (H.264 and H.265) pass every rule, the
/// H.264 one with its whole report within 60 s. All probes run at once, for the standard's
/// 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_flags_exactly_the_broken_rule_of_each_simulated_violation() {
    let cases = cases();
    let sim = sim(&camsim_config(&cases));
    // Where each faulted stream's frame record stands before its checker starts.
    let mut marks = BTreeMap::new();
    for c in cases.iter().filter(|c| c.fault.is_some()) {
        let last = sim.frames(c.camera, "main", None).await.expect("frames");
        marks.insert(c.camera, last.last().map(|f| f.seq));
    }
    let runs = cases.iter().map(|c| {
        let url = sim.url(c.camera, "main", None);
        let sim = &sim;
        let mark = marks.get(c.camera).copied().flatten();
        async move {
            let run = check_camera(&url, "city", "main", 30);
            let inject = async {
                if let Some(fault) = &c.fault {
                    // Four seconds into the probe, at 25 fps.
                    assert!(
                        playing(sim, c.camera, mark, 100).await,
                        "{}: the checker never played the stream",
                        c.camera
                    );
                    sim.fault(c.camera, "main", fault).await.expect("fault");
                }
            };
            let (run, ()) = tokio::join!(run, inject);
            (c, run)
        }
    });
    let mut problems = Vec::new();
    for (c, run) in futures::future::join_all(runs).await {
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{}: {e}", c.camera));
                continue;
            }
        };
        let failed = with_status(&run.report, "fail");
        let not_checked = with_status(&run.report, "not_checked");
        let ids: Vec<&str> = run.report.rules.iter().map(|r| r.id.as_str()).collect();
        let expected_code = if c.fails.is_empty() { 0 } else { 1 };
        if failed != c.fails
            || not_checked.iter().any(|n| !c.not_checked.contains(n))
            || run.code != Some(expected_code)
            || ids.len() != 11
        {
            problems.push(format!(
                "{}: expected to fail {:?} (exit {expected_code}), got fail {failed:?}, \
                 not checked {not_checked:?}, exit {:?}\n{}",
                c.camera, c.fails, run.code, run.human
            ));
        }
        let verdict = if c.fails.is_empty() {
            "CONFORMING"
        } else {
            "NOT CONFORMING"
        };
        if !run.human.lines().last().unwrap_or("").starts_with(verdict) {
            problems.push(format!(
                "{}: the human report does not end in {verdict}",
                c.camera
            ));
        }
        if c.camera == "conforming" {
            // The bar: a conforming camera's full report within 60 s, every rule judged.
            eprintln!(
                "conforming camera: full report in {:.1} s\n{}",
                run.elapsed.as_secs_f64(),
                run.human
            );
            let s = &run.report.stream;
            if !not_checked.is_empty() || run.elapsed > Duration::from_secs(60) {
                problems.push(format!(
                    "conforming: {:.1} s, not checked {not_checked:?}",
                    run.elapsed.as_secs_f64()
                ));
            }
            if (s.width, s.height, s.codec.as_deref()) != (Some(1920), Some(1080), Some("h264"))
                || s.measured_fps != Some(25.0)
                || s.keyframe_interval_ms != Some(2000)
                || run.report.url.contains('@')
            {
                problems.push(format!(
                    "conforming: measured {s:?}, url {}",
                    run.report.url
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Bad arguments exit 2 before any probe: credentials in the URL, an unknown profile, a
/// duration out of range.
#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--url", "rtsp://u:p@127.0.0.1:1/x", "--profile", "city"][..],
        &["--url", "rtsp://127.0.0.1:1/x", "--profile", "airport"],
        &["--url", "http://127.0.0.1:1/x", "--profile", "city"],
        &[
            "--url",
            "rtsp://127.0.0.1:1/x",
            "--profile",
            "city",
            "--duration-secs",
            "5",
        ],
        &[
            "--url",
            "rtsp://127.0.0.1:1/x",
            "--profile",
            "city",
            "--role",
            "third",
        ],
    ] {
        let out = std::process::Command::new(workspace_binary("vms-recorder"))
            .arg("check-camera")
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
    }
}

/// A camera that cannot be reached fails `rtsp` with the rest not checked, and exits 1.
#[tokio::test]
async fn an_unreachable_camera_fails_rtsp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let run = check_camera(&format!("rtsp://127.0.0.1:{port}/x"), "city", "main", 10)
        .await
        .expect("a report");
    assert_eq!(run.code, Some(1));
    assert_eq!(with_status(&run.report, "fail"), vec!["rtsp"]);
    assert_eq!(with_status(&run.report, "not_checked").len(), 10);
}

/// The camera as the first catalog of the recorder's channel event stream gives it.
async fn catalog_camera(rec: &RemoteRecorder, id: &str) -> Option<wire::CatalogCamera> {
    let mut r = rec
        .request(reqwest::Method::GET, "/api/v1/channel/events")
        .send()
        .await
        .ok()?;
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        text.extend_from_slice(&chunk);
        for line in text.split(|&b| b == b'\n') {
            if let Ok(wire::ChannelEvent::CatalogFull { cameras, .. }) =
                serde_json::from_slice(line)
            {
                return cameras.into_iter().find(|c| c.id == id);
            }
        }
    }
    None
}

/// Waits until every stream of a camera has a finished check.
async fn checked(rec: &RemoteRecorder, path: &str) -> wire::CameraConformance {
    eventually(Duration::from_secs(40), || async {
        let c: wire::CameraConformance = rec.get(path).await.ok()?;
        c.streams.iter().all(|s| s.state == "done").then_some(c)
    })
    .await
    .expect("every stream checked")
}

/// The recorder checks each stream of a camera it onboards, against the class's main profile
/// for the first stream and the sub profile for the others; keeps the reports across a
/// restart; raises an alert for a stream that fails; and runs a check again when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_checks_the_streams_of_a_camera_it_onboards() {
    let mut config = format!(
        "[[camera]]\nname = \"gate\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
         [[camera.streams]]\nname = \"main\"\n{}",
        stream_toml(&[])
    );
    // The sub stream is too small for a sub stream (640x360).
    config.push_str(&format!(
        "[[camera.streams]]\nname = \"sub\"\n{}",
        stream_toml(&[("width", "320"), ("height", "180"), ("bitrate_kbps", "500")])
    ));
    let sim = sim(&config);
    // One camera comes from the config file: the start that adds it onboards it.
    let from_file = camera_toml("From the file", &[("main", sim.url("gate", "sub", None))]);
    let dirs = RecorderDirs::new(&format!("conformance_probe_secs = 10\n{from_file}"));
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let body = serde_json::json!({
        "name": "Gate", "region": "751110000", "class": "city",
        "streams": [
            {"name": "main", "url": sim.url("gate", "main", None), "username": USER, "password": PASSWORD},
            {"name": "sub", "url": sim.url("gate", "sub", None), "username": USER, "password": PASSWORD},
        ]
    });
    let r = rec
        .request(reqwest::Method::POST, "/api/v1/cameras")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    let camera: wire::CameraResponse = r.json().await.expect("camera");
    let path = format!("/api/v1/cameras/{}/conformance", camera.id);
    let first = checked(&rec, &path).await;
    let listed: wire::CameraList = rec.get("/api/v1/cameras").await.expect("cameras");
    let file_camera = listed
        .cameras
        .iter()
        .find(|c| c.name == "From the file")
        .expect("the config file's camera");
    let file_check = checked(
        &rec,
        &format!("/api/v1/cameras/{}/conformance", file_camera.id),
    )
    .await;
    let file_report = file_check.streams[0].report.as_ref().expect("a report");
    // Its only stream is judged as a main stream. The camera asks for credentials the config
    // does not give: `auth` fails and the rest cannot be checked.
    assert_eq!(file_report.role, "main");
    assert_eq!(
        with_status(file_report, "fail"),
        vec!["auth"],
        "{file_report:?}"
    );
    let names: Vec<&str> = first.streams.iter().map(|s| s.stream.as_str()).collect();
    assert_eq!(names, ["main", "sub"]);
    let main = first.streams[0].report.as_ref().expect("main report");
    let sub = first.streams[1].report.as_ref().expect("sub report");
    assert_eq!(
        (main.role.as_str(), main.profile.as_str()),
        ("main", "city")
    );
    assert_eq!(main.verdict, "pass", "{main:?}");
    assert_eq!(sub.role, "sub");
    assert_eq!(with_status(sub, "fail"), vec!["resolution"], "{sub:?}");
    let raw = rec
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(!raw.contains(PASSWORD), "{raw}");

    // The failing stream raises an alert naming it.
    let alerts: wire::Alerts = rec.get("/api/v1/alerts").await.expect("alerts");
    let nonconformant: Vec<_> = alerts
        .alerts
        .iter()
        .filter(|a| a.kind == "camera_nonconformant")
        .filter(|a| a.camera.as_deref() == Some(camera.id.as_str()))
        .collect();
    assert_eq!(nonconformant.len(), 1, "{alerts:?}");
    assert_eq!(nonconformant[0].camera.as_deref(), Some(camera.id.as_str()));
    assert_eq!(nonconformant[0].stream.as_deref(), Some("sub"));

    // Central learns the verdicts with the catalog the recorder sends it over its channel.
    let verdicts = eventually(Duration::from_secs(10), || async {
        let camera = catalog_camera(&rec, &camera.id).await?;
        let v: Vec<Option<String>> = camera
            .streams
            .iter()
            .map(|s| s.conformance.clone())
            .collect();
        (v.iter().all(Option::is_some)).then_some(v)
    })
    .await;
    assert_eq!(
        verdicts,
        Some(vec![Some("pass".into()), Some("fail".into())])
    );

    // The reports survive a restart.
    rec.process
        .terminate(Duration::from_secs(10))
        .expect("the recorder stops");
    let rec = RemoteRecorder::start(&dirs).expect("recorder restarts");
    let after: wire::CameraConformance = rec.get(&path).await.expect("conformance");
    assert_eq!(after, first);

    // Asked again, the check runs again and replaces the report.
    let r = rec
        .request(reqwest::Method::POST, &path)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let running: wire::CameraConformance = r.json().await.expect("body");
    assert!(running.streams.iter().all(|s| s.state == "running"));
    assert_eq!(
        running.streams[0].report, first.streams[0].report,
        "kept meanwhile"
    );
    let again = checked(&rec, &path).await;
    let newer = again.streams[0].report.as_ref().expect("report");
    assert!(newer.started_at > main.started_at, "a new report");
    assert_eq!(newer.verdict, "pass");
}
