//! The recorder's TOML configuration (`vms-recorder run --config FILE.toml`): parsed with
//! unknown fields rejected, validated at start-up, every error naming its field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vms_core::id::RecorderId;
use vms_core::region::RegionCode;
use vms_core::time::Duration90k;
use vms_core::{Error, err};

use crate::archive::retention::Policy;
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
    /// Seconds a camera conformance check plays each stream of a camera that is onboarded
    /// (added through the API, or from this file at the start that adds it) or changed
    /// (`spec/camera-conformance.md`), 10..=600; 0 runs no check then (one can still be asked
    /// for). Default 30.
    #[serde(default = "default_conformance_probe_secs")]
    pub conformance_probe_secs: u32,
    /// Milliseconds an idle recording worker thread waits before it sleeps on I/O, 0..=50:
    /// the packets of many cameras are then handled in one wake-up, which cuts CPU per stream
    /// several times over, for at most this much added ingest latency (the API has threads of
    /// its own and is not delayed). 0 turns it off. Default 20.
    #[serde(default = "default_io_coalesce_ms")]
    pub io_coalesce_ms: u32,
    /// Storage roots, at least one. Default: none (an error).
    #[serde(default)]
    pub storage: Vec<StorageConfig>,
    /// How long footage is kept, per camera class. Default: no age limits (quota only).
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Cameras to have from the start; matched by `name` with the camera journal. Default: none.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// The central service this recorder joins. Default: none (a stand-alone recorder).
    #[serde(default)]
    pub central: Option<CentralConfig>,
}

/// `[central]`: joining the national network (spec/central.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Central's recorder port, `https://HOST:PORT`. Required.
    pub url: String,
    /// The one-time token regional IT got from central; needed until the recorder has
    /// enrolled, ignored after. Default: none.
    #[serde(default)]
    pub enrolment_token: Option<String>,
    /// The recorder's name in the directory, 1 to 128 characters. Required.
    pub name: String,
    /// The recorder's region code (9 digits, KATO); its cameras must lie within it. Required.
    pub region: RegionCode,
    /// Where clients reach this recorder's API directly. Default: none, and central then
    /// relays clients' media requests over the channel.
    #[serde(default)]
    pub public_url: Option<String>,
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
    /// Free space to keep on the file system; below it the oldest footage is evicted, with an
    /// alert. Default 1 GiB.
    #[serde(default = "default_reserve_bytes")]
    pub reserve_bytes: u64,
    /// Percentage of the quota that held footage may take before it raises an alert, 1..=100.
    /// Default 50.
    #[serde(default = "default_held_alert_percent")]
    pub held_alert_percent: u8,
}

/// `[retention.city]`, `[retention.safe_yard]`, `[retention.traffic]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default)]
    pub city: ClassRetention,
    #[serde(default)]
    pub safe_yard: ClassRetention,
    #[serde(default)]
    pub traffic: ClassRetention,
}

/// Ages are a number and a unit: `90s`, `45m`, `12h`, `30d`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRetention {
    /// The privacy cap: older footage is removed unless an evidence hold covers it.
    #[serde(default)]
    pub max_age: Option<String>,
    /// Footage evicted for room while younger than this raises an alert.
    #[serde(default)]
    pub min_age: Option<String>,
}

/// Parses an age such as `30d`.
fn parse_age(s: &str) -> Result<Duration90k, Error> {
    let bad = || {
        err!(
            InvalidArgument,
            "{s:?} is not a number followed by s, m, h or d"
        )
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs_per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    // Up to a hundred years.
    if !(1..=36_500 * 86_400 / secs_per).contains(&n) {
        return Err(err!(InvalidArgument, "{s:?} is out of range"));
    }
    Ok(Duration90k::from_secs(n * secs_per))
}

impl RetentionConfig {
    /// The policy of each camera class.
    pub fn policies(&self) -> Result<BTreeMap<CameraClass, Policy>, Error> {
        let mut out = BTreeMap::new();
        for (class, name, c) in [
            (CameraClass::City, "city", &self.city),
            (CameraClass::SafeYard, "safe_yard", &self.safe_yard),
            (CameraClass::Traffic, "traffic", &self.traffic),
        ] {
            let age = |field: &str, v: &Option<String>| {
                v.as_deref()
                    .map(parse_age)
                    .transpose()
                    .map_err(|e| e.context(format!("retention.{name}.{field}")))
            };
            let policy = Policy {
                max_age: age("max_age", &c.max_age)?,
                min_age: age("min_age", &c.min_age)?,
            };
            if let (Some(max), Some(min)) = (policy.max_age, policy.min_age)
                && min > max
            {
                return Err(err!(
                    InvalidArgument,
                    "retention.{name}.min_age: longer than max_age"
                ));
            }
            out.insert(class, policy);
        }
        Ok(out)
    }
}

/// A camera declared in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    pub region: String,
    pub class: String,
    /// The camera's registry number (`spec/identity.md`): 20 digits, a camera's (device type
    /// 131), issued in `region` or a region above it. None by default.
    #[serde(default)]
    pub code: Option<String>,
    /// `{ lat_deg = …, lon_deg = … }`, WGS 84. Default: none.
    #[serde(default)]
    pub location: Option<vms_core::wire::Location>,
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
fn default_conformance_probe_secs() -> u32 {
    30
}
fn default_io_coalesce_ms() -> u32 {
    20
}
fn default_reserve_bytes() -> u64 {
    1 << 30
}
fn default_held_alert_percent() -> u8 {
    50
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
        if let Some(c) = &self.central {
            let url =
                url::Url::parse(&c.url).map_err(|e| err!(InvalidArgument, "central.url: {e}"))?;
            if url.scheme() != "https"
                || url.host().is_none()
                || url.port_or_known_default().is_none()
            {
                return Err(err!(
                    InvalidArgument,
                    "central.url: must be https://HOST:PORT"
                ));
            }
            vms_core::text::check_text("central.name", &c.name, 128)?;
        }
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
        if self.conformance_probe_secs != 0 && !(10..=600).contains(&self.conformance_probe_secs) {
            return Err(err!(
                InvalidArgument,
                "conformance_probe_secs: {} is neither 0 nor within 10..=600",
                self.conformance_probe_secs
            ));
        }
        if self.io_coalesce_ms > 50 {
            return Err(err!(
                InvalidArgument,
                "io_coalesce_ms: {} is outside 0..=50",
                self.io_coalesce_ms
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
            if !(1..=100).contains(&s.held_alert_percent) {
                return Err(err!(
                    InvalidArgument,
                    "storage[{i}].held_alert_percent: {} is outside 1..=100",
                    s.held_alert_percent
                ));
            }
        }
        self.retention.policies()?;
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
        let code = self
            .code
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: Error| e.context("code"))?;
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
            location: self.location,
            code,
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
    fn the_example_config_is_valid() {
        let c = Config::parse(include_str!("../../deploy/examples/recorder.toml")).unwrap();
        let central = c.central.expect("the example joins central");
        assert_eq!(central.region.as_str(), "750000000");
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!((c.segment_secs, c.listen), (60, default_listen()));
        assert_eq!(
            c.cameras[0].to_spec().unwrap().streams[0].transport,
            Transport::Tcp
        );
        assert_eq!(c.storage[0].reserve_bytes, 1 << 30);
        assert!(
            c.retention
                .policies()
                .unwrap()
                .values()
                .all(|p| *p == Policy::default())
        );
    }

    #[test]
    fn ages() {
        assert_eq!(
            parse_age("30d").unwrap(),
            Duration90k::from_secs(30 * 86_400)
        );
        assert_eq!(parse_age("90s").unwrap(), Duration90k::from_secs(90));
        assert_eq!(parse_age("2h").unwrap(), Duration90k::from_secs(7200));
        for bad in ["", "d", "10", "-1d", "0s", "1.5h", "1 d", "99999999d", "5ч"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("0123456789abcdef", "short"), "admin_token"),
            (GOOD.replace("751110000", "75"), "camera[0]: region"),
            (GOOD.replace("safe_yard", "zoo"), "camera[0]: class"),
            (
                GOOD.replace("class =", "code = \"7511100001310000001\"\nclass ="),
                "camera[0]: code: registry number",
            ),
            (
                GOOD.replace("class =", "code = \"71000000013100000001\"\nclass ="),
                "camera[0]: code: registry number 71000000013100000001 was issued in region",
            ),
            (
                GOOD.replace("name = \"main\"", "name = \"../x\""),
                "stream name",
            ),
            (GOOD.replace("rtsp://127", "http://127"), "url"),
            (GOOD.replace("/srv/a", "relative"), "storage[0].path"),
            (format!("{GOOD}\nbogus = 1\n"), "unknown field"),
            (GOOD.replace("data_dir = \"/var/lib/vms\"", ""), "data_dir"),
            (
                format!("{GOOD}\n[retention.city]\nmax_age = \"30x\"\n"),
                "retention.city.max_age",
            ),
            (
                format!("{GOOD}\n[retention.traffic]\nmax_age = \"1d\"\nmin_age = \"2d\"\n"),
                "retention.traffic.min_age",
            ),
            (format!("{GOOD}\n[retention.zoo]\n"), "unknown field"),
            (
                GOOD.replace("admin_token", "io_coalesce_ms = 51\nadmin_token"),
                "io_coalesce_ms",
            ),
            (
                GOOD.replace(
                    "path = \"/srv/a\"",
                    "path = \"/srv/a\"\nheld_alert_percent = 0",
                ),
                "storage[0].held_alert_percent",
            ),
        ];
        for (text, want) in cases {
            let e = Config::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
