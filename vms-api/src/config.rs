//! Central's TOML configuration (`vms-api run --config FILE.toml`): parsed with unknown fields
//! rejected and validated at start-up, every error naming its field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vms_core::{Error, err};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the client API (`/api/v1`). Default `127.0.0.1:8090`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the recorders' TLS port: enrolment and the channels they dial. Default
    /// `127.0.0.1:8443`.
    #[serde(default = "default_channel_listen")]
    pub channel_listen: SocketAddr,
    /// Names and IP addresses recorders use to reach the channel port; they go into its TLS
    /// certificate. Default `["127.0.0.1", "localhost"]`.
    #[serde(default = "default_tls_names")]
    pub tls_names: Vec<String>,
    /// Directory of the store, the national root key and its certificate. Required.
    pub data_dir: PathBuf,
    /// An operator's region file, merged over the shipped tree (`spec/regions.toml`).
    /// Default: none.
    #[serde(default)]
    pub regions_file: Option<PathBuf>,
    /// A recorder with no heartbeat for this long is offline, 1000..=600000. Default 15000.
    #[serde(default = "default_heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// How long a fanned-out query waits for each recorder, 50..=60000. Default 2000.
    #[serde(default = "default_fanout_deadline_ms")]
    pub fanout_deadline_ms: u64,
    /// Lifetime of a login session, 60..=86400. Default 28800 (8 h).
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: u64,
    /// Lifetime of a media token, 10..=3600 (the recorders' limit). Default 300.
    #[serde(default = "default_media_token_ttl_secs")]
    pub media_token_ttl_secs: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}

fn default_channel_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

fn default_tls_names() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}

fn default_heartbeat_timeout_ms() -> u64 {
    15_000
}

fn default_fanout_deadline_ms() -> u64 {
    2_000
}

fn default_session_ttl_secs() -> u64 {
    8 * 3600
}

fn default_media_token_ttl_secs() -> u64 {
    300
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
        let ranges: [(&str, u64, std::ops::RangeInclusive<u64>); 4] = [
            (
                "heartbeat_timeout_ms",
                self.heartbeat_timeout_ms,
                1000..=600_000,
            ),
            ("fanout_deadline_ms", self.fanout_deadline_ms, 50..=60_000),
            ("session_ttl_secs", self.session_ttl_secs, 60..=86_400),
            ("media_token_ttl_secs", self.media_token_ttl_secs, 10..=3600),
        ];
        for (name, v, range) in ranges {
            if !range.contains(&v) {
                return Err(err!(
                    InvalidArgument,
                    "{name}: {v} is outside {}..={}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if self.tls_names.is_empty() || self.tls_names.iter().any(|n| n.is_empty()) {
            return Err(err!(
                InvalidArgument,
                "tls_names: at least one name, none empty"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let c = Config::parse(include_str!("../../deploy/examples/central.toml")).unwrap();
        assert_eq!(c.channel_listen.port(), 8443);
    }

    #[test]
    fn defaults_and_refusals() {
        let c = Config::parse("data_dir = \"/var/lib/vms-api\"").unwrap();
        assert_eq!(c.listen.port(), 8090);
        assert_eq!(c.fanout_deadline_ms, 2000);
        for (text, field) in [
            ("data_dir = \"d\"\nbogus = 1", "bogus"),
            ("listen = \"127.0.0.1:1\"", "data_dir"),
            (
                "data_dir = \"d\"\nfanout_deadline_ms = 1",
                "fanout_deadline_ms",
            ),
            (
                "data_dir = \"d\"\nmedia_token_ttl_secs = 7200",
                "media_token_ttl_secs",
            ),
            ("data_dir = \"d\"\ntls_names = []", "tls_names"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
