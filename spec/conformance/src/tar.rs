//! Reading an evidence package's container as spec/evidence-package.md fixes it: ustar
//! headers with their checksums, regular files only, relative names without `..`, the
//! end-of-archive marker with nothing but zeros after it.

/// One entry: its name and where its data lies in the archive.
pub struct Entry {
    pub name: String,
    pub data: std::ops::Range<usize>,
}

const BLOCK: usize = 512;

/// The entries of a ustar archive, or what is wrong with it.
pub fn entries(d: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let header = d
            .get(at..at + BLOCK)
            .ok_or_else(|| format!("the archive ends at {at} without its end-of-archive marker"))?;
        if header.iter().all(|&b| b == 0) {
            let second = d.get(at + BLOCK..at + 2 * BLOCK).ok_or_else(|| {
                format!("one zero block at {at}, not the two of the end-of-archive marker")
            })?;
            if second.iter().any(|&b| b != 0) {
                return Err(format!("a lone zero block at {at}"));
            }
            if d[at + 2 * BLOCK..].iter().any(|&b| b != 0) {
                return Err(format!(
                    "bytes other than zeros after the end-of-archive marker at {}",
                    at + 2 * BLOCK
                ));
            }
            return Ok(out);
        }
        let entry = parse_header(header).map_err(|e| format!("header at {at}: {e}"))?;
        let (name, size) = entry;
        let start = at + BLOCK;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= d.len())
            .ok_or_else(|| format!("{name}: its {size} bytes overrun the archive"))?;
        out.push(Entry {
            name,
            data: start..end,
        });
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
}

fn parse_header(h: &[u8]) -> Result<(String, usize), String> {
    let field = |from: usize, len: usize| &h[from..from + len];
    let text = |from: usize, len: usize| -> Result<String, String> {
        let f = field(from, len);
        let f = &f[..f.iter().position(|&b| b == 0).unwrap_or(len)];
        String::from_utf8(f.to_vec()).map_err(|_| "a name that is not UTF-8".to_owned())
    };
    if field(257, 6) != b"ustar\0" || field(263, 2) != b"00" {
        return Err(format!(
            "magic {:?} version {:?}, not ustar\\0 00",
            String::from_utf8_lossy(field(257, 6)),
            String::from_utf8_lossy(field(263, 2))
        ));
    }
    let stored = octal(field(148, 8)).ok_or("a checksum that is not octal")?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(format!("checksum {stored}, the header sums to {sum}"));
    }
    let prefix = text(345, 155)?;
    let base = text(0, 100)?;
    let name = if prefix.is_empty() {
        base
    } else {
        format!("{prefix}/{base}")
    };
    let flag = h[156];
    if flag != b'0' {
        return Err(format!(
            "{name}: type flag {:?}, not a regular file ('0')",
            flag as char
        ));
    }
    if name.is_empty() || name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(format!("{name:?}: not a relative name without `..`"));
    }
    let size = octal(field(124, 12)).ok_or_else(|| format!("{name}: a size that is not octal"))?;
    let size = usize::try_from(size).map_err(|_| format!("{name}: a size too large"))?;
    Ok((name, size))
}

/// An octal number field: digits, ended by NUL or space (leading spaces allowed).
fn octal(f: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(f).ok()?;
    let s = s.trim_matches(|c| c == '\0' || c == ' ');
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u64::from_str_radix(s, 8).ok()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn header(name: &str, size: usize, flag: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    /// A ustar archive of (name, data, type flag) entries.
    pub fn archive(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, flag) in entries {
            out.extend(header(name, data.len(), *flag));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend(vec![0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn a_ustar_archive_reads_back() {
        let a = archive(&[("media/a.mp4", b"hello", b'0'), ("SHA256SUMS", b"", b'0')]);
        let e = entries(&a).expect("reads");
        assert_eq!(e.len(), 2);
        assert_eq!(&a[e[0].data.clone()], b"hello");
        // GNU tar's padding to a record: zeros after the marker are fine.
        let mut padded = a.clone();
        padded.extend(vec![0u8; 4 * BLOCK]);
        assert!(entries(&padded).is_ok());
    }

    #[test]
    fn hostile_archives_are_refused() {
        let ok = archive(&[("media/a.mp4", b"hello", b'0')]);
        let cases = [
            (archive(&[("media/a", b"x", b'2')]), "type flag"),
            (archive(&[("../a", b"x", b'0')]), "`..`"),
            (archive(&[("/etc/passwd", b"x", b'0')]), "relative"),
            (ok[..ok.len() - BLOCK].to_vec(), "one zero block"),
            ([&ok[..], b"junk"].concat(), "other than zeros"),
        ];
        for (a, want) in cases {
            let e = entries(&a).err().unwrap_or_default();
            assert!(e.contains(want), "{want}: {e}");
        }
        let mut bad_sum = ok.clone();
        bad_sum[0] = b'M';
        assert!(entries(&bad_sum).is_err_and(|e| e.contains("checksum")));
        for len in 0..ok.len() {
            assert!(entries(&ok[..len]).is_err(), "{len}");
        }
    }
}
