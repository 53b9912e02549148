//! RTP and RTCP byte work for the simulator: reading what a packet carries (timestamp,
//! keyframe) and the in-place edits that inject faults (timestamp jump, corruption, clock skew).
//!
//! Everything here works on plain byte slices so that it is unit-tested without GStreamer.

use super::config::Codec;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_FIXED_HEADER_BYTES: usize = 12;

/// Offset of the timestamp inside the RTP header.
const RTP_TIMESTAMP_OFFSET: usize = 4;

/// RTCP packet type of a sender report (RFC 3550 §6.4.1).
const RTCP_SR: u8 = 200;

/// What the simulator needs from an RTP packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub timestamp: u32,
    pub marker: bool,
    /// Where the payload starts: after CSRCs and any header extension.
    pub payload_offset: usize,
}

/// Parses the header of an RTP packet from its first bytes. `None` if it is not RTP version 2
/// or `prefix` is too short to hold the whole header.
pub fn parse_rtp_header(prefix: &[u8]) -> Option<RtpHeader> {
    if prefix.len() < RTP_FIXED_HEADER_BYTES || prefix[0] >> 6 != 2 {
        return None;
    }
    let csrc_count = usize::from(prefix[0] & 0x0f);
    let mut offset = RTP_FIXED_HEADER_BYTES + 4 * csrc_count;
    if prefix[0] & 0x10 != 0 {
        let ext = prefix.get(offset + 2..offset + 4)?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if offset > prefix.len() {
        return None;
    }
    Some(RtpHeader {
        timestamp: u32::from_be_bytes(prefix[4..8].try_into().ok()?),
        marker: prefix[1] & 0x80 != 0,
        payload_offset: offset,
    })
}

/// Writes a new timestamp into an RTP header.
pub fn set_rtp_timestamp(header: &mut [u8], timestamp: u32) {
    header[RTP_TIMESTAMP_OFFSET..RTP_TIMESTAMP_OFFSET + 4]
        .copy_from_slice(&timestamp.to_be_bytes());
}

/// Whether an RTP payload (RFC 6184 for H.264, RFC 7798 for H.265) starts or carries a
/// random-access picture or the parameter sets sent with one. A camera sends parameter sets
/// with the same timestamp as the keyframe that follows them, so either marks the frame.
///
/// Only the first NAL unit of an aggregation packet is looked at; `payload` may be a prefix.
pub fn is_keyframe_payload(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::H264 => {
            let Some(&hdr) = payload.first() else {
                return false;
            };
            let nal_type = match hdr & 0x1f {
                24 => payload.get(3).map(|b| b & 0x1f), // STAP-A: size(2) then NAL header
                28 => payload.get(1).map(|b| b & 0x1f), // FU-A: FU header carries the type
                t => Some(t),
            };
            matches!(nal_type, Some(5 | 7 | 8))
        }
        Codec::H265 => {
            let Some(&hdr) = payload.first() else {
                return false;
            };
            let nal_type = match (hdr >> 1) & 0x3f {
                48 => payload.get(4).map(|b| (b >> 1) & 0x3f), // AP: header(2), size(2), NAL
                49 => payload.get(2).map(|b| b & 0x3f),        // FU: FU header carries the type
                t => Some(t),
            };
            matches!(nal_type, Some(16..=21 | 32..=34))
        }
    }
}

/// Corrupts an RTP payload the way a broken camera might: the NAL header's forbidden bit is
/// set (RFC 6184 §5.3 and RFC 7798 §1.1.4 both require a receiver to treat it as an error).
pub fn corrupt_payload(payload: &mut [u8]) {
    if let Some(b) = payload.first_mut() {
        *b |= 0x80;
    }
}

/// Shifts the NTP timestamp of every sender report in a compound RTCP packet by `offset_ms`,
/// so that the camera's clock appears to run ahead (positive) or behind. Returns how many
/// sender reports were changed; a malformed packet is left as it is from the first bad length.
pub fn shift_sender_report_ntp(compound: &mut [u8], offset_ms: i64) -> usize {
    // NTP 32.32 fixed point: 2^32 units per second.
    let offset_units = (i128::from(offset_ms) << 32) / 1000;
    let mut shifted = 0;
    let mut at = 0;
    while at + 4 <= compound.len() {
        let words = usize::from(u16::from_be_bytes([compound[at + 2], compound[at + 3]]));
        let end = at + 4 * (words + 1);
        if compound[at] >> 6 != 2 || end > compound.len() {
            break;
        }
        if compound[at + 1] == RTCP_SR && end - at >= 28 {
            let ntp_at = at + 8;
            let ntp = u64::from_be_bytes(compound[ntp_at..ntp_at + 8].try_into().expect("8 bytes"));
            let moved = (i128::from(ntp) + offset_units) as u64;
            compound[ntp_at..ntp_at + 8].copy_from_slice(&moved.to_be_bytes());
            shifted += 1;
        }
        at = end;
    }
    shifted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(first: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![first, 0x80 | 96, 0, 1];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[1, 2, 3, 4]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn header_fields_and_extension() {
        let p = rtp(0x80, 0xdead_beef, &[0x65]);
        let h = parse_rtp_header(&p).unwrap();
        assert_eq!(
            (h.timestamp, h.marker, h.payload_offset),
            (0xdead_beef, true, 12)
        );
        // One CSRC and a one-word extension.
        let mut p = rtp(0x91, 7, &[]);
        p.extend_from_slice(&[0, 0, 0, 9, 0xbe, 0xde, 0, 1, 0, 0, 0, 0, 0x65]);
        assert_eq!(parse_rtp_header(&p).unwrap().payload_offset, 12 + 4 + 8);
        assert_eq!(parse_rtp_header(&p[..20]), None);
        assert_eq!(parse_rtp_header(&rtp(0x40, 0, &[])), None, "version 1");
        let mut p = rtp(0x80, 1, &[]);
        set_rtp_timestamp(&mut p, 0x0102_0304);
        assert_eq!(parse_rtp_header(&p).unwrap().timestamp, 0x0102_0304);
    }

    #[test]
    fn keyframes_h264() {
        let key = |p: &[u8]| is_keyframe_payload(Codec::H264, p);
        assert!(key(&[0x65]), "IDR");
        assert!(key(&[0x67]), "SPS");
        assert!(!key(&[0x41]), "non-IDR slice");
        assert!(key(&[0x7c, 0x85]), "FU-A start of IDR");
        assert!(!key(&[0x7c, 0x81]), "FU-A of a P slice");
        assert!(key(&[0x78, 0, 10, 0x67]), "STAP-A with SPS");
        assert!(!key(&[0x78, 0]), "truncated STAP-A");
        assert!(!key(&[]));
    }

    #[test]
    fn keyframes_h265() {
        let key = |p: &[u8]| is_keyframe_payload(Codec::H265, p);
        assert!(key(&[19 << 1, 1]), "IDR_W_RADL");
        assert!(key(&[32 << 1, 1]), "VPS");
        assert!(!key(&[1 << 1, 1]), "TRAIL_R");
        assert!(key(&[49 << 1, 1, 0x80 | 20]), "FU start of CRA");
        assert!(!key(&[49 << 1, 1, 0x80 | 1]), "FU of a trailing picture");
        assert!(key(&[48 << 1, 1, 0, 20, 32 << 1]), "AP with VPS");
    }

    #[test]
    fn corruption_sets_forbidden_bit() {
        let mut p = [0x65, 1];
        corrupt_payload(&mut p);
        assert_eq!(p, [0xe5, 1]);
        corrupt_payload(&mut []);
    }

    #[test]
    fn sender_report_shift() {
        // SR (length 6 words) followed by an SDES chunk.
        let ntp: u64 = (1000 << 32) | (1 << 31); // 1000.5 s
        let mut c = vec![0x80, RTCP_SR, 0, 6, 0, 0, 0, 1];
        c.extend_from_slice(&ntp.to_be_bytes());
        c.extend_from_slice(&[0; 12]);
        c.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]);
        let before = c.clone();
        assert_eq!(shift_sender_report_ntp(&mut c, 2_500), 1);
        let got = u64::from_be_bytes(c[8..16].try_into().unwrap());
        assert_eq!(got, 1003 << 32);
        assert_eq!(shift_sender_report_ntp(&mut c, -2_500), 1);
        assert_eq!(c, before);
        // A length running past the end stops the walk without touching anything.
        let mut bad = vec![0x80, RTCP_SR, 0, 60, 0, 0, 0, 1];
        let copy = bad.clone();
        assert_eq!(shift_sender_report_ntp(&mut bad, 1000), 0);
        assert_eq!(bad, copy);
    }
}
