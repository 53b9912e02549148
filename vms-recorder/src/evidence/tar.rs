//! The POSIX ustar container of an evidence package: a streaming writer of regular files, and
//! a strict streaming reader that refuses anything a hostile archive could use to escape or
//! confuse (links, devices, directories, absolute or `..` paths, path overrides) and never
//! trusts a declared size before the bytes are there.
//!
//! Files of 8 GiB and more do not fit ustar's 11 octal digits; their size travels in a POSIX
//! pax extended header (`x`) holding one `size` record, which GNU tar, bsdtar and every other
//! pax reader understand.

use std::io::{self, Read, Write};

use vms_core::{Error, IoResultExt, bail, err};

/// The tar block size: headers and data padding are in units of it.
pub const BLOCK: usize = 512;

/// The largest size that fits the 11 octal digits of a ustar header.
const MAX_USTAR_SIZE: u64 = 0o77_777_777_777;

/// The most bytes of pax records an entry may carry.
const MAX_PAX_BYTES: u64 = 64 * 1024;

const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHECKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const MAGIC: std::ops::Range<usize> = 257..263;
const VERSION: std::ops::Range<usize> = 263..265;
const DEVMAJOR: std::ops::Range<usize> = 329..337;
const DEVMINOR: std::ops::Range<usize> = 337..345;
const PREFIX: std::ops::Range<usize> = 345..500;

/// Padding after `size` bytes of data, up to the next block.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The length of the end-of-archive marker.
pub const END_LEN: u64 = 2 * BLOCK as u64;

/// The bytes a file of `size` bytes takes in an archive: its header(s), data and padding.
pub fn entry_len(size: u64) -> u64 {
    let pax = if size > MAX_USTAR_SIZE {
        let records = pax_record("size", &size.to_string()).len() as u64;
        BLOCK as u64 + records + padding(records)
    } else {
        0
    };
    (pax + BLOCK as u64 + padding(size)).saturating_add(size)
}

/// Writes `value` as zero-padded octal filling `field` but its last byte, which is NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// The unsigned sum of a header's bytes with its checksum field counted as spaces.
fn checksum(header: &[u8; BLOCK]) -> u64 {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| u64::from(if CHECKSUM.contains(&i) { b' ' } else { b }))
        .sum()
}

/// A ustar header for a regular file or a pax extended header.
fn header(name: &str, size: u64, mtime: u64, typeflag: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[NAME][..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[MODE], 0o644);
    put_octal(&mut h[UID], 0);
    put_octal(&mut h[GID], 0);
    put_octal(&mut h[SIZE], size);
    put_octal(&mut h[MTIME], mtime.min(MAX_USTAR_SIZE));
    h[TYPEFLAG] = typeflag;
    h[MAGIC].copy_from_slice(b"ustar\0");
    h[VERSION].copy_from_slice(b"00");
    put_octal(&mut h[DEVMAJOR], 0);
    put_octal(&mut h[DEVMINOR], 0);
    let sum = checksum(&h);
    // Six octal digits, NUL, space: the traditional form every reader accepts.
    h[CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// One pax record, `"<length> <key>=<value>\n"`, where the length counts the whole record
/// including its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

/// Writes regular files into a ustar archive, streaming their bytes.
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter { out }
    }

    /// Appends a file of exactly `size` bytes taken from `data`, passing every chunk through
    /// `each` on its way (to hash it). `name` must be a relative path of at most 100 bytes;
    /// callers validate it. `data` yielding fewer or more bytes than `size` is an error: the
    /// archive is then unusable, as the header promised `size`.
    pub fn append(
        &mut self,
        name: &str,
        size: u64,
        mtime: u64,
        data: &mut dyn Read,
        each: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Error> {
        if name.is_empty() || name.len() > NAME.len() {
            bail!(InvalidArgument, "tar entry name {name:?}: 1 to 100 bytes");
        }
        if size > MAX_USTAR_SIZE {
            let records = pax_record("size", &size.to_string());
            // Readers ignore this name; it only has to fit.
            let pax_name = if name.len() <= NAME.len() - 11 {
                format!("PaxHeaders/{name}")
            } else {
                "PaxHeaders".to_owned()
            };
            let len = records.len() as u64;
            self.write(&header(&pax_name, len, mtime, b'x'), name)?;
            self.write(records.as_bytes(), name)?;
            self.write(&[0u8; BLOCK][..padding(len) as usize], name)?;
            self.write(&header(name, 0, mtime, b'0'), name)?;
        } else {
            self.write(&header(name, size, mtime, b'0'), name)?;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => bail!(
                    InvalidArgument,
                    "{name}: the source ended after {} of the {size} bytes declared",
                    size - left
                ),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).io_context(|| format!("{name}: reading the source")),
            };
            each(&buf[..n]);
            self.write(&buf[..n], name)?;
            left -= n as u64;
        }
        loop {
            match data.read(&mut buf[..1]) {
                Ok(0) => break,
                Ok(_) => bail!(
                    InvalidArgument,
                    "{name}: the source holds more than the {size} bytes declared"
                ),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).io_context(|| format!("{name}: reading the source")),
            }
        }
        self.write(&[0u8; BLOCK][..padding(size) as usize], name)
    }

    fn write(&mut self, bytes: &[u8], name: &str) -> Result<(), Error> {
        self.out
            .write_all(bytes)
            .io_context(|| format!("{name}: writing the package"))
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the output.
    pub fn finish(mut self) -> Result<W, Error> {
        self.out
            .write_all(&[0u8; END_LEN as usize])
            .and_then(|()| self.out.flush())
            .io_context(|| "writing the end of the package".to_owned())?;
        Ok(self.out)
    }
}

/// An entry of an archive being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path as stored (prefix and name joined); already checked to be relative and free
    /// of `..`.
    pub name: String,
    pub size: u64,
    /// Byte offset of the entry's header in the archive.
    pub offset: u64,
}

/// Reads a ustar archive entry by entry; between two calls of [`TarReader::next_entry`] it is
/// a `Read` of the current entry's data.
pub struct TarReader<R: Read> {
    r: R,
    /// Bytes consumed from `r`.
    pos: u64,
    /// Data of the current entry not yet read, and the padding after it.
    left: u64,
    pad: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> TarReader<R> {
        TarReader {
            r,
            pos: 0,
            left: 0,
            pad: 0,
        }
    }

    /// Reads up to `buf.len()` bytes from the archive itself; short only at its end.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e)
                        .io_context(|| format!("reading the archive at byte {}", self.pos));
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Skips `n` bytes of the archive; an archive that ends first is truncated.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), Error> {
        let mut sink = io::sink();
        let copied = io::copy(&mut (&mut self.r).take(n), &mut sink)
            .io_context(|| format!("reading the archive at byte {}", self.pos))?;
        self.pos = self.pos.saturating_add(copied);
        if copied < n {
            bail!(
                DataLoss,
                "truncated archive: it ends at byte {} inside {what}",
                self.pos
            );
        }
        Ok(())
    }

    /// The header of the next file, or `None` after the end-of-archive marker. Skips what is
    /// left of the current entry first.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        let (left, pad) = (self.left, self.pad);
        self.left = 0;
        self.pad = 0;
        self.skip(left.saturating_add(pad), "an entry's data")?;
        let mut size_override = None;
        loop {
            let offset = self.pos;
            let mut h = [0u8; BLOCK];
            let n = self.fill(&mut h)?;
            if n == 0 {
                bail!(
                    DataLoss,
                    "truncated archive: it ends at byte {offset} without the end-of-archive marker"
                );
            }
            if n < BLOCK {
                bail!(
                    DataLoss,
                    "truncated archive: it ends at byte {} inside the header at byte {offset}",
                    self.pos
                );
            }
            if h.iter().all(|&b| b == 0) {
                self.end(offset)?;
                return Ok(None);
            }
            let entry = parse_header(&h, offset)?;
            match h[TYPEFLAG] {
                b'0' | 0 => {
                    let size = size_override.unwrap_or(entry.size);
                    self.left = size;
                    self.pad = padding(size);
                    return Ok(Some(Entry { size, ..entry }));
                }
                b'x' if size_override.is_none() => {
                    if entry.size > MAX_PAX_BYTES {
                        bail!(
                            DataLoss,
                            "pax header at byte {offset}: {} bytes of records, more than {MAX_PAX_BYTES}",
                            entry.size
                        );
                    }
                    let mut records = vec![0u8; entry.size as usize];
                    if self.fill(&mut records)? < records.len() {
                        bail!(
                            DataLoss,
                            "truncated archive: it ends at byte {} inside the pax header at byte {offset}",
                            self.pos
                        );
                    }
                    self.skip(padding(entry.size), "a pax header's padding")?;
                    size_override = Some(parse_pax(&records, offset)?);
                }
                b'x' => bail!(
                    DataLoss,
                    "pax header at byte {offset} follows another one instead of a file"
                ),
                t => bail!(DataLoss, "{}", describe_refused(&h, t, &entry.name, offset)),
            }
        }
    }

    /// After the first zero block: a second one must follow, then only zeros (a writer may pad
    /// the archive to a record size).
    fn end(&mut self, offset: u64) -> Result<(), Error> {
        let mut h = [0u8; BLOCK];
        let n = self.fill(&mut h)?;
        if n < BLOCK || h.iter().any(|&b| b != 0) {
            bail!(
                DataLoss,
                "the end-of-archive marker at byte {offset} is incomplete (two zero blocks are required)"
            );
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let start = self.pos;
            let n = self.fill(&mut buf)?;
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                bail!(
                    DataLoss,
                    "data after the end of the archive, at byte {}",
                    start + i as u64
                );
            }
            if n < buf.len() {
                return Ok(());
            }
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    /// The current entry's data; an archive that ends inside it is an `UnexpectedEof`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "truncated archive: it ends at byte {} inside a file's data",
                    self.pos
                ),
            ));
        }
        self.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Why an entry of type `t` is refused, naming it.
fn describe_refused(h: &[u8; BLOCK], t: u8, name: &str, offset: u64) -> String {
    let link = String::from_utf8_lossy(until_nul(&h[LINKNAME]));
    let what = match t {
        b'1' => format!("a hard link to {link:?}"),
        b'2' => format!("a symbolic link to {link:?}"),
        b'3' | b'4' => "a device node".to_owned(),
        b'5' => "a directory".to_owned(),
        b'6' => "a FIFO".to_owned(),
        b'g' => "a pax global header".to_owned(),
        b'L' | b'K' => "a GNU long-name extension".to_owned(),
        t => format!("of type {:?}", char::from(t)),
    };
    format!("entry {name:?} at byte {offset} is {what}: only regular files are allowed")
}

fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// An octal number field: optional leading spaces, digits, then NUL or space to the end.
fn parse_octal(field: &[u8], what: &str, offset: u64) -> Result<u64, Error> {
    let bad = || {
        err!(
            DataLoss,
            "header at byte {offset}: {what} field is not an octal number"
        )
    };
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        bail!(
            DataLoss,
            "header at byte {offset}: {what} field is in base-256 (a GNU extension, not ustar)"
        );
    }
    let s = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .copied()
        .collect::<Vec<u8>>();
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if s[digits..].iter().any(|&b| b != 0 && b != b' ') {
        return Err(bad());
    }
    if digits == 0 {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s[..digits]).map_err(|_| bad())?;
    u64::from_str_radix(s, 8).map_err(|_| bad())
}

/// Checks a header's checksum, magic and path; the size is the one of the header itself.
fn parse_header(h: &[u8; BLOCK], offset: u64) -> Result<Entry, Error> {
    let stored = parse_octal(&h[CHECKSUM], "checksum", offset)?;
    if stored != checksum(h) {
        bail!(
            DataLoss,
            "not a valid tar archive: the header checksum at byte {offset} does not match"
        );
    }
    let magic = &h[MAGIC];
    let posix = magic == b"ustar\0" && &h[VERSION] == b"00";
    let gnu = magic == b"ustar " && &h[VERSION] == b" \0";
    if !(posix || gnu) {
        bail!(
            DataLoss,
            "header at byte {offset}: not a POSIX ustar header (magic {:?})",
            String::from_utf8_lossy(magic)
        );
    }
    let name = until_nul(&h[NAME]);
    let prefix = if posix {
        until_nul(&h[PREFIX])
    } else {
        &[][..]
    };
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        path.extend_from_slice(prefix);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    let path = String::from_utf8(path).map_err(|e| {
        err!(
            DataLoss,
            "entry at byte {offset}: name {:?} is not UTF-8",
            String::from_utf8_lossy(e.as_bytes())
        )
    })?;
    check_path(&path).map_err(|why| err!(DataLoss, "entry {path:?} at byte {offset}: {why}"))?;
    let size = parse_octal(&h[SIZE], "size", offset)?;
    Ok(Entry {
        name: path,
        size,
        offset,
    })
}

/// Refuses paths that could land outside the directory an archive is extracted into.
fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty name");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.split('/').any(|c| c == "..") {
        return Err("path with a \"..\" component escapes the package");
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
        return Err("control character or backslash in the name");
    }
    Ok(())
}

/// The records of a pax extended header: only `size` changes how we read; path overrides are
/// refused (they could point elsewhere than the header's checked name) and so is anything
/// unknown. Returns the size.
fn parse_pax(records: &[u8], offset: u64) -> Result<u64, Error> {
    let bad = |why: &str| err!(DataLoss, "pax header at byte {offset}: {why}");
    let mut rest = records;
    let mut size = None;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("record length is not a number"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("record length does not match its record"));
        }
        let kv = std::str::from_utf8(&rest[space + 1..len - 1])
            .map_err(|_| bad("record is not UTF-8"))?;
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| bad("record without '='"))?;
        match key {
            "size" => {
                let n = value
                    .parse::<u64>()
                    .map_err(|_| bad("size is not a number"))?;
                size = Some(n);
            }
            "mtime" | "atime" | "ctime" | "uid" | "gid" | "uname" | "gname" => {}
            "path" | "linkpath" => {
                return Err(bad(&format!(
                    "a {key} record overrides the entry's name (refused)"
                )));
            }
            key => return Err(bad(&format!("unsupported record {key:?}"))),
        }
        rest = &rest[len..];
    }
    size.ok_or_else(|| bad("no size record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (name, data) in files {
            w.append(
                name,
                data.len() as u64,
                1_700_000_000,
                &mut &data[..],
                &mut |_| {},
            )
            .unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut r = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.read_to_end(&mut data)
                .io_context(|| format!("reading {}", e.name))?;
            out.push((e.name, data));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_and_layout() {
        let big: Vec<u8> = (0..1300u32).map(|i| (i % 251) as u8).collect();
        let files: &[(&str, &[u8])] = &[("media/a.bin", &big), ("empty", b""), ("b", b"x")];
        let bytes = archive(files);
        // Three headers, 1300 bytes padded to 1536, one block for "x", two end blocks.
        assert_eq!(bytes.len(), 512 + 1536 + 512 + 512 + 512 + 1024);
        // Fields at the offsets POSIX gives them.
        assert_eq!(&bytes[0..11], b"media/a.bin");
        assert_eq!(&bytes[124..136], b"00000002424\0");
        assert_eq!(&bytes[257..265], b"ustar\x0000");
        assert_eq!(bytes[156], b'0');
        let back = read_all(&bytes).unwrap();
        let want: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        assert_eq!(back, want);
        // Zeros padding the archive to a record size (as GNU tar writes) are fine.
        let mut padded = bytes.clone();
        padded.resize(10240, 0);
        assert_eq!(read_all(&padded).unwrap(), want);
    }

    #[test]
    fn writer_refuses_a_source_of_the_wrong_length() {
        let mut w = TarWriter::new(Vec::new());
        let e = w
            .append("short", 5, 0, &mut &b"abc"[..], &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("after 3 of the 5 bytes"), "{e}");
        let mut w = TarWriter::new(Vec::new());
        let e = w
            .append("long", 2, 0, &mut &b"abc"[..], &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("more than the 2 bytes"), "{e}");
    }

    #[test]
    fn pax_size_records() {
        // Lengths count their own digits: 19 bytes in all for this one.
        assert_eq!(pax_record("size", "8589934592"), "19 size=8589934592\n");
        assert_eq!(pax_record("size", "1"), "9 size=1\n");
        // "99 k=" and 93 bytes and a newline are 99; one byte more needs a third digit: 101.
        let v = "v".repeat(93);
        assert_eq!(pax_record("k", &v), format!("99 k={v}\n"));
        let v = "v".repeat(94);
        assert_eq!(pax_record("k", &v), format!("101 k={v}\n"));
        assert_eq!(
            parse_pax(b"19 size=8589934592\n", 0).unwrap(),
            8_589_934_592
        );
        for bad in [
            &b"19 size=8589934592"[..],
            b"9 path=/x\n",
            b"12 linkpath=\n",
            b"x size=1\n",
            b"8 size=1\n",
            b"13 GNU.sparse\n",
            b"",
        ] {
            assert!(
                parse_pax(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pax_header_carries_a_size_too_large_for_ustar() {
        // A 9 GiB file cannot be written here; its headers can. The writer stops at the first
        // data byte the source lacks, after the headers are out.
        let mut w = TarWriter::new(Vec::new());
        let size = 9u64 << 30;
        assert!(
            w.append("big", size, 0, &mut &b""[..], &mut |_| {})
                .is_err()
        );
        let bytes = w.out;
        assert_eq!(bytes[156], b'x');
        assert_eq!(&bytes[512..531], b"19 size=9663676416\n");
        // Pax header, its records' block, the file's header, the data.
        assert_eq!(entry_len(size), 3 * 512 + size);
        let mut r = TarReader::new(&bytes[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.name.as_str(), e.size, e.offset), ("big", size, 1024));
        let mut sink = Vec::new();
        let cut = r.read_to_end(&mut sink).unwrap_err();
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A header as a hostile writer would make it, with a valid checksum.
    fn forged(name: &[u8], size: &str, typeflag: u8, link: &[u8]) -> [u8; BLOCK] {
        let mut h = header("placeholder", 0, 0, typeflag);
        h[NAME].fill(0);
        h[NAME][..name.len()].copy_from_slice(name);
        h[SIZE][..size.len()].copy_from_slice(size.as_bytes());
        h[SIZE][size.len()..].fill(0);
        h[LINKNAME][..link.len()].copy_from_slice(link);
        h[CHECKSUM].copy_from_slice(b"        ");
        let sum = checksum(&h);
        h[CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn refusal(blocks: &[&[u8]]) -> String {
        let bytes: Vec<u8> = blocks.concat();
        read_all(&bytes).unwrap_err().to_string()
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        let end = [0u8; 2 * BLOCK];
        for (name, typeflag, link, want) in [
            (&b"../x"[..], b'0', &b""[..], "escapes the package"),
            (b"media/../../x", b'0', b"", "escapes the package"),
            (b"/etc/passwd", b'0', b"", "absolute path"),
            (
                b"media/a",
                b'2',
                b"/etc/passwd",
                "symbolic link to \"/etc/passwd\"",
            ),
            (b"media/a", b'1', b"manifest.json", "hard link"),
            (b"dev", b'3', b"", "device node"),
            (b"media", b'5', b"", "directory"),
            (b"a\nb", b'0', b"", "control character"),
        ] {
            let h = forged(name, "0", typeflag, link);
            let e = refusal(&[&h, &end]);
            assert!(e.contains(want), "{e}");
            assert!(
                e.contains(&format!("{:?}", String::from_utf8_lossy(name))),
                "{e}"
            );
        }
        let mut bad_sum = forged(b"a", "0", b'0', b"");
        bad_sum[0] = b'b';
        assert!(refusal(&[&bad_sum, &end]).contains("checksum at byte 0"));
        let mut gnu = forged(b"a", "0", b'0', b"");
        gnu[SIZE][0] = 0x80;
        gnu[CHECKSUM].copy_from_slice(b"        ");
        let sum = checksum(&gnu);
        gnu[CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(refusal(&[&gnu, &end]).contains("base-256"));
    }

    #[test]
    fn truncation_and_garbage_fail_cleanly() {
        let bytes = archive(&[("a", &[7u8; 2000]), ("b", b"bb")]);
        for cut in [
            0,
            100,
            512,
            1000,
            2560,
            2600,
            3072,
            bytes.len() - 1024,
            bytes.len() - 1,
        ] {
            let e = read_all(&bytes[..cut]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("truncated") || text.contains("end-of-archive marker"),
                "cut at {cut}: {text}"
            );
        }
        // A header that declares far more data than there is.
        let huge = forged(b"media/a", "77777777777", b'0', b"");
        assert!(refusal(&[&huge, &[1u8; 100]]).contains("truncated"));
        // Random bytes.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        assert!(refusal(&[&garbage]).contains("checksum"));
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"more");
        assert!(
            read_all(&trailing)
                .unwrap_err()
                .to_string()
                .contains("after the end")
        );
    }
}
