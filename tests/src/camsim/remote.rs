//! Driving a `vms-camsim` process from a test: start it from TOML text, get stream URLs,
//! inject faults and read its frame record through the control API.

use std::path::Path;
use std::time::Duration;

use super::Ready;
use super::control::{CameraList, FrameList};
use super::stream::{Fault, FrameRecord};
use crate::process::Process;

/// How long a simulator may take to encode its clips and start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A simulator running as its own process; killed on drop.
pub struct RemoteSim {
    /// Held so that dropping the handle kills the simulator.
    _process: Process,
    pub ready: Ready,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl RemoteSim {
    /// Starts `binary` (the `vms-camsim` executable) with the given configuration text.
    pub fn start(binary: &Path, config_toml: &str) -> Result<RemoteSim, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("camsim.toml");
        std::fs::write(&path, config_toml).map_err(|e| e.to_string())?;
        let path = path.to_str().ok_or("temp path is not UTF-8")?;
        let (process, ready) = Process::start(binary, &["--config", path], START_TIMEOUT)?;
        Ok(RemoteSim {
            _process: process,
            ready,
            _dir: dir,
            http: reqwest::Client::new(),
        })
    }

    /// `rtsp://[user:pass@]127.0.0.1:PORT/{camera}/{stream}`.
    pub fn url(&self, camera: &str, stream: &str, credentials: Option<(&str, &str)>) -> String {
        let auth = credentials.map_or(String::new(), |(u, p)| format!("{u}:{p}@"));
        format!("rtsp://{auth}{}/{camera}/{stream}", self.ready.rtsp)
    }

    fn control(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.ready.control)
    }

    pub async fn cameras(&self) -> Result<CameraList, String> {
        let r = self.http.get(self.control("cameras")).send().await;
        json(r).await
    }

    /// Injects a fault; `Err` carries the HTTP status and body of a refusal.
    pub async fn fault(&self, camera: &str, stream: &str, fault: &Fault) -> Result<(), String> {
        let url = self.control(&format!("cameras/{camera}/streams/{stream}/faults"));
        let r = self
            .http
            .post(url)
            .json(fault)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ))
        }
    }

    /// The frames the stream sent after `after` (all that are kept when `None`).
    pub async fn frames(
        &self,
        camera: &str,
        stream: &str,
        after: Option<u64>,
    ) -> Result<Vec<FrameRecord>, String> {
        let mut url = self.control(&format!("cameras/{camera}/streams/{stream}/frames"));
        if let Some(a) = after {
            url.push_str(&format!("?after={a}"));
        }
        let r = self.http.get(url).send().await;
        json::<FrameList>(r).await.map(|l| l.frames)
    }
}

async fn json<T: serde::de::DeserializeOwned>(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, String> {
    let r = r.map_err(|e| e.to_string())?;
    let status = r.status();
    if !status.is_success() {
        return Err(format!("{status}: {}", r.text().await.unwrap_or_default()));
    }
    r.json().await.map_err(|e| e.to_string())
}
