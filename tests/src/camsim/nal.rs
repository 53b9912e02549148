//! Parameter-set work on H.264/H.265 byte streams: finding and removing SPS/PPS (and VPS) in an
//! access unit, and rewriting the SDP `fmtp` parameters that carry them (RFC 6184, RFC 7798).
//!
//! Everything here works on plain bytes and strings so that it is unit-tested without GStreamer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::config::Codec;

/// The NAL units of an Annex B byte stream, without start codes or trailing zero bytes, found
/// one after the other (so that a caller may stop early).
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let start_after = |from: usize| {
        stream
            .get(from..)?
            .windows(3)
            .position(|w| w == [0, 0, 1])
            .map(|p| from + p + 3)
    };
    let mut next = start_after(0);
    std::iter::from_fn(move || {
        loop {
            let start = next?;
            next = start_after(start);
            let end = next.map_or(stream.len(), |n| n - 3);
            // A NAL unit never ends in a zero byte (RBSP trailing bits end in a one), so zeros
            // before the next start code belong to that start code or are trailing padding.
            let unit = &stream[start..end];
            let len = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if len > 0 {
                return Some(&unit[..len]);
            }
        }
    })
}

/// The NAL unit type of a unit (its header's type field).
pub fn nal_type(codec: Codec, unit: &[u8]) -> Option<u8> {
    let &first = unit.first()?;
    Some(match codec {
        Codec::H264 => first & 0x1f,
        Codec::H265 => (first >> 1) & 0x3f,
    })
}

/// Whether a NAL unit is a parameter set: SPS or PPS, and for H.265 also VPS.
pub fn is_parameter_set(codec: Codec, unit: &[u8]) -> bool {
    match codec {
        Codec::H264 => matches!(nal_type(codec, unit), Some(7 | 8)),
        Codec::H265 => matches!(nal_type(codec, unit), Some(32..=34)),
    }
}

/// Whether an access unit holds a random-access picture: an IDR picture for H.264, an IRAP
/// picture (BLA, IDR, CRA) for H.265.
pub fn has_random_access_picture(codec: Codec, au: &[u8]) -> bool {
    nal_units(au).any(|u| match codec {
        Codec::H264 => nal_type(codec, u) == Some(5),
        Codec::H265 => matches!(nal_type(codec, u), Some(16..=21)),
    })
}

/// The distinct parameter sets of an access unit, in stream order (an encoder and a parser
/// may both have put the same ones in).
pub fn parameter_sets(codec: Codec, au: &[u8]) -> Vec<Vec<u8>> {
    let mut sets: Vec<Vec<u8>> = Vec::new();
    for unit in nal_units(au) {
        if is_parameter_set(codec, unit) && !sets.iter().any(|s| s == unit) {
            sets.push(unit.to_vec());
        }
    }
    sets
}

/// The access unit with every parameter set left out, other NAL units kept in order behind
/// four-byte start codes. `None` if it held no parameter set (use it as it is).
pub fn without_parameter_sets(codec: Codec, au: &[u8]) -> Option<Vec<u8>> {
    if !nal_units(au).any(|u| is_parameter_set(codec, u)) {
        return None;
    }
    let mut out = Vec::with_capacity(au.len());
    for unit in nal_units(au).filter(|u| !is_parameter_set(codec, u)) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    Some(out)
}

/// The `fmtp` parameters that carry parameter sets.
const SPROP_KEYS: [&str; 4] = [
    "sprop-parameter-sets",
    "sprop-vps",
    "sprop-sps",
    "sprop-pps",
];

/// Rewrites the value of an SDP `a=fmtp:` attribute (`"96 key=value;key=value"`, or just the
/// format `"96"`): every `sprop-*` parameter is removed, and when `sets` is given, the
/// parameter sets are put back as this codec's `sprop-*` parameters (for H.264 with a
/// `profile-level-id` taken from the SPS, if the attribute lacks one). H.264 always gets
/// `packetization-mode=1`, which is what the payloader sends.
pub fn rewrite_fmtp(value: &str, codec: Codec, sets: Option<&[Vec<u8>]>) -> String {
    let (format, params) = value.split_once(' ').unwrap_or((value, ""));
    let mut kept: Vec<String> = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split_once('=').map_or(*p, |(k, _)| k);
            !SPROP_KEYS.iter().any(|s| s.eq_ignore_ascii_case(key))
        })
        .map(str::to_owned)
        .collect();
    if codec == Codec::H264 && !kept.iter().any(|p| p.starts_with("packetization-mode=")) {
        kept.insert(0, "packetization-mode=1".to_owned());
    }
    if let Some(sets) = sets {
        let b64 = |t: u8| -> Vec<String> {
            sets.iter()
                .filter(|u| nal_type(codec, u) == Some(t))
                .map(|u| BASE64.encode(u))
                .collect()
        };
        match codec {
            Codec::H264 => {
                let has_level = kept.iter().any(|p| p.starts_with("profile-level-id="));
                let sps = sets.iter().find(|u| nal_type(codec, u) == Some(7));
                if let (false, Some(sps)) = (has_level, sps.and_then(|s| s.get(1..4))) {
                    kept.push(format!(
                        "profile-level-id={:02x}{:02x}{:02x}",
                        sps[0], sps[1], sps[2]
                    ));
                }
                let all: Vec<String> = [b64(7), b64(8)].concat();
                if !all.is_empty() {
                    kept.push(format!("sprop-parameter-sets={}", all.join(",")));
                }
            }
            Codec::H265 => {
                for (key, t) in [("sprop-vps", 32), ("sprop-sps", 33), ("sprop-pps", 34)] {
                    let units = b64(t);
                    if !units.is_empty() {
                        kept.push(format!("{key}={}", units.join(",")));
                    }
                }
            }
        }
    }
    if kept.is_empty() {
        format.to_owned()
    } else {
        format!("{format} {}", kept.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 5] = [0x67, 0x64, 0x00, 0x28, 0xac];
    const PPS: [u8; 3] = [0x68, 0xee, 0x3c];
    const IDR: [u8; 4] = [0x65, 0x88, 0x80, 0x40];

    fn annex_b(units: &[&[u8]], long: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            if long {
                out.push(0);
            }
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(u);
        }
        out
    }

    #[test]
    fn splits_with_short_and_long_start_codes() {
        for long in [false, true] {
            let au = annex_b(&[&SPS, &PPS, &IDR], long);
            let units: Vec<&[u8]> = nal_units(&au).collect();
            assert_eq!(units, [&SPS[..], &PPS[..], &IDR[..]]);
        }
        assert_eq!(nal_units(&[0, 0, 0]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
    }

    #[test]
    fn finds_and_removes_parameter_sets() {
        let au = annex_b(&[&SPS, &PPS, &SPS, &IDR], true);
        assert!(has_random_access_picture(Codec::H264, &au));
        assert!(!has_random_access_picture(
            Codec::H264,
            &annex_b(&[&SPS, &PPS], false)
        ));
        assert!(!has_random_access_picture(
            Codec::H264,
            &annex_b(&[&[0x41, 1]], false)
        ));
        assert_eq!(
            parameter_sets(Codec::H264, &au),
            [SPS.to_vec(), PPS.to_vec()]
        );
        let stripped = without_parameter_sets(Codec::H264, &au).unwrap();
        assert_eq!(stripped, annex_b(&[&IDR], true));
        assert_eq!(without_parameter_sets(Codec::H264, &stripped), None);

        let (vps, sps, pps, idr) = ([32 << 1, 1], [33 << 1, 1], [34 << 1, 1], [19 << 1, 1]);
        let au = annex_b(&[&vps, &sps, &pps, &idr], false);
        assert!(has_random_access_picture(Codec::H265, &au));
        assert!(!has_random_access_picture(
            Codec::H265,
            &annex_b(&[&vps, &sps, &pps], false)
        ));
        assert!(!has_random_access_picture(
            Codec::H265,
            &annex_b(&[&[0, 0]], false)
        ));
        assert_eq!(parameter_sets(Codec::H265, &au).len(), 3);
        assert_eq!(
            without_parameter_sets(Codec::H265, &au).unwrap(),
            annex_b(&[&idr], true)
        );
    }

    #[test]
    fn fmtp_loses_and_gains_sprop() {
        let with =
            "96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKw=,aO48";
        assert_eq!(
            rewrite_fmtp(with, Codec::H264, None),
            "96 packetization-mode=1;profile-level-id=640028"
        );
        let sets = [SPS.to_vec(), PPS.to_vec()];
        assert_eq!(
            rewrite_fmtp("96", Codec::H264, Some(&sets)),
            "96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKw=,aO48"
        );
        assert_eq!(
            rewrite_fmtp("96", Codec::H264, None),
            "96 packetization-mode=1"
        );
        assert_eq!(rewrite_fmtp(with, Codec::H264, Some(&sets)), with);
        assert_eq!(rewrite_fmtp("96 sprop-sps=QgE=", Codec::H265, None), "96");
        let h265 = [vec![32 << 1, 1], vec![33 << 1, 1], vec![34 << 1, 1]];
        assert_eq!(
            rewrite_fmtp("96", Codec::H265, Some(&h265)),
            "96 sprop-vps=QAE=;sprop-sps=QgE=;sprop-pps=RAE="
        );
    }
}
