//! Status codes and their reason phrases (RFC 9110 §15).
//!
//! Every code RFC 9110 defines has a named constant, plus the ones of RFC 6585 (428, 429, 431,
//! 511) and RFC 7725 (451). Where the RFC renamed a code, both names exist and are equal
//! (`PAYLOAD_TOO_LARGE == CONTENT_TOO_LARGE`).

/// An HTTP status code. Construct with the named constants or `Status(code)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    // 1xx: Informational (RFC 9110 §15.2).
    /// 100 Continue.
    pub const CONTINUE: Status = Status(100);
    /// 101 Switching Protocols.
    pub const SWITCHING_PROTOCOLS: Status = Status(101);

    // 2xx: Successful (RFC 9110 §15.3).
    /// 200 OK.
    pub const OK: Status = Status(200);
    /// 201 Created.
    pub const CREATED: Status = Status(201);
    /// 202 Accepted.
    pub const ACCEPTED: Status = Status(202);
    /// 203 Non-Authoritative Information.
    pub const NON_AUTHORITATIVE_INFORMATION: Status = Status(203);
    /// 204 No Content.
    pub const NO_CONTENT: Status = Status(204);
    /// 205 Reset Content.
    pub const RESET_CONTENT: Status = Status(205);
    /// 206 Partial Content.
    pub const PARTIAL_CONTENT: Status = Status(206);

    // 3xx: Redirection (RFC 9110 §15.4).
    /// 300 Multiple Choices.
    pub const MULTIPLE_CHOICES: Status = Status(300);
    /// 301 Moved Permanently.
    pub const MOVED_PERMANENTLY: Status = Status(301);
    /// 302 Found.
    pub const FOUND: Status = Status(302);
    /// 303 See Other.
    pub const SEE_OTHER: Status = Status(303);
    /// 304 Not Modified.
    pub const NOT_MODIFIED: Status = Status(304);
    /// 305 Use Proxy (deprecated by RFC 9110 §15.4.6; kept for completeness).
    pub const USE_PROXY: Status = Status(305);
    /// 307 Temporary Redirect.
    pub const TEMPORARY_REDIRECT: Status = Status(307);
    /// 308 Permanent Redirect.
    pub const PERMANENT_REDIRECT: Status = Status(308);

    // 4xx: Client error (RFC 9110 §15.5).
    /// 400 Bad Request.
    pub const BAD_REQUEST: Status = Status(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Status = Status(401);
    /// 402 Payment Required.
    pub const PAYMENT_REQUIRED: Status = Status(402);
    /// 403 Forbidden.
    pub const FORBIDDEN: Status = Status(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Status = Status(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 406 Not Acceptable.
    pub const NOT_ACCEPTABLE: Status = Status(406);
    /// 407 Proxy Authentication Required.
    pub const PROXY_AUTHENTICATION_REQUIRED: Status = Status(407);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 409 Conflict.
    pub const CONFLICT: Status = Status(409);
    /// 410 Gone.
    pub const GONE: Status = Status(410);
    /// 411 Length Required.
    pub const LENGTH_REQUIRED: Status = Status(411);
    /// 412 Precondition Failed.
    pub const PRECONDITION_FAILED: Status = Status(412);
    /// 413 Content Too Large (the RFC 7231 name; [`Self::CONTENT_TOO_LARGE`] is the same code).
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    /// 413 Content Too Large (RFC 9110's name for [`Self::PAYLOAD_TOO_LARGE`]).
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    /// 414 URI Too Long.
    pub const URI_TOO_LONG: Status = Status(414);
    /// 415 Unsupported Media Type.
    pub const UNSUPPORTED_MEDIA_TYPE: Status = Status(415);
    /// 416 Range Not Satisfiable.
    pub const RANGE_NOT_SATISFIABLE: Status = Status(416);
    /// 417 Expectation Failed.
    pub const EXPECTATION_FAILED: Status = Status(417);
    /// 421 Misdirected Request.
    pub const MISDIRECTED_REQUEST: Status = Status(421);
    /// 422 Unprocessable Content.
    pub const UNPROCESSABLE_CONTENT: Status = Status(422);
    /// 426 Upgrade Required.
    pub const UPGRADE_REQUIRED: Status = Status(426);
    /// 428 Precondition Required (RFC 6585).
    pub const PRECONDITION_REQUIRED: Status = Status(428);
    /// 429 Too Many Requests (RFC 6585).
    pub const TOO_MANY_REQUESTS: Status = Status(429);
    /// 431 Request Header Fields Too Large (RFC 6585; [`Self::REQUEST_HEADER_FIELDS_TOO_LARGE`] is the same code).
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    /// 431 Request Header Fields Too Large (RFC 6585's name for [`Self::HEADERS_TOO_LARGE`]).
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Status = Status(431);
    /// 451 Unavailable For Legal Reasons (RFC 7725).
    pub const UNAVAILABLE_FOR_LEGAL_REASONS: Status = Status(451);

    // 5xx: Server error (RFC 9110 §15.6).
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Status = Status(501);
    /// 502 Bad Gateway.
    pub const BAD_GATEWAY: Status = Status(502);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 504 Gateway Timeout.
    pub const GATEWAY_TIMEOUT: Status = Status(504);
    /// 505 HTTP Version Not Supported ([`Self::HTTP_VERSION_NOT_SUPPORTED`] is the same code).
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);
    /// 505 HTTP Version Not Supported (RFC 9110's name for [`Self::VERSION_NOT_SUPPORTED`]).
    pub const HTTP_VERSION_NOT_SUPPORTED: Status = Status(505);
    /// 511 Network Authentication Required (RFC 6585).
    pub const NETWORK_AUTHENTICATION_REQUIRED: Status = Status(511);

    /// The numeric code, e.g. `404`.
    pub fn code(self) -> u16 {
        self.0
    }

    /// Statuses that must not carry a body (RFC 9110 §6.4.1).
    pub fn allows_body(self) -> bool {
        !matches!(self.0, 100..=199 | 204 | 304)
    }

    /// The reason phrase for the status line, e.g. "Not Found"; "Unknown" for a code this
    /// file does not name (the phrase is informational only: RFC 9110 §15).
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            101 => "Switching Protocols",
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            203 => "Non-Authoritative Information",
            204 => "No Content",
            205 => "Reset Content",
            206 => "Partial Content",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Found",
            303 => "See Other",
            304 => "Not Modified",
            305 => "Use Proxy",
            307 => "Temporary Redirect",
            308 => "Permanent Redirect",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            409 => "Conflict",
            410 => "Gone",
            411 => "Length Required",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Range Not Satisfiable",
            417 => "Expectation Failed",
            421 => "Misdirected Request",
            422 => "Unprocessable Content",
            426 => "Upgrade Required",
            428 => "Precondition Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            451 => "Unavailable For Legal Reasons",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            505 => "HTTP Version Not Supported",
            511 => "Network Authentication Required",
            _ => "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    /// Every named constant with its code and reason phrase.
    fn named() -> Vec<(Status, u16, &'static str)> {
        vec![
            (Status::CONTINUE, 100, "Continue"),
            (Status::SWITCHING_PROTOCOLS, 101, "Switching Protocols"),
            (Status::OK, 200, "OK"),
            (Status::CREATED, 201, "Created"),
            (Status::ACCEPTED, 202, "Accepted"),
            (
                Status::NON_AUTHORITATIVE_INFORMATION,
                203,
                "Non-Authoritative Information",
            ),
            (Status::NO_CONTENT, 204, "No Content"),
            (Status::RESET_CONTENT, 205, "Reset Content"),
            (Status::PARTIAL_CONTENT, 206, "Partial Content"),
            (Status::MULTIPLE_CHOICES, 300, "Multiple Choices"),
            (Status::MOVED_PERMANENTLY, 301, "Moved Permanently"),
            (Status::FOUND, 302, "Found"),
            (Status::SEE_OTHER, 303, "See Other"),
            (Status::NOT_MODIFIED, 304, "Not Modified"),
            (Status::USE_PROXY, 305, "Use Proxy"),
            (Status::TEMPORARY_REDIRECT, 307, "Temporary Redirect"),
            (Status::PERMANENT_REDIRECT, 308, "Permanent Redirect"),
            (Status::BAD_REQUEST, 400, "Bad Request"),
            (Status::UNAUTHORIZED, 401, "Unauthorized"),
            (Status::PAYMENT_REQUIRED, 402, "Payment Required"),
            (Status::FORBIDDEN, 403, "Forbidden"),
            (Status::NOT_FOUND, 404, "Not Found"),
            (Status::METHOD_NOT_ALLOWED, 405, "Method Not Allowed"),
            (Status::NOT_ACCEPTABLE, 406, "Not Acceptable"),
            (
                Status::PROXY_AUTHENTICATION_REQUIRED,
                407,
                "Proxy Authentication Required",
            ),
            (Status::REQUEST_TIMEOUT, 408, "Request Timeout"),
            (Status::CONFLICT, 409, "Conflict"),
            (Status::GONE, 410, "Gone"),
            (Status::LENGTH_REQUIRED, 411, "Length Required"),
            (Status::PRECONDITION_FAILED, 412, "Precondition Failed"),
            (Status::PAYLOAD_TOO_LARGE, 413, "Content Too Large"),
            (Status::CONTENT_TOO_LARGE, 413, "Content Too Large"),
            (Status::URI_TOO_LONG, 414, "URI Too Long"),
            (
                Status::UNSUPPORTED_MEDIA_TYPE,
                415,
                "Unsupported Media Type",
            ),
            (Status::RANGE_NOT_SATISFIABLE, 416, "Range Not Satisfiable"),
            (Status::EXPECTATION_FAILED, 417, "Expectation Failed"),
            (Status::MISDIRECTED_REQUEST, 421, "Misdirected Request"),
            (Status::UNPROCESSABLE_CONTENT, 422, "Unprocessable Content"),
            (Status::UPGRADE_REQUIRED, 426, "Upgrade Required"),
            (Status::PRECONDITION_REQUIRED, 428, "Precondition Required"),
            (Status::TOO_MANY_REQUESTS, 429, "Too Many Requests"),
            (
                Status::HEADERS_TOO_LARGE,
                431,
                "Request Header Fields Too Large",
            ),
            (
                Status::REQUEST_HEADER_FIELDS_TOO_LARGE,
                431,
                "Request Header Fields Too Large",
            ),
            (
                Status::UNAVAILABLE_FOR_LEGAL_REASONS,
                451,
                "Unavailable For Legal Reasons",
            ),
            (Status::INTERNAL_SERVER_ERROR, 500, "Internal Server Error"),
            (Status::NOT_IMPLEMENTED, 501, "Not Implemented"),
            (Status::BAD_GATEWAY, 502, "Bad Gateway"),
            (Status::SERVICE_UNAVAILABLE, 503, "Service Unavailable"),
            (Status::GATEWAY_TIMEOUT, 504, "Gateway Timeout"),
            (
                Status::VERSION_NOT_SUPPORTED,
                505,
                "HTTP Version Not Supported",
            ),
            (
                Status::HTTP_VERSION_NOT_SUPPORTED,
                505,
                "HTTP Version Not Supported",
            ),
            (
                Status::NETWORK_AUTHENTICATION_REQUIRED,
                511,
                "Network Authentication Required",
            ),
        ]
    }

    #[test]
    fn every_named_constant_has_its_code_and_rfc_reason() {
        for (status, code, reason) in named() {
            assert_eq!(status.code(), code);
            assert_eq!(status.reason(), reason, "{code}");
        }
    }

    #[test]
    fn every_rfc_9110_code_is_named() {
        let rfc_9110 = [
            100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308,
        ]
        .into_iter()
        .chain(400..=417)
        .chain([421, 422, 426])
        .chain(500..=505);
        let named: Vec<u16> = named().iter().map(|&(s, _, _)| s.code()).collect();
        for code in rfc_9110 {
            assert!(named.contains(&code), "{code} has no constant");
            assert_ne!(Status(code).reason(), "Unknown", "{code}");
        }
    }

    #[test]
    fn renamed_codes_keep_both_names() {
        assert_eq!(Status::PAYLOAD_TOO_LARGE, Status::CONTENT_TOO_LARGE);
        assert_eq!(
            Status::HEADERS_TOO_LARGE,
            Status::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            Status::VERSION_NOT_SUPPORTED,
            Status::HTTP_VERSION_NOT_SUPPORTED
        );
    }

    #[test]
    fn unnamed_codes_are_unknown() {
        assert_eq!(Status(306).reason(), "Unknown");
        assert_eq!(Status(418).reason(), "Unknown");
        assert_eq!(Status(599).reason(), "Unknown");
    }

    #[test]
    fn bodiless_statuses() {
        assert!(!Status::CONTINUE.allows_body());
        assert!(!Status::NO_CONTENT.allows_body());
        assert!(!Status::NOT_MODIFIED.allows_body());
        assert!(Status::OK.allows_body());
    }
}
