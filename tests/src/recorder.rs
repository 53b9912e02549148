//! Driving a `vms-recorder` process from a test: a config in a temporary data directory, the
//! ready line, and its API with the local administrator token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use vms_core::time::Time90k;
use vms_core::wire;

use crate::camsim::remote::RemoteSim;

use crate::process::{Process, workspace_binary};

/// The local administrator token of every test recorder.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Deserialize, Debug, Clone)]
pub struct Ready {
    pub api: std::net::SocketAddr,
    pub recorder: String,
}

/// A recorder's files: its config, data directory and one storage root.
pub struct RecorderDirs {
    _tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub storage: PathBuf,
}

impl RecorderDirs {
    /// Writes a config with `extra` appended (cameras, options).
    pub fn new(extra: &str) -> RecorderDirs {
        RecorderDirs::with_storage_options(extra, "")
    }

    /// Writes a config with `extra` at the top level and `storage` in its storage root.
    pub fn with_storage_options(extra: &str, storage_options: &str) -> RecorderDirs {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let storage = tmp.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let config = tmp.path().join("recorder.toml");
        // Onboarding checks open sessions of their own to the simulator, which its frame
        // record would count as sent to the recorder: off unless a test asks for them.
        let checks = if extra.contains("conformance_probe_secs") {
            ""
        } else {
            "conformance_probe_secs = 0\n"
        };
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\nadmin_token = \"{ADMIN_TOKEN}\"\n{checks}{extra}\n\
             [[storage]]\npath = {storage:?}\n{storage_options}\n"
        );
        std::fs::write(&config, text).expect("config");
        RecorderDirs {
            _tmp: tmp,
            config,
            data,
            storage,
        }
    }

    /// Every segment file, sorted by path (that is by stream, then time).
    pub fn segment_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "mp4") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.storage, &mut out);
        out.sort();
        out
    }

    /// `vms-recorder reindex --verify`: `Ok` when the index matches the files.
    pub fn verify_index(&self) -> Result<(), String> {
        let out = std::process::Command::new(workspace_binary("vms-recorder"))
            .args(["reindex", "--verify", "--config"])
            .arg(&self.config)
            .env("VMS_LOG", "warn")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// A running recorder.
pub struct RemoteRecorder {
    pub process: Process,
    pub ready: Ready,
    http: reqwest::Client,
}

impl RemoteRecorder {
    pub fn start(dirs: &RecorderDirs) -> Result<RemoteRecorder, String> {
        RemoteRecorder::start_with(dirs, None)
    }

    /// Starts a recorder whose log, at `level`, goes to `log_file`.
    pub fn start_logged(
        dirs: &RecorderDirs,
        level: &str,
        log_file: &Path,
    ) -> Result<RemoteRecorder, String> {
        RemoteRecorder::start_with(dirs, Some((level, log_file)))
    }

    fn start_with(
        dirs: &RecorderDirs,
        log: Option<(&str, &Path)>,
    ) -> Result<RemoteRecorder, String> {
        let config = dirs.config.to_str().ok_or("config path is not UTF-8")?;
        let (binary, args, timeout) = (
            workspace_binary("vms-recorder"),
            ["run", "--config", config],
            Duration::from_secs(60),
        );
        let (process, ready) = match log {
            Some((level, file)) => Process::start_logged(&binary, &args, timeout, level, file)?,
            None => Process::start(&binary, &args, timeout)?,
        };
        Ok(RemoteRecorder {
            process,
            ready,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ready.api)
    }

    /// An authorised GET, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    pub async fn cameras(&self) -> Result<wire::CameraList, String> {
        self.get("/api/v1/cameras").await
    }

    pub async fn recordings(
        &self,
        camera: &str,
        stream: &str,
        start: &str,
        end: &str,
    ) -> Result<wire::Recordings, String> {
        self.get(&format!(
            "/api/v1/cameras/{camera}/recordings?stream={stream}&start={start}&end={end}"
        ))
        .await
    }

    /// A raw request with the admin token, for bad-input tests.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Starts a camera simulator with `config`.
pub fn sim(config: &str) -> RemoteSim {
    RemoteSim::start(&workspace_binary("vms-camsim"), config).expect("simulator starts")
}

pub fn now() -> Time90k {
    Time90k::from_timestamp(jiff::Timestamp::now())
}

/// Parses a time the API returned.
pub fn t(s: &str) -> Time90k {
    Time90k::parse_rfc3339(s).expect("RFC 3339 from the API")
}

/// A `[[camera]]` block for the recorder, one stream per `(name, url)`, in Almaty.
pub fn camera_toml(name: &str, streams: &[(&str, String)]) -> String {
    camera_toml_in(name, "751110000", streams)
}

/// A `[[camera]]` block in `region`.
pub fn camera_toml_in(name: &str, region: &str, streams: &[(&str, String)]) -> String {
    let mut s = format!("[[camera]]\nname = \"{name}\"\nregion = \"{region}\"\nclass = \"city\"\n");
    for (stream, url) in streams {
        s.push_str(&format!(
            "[[camera.streams]]\nname = \"{stream}\"\nurl = \"{url}\"\n"
        ));
    }
    s
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
