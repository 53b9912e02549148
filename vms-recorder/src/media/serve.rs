//! Sending a prefix of a file over HTTP: `ETag`, `If-None-Match`, one `Range`, streamed in
//! chunks so that memory does not grow with the file.

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vms_core::{Error, IoResultExt};

use super::range::{self, Plan};

const CHUNK: usize = 256 * 1024;

/// Serves bytes `0..len` of the file at `path`.
pub async fn file(
    path: &Path,
    len: u64,
    etag: &str,
    content_type: &'static str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
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
    let mut f = tokio::fs::File::open(path)
        .await
        .io_context(|| format!("opening {}", path.display()))?;
    f.seek(std::io::SeekFrom::Start(span.start))
        .await
        .io_context(|| format!("seeking {}", path.display()))?;
    let left = span.end - span.start;
    let body = futures::stream::unfold((f, left), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        match f.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shorter than its index row",
                )),
                (f, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
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
