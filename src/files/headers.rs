//! The headers every answer from one version of a file carries (`ETag`, `Last-Modified`,
//! `Accept-Ranges`), made and checked once per version and shared by its answers: a hit on
//! the cache costs no allocation and no header check (it cost three allocations and three
//! checks of each header before).

use std::borrow::Cow;

use crate::http::conditional::Validators;
use crate::http::header::{Headers, SharedHeaders};
use crate::http::response::Response;

/// One version's headers, for a `304` and for a `200`/`206`.
#[derive(Debug)]
pub(super) struct FileHeaders {
    /// `ETag` and `Last-Modified`: a `304` repeats the validators (RFC 9110 §15.4.5).
    not_modified: Headers,
    /// The validators and `Accept-Ranges: bytes`.
    full: Headers,
}

impl FileHeaders {
    pub fn new(validators: &Validators) -> FileHeaders {
        let validated = vec![
            (Cow::Borrowed("ETag"), Cow::Owned(validators.etag.clone())),
            (
                Cow::Borrowed("Last-Modified"),
                Cow::Owned(validators.last_modified()),
            ),
        ];
        let mut full = validated.clone();
        full.push((Cow::Borrowed("Accept-Ranges"), Cow::Borrowed("bytes")));
        FileHeaders {
            not_modified: shared(validated),
            full: shared(full),
        }
    }

    /// `response` with the validators.
    pub fn not_modified(&self, mut response: Response) -> Response {
        response.headers = self.not_modified.clone();
        response
    }

    /// `response` with the validators and `Accept-Ranges`.
    pub fn full(&self, mut response: Response) -> Response {
        response.headers = self.full.clone();
        response
    }
}

/// Our own names, an entity tag of hex digits and quotes, an HTTP date: a check can only
/// pass. Were it to fail, the headers go out unshared, and the encoder's check refuses them
/// with a 500 that names the header, as for a handler's bad header.
fn shared(pairs: Vec<(Cow<'static, str>, Cow<'static, str>)>) -> Headers {
    match SharedHeaders::new(pairs.clone()) {
        Ok(shared) => Headers::Shared(shared),
        Err(_) => Headers::Own(pairs),
    }
}
