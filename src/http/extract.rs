//! Typed views of a request: its body as JSON or as an HTML form, its query string as a
//! struct. Each refusal is an [`HttpError`] with a fixed message, ready to return with `?`:
//! 415 for a body of the wrong media type, 400 for one that does not decode. The messages
//! never repeat the input (serde's own messages can quote it); JSON errors carry only the
//! kind of error and its line and column.
//!
//! The `Request` methods are thin: the media-type check and the decoding are plain functions
//! of bytes, tested here without a connection.

use serde::de::DeserializeOwned;

use super::request::Request;
use super::response::HttpError;
use super::status::Status;

impl Request<'_> {
    /// The body as JSON, deserialised into `T`. 415 unless `Content-Type` is
    /// `application/json` or `application/<something>+json` (parameters such as
    /// `; charset=utf-8` allowed, case-insensitive); 400 if the body is not JSON of `T`'s shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        require_type(self.header("content-type"), MediaType::Json)?;
        decode_json(self.body())
    }

    /// The body as an `application/x-www-form-urlencoded` form (what an HTML `<form>` posts),
    /// deserialised into `T`. 415 for another `Content-Type`; 400 if it does not decode.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        require_type(self.header("content-type"), MediaType::Form)?;
        decode_form(self.body())
    }

    /// The whole query string (`?page=2&sort=name`), percent-decoded and deserialised into
    /// `T`; no query is the empty one. 400 if it does not decode (a required field missing,
    /// a value of the wrong type). For a single parameter, see `query_as`.
    pub fn query_into<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        decode_query(self.query().unwrap_or(""))
    }
}

/// The body types the extractors accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaType {
    /// `application/json` or `application/*+json` (RFC 6839 structured syntax suffix).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// 415 unless `content_type` (the header's value, if any) names `want`.
fn require_type(content_type: Option<&str>, want: MediaType) -> Result<(), HttpError> {
    if content_type.is_some_and(|value| is_media_type(value, want)) {
        return Ok(());
    }
    let message = match want {
        MediaType::Json => "expected a body with Content-Type: application/json",
        MediaType::Form => "expected a body with Content-Type: application/x-www-form-urlencoded",
    };
    Err(HttpError::new(Status::UNSUPPORTED_MEDIA_TYPE, message))
}

/// Does the `Content-Type` value `value` (RFC 9110 §8.3.1: `type/subtype *( OWS ";" OWS
/// parameter )`) name `want`? Type and subtype compare case-insensitively; parameters are
/// ignored.
fn is_media_type(value: &str, want: MediaType) -> bool {
    let essence = value.split(';').next().unwrap_or("");
    let Some((kind, subtype)) = essence.trim_matches([' ', '\t']).split_once('/') else {
        return false;
    };
    if !kind.eq_ignore_ascii_case("application") {
        return false;
    }
    match want {
        MediaType::Json => {
            let suffixed = subtype.rsplit_once('+').is_some_and(|(name, suffix)| {
                !name.is_empty() && suffix.eq_ignore_ascii_case("json")
            });
            suffixed || subtype.eq_ignore_ascii_case("json")
        }
        MediaType::Form => subtype.eq_ignore_ascii_case("x-www-form-urlencoded"),
    }
}

/// Deserialises a JSON body; a failure is 400 naming the kind of error and where it is.
fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|err| {
        use serde_json::error::Category;
        let what = match err.classify() {
            Category::Data => "JSON body does not have the expected fields and types",
            Category::Eof => "JSON body ends early",
            Category::Syntax | Category::Io => "malformed JSON body",
        };
        let (line, column) = (err.line(), err.column());
        HttpError::bad_request(format!("{what} (line {line}, column {column})"))
    })
}

/// Deserialises a form body; a failure is 400 with a fixed message.
fn decode_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        HttpError::bad_request("malformed form body, or a field is missing or of the wrong type")
    })
}

/// Deserialises a raw (still percent-encoded) query string; a failure is 400, fixed message.
fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, HttpError> {
    serde_urlencoded::from_str(query).map_err(|_| {
        HttpError::bad_request(
            "malformed query string, or a parameter is missing or of the wrong type",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        id: u64,
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Page {
        page: u32,
        sort: Option<String>,
    }

    fn status<T>(result: Result<T, HttpError>) -> Status {
        match result {
            Ok(_) => Status::OK,
            Err(err) => err.status,
        }
    }

    #[test]
    fn json_types_with_parameters_and_any_case_are_json() {
        for value in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            " application/json ; foo=bar",
            "application/problem+json",
            "application/vnd.api+JSON; ext=x",
        ] {
            assert!(is_media_type(value, MediaType::Json), "{value}");
            assert_eq!(
                require_type(Some(value), MediaType::Json),
                Ok(()),
                "{value}"
            );
        }
    }

    #[test]
    fn other_types_are_not_json() {
        for value in [
            "",
            "json",
            "text/json",
            "text/plain",
            "application/jsonx",
            "application/+json",
            "application/json-seq",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml+json/x",
        ] {
            assert!(!is_media_type(value, MediaType::Json), "{value}");
        }
    }

    #[test]
    fn form_type_is_matched_with_parameters_and_any_case() {
        for value in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded; charset=utf-8",
        ] {
            assert!(is_media_type(value, MediaType::Form), "{value}");
        }
        for value in [
            "application/json",
            "multipart/form-data",
            "x-www-form-urlencoded",
        ] {
            assert!(!is_media_type(value, MediaType::Form), "{value}");
        }
    }

    #[test]
    fn a_wrong_or_missing_content_type_is_415() {
        for (value, want) in [
            (None, MediaType::Json),
            (Some("text/plain"), MediaType::Json),
            (Some("application/json"), MediaType::Form),
            (None, MediaType::Form),
        ] {
            let err = require_type(value, want).expect_err("refused");
            assert_eq!(err.status, Status::UNSUPPORTED_MEDIA_TYPE, "{value:?}");
        }
    }

    #[test]
    fn json_bodies_decode_into_the_type() {
        let user: User = decode_json(br#"{"id": 7, "name": "Ada"}"#).expect("valid");
        assert_eq!(
            user,
            User {
                id: 7,
                name: "Ada".into()
            }
        );
    }

    #[test]
    fn bad_json_is_400_naming_the_kind_and_place_but_not_the_input() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"id": 7, "name": "SECRET""#,
                "JSON body ends early (line 1",
            ),
            (
                b"{\n  \"id\": SECRET}",
                "malformed JSON body (line 2, column 9)",
            ),
            (
                br#"{"id": "SECRET", "name": "x"}"#,
                "expected fields and types (line 1",
            ),
            (b"", "JSON body ends early (line 1, column 0)"),
        ];
        for (body, want) in cases {
            let err = decode_json::<User>(body).expect_err("bad JSON");
            assert_eq!(err.status, Status::BAD_REQUEST);
            assert!(err.message.contains(want), "{}", err.message);
            assert!(!err.message.contains("SECRET"), "{}", err.message);
        }
    }

    #[test]
    fn forms_decode_percent_and_plus() {
        let user: User = decode_form(b"id=3&name=Ada+L%C3%B6v").expect("valid");
        assert_eq!(
            user,
            User {
                id: 3,
                name: "Ada Löv".into()
            }
        );
    }

    #[test]
    fn bad_forms_are_400_without_the_input() {
        for body in [&b"id=SECRET&name=x"[..], b"name=SECRET", b"id=1"] {
            let err = decode_form::<User>(body).expect_err("bad form");
            assert_eq!(err.status, Status::BAD_REQUEST);
            assert!(!err.message.contains("SECRET"), "{}", err.message);
        }
    }

    #[test]
    fn query_strings_decode_whole() {
        let page: Page = decode_query("page=2&sort=na%20me").expect("valid");
        assert_eq!(
            page,
            Page {
                page: 2,
                sort: Some("na me".into())
            }
        );
        let page: Page = decode_query("page=1").expect("valid");
        assert_eq!(page.sort, None);
        assert_eq!(
            status(decode_query::<Page>("page=SECRET")),
            Status::BAD_REQUEST
        );
        assert_eq!(status(decode_query::<Page>("")), Status::BAD_REQUEST);
        let err = decode_query::<Page>("page=SECRET").expect_err("bad");
        assert!(!err.message.contains("SECRET"));
    }
}
