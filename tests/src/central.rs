//! Driving a `vms-api` (central) process from a test: its config in a temporary directory,
//! the first administrator, the ready line, sessions, and recorders enrolled with it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use vms_core::wire;

use crate::process::{Process, workspace_binary};
use crate::recorder::{RecorderDirs, RemoteRecorder};

/// What `vms-api run` prints once it serves.
#[derive(Deserialize, Debug, Clone)]
pub struct Ready {
    pub api: std::net::SocketAddr,
    pub channel: std::net::SocketAddr,
    pub root_sha256: String,
}

/// Central's files, and the first administrator made in them.
pub struct CentralDirs {
    _tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub admin_password: String,
}

impl CentralDirs {
    /// Writes a config (fixed ports, so that a restarted central is found where it was)
    /// with `extra` appended, and makes the administrator `admin`.
    pub fn new(extra: &str) -> CentralDirs {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let config = tmp.path().join("central.toml");
        let (api, channel) = (free_port(), free_port());
        let text = format!(
            "listen = \"127.0.0.1:{api}\"\nchannel_listen = \"127.0.0.1:{channel}\"\n\
             data_dir = {data:?}\n{extra}\n"
        );
        std::fs::write(&config, text).expect("config");
        let out = std::process::Command::new(workspace_binary("vms-api"))
            .args(["create-admin", "--username", "admin", "--config"])
            .arg(&config)
            .env("VMS_LOG", "warn")
            .output()
            .expect("vms-api create-admin runs");
        assert!(
            out.status.success(),
            "create-admin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        #[derive(Deserialize)]
        struct Created {
            password: String,
        }
        let created: Created =
            serde_json::from_slice(&out.stdout).expect("create-admin prints JSON");
        CentralDirs {
            _tmp: tmp,
            config,
            data,
            admin_password: created.password,
        }
    }

    /// `vms-api audit-verify` on this (stopped) central: its stdout and whether it passed.
    pub fn audit_verify(&self) -> (bool, String) {
        let out = std::process::Command::new(workspace_binary("vms-api"))
            .args(["audit-verify", "--config"])
            .arg(&self.config)
            .env("VMS_LOG", "warn")
            .output()
            .expect("vms-api audit-verify runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// A port free at the moment of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running central.
pub struct RemoteCentral {
    pub process: Process,
    pub ready: Ready,
    http: reqwest::Client,
}

impl RemoteCentral {
    pub fn start(dirs: &CentralDirs) -> Result<RemoteCentral, String> {
        let config = dirs.config.to_str().ok_or("config path is not UTF-8")?;
        let (process, ready) = Process::start(
            &workspace_binary("vms-api"),
            &["run", "--config", config],
            Duration::from_secs(30),
        )?;
        Ok(RemoteCentral {
            process,
            ready,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ready.api)
    }

    /// The recorders' port as a recorder's config names it.
    pub fn channel_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ready.channel.port())
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match session {
            Some(s) => r.bearer_auth(s),
            None => r,
        }
    }

    /// Logs in; the session token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        let resp = self
            .request(reqwest::Method::POST, "/api/v1/auth/login", None)
            .json(&wire::LoginRequest {
                username: username.into(),
                password: password.into(),
            })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "login {username}: {status}: {}",
                resp.text().await.unwrap_or_default()
            ));
        }
        Ok(resp
            .json::<wire::LoginResponse>()
            .await
            .map_err(|e| e.to_string())?
            .token)
    }

    /// An authorised GET, decoded.
    pub async fn get<T: DeserializeOwned>(&self, session: &str, path: &str) -> Result<T, String> {
        self.call(reqwest::Method::GET, path, session, None::<&()>)
            .await
    }

    /// An authorised POST of JSON, decoded.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        session: &str,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        self.call(reqwest::Method::POST, path, session, Some(body))
            .await
    }

    /// An authorised request with an optional JSON body; a non-2xx answer is an error that
    /// quotes it.
    async fn call<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &str,
        body: Option<&B>,
    ) -> Result<T, String> {
        let mut r = self.request(method.clone(), path, Some(session));
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {status}: {}",
                resp.text().await.unwrap_or_default()
            ));
        }
        resp.json().await.map_err(|e| e.to_string())
    }

    /// A one-time enrolment token for `region`.
    pub async fn enrolment_token(&self, session: &str, region: &str) -> Result<String, String> {
        let t: wire::EnrolmentTokenResponse = self
            .post(
                session,
                "/api/v1/enrolment-tokens",
                &wire::EnrolmentTokenRequest {
                    region: region.into(),
                    ttl_secs: None,
                },
            )
            .await?;
        Ok(t.token)
    }

    /// Makes a user; its id.
    pub async fn create_user(
        &self,
        session: &str,
        username: &str,
        password: &str,
        role: &str,
        scopes: &[&str],
    ) -> Result<String, String> {
        let u: wire::UserInfo = self
            .post(
                session,
                "/api/v1/users",
                &wire::UserRequest {
                    username: username.into(),
                    password: password.into(),
                    role: role.into(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                },
            )
            .await?;
        Ok(u.id)
    }

    /// The whole directory as `session` sees it.
    pub async fn directory(
        &self,
        session: &str,
        query: &str,
    ) -> Result<wire::DirectoryPage, String> {
        self.get(session, &format!("/api/v1/cameras?limit=1000&{query}"))
            .await
    }
}

/// The `[central]` section of a recorder enrolling with `central` in `region`.
pub fn central_toml(central: &RemoteCentral, token: &str, name: &str, region: &str) -> String {
    format!(
        "[central]\nurl = \"{}\"\nenrolment_token = \"{token}\"\nname = \"{name}\"\nregion = \"{region}\"\n",
        central.channel_url()
    )
}

/// Starts a recorder with `cameras` (its `[[camera]]` blocks) enrolled with `central` in
/// `region`.
pub async fn enrolled_recorder(
    central: &RemoteCentral,
    session: &str,
    name: &str,
    region: &str,
    cameras: &str,
) -> Result<(RecorderDirs, RemoteRecorder), String> {
    let token = central.enrolment_token(session, region).await?;
    let extra = format!(
        "segment_secs = 10\n{cameras}\n{}",
        central_toml(central, &token, name, region)
    );
    let dirs = RecorderDirs::new(&extra);
    let rec = RemoteRecorder::start(&dirs)?;
    Ok((dirs, rec))
}
