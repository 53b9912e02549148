//! End-to-end tests of central and the channel: a real `vms-api`, three real recorders in two
//! regions that enrol and dial out to it (the tests never give central a recorder's address),
//! and the camera simulator.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vms_core::id::CameraId;
use vms_core::wire;
use vms_tests::central::{CentralDirs, RemoteCentral, enrolled_recorder};
use vms_tests::process::workspace_binary;
use vms_tests::recorder::{RecorderDirs, RemoteRecorder, camera_toml_in, eventually, sim};

const CAMERAS: &str = "[[camera]]\nname = \"c\"\ncount = 4\n[[camera.streams]]\nwidth = 320\n\
                       height = 180\nfps = 10\ngop_frames = 10\n";
const ALMATY: &str = "750000000";
const ASTANA: &str = "710000000";
const PASSWORD: &str = "a long enough password";

/// Central, three recorders (two in Almaty, one in Astana with two cameras) and the
/// simulator, all enrolled and listed.
struct Network {
    sim: vms_tests::camsim::remote::RemoteSim,
    central_dirs: CentralDirs,
    central: RemoteCentral,
    admin: String,
    recorders: Vec<(RecorderDirs, RemoteRecorder)>,
}

impl Network {
    async fn start() -> Network {
        let sim = sim(CAMERAS);
        let central_dirs =
            CentralDirs::new("heartbeat_timeout_ms = 3000\nfanout_deadline_ms = 2000\n");
        let central = RemoteCentral::start(&central_dirs).expect("central starts");
        let admin = central
            .login("admin", &central_dirs.admin_password)
            .await
            .expect("admin logs in");
        let plan = [
            ("almaty-1", ALMATY, vec![("c-0001", "751110000")]),
            ("almaty-2", ALMATY, vec![("c-0002", "751210000")]),
            (
                "astana-1",
                ASTANA,
                vec![("c-0003", "711110000"), ("c-0004", "711110000")],
            ),
        ];
        let mut recorders = Vec::new();
        for (name, region, cams) in plan {
            let cameras: String = cams
                .iter()
                .map(|(c, r)| camera_toml_in(c, r, &[("main", sim.url(c, "main", None))]))
                .collect();
            recorders.push(
                enrolled_recorder(&central, &admin, name, region, &cameras)
                    .await
                    .expect("recorder starts"),
            );
        }
        let net = Network {
            sim,
            central_dirs,
            central,
            admin,
            recorders,
        };
        net.wait_listed(4).await;
        net
    }

    /// Waits until the directory lists `n` cameras, all recording, all recorders online.
    async fn wait_listed(&self, n: u64) -> wire::DirectoryPage {
        eventually(Duration::from_secs(60), || async {
            let page = self.central.directory(&self.admin, "").await.ok()?;
            (page.total == n
                && page
                    .cameras
                    .iter()
                    .all(|c| c.recorder_online && c.camera.status == "online"))
            .then_some(page)
        })
        .await
        .unwrap_or_else(|| panic!("the directory never listed {n} recording cameras"))
    }

    fn camera(&self, page: &wire::DirectoryPage, name: &str) -> String {
        page.cameras
            .iter()
            .find(|c| c.camera.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .camera
            .id
            .clone()
    }
}

fn range_last(secs: i64) -> (String, String) {
    let now = jiff::Timestamp::now();
    let start = now - jiff::SignedDuration::from_secs(secs);
    (
        start.to_string(),
        (now + jiff::SignedDuration::from_secs(5)).to_string(),
    )
}

async fn status_and_body(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = r.send().await.expect("request");
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_authorisation_and_media_tokens_hold_across_three_recorders() {
    let net = Network::start().await;
    let c = &net.central;
    let page = net.wait_listed(4).await;

    // Every camera in its own region; counts per top-level region.
    for cam in &page.cameras {
        let expected = match cam.camera.name.as_str() {
            "c-0001" => "751110000",
            "c-0002" => "751210000",
            _ => "711110000",
        };
        assert_eq!(cam.camera.region, expected, "{}", cam.camera.name);
        assert!(cam.camera.streams.iter().all(|s| s.name == "main"));
    }
    let count = |r: &str| page.counts.iter().find(|c| c.region == r).map(|c| c.count);
    assert_eq!(count(ALMATY), Some(2));
    assert_eq!(count(ASTANA), Some(2));
    let astana = c.directory(&net.admin, "region=710000000").await.unwrap();
    assert_eq!(astana.total, 2);
    let text = c.directory(&net.admin, "q=C-0002").await.unwrap();
    assert_eq!(text.total, 1);
    assert_eq!(text.cameras[0].camera.name, "c-0002");
    let recorders: wire::RecorderList = c.get(&net.admin, "/api/v1/recorders").await.unwrap();
    assert_eq!(recorders.recorders.len(), 3);
    assert!(recorders.recorders.iter().all(|r| r.online));

    let (a1, b1, c1, c2) = (
        net.camera(&page, "c-0001"),
        net.camera(&page, "c-0002"),
        net.camera(&page, "c-0003"),
        net.camera(&page, "c-0004"),
    );
    let astana_recorder = page
        .cameras
        .iter()
        .find(|x| x.camera.id == c1)
        .unwrap()
        .recorder
        .clone();

    // Users of each kind, each scoped.
    for (name, role, scope) in [
        ("op.almaty", "operator", ALMATY),
        ("inv.almaty", "investigator", ALMATY),
        ("radm.astana", "regional_admin", ASTANA),
    ] {
        c.create_user(&net.admin, name, PASSWORD, role, &[scope])
            .await
            .unwrap();
    }
    let op = c.login("op.almaty", PASSWORD).await.unwrap();
    let inv = c.login("inv.almaty", PASSWORD).await.unwrap();
    let radm = c.login("radm.astana", PASSWORD).await.unwrap();
    let guess = CameraId::generate().to_string();
    let (start, end) = range_last(600);
    let token = |cam: &str, purpose: &str, ranged: bool| {
        let mut b = json!({"camera": cam, "purpose": purpose});
        if ranged {
            b["start"] = json!(start);
            b["end"] = json!(end);
        }
        b
    };

    // The authorisation matrix: endpoint × role × region, guessed and malformed ids.
    // Out of scope: 404; in scope with the wrong role: 403; never any data.
    let get = Method::GET;
    let post = Method::POST;
    let put = Method::PUT;
    let del = Method::DELETE;
    let camera_body = json!({"name": "x", "region": "751110000", "class": "city", "streams": []});
    let cases: Vec<Case> = vec![
        (
            "op",
            &op,
            get.clone(),
            format!("/api/v1/cameras/{a1}"),
            None,
            200,
        ),
        (
            "op",
            &op,
            get.clone(),
            format!("/api/v1/cameras/{c1}"),
            None,
            404,
        ),
        (
            "op",
            &op,
            get.clone(),
            format!("/api/v1/cameras/{guess}"),
            None,
            404,
        ),
        (
            "op",
            &op,
            get.clone(),
            "/api/v1/cameras/not-an-id".into(),
            None,
            404,
        ),
        (
            "op",
            &op,
            get.clone(),
            format!("/api/v1/recorders/{astana_recorder}"),
            None,
            404,
        ),
        (
            "op",
            &op,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&a1, "live", false)),
            200,
        ),
        (
            "op",
            &op,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&a1, "playback", true)),
            403,
        ),
        (
            "op",
            &op,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&c1, "live", false)),
            404,
        ),
        (
            "op",
            &op,
            post.clone(),
            "/api/v1/enrolment-tokens".into(),
            Some(json!({"region": ALMATY})),
            403,
        ),
        (
            "op",
            &op,
            put.clone(),
            format!("/api/v1/cameras/{a1}"),
            Some(camera_body.clone()),
            403,
        ),
        ("op", &op, get.clone(), "/api/v1/users".into(), None, 404),
        ("op", &op, get.clone(), "/api/v1/audit".into(), None, 404),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&a1, "playback", true)),
            200,
        ),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&a1, "export", true)),
            200,
        ),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&c1, "playback", true)),
            404,
        ),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&guess, "playback", true)),
            404,
        ),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/recordings/query".into(),
            Some(json!({"cameras": [a1, b1], "start": start, "end": end})),
            200,
        ),
        (
            "inv",
            &inv,
            post.clone(),
            "/api/v1/recordings/query".into(),
            Some(json!({"cameras": [a1, c1], "start": start, "end": end})),
            404,
        ),
        (
            "inv",
            &inv,
            del.clone(),
            format!("/api/v1/cameras/{c1}"),
            None,
            404,
        ),
        (
            "inv",
            &inv,
            del.clone(),
            format!("/api/v1/cameras/{a1}"),
            None,
            403,
        ),
        (
            "radm",
            &radm,
            get.clone(),
            format!("/api/v1/cameras/{c1}"),
            None,
            200,
        ),
        (
            "radm",
            &radm,
            get.clone(),
            format!("/api/v1/recorders/{astana_recorder}"),
            None,
            200,
        ),
        (
            "radm",
            &radm,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&c1, "playback", true)),
            403,
        ),
        (
            "radm",
            &radm,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&c1, "live", false)),
            200,
        ),
        (
            "radm",
            &radm,
            post.clone(),
            "/api/v1/media-tokens".into(),
            Some(token(&a1, "live", false)),
            404,
        ),
        (
            "radm",
            &radm,
            post.clone(),
            "/api/v1/enrolment-tokens".into(),
            Some(json!({"region": ASTANA})),
            201,
        ),
        (
            "radm",
            &radm,
            post.clone(),
            "/api/v1/enrolment-tokens".into(),
            Some(json!({"region": ALMATY})),
            404,
        ),
        (
            "radm",
            &radm,
            put.clone(),
            format!("/api/v1/cameras/{a1}"),
            Some(camera_body.clone()),
            404,
        ),
        (
            "radm",
            &radm,
            get.clone(),
            "/api/v1/users".into(),
            None,
            404,
        ),
        (
            "admin",
            &net.admin,
            get.clone(),
            "/api/v1/users".into(),
            None,
            200,
        ),
        (
            "admin",
            &net.admin,
            get.clone(),
            "/api/v1/audit?limit=5".into(),
            None,
            200,
        ),
    ];
    for (who, session, method, path, body, expected) in &cases {
        for session in [Some(*session), None] {
            let mut r = c.request(method.clone(), path, session);
            if let Some(b) = body {
                r = r.json(b);
            }
            let (status, v) = status_and_body(r).await;
            let want = if session.is_some() { *expected } else { 401 };
            assert_eq!(status.as_u16(), want, "{who} {method} {path}: {v}");
            if !status.is_success() {
                let keys: Vec<&String> = v
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                assert_eq!(
                    keys,
                    ["error"],
                    "{who} {method} {path}: a refusal carries only the error"
                );
            }
        }
    }

    // Federated: both Almaty cameras, from two recorders, with recorded ranges.
    let fed: wire::FederatedRecordings = c
        .post(
            &inv,
            "/api/v1/recordings/query",
            &json!({"cameras": [a1, b1], "start": start, "end": end}),
        )
        .await
        .unwrap();
    assert!(fed.complete && fed.missing.is_empty(), "{fed:?}");
    assert_eq!(fed.results.len(), 2);
    assert!(
        fed.results.iter().all(|r| !r.recordings.ranges.is_empty()),
        "{fed:?}"
    );

    // Media: a token is good for its camera, purpose and range only, checked by the
    // recorder offline; the recorders have no public address, so central relays.
    let playback: wire::MediaTokenResponse = c
        .post(&inv, "/api/v1/media-tokens", &token(&a1, "playback", true))
        .await
        .unwrap();
    assert!(playback.relayed);
    let q = format!(
        "stream=main&start={}&end={}",
        urlencode(&start),
        urlencode(&end)
    );
    let relayed = |cam: &str, leaf: &str, t: &str, base: &str| {
        let q = if leaf == "snapshot.jpg" {
            "stream=main"
        } else {
            q.as_str()
        };
        format!(
            "{}{base}/api/v1/cameras/{cam}/{leaf}?{q}&token={}",
            c.url(""),
            urlencode(t)
        )
    };
    // The playlist plays once the camera's first fragment is durable (a stream counts as
    // recording as soon as it is connected).
    let text = eventually(Duration::from_secs(10), || {
        served(relayed(
            &a1,
            "playback.m3u8",
            &playback.token,
            &playback.base_url,
        ))
    })
    .await
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .expect("a playlist of the camera's footage");
    assert!(text.starts_with("#EXTM3U"), "{text}");
    // The same token for another camera of another recorder: that recorder refuses it.
    let astana_base = format!("/api/v1/recorders/{astana_recorder}/relay");
    let resp = reqwest::get(relayed(&c1, "playback.m3u8", &playback.token, &astana_base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a token for another recorder");
    // A token for one camera, used on another camera of the same recorder.
    let live_c1: wire::MediaTokenResponse = c
        .post(&radm, "/api/v1/media-tokens", &token(&c1, "live", false))
        .await
        .unwrap();
    let resp = reqwest::get(relayed(
        &c2,
        "snapshot.jpg",
        &live_c1.token,
        &live_c1.base_url,
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 403, "a token for another camera");
    // A live token used for playback.
    let resp = reqwest::get(relayed(
        &c1,
        "playback.m3u8",
        &live_c1.token,
        &live_c1.base_url,
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 403, "a token for another purpose");
    // And the right one: a live snapshot, a real JPEG, once the camera's first fragment is
    // durable (a stream counts as recording as soon as it is connected).
    let jpeg = eventually(Duration::from_secs(10), || {
        served(relayed(
            &c1,
            "snapshot.jpg",
            &live_c1.token,
            &live_c1.base_url,
        ))
    })
    .await
    .expect("a live snapshot");
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
    // A session token is never relayed: the relay carries media tokens only.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}{}/api/v1/cameras/{a1}/playback.m3u8?{q}",
            c.url(""),
            playback.base_url
        ))
        .bearer_auth(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a session token at the relay");
    // The relay carries nothing but media.
    let resp = reqwest::get(format!("{}{}/api/v1/cameras", c.url(""), live_c1.base_url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Evidence from an enrolled recorder chains to central's root (the certificate central
    // really issued); against another root it fails.
    let ev: wire::MediaTokenResponse = c
        .post(&inv, "/api/v1/media-tokens", &token(&a1, "evidence", true))
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}{}/api/v1/cameras/{a1}/evidence?token={}",
            c.url(""),
            ev.base_url,
            urlencode(&ev.token)
        ))
        .json(
            &json!({"stream": "main", "start": start, "end": end, "case": "KZ-1",
            "reason": "test", "operator": "inv.almaty"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let package = net.central_dirs.data.join("package.tar");
    std::fs::write(&package, resp.bytes().await.unwrap()).unwrap();
    let root = net.central_dirs.data.join("root-cert.pem");
    let verify = |root: &std::path::Path| {
        std::process::Command::new(workspace_binary("vms-recorder"))
            .arg("verify")
            .arg(&package)
            .arg("--trusted-root")
            .arg(root)
            .output()
            .unwrap()
    };
    let out = verify(&root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let other = CentralDirs::new("");
    let other_central = RemoteCentral::start(&other).expect("another central starts");
    drop(other_central);
    let out = verify(&other.data.join("root-cert.pem"));
    assert!(
        !out.status.success(),
        "a package certified under another root fails"
    );

    // Central logged the tokens it issued.
    let audit: wire::AuditPage = c
        .get(
            &net.admin,
            "/api/v1/audit?log=central&action=token_issued&limit=1000",
        )
        .await
        .unwrap();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.camera.as_deref() == Some(&a1))
    );
    drop(net.sim);
}

/// One row of the authorisation matrix: who, their session, the request, the status.
type Case<'a> = (&'a str, &'a str, Method, String, Option<Value>, u16);

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_recorder_is_flagged_within_the_deadline_and_rejoins_without_duplicates() {
    let mut net = Network::start().await;
    let c = &net.central;
    let page = net.wait_listed(4).await;
    let (a1, c1) = (net.camera(&page, "c-0001"), net.camera(&page, "c-0003"));
    let (start, end) = range_last(600);

    let (dirs, rec) = net.recorders.pop().expect("the Astana recorder");
    rec.process.kill9();
    let deadline_ms = 500;
    let t0 = Instant::now();
    let fed: wire::FederatedRecordings = c
        .post(
            &net.admin,
            "/api/v1/recordings/query",
            &json!({"cameras": [a1, c1], "start": start, "end": end, "deadline_ms": deadline_ms}),
        )
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(deadline_ms + 300),
        "took {took:?}"
    );
    assert!(!fed.complete);
    assert_eq!(fed.results.len(), 1);
    assert_eq!(fed.results[0].camera, a1);
    assert_eq!(fed.missing.len(), 1, "{fed:?}");
    assert_eq!(fed.missing[0].region, ASTANA);
    assert_eq!(fed.missing[0].cameras.len(), 1);

    // Flagged, not deleted.
    let flagged = eventually(Duration::from_secs(10), || async {
        let p = c
            .directory(&net.admin, "status=recorder_offline")
            .await
            .ok()?;
        (p.total == 2).then_some(p)
    })
    .await
    .expect("the Astana cameras are flagged");
    assert!(flagged.cameras.iter().all(|x| !x.recorder_online));
    assert_eq!(c.directory(&net.admin, "").await.unwrap().total, 4);

    // Back: the same recorder, its enrolment kept; the catalog converges, nothing doubled.
    let rec = RemoteRecorder::start(&dirs).expect("recorder restarts");
    let page = net.wait_listed(4).await;
    let mut ids: Vec<&str> = page.cameras.iter().map(|x| x.camera.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    net.recorders.push((dirs, rec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_goes_on_without_central_and_the_audit_resyncs_then_verifies() {
    let net = Network::start().await;
    let Network {
        sim,
        central_dirs,
        central,
        admin: _,
        recorders,
    } = net;
    let (dirs, rec) = &recorders[0];
    let cameras = rec.cameras().await.unwrap();
    let cam = cameras.cameras[0].id.clone();

    central
        .process
        .terminate(Duration::from_secs(10))
        .expect("central stops");
    // Central is gone: the recorder records on and serves its local administrator, who
    // leaves audit records.
    let before = recorded_until(rec, &cam).await;
    let later = eventually(Duration::from_secs(30), || async {
        let t = recorded_until(rec, &cam).await;
        (t > before + jiff::SignedDuration::from_secs(3)).then_some(t)
    })
    .await;
    assert!(later.is_some(), "recording goes on without central");
    let (start, end) = range_last(300);
    for _ in 0..3 {
        let resp = rec
            .request(Method::GET, &format!("/api/v1/cameras/{cam}/playback.m3u8"))
            .query(&[
                ("stream", "main"),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let local_seq = audit_lines(&dirs.data);
    assert!(local_seq >= 3);

    // Central back: the copy catches up, every record once, in order.
    let central = RemoteCentral::start(&central_dirs).expect("central restarts");
    let admin = central
        .login("admin", &central_dirs.admin_password)
        .await
        .unwrap();
    let recorder = rec.ready.recorder.clone();
    let copy = eventually(Duration::from_secs(30), || async {
        let page: wire::AuditPage = central
            .get(&admin, &format!("/api/v1/audit?log={recorder}&limit=1000"))
            .await
            .ok()?;
        (page.entries.len() as u64 >= local_seq && page.checkpoint.is_some()).then_some(page)
    })
    .await
    .expect("central's copy of the recorder's audit log catches up");
    let seqs: Vec<u64> = copy.entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no duplicate, no gap"
    );
    assert!(
        copy.entries
            .iter()
            .filter(|e| e.action == "playback")
            .count()
            >= 3
    );
    let checkpoint = copy.checkpoint.expect("a signed checkpoint");

    central
        .process
        .terminate(Duration::from_secs(10))
        .expect("central stops");
    let (ok, verdict) = central_dirs.audit_verify();
    assert!(ok, "{verdict}");

    // Truncating the recorder's log is caught against central's checkpoint.
    // (A copy with the newest records up to the checkpointed one cut off: the chain of what
    // is left is intact, so only the checkpoint can tell.)
    let log = dirs.data.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    let cut = usize::try_from(checkpoint.seq).unwrap() - 1;
    let truncated = kept[..cut].join("\n") + "\n";
    let checkpoint_arg = format!("{}:{}", checkpoint.seq, checkpoint.hash);
    let tampered = dirs.data.join("audit-truncated.log");
    std::fs::write(&tampered, truncated).unwrap();
    let chain_only = std::process::Command::new(workspace_binary("vms-recorder"))
        .args(["audit-verify", "--log"])
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(
        chain_only.status.success(),
        "the chain alone cannot see a cut end"
    );
    let out = std::process::Command::new(workspace_binary("vms-recorder"))
        .args(["audit-verify", "--log"])
        .arg(&tampered)
        .args(["--checkpoint", &checkpoint_arg])
        .output()
        .unwrap();
    let says = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "truncation below the checkpoint is caught: {says}"
    );
    assert!(says.starts_with("FAILED:"), "{says}");
    let out = std::process::Command::new(workspace_binary("vms-recorder"))
        .args(["audit-verify", "--log"])
        .arg(&log)
        .args(["--checkpoint", &checkpoint_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(sim);
}

/// Where a camera's recorded ranges end now.
async fn recorded_until(rec: &RemoteRecorder, cam: &str) -> jiff::Timestamp {
    let (start, end) = range_last(600);
    let r = rec.recordings(cam, "main", &start, &end).await.unwrap();
    r.ranges
        .last()
        .map(|x| x.end.parse().unwrap())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// How many records a recorder's audit log holds.
fn audit_lines(data: &std::path::Path) -> u64 {
    std::fs::read_to_string(data.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clean_refusals() {
    let dirs = CentralDirs::new("");
    let c = RemoteCentral::start(&dirs).expect("central starts");
    let admin = c.login("admin", &dirs.admin_password).await.unwrap();
    // Oversized and malformed bodies, malformed ids and queries.
    let big = "x".repeat(100 * 1024);
    let cases: Vec<(Method, &str, Option<String>, u16)> = vec![
        (
            Method::POST,
            "/api/v1/users",
            Some(format!("{{\"username\":\"{big}\"}}")),
            413,
        ),
        (Method::POST, "/api/v1/users", Some("{not json".into()), 400),
        (
            Method::POST,
            "/api/v1/media-tokens",
            Some("{\"camera\":\"../../etc\",\"purpose\":\"live\"}".into()),
            404,
        ),
        (
            Method::POST,
            "/api/v1/media-tokens",
            Some(format!(
                "{{\"camera\":\"{}\",\"purpose\":\"x\"}}",
                CameraId::generate()
            )),
            400,
        ),
        (Method::GET, "/api/v1/cameras?limit=0", None, 400),
        (Method::GET, "/api/v1/cameras?region=12", None, 400),
        (Method::GET, "/api/v1/cameras?bbox=1,2,3", None, 400),
        (Method::GET, "/api/v1/cameras?cursor=%00%ff", None, 400),
        (Method::GET, "/api/v1/users/%2e%2e", None, 404),
        (
            Method::POST,
            "/api/v1/enrolment-tokens",
            Some("{\"region\":\"750000000\",\"ttl_secs\":1}".into()),
            400,
        ),
        (
            Method::POST,
            "/api/v1/recordings/query",
            Some("{\"cameras\":[],\"start\":\"x\",\"end\":\"y\"}".into()),
            400,
        ),
        (
            Method::GET,
            "/api/v1/recorders/01ARZ3NDEKTSV4RRFFQ69G5FAV/relay/api/v1/cameras",
            None,
            404,
        ),
    ];
    for (method, path, body, want) in cases {
        let mut r = c.request(method.clone(), path, Some(&admin));
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let (status, v) = status_and_body(r).await;
        assert_eq!(status.as_u16(), want, "{method} {path}: {v}");
        assert!(
            v.get("error").and_then(|e| e.get("code")).is_some(),
            "{method} {path}: {v}"
        );
    }
    // Bad sessions.
    for bad in ["", "garbage", &"a".repeat(5000)] {
        let (status, _) =
            status_and_body(c.request(Method::GET, "/api/v1/auth/me", Some(bad))).await;
        assert_eq!(status, 401);
    }
    // A login flood: refused with 429 and Retry-After, the right password included.
    let mut limited = None;
    for _ in 0..8 {
        let resp = c
            .request(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({"username": "admin", "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = resp.headers().get("retry-after").cloned();
            break;
        }
        assert_eq!(resp.status(), 401);
    }
    assert!(limited.is_some(), "the flood is limited with Retry-After");
    let resp = c
        .request(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"username": "admin", "password": dirs.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "even the right password waits");
    // Central still serves.
    let (status, _) =
        status_and_body(c.request(Method::GET, "/api/v1/auth/me", Some(&admin))).await;
    assert_eq!(status, 200);

    // Enrolment with a forged or spent token is refused, and a recorder outside the
    // token's region is refused too; the recorder records regardless.
    let token = c.enrolment_token(&admin, ALMATY).await.unwrap();
    let sim = sim(
        "[[camera]]\nname = \"e\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 10\ngop_frames = 10\n",
    );
    let cams = camera_toml_in("e", "711110000", &[("main", sim.url("e", "main", None))]);
    let extra = format!(
        "{cams}\n{}",
        vms_tests::central::central_toml(&c, &token, "astray", ASTANA)
    );
    let rdirs = RecorderDirs::new(&extra);
    let rec = RemoteRecorder::start(&rdirs).expect("recorder starts");
    let recording = eventually(Duration::from_secs(20), || async {
        let l = rec.cameras().await.ok()?;
        l.cameras[0].streams[0].status.connected.then_some(())
    })
    .await;
    assert!(
        recording.is_some(),
        "a recorder central refused still records"
    );
    assert!(!rdirs.data.join("central/enrolment.json").exists());
    let recorders: wire::RecorderList = c.get(&admin, "/api/v1/recorders").await.unwrap();
    assert!(recorders.recorders.is_empty());
}

/// The body of a `200` answer to a GET of `url`; `None` for any other answer.
async fn served(url: String) -> Option<bytes::Bytes> {
    let resp = reqwest::get(url).await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.bytes().await.ok()
}
