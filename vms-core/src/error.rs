//! The one error type of our library crates: a kind that callers act on (and that maps to an
//! HTTP status in exactly one place), a message with context, and an optional source.

use std::fmt;

/// What went wrong, as far as a caller needs to know to act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request or input is malformed or out of range.
    InvalidArgument,
    /// The thing asked for does not exist (or is out of the caller's scope).
    NotFound,
    /// It exists already.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// The caller is not authenticated.
    Unauthenticated,
    /// The system is not in a state that allows this (e.g. a storage root is missing).
    FailedPrecondition,
    /// A resource ran out (disk full, quota).
    ResourceExhausted,
    /// A dependency (camera, disk, peer) is not answering; retrying may help.
    Unavailable,
    /// Stored data is corrupt or inconsistent.
    DataLoss,
    /// A bug or an unexpected condition.
    Internal,
}

impl ErrorKind {
    /// A stable snake_case code, used in API errors and logs.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DataLoss => "data_loss",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status every API of the network answers this kind with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => 409,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::ResourceExhausted => 507,
            ErrorKind::Unavailable => 503,
            ErrorKind::DataLoss | ErrorKind::Internal => 500,
        }
    }
}

/// An error with a kind, a message that says where it happened, and an optional cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause; it is shown after the message.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn msg(&self) -> &str {
        &self.msg
    }

    /// Adds context in front of the message, keeping kind and source.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.msg = format!("{context}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Builds an [`Error`]: `err!(NotFound, "camera {id}")`, optionally `source: e` first.
#[macro_export]
macro_rules! err {
    ($kind:ident, source: $source:expr, $($arg:tt)+) => {
        $crate::Error::new($crate::ErrorKind::$kind, format!($($arg)+)).with_source($source)
    };
    ($kind:ident, $($arg:tt)+) => {
        $crate::Error::new($crate::ErrorKind::$kind, format!($($arg)+))
    };
}

/// Returns early with an [`Error`]; same arguments as [`err!`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::err!($($arg)+))
    };
}

/// Adds `err!`-style context to any `Result` whose error converts into a cause.
pub trait ResultExt<T> {
    /// Maps the error to `kind` with `msg`, keeping the original as the source.
    fn err_kind(self, kind: ErrorKind, msg: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for Result<T, E> {
    fn err_kind(self, kind: ErrorKind, msg: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::new(kind, msg()).with_source(e))
    }
}

/// Context for I/O results: the error kind follows the I/O error (a full disk is
/// `ResourceExhausted`, a missing file `NotFound`, anything else `Unavailable`).
pub trait IoResultExt<T> {
    fn io_context(self, msg: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoResultExt<T> for Result<T, std::io::Error> {
    fn io_context(self, msg: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    ErrorKind::ResourceExhausted
                }
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                _ => ErrorKind::Unavailable,
            };
            Error::new(kind, msg()).with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails() -> Result<(), Error> {
        bail!(NotFound, "camera {}", 7);
    }

    #[test]
    fn macros_and_display() {
        let e = fails().unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (ErrorKind::NotFound, "camera 7".to_owned())
        );
        let io = std::io::Error::other("disk gone");
        let e = err!(Unavailable, source: io, "writing {}", "a.mp4").context("stream main");
        assert_eq!(e.to_string(), "stream main: writing a.mp4: disk gone");
        assert_eq!(e.kind().code(), "unavailable");
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("x"));
        let e = r
            .err_kind(ErrorKind::DataLoss, || "reading".into())
            .unwrap_err();
        assert_eq!(e.to_string(), "reading: x");
        let full: Result<(), _> = Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let e = full.io_context(|| "appending".into()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
    }
}
