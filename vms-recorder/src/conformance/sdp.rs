//! The parts of an SDP description (RFC 8866) the conformance probe needs: the first video
//! media section, its payload type, encoding, control URL, declared frame rate and the
//! parameter sets of its `fmtp` line (RFC 6184 `sprop-parameter-sets`, RFC 7798
//! `sprop-vps`/`sprop-sps`/`sprop-pps`).

use base64::Engine as _;

/// The video media section.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    pub payload_type: u8,
    /// The encoding name as written (`H264`, `H265`, `JPEG` …).
    pub encoding: String,
    pub clock_rate: u32,
    /// `a=control`, resolved against the base URL.
    pub control: String,
    /// `a=framerate`, if any.
    pub framerate: Option<f64>,
    /// Parameter-set NAL units from `fmtp`, in order; undecodable base64 is skipped and
    /// counted in `bad_parameter_sets`.
    pub parameter_sets: Vec<Vec<u8>>,
    pub bad_parameter_sets: usize,
}

/// The first video media section of `sdp`, with control URLs resolved against `base`.
pub fn parse_video(sdp: &str, base: &str) -> Option<Video> {
    let mut session_control = None;
    let mut video: Option<Video> = None;
    let mut in_video = false;
    let mut rtpmap = None;
    let mut fmtp = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if video.is_some() {
                break;
            }
            let mut f = m.split_whitespace();
            in_video = f.next() == Some("video");
            if in_video {
                let payload_type = f.nth(2).and_then(|p| p.parse().ok())?;
                video = Some(Video {
                    payload_type,
                    encoding: String::new(),
                    clock_rate: 0,
                    control: String::new(),
                    framerate: None,
                    parameter_sets: Vec::new(),
                    bad_parameter_sets: 0,
                });
            }
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        match (&mut video, in_video) {
            (None, _) if name == "control" => session_control = Some(value.trim().to_owned()),
            (Some(v), true) => match name {
                "control" => v.control = value.trim().to_owned(),
                "framerate" => v.framerate = value.trim().parse().ok().filter(|f: &f64| *f > 0.0),
                "rtpmap" => rtpmap = Some(value.to_owned()),
                "fmtp" => fmtp = Some(value.to_owned()),
                _ => {}
            },
            _ => {}
        }
    }
    let mut video = video?;
    let pt = video.payload_type.to_string();
    if let Some((p, enc)) = rtpmap.as_deref().and_then(|r| r.split_once(' '))
        && p.trim() == pt
    {
        let (name, rate) = enc.split_once('/').unwrap_or((enc, ""));
        video.encoding = name.trim().to_owned();
        video.clock_rate = rate
            .split('/')
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(0);
    }
    if let Some((p, params)) = fmtp.as_deref().and_then(|f| f.split_once(' '))
        && p.trim() == pt
    {
        for param in params.split(';') {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            if matches!(
                k.as_str(),
                "sprop-parameter-sets" | "sprop-vps" | "sprop-sps" | "sprop-pps"
            ) {
                for b64 in v.trim().split(',').filter(|s| !s.is_empty()) {
                    match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                        Ok(nal) if !nal.is_empty() => video.parameter_sets.push(nal),
                        _ => video.bad_parameter_sets += 1,
                    }
                }
            }
        }
    }
    let base = session_control
        .filter(|c| c.starts_with("rtsp://"))
        .unwrap_or_else(|| base.to_owned());
    video.control = resolve(&base, &video.control);
    Some(video)
}

fn resolve(base: &str, control: &str) -> String {
    if control.is_empty() || control == "*" {
        base.to_owned()
    } else if control.starts_with("rtsp://") || control.starts_with("rtsps://") {
        control.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GST_H264: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Session\r\nt=0 0\r\n\
        a=control:*\r\nm=audio 0 RTP/AVP 97\r\na=control:stream=1\r\n\
        m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKA==,aO48gA==\r\n\
        a=framerate:25\r\na=control:stream=0\r\n";

    #[test]
    fn video_section_of_a_description() {
        let v = parse_video(GST_H264, "rtsp://127.0.0.1:8554/cam/main/").unwrap();
        assert_eq!(v.payload_type, 96);
        assert_eq!((v.encoding.as_str(), v.clock_rate), ("H264", 90000));
        assert_eq!(v.control, "rtsp://127.0.0.1:8554/cam/main/stream=0");
        assert_eq!(v.framerate, Some(25.0));
        assert_eq!(
            v.parameter_sets,
            vec![vec![0x67, 0x64, 0, 0x28], vec![0x68, 0xee, 0x3c, 0x80]]
        );
    }

    #[test]
    fn absolute_control_and_bad_base64() {
        let sdp = "m=video 0 RTP/AVP 98\na=rtpmap:98 H265/90000\n\
            a=fmtp:98 sprop-vps=QAE=;sprop-sps=!!;sprop-pps=RAE=\na=control:rtsp://cam/track1\n";
        let v = parse_video(sdp, "rtsp://cam/").unwrap();
        assert_eq!(v.control, "rtsp://cam/track1");
        assert_eq!(v.parameter_sets.len(), 2);
        assert_eq!(v.bad_parameter_sets, 1);
    }

    #[test]
    fn no_video_is_none() {
        assert_eq!(parse_video("v=0\nm=audio 0 RTP/AVP 0\n", "rtsp://x/"), None);
        assert_eq!(parse_video("", "rtsp://x/"), None);
    }
}
