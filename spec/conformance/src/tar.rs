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
