//! Sending bytes over HTTP: a file's prefix or a body made of pieces (bytes in memory and
//! stretches of files), with `ETag`, `If-None-Match` and one `Range`, streamed in chunks so
//! that memory does not grow with the body.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vms_core::{Error, IoResultExt};

use super::range::{self, Plan};

const CHUNK: u64 = 256 * 1024;

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
    let mut todo = VecDeque::new();
    let mut at = 0;
    for p in &pieces {
        let (start, end) = (at, at + p.size());
        at = end;
        if end <= span.start || start >= span.end {
            continue;
        }
        let skip = span.start.saturating_sub(start);
        todo.push_back(p.slice(skip, span.end.min(end) - start - skip));
    }
    // The first file is opened before answering, so that a missing file is an error status
    // rather than a cut body.
    if let Some(Piece::File { path, .. }) = todo.iter().find(|p| matches!(p, Piece::File { .. })) {
        tokio::fs::metadata(path)
            .await
            .io_context(|| format!("opening {}", path.display()))?;
    }
    let body = futures::stream::unfold(todo, |mut todo| async move {
        let piece = todo.pop_front()?;
        match piece {
            Piece::Mem(b) => Some((Ok(b), todo)),
            Piece::File { path, offset, len } => {
                let n = len.min(CHUNK);
                match read_at(&path, offset, n).await {
                    Ok(b) => {
                        if len > n {
                            todo.push_front(Piece::File {
                                path,
                                offset: offset + n,
                                len: len - n,
                            });
                        }
                        Some((Ok(b), todo))
                    }
                    Err(e) => Some((Err(e), VecDeque::new())),
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(body));
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

/// Reads `len` bytes at `offset`; a file shorter than that is an error.
async fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = vec![0; len as usize];
    f.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}

/// Reads the concatenation of `pieces`, blocking: for writers that take a `Read`.
pub struct PiecesReader {
    pieces: VecDeque<Piece>,
    file: Option<(std::fs::File, u64)>,
}

impl PiecesReader {
    pub fn new(pieces: Vec<Piece>) -> PiecesReader {
        PiecesReader {
            pieces: pieces.into(),
            file: None,
        }
    }
}

impl std::io::Read for PiecesReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Seek;
        loop {
            if let Some((f, left)) = &mut self.file {
                if *left == 0 {
                    self.file = None;
                    continue;
                }
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = f.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shorter than its index row",
                    ));
                }
                *left -= n as u64;
                return Ok(n);
            }
            match self.pieces.pop_front() {
                None => return Ok(0),
                Some(Piece::Mem(b)) => {
                    let n = buf.len().min(b.len());
                    buf[..n].copy_from_slice(&b[..n]);
                    if n < b.len() {
                        self.pieces.push_front(Piece::Mem(b.slice(n..)));
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
                Some(Piece::File { path, offset, len }) => {
                    let mut f = std::fs::File::open(&path)?;
                    f.seek(std::io::SeekFrom::Start(offset))?;
                    self.file = Some((f, len));
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
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        (
            BodyWriter {
                tx,
                buf: Vec::with_capacity(CHUNK as usize),
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
        if self.buf.len() as u64 >= CHUNK {
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
            Vec::with_capacity(CHUNK as usize),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}
