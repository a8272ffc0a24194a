//! Conditional requests (RFC 9110 §13), pure: a representation's validators, and what the
//! `If-*` fields of a request make of them. Static files use it (`files/`); so can any
//! handler that knows an entity tag and a modification time.
//!
//! The order of evaluation is RFC 9110 §13.2.2's, numbered here as there:
//! 1. `If-Match` present: false → 412;
//! 2. else `If-Unmodified-Since` present (and a valid date): false → 412;
//! 3. `If-None-Match` present: false (a tag matches) → 304 for GET and HEAD, else 412;
//! 4. else, for GET and HEAD, `If-Modified-Since` (a valid date): false → 304;
//! 5. otherwise the request proceeds (and `Range`, with `If-Range`, is looked at:
//!    `http::range`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of a representation: a strong entity tag and the
/// modification time, whole seconds since the epoch (what an HTTP-date can say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The entity tag with its quotes, e.g. `"65a1b2c3.1f-1000"` (strong: no `W/`).
    pub etag: String,
    /// `Last-Modified`, seconds since the epoch.
    pub modified_secs: u64,
}

impl Validators {
    /// nginx's form (`"mtime-length"` in hex), with the mtime's nanoseconds too when it has
    /// any: an edit in the same second that keeps the length still changes the tag.
    pub fn for_file(modified: SystemTime, len: u64) -> Validators {
        let since = modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
        let etag = match nanos {
            0 => format!("\"{secs:x}-{len:x}\""),
            _ => format!("\"{secs:x}.{nanos:x}-{len:x}\""),
        };
        Validators {
            etag,
            modified_secs: secs,
        }
    }

    /// `Last-Modified` as an IMF-fixdate.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.modified_secs))
    }
}

/// The `If-*` fields of one request, raw (absent ones `None`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    /// The method is GET or HEAD (a 304 is only for those).
    pub get_or_head: bool,
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

/// What the preconditions decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Answer as if no condition were there (a `Range` may still apply).
    Proceed,
    /// 304 Not Modified: the client's copy is current.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order (module doc).
pub fn evaluate(conditions: &Conditions<'_>, validators: &Validators) -> Precondition {
    if let Some(field) = conditions.if_match {
        if !any_tag_matches(field, &validators.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = conditions.if_unmodified_since.and_then(http_date_secs)
        && validators.modified_secs > date
    {
        return Precondition::Failed;
    }
    if let Some(field) = conditions.if_none_match {
        if any_tag_matches(field, &validators.etag, Comparison::Weak) {
            return match conditions.get_or_head {
                true => Precondition::NotModified,
                false => Precondition::Failed,
            };
        }
    } else if conditions.get_or_head
        && let Some(date) = conditions.if_modified_since.and_then(http_date_secs)
        && validators.modified_secs <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// How two entity tags are compared (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Both strong and the same opaque tag (`If-Match`, `If-Range`).
    Strong,
    /// The same opaque tag, `W/` or not (`If-None-Match`).
    Weak,
}

/// Does `field` (`*`, or a comma-separated list of entity tags) match `ours`, a strong tag
/// with its quotes? A list that does not parse matches nothing.
pub fn any_tag_matches(field: &str, ours: &str, comparison: Comparison) -> bool {
    if field.trim() == "*" {
        return true;
    }
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    let mut rest = field;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let Some((weak, tag, after)) = next_tag(rest) else {
            return false;
        };
        let usable = comparison == Comparison::Weak || !weak;
        if usable && tag == ours {
            return true;
        }
        rest = after;
    }
}

/// One `entity-tag` at the start of `s`: (weak?, the quoted opaque tag, what follows).
fn next_tag(s: &str) -> Option<(bool, &str, &str)> {
    let (weak, s) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = s.strip_prefix('"')?;
    let close = inner.find('"')?;
    let tag = &s[..close + 2];
    // etagc = %x21 / %x23-7E / obs-text: no space, no control byte, no DQUOTE.
    if !tag[1..tag.len() - 1]
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    Some((weak, tag, &s[close + 2..]))
}

/// An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) in seconds since
/// the epoch; `None` if it is not one (the field is then ignored, RFC 9110 §13.1.3).
pub fn http_date_secs(value: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        Validators::for_file(UNIX_EPOCH + Duration::from_secs(1_700_000_000), 4096)
    }

    fn get<'a>() -> Conditions<'a> {
        Conditions {
            get_or_head: true,
            ..Conditions::default()
        }
    }

    #[test]
    fn etag_is_nginx_form_with_nanoseconds_when_there_are_any() {
        assert_eq!(validators().etag, "\"6553f100-1000\"");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 0x1f);
        assert_eq!(Validators::for_file(t, 1).etag, "\"6553f100.1f-1\"");
        assert_eq!(
            validators().last_modified(),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn tag_lists_match_weakly_or_strongly() {
        let ours = "\"a-1\"";
        for (field, weak, strong) in [
            ("\"a-1\"", true, true),
            ("W/\"a-1\"", true, false),
            ("\"x\", \"a-1\"", true, true),
            ("\"x\",W/\"a-1\"", true, false),
            ("\"a,b\", \"a-1\"", true, true), // a comma inside a tag is not a separator
            ("\"x\"", false, false),
            ("*", true, true),
            (" * ", true, true),
            ("a-1", false, false),              // no quotes: not an entity tag
            ("\"a-1", false, false),            // unterminated
            ("\"a 1\", \"a-1\"", false, false), // a space in a tag: the list is malformed
            ("", false, false),
            (",,\"a-1\",", true, true),
        ] {
            assert_eq!(
                any_tag_matches(field, ours, Comparison::Weak),
                weak,
                "weak {field:?}"
            );
            assert_eq!(
                any_tag_matches(field, ours, Comparison::Strong),
                strong,
                "strong {field:?}"
            );
        }
    }

    #[test]
    fn if_none_match_gives_304_on_get_and_412_otherwise() {
        let v = validators();
        let mut c = get();
        c.if_none_match = Some("\"6553f100-1000\"");
        assert_eq!(evaluate(&c, &v), Precondition::NotModified);
        c.get_or_head = false;
        assert_eq!(evaluate(&c, &v), Precondition::Failed);
        c.if_none_match = Some("\"other\"");
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        let v = validators();
        let mut c = get();
        c.if_modified_since = Some("Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(evaluate(&c, &v), Precondition::NotModified);
        c.if_modified_since = Some("Wed, 15 Nov 2023 00:00:00 GMT");
        assert_eq!(evaluate(&c, &v), Precondition::NotModified);
        c.if_modified_since = Some("Tue, 14 Nov 2023 22:13:19 GMT");
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
        c.if_modified_since = Some("not a date");
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
        // A non-matching If-None-Match wins over a date that would say "not modified".
        c.if_modified_since = Some("Wed, 15 Nov 2023 00:00:00 GMT");
        c.if_none_match = Some("\"other\"");
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
        // Only for GET and HEAD.
        c.if_none_match = None;
        c.get_or_head = false;
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_and_if_unmodified_since_fail_with_412() {
        let v = validators();
        let mut c = get();
        c.if_match = Some("W/\"6553f100-1000\""); // weak never matches strongly
        assert_eq!(evaluate(&c, &v), Precondition::Failed);
        c.if_match = Some("\"6553f100-1000\"");
        c.if_unmodified_since = Some("Mon, 01 Jan 2001 00:00:00 GMT"); // ignored: If-Match
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
        c.if_match = None;
        assert_eq!(evaluate(&c, &v), Precondition::Failed);
        c.if_unmodified_since = Some("Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
    }
}
