//! The recorder against `spec/openapi/recorder.yaml`, and against the paths of
//! `spec/openapi/channel.yaml` it serves to central: a real recorder with a simulated camera,
//! driven with valid and invalid requests, the administrator token and media tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use vms_core::id::{CameraId, RecorderId, UserId};
use vms_core::token::{self, Claims, Purpose, TokenKey};
use vms_tests::camsim::remote::RemoteSim;
use vms_tests::camsim::stream::Fault;
use vms_tests::recorder::{ADMIN_TOKEN, RecorderDirs, RemoteRecorder};

use super::probe::{
    Auth, Checker, Req, Transport, UNKNOWN_ID, refused_port, req, rfc3339_from_now,
};
use super::spec::Spec;

/// The media-token purposes that grant an operation (`x-token-purposes`); none for
/// administration.
fn token_purposes(op: &Value) -> Result<Vec<Purpose>, String> {
    let list = op
        .get("x-token-purposes")
        .and_then(Value::as_array)
        .ok_or("no x-token-purposes list")?;
    list.iter()
        .map(|p| {
            serde_json::from_value(p.clone()).map_err(|e| format!("x-token-purposes {p}: {e}"))
        })
        .collect()
}

/// The recorder's own rule: an operation that needs a token lists the media-token purposes
/// that grant it (`x-token-purposes`, empty for administration) and documents the `403` of a
/// token that does not; one that needs no token lists none.
pub fn operation_rules(spec: &Spec, name: &str, op: &Value, _item: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let secured = spec.secured(op);
    if secured && op["responses"].get("403").is_none() {
        problems.push(format!("{name}: takes media tokens but documents no 403"));
    }
    match token_purposes(op) {
        Ok(_) if !secured => {
            problems.push(format!("{name}: needs no token, yet has x-token-purposes"))
        }
        Err(e) if secured => problems.push(format!("{name}: {e}")),
        _ => {}
    }
    problems
}

/// The `/metrics` families and labels against `x-prometheus-families`.
fn check_metrics(c: &mut Checker, text: &str) {
    let media = &c.spec.doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    let documented: BTreeMap<String, (String, BTreeSet<String>)> = media
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, m)| {
            m["x-prometheus-families"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|f| {
            let labels = f["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect();
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                (f["type"].as_str().unwrap_or_default().to_owned(), labels),
            )
        })
        .collect();
    if documented.is_empty() {
        c.problem("/metrics: no x-prometheus-families in the document".into());
        return;
    }
    let mut served: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                served.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (name, labels) = parse_sample(line);
            match documented.get(&name) {
                None => c.problem(format!("/metrics: undocumented sample {line:?}")),
                Some((_, want)) if *want != labels => c.problem(format!(
                    "/metrics: {line:?} has labels {labels:?}, the document {want:?}"
                )),
                Some(_) => {}
            }
        }
    }
    let documented_types: BTreeMap<String, String> = documented
        .iter()
        .map(|(n, (t, _))| (n.clone(), t.clone()))
        .collect();
    if served != documented_types {
        c.problem(format!(
            "/metrics families differ: served {served:?}, documented {documented_types:?}"
        ));
    }
}

/// A Prometheus sample line's metric name and label names.
fn parse_sample(line: &str) -> (String, BTreeSet<String>) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line[..name_end].to_owned();
    let mut labels = BTreeSet::new();
    if line[name_end..].starts_with('{') {
        let (mut key, mut in_value, mut escaped) = (String::new(), false, false);
        for c in line[name_end + 1..].chars() {
            if in_value {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_value = false,
                    _ => {}
                }
            } else {
                match c {
                    '=' => {
                        labels.insert(std::mem::take(&mut key));
                    }
                    '"' => in_value = true,
                    ',' | ' ' => {}
                    '}' => break,
                    _ => key.push(c),
                }
            }
        }
    }
    (name, labels)
}

/// A media token of central's key for `recorder`, camera `UNKNOWN_ID`, every stream and the
/// last hour (unless `live`).
fn media_token(key: &ed25519_dalek::SigningKey, recorder: RecorderId, pur: Purpose) -> String {
    let now = jiff::Timestamp::now().as_second();
    let ranged = pur != Purpose::Live;
    let claims = Claims {
        ver: 1,
        iss: "vms-tests".into(),
        aud: recorder,
        sub: UserId::generate(),
        name: "openapi".into(),
        cam: UNKNOWN_ID.parse::<CameraId>().expect("an id"),
        stream: token::ANY_STREAM.into(),
        pur,
        from: ranged.then_some(now - 3600),
        to: ranged.then_some(now),
        iat: now,
        exp: now + 300,
        jti: UserId::generate().to_string(),
    };
    token::issue(key, &claims).expect("a token")
}

/// The query or body that an operation needs to get as far as authorisation.
fn well_formed(r: Req) -> Req {
    let range = format!(
        "stream=main&start={}&end={}",
        rfc3339_from_now(-120),
        rfc3339_from_now(-60)
    );
    let body = json!({"stream": "main", "start": rfc3339_from_now(-120),
        "end": rfc3339_from_now(-60), "case": "C-1", "reason": "openapi", "operator": "op"});
    match r.template.as_str() {
        RECORDINGS | PLAYBACK | EXPORT | TRANSCODED => r.query(&range),
        SNAPSHOT | SEGMENT => r.query("stream=main"),
        EVIDENCE | CAMERA_HOLDS => r.json(&body),
        CAMERAS | CAMERA if r.method != Method::GET && r.method != Method::DELETE => {
            r.json(&json!({}))
        }
        _ => r,
    }
}

const CAMERAS: &str = "/api/v1/cameras";
const CAMERA: &str = "/api/v1/cameras/{id}";
const CONFORMANCE: &str = "/api/v1/cameras/{id}/conformance";
const RECORDINGS: &str = "/api/v1/cameras/{id}/recordings";
const CAMERA_HOLDS: &str = "/api/v1/cameras/{id}/holds";
const PLAYBACK: &str = "/api/v1/cameras/{id}/playback.m3u8";
const SEGMENT: &str = "/api/v1/cameras/{id}/segments/{file}";
const EXPORT: &str = "/api/v1/cameras/{id}/export.mp4";
const SNAPSHOT: &str = "/api/v1/cameras/{id}/snapshot.jpg";
const TRANSCODED: &str = "/api/v1/cameras/{id}/transcoded.mp4";
const EVIDENCE: &str = "/api/v1/cameras/{id}/evidence";
const HOLDS: &str = "/api/v1/holds";
const HOLD: &str = "/api/v1/holds/{id}";
const RECORDINGS_QUERY: &str = "/api/v1/recordings/query";
const EVENTS: &str = "/api/v1/channel/events";

/// A real recorder serves exactly the documented operations and answers them as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_recorder_serves_and_answers_as_the_openapi_document_says() {
    let sim = RemoteSim::start(
        Path::new(env!("CARGO_BIN_EXE_vms-camsim")),
        "[[camera]]\nname = \"spec\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\n\
         gop_frames = 15\nloop_secs = 2\n",
    )
    .expect("simulator starts");
    let dirs = RecorderDirs::new(
        "stall_timeout_secs = 2\nsegment_secs = 10\nconformance_probe_secs = 10\n",
    );
    // Central's token key, where enrolment leaves it.
    let central_key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    vms_recorder::auth::store_token_keys(&dirs.data, &[TokenKey::new(central_key.verifying_key())])
        .expect("token keys");
    // The config ends in the [[storage]] table: a quota gives every storage family a sample.
    let mut config = std::fs::read_to_string(&dirs.config).expect("config");
    config.push_str("quota_bytes = 1000000000000\n");
    std::fs::write(&dirs.config, config).expect("config");
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let mut c = Checker::new(
        Spec::load("recorder.yaml"),
        Transport::http(rec.url("")),
        ADMIN_TOKEN,
        None,
    );
    c.check_served().await;
    c.check_authentication().await;
    c.check_body_limit().await;
    let operations = c.operations();

    // Authorisation: a media token that verifies but does not grant the request gets 403, on
    // an administration route or with a purpose the route does not take. Routes that look up a
    // resource of their path first (a segment, a hold) answer 404 for an unknown one.
    let recorder: RecorderId = rec.ready.recorder.parse().expect("the recorder's id");
    for (method, path) in &operations {
        let method: Method = method.parse().expect("an HTTP method");
        let Some(op) = c.spec.operation(&method, path) else {
            continue;
        };
        if !c.spec.secured(op) {
            continue;
        }
        let granted = token_purposes(op).unwrap_or_default();
        let Some(purpose) = [
            Purpose::Live,
            Purpose::Playback,
            Purpose::Snapshot,
            Purpose::Export,
            Purpose::Evidence,
            Purpose::Hold,
        ]
        .into_iter()
        .find(|p| !granted.contains(p)) else {
            continue;
        };
        let token = media_token(&central_key, recorder, purpose);
        let r = well_formed(req(method.clone(), path).unknown_ids()).bearer(&token);
        let looks_up_first = matches!(path.as_str(), SEGMENT | HOLD);
        if let Some(reply) = c.send(&r, false).await
            && reply.status != 403
            && !(looks_up_first && reply.status == 404)
        {
            c.problem(format!(
                "{method} {path} with a {purpose} token: {}, not 403: {}",
                reply.status,
                reply.body_text()
            ));
        }
    }

    c.expect(req(Method::GET, "/api/v1/health").auth(Auth::Missing), 200)
        .await;

    // Cameras: one on the simulator, one on a port that refuses connections.
    let camera_a = json!({
        "name": "Spec camera A",
        "region": "751110000",
        "class": "city",
        "code": "75111000013100000001",
        "streams": [{"name": "main", "url": sim.url("spec", "main", None), "transport": "tcp"}],
        "installed_by": "an unknown field, ignored"
    });
    let refused = refused_port();
    let camera_b = json!({
        "name": "Spec camera B",
        "region": "711110000",
        "class": "safe_yard",
        "code": null,
        "streams": [
            {"name": "main", "url": format!("rtsp://127.0.0.1:{refused}/b/main"),
             "username": "operator", "password": "camera-password", "transport": "udp"},
            {"name": "sub", "url": format!("rtsp://127.0.0.1:{refused}/b/sub")}
        ]
    });
    c.valid_body(&Method::POST, CAMERAS, &camera_a);
    c.valid_body(&Method::POST, CAMERAS, &camera_b);
    let a = c
        .expect(req(Method::POST, CAMERAS).json(&camera_a), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());
    let b = c
        .expect(req(Method::POST, CAMERAS).json(&camera_b), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());

    // Bodies the recorder refuses are invalid in the document too.
    let with = |path: &str, v: Value| {
        let mut body = camera_b.clone();
        *body.pointer_mut(path).expect("a field of the camera") = v;
        body
    };
    let without = |field: &str| {
        let mut body = camera_b.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    let bad_cameras = [
        (without("name"), "no name"),
        (without("streams"), "no streams"),
        (with("/name", json!("   ")), "a blank name"),
        (
            with("/name", json!("Gate\u{7}")),
            "a control character in the name",
        ),
        (
            with("/name", json!("x".repeat(129))),
            "a name of 129 characters",
        ),
        (with("/name", json!(5)), "a name that is a number"),
        (with("/region", json!("12")), "a short region"),
        (
            with("/region", json!("001110000")),
            "a region under no top-level region",
        ),
        (with("/class", json!("zoo")), "an unknown class"),
        (with("/code", json!("12ab")), "a code with letters"),
        (with("/code", json!("")), "an empty code"),
        (with("/code", json!("1".repeat(33))), "a code of 33 digits"),
        (with("/streams", json!([])), "no stream"),
        (
            with("/streams", json!({"name": "main"})),
            "streams that are not a list",
        ),
        (
            with(
                "/streams",
                json!(
                    (0..5)
                        .map(|i| json!({"name": format!("s{i}"), "url": "rtsp://127.0.0.1/x"}))
                        .collect::<Vec<_>>()
                ),
            ),
            "five streams",
        ),
        (
            with("/streams/0/name", json!("../x")),
            "a path in a stream name",
        ),
        (
            with("/streams/0/name", json!("Main")),
            "an upper-case stream name",
        ),
        (with("/streams/0/name", json!("")), "an empty stream name"),
        (
            with("/streams/0/url", json!("http://127.0.0.1/x")),
            "an http URL",
        ),
        (
            with("/streams/0/url", json!("rtsp://u:p@127.0.0.1/x")),
            "credentials in the URL",
        ),
        (
            with("/streams/0/url", json!("rtsp:///x")),
            "a URL without a host",
        ),
        (
            with("/streams/0/url", json!("rtsp://cam\u{e9}ra.local/x\u{81}")),
            "a URL that is not ASCII",
        ),
        (
            with("/streams/0/transport", json!("sctp")),
            "an unknown transport",
        ),
        (
            with("/streams/0/username", json!(null)),
            "a password without a user name",
        ),
    ];
    for (body, why) in bad_cameras {
        c.invalid_body(req(Method::POST, CAMERAS), &body, why).await;
    }
    c.expect(
        req(Method::POST, CAMERAS)
            .raw("application/json", b"{\"name\": ".to_vec())
            .note("truncated JSON"),
        400,
    )
    .await;
    c.expect(
        req(Method::POST, CAMERAS)
            .raw("text/plain", camera_b.to_string().into_bytes())
            .note("not declared as JSON"),
        400,
    )
    .await;
    // Reading cameras.
    c.expect(req(Method::GET, CAMERAS), 200).await;
    c.poll(
        || req(Method::GET, CAMERA).arg(&a),
        Duration::from_secs(30),
        "camera A records",
        |v| {
            v["streams"][0]["status"]["connected"] == true
                && v["streams"][0]["status"]["last_frame_age_ms"].is_u64()
        },
    )
    .await;
    c.expect(req(Method::GET, CAMERA).arg(&b), 200).await;
    c.expect(req(Method::GET, CAMERA).arg(UNKNOWN_ID), 404)
        .await;
    // Conformance: adding a camera started a check of its stream; a new one can be asked for.
    c.expect(req(Method::GET, CONFORMANCE).arg(&a), 200).await;
    c.expect(req(Method::POST, CONFORMANCE).arg(&a), 202).await;
    c.expect(req(Method::GET, CONFORMANCE).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::POST, CONFORMANCE).arg("not-an-id"), 404)
        .await;
    c.expect(req(Method::GET, CAMERA).arg("not-an-id"), 404)
        .await;

    // Changing a camera.
    let mut renamed = camera_b.clone();
    renamed["name"] = json!("Spec camera B, renamed");
    renamed["streams"][0]
        .as_object_mut()
        .expect("a stream")
        .remove("password");
    c.valid_body(&Method::PUT, CAMERA, &renamed);
    c.expect(req(Method::PUT, CAMERA).arg(&b).json(&renamed), 200)
        .await;
    c.expect(req(Method::PUT, CAMERA).arg(UNKNOWN_ID).json(&renamed), 404)
        .await;
    c.invalid_body(
        req(Method::PUT, CAMERA).arg(&b),
        &with("/region", json!("75")),
        "a short region",
    )
    .await;

    // Recordings: footage, then a gap while the simulator stalls.
    let listing = |id: &str, stream: &str| {
        req(Method::GET, RECORDINGS).arg(id).query(&format!(
            "stream={stream}&start={}&end={}",
            rfc3339_from_now(-600),
            rfc3339_from_now(60)
        ))
    };
    c.poll(
        || listing(&a, "main"),
        Duration::from_secs(30),
        "camera A has durable footage",
        |v| {
            v["ranges"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["frames"].as_u64() > Some(0)))
        },
    )
    .await;
    if let Err(e) = sim
        .fault(
            "spec",
            "main",
            &Fault::Stall {
                duration_ms: 120_000,
            },
        )
        .await
    {
        c.problem(format!("the simulator refused a stall: {e}"));
    }
    c.poll(
        || req(Method::GET, CAMERA).arg(&a),
        Duration::from_secs(30),
        "camera A reports its current gap",
        |v| v["streams"][0]["status"]["current_gap"].is_object(),
    )
    .await;
    c.poll(
        || listing(&a, "main"),
        Duration::from_secs(30),
        "camera A's listing shows a gap",
        |v| v["gaps"].as_array().is_some_and(|g| !g.is_empty()),
    )
    .await;
    c.expect(listing(&b, "sub"), 200).await;
    c.expect(listing(&a, "nope"), 404).await;
    c.expect(listing(UNKNOWN_ID, "main"), 404).await;
    c.expect(listing("not-an-id", "main"), 404).await;
    let (start, end) = (rfc3339_from_now(-600), rfc3339_from_now(0));
    for (query, why) in [
        (String::new(), "no parameters"),
        (format!("start={start}&end={end}"), "no stream"),
        (
            format!("stream=main&start={start}&end={end}&limit=5"),
            "an unknown parameter",
        ),
        (
            format!("stream=main&start={end}&end={start}"),
            "end before start",
        ),
        (
            format!("stream=main&start={start}&end={start}"),
            "an empty span",
        ),
        (
            format!(
                "stream=main&start={}&end={end}",
                rfc3339_from_now(-32 * 86_400)
            ),
            "a span over 31 days",
        ),
        (
            format!("stream=main&start=yesterday&end={end}"),
            "a start that is no time",
        ),
    ] {
        c.expect(
            req(Method::GET, RECORDINGS).arg(&a).query(&query).note(why),
            400,
        )
        .await;
    }

    // Playback: the stall closed camera A's segment, so there is a stored file to play.
    let span = format!(
        "stream=main&start={}&end={}",
        rfc3339_from_now(-600),
        rfc3339_from_now(60)
    );
    let playlist = c
        .send(&req(Method::GET, PLAYBACK).arg(&a).query(&span), false)
        .await
        .filter(|r| r.status == 200)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    let file = playlist
        .as_deref()
        .and_then(|p| p.lines().find(|l| l.starts_with("segments/")))
        .and_then(|l| l.strip_prefix("segments/"))
        .and_then(|l| l.split_once('?'))
        .map(|(f, _)| f.to_owned());
    c.expect(req(Method::GET, EXPORT).arg(&a).query(&span), 200)
        .await;
    c.expect(
        req(Method::GET, EXPORT)
            .arg(&a)
            .query(&format!("{span}&part=7")),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, EXPORT)
            .arg(&a)
            .query(&format!("{span}&part=-1")),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, SNAPSHOT).arg(&a).query(&format!(
            "stream=main&time={}&width=160",
            rfc3339_from_now(-600)
        )),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, SNAPSHOT)
            .arg(&a)
            .query("stream=main&width=5"),
        400,
    )
    .await;
    c.expect(req(Method::GET, SNAPSHOT).arg(&a).query("stream=main"), 200)
        .await;
    c.expect(req(Method::GET, TRANSCODED).arg(&a).query(&span), 200)
        .await;
    c.expect(
        req(Method::GET, TRANSCODED).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-7200),
            rfc3339_from_now(0)
        )),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, TRANSCODED).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-90_000),
            rfc3339_from_now(-89_000)
        )),
        404,
    )
    .await;
    let evidence = json!({"stream": "main", "start": rfc3339_from_now(-600),
        "end": rfc3339_from_now(60), "case": "KZ-2026-1", "reason": "drift check",
        "operator": "Tester"});
    c.valid_body(&Method::POST, EVIDENCE, &evidence);
    c.expect(req(Method::POST, EVIDENCE).arg(&a).json(&evidence), 200)
        .await;
    let mut no_case = evidence.clone();
    no_case["case"] = json!("");
    c.invalid_body(
        req(Method::POST, EVIDENCE).arg(&a),
        &no_case,
        "an empty case",
    )
    .await;
    c.expect(
        req(Method::POST, EVIDENCE).arg(UNKNOWN_ID).json(&evidence),
        404,
    )
    .await;
    match &file {
        Some(file) => {
            c.expect(
                req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main"),
                200,
            )
            .await;
            let ranged = Req {
                range: Some("bytes=0-99"),
                ..req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main")
            };
            if let Some(r) = c.send(&ranged, false).await
                && (r.status != 206 || r.body.len() != 100)
            {
                c.problem(format!(
                    "a range of 100 bytes got {} with {} bytes",
                    r.status,
                    r.body.len()
                ));
            }
            let past = Req {
                range: Some("bytes=999999999-"),
                ..req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main")
            };
            c.expect(past, 416).await;
            c.expect(
                req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=..%2F"),
                400,
            )
            .await;
        }
        None => c.problem(format!("no playlist with a media segment: {playlist:?}")),
    }
    c.expect(
        req(Method::GET, SEGMENT)
            .arg(&a)
            .arg("1.mp4")
            .query("stream=main"),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, SEGMENT)
            .arg(&a)
            .arg("%2e%2e.mp4")
            .query("stream=main"),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, PLAYBACK).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(0),
            rfc3339_from_now(-60)
        )),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, PLAYBACK).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-90_000),
            rfc3339_from_now(-89_000)
        )),
        404,
    )
    .await;

    // Evidence holds.
    let hold = json!({
        "stream": "main",
        "start": rfc3339_from_now(-600),
        "end": rfc3339_from_now(-60),
        "case": "KZ-2026-000123",
        "reason": "drift check of the OpenAPI document"
    });
    let mut whole_camera = hold.clone();
    whole_camera
        .as_object_mut()
        .expect("an object")
        .remove("stream");
    whole_camera["filed_by"] = json!("an unknown field, ignored");
    let mut null_stream = hold.clone();
    null_stream["stream"] = Value::Null;
    let mut hold_ids = Vec::new();
    for body in [&hold, &whole_camera, &null_stream] {
        c.valid_body(&Method::POST, CAMERA_HOLDS, body);
        if let Some(v) = c
            .expect(req(Method::POST, CAMERA_HOLDS).arg(&a).json(body), 201)
            .await
            && let Some(id) = v["id"].as_str()
        {
            hold_ids.push(id.to_owned());
        }
    }
    c.expect(
        req(Method::POST, CAMERA_HOLDS).arg(UNKNOWN_ID).json(&hold),
        404,
    )
    .await;
    c.expect(
        req(Method::POST, CAMERA_HOLDS).arg("not-an-id").json(&hold),
        404,
    )
    .await;
    let hold_with = |field: &str, v: Value| {
        let mut body = hold.clone();
        body[field] = v;
        body
    };
    let hold_without = |field: &str| {
        let mut body = hold.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    for (body, why) in [
        (hold_with("case", json!("")), "an empty case"),
        (
            hold_with("case", json!("c".repeat(129))),
            "a case of 129 characters",
        ),
        (hold_with("reason", json!("")), "an empty reason"),
        (
            hold_with("reason", json!("r".repeat(1025))),
            "a reason of 1025 characters",
        ),
        (hold_with("start", json!("soon")), "a start that is no time"),
        (hold_without("end"), "no end"),
        (hold_without("case"), "no case"),
        (hold_without("reason"), "no reason"),
    ] {
        c.invalid_body(req(Method::POST, CAMERA_HOLDS).arg(&a), &body, why)
            .await;
    }
    c.expect(req(Method::GET, HOLDS), 200).await;
    c.expect(req(Method::GET, "/api/v1/evidence/key"), 200)
        .await;
    c.expect(req(Method::GET, "/api/v1/evidence/key"), 200)
        .await;
    c.expect(req(Method::GET, HOLDS).query(&format!("camera={a}")), 200)
        .await;
    c.expect(req(Method::GET, HOLDS).query("camera=not-an-id"), 404)
        .await;
    for id in &hold_ids {
        c.expect(req(Method::DELETE, HOLD).arg(id), 204).await;
    }
    if let Some(id) = hold_ids.first() {
        c.expect(req(Method::DELETE, HOLD).arg(id), 404).await;
    }
    c.expect(req(Method::DELETE, HOLD).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::DELETE, HOLD).arg("not-an-id"), 404)
        .await;

    // Alerts and metrics.
    c.poll(
        || req(Method::GET, "/api/v1/alerts"),
        Duration::from_secs(30),
        "a stream_down alert for camera B",
        |v| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["kind"] == "stream_down"))
        },
    )
    .await;
    if let Some(reply) = c.send(&req(Method::GET, "/metrics"), false).await {
        if reply.status == 200 {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            check_metrics(&mut c, &text);
        } else {
            c.problem(format!("/metrics answered {}", reply.status));
        }
    }

    // What central asks over the channel, as recorder.yaml documents it and as channel.yaml
    // does, with the administrator token standing in for the channel.
    channel_operations(&mut c, &a, &b).await;
    let mut channel = Checker::new(
        Spec::load("channel.yaml"),
        Transport::http(rec.url("")),
        ADMIN_TOKEN,
        Some("recorder"),
    );
    channel.check_served().await;
    channel.check_body_limit().await;
    channel_operations(&mut channel, &a, &b).await;

    // The conformance check asked for above has finished with a whole report.
    c.poll(
        || req(Method::GET, CONFORMANCE).arg(&a),
        Duration::from_secs(40),
        "camera A's conformance report",
        |v| v["streams"][0]["state"] == "done" && v["streams"][0]["report"]["rules"].is_array(),
    )
    .await;

    // Removing a camera.
    c.expect(req(Method::DELETE, CAMERA).arg(&b), 204).await;
    c.expect(req(Method::DELETE, CAMERA).arg(&b), 404).await;
    c.expect(req(Method::DELETE, CAMERA).arg("not-an-id"), 404)
        .await;

    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    c.finish(&[]);
    channel.finish(&[400, 413]);
}

/// The recorder's side of the channel: the batch listing central fans out, and the event
/// stream, with cameras `a` (stream `main`) and `b` (streams `main` and `sub`).
async fn channel_operations(c: &mut Checker, a: &str, b: &str) {
    let (start, end) = (rfc3339_from_now(-600), rfc3339_from_now(60));
    let query = json!({"cameras": [a, b, UNKNOWN_ID, "not-an-id"], "stream": "main",
        "start": start, "end": end, "deadline_ms": 500, "asked_by": "an unknown field, ignored"});
    c.valid_body(&Method::POST, RECORDINGS_QUERY, &query);
    if let Some(v) = c
        .expect(req(Method::POST, RECORDINGS_QUERY).json(&query), 200)
        .await
    {
        let listed: Vec<&str> = v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["camera"].as_str())
            .collect();
        if listed != [a, b] || v["unknown"] != json!([UNKNOWN_ID, "not-an-id"]) {
            c.problem(format!("a batch listing of {a}, {b} and two unknowns: {v}"));
        }
    }
    let sub_only = json!({"cameras": [a, b], "stream": "sub", "start": start, "end": end});
    if let Some(v) = c
        .expect(req(Method::POST, RECORDINGS_QUERY).json(&sub_only), 200)
        .await
        && v["unknown"] != json!([a])
    {
        c.problem(format!("camera {a} has no stream sub, yet: {v}"));
    }
    let with = |field: &str, value: Value| {
        let mut body = query.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = query.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    for (body, why) in [
        (without("cameras"), "no cameras"),
        (without("end"), "no end"),
        (with("cameras", json!(a)), "cameras that are not a list"),
        (with("cameras", json!(vec![a; 1001])), "1001 cameras"),
        (with("start", json!("yesterday")), "a start that is no time"),
    ] {
        c.invalid_body(req(Method::POST, RECORDINGS_QUERY), &body, why)
            .await;
    }
    for (body, why) in [
        (with("end", json!(start)), "an empty span"),
        (
            with("start", json!(rfc3339_from_now(-32 * 86_400))),
            "a span over 31 days",
        ),
    ] {
        c.expect(
            req(Method::POST, RECORDINGS_QUERY).json(&body).note(why),
            400,
        )
        .await;
    }

    // The event stream: hello first, then the whole catalog for a reader that holds none...
    let events = |reply: &super::probe::Reply| -> Vec<Value> {
        reply
            .body
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect()
    };
    let Some(first) = c.send(&req(Method::GET, EVENTS), false).await else {
        return;
    };
    let first = events(&first);
    let full = first.iter().find(|e| e["type"] == "catalog_full");
    let has = |e: &Value, id: &str| {
        e["cameras"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["id"] == id))
    };
    match (first.first(), full) {
        (Some(hello), Some(full)) if hello["type"] == "hello" && has(full, a) && has(full, b) => {
            // ...and none for one that holds the current version.
            let resume = format!(
                "catalog_epoch={}&catalog_seq={}&audit_seq=0",
                full["epoch"].as_str().unwrap_or_default(),
                full["seq"]
            );
            if let Some(reply) = c
                .send(&req(Method::GET, EVENTS).query(&resume), false)
                .await
                && events(&reply).iter().any(|e| e["type"] == "catalog_full")
            {
                c.problem(format!("{EVENTS}?{resume} sent the whole catalog again"));
            }
        }
        _ => c.problem(format!(
            "{EVENTS}: not hello, then the catalog with {a} and {b}: {first:?}"
        )),
    }
    for (query, why) in [
        ("catalog_seq=-1", "a negative seq"),
        ("audit_seq=many", "an audit seq that is no number"),
    ] {
        c.expect(req(Method::GET, EVENTS).query(query).note(why), 400)
            .await;
    }
}
