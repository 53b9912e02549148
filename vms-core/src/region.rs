//! Region codes: 9 digits in the structure of KATO, Kazakhstan's classifier of
//! administrative-territorial units (`AB CD EF GHI`: region, district, rural district, settlement).
//! A code is an attribute of a camera or recorder, never part of an id: it can change.

use std::fmt;
use std::str::FromStr;

use crate::{Error, err};

/// A validated 9-digit region code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode([u8; 9]);

impl RegionCode {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("validated ASCII digits")
    }

    /// The code of the top-level region (the first two digits, the rest zero).
    pub fn top_level(&self) -> RegionCode {
        let mut c = *b"000000000";
        c[..2].copy_from_slice(&self.0[..2]);
        RegionCode(c)
    }

    /// Whether `self` lies in the subtree of `ancestor` (trailing zero groups of the ancestor
    /// are wildcards: `750000000` contains `751110000`). A code contains itself.
    pub fn is_within(&self, ancestor: &RegionCode) -> bool {
        // KATO levels end after digits 2, 4, 6 and 9; the all-zero code is the whole republic.
        let significant = [0usize, 2, 4, 6, 9]
            .into_iter()
            .find(|&n| ancestor.0[n..].iter().all(|&d| d == b'0'))
            .unwrap_or(9);
        self.0[..significant] == ancestor.0[..significant]
    }
}

impl FromStr for RegionCode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes: [u8; 9] = s
            .as_bytes()
            .try_into()
            .map_err(|_| err!(InvalidArgument, "region {s:?} must be 9 digits"))?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(err!(InvalidArgument, "region {s:?} must be 9 digits"));
        }
        if bytes[..2] == *b"00" && bytes.iter().any(|&b| b != b'0') {
            return Err(err!(
                InvalidArgument,
                "region {s:?} has no top-level region (first two digits 00)"
            ));
        }
        Ok(RegionCode(bytes))
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RegionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(r("751110000").as_str(), "751110000");
        for bad in [
            "",
            "75111000",
            "7511100000",
            "75111000a",
            "001110000",
            " 75111000",
        ] {
            assert!(bad.parse::<RegionCode>().is_err(), "{bad:?}");
        }
        assert_eq!(r("751110000").top_level(), r("750000000"));
    }

    #[test]
    fn subtrees() {
        let almaty = r("750000000");
        assert!(r("751110000").is_within(&almaty));
        assert!(almaty.is_within(&almaty));
        assert!(!r("711110000").is_within(&almaty));
        assert!(r("751110000").is_within(&r("751100000")));
        assert!(!r("751210000").is_within(&r("751100000")));
        assert!(
            r("751110000").is_within(&r("000000000")),
            "the republic contains everything"
        );
    }
}
