//! Time. Wall-clock instants and media durations in 90 kHz units (the video RTP clock), each
//! a newtype so the unit is in the type; conversion to and from RFC 3339 UTC; and the time
//! quality a recording carries, because camera and recorder clocks are recorded, not trusted.

use std::fmt;
use std::ops::{Add, Sub};

use crate::{Error, err};

/// Ticks per second of every `_90k` quantity.
pub const TIME_UNITS_PER_SEC: i64 = 90_000;

/// A wall-clock instant: 90 kHz units since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time90k(pub i64);

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch.
const NTP_UNIX_OFFSET_SECS: i128 = 2_208_988_800;

/// An NTP timestamp (32.32 fixed point since 1900, as in RTCP and `prft`) as µs since the
/// Unix epoch.
pub fn ntp_to_unix_us(ntp: u64) -> i64 {
    let secs = i128::from(ntp >> 32) - NTP_UNIX_OFFSET_SECS;
    let frac_us = (i128::from(ntp & 0xffff_ffff) * 1_000_000) >> 32;
    (secs * 1_000_000 + frac_us) as i64
}

/// A span of time in 90 kHz units (media or wall).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration90k(pub i64);

impl Time90k {
    pub const MIN: Time90k = Time90k(i64::MIN);
    pub const MAX: Time90k = Time90k(i64::MAX);

    pub fn from_unix_nanos(ns: i128) -> Time90k {
        Time90k((ns * 9 / 100_000) as i64)
    }

    pub fn unix_nanos(self) -> i128 {
        i128::from(self.0) * 100_000 / 9
    }

    pub fn from_timestamp(t: jiff::Timestamp) -> Time90k {
        Time90k::from_unix_nanos(t.as_nanosecond())
    }

    /// As a jiff timestamp (saturating at jiff's range).
    pub fn timestamp(self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(self.unix_nanos()).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// Parses RFC 3339 with an explicit offset (`2026-11-26T12:00:00Z`, `…+05:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Time90k, Error> {
        let t: jiff::Timestamp = s
            .parse()
            .map_err(|e| err!(InvalidArgument, "{s:?} is not an RFC 3339 time: {e}"))?;
        Ok(Time90k::from_timestamp(t))
    }

    /// As a 64-bit NTP timestamp (32.32 since 1900).
    pub fn to_ntp(self) -> u64 {
        let ns = self.unix_nanos() + NTP_UNIX_OFFSET_SECS * 1_000_000_000;
        let secs = (ns / 1_000_000_000) as u64;
        let frac = (((ns % 1_000_000_000) as u64) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    /// RFC 3339 UTC with the precision needed (`2026-11-26T12:00:00.5Z`).
    pub fn to_rfc3339(self) -> String {
        self.timestamp().to_string()
    }

    /// The UTC calendar date, for archive paths.
    pub fn utc_date(self) -> (i16, i8, i8) {
        let d = self.timestamp().to_zoned(jiff::tz::TimeZone::UTC).date();
        (d.year(), d.month(), d.day())
    }
}

impl fmt::Display for Time90k {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Duration90k {
    pub fn from_secs(s: i64) -> Duration90k {
        Duration90k(s * TIME_UNITS_PER_SEC)
    }

    pub fn from_millis(ms: i64) -> Duration90k {
        Duration90k(ms * 90)
    }

    pub fn as_millis(self) -> i64 {
        self.0 / 90
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TIME_UNITS_PER_SEC as f64
    }

    pub fn from_std(d: std::time::Duration) -> Duration90k {
        Duration90k((d.as_nanos() * 9 / 100_000) as i64)
    }
}

impl Add<Duration90k> for Time90k {
    type Output = Time90k;
    fn add(self, d: Duration90k) -> Time90k {
        Time90k(self.0.saturating_add(d.0))
    }
}

impl Sub<Duration90k> for Time90k {
    type Output = Time90k;
    fn sub(self, d: Duration90k) -> Time90k {
        Time90k(self.0.saturating_sub(d.0))
    }
}

impl Sub for Time90k {
    type Output = Duration90k;
    fn sub(self, other: Time90k) -> Duration90k {
        Duration90k(self.0.saturating_sub(other.0))
    }
}

impl Add for Duration90k {
    type Output = Duration90k;
    fn add(self, d: Duration90k) -> Duration90k {
        Duration90k(self.0.saturating_add(d.0))
    }
}

/// How far the wall-clock times of a recording can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TimeQuality {
    /// The recorder's clock was synchronised (NTP) while recording.
    pub recorder_synced: bool,
    /// The recorder clock's estimated error bound, when the OS reports one.
    pub recorder_error_ms: Option<u32>,
    /// The camera's clock minus the recorder's, from RTCP sender reports, when the camera sent
    /// any. Recorded, never used to time the footage.
    pub camera_offset_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Time90k::parse_rfc3339("2026-11-26T12:00:00.5Z").unwrap();
        assert_eq!(t.0 % TIME_UNITS_PER_SEC, 45_000);
        assert_eq!(t.to_rfc3339(), "2026-11-26T12:00:00.5Z");
        let plus5 = Time90k::parse_rfc3339("2026-11-26T17:00:00.5+05:00").unwrap();
        assert_eq!(plus5, t);
        assert_eq!(t.utc_date(), (2026, 11, 26));
        for bad in [
            "",
            "2026-11-26",
            "2026-11-26T12:00:00",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(Time90k::parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ntp_conversions() {
        // 1970-01-01T00:00:01.5Z
        let ntp = ((2_208_988_800u64 + 1) << 32) | (1 << 31);
        assert_eq!(ntp_to_unix_us(ntp), 1_500_000);
        assert_eq!(Time90k(135_000).to_ntp(), ntp);
        let t = Time90k::parse_rfc3339("2026-11-26T12:00:00.25Z").unwrap();
        assert_eq!(
            i128::from(ntp_to_unix_us(t.to_ntp())),
            t.unix_nanos() / 1000
        );
    }

    #[test]
    fn arithmetic() {
        let t = Time90k(1000);
        assert_eq!(t + Duration90k(500) - t, Duration90k(500));
        assert_eq!(Duration90k::from_secs(2).as_millis(), 2000);
        assert_eq!(
            Duration90k::from_std(std::time::Duration::from_millis(10)),
            Duration90k(900)
        );
        assert_eq!(Time90k::MAX + Duration90k(1), Time90k::MAX);
    }
}
