//! Reading the recorder's HLS playlist (RFC 8216, version 7, fMP4 byte ranges) and checking
//! that it is well formed: header, target duration, an init section before the first segment,
//! a byte range and a relative `segments/…` URI for every media segment, the wall clock after
//! every discontinuity, and the end of a VOD list.

/// One media segment: the stored file it is a range of, and the range.
#[derive(Debug, Clone)]
pub struct MediaSegment {
    /// `{start_90k}.mp4`.
    pub file: String,
    pub offset: u64,
    pub length: u64,
}

#[derive(Debug)]
pub struct Playlist {
    pub target_duration: u64,
    /// (file, offset, length) of every `EXT-X-MAP`.
    pub maps: Vec<(String, u64, u64)>,
    pub segments: Vec<MediaSegment>,
    pub discontinuities: usize,
}

impl Playlist {
    /// The distinct files, in playlist order.
    pub fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.segments {
            if out.last() != Some(&s.file) {
                out.push(s.file.clone());
            }
        }
        out
    }
}

/// The file a media URI names: `segments/{digits}.mp4?stream={stream}[&token=…]`.
fn file_of(uri: &str, stream: &str) -> Result<String, String> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let file = path
        .strip_prefix("segments/")
        .filter(|f| {
            f.strip_suffix(".mp4").is_some_and(|n| {
                let digits = n.strip_prefix('-').unwrap_or(n);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
        })
        .ok_or_else(|| format!("media URI {uri:?} is not a relative segments/{{start_90k}}.mp4"))?;
    if !query.split('&').any(|kv| kv == format!("stream={stream}")) {
        return Err(format!("media URI {uri:?} does not name stream {stream}"));
    }
    Ok(file.to_owned())
}

/// `len[@offset]`; without an offset the range follows the previous one of the same file.
fn byte_range(v: &str, previous_end: Option<u64>) -> Result<(u64, u64), String> {
    let (len, off) = match v.split_once('@') {
        Some((l, o)) => (l, Some(o)),
        None => (v, None),
    };
    let len: u64 = len
        .parse()
        .map_err(|_| format!("byte range {v:?} is not len[@offset]"))?;
    let off = match off {
        Some(o) => o
            .parse()
            .map_err(|_| format!("byte range {v:?} is not len[@offset]"))?,
        None => previous_end.ok_or_else(|| {
            format!("byte range {v:?} has no offset and follows no range of its file")
        })?,
    };
    Ok((off, len))
}

/// The value of attribute `name` in an attribute list (`A="x",B=y`).
fn attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let (v, n) = quoted.split_once('"')?;
            (v, n.strip_prefix(',').unwrap_or(n))
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        if key.trim() == name {
            return Some(value.to_owned());
        }
        rest = next;
    }
    None
}

pub fn parse(text: &str, stream: &str) -> Result<Playlist, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("the playlist does not start with #EXTM3U".into());
    }
    let mut version = None;
    let mut target = None;
    let mut maps = Vec::new();
    let mut segments: Vec<MediaSegment> = Vec::new();
    let mut pending_inf: Option<f64> = None;
    let mut pending_range: Option<String> = None;
    let mut discontinuity_open = false;
    let mut discontinuities = 0;
    let mut ended = false;
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if ended {
            return Err(format!("{line:?} after #EXT-X-ENDLIST"));
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            version = v.parse::<u32>().ok();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = Some(
                v.parse::<u64>()
                    .map_err(|_| format!("#EXT-X-TARGETDURATION {v:?} is not an integer"))?,
            );
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attribute(attrs, "URI").ok_or("#EXT-X-MAP without a URI")?;
            let range = attribute(attrs, "BYTERANGE").ok_or("#EXT-X-MAP without a BYTERANGE")?;
            let (off, len) = byte_range(&range, None)?;
            maps.push((file_of(&uri, stream)?, off, len));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or_default();
            pending_inf = Some(
                d.parse::<f64>()
                    .map_err(|_| format!("#EXTINF {v:?} has no duration"))?,
            );
        } else if let Some(v) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            pending_range = Some(v.to_owned());
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity_open = true;
            discontinuities += 1;
        } else if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            discontinuity_open = false;
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if line.starts_with('#') {
            // Other tags (PLAYLIST-TYPE, INDEPENDENT-SEGMENTS, …) and comments.
        } else {
            let file = file_of(line, stream)?;
            let duration = pending_inf
                .take()
                .ok_or_else(|| format!("media URI {line:?} without #EXTINF"))?;
            let range = pending_range
                .take()
                .ok_or_else(|| format!("media URI {line:?} without #EXT-X-BYTERANGE"))?;
            if maps.is_empty() {
                return Err("a media segment before any #EXT-X-MAP".into());
            }
            if discontinuity_open {
                return Err(format!(
                    "#EXT-X-DISCONTINUITY before {line:?} is not followed by #EXT-X-PROGRAM-DATE-TIME"
                ));
            }
            let previous_end = segments
                .last()
                .filter(|s| s.file == file)
                .map(|s| s.offset + s.length);
            let (offset, length) = byte_range(&range, previous_end)?;
            if let Some(t) = target
                && duration.round() as u64 > t
            {
                return Err(format!(
                    "#EXTINF {duration} rounds above #EXT-X-TARGETDURATION {t}"
                ));
            }
            segments.push(MediaSegment {
                file,
                offset,
                length,
            });
        }
    }
    if version != Some(7) {
        return Err(format!("#EXT-X-VERSION is {version:?}, not 7"));
    }
    let target_duration = target.ok_or("no #EXT-X-TARGETDURATION")?;
    if !ended {
        return Err("no #EXT-X-ENDLIST: not a VOD playlist".into());
    }
    if segments.is_empty() {
        return Err("no media segment".into());
    }
    Ok(Playlist {
        target_duration,
        maps,
        segments,
        discontinuities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n\
        #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"segments/10.mp4?stream=main\",BYTERANGE=\"100@0\"\n\
        #EXTINF:1.000,\n#EXT-X-BYTERANGE:50@100\nsegments/10.mp4?stream=main\n\
        #EXTINF:0.9,\n#EXT-X-BYTERANGE:60\nsegments/10.mp4?stream=main\n\
        #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:00Z\n\
        #EXT-X-MAP:URI=\"segments/20.mp4?stream=main\",BYTERANGE=\"90@0\"\n\
        #EXTINF:1.0,\n#EXT-X-BYTERANGE:70@90\nsegments/20.mp4?stream=main&token=x\n\
        #EXT-X-ENDLIST\n";

    #[test]
    fn a_vod_playlist_of_byte_ranges_parses() {
        let p = parse(GOOD, "main").expect("parses");
        assert_eq!(p.files(), ["10.mp4", "20.mp4"]);
        assert_eq!((p.segments[1].offset, p.segments[1].length), (150, 60));
        assert_eq!(p.maps.len(), 2);
        assert_eq!(p.discontinuities, 1);
    }

    #[test]
    fn broken_playlists_are_refused() {
        let cases = [
            (GOOD.replace("#EXTM3U\n", ""), "#EXTM3U"),
            (GOOD.replace("VERSION:7", "VERSION:6"), "not 7"),
            (GOOD.replace("#EXT-X-ENDLIST\n", ""), "ENDLIST"),
            (
                GOOD.replace("#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:00Z\n", ""),
                "PROGRAM-DATE-TIME",
            ),
            (GOOD.replace("#EXT-X-BYTERANGE:50@100\n", ""), "BYTERANGE"),
            (GOOD.replace("EXTINF:1.000", "EXTINF:2.5"), "TARGETDURATION"),
            (
                GOOD.replace(
                    "segments/10.mp4?stream=main\n#EXTINF:0.9",
                    "/abs/10.mp4?stream=main\n#EXTINF:0.9",
                ),
                "relative",
            ),
            (
                GOOD.replace("?stream=main&token", "?stream=sub&token"),
                "does not name stream",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text, "main").expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
