//! The cameras a recorder records: their specification, validation, and the camera journal,
//! a small fsynced file in the data directory, because camera configuration is something the
//! segment files cannot hold. Credentials live only here and in memory; they are never logged.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vms_core::id::CameraId;
use vms_core::region::RegionCode;
use vms_core::registry::RegistryNumber;
use vms_core::wire::Location;
use vms_core::{Error, bail, err};

use crate::archive::layout::check_stream_name;
use crate::journal::Journal;

/// The kind of camera; retention and conformance profiles are set per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraClass {
    City,
    SafeYard,
    Traffic,
}

impl FromStr for CameraClass {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "city" => Ok(CameraClass::City),
            "safe_yard" => Ok(CameraClass::SafeYard),
            "traffic" => Ok(CameraClass::Traffic),
            _ => Err(err!(
                InvalidArgument,
                "{s:?} is not one of city, safe_yard, traffic"
            )),
        }
    }
}

impl fmt::Display for CameraClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CameraClass::City => "city",
            CameraClass::SafeYard => "safe_yard",
            CameraClass::Traffic => "traffic",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// One stream of a camera.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    /// `rtsp://host[:port]/path`, without credentials.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub transport: Transport,
}

impl fmt::Debug for StreamSpec {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSpec")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .finish()
    }
}

/// A camera as configured (what the API accepts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraSpec {
    pub name: String,
    pub region: RegionCode,
    pub class: CameraClass,
    /// Where it is, WGS 84; optional, for the directory's map searches.
    #[serde(default)]
    pub location: Option<Location>,
    /// The registry number regional IT assigned, if any (`spec/identity.md`): a camera's,
    /// issued in `region` or a region above it.
    pub code: Option<RegistryNumber>,
    pub streams: Vec<StreamSpec>,
}

/// A camera with its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    pub id: CameraId,
    #[serde(flatten)]
    pub spec: CameraSpec,
}

impl StreamSpec {
    /// The URL to connect to, checked: a URI (printable ASCII: anything else
    /// percent-encoded), `rtsp` scheme, a host, no credentials in it.
    pub fn parsed_url(&self) -> Result<url::Url, Error> {
        if !self.url.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                InvalidArgument,
                "url: printable ASCII without spaces; percent-encode anything else"
            );
        }
        let url = url::Url::parse(&self.url).map_err(|e| err!(InvalidArgument, "url: {e}"))?;
        if url.scheme() != "rtsp" {
            bail!(InvalidArgument, "url: scheme must be rtsp");
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!(InvalidArgument, "url: has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!(
                InvalidArgument,
                "url: put credentials in username and password, not in the URL"
            );
        }
        Ok(url)
    }
}

impl CameraSpec {
    pub fn validate(&self) -> Result<(), Error> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            bail!(InvalidArgument, "name: 1 to 128 printable characters");
        }
        if let Some(code) = &self.code {
            code.check_camera(&self.region)
                .map_err(|e| e.context("code"))?;
        }
        if let Some(l) = self.location
            && !(l.lat_deg.abs() <= 90.0 && l.lon_deg.abs() <= 180.0)
        {
            bail!(
                InvalidArgument,
                "location: lat_deg within ±90 and lon_deg within ±180"
            );
        }
        if self.streams.is_empty() || self.streams.len() > 4 {
            bail!(InvalidArgument, "streams: 1 to 4 streams");
        }
        for (i, s) in self.streams.iter().enumerate() {
            check_stream_name(&s.name).map_err(|e| e.context(format!("streams[{i}].name")))?;
            if self.streams[..i].iter().any(|o| o.name == s.name) {
                bail!(
                    InvalidArgument,
                    "streams[{i}].name: {:?} is used twice",
                    s.name
                );
            }
            s.parsed_url()
                .map_err(|e| e.context(format!("streams[{i}]")))?;
            if s.password.is_some() && s.username.is_none() {
                bail!(
                    InvalidArgument,
                    "streams[{i}].password: given without a username"
                );
            }
        }
        Ok(())
    }
}

/// The camera journal of a data directory.
pub fn journal(data_dir: &Path) -> Journal<Camera> {
    Journal::new(data_dir.join("cameras.json"), "vms-cameras/1", "cameras")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn spec() -> CameraSpec {
        CameraSpec {
            location: None,
            name: "Gate 1".into(),
            region: "751110000".parse().unwrap(),
            class: CameraClass::SafeYard,
            code: None,
            streams: vec![StreamSpec {
                name: "main".into(),
                url: "rtsp://127.0.0.1:8554/gate/main".into(),
                username: Some("admin".into()),
                password: Some("hunter2".into()),
                transport: Transport::Tcp,
            }],
        }
    }

    #[test]
    fn journal_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(dir.path());
        assert!(j.load().unwrap().is_empty());
        let cams = vec![Camera {
            id: CameraId::generate(),
            spec: spec(),
        }];
        j.save(&cams).unwrap();
        assert_eq!(j.load().unwrap(), cams);
    }

    #[test]
    fn validation_and_redaction() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.streams[0].url = "rtsp://admin:pw@127.0.0.1/x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("credentials")
        );
        for url in [
            "file:///etc/passwd",
            "rtsp://\u{e1}\u{a5}?\u{81}",
            "rtsp://127.0.0.1/a b",
            " rtsp://127.0.0.1/x",
        ] {
            let mut s = spec();
            s.streams[0].url = url.into();
            assert!(s.validate().is_err(), "{url:?}");
        }
        for (code, ok) in [
            ("75111000013100000001", true),
            ("75000000013100000001", true),
            ("71000000013100000001", false),
            ("75111000011800000001", false),
        ] {
            let mut s = spec();
            s.code = Some(code.parse().unwrap());
            let r = s.validate();
            assert_eq!(r.is_ok(), ok, "{code}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().starts_with("code: "), "{e}");
            }
        }
        assert!(!format!("{:?}", spec()).contains("hunter2"));
    }
}
