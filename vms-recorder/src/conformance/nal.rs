//! H.264 and H.265 NAL units as the conformance checker needs them: NAL unit types, the
//! emulation-prevention-free payload, and the fields of the sequence (and video) parameter
//! sets that the camera profiles constrain: profile, chroma format, bit depth, cropped picture
//! size and declared frame rate. Parsing is strict and bounded; bad input is an error.

use vms_core::{Error, bail, err};

/// The video codecs the checker understands below the RTP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// What a NAL unit is, as far as the checker cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalKind {
    /// A random-access picture: H.264 IDR, H.265 IRAP (BLA, IDR, CRA).
    Keyframe,
    Vps,
    Sps,
    Pps,
    Other,
}

impl Codec {
    /// The kind of the NAL unit whose header starts `nal`, and whether its forbidden bit is
    /// clear. `None` for an empty or too short unit.
    pub fn kind(self, nal: &[u8]) -> Option<NalKind> {
        match self {
            Codec::H264 => {
                let t = nal.first()? & 0x1f;
                Some(match t {
                    5 => NalKind::Keyframe,
                    7 => NalKind::Sps,
                    8 => NalKind::Pps,
                    _ => NalKind::Other,
                })
            }
            Codec::H265 => {
                if nal.len() < 2 {
                    return None;
                }
                Some(match (nal[0] >> 1) & 0x3f {
                    16..=21 => NalKind::Keyframe,
                    32 => NalKind::Vps,
                    33 => NalKind::Sps,
                    34 => NalKind::Pps,
                    _ => NalKind::Other,
                })
            }
        }
    }

    /// Bytes of the NAL unit header.
    pub fn header_len(self) -> usize {
        match self {
            Codec::H264 => 1,
            Codec::H265 => 2,
        }
    }
}

/// The parameter-set fields the profiles constrain.
#[derive(Clone, Debug, PartialEq)]
pub struct SpsInfo {
    /// H.264 `profile_idc` or H.265 `general_profile_idc`.
    pub profile_idc: u8,
    /// H.265 `general_profile_compatibility_flag`s (bit 31 − j is flag j); 0 for H.264.
    pub compatibility: u32,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    /// The cropped (displayed) picture size.
    pub width: u32,
    pub height: u32,
    /// Frames per second from VUI timing (H.264), if declared.
    pub fps: Option<f64>,
}

impl SpsInfo {
    /// A human name of the profile, e.g. `High` or `Main`.
    pub fn profile_name(&self, codec: Codec) -> String {
        let name = match (codec, self.profile_idc) {
            (Codec::H264, 66) => "Baseline",
            (Codec::H264, 77) => "Main",
            (Codec::H264, 88) => "Extended",
            (Codec::H264, 100) => "High",
            (Codec::H264, 110) => "High 10",
            (Codec::H264, 122) => "High 4:2:2",
            (Codec::H264, 244) => "High 4:4:4 Predictive",
            (Codec::H265, 1) => "Main",
            (Codec::H265, 2) => "Main 10",
            (Codec::H265, 3) => "Main Still Picture",
            (Codec::H265, 4) => "Range Extensions",
            _ => return format!("profile_idc {}", self.profile_idc),
        };
        name.to_owned()
    }
}

/// A NAL unit's payload with emulation-prevention bytes (`00 00 03`) removed.
pub fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits most significant first, with exp-Golomb codes.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, Error> {
        let byte = self.data.get(self.pos / 8).ok_or_else(|| {
            err!(
                InvalidArgument,
                "parameter set ends early (bit {})",
                self.pos
            )
        })?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.pos + n > self.data.len() * 8 {
            bail!(
                InvalidArgument,
                "parameter set ends early (bit {})",
                self.pos
            );
        }
        self.pos += n;
        Ok(())
    }

    fn flag(&mut self) -> Result<bool, Error> {
        Ok(self.bit()? == 1)
    }

    fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                bail!(
                    InvalidArgument,
                    "exp-Golomb code too long at bit {}",
                    self.pos
                );
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i64, Error> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Parses an SPS NAL unit (with its header).
pub fn parse_sps(codec: Codec, nal: &[u8]) -> Result<SpsInfo, Error> {
    let data = rbsp(nal.get(codec.header_len()..).unwrap_or_default());
    let mut r = Bits::new(&data);
    match codec {
        Codec::H264 => parse_h264_sps(&mut r),
        Codec::H265 => parse_h265_sps(&mut r),
    }
}

fn parse_h264_sps(r: &mut Bits) -> Result<SpsInfo, Error> {
    let profile_idc = r.bits(8)? as u8;
    r.skip(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut depth_luma, mut depth_chroma) = (1, 8, 8);
    let mut separate_planes = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            bail!(InvalidArgument, "chroma_format_idc {chroma_format_idc}");
        }
        if chroma_format_idc == 3 {
            separate_planes = r.flag()?;
        }
        depth_luma = 8 + r.ue()?;
        depth_chroma = 8 + r.ue()?;
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.skip(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                bail!(InvalidArgument, "num_ref_frames_in_pic_order_cnt_cycle {n}");
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        2 => {}
        t => bail!(InvalidArgument, "pic_order_cnt_type {t}"),
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.skip(1)?;
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let mut width = width_mbs * 16;
    let mut height = height_units * 16 * if frame_mbs_only { 1 } else { 2 };
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let field = if frame_mbs_only { 1 } else { 2 };
        let (unit_x, unit_y) = if chroma_format_idc == 0 || separate_planes {
            (1, field)
        } else {
            let sub_w = if chroma_format_idc == 3 { 1 } else { 2 };
            let sub_h = if chroma_format_idc == 1 { 2 } else { 1 };
            (sub_w, sub_h * field)
        };
        let crop_x = (u64::from(left) + u64::from(right)) * unit_x;
        let crop_y = (u64::from(top) + u64::from(bottom)) * unit_y;
        if crop_x >= width || crop_y >= height {
            bail!(InvalidArgument, "frame cropping removes the whole picture");
        }
        width -= crop_x;
        height -= crop_y;
    }
    let mut fps = None;
    if r.flag()? {
        fps = h264_vui_fps(r)?;
    }
    Ok(SpsInfo {
        profile_idc,
        compatibility: 0,
        chroma_format_idc,
        bit_depth_luma: depth_luma,
        bit_depth_chroma: depth_chroma,
        width: dimension(width)?,
        height: dimension(height)?,
        fps,
    })
}

fn dimension(v: u64) -> Result<u32, Error> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v <= 65_536)
        .ok_or_else(|| err!(InvalidArgument, "picture dimension {v} is implausible"))
}

fn skip_scaling_list(r: &mut Bits, size: usize) -> Result<(), Error> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// The frame rate of an H.264 VUI's timing information, reading up to it.
fn h264_vui_fps(r: &mut Bits) -> Result<Option<f64>, Error> {
    if r.flag()? && r.bits(8)? == 255 {
        r.skip(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.skip(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.skip(24)?; // colour primaries, transfer, matrix
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?;
    }
    if !r.flag()? {
        return Ok(None);
    }
    let units = r.bits(32)?;
    let scale = r.bits(32)?;
    Ok((units > 0 && scale > 0).then(|| f64::from(scale) / (2.0 * f64::from(units))))
}

/// `profile_tier_level(1, max_sub_layers_minus1)`: the general profile idc and
/// compatibility flags; the rest is skipped.
fn h265_profile_tier_level(r: &mut Bits, max_sub_layers_minus1: u32) -> Result<(u8, u32), Error> {
    r.skip(3)?; // general_profile_space, general_tier_flag
    let profile_idc = r.bits(5)? as u8;
    let compatibility = r.bits(32)?;
    r.skip(48 + 8)?; // source/constraint flags, general_level_idc
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.flag()?, r.flag()?));
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for (profile, level) in present {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok((profile_idc, compatibility))
}

fn parse_h265_sps(r: &mut Bits) -> Result<SpsInfo, Error> {
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        bail!(
            InvalidArgument,
            "sps_max_sub_layers_minus1 {max_sub_layers_minus1}"
        );
    }
    r.skip(1)?; // sps_temporal_id_nesting_flag
    let (profile_idc, compatibility) = h265_profile_tier_level(r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        bail!(InvalidArgument, "chroma_format_idc {chroma_format_idc}");
    }
    let separate_planes = chroma_format_idc == 3 && r.flag()?;
    let mut width = u64::from(r.ue()?);
    let mut height = u64::from(r.ue()?);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let crop_x = (u64::from(left) + u64::from(right)) * sub_w;
        let crop_y = (u64::from(top) + u64::from(bottom)) * sub_h;
        if crop_x >= width || crop_y >= height {
            bail!(
                InvalidArgument,
                "the conformance window removes the whole picture"
            );
        }
        width -= crop_x;
        height -= crop_y;
    }
    let bit_depth_luma = 8 + r.ue()?;
    let bit_depth_chroma = 8 + r.ue()?;
    Ok(SpsInfo {
        profile_idc,
        compatibility,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width: dimension(width)?,
        height: dimension(height)?,
        fps: None,
    })
}

/// The frame rate an H.265 VPS declares in its timing information, if any.
pub fn h265_vps_fps(nal: &[u8]) -> Result<Option<f64>, Error> {
    let data = rbsp(nal.get(2..).unwrap_or_default());
    let mut r = Bits::new(&data);
    r.skip(4 + 1 + 1 + 6)?; // id, base layer flags, vps_max_layers_minus1
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        bail!(
            InvalidArgument,
            "vps_max_sub_layers_minus1 {max_sub_layers_minus1}"
        );
    }
    r.skip(1 + 16)?;
    h265_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let all = r.flag()?;
    for _ in (if all { 0 } else { max_sub_layers_minus1 })..=max_sub_layers_minus1 {
        r.ue()?;
        r.ue()?;
        r.ue()?;
    }
    let max_layer_id = r.bits(6)? as usize;
    let layer_sets = r.ue()?;
    if layer_sets > 1023 {
        bail!(InvalidArgument, "vps_num_layer_sets_minus1 {layer_sets}");
    }
    r.skip(layer_sets as usize * (max_layer_id + 1))?;
    if !r.flag()? {
        return Ok(None);
    }
    let units = r.bits(32)?;
    let scale = r.bits(32)?;
    Ok((units > 0 && scale > 0).then(|| f64::from(scale) / f64::from(units)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits for building parameter sets in tests.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        n: usize,
    }

    impl BitWriter {
        fn bits(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                if self.n.is_multiple_of(8) {
                    self.out.push(0);
                }
                if (v >> i) & 1 == 1 {
                    *self.out.last_mut().unwrap() |= 0x80 >> (self.n % 8);
                }
                self.n += 1;
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.bits(len - 1, 0).bits(len, x)
        }
        fn done(&mut self) -> Vec<u8> {
            self.bits(1, 1); // rbsp_stop_one_bit
            std::mem::take(&mut self.out)
        }
    }

    /// An H.264 SPS: `profile_idc`, 1080p as 1088 lines cropped by 8, with VUI timing 25 fps.
    fn h264_sps(profile_idc: u8, chroma: u32, depth_minus8: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 0x67)
            .bits(8, u64::from(profile_idc))
            .bits(16, 0x0028)
            .ue(0);
        if profile_idc == 100 || profile_idc == 244 {
            w.ue(chroma);
            if chroma == 3 {
                w.bits(1, 0);
            }
            w.ue(depth_minus8).ue(depth_minus8).bits(1, 0).bits(1, 0);
        }
        w.ue(0).ue(0).ue(0).ue(1).bits(1, 0); // frame num, poc type 0 + lsb, refs, gaps
        w.ue(119).ue(67).bits(1, 1).bits(1, 1); // 120×68 macroblocks, frame_mbs_only, direct
        w.bits(1, 1).ue(0).ue(0).ue(0).ue(4); // crop 8 lines off the bottom (units of 2)
        w.bits(1, 1); // vui present
        w.bits(1, 0).bits(1, 0).bits(1, 0).bits(1, 0); // no aspect, overscan, signal, chroma loc
        w.bits(1, 1).bits(32, 1).bits(32, 50).bits(1, 1); // timing: 50 / (2·1) = 25 fps
        w.done()
    }

    #[test]
    fn h264_high_1080p_with_timing() {
        let sps = parse_sps(Codec::H264, &h264_sps(100, 1, 0)).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.profile_name(Codec::H264), "High");
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
        assert_eq!(sps.fps, Some(25.0));
    }

    #[test]
    fn h264_high_444_10bit_is_read_as_such() {
        let sps = parse_sps(Codec::H264, &h264_sps(244, 3, 2)).unwrap();
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (3, 10));
        // 4:4:4 crops in whole samples: 8 lines of 1088.
        assert_eq!((sps.width, sps.height), (1920, 1084));
    }

    #[test]
    fn h264_baseline_has_no_chroma_fields() {
        let sps = parse_sps(Codec::H264, &h264_sps(66, 1, 0)).unwrap();
        assert_eq!(sps.profile_name(Codec::H264), "Baseline");
        assert_eq!((sps.width, sps.height), (1920, 1080));
    }

    #[test]
    fn truncated_parameter_sets_are_errors_at_every_length() {
        let full = h264_sps(100, 1, 0);
        for len in 0..full.len() - 2 {
            // Every strict prefix ends before the timing fields are complete.
            assert!(
                parse_sps(Codec::H264, &full[..len]).is_err(),
                "prefix {len}"
            );
        }
        let h265 = h265_sps();
        for len in 0..h265.len() - 2 {
            assert!(
                parse_sps(Codec::H265, &h265[..len]).is_err(),
                "prefix {len}"
            );
        }
    }

    fn ptl(w: &mut BitWriter) {
        w.bits(2, 0).bits(1, 0).bits(5, 1).bits(32, 0x6000_0000); // Main, compatible 1 and 2
        w.bits(48, 0).bits(8, 120);
    }

    fn h265_sps() -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(16, 0x4201).bits(4, 0).bits(3, 0).bits(1, 1);
        ptl(&mut w);
        w.ue(0)
            .ue(1)
            .ue(1920)
            .ue(1088)
            .bits(1, 1)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(4)
            .ue(0)
            .ue(0);
        w.done()
    }

    #[test]
    fn h265_main_1080p() {
        let sps = parse_sps(Codec::H265, &h265_sps()).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_idc, 1);
        assert_eq!(sps.compatibility & (1 << 30), 1 << 30);
        assert_eq!(sps.profile_name(Codec::H265), "Main");
    }

    #[test]
    fn h265_vps_timing() {
        let mut w = BitWriter::default();
        w.bits(16, 0x4001)
            .bits(4, 0)
            .bits(2, 3)
            .bits(6, 0)
            .bits(3, 0)
            .bits(1, 1);
        w.bits(16, 0xffff);
        ptl(&mut w);
        w.bits(1, 1).ue(1).ue(0).ue(0); // sub-layer ordering for the one layer
        w.bits(6, 0).ue(0).bits(1, 1).bits(32, 1).bits(32, 25);
        assert_eq!(h265_vps_fps(&w.done()).unwrap(), Some(25.0));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn nal_kinds() {
        assert_eq!(Codec::H264.kind(&[0x65]), Some(NalKind::Keyframe));
        assert_eq!(Codec::H264.kind(&[0x67]), Some(NalKind::Sps));
        assert_eq!(Codec::H265.kind(&[0x40, 1]), Some(NalKind::Vps));
        assert_eq!(Codec::H265.kind(&[0x26, 1]), Some(NalKind::Keyframe));
        assert_eq!(Codec::H265.kind(&[0x26]), None);
    }
}
