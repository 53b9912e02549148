//! Immutable, opaque ids: a ULID per camera, recorder, storage root and recording run. The
//! server allocates them without asking anyone, so a recorder cut off from central can still
//! onboard a camera. They print as 26-character Crockford base32 and parse back strictly.

use std::fmt;
use std::str::FromStr;

use crate::{Error, err};

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ulid::Ulid);

        impl $name {
            /// Allocates a new id: time-ordered, random in its low 80 bits.
            pub fn generate() -> Self {
                Self(ulid::Ulid::new())
            }

            /// The 16 bytes, big-endian: they sort like the ids.
            pub fn to_bytes(self) -> [u8; 16] {
                self.0.to_bytes()
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(ulid::Ulid::from_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Accepts exactly the canonical form (26 upper-case Crockford characters), so that
            /// one id has one spelling in URLs, paths and logs.
            fn from_str(s: &str) -> Result<Self, Error> {
                let id = ulid::Ulid::from_string(s)
                    .map_err(|_| err!(InvalidArgument, "{:?} is not a valid {}", s, stringify!($name)))?;
                if id.to_string() != s {
                    return Err(err!(InvalidArgument, "{:?} is not a canonical {}", s, stringify!($name)));
                }
                Ok(Self(id))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

ulid_id!(
    /// A camera, for life, whatever its name, region or registry number become.
    CameraId
);
ulid_id!(
    /// A recorder, made at its first start and kept in its data directory.
    RecorderId
);
ulid_id!(
    /// A storage root (one archive directory, usually one disk).
    StorageRootId
);
ulid_id!(
    /// An evidence hold on a range of a camera's footage.
    HoldId
);
ulid_id!(
    /// A user of the central service.
    UserId
);
ulid_id!(
    /// A recording run: one uninterrupted session of one stream, continuous in media time.
    RunId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let id = CameraId::generate();
        let s = id.to_string();
        assert_eq!(s.len(), 26);
        assert_eq!(s.parse::<CameraId>().unwrap(), id);
        assert_eq!(CameraId::from_bytes(id.to_bytes()), id);
        for bad in [
            "",
            "..",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            &s.to_lowercase(),
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<CameraId>().is_err(), "{bad:?}");
        }
        let json = format!("\"{s}\"");
        assert_eq!(serde_json_like(&json), id);
    }

    fn serde_json_like(json: &str) -> CameraId {
        // Deserialize through serde's value model without a JSON dependency in vms-core.
        use serde::de::IntoDeserializer;
        let s: &str = json.trim_matches('"');
        let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            s.into_deserializer();
        serde::Deserialize::deserialize(d).unwrap()
    }
}
