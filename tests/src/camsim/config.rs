//! Simulator configuration: the TOML file format, its defaults and its validation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The whole simulator configuration (`vms-camsim --config FILE.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the RTSP server listens on. Default `127.0.0.1:0` (a free port, printed at start).
    #[serde(default = "loopback_any_port")]
    pub rtsp_listen: SocketAddr,
    /// Address of the HTTP control API. Default `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub control_listen: SocketAddr,
    /// How many frames each stream's record of what it sent keeps (oldest dropped first).
    /// Default 200000 (about 3.7 h at 15 fps).
    #[serde(default = "default_record_capacity")]
    pub record_capacity: usize,
    /// The cameras. Default: none.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

/// One camera entry, or `count` identical cameras.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Name, and first path element of every stream URL: `[A-Za-z0-9_-]{1,64}`. Required.
    pub name: String,
    /// When set, this entry stands for `count` cameras named `{name}-0001` … `{name}-{count}`.
    /// Default: one camera named `name`.
    #[serde(default)]
    pub count: Option<u32>,
    /// RTSP Digest user. Default: no authentication. Requires `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// RTSP Digest password. Default: none.
    #[serde(default)]
    pub password: Option<String>,
    /// The camera's streams, each served at `rtsp://HOST:PORT/{camera}/{stream}`.
    /// Default: one stream named `main` with the defaults of [`StreamConfig`].
    #[serde(default = "default_streams")]
    pub streams: Vec<StreamConfig>,
}

/// Video codec of a stream.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
}

/// H.264 profile of a stream's encoding (what its SPS declares).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Constrained Baseline (`profile_idc` 66): no B-frames, no CABAC.
    Baseline,
    /// Main (`profile_idc` 77), or for H.265 the Main profile (`general_profile_idc` 1).
    Main,
    /// High (`profile_idc` 100).
    High,
}

/// Where a stream's parameter sets (SPS and PPS, and VPS for H.265) travel.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ParameterSets {
    /// In the SDP's `sprop-*` parameters and in-band before every keyframe.
    SdpAndInBand,
    /// Only in-band before every keyframe; the SDP has no `sprop-*` parameter.
    InBand,
    /// Only in the SDP; never in-band.
    Sdp,
    /// Neither: a decoder cannot start.
    None,
}

impl ParameterSets {
    /// Whether the SDP carries them.
    pub fn in_sdp(self) -> bool {
        matches!(self, ParameterSets::SdpAndInBand | ParameterSets::Sdp)
    }

    /// Whether they precede every keyframe in the RTP stream.
    pub fn in_band(self) -> bool {
        matches!(self, ParameterSets::SdpAndInBand | ParameterSets::InBand)
    }
}

/// A lower transport a stream accepts in SETUP.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RTP and RTCP interleaved on the RTSP connection (`RTP/AVP/TCP`).
    Tcp,
    /// RTP and RTCP over UDP (`RTP/AVP`).
    Udp,
}

/// How a stream's frames are produced.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Encoded once at start-up, then replayed in a loop: cheap, for hundreds of cameras.
    Loop,
    /// Encoded live, with the wall clock and a frame counter burned in: for a few cameras.
    Live,
}

/// The shape of one stream.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name, second path element of its URL: `[A-Za-z0-9_-]{1,64}`. Default `main`.
    #[serde(default = "default_stream_name")]
    pub name: String,
    /// `h264` or `h265`. Default `h264`.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Profile the SPS declares: `baseline`, `main` or `high` for H.264; only `main` for
    /// H.265. Default `high` for H.264 and `main` for H.265 (see [`StreamConfig::profile`]).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Width in pixels, even, 16..=4096. Default 640.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height in pixels, even, 16..=4096. Default 360.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Frames per second, 1..=60. Default 15.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Frames from one keyframe to the next, 1..=3600. Default 30.
    #[serde(default = "default_gop")]
    pub gop_frames: u32,
    /// Target video bitrate in kbit/s, 16..=50000. Default 1000.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// Adds an AAC audio track (48 kHz mono). Default false.
    #[serde(default)]
    pub audio: bool,
    /// `loop` or `live`. Default `loop`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Length of the pre-encoded clip of `loop` mode, in seconds, 1..=600. Default 10.
    #[serde(default = "default_loop_secs")]
    pub loop_secs: u32,
    /// Whether the stream sends RTCP sender reports. `false`: no RTCP at all, over any
    /// transport, while RTP flows as usual. Default true.
    #[serde(default = "default_true")]
    pub rtcp: bool,
    /// Where the parameter sets travel: `sdp_and_in_band`, `in_band`, `sdp` or `none`.
    /// Default `sdp_and_in_band`.
    #[serde(default = "default_parameter_sets")]
    pub parameter_sets: ParameterSets,
    /// Lower transports SETUP accepts, a non-empty list of distinct `tcp` and `udp`; any other
    /// is refused with `461 Unsupported Transport`. Default `["tcp", "udp"]`.
    #[serde(default = "default_transports")]
    pub transports: Vec<Transport>,
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn default_record_capacity() -> usize {
    200_000
}
fn default_streams() -> Vec<StreamConfig> {
    vec![StreamConfig::default()]
}
fn default_stream_name() -> String {
    "main".to_owned()
}
fn default_codec() -> Codec {
    Codec::H264
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    360
}
fn default_fps() -> u32 {
    15
}
fn default_gop() -> u32 {
    30
}
fn default_bitrate() -> u32 {
    1000
}
fn default_mode() -> Mode {
    Mode::Loop
}
fn default_loop_secs() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_parameter_sets() -> ParameterSets {
    ParameterSets::SdpAndInBand
}
fn default_transports() -> Vec<Transport> {
    vec![Transport::Tcp, Transport::Udp]
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: default_stream_name(),
            codec: default_codec(),
            profile: None,
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            gop_frames: default_gop(),
            bitrate_kbps: default_bitrate(),
            audio: false,
            mode: default_mode(),
            loop_secs: default_loop_secs(),
            rtcp: true,
            parameter_sets: default_parameter_sets(),
            transports: default_transports(),
        }
    }
}

/// A camera after `count` expansion, with its final name.
#[derive(Clone, Debug)]
pub struct Camera {
    pub name: String,
    pub credentials: Option<(String, String)>,
    pub streams: Vec<StreamConfig>,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.expand()?;
        Ok(config)
    }

    /// Expands `count` entries and validates every camera, returning the final list.
    pub fn expand(&self) -> Result<Vec<Camera>, String> {
        if self.record_capacity == 0 {
            return Err("record_capacity: must be at least 1".into());
        }
        let mut cameras = Vec::new();
        let mut passwords: HashMap<&str, &str> = HashMap::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let at = |field: &str| format!("camera[{i}].{field}");
            check_name(&c.name).map_err(|e| format!("{}: {e}", at("name")))?;
            let credentials = match (&c.username, &c.password) {
                (None, None) => None,
                (Some(u), Some(p)) => {
                    if u.is_empty() || u.contains(':') {
                        return Err(format!(
                            "{}: must be non-empty, without ':'",
                            at("username")
                        ));
                    }
                    // gst-rtsp-server keys Digest users by name, so one name has one password.
                    if let Some(other) = passwords.insert(u, p)
                        && other != p
                    {
                        return Err(format!(
                            "{}: user {u:?} already has another password; \
                             a simulator keeps one password per user name",
                            at("password")
                        ));
                    }
                    Some((u.clone(), p.clone()))
                }
                _ => {
                    return Err(format!(
                        "{}: username and password go together",
                        at("username")
                    ));
                }
            };
            if c.streams.is_empty() {
                return Err(format!("{}: at least one stream", at("streams")));
            }
            for (j, s) in c.streams.iter().enumerate() {
                s.validate()
                    .map_err(|e| format!("{}.{e}", at(&format!("streams[{j}]"))))?;
                if c.streams[..j].iter().any(|o| o.name == s.name) {
                    return Err(format!(
                        "{}: duplicate stream name",
                        at(&format!("streams[{j}].name"))
                    ));
                }
            }
            let names: Vec<String> = match c.count {
                None => vec![c.name.clone()],
                Some(0) => return Err(format!("{}: must be at least 1", at("count"))),
                Some(n) => (1..=n).map(|k| format!("{}-{k:04}", c.name)).collect(),
            };
            for name in names {
                cameras.push(Camera {
                    name,
                    credentials: credentials.clone(),
                    streams: c.streams.clone(),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &cameras {
            if !seen.insert(c.name.as_str()) {
                return Err(format!("camera name {:?} is used twice", c.name));
            }
        }
        Ok(cameras)
    }
}

impl StreamConfig {
    /// Checks every field; the error starts with the field name.
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name).map_err(|e| format!("name: {e}"))?;
        let range = |field: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{field}: {v} is outside {lo}..={hi}"))
            }
        };
        range("width", self.width, 16, 4096)?;
        range("height", self.height, 16, 4096)?;
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err("width: width and height must be even (4:2:0)".into());
        }
        range("fps", self.fps, 1, 60)?;
        range("gop_frames", self.gop_frames, 1, 3600)?;
        range("bitrate_kbps", self.bitrate_kbps, 16, 50_000)?;
        range("loop_secs", self.loop_secs, 1, 600)?;
        if self.codec == Codec::H265 && self.profile.is_some_and(|p| p != Profile::Main) {
            return Err("profile: an h265 stream is always `main`".into());
        }
        if self.transports.is_empty() {
            return Err("transports: at least one of `tcp` and `udp`".into());
        }
        let listed = &self.transports;
        if (1..listed.len()).any(|i| listed[..i].contains(&listed[i])) {
            return Err("transports: a transport is listed twice".into());
        }
        Ok(())
    }

    /// The profile the stream is encoded with: the configured one, else the codec's default
    /// (High for H.264, Main for H.265).
    pub fn profile(&self) -> Profile {
        match (self.profile, self.codec) {
            (Some(p), _) => p,
            (None, Codec::H264) => Profile::High,
            (None, Codec::H265) => Profile::Main,
        }
    }
}

/// Names become URL path elements, so they are restricted to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} must match [A-Za-z0-9_-]{{1,64}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_count_expansion() {
        let c = Config::parse("[[camera]]\nname = \"yard\"\ncount = 3\n").unwrap();
        let cams = c.expand().unwrap();
        let names: Vec<_> = cams.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["yard-0001", "yard-0002", "yard-0003"]);
        assert_eq!(cams[0].streams, vec![StreamConfig::default()]);
        assert_eq!(c.rtsp_listen, loopback_any_port());
        let s = &cams[0].streams[0];
        assert_eq!(s.profile(), Profile::High);
        assert!(s.rtcp);
        assert_eq!(s.parameter_sets, ParameterSets::SdpAndInBand);
        assert_eq!(s.transports, [Transport::Tcp, Transport::Udp]);
    }

    #[test]
    fn conformance_knobs_parse() {
        let c = Config::parse(
            "[[camera]]\nname = \"a\"\n[[camera.streams]]\nprofile = \"baseline\"\n\
             rtcp = false\nparameter_sets = \"in_band\"\ntransports = [\"udp\"]\n\
             [[camera.streams]]\nname = \"sub\"\ncodec = \"h265\"\nprofile = \"main\"\n",
        )
        .unwrap();
        let [s, sub] = &c.cameras[0].streams[..] else {
            panic!("two streams");
        };
        assert_eq!(s.profile(), Profile::Baseline);
        assert!(!s.rtcp);
        assert_eq!(s.parameter_sets, ParameterSets::InBand);
        assert_eq!(s.transports, [Transport::Udp]);
        assert_eq!(sub.profile(), Profile::Main);
        let flags: Vec<_> = [
            ParameterSets::SdpAndInBand,
            ParameterSets::InBand,
            ParameterSets::Sdp,
            ParameterSets::None,
        ]
        .iter()
        .map(|p| (p.in_sdp(), p.in_band()))
        .collect();
        assert_eq!(
            flags,
            [(true, true), (false, true), (true, false), (false, false)]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[[camera]]\nname = \"a/b\"\n", "camera[0].name"),
            (
                "[[camera]]\nname = \"a\"\nusername = \"u\"\n",
                "camera[0].username",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\nfps = 0\n",
                "camera[0].streams[0].fps",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\n[[camera.streams]]\n",
                "camera[0].streams[1].name",
            ),
            (
                "[[camera]]\nname = \"a\"\nbogus = 1\n",
                "unknown field `bogus`",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera]]\nname = \"a\"\n",
                "used twice",
            ),
            (
                "[[camera]]\nname = \"a\"\nusername = \"u\"\npassword = \"x\"\n\
                 [[camera]]\nname = \"b\"\nusername = \"u\"\npassword = \"y\"\n",
                "camera[1].password",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\ncodec = \"h265\"\nprofile = \"high\"\n",
                "camera[0].streams[0].profile",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\nprofile = \"extended\"\n",
                "unknown variant `extended`",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\nparameter_sets = \"sometimes\"\n",
                "unknown variant `sometimes`",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\ntransports = []\n",
                "camera[0].streams[0].transports",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\ntransports = [\"tcp\", \"udp\", \"udp\"]\n",
                "camera[0].streams[0].transports",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\ntransports = [\"http\"]\n",
                "unknown variant `http`",
            ),
            (
                "[[camera]]\nname = \"a\"\n[[camera.streams]]\nrtcp = \"no\"\n",
                "rtcp",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
    }
}
