//! Registry numbers: the 20-digit human number regional IT give a device, in the style of
//! GB/T 28181 device ids but built on our 9-digit region code (`spec/identity.md`):
//! `RRRRRRRRR TTT SSSSSSSS`, the region code of the issuing unit, a device type, a serial.
//! Unique in the network and searchable, but never an id: nothing references it.

use std::fmt;
use std::str::FromStr;

use crate::region::RegionCode;
use crate::{Error, bail, err};

/// What kind of device a number was issued for. The codes are those of GB/T 28181 for the
/// same kinds of device; the spec adds types only in a new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceType {
    /// `118`: a recorder (NVR).
    Recorder,
    /// `131`: a camera.
    Camera,
    /// `200`: a central server.
    CentralServer,
}

impl DeviceType {
    const ALL: [DeviceType; 3] = [
        DeviceType::Recorder,
        DeviceType::Camera,
        DeviceType::CentralServer,
    ];

    /// The three-digit code.
    pub fn code(self) -> u16 {
        match self {
            DeviceType::Recorder => 118,
            DeviceType::Camera => 131,
            DeviceType::CentralServer => 200,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DeviceType::Recorder => "recorder",
            DeviceType::Camera => "camera",
            DeviceType::CentralServer => "central server",
        }
    }
}

/// A validated registry number: 20 ASCII digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryNumber {
    region: RegionCode,
    device_type: DeviceType,
    serial: u32,
}

impl RegistryNumber {
    /// The region code of the unit that issued the number.
    pub fn region(&self) -> RegionCode {
        self.region
    }

    pub fn device_type(&self) -> DeviceType {
        self.device_type
    }

    /// 1 to 99 999 999, unique per region and device type.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether this number may be a camera's in `region`: issued for a camera, by a unit whose
    /// area holds the camera (the number's region is the camera's or one above it).
    pub fn check_camera(&self, region: &RegionCode) -> Result<(), Error> {
        if self.device_type != DeviceType::Camera {
            bail!(
                InvalidArgument,
                "registry number {self} is for a {}, not a camera",
                self.device_type.name()
            );
        }
        if !region.is_within(&self.region) {
            bail!(
                InvalidArgument,
                "registry number {self} was issued in region {}, which does not hold the camera's region {region}",
                self.region
            );
        }
        Ok(())
    }
}

impl FromStr for RegistryNumber {
    type Err = Error;

    /// Exactly 20 ASCII digits: a valid region code, a known device type, a serial other
    /// than `00000000`.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            bail!(InvalidArgument, "registry number {s:?} must be 20 digits");
        }
        let region: RegionCode = s[..9].parse().map_err(|e: Error| {
            err!(
                InvalidArgument,
                "registry number {s:?}: its region part is invalid: {}",
                e.msg()
            )
        })?;
        let code: u16 = s[9..12].parse().expect("three digits");
        let Some(device_type) = DeviceType::ALL.into_iter().find(|t| t.code() == code) else {
            let known: Vec<String> = DeviceType::ALL
                .iter()
                .map(|t| format!("{} ({})", t.code(), t.name()))
                .collect();
            bail!(
                InvalidArgument,
                "registry number {s:?}: device type {code:03} is not one of {}",
                known.join(", ")
            );
        };
        let serial: u32 = s[12..].parse().expect("eight digits");
        if serial == 0 {
            bail!(
                InvalidArgument,
                "registry number {s:?}: serial 00000000 is reserved"
            );
        }
        Ok(RegistryNumber {
            region,
            device_type,
            serial,
        })
    }
}

impl fmt::Display for RegistryNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:03}{:08}",
            self.region,
            self.device_type.code(),
            self.serial
        )
    }
}

impl serde::Serialize for RegistryNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RegistryNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    use super::*;

    fn n(s: &str) -> RegistryNumber {
        s.parse().unwrap()
    }

    #[test]
    fn valid_numbers() {
        let cam = n("75111000013100000042");
        assert_eq!(cam.region(), "751110000".parse().unwrap());
        assert_eq!(cam.device_type(), DeviceType::Camera);
        assert_eq!(cam.serial(), 42);
        assert_eq!(cam.to_string(), "75111000013100000042");
        let nvr = n("75000000011899999999");
        assert_eq!(
            (nvr.device_type(), nvr.serial()),
            (DeviceType::Recorder, 99_999_999)
        );
        let central = n("00000000020000000001");
        assert_eq!(central.region(), RegionCode::REPUBLIC);
        assert_eq!(central.device_type(), DeviceType::CentralServer);
        // Sorted like the strings.
        assert!(nvr < cam && central < nvr);
    }

    #[test]
    fn invalid_numbers() {
        for (bad, why) in [
            ("", "20 digits"),
            ("7511100001310000004", "20 digits"),
            ("751110000131000000420", "20 digits"),
            ("7511100001310000004a", "20 digits"),
            ("+5111000013100000042", "20 digits"),
            ("75111000013100000 42", "20 digits"),
            ("٧٥١١١٠٠٠٠١٣١٠٠٠٠٠٠٤", "20 digits"),
            (
                "75111000013200000042",
                "device type 132 is not one of 118 (recorder), 131 (camera), 200 (central server)",
            ),
            ("75111000099900000042", "device type 999"),
            ("00111000013100000042", "region part"),
            ("75111000013100000000", "serial 00000000"),
        ] {
            let e = bad.parse::<RegistryNumber>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn camera_rule() {
        let region = |s: &str| s.parse::<RegionCode>().unwrap();
        let cam = n("75000000013100000042");
        // Issued by the city: good for the city and any district in it.
        assert!(cam.check_camera(&region("750000000")).is_ok());
        assert!(cam.check_camera(&region("751110000")).is_ok());
        let e = cam.check_camera(&region("710000000")).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        // Issued by a district: not good for the whole city.
        assert!(
            n("75111000013100000042")
                .check_camera(&region("750000000"))
                .is_err()
        );
        let e = n("75000000011800000042")
            .check_camera(&region("750000000"))
            .unwrap_err();
        assert!(e.to_string().contains("not a camera"), "{e}");
    }

    #[test]
    fn serde_as_a_string() {
        let d: StrDeserializer<'_, DeError> = "75111000013100000042".into_deserializer();
        let number: RegistryNumber = serde::Deserialize::deserialize(d).unwrap();
        assert_eq!(number, n("75111000013100000042"));
        let d: StrDeserializer<'_, DeError> = "75111000013200000042".into_deserializer();
        assert!(<RegistryNumber as serde::Deserialize>::deserialize(d).is_err());
    }
}
