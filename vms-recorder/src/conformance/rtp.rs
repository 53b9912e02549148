//! RTP and RTCP as the conformance probe observes them: every packet's header is checked
//! (sequence, SSRC, timestamp order, marker bit), the payload is depacketised far enough to
//! know each frame's NAL unit types (RFC 6184 for H.264, RFC 7798 for H.265), parameter sets
//! are collected whole, and sender reports are read. Memory stays bounded: a frame is kept
//! as a few numbers, and only parameter sets are reassembled.

use std::time::Duration;

use super::nal::{Codec, NalKind};

/// Parameter sets kept at most this long, and at most this many distinct ones.
const MAX_PARAMETER_SET_BYTES: usize = 4096;
const MAX_PARAMETER_SETS: usize = 16;
/// Frames kept at most: 120 fps for the longest probe, 600 s. Past it a stream is not video.
pub const MAX_FRAMES: usize = 72_000;

/// One frame (access unit) as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// RTP timestamp, extended to 64 bits from the first packet's.
    pub timestamp: i64,
    /// When its first packet arrived, since PLAY was answered.
    pub arrival: Duration,
    /// RTP payload bytes.
    pub bytes: usize,
    pub keyframe: bool,
    pub has_vps: bool,
    pub has_sps: bool,
    pub has_pps: bool,
}

/// Counters of what was wrong with the packets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacketStats {
    pub packets: u64,
    /// Packets missing from the sequence (gaps).
    pub lost: u64,
    /// Packets that came with a sequence number at or before one already seen.
    pub reordered: u64,
    /// Every SSRC seen, in order of first appearance (at most 8 kept).
    pub ssrcs: Vec<u32>,
    /// Packets whose timestamp went backwards.
    pub backwards: u64,
    /// The largest backward step, in 90 kHz units.
    pub largest_backward_90k: i64,
    /// Frames whose last packet did not carry the marker bit.
    pub unmarked_frames: u64,
    /// Packets of another payload type than the SDP's.
    pub wrong_payload_type: u64,
    /// Packets too short or not version 2.
    pub malformed: u64,
    /// NAL units with the forbidden bit set.
    pub forbidden_bit: u64,
    /// Packets of a packetization the checker does not read (STAP-B, MTAP, FU-B, PACI).
    pub unsupported: u64,
    /// Frames past [`MAX_FRAMES`], counted but not kept.
    pub excess_frames: u64,
}

/// Turns packets into frames and statistics.
pub struct Receiver {
    codec: Option<Codec>,
    payload_type: u8,
    pub stats: PacketStats,
    pub frames: Vec<Frame>,
    /// Distinct in-band parameter sets, in order of first appearance.
    pub parameter_sets: Vec<Vec<u8>>,
    last_seq: Option<u16>,
    last_timestamp: Option<u32>,
    extended: i64,
    last_marker: bool,
    /// The parameter set being reassembled from fragments.
    fragment: Option<Vec<u8>>,
}

impl Receiver {
    /// `codec` is `None` for an encoding the checker cannot depacketise: then only packet
    /// headers and frame boundaries are observed.
    pub fn new(codec: Option<Codec>, payload_type: u8) -> Receiver {
        Receiver {
            codec,
            payload_type,
            stats: PacketStats::default(),
            frames: Vec::new(),
            parameter_sets: Vec::new(),
            last_seq: None,
            last_timestamp: None,
            extended: 0,
            last_marker: false,
            fragment: None,
        }
    }

    /// One RTP packet as it arrived.
    pub fn packet(&mut self, data: &[u8], arrival: Duration) {
        let Some((header, payload)) = split_rtp(data) else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.packets += 1;
        if header.payload_type != self.payload_type {
            self.stats.wrong_payload_type += 1;
            return;
        }
        if !self.stats.ssrcs.contains(&header.ssrc) && self.stats.ssrcs.len() < 8 {
            self.stats.ssrcs.push(header.ssrc);
        }
        if let Some(last) = self.last_seq {
            let step = header.seq.wrapping_sub(last) as i16;
            if step <= 0 {
                self.stats.reordered += 1;
                return;
            }
            self.stats.lost += (step - 1) as u64;
        }
        self.last_seq = Some(header.seq);
        let new_frame = match self.last_timestamp {
            None => true,
            Some(last) => {
                let step = i64::from(header.timestamp.wrapping_sub(last) as i32);
                if step < 0 {
                    self.stats.backwards += 1;
                    self.stats.largest_backward_90k = self.stats.largest_backward_90k.max(-step);
                }
                self.extended += step;
                if step != 0 && !self.last_marker {
                    self.stats.unmarked_frames += 1;
                }
                step != 0 || self.last_marker
            }
        };
        self.last_timestamp = Some(header.timestamp);
        self.last_marker = header.marker;
        if new_frame && self.frames.len() >= MAX_FRAMES {
            self.stats.excess_frames += 1;
            return;
        }
        if new_frame {
            self.fragment = None;
            self.frames.push(Frame {
                timestamp: self.extended,
                arrival,
                bytes: 0,
                keyframe: false,
                has_vps: false,
                has_sps: false,
                has_pps: false,
            });
        }
        if let Some(frame) = self.frames.last_mut() {
            frame.bytes += payload.len();
        }
        if let Some(codec) = self.codec {
            self.payload(codec, payload);
        }
    }

    fn payload(&mut self, codec: Codec, p: &[u8]) {
        let Some(&first) = p.first() else {
            return;
        };
        let (aggregate, fragment, header_len) = match codec {
            Codec::H264 => (24, 28, 1),
            Codec::H265 => (48, 49, 2),
        };
        let t = match codec {
            Codec::H264 => first & 0x1f,
            Codec::H265 => (first >> 1) & 0x3f,
        };
        match (codec, t) {
            (_, t) if t == aggregate => {
                let mut rest = p.get(header_len..).unwrap_or_default();
                while rest.len() >= 2 {
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let Some(nal) = rest.get(2..2 + len) else {
                        self.stats.malformed += 1;
                        return;
                    };
                    self.nal(codec, nal, true);
                    rest = &rest[2 + len..];
                }
            }
            (_, t) if t == fragment => {
                let Some(&fu) = p.get(header_len) else {
                    self.stats.malformed += 1;
                    return;
                };
                let body = &p[header_len + 1..];
                let header: Vec<u8> = match codec {
                    Codec::H264 => vec![(first & 0xe0) | (fu & 0x1f)],
                    Codec::H265 => vec![(first & 0x81) | ((fu & 0x3f) << 1), p[1]],
                };
                if fu & 0x80 != 0 {
                    let kind = codec.kind(&header);
                    if matches!(kind, Some(NalKind::Vps | NalKind::Sps | NalKind::Pps)) {
                        let mut nal = header.clone();
                        nal.extend_from_slice(body);
                        self.fragment = Some(nal);
                    } else {
                        self.nal(codec, &header, false);
                    }
                } else if let Some(nal) = &mut self.fragment {
                    if nal.len() + body.len() > MAX_PARAMETER_SET_BYTES {
                        self.fragment = None;
                        self.stats.malformed += 1;
                        return;
                    }
                    nal.extend_from_slice(body);
                }
                if fu & 0x40 != 0
                    && let Some(nal) = self.fragment.take()
                {
                    self.nal(codec, &nal, true);
                }
            }
            (Codec::H264, 25..=27 | 29) | (Codec::H265, 50) => self.stats.unsupported += 1,
            _ => self.nal(codec, p, true),
        }
    }

    /// A NAL unit of the current frame; `whole` when `nal` is complete (not only a header).
    fn nal(&mut self, codec: Codec, nal: &[u8], whole: bool) {
        if nal.first().is_some_and(|b| b & 0x80 != 0) {
            self.stats.forbidden_bit += 1;
        }
        let Some(kind) = codec.kind(nal) else {
            return;
        };
        let Some(frame) = self.frames.last_mut() else {
            return;
        };
        match kind {
            NalKind::Keyframe => frame.keyframe = true,
            NalKind::Vps => frame.has_vps = true,
            NalKind::Sps => frame.has_sps = true,
            NalKind::Pps => frame.has_pps = true,
            NalKind::Other => {}
        }
        let parameter_set = matches!(kind, NalKind::Vps | NalKind::Sps | NalKind::Pps);
        if parameter_set
            && whole
            && nal.len() <= MAX_PARAMETER_SET_BYTES
            && self.parameter_sets.len() < MAX_PARAMETER_SETS
            && !self.parameter_sets.iter().any(|s| s == nal)
        {
            self.parameter_sets.push(nal.to_vec());
        }
    }
}

struct Header {
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

/// The fixed header and the payload of an RTP packet (RFC 3550 5.1), or `None` if malformed.
fn split_rtp(data: &[u8]) -> Option<(Header, &[u8])> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(data[0] & 0x0f);
    let mut start = 12 + 4 * csrc;
    if data[0] & 0x10 != 0 {
        let ext = data.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    let payload = data.get(start..end)?;
    Some((
        Header {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            seq: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        },
        payload,
    ))
}

/// The wall-clock times (µs since the Unix epoch) of the sender reports in an RTCP
/// compound packet.
pub fn sender_reports(data: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 && rest[0] >> 6 == 2 {
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let Some(packet) = rest.get(..len) else {
            break;
        };
        if let (200, Some(Ok(ntp))) = (packet[1], packet.get(8..16).map(<[u8; 8]>::try_from)) {
            out.push(vms_core::time::ntp_to_unix_us(u64::from_be_bytes(ntp)));
        }
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn keyframe_with_parameter_sets_in_a_stap_and_a_fragmented_idr() {
        let mut r = Receiver::new(Some(Codec::H264), 96);
        let sps = [0x67, 0x64, 0x00, 0x28];
        let pps = [0x68, 0xee];
        let mut stap = vec![24];
        for nal in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        r.packet(&packet(1, 1000, false, &stap), ms(0));
        r.packet(&packet(2, 1000, false, &[0x7c, 0x85, 1, 2]), ms(0));
        r.packet(&packet(3, 1000, true, &[0x7c, 0x45, 3]), ms(1));
        r.packet(&packet(4, 4600, true, &[0x41, 9, 9]), ms(40));
        assert_eq!(r.frames.len(), 2);
        let f = &r.frames[0];
        assert!(f.keyframe && f.has_sps && f.has_pps && !f.has_vps);
        assert_eq!(f.bytes, stap.len() + 4 + 3);
        assert_eq!(r.frames[1].timestamp, 3600);
        assert!(!r.frames[1].keyframe);
        assert_eq!(r.parameter_sets, vec![sps.to_vec(), pps.to_vec()]);
        assert_eq!(
            r.stats.lost + r.stats.unmarked_frames + r.stats.backwards,
            0
        );
    }

    #[test]
    fn h265_fragmented_sps_is_reassembled() {
        let mut r = Receiver::new(Some(Codec::H265), 96);
        // FU (type 49) carrying an SPS (type 33): header 0x62 0x01, FU header S|33 then E|33.
        r.packet(&packet(1, 0, false, &[0x62, 0x01, 0x80 | 33, 0xaa]), ms(0));
        r.packet(&packet(2, 0, false, &[0x62, 0x01, 0x40 | 33, 0xbb]), ms(0));
        r.packet(&packet(3, 0, true, &[0x26, 0x01, 0xcc]), ms(0));
        assert_eq!(r.parameter_sets, vec![vec![0x42, 0x01, 0xaa, 0xbb]]);
        assert!(r.frames[0].has_sps && r.frames[0].keyframe);
    }

    #[test]
    fn header_faults_are_counted() {
        let mut r = Receiver::new(Some(Codec::H264), 96);
        r.packet(&packet(10, 0, true, &[0x65]), ms(0));
        r.packet(&packet(13, 3600, false, &[0x41]), ms(40)); // 2 lost
        r.packet(&packet(14, 7200, true, &[0x41]), ms(80)); // previous frame unmarked
        r.packet(&packet(14, 7200, true, &[0x41]), ms(80)); // duplicate
        r.packet(&packet(15, 3600, true, &[0xc1]), ms(120)); // backwards, forbidden bit
        let mut other_ssrc = packet(16, 10800, true, &[0x41]);
        other_ssrc[8] = 0;
        r.packet(&other_ssrc, ms(160));
        r.packet(&[0x80, 96, 0], ms(200));
        let s = &r.stats;
        assert_eq!((s.lost, s.unmarked_frames, s.reordered), (2, 1, 1));
        assert_eq!((s.backwards, s.largest_backward_90k), (1, 3600));
        assert_eq!(s.forbidden_bit, 1);
        assert_eq!(s.ssrcs.len(), 2);
        assert_eq!(s.malformed, 1);
        assert_eq!(r.frames.last().unwrap().timestamp, 10800);
    }

    #[test]
    fn frames_past_the_cap_are_counted_not_kept() {
        let mut r = Receiver::new(None, 96);
        for i in 0..MAX_FRAMES as u32 + 5 {
            r.packet(&packet(i as u16, i * 3600, true, &[1]), ms(0));
        }
        assert_eq!(r.frames.len(), MAX_FRAMES);
        assert_eq!(r.stats.excess_frames, 5);
    }

    #[test]
    fn timestamps_extend_across_the_wrap() {
        let mut r = Receiver::new(None, 96);
        r.packet(&packet(1, u32::MAX - 1000, true, &[1]), ms(0));
        r.packet(&packet(2, 2600, true, &[1]), ms(40));
        assert_eq!(r.frames[1].timestamp, 3601);
        assert_eq!(r.stats.backwards, 0);
    }

    #[test]
    fn malformed_packets_never_panic() {
        let mut r = Receiver::new(Some(Codec::H264), 96);
        for len in 0..40 {
            for fill in [0x00, 0x7c, 0x98, 0xbf, 0xff] {
                let mut p = vec![fill; len];
                if len > 1 {
                    p[0] = 0x80 | (fill & 0x3f);
                    p[1] = 96;
                }
                r.packet(&p, ms(0));
            }
        }
        let mut r = Receiver::new(Some(Codec::H265), 96);
        r.packet(&packet(1, 0, true, &[0x60, 1, 0, 0xff, 0xff]), ms(0));
        r.packet(&packet(2, 0, true, &[0x62]), ms(0));
        assert!(r.stats.malformed >= 1);
    }

    #[test]
    fn sender_report_time() {
        // NTP 2026-01-01T00:00:00.5Z: Unix 1767225600 + NTP offset, half a second.
        let secs: u32 = (1_767_225_600u64 + 2_208_988_800) as u32;
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&1u32.to_be_bytes());
        sr.extend_from_slice(&secs.to_be_bytes());
        sr.extend_from_slice(&0x8000_0000u32.to_be_bytes());
        sr.extend_from_slice(&[0; 12]);
        let mut compound = sr.clone();
        compound.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]); // SDES
        assert_eq!(sender_reports(&compound), vec![1_767_225_600_500_000]);
        assert!(sender_reports(&compound[..10]).is_empty());
    }
}
