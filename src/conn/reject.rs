//! Why a request was refused before its handler ran, as one value: its status, its metric
//! label and the config key that raises the limit, if a limit refused it. Every rejection is
//! counted by reason (`corral_rejections_total{reason}`) and logged at debug.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::chunked::ChunkedError;
use crate::http::parse::ParseError;
use crate::http::status::Status;

/// Why the connection refused a request (and then closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Malformed,
    HeadTooLarge,
    TooManyHeaders,
    UriTooLong,
    VersionNotSupported,
    BadFraming,
    UnsupportedCoding,
    MethodNotImplemented,
    BodyTooLarge,
    ExpectationFailed,
    BadChunk,
    ChunkLineTooLong,
    HeaderTimeout,
    BodyTimeout,
}

impl Reason {
    /// Every reason, in the order the counters keep them.
    pub const ALL: [Reason; 14] = [
        Reason::Malformed,
        Reason::HeadTooLarge,
        Reason::TooManyHeaders,
        Reason::UriTooLong,
        Reason::VersionNotSupported,
        Reason::BadFraming,
        Reason::UnsupportedCoding,
        Reason::MethodNotImplemented,
        Reason::BodyTooLarge,
        Reason::ExpectationFailed,
        Reason::BadChunk,
        Reason::ChunkLineTooLong,
        Reason::HeaderTimeout,
        Reason::BodyTimeout,
    ];

    pub fn status(self) -> Status {
        match self {
            Reason::Malformed | Reason::BadFraming | Reason::BadChunk => Status::BAD_REQUEST,
            Reason::ChunkLineTooLong => Status::BAD_REQUEST,
            Reason::HeadTooLarge | Reason::TooManyHeaders => Status::HEADERS_TOO_LARGE,
            Reason::UriTooLong => Status::URI_TOO_LONG,
            Reason::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
            Reason::UnsupportedCoding | Reason::MethodNotImplemented => Status::NOT_IMPLEMENTED,
            Reason::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
            Reason::ExpectationFailed => Status::EXPECTATION_FAILED,
            Reason::HeaderTimeout | Reason::BodyTimeout => Status::REQUEST_TIMEOUT,
        }
    }

    /// The `reason` label of `corral_rejections_total`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::HeadTooLarge => "head_too_large",
            Reason::TooManyHeaders => "too_many_headers",
            Reason::UriTooLong => "uri_too_long",
            Reason::VersionNotSupported => "version_not_supported",
            Reason::BadFraming => "bad_framing",
            Reason::UnsupportedCoding => "unsupported_coding",
            Reason::MethodNotImplemented => "method_not_implemented",
            Reason::BodyTooLarge => "body_too_large",
            Reason::ExpectationFailed => "expectation_failed",
            Reason::BadChunk => "bad_chunk",
            Reason::ChunkLineTooLong => "chunk_line_too_long",
            Reason::HeaderTimeout => "header_timeout",
            Reason::BodyTimeout => "body_timeout",
        }
    }

    /// The config key whose limit refused the request, if a limit did.
    pub fn limit_key(self) -> Option<&'static str> {
        match self {
            Reason::HeadTooLarge => Some("limits.max_head_bytes"),
            Reason::TooManyHeaders => Some("limits.max_headers"),
            Reason::UriTooLong => Some("limits.max_uri_bytes"),
            Reason::BodyTooLarge => Some("limits.max_body_bytes"),
            Reason::ChunkLineTooLong => Some("limits.max_chunk_line_bytes"),
            Reason::HeaderTimeout => Some("timeouts.header_timeout_ms"),
            Reason::BodyTimeout => Some("timeouts.body_timeout_ms"),
            _ => None,
        }
    }
}

impl From<ParseError> for Reason {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::Malformed(_) => Reason::Malformed,
            ParseError::HeadTooLarge => Reason::HeadTooLarge,
            ParseError::TooManyHeaders => Reason::TooManyHeaders,
            ParseError::UriTooLong => Reason::UriTooLong,
            ParseError::VersionNotSupported => Reason::VersionNotSupported,
            ParseError::BadFraming(_) => Reason::BadFraming,
            ParseError::UnsupportedCoding => Reason::UnsupportedCoding,
            ParseError::MethodNotImplemented => Reason::MethodNotImplemented,
            ParseError::BodyTooLarge => Reason::BodyTooLarge,
            ParseError::ExpectationFailed => Reason::ExpectationFailed,
        }
    }
}

impl From<ChunkedError> for Reason {
    fn from(err: ChunkedError) -> Self {
        match err {
            ChunkedError::TooLarge => Reason::BodyTooLarge,
            ChunkedError::LineTooLong => Reason::ChunkLineTooLong,
            _ => Reason::BadChunk,
        }
    }
}

/// Rejections counted by reason, for the whole server (they are rare: one shared counter
/// each is fine).
#[derive(Default)]
pub(crate) struct Rejections {
    counts: [AtomicU64; Reason::ALL.len()],
}

impl Rejections {
    pub fn record(&self, reason: Reason) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// (reason, count) for every reason.
    pub fn counts(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&reason| (reason, self.counts[reason as usize].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_sits_at_its_own_index() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?}");
        }
    }

    #[test]
    fn the_status_of_a_parse_error_is_the_parsers_own() {
        for err in [
            ParseError::Malformed("x"),
            ParseError::HeadTooLarge,
            ParseError::TooManyHeaders,
            ParseError::UriTooLong,
            ParseError::VersionNotSupported,
            ParseError::BadFraming("x"),
            ParseError::UnsupportedCoding,
            ParseError::MethodNotImplemented,
            ParseError::BodyTooLarge,
            ParseError::ExpectationFailed,
        ] {
            assert_eq!(Reason::from(err).status(), err.status(), "{err:?}");
        }
    }

    #[test]
    fn every_limit_key_is_a_key_of_the_default_config() {
        let table: toml::Table = toml::from_str(crate::config::DEFAULT_TOML).unwrap();
        for reason in Reason::ALL {
            let Some(key) = reason.limit_key() else {
                continue;
            };
            let (section, name) = key.split_once('.').unwrap();
            let found = table
                .get(section)
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key(name));
            assert!(
                found,
                "{reason:?} names `{key}`, which config/default.toml lacks"
            );
        }
    }
}
