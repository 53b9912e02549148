//! The recorder's TOML configuration (`vms-recorder run --config FILE.toml`): parsed with
//! unknown fields rejected, validated at start-up, every error naming its field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vms_core::id::RecorderId;
use vms_core::region::RegionCode;
use vms_core::{Error, err};

use crate::cameras::{CameraClass, CameraSpec, StreamSpec, Transport};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP API address. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the index, journals and the recorder id. Required.
    pub data_dir: PathBuf,
    /// The recorder's id. Default: made at first start and kept in `data_dir`; when set, it
    /// must match what `data_dir` holds.
    #[serde(default)]
    pub recorder_id: Option<RecorderId>,
    /// Bearer token of the local administrator, at least 16 characters. Required.
    pub admin_token: String,
    /// Target segment length in seconds; a segment ends on the first keyframe after it,
    /// 10..=600. Default 60.
    #[serde(default = "default_segment_secs")]
    pub segment_secs: u32,
    /// Seconds without a frame before a session counts as stalled and reconnects, 2..=120.
    /// Default 10.
    #[serde(default = "default_stall_secs")]
    pub stall_timeout_secs: u32,
    /// Storage roots, at least one. Default: none (an error).
    #[serde(default)]
    pub storage: Vec<StorageConfig>,
    /// Cameras to have from the start; matched by `name` with the camera journal. Default: none.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

/// One storage root.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// An existing directory (the mount point of a disk). Required.
    pub path: PathBuf,
    /// Most bytes of footage kept here. Default: none (the disk's size).
    #[serde(default)]
    pub quota_bytes: Option<u64>,
}

/// A camera declared in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    pub region: String,
    pub class: String,
    #[serde(default)]
    pub code: Option<String>,
    pub streams: Vec<StreamConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_segment_secs() -> u32 {
    60
}
fn default_stall_secs() -> u32 {
    10
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err!(InvalidArgument, "cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| e.context(path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, Error> {
        let c: Config = toml::from_str(text).map_err(|e| err!(InvalidArgument, "{e}"))?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.admin_token.chars().count() < 16 {
            return Err(err!(
                InvalidArgument,
                "admin_token: must be at least 16 characters"
            ));
        }
        if !(10..=600).contains(&self.segment_secs) {
            return Err(err!(
                InvalidArgument,
                "segment_secs: {} is outside 10..=600",
                self.segment_secs
            ));
        }
        if !(2..=120).contains(&self.stall_timeout_secs) {
            return Err(err!(
                InvalidArgument,
                "stall_timeout_secs: {} is outside 2..=120",
                self.stall_timeout_secs
            ));
        }
        if self.storage.is_empty() {
            return Err(err!(InvalidArgument, "storage: at least one storage root"));
        }
        for (i, s) in self.storage.iter().enumerate() {
            if !s.path.is_absolute() {
                return Err(err!(InvalidArgument, "storage[{i}].path: must be absolute"));
            }
            if s.quota_bytes == Some(0) {
                return Err(err!(
                    InvalidArgument,
                    "storage[{i}].quota_bytes: must be positive"
                ));
            }
        }
        for (i, c) in self.cameras.iter().enumerate() {
            c.to_spec().map_err(|e| e.context(format!("camera[{i}]")))?;
        }
        Ok(())
    }
}

impl CameraConfig {
    /// The camera as the journal and the API know it (without an id yet).
    pub fn to_spec(&self) -> Result<CameraSpec, Error> {
        let region: RegionCode = self
            .region
            .parse()
            .map_err(|e: Error| e.context("region"))?;
        let class: CameraClass = self.class.parse().map_err(|e: Error| e.context("class"))?;
        let streams = self
            .streams
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let transport = match s.transport.as_deref() {
                    None | Some("tcp") => Transport::Tcp,
                    Some("udp") => Transport::Udp,
                    Some(o) => {
                        return Err(err!(
                            InvalidArgument,
                            "streams[{j}].transport: {o:?} is not tcp or udp"
                        ));
                    }
                };
                Ok(StreamSpec {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    username: s.username.clone(),
                    password: s.password.clone(),
                    transport,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let spec = CameraSpec {
            name: self.name.clone(),
            region,
            class,
            code: self.code.clone(),
            streams,
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        data_dir = "/var/lib/vms"
        admin_token = "0123456789abcdef"
        [[storage]]
        path = "/srv/a"
        [[camera]]
        name = "Gate"
        region = "751110000"
        class = "safe_yard"
        [[camera.streams]]
        name = "main"
        url = "rtsp://127.0.0.1:8554/gate/main"
    "#;

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!((c.segment_secs, c.listen), (60, default_listen()));
        assert_eq!(
            c.cameras[0].to_spec().unwrap().streams[0].transport,
            Transport::Tcp
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("0123456789abcdef", "short"), "admin_token"),
            (GOOD.replace("751110000", "75"), "camera[0]: region"),
            (GOOD.replace("safe_yard", "zoo"), "camera[0]: class"),
            (
                GOOD.replace("name = \"main\"", "name = \"../x\""),
                "stream name",
            ),
            (GOOD.replace("rtsp://127", "http://127"), "url"),
            (GOOD.replace("/srv/a", "relative"), "storage[0].path"),
            (format!("{GOOD}\nbogus = 1\n"), "unknown field"),
            (GOOD.replace("data_dir = \"/var/lib/vms\"", ""), "data_dir"),
        ];
        for (text, want) in cases {
            let e = Config::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
