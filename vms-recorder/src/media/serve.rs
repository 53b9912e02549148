//! Sending bytes over HTTP: a file's prefix or a body made of pieces (bytes in memory and
//! stretches of files), with `ETag`, `If-None-Match` and one `Range`, streamed in chunks so
//! that memory does not grow with the body.
//!
//! A body's files are read on one blocking thread, a few chunks ahead of the socket, each
//! file opened once however many pieces of it follow one another.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use vms_core::{Error, IoResultExt};

use super::range::{self, Plan};

/// Bytes a chunk of a body read from files holds. Measured (tests/bench/export.sh): 1 MiB
/// with 2 chunks ahead of the socket beats 256 KiB with 4 ahead by about 6 %, and larger
/// chunks or more of them gain nothing.
const READ_CHUNK: usize = 1024 * 1024;

/// Bytes a [`BodyWriter`] gathers before it sends them: a body made as it is sent (a
/// transcode) reaches the client in pieces this small.
const WRITE_CHUNK: usize = 256 * 1024;

/// Chunks that may wait between the thread that makes them and the socket.
const CHUNKS_AHEAD: usize = 2;

/// A stretch of a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Mem(Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Piece {
    pub fn size(&self) -> u64 {
        match self {
            Piece::Mem(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }

    /// The part of this piece from `skip` on, at most `take` bytes.
    fn slice(&self, skip: u64, take: u64) -> Piece {
        let take = take.min(self.size() - skip);
        match self {
            Piece::Mem(b) => Piece::Mem(b.slice(skip as usize..(skip + take) as usize)),
            Piece::File { path, offset, .. } => Piece::File {
                path: path.clone(),
                offset: offset + skip,
                len: take,
            },
        }
    }
}

/// Serves bytes `0..len` of the file at `path`.
pub async fn file(
    path: &Path,
    len: u64,
    etag: &str,
    content_type: &'static str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let piece = Piece::File {
        path: path.to_owned(),
        offset: 0,
        len,
    };
    pieces(vec![piece], etag, content_type, headers).await
}

/// Serves the concatenation of `pieces`.
pub async fn pieces(
    pieces: Vec<Piece>,
    etag: &str,
    content_type: &'static str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let len: u64 = pieces.iter().map(Piece::size).sum();
    let etag_value = HeaderValue::from_str(etag).expect("an ETag is visible ASCII");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let wanted = range::plan(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, span) = match wanted {
        Plan::Whole => (StatusCode::OK, 0..len),
        Plan::Part(r) => (StatusCode::PARTIAL_CONTENT, r),
        Plan::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    // The pieces the span covers, cut to it.
    let mut todo = Vec::new();
    let mut at = 0;
    for p in &pieces {
        let (start, end) = (at, at + p.size());
        at = end;
        if end <= span.start || start >= span.end {
            continue;
        }
        let skip = span.start.saturating_sub(start);
        todo.push(p.slice(skip, span.end.min(end) - start - skip));
    }
    // The first file is opened before answering, so that a missing file is an error status
    // rather than a cut body.
    if let Some(Piece::File { path, .. }) = todo.iter().find(|p| matches!(p, Piece::File { .. })) {
        tokio::fs::metadata(path)
            .await
            .io_context(|| format!("opening {}", path.display()))?;
    }
    let body = read_body(PiecesReader::new(todo), span.end - span.start);
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag_value);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{len}", span.start, span.end - 1))
                .expect("ASCII"),
        );
    }
    Ok(r)
}

/// A body and the sender that feeds it chunks (or an error, which cuts the body short).
fn channel_body() -> (tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    (tx, body)
}

/// A body of the `len` bytes of `pieces`, read on a blocking thread, which stops when the
/// client goes away.
fn read_body(mut pieces: PiecesReader, mut len: u64) -> Body {
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        loop {
            let size = usize::try_from(len).unwrap_or(usize::MAX).min(READ_CHUNK);
            let mut chunk = Vec::with_capacity(size);
            let sent = match pieces.read_into(&mut chunk, size) {
                Ok(0) => return,
                Ok(n) => {
                    len = len.saturating_sub(n as u64);
                    tx.blocking_send(Ok(Bytes::from(chunk)))
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if sent.is_err() {
                return; // the client went away
            }
        }
    });
    body
}

fn cut_short() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "file shorter than its index row",
    )
}

/// Reads the concatenation of `pieces`, blocking: for bodies, and for writers that take a
/// `Read`. Consecutive pieces of one file share one open file.
pub struct PiecesReader {
    pieces: VecDeque<Piece>,
    /// The file opened last, by path.
    open: Option<(PathBuf, std::fs::File)>,
    /// What is left of the file piece being read: its next offset and length.
    current: Option<(u64, u64)>,
}

impl PiecesReader {
    pub fn new(pieces: Vec<Piece>) -> PiecesReader {
        PiecesReader {
            pieces: pieces.into(),
            open: None,
            current: None,
        }
    }

    /// Moves on to the next piece: a file piece becomes the current one; bytes in memory are
    /// returned. `None` at the end.
    fn next_piece(&mut self) -> std::io::Result<Option<Bytes>> {
        self.current = None;
        match self.pieces.pop_front() {
            None => Ok(None),
            Some(Piece::Mem(b)) => Ok(Some(b)),
            Some(Piece::File { path, offset, len }) => {
                if self.open.as_ref().is_none_or(|(p, _)| *p != path) {
                    let f = std::fs::File::open(&path)?;
                    self.open = Some((path, f));
                }
                self.current = Some((offset, len));
                Ok(Some(Bytes::new()))
            }
        }
    }

    /// Appends up to `max` bytes to `out`; fewer only at the end. A stretch of a file is
    /// read with one system call, whatever its length: reads that start at 8 KiB and grow
    /// (as `read_to_end` makes them) made cold-cache exports about a quarter slower.
    fn read_into(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        let start = out.len();
        loop {
            let room = max - (out.len() - start);
            if room == 0 {
                break;
            }
            if let (Some((_, f)), Some((offset, left))) = (&mut self.open, &mut self.current)
                && *left > 0
            {
                let want = (room as u64).min(*left);
                let at = out.len();
                out.resize(at + want as usize, 0);
                f.read_exact_at(&mut out[at..], *offset).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        cut_short()
                    } else {
                        e
                    }
                })?;
                *offset += want;
                *left -= want;
                continue;
            }
            match self.next_piece()? {
                None => break,
                Some(b) => {
                    let n = room.min(b.len());
                    out.extend_from_slice(&b[..n]);
                    if n < b.len() {
                        self.pieces.push_front(Piece::Mem(b.slice(n..)));
                    }
                }
            }
        }
        Ok(out.len() - start)
    }
}

impl std::io::Read for PiecesReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let (Some((_, f)), Some((offset, left))) = (&self.open, &mut self.current)
                && *left > 0
            {
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = f.read_at(&mut buf[..want], *offset)?;
                if n == 0 && want > 0 {
                    return Err(cut_short());
                }
                *offset += n as u64;
                *left -= n as u64;
                return Ok(n);
            }
            match self.next_piece()? {
                None => return Ok(0),
                Some(b) => {
                    let n = buf.len().min(b.len());
                    buf[..n].copy_from_slice(&b[..n]);
                    if n < b.len() {
                        self.pieces.push_front(Piece::Mem(b.slice(n..)));
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

/// A blocking writer whose bytes become an HTTP body: chunks go through a channel to the
/// async side; a client that went away fails the next write.
pub struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl BodyWriter {
    /// The writer and the body it feeds.
    pub fn new() -> (BodyWriter, Body) {
        let (tx, body) = channel_body();
        (
            BodyWriter {
                tx,
                buf: Vec::with_capacity(WRITE_CHUNK),
            },
            body,
        )
    }

    /// Ends the body with an error, so the client sees a broken transfer, not a short file.
    pub fn fail(&self, e: std::io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(WRITE_CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn pieces_read_back_in_any_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let data_a: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let data_b: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
        std::fs::write(&a, &data_a).unwrap();
        std::fs::write(&b, &data_b).unwrap();
        let file = |path: &Path, offset: u64, len: u64| Piece::File {
            path: path.to_owned(),
            offset,
            len,
        };
        // Stretches of one file in a row (one open file, not in order), another file, memory.
        let pieces = vec![
            Piece::Mem(Bytes::from_static(b"head")),
            file(&a, 100, 900),
            file(&a, 2000, 3000),
            file(&a, 0, 10),
            file(&b, 7, 2993),
            Piece::Mem(Bytes::from_static(b"")),
            Piece::Mem(Bytes::from_static(b"tail")),
        ];
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data_a[100..1000]);
        want.extend_from_slice(&data_a[2000..5000]);
        want.extend_from_slice(&data_a[..10]);
        want.extend_from_slice(&data_b[7..]);
        want.extend_from_slice(b"tail");
        for size in [1, 3, 64, 1000, 100_000] {
            let mut reader = PiecesReader::new(pieces.clone());
            let mut got = Vec::new();
            loop {
                let mut chunk = Vec::with_capacity(size);
                let n = reader.read_into(&mut chunk, size).unwrap();
                assert_eq!(n, chunk.len());
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, want, "read_into by {size}");
            let mut got = Vec::new();
            let mut reader = PiecesReader::new(pieces.clone());
            let mut buf = vec![0; size];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, want, "read by {size}");
        }
        // A file shorter than its piece is an error, not a short body.
        let short = vec![file(&b, 2990, 20)];
        let e = PiecesReader::new(short.clone())
            .read_into(&mut Vec::new(), 100)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = std::io::copy(&mut PiecesReader::new(short), &mut std::io::sink()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
