//! Why a recording ends. Every gap in an archive carries one of these reasons, and a segment
//! records the one that ended it: the one list the whole network uses (spec/glossary).

use std::fmt;
use std::str::FromStr;

use crate::{Error, err};

/// Why a segment ended. [`EndReason::Rotated`] and [`EndReason::CodecChange`] continue the
/// recording in a new segment; the others leave a gap until recording resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Reached its target length; the next segment follows without a gap.
    Rotated,
    /// The camera dropped the connection or could not be reached.
    Disconnect,
    /// The camera kept the session but sent nothing for too long.
    Stall,
    /// The camera sent something unusable (malformed RTP, bad parameters).
    CameraError,
    /// The codec parameters changed (e.g. a new SPS); a new segment starts.
    CodecChange,
    /// The camera's timestamps or the recorder's clock jumped; a new run starts.
    ClockStep,
    /// Writing failed.
    DiskError,
    /// The recorder died; found at recovery (the file has no trailer).
    Crash,
    /// The recorder stopped cleanly.
    RecorderStopped,
    /// Retention removed the footage.
    Evicted,
    /// The camera or stream was disabled or removed.
    Disabled,
}

const ALL: [EndReason; 11] = [
    EndReason::Rotated,
    EndReason::Disconnect,
    EndReason::Stall,
    EndReason::CameraError,
    EndReason::CodecChange,
    EndReason::ClockStep,
    EndReason::DiskError,
    EndReason::Crash,
    EndReason::RecorderStopped,
    EndReason::Evicted,
    EndReason::Disabled,
];

impl EndReason {
    /// The stable snake_case name used in files, the index and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Rotated => "rotated",
            EndReason::Disconnect => "disconnect",
            EndReason::Stall => "stall",
            EndReason::CameraError => "camera_error",
            EndReason::CodecChange => "codec_change",
            EndReason::ClockStep => "clock_step",
            EndReason::DiskError => "disk_error",
            EndReason::Crash => "crash",
            EndReason::RecorderStopped => "recorder_stopped",
            EndReason::Evicted => "evicted",
            EndReason::Disabled => "disabled",
        }
    }

    /// A stable one-byte code for compact storage.
    pub fn code(self) -> u8 {
        ALL.iter().position(|&r| r == self).expect("listed") as u8
    }

    pub fn from_code(code: u8) -> Option<EndReason> {
        ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndReason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ALL.into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| err!(InvalidArgument, "unknown end reason {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for r in ALL {
            assert_eq!(r.as_str().parse::<EndReason>().unwrap(), r);
            assert_eq!(EndReason::from_code(r.code()), Some(r));
        }
        assert_eq!(EndReason::from_code(200), None);
        assert!("gone".parse::<EndReason>().is_err());
    }
}
