//! Central against `spec/openapi/central.yaml`, and its recorder port against the central
//! paths of `spec/openapi/channel.yaml`: one real central with a real recorder enrolled over
//! the channel (so that camera changes, federated queries and the relay have someone to ask),
//! two recorders enrolled by hand (one with a `public_url`, one that never dials in), and a
//! user of every role.
//!
//! Beyond the checks every API gets, the role rule of `spec/central-roles.md` is checked
//! against `x-permission` and the code: every operation that checks a permission answers
//! `403` to each role without it, in scope, and `404` (or a list without the thing) to a user
//! whose scopes do not hold the thing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::EncodePublicKey;
use reqwest::Method;
use serde_json::{Value, json};
use vms_core::id::RecorderId;
use vms_tests::central::{CentralDirs, RemoteCentral, central_toml};
use vms_tests::recorder::{RecorderDirs, RemoteRecorder};

use super::probe::{Auth, Checker, Transport, UNKNOWN_ID, refused_port, req, rfc3339_from_now};
use super::spec::Spec;
use super::workspace_root;

const HEALTH: &str = "/api/v1/health";
const LOGIN: &str = "/api/v1/auth/login";
const LOGOUT: &str = "/api/v1/auth/logout";
const ME: &str = "/api/v1/auth/me";
const USERS: &str = "/api/v1/users";
const USER: &str = "/api/v1/users/{id}";
const RECORDERS: &str = "/api/v1/recorders";
const RECORDER: &str = "/api/v1/recorders/{id}";
const RECORDER_CAMERAS: &str = "/api/v1/recorders/{id}/cameras";
const RELAY: &str = "/api/v1/recorders/{id}/relay/{path}";
const ENROLMENT_TOKENS: &str = "/api/v1/enrolment-tokens";
const CAMERAS: &str = "/api/v1/cameras";
const CAMERA: &str = "/api/v1/cameras/{id}";
const QUERY: &str = "/api/v1/recordings/query";
const MEDIA_TOKENS: &str = "/api/v1/media-tokens";
const AUDIT: &str = "/api/v1/audit";
const ENROL: &str = "/api/v1/enrol";

/// The password of every user the test makes.
const PASSWORD: &str = "correct horse battery staple";
/// The whole republic.
const REPUBLIC: &str = "000000000";
/// The region of the real recorder: Almaty.
const ALMATY: &str = "750000000";
/// A district of Almaty, where the cameras are.
const DISTRICT: &str = "751110000";
/// A region outside Almaty: Astana.
const ASTANA: &str = "710000000";

/// The role table of `spec/central-roles.md`: the roles, and which of them has which
/// permission.
pub struct RoleTable {
    roles: Vec<String>,
    granted: BTreeMap<String, BTreeSet<String>>,
}

impl RoleTable {
    pub fn load() -> RoleTable {
        let path = workspace_root().join("spec/central-roles.md");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        };
        let header = text
            .lines()
            .find(|l| l.trim_start().starts_with("| permission"))
            .expect("spec/central-roles.md has the permission table");
        let roles: Vec<String> = cells(header).into_iter().skip(2).collect();
        let mut granted = BTreeMap::new();
        for line in text.lines().filter(|l| l.trim_start().starts_with("| `")) {
            let row = cells(line);
            let holders = roles
                .iter()
                .zip(row.iter().skip(2))
                .filter(|(_, yes)| yes.as_str() == "yes")
                .map(|(role, _)| role.clone())
                .collect();
            granted.insert(row[0].clone(), holders);
        }
        assert_eq!(
            roles,
            [
                "operator",
                "investigator",
                "regional_admin",
                "national_admin"
            ],
            "the roles of spec/central-roles.md"
        );
        assert_eq!(
            granted.len(),
            12,
            "the permissions of spec/central-roles.md"
        );
        RoleTable { roles, granted }
    }

    /// Whether `role` has `permission`.
    pub fn has(&self, role: &str, permission: &str) -> bool {
        self.granted
            .get(permission)
            .is_some_and(|roles| roles.contains(role))
    }

    /// The permission an operation checks (`x-permission`), with `by_purpose` standing for
    /// that of a `playback` token.
    fn permission(op: &Value) -> Option<&str> {
        op["x-permission"]
            .as_str()
            .map(|p| if p == "by_purpose" { "playback" } else { p })
    }

    /// Central's own rule: `x-permission` names a permission of the table (or `by_purpose`:
    /// every media-token purpose is one), only a session-secured operation has one, and one
    /// whose permission some role lacks documents the `403` of that role.
    pub fn operation_rules(&self, spec: &Spec, name: &str, op: &Value) -> Vec<String> {
        let Some(permission) = RoleTable::permission(op) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if !self.granted.contains_key(permission) {
            problems.push(format!(
                "{name}: x-permission {permission:?} is not in spec/central-roles.md"
            ));
        }
        if !spec.secured(op) {
            problems.push(format!(
                "{name}: x-permission on an operation without a session"
            ));
        }
        let lacking = self.roles.iter().any(|r| !self.has(r, permission));
        if lacking && op["responses"].get("403").is_none() {
            problems.push(format!(
                "{name}: some role lacks {permission}, yet no 403 is documented"
            ));
        }
        problems
    }
}

/// A user the test made, logged in.
struct User {
    id: String,
    role: &'static str,
    token: String,
}

/// An enrolment request of a recorder whose key is `key`, with a proof that verifies.
fn enrol_request(
    key: &ed25519_dalek::SigningKey,
    token: &str,
    recorder: &str,
    region: &str,
    public_url: Option<&str>,
) -> Value {
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("a PEM key");
    let proof = key.sign(&vms_core::wire::enrol_proof_bytes(token, recorder, &pem));
    json!({
        "token": token,
        "spec_versions": ["1.0"],
        "recorder": recorder,
        "name": format!("Hand-enrolled {region}"),
        "region": region,
        "public_key_pem": pem,
        "proof": vms_core::hex::encode(&proof.to_bytes()),
        "public_url": public_url,
    })
}

/// A real central (with a real recorder, two hand-enrolled ones and users of every role)
/// serves exactly the documented operations of its two ports and answers them as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_central_serves_and_answers_as_the_openapi_documents_say() {
    let dirs = CentralDirs::new("heartbeat_timeout_ms = 3000\n");
    let central = RemoteCentral::start(&dirs).expect("central starts");
    let admin = central
        .login("admin", &dirs.admin_password)
        .await
        .expect("the administrator logs in");
    let mut c = Checker::new(
        Spec::load("central.yaml"),
        Transport::http(central.url("")),
        &admin,
        None,
    );

    // Enrolment tokens: the real recorder enrols with one and dials in.
    let token_request = json!({"region": ALMATY, "ttl_secs": 600});
    c.valid_body(&Method::POST, ENROLMENT_TOKENS, &token_request);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        if let Some(v) = c
            .expect(
                req(Method::POST, ENROLMENT_TOKENS).json(&token_request),
                201,
            )
            .await
            && let Some(t) = v["token"].as_str()
        {
            tokens.push(t.to_owned());
        }
    }
    let [real_token, hand_token, offline_token] = &tokens[..] else {
        panic!("no enrolment tokens: {:?}", c.problems);
    };
    c.expect(
        req(Method::POST, ENROLMENT_TOKENS).json(&json!({"region": DISTRICT})),
        201,
    )
    .await;
    for (body, why) in [
        (json!({"region": "12"}), "a short region"),
        (json!({"region": ALMATY, "ttl_secs": 5}), "a ttl under 60 s"),
        (json!({"ttl_secs": 600}), "no region"),
    ] {
        c.invalid_body(req(Method::POST, ENROLMENT_TOKENS), &body, why)
            .await;
    }
    let recorder_dirs = RecorderDirs::new(&central_toml(&central, real_token, "Almaty", ALMATY));
    let recorder = RemoteRecorder::start(&recorder_dirs).expect("the recorder starts");
    let rec = recorder.ready.recorder.clone();
    c.poll(
        || req(Method::GET, RECORDERS),
        Duration::from_secs(30),
        "the recorder enrols and its channel comes up",
        |v| {
            v["recorders"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["id"] == rec && r["online"] == true))
        },
    )
    .await;

    // Cameras, added through central to the recorder, reach the directory.
    let refused = refused_port();
    let camera = |name: &str, streams: &[&str]| {
        json!({
            "name": name,
            "region": DISTRICT,
            "class": "city",
            "code": null,
            "streams": streams.iter().map(|s| json!({
                "name": s, "url": format!("rtsp://127.0.0.1:{refused}/{name}/{s}")
            })).collect::<Vec<_>>(),
        })
    };
    let mut located = camera("gate-a", &["main"]);
    located["location"] = json!({"lat_deg": 43.2389, "lon_deg": 76.8897});
    let mut cams = Vec::new();
    for body in [located, camera("gate-b", &["main", "sub"])] {
        c.valid_body(&Method::POST, RECORDER_CAMERAS, &body);
        if let Some(v) = c
            .expect(
                req(Method::POST, RECORDER_CAMERAS).arg(&rec).json(&body),
                201,
            )
            .await
            && let Some(id) = v["id"].as_str()
        {
            cams.push(id.to_owned());
        }
    }
    let [a, b] = &cams[..] else {
        panic!("no cameras: {:?}", c.problems);
    };
    c.poll(
        || req(Method::GET, CAMERAS),
        Duration::from_secs(30),
        "both cameras reach the directory",
        |v| v["total"] == 2,
    )
    .await;

    // Media tokens, for the relay to the recorder (it has no public_url).
    let media_token = |purpose: &str, ranged: bool| {
        let mut body = json!({"camera": a, "purpose": purpose});
        if ranged {
            body["start"] = json!(rfc3339_from_now(-3600));
            body["end"] = json!(rfc3339_from_now(60));
        }
        body
    };
    let mut media = BTreeMap::new();
    for (purpose, ranged) in [("playback", true), ("hold", true), ("live", false)] {
        let body = media_token(purpose, ranged);
        c.valid_body(&Method::POST, MEDIA_TOKENS, &body);
        if let Some(v) = c
            .expect(req(Method::POST, MEDIA_TOKENS).json(&body), 200)
            .await
        {
            if v["relayed"] != true || v["base_url"] != format!("/api/v1/recorders/{rec}/relay") {
                c.problem(format!("a token for a recorder without public_url: {v}"));
            }
            media.insert(purpose, v["token"].as_str().unwrap_or_default().to_owned());
        }
    }
    let (playback, hold, live) = (&media["playback"], &media["hold"], &media["live"]);

    // The checks every API gets; the relay is probed on the real recorder.
    let unknown_recordings = format!("api/v1/cameras/{UNKNOWN_ID}/recordings");
    let unknown_holds = format!("api/v1/cameras/{UNKNOWN_ID}/holds");
    let unknown_hold = format!("api/v1/holds/{UNKNOWN_ID}");
    c.set_probe(
        Method::GET,
        RELAY,
        &[&rec, &unknown_recordings],
        Some(playback),
    );
    c.set_probe(Method::POST, RELAY, &[&rec, &unknown_holds], Some(hold));
    c.set_probe(Method::DELETE, RELAY, &[&rec, &unknown_hold], Some(hold));
    c.set_probe(Method::POST, RECORDER_CAMERAS, &[&rec], None);
    c.set_probe(Method::PUT, CAMERA, &[a], None);
    // Logging out ends a session: not the checker's.
    let spare = central
        .login("admin", &dirs.admin_password)
        .await
        .expect("a second session");
    c.set_probe(Method::POST, LOGOUT, &[], Some(&spare));
    c.check_served().await;
    c.check_authentication().await;
    c.check_body_limit().await;

    sessions(&mut c, &dirs).await;
    let users = users(&mut c, &central).await;
    recorders_and_enrolment(&mut c, &dirs, &central, &rec, [hand_token, offline_token]).await;
    directory(&mut c, &rec, a, b).await;
    audit(&mut c).await;
    queries_and_tokens(&mut c, a, b).await;
    relay(&mut c, &rec, a, [playback, hold, live]).await;
    roles(&mut c, &users, &rec, a, b).await;

    // Removing a camera; then, with the recorder gone, what needs it is unavailable.
    c.expect(req(Method::DELETE, CAMERA).arg(b), 204).await;
    c.expect(req(Method::DELETE, CAMERA).arg(UNKNOWN_ID), 404)
        .await;
    recorder
        .process
        .terminate(Duration::from_secs(20))
        .expect("the recorder stops");
    c.poll(
        || req(Method::GET, RECORDER).arg(&rec),
        Duration::from_secs(30),
        "central sees the recorder go",
        |v| v["online"] == false,
    )
    .await;
    c.expect(
        req(Method::PUT, CAMERA)
            .arg(a)
            .json(&camera("gate-a", &["main"])),
        503,
    )
    .await;
    c.expect(req(Method::DELETE, CAMERA).arg(a), 503).await;
    c.expect(
        req(Method::GET, RELAY)
            .arg(&rec)
            .arg(&format!("api/v1/cameras/{a}/recordings"))
            .bearer(playback),
        503,
    )
    .await;
    let query =
        json!({"cameras": [a], "start": rfc3339_from_now(-600), "end": rfc3339_from_now(0)});
    if let Some(v) = c.expect(req(Method::POST, QUERY).json(&query), 200).await
        && (v["complete"] != false || v["missing"][0]["reason"] != "offline")
    {
        c.problem(format!("a query of an offline recorder's camera: {v}"));
    }
    c.expect(
        req(Method::GET, CAMERAS).query("status=recorder_offline"),
        200,
    )
    .await;

    central
        .process
        .terminate(Duration::from_secs(20))
        .expect("central stops");
    c.finish(&[400, 401, 403, 404, 409, 413, 429, 503]);
}

/// Login, the rate limit, the caller, logout.
async fn sessions(c: &mut Checker, dirs: &CentralDirs) {
    c.expect(req(Method::GET, HEALTH).auth(Auth::Missing), 200)
        .await;
    let login = json!({"username": "ADMIN", "password": dirs.admin_password,
        "device": "an unknown field, ignored"});
    c.valid_body(&Method::POST, LOGIN, &login);
    let session = c
        .expect(
            req(Method::POST, LOGIN).json(&login).auth(Auth::Missing),
            200,
        )
        .await
        .and_then(|v| v["token"].as_str().map(str::to_owned));
    for (body, why) in [
        (json!({"username": "admin"}), "no password"),
        (
            json!({"username": 5, "password": PASSWORD}),
            "a number for a name",
        ),
    ] {
        c.invalid_body(req(Method::POST, LOGIN).auth(Auth::Missing), &body, why)
            .await;
    }
    c.expect(
        req(Method::POST, LOGIN)
            .auth(Auth::Missing)
            .raw("application/json", b"{\"username\": ".to_vec())
            .note("truncated JSON"),
        400,
    )
    .await;
    let wrong = json!({"username": "admin", "password": "not the password at all"});
    c.expect(
        req(Method::POST, LOGIN).json(&wrong).auth(Auth::Missing),
        401,
    )
    .await;
    // Five failures for one name, then the limit.
    let guess = json!({"username": "locked.out", "password": "a guess, and a wrong one"});
    for _ in 0..5 {
        c.expect(
            req(Method::POST, LOGIN).json(&guess).auth(Auth::Missing),
            401,
        )
        .await;
    }
    c.expect(
        req(Method::POST, LOGIN).json(&guess).auth(Auth::Missing),
        429,
    )
    .await;

    c.expect(req(Method::GET, ME), 200).await;
    if let Some(s) = session {
        c.expect(req(Method::POST, LOGOUT).bearer(&s), 204).await;
        c.expect(req(Method::GET, ME).bearer(&s).note("logged out"), 401)
            .await;
    }
}

/// Users: made, read, changed, refused, deleted; one of every role is kept, logged in.
async fn users(c: &mut Checker, central: &RemoteCentral) -> Vec<User> {
    let user = |name: &str, role: &str, scope: &str| json!({"username": name, "password": PASSWORD, "role": role, "scopes": [scope]});
    let mut out = Vec::new();
    // Users of the republic in every role but national admin, and a national admin of
    // Astana, who does not see Almaty.
    for (name, role, scope) in [
        ("op.kz", "operator", REPUBLIC),
        ("inv.kz", "investigator", REPUBLIC),
        ("ra.kz", "regional_admin", REPUBLIC),
        ("na.astana", "national_admin", ASTANA),
    ] {
        let body = user(name, role, scope);
        c.valid_body(&Method::POST, USERS, &body);
        let Some(id) = c
            .expect(req(Method::POST, USERS).json(&body), 201)
            .await
            .and_then(|v| v["id"].as_str().map(str::to_owned))
        else {
            continue;
        };
        match central.login(name, PASSWORD).await {
            Ok(token) => out.push(User { id, role, token }),
            Err(e) => c.problem(e),
        }
    }
    let base = user("temp.user", "operator", DISTRICT);
    let with = |field: &str, v: Value| {
        let mut body = base.clone();
        body[field] = v;
        body
    };
    for (body, why) in [
        (with("username", json!("ab")), "a username of 2 characters"),
        (
            with("username", json!("bad name")),
            "a space in the username",
        ),
        (with("password", json!("short")), "a short password"),
        (with("role", json!("god")), "an unknown role"),
        (with("scopes", json!([])), "no scope"),
        (with("scopes", json!(["12"])), "a short region"),
    ] {
        c.invalid_body(req(Method::POST, USERS), &body, why).await;
    }
    c.expect(
        req(Method::POST, USERS)
            .json(&user("OP.KZ", "operator", ALMATY))
            .note("a username taken in another case"),
        409,
    )
    .await;
    let temp = c
        .expect(req(Method::POST, USERS).json(&base), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());
    c.expect(req(Method::GET, USERS), 200).await;
    c.expect(req(Method::GET, USER).arg(&temp), 200).await;
    c.expect(req(Method::GET, USER).arg(UNKNOWN_ID), 404).await;
    c.expect(req(Method::GET, USER).arg("not-an-id"), 404).await;

    let change = json!({"role": "investigator", "scopes": [DISTRICT, DISTRICT], "password": null});
    c.valid_body(&Method::PATCH, USER, &change);
    c.expect(req(Method::PATCH, USER).arg(&temp).json(&change), 200)
        .await;
    for (body, why) in [
        (json!({"role": "god"}), "an unknown role"),
        (json!({"scopes": []}), "no scope"),
        (json!({"password": "short"}), "a short password"),
        (
            json!({"disabled": "yes"}),
            "a disabled flag that is a string",
        ),
    ] {
        c.invalid_body(req(Method::PATCH, USER).arg(&temp), &body, why)
            .await;
    }
    c.expect(
        req(Method::PATCH, USER)
            .arg(UNKNOWN_ID)
            .json(&json!({"disabled": true})),
        404,
    )
    .await;
    // Disabling ends the user's sessions.
    match central.login("temp.user", PASSWORD).await {
        Ok(session) => {
            c.expect(req(Method::GET, ME).bearer(&session), 200).await;
            c.expect(
                req(Method::PATCH, USER)
                    .arg(&temp)
                    .json(&json!({"disabled": true})),
                200,
            )
            .await;
            c.expect(req(Method::GET, ME).bearer(&session).note("disabled"), 401)
                .await;
        }
        Err(e) => c.problem(e),
    }
    // The last national admin of the republic stays one.
    let me = c.expect(req(Method::GET, ME), 200).await;
    let admin = me
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .unwrap_or(UNKNOWN_ID)
        .to_owned();
    for change in [
        json!({"disabled": true}),
        json!({"role": "operator"}),
        json!({"scopes": [ALMATY]}),
    ] {
        c.expect(req(Method::PATCH, USER).arg(&admin).json(&change), 409)
            .await;
    }
    c.expect(req(Method::DELETE, USER).arg(&admin), 409).await;
    c.expect(req(Method::DELETE, USER).arg(&temp), 204).await;
    c.expect(req(Method::DELETE, USER).arg(&temp), 404).await;
    c.expect(req(Method::DELETE, USER).arg("not-an-id"), 404)
        .await;
    out
}

/// Recorders as central shows them, and enrolment on the recorder port (channel.yaml): one
/// hand-enrolled recorder with a `public_url`, one without that never dials in.
async fn recorders_and_enrolment(
    c: &mut Checker,
    dirs: &CentralDirs,
    central: &RemoteCentral,
    rec: &str,
    [hand_token, offline_token]: [&String; 2],
) {
    c.expect(req(Method::GET, RECORDERS), 200).await;
    c.expect(req(Method::GET, RECORDER).arg(rec), 200).await;
    c.expect(req(Method::GET, RECORDER).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::GET, RECORDER).arg("not-an-id"), 404)
        .await;

    let root = std::fs::read_to_string(dirs.data.join("root-cert.pem"))
        .expect("central's root certificate");
    let transport = Transport::tls(central.ready.channel, &root).expect("a TLS client");
    let mut port = Checker::new(Spec::load("channel.yaml"), transport, "", Some("central"));
    port.check_served().await;
    port.check_authentication().await;
    port.check_body_limit().await;
    port.expect(req(Method::GET, HEALTH), 200).await;

    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let hand = RecorderId::generate().to_string();
    let good = enrol_request(
        &key,
        hand_token,
        &hand,
        DISTRICT,
        Some("https://hand.example.invalid:8080"),
    );
    let with = |field: &str, v: Value| {
        let mut body = good.clone();
        body[field] = v;
        body
    };
    // Refusals, each before the token is spent.
    let (prefix, secret_and_pin) = hand_token
        .rsplit_once('.')
        .and_then(|(rest, pin)| rest.rsplit_once('.').map(|(p, s)| (p, (s, pin))))
        .expect("a token of four parts");
    let wrong_secret = format!(
        "{prefix}.{}.{}",
        "0".repeat(secret_and_pin.0.len()),
        secret_and_pin.1
    );
    port.expect(
        req(Method::POST, ENROL)
            .json(&with("token", json!(wrong_secret)))
            .note("a wrong secret"),
        401,
    )
    .await;
    port.expect(
        req(Method::POST, ENROL)
            .json(&with("spec_versions", json!(["2.0"])))
            .note("no common version"),
        409,
    )
    .await;
    let outside = enrol_request(&key, hand_token, &hand, "711110000", None);
    port.expect(
        req(Method::POST, ENROL)
            .json(&outside)
            .note("a region outside the token's"),
        403,
    )
    .await;
    port.expect(
        req(Method::POST, ENROL)
            .json(&with("proof", json!("ab".repeat(64))))
            .note("a proof that does not verify"),
        400,
    )
    .await;
    for (body, why) in [
        (
            with("name", json!("Gate\u{7}")),
            "a control character in the name",
        ),
        (
            with("recorder", json!("not-an-id")),
            "a recorder id that is no ULID",
        ),
        (with("proof", json!("abc")), "a proof of 3 digits"),
        (with("public_url", json!("ftp://x")), "an ftp public_url"),
    ] {
        port.invalid_body(req(Method::POST, ENROL), &body, why)
            .await;
    }
    port.valid_body(&Method::POST, ENROL, &good);
    port.expect(req(Method::POST, ENROL).json(&good), 200).await;
    port.expect(
        req(Method::POST, ENROL).json(&good).note("a spent token"),
        401,
    )
    .await;
    let offline = RecorderId::generate().to_string();
    let key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    port.expect(
        req(Method::POST, ENROL).json(&enrol_request(&key, offline_token, &offline, ALMATY, None)),
        200,
    )
    .await;
    port.finish(&[400, 401, 403, 409, 413]);

    match c.expect(req(Method::GET, RECORDER).arg(&hand), 200).await {
        Some(v) if v["online"] == false && v["public_url"].is_string() => {}
        other => c.problem(format!("the hand-enrolled recorder: {other:?}")),
    }
    // Central never relays for a recorder clients reach, nor for one unknown; one whose
    // channel is down is unavailable.
    // (The relay passes media tokens only — JWS-shaped ones; this one would not verify at a
    // recorder, but none is reached.)
    let jws = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";
    let recordings = format!("api/v1/cameras/{UNKNOWN_ID}/recordings");
    for (recorder, status) in [(hand.as_str(), 404), (UNKNOWN_ID, 404), (&offline, 503)] {
        c.expect(
            req(Method::GET, RELAY)
                .arg(recorder)
                .arg(&recordings)
                .bearer(jws),
            status,
        )
        .await;
    }
    c.expect(
        req(Method::GET, RELAY)
            .arg(&offline)
            .arg(&recordings)
            .note("a session token, which the relay never passes on"),
        401,
    )
    .await;
    c.expect(
        req(Method::POST, RELAY)
            .arg(&offline)
            .arg(&format!("api/v1/cameras/{UNKNOWN_ID}/holds"))
            .bearer(jws)
            .json(&json!({})),
        503,
    )
    .await;
    c.expect(
        req(Method::DELETE, RELAY)
            .arg(&offline)
            .arg(&format!("api/v1/holds/{UNKNOWN_ID}"))
            .bearer(jws),
        503,
    )
    .await;
    let body = json!({"name": "Gate C", "region": ALMATY, "class": "traffic",
        "streams": [{"name": "main", "url": "rtsp://127.0.0.1/c"}]});
    c.expect(
        req(Method::POST, RECORDER_CAMERAS)
            .arg(&offline)
            .json(&body),
        503,
    )
    .await;
}

/// The audit listing: central's own log with its checkpoint, and refusals.
async fn audit(c: &mut Checker) {
    c.expect(req(Method::GET, AUDIT).query("log=central&limit=5"), 200)
        .await;
    c.expect(req(Method::GET, AUDIT).query("action=token_issued"), 200)
        .await;
    // Cameras the recorder has not checked are unchecked (its cameras come from its config).
    c.expect(
        req(Method::GET, CAMERAS).query("conformance=unchecked"),
        200,
    )
    .await;
    for (query, why) in [
        ("limit=0", "a limit of 0"),
        ("log=nobody", "a log that is no recorder's"),
        ("action=dancing", "an unknown action"),
        ("from=yesterday", "a time that is not RFC 3339"),
        ("cursor=zz", "a cursor central did not give"),
    ] {
        c.expect(req(Method::GET, AUDIT).query(query).note(why), 400)
            .await;
    }
}

/// The directory: searches, paging, filters, refusals; cameras read and changed.
async fn directory(c: &mut Checker, rec: &str, a: &str, b: &str) {
    let ids = |v: &Value| -> Vec<String> {
        v["cameras"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect()
    };
    let first = c
        .expect(
            req(Method::GET, CAMERAS).query(&format!(
                "region={ALMATY}&q=GATE&class=city&status=offline&limit=1"
            )),
            200,
        )
        .await
        .unwrap_or_default();
    let mut seen = ids(&first);
    match first["next_cursor"].as_str() {
        Some(cursor) => {
            let next = c
                .expect(
                    req(Method::GET, CAMERAS).query(&format!(
                        "region={ALMATY}&q=GATE&class=city&status=offline&limit=1&cursor={cursor}"
                    )),
                    200,
                )
                .await
                .unwrap_or_default();
            seen.extend(ids(&next));
            if !next["next_cursor"].is_null() {
                c.problem(format!("the last page has a next_cursor: {next}"));
            }
        }
        None => c.problem(format!(
            "a first page of one of two has no next_cursor: {first}"
        )),
    }
    seen.sort();
    let mut want = vec![a.to_owned(), b.to_owned()];
    want.sort();
    // Counts are per region one level below Almaty's: its district 7511.
    if seen != want || first["total"] != 2 || first["counts"][0]["region"] != "751100000" {
        c.problem(format!("paging the directory visited {seen:?}: {first}"));
    }
    // Camera A's location came from its recorder's catalog.
    match c
        .expect(
            req(Method::GET, CAMERAS).query("bbox=76.8,43.1,77.1,43.4"),
            200,
        )
        .await
    {
        Some(v) if ids(&v) == [a] => {}
        other => c.problem(format!("a box around camera {a}'s location: {other:?}")),
    }
    for (query, why) in [
        ("limit=0", "a limit of 0"),
        ("limit=many", "a limit that is no number"),
        ("bbox=1,2,3", "a bbox of three numbers"),
        ("bbox=3,2,1,0", "a bbox with its maximum first"),
        ("status=lost", "an unknown status"),
        ("conformance=maybe", "an unknown conformance verdict"),
        ("region=12", "a short region"),
        ("cursor=%21%21", "a cursor central did not give"),
        ("q=", "an empty text"),
    ] {
        c.expect(req(Method::GET, CAMERAS).query(query).note(why), 400)
            .await;
    }

    match c.expect(req(Method::GET, CAMERA).arg(a), 200).await {
        Some(v) if v["recorder"] == rec && v["recorder_online"] == true => {}
        other => c.problem(format!("camera {a} in the directory: {other:?}")),
    }
    c.expect(req(Method::GET, CAMERA).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::GET, CAMERA).arg("not-an-id"), 404)
        .await;

    let renamed = json!({"name": "Gate A, renamed", "region": DISTRICT, "class": "city",
        "streams": [{"name": "main", "url": "rtsp://127.0.0.1:9/gate-a"}]});
    c.valid_body(&Method::PUT, CAMERA, &renamed);
    c.expect(req(Method::PUT, CAMERA).arg(a).json(&renamed), 200)
        .await;
    let mut nameless = renamed.clone();
    nameless.as_object_mut().expect("an object").remove("name");
    c.invalid_body(req(Method::PUT, CAMERA).arg(a), &nameless, "no name")
        .await;
    let mut http = renamed.clone();
    http["streams"][0]["url"] = json!("http://127.0.0.1/gate-a");
    c.invalid_body(
        req(Method::PUT, CAMERA).arg(a),
        &http,
        "an http URL, refused by the recorder",
    )
    .await;
    c.expect(req(Method::PUT, CAMERA).arg(UNKNOWN_ID).json(&renamed), 404)
        .await;

    let mut outside = renamed.clone();
    outside["region"] = json!("711110000");
    c.expect(
        req(Method::POST, RECORDER_CAMERAS)
            .arg(rec)
            .json(&outside)
            .note("a region outside the recorder's"),
        400,
    )
    .await;
    c.expect(
        req(Method::PUT, CAMERA)
            .arg(a)
            .json(&outside)
            .note("a region outside the recorder's"),
        400,
    )
    .await;
    c.invalid_body(
        req(Method::POST, RECORDER_CAMERAS).arg(rec),
        &nameless,
        "no name",
    )
    .await;
    c.expect(
        req(Method::POST, RECORDER_CAMERAS)
            .arg(UNKNOWN_ID)
            .json(&renamed),
        404,
    )
    .await;
}

/// Federated queries and media tokens.
async fn queries_and_tokens(c: &mut Checker, a: &str, b: &str) {
    let (start, end) = (rfc3339_from_now(-600), rfc3339_from_now(0));
    let query = json!({"cameras": [a, b], "start": start, "end": end, "deadline_ms": 5000});
    c.valid_body(&Method::POST, QUERY, &query);
    if let Some(v) = c.expect(req(Method::POST, QUERY).json(&query), 200).await
        && (v["complete"] != true || v["results"].as_array().map(Vec::len) != Some(2))
    {
        c.problem(format!("a query of two cameras of an online recorder: {v}"));
    }
    let with = |field: &str, value: Value| {
        let mut body = query.clone();
        body[field] = value;
        body
    };
    for (body, why) in [
        (with("cameras", json!([])), "no camera"),
        (with("deadline_ms", json!(10)), "a deadline of 10 ms"),
        (with("start", json!("soon")), "a start that is no time"),
    ] {
        c.invalid_body(req(Method::POST, QUERY), &body, why).await;
    }
    c.expect(
        req(Method::POST, QUERY)
            .json(&with("end", json!(rfc3339_from_now(-3600))))
            .note("end before start"),
        400,
    )
    .await;
    for camera in [UNKNOWN_ID, "not-an-id"] {
        c.expect(
            req(Method::POST, QUERY).json(&with("cameras", json!([a, camera]))),
            404,
        )
        .await;
    }

    let token = json!({"camera": b, "stream": "sub", "purpose": "snapshot"});
    c.valid_body(&Method::POST, MEDIA_TOKENS, &token);
    c.expect(req(Method::POST, MEDIA_TOKENS).json(&token), 200)
        .await;
    let with = |field: &str, value: Value| {
        let mut body = json!({"camera": a, "stream": "*", "purpose": "export",
            "start": start, "end": end});
        body[field] = value;
        body
    };
    c.expect(
        req(Method::POST, MEDIA_TOKENS).json(&with("stream", json!(null))),
        200,
    )
    .await;
    let mut open = with("purpose", json!("playback"));
    open.as_object_mut().expect("an object").remove("end");
    for (body, why) in [
        (with("purpose", json!("watch")), "an unknown purpose"),
        (open, "a start without an end"),
        (with("start", json!("soon")), "a start that is no time"),
    ] {
        c.invalid_body(req(Method::POST, MEDIA_TOKENS), &body, why)
            .await;
    }
    c.expect(
        req(Method::POST, MEDIA_TOKENS)
            .json(&with("end", json!(rfc3339_from_now(-3600))))
            .note("end before start"),
        400,
    )
    .await;
    for (body, why) in [
        (with("camera", json!(UNKNOWN_ID)), "an unknown camera"),
        (with("stream", json!("sub")), "a stream the camera lacks"),
    ] {
        c.expect(req(Method::POST, MEDIA_TOKENS).json(&body).note(why), 404)
            .await;
    }
}

/// The relay to the recorder: media with the right token, refusals of the recorder and of
/// central.
async fn relay(c: &mut Checker, rec: &str, a: &str, [playback, hold, live]: [&String; 3]) {
    let recordings = format!("api/v1/cameras/{a}/recordings");
    let span = format!(
        "stream=main&start={}&end={}",
        rfc3339_from_now(-600),
        rfc3339_from_now(0)
    );
    let get = |path: &str| req(Method::GET, RELAY).arg(rec).arg(path);
    c.expect(get(&recordings).query(&span).bearer(playback), 200)
        .await;
    // A player's request, the token in its query: the camera has recorded nothing.
    c.expect(
        get(&format!("api/v1/cameras/{a}/playback.m3u8"))
            .query(&format!("{span}&token={playback}"))
            .auth(Auth::Missing),
        404,
    )
    .await;
    c.expect(get(&recordings).query(&span).auth(Auth::Missing), 401)
        .await;
    c.expect(get(&recordings).query(&span).bearer(live), 403)
        .await;
    c.expect(get(&recordings).bearer(playback).note("no range"), 400)
        .await;
    for path in ["api/v1/cameras", "metrics", "api/v1/channel/events"] {
        c.expect(get(path).bearer(playback).note("not media"), 404)
            .await;
    }

    let holds = format!("api/v1/cameras/{a}/holds");
    let post = |path: &str| req(Method::POST, RELAY).arg(rec).arg(path);
    let body = json!({"stream": "main", "start": rfc3339_from_now(-600),
        "end": rfc3339_from_now(-60), "case": "KZ-2026-7", "reason": "relay drift check"});
    c.valid_body(&Method::POST, RELAY, &body);
    let id = c
        .expect(post(&holds).json(&body).bearer(hold), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());
    let mut caseless = body.clone();
    caseless["case"] = json!("");
    c.invalid_body(post(&holds).bearer(hold), &caseless, "an empty case")
        .await;
    c.expect(post(&holds).json(&body).bearer(playback), 403)
        .await;
    c.expect(post(&holds).json(&body).auth(Auth::Missing), 401)
        .await;
    c.expect(
        post(&holds)
            .bearer(hold)
            .raw("application/json", vec![b' '; 64 * 1024 + 1])
            .note("a body over 64 KiB"),
        413,
    )
    .await;
    c.expect(post("api/v1/holds").json(&body).bearer(hold), 404)
        .await;

    let hold_path = format!("api/v1/holds/{id}");
    let delete = || req(Method::DELETE, RELAY).arg(rec).arg(&hold_path);
    c.expect(delete().auth(Auth::Missing), 401).await;
    c.expect(delete().bearer(playback), 403).await;
    c.expect(delete().bearer(hold), 204).await;
    c.expect(delete().bearer(hold), 404).await;
}

/// The role rule, operation by operation: each role without the operation's permission gets
/// `403` in scope; a user whose scopes do not hold the thing gets `404`, or a list without it.
async fn roles(c: &mut Checker, users: &[User], rec: &str, a: &str, b: &str) {
    let table = RoleTable::load();
    let Some(victim) = users.first().map(|u| u.id.clone()) else {
        c.problem("no users of the roles".into());
        return;
    };
    let (start, end) = (rfc3339_from_now(-600), rfc3339_from_now(0));
    let camera = json!({"name": "Gate D", "region": DISTRICT, "class": "city",
        "streams": [{"name": "main", "url": "rtsp://127.0.0.1:9/d"}]});
    let well_formed = |method: &Method, path: &str| {
        let r = req(method.clone(), path);
        match (path, method.as_str()) {
            (USERS, "POST") => r.json(&json!({"username": "never.made", "password": PASSWORD,
                "role": "operator", "scopes": [DISTRICT]})),
            (USER, "PATCH") => r.arg(&victim).json(&json!({"disabled": false})),
            (USER, _) => r.arg(&victim),
            (RECORDER, _) => r.arg(rec),
            (RECORDER_CAMERAS, _) => r.arg(rec).json(&camera),
            (ENROLMENT_TOKENS, _) => r.json(&json!({"region": DISTRICT})),
            (CAMERAS, _) => r.query(&format!("region={ALMATY}")),
            (CAMERA, "PUT") => r.arg(a).json(&camera),
            (CAMERA, _) => r.arg(a),
            (QUERY, _) => r.json(&json!({"cameras": [a], "start": start, "end": end})),
            (MEDIA_TOKENS, _) => r.json(&json!({"camera": a, "purpose": "playback",
                "start": start, "end": end})),
            _ => r,
        }
    };
    let in_scope: Vec<&User> = users
        .iter()
        .filter(|u| u.role != "national_admin")
        .collect();
    let Some(outsider) = users.iter().find(|u| u.role == "national_admin") else {
        c.problem("no user out of scope".into());
        return;
    };
    for (method, path) in c.operations() {
        let method: Method = method.parse().expect("an HTTP method");
        let Some(op) = c.spec.operation(&method, &path) else {
            continue;
        };
        let Some(permission) = RoleTable::permission(op).map(str::to_owned) else {
            continue;
        };
        let documents_404 = op["responses"].get("404").is_some();
        for u in &in_scope {
            if !table.has(u.role, &permission) {
                c.expect(
                    well_formed(&method, &path)
                        .bearer(&u.token)
                        .note(&format!("{} without {permission}", u.role)),
                    403,
                )
                .await;
            }
        }
        let r = well_formed(&method, &path)
            .bearer(&outsider.token)
            .note("out of the caller's scopes");
        if documents_404 {
            c.expect(r, 404).await;
        } else if let Some(v) = c.expect(r, 200).await {
            let text = v.to_string();
            if [rec, a, b].iter().any(|id| text.contains(id)) {
                c.problem(format!(
                    "{method} {path} shows a user things out of their scopes: {text}"
                ));
            }
        }
    }
}
