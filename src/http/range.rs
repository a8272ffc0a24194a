//! Single byte-range requests (RFC 9110 §14), pure: what `Range` and `If-Range` ask of a
//! representation of known length.
//!
//! Like nginx without `max_ranges` set low, a request for *several* ranges is not refused;
//! unlike nginx, it gets the whole representation (200), never `multipart/byteranges`:
//! RFC 9110 §14.2 lets a server ignore `Range`, and a client must cope with a 200.

use super::conditional::{Validators, http_date_secs};

/// What to send of a representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// All of it: no `Range`, one that does not parse, several ranges, a failed `If-Range`,
    /// or an empty representation.
    Full,
    /// 206 with bytes `start..=end` (`Content-Range: bytes start-end/len`).
    Partial { start: u64, end: u64 },
    /// 416 (`Content-Range: bytes */len`): the one range starts past the end.
    Unsatisfiable,
}

/// Decides what a GET (or HEAD) with `range` and `if_range` gets of a representation of
/// `len` bytes with `validators`.
pub fn answer(
    range: Option<&str>,
    if_range: Option<&str>,
    validators: &Validators,
    len: u64,
) -> RangeAnswer {
    let Some(range) = range else {
        return RangeAnswer::Full;
    };
    if let Some(condition) = if_range
        && !if_range_holds(condition, validators)
    {
        return RangeAnswer::Full;
    }
    match parse_single(range) {
        Some(spec) if len > 0 => spec.resolve(len),
        _ => RangeAnswer::Full,
    }
}

/// `If-Range` (RFC 9110 §13.1.5): an entity tag compared strongly, or an HTTP-date equal to
/// `Last-Modified`. Anything else does not hold.
fn if_range_holds(condition: &str, validators: &Validators) -> bool {
    let condition = condition.trim();
    if condition.starts_with('"') || condition.starts_with("W/") {
        // One entity tag, compared strongly: ours is strong, so the very same text.
        return condition == validators.etag;
    }
    http_date_secs(condition) == Some(validators.modified_secs)
}

/// One range-spec of a `bytes` range set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last` (inclusive; `last` clamps to the end).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Spec {
    fn resolve(self, len: u64) -> RangeAnswer {
        match self {
            Spec::From { first, .. } if first >= len => RangeAnswer::Unsatisfiable,
            Spec::From { first, last } => RangeAnswer::Partial {
                start: first,
                end: last.map_or(len - 1, |last| last.min(len - 1)),
            },
            Spec::Suffix(0) => RangeAnswer::Unsatisfiable,
            Spec::Suffix(n) => RangeAnswer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        }
    }
}

/// `bytes=<one range-spec>` (unit case-insensitive, empty list elements and OWS allowed);
/// `None` for another unit, bad syntax, or more than one range.
fn parse_single(field: &str) -> Option<Spec> {
    let (unit, set) = field.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    match (first, last) {
        ("", n) => Some(Spec::Suffix(digits(n)?)),
        (first, "") => Some(Spec::From {
            first: digits(first)?,
            last: None,
        }),
        (first, last) => {
            let (first, last) = (digits(first)?, digits(last)?);
            (first <= last).then_some(Spec::From {
                first,
                last: Some(last),
            })
        }
    }
}

/// 1*DIGIT, saturating at `u64::MAX` (a larger number still means "past the end" or "to
/// the end"); no sign, no space.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators {
        Validators::for_file(UNIX_EPOCH + Duration::from_secs(1_700_000_000), 100)
    }

    fn partial(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Partial { start, end }
    }

    #[test]
    fn single_ranges_resolve_against_the_length() {
        use RangeAnswer::{Full, Unsatisfiable};
        for (field, want) in [
            ("bytes=0-9", partial(0, 9)),
            ("bytes=10-", partial(10, 99)),
            ("bytes=-10", partial(90, 99)),
            ("bytes=-1000", partial(0, 99)),
            ("bytes=90-1000", partial(90, 99)),
            ("bytes=99-99", partial(99, 99)),
            ("bytes=0-18446744073709551616", partial(0, 99)), // saturates to the end
            ("BYTES = 5-6", Full),                            // no space around '='
            ("Bytes=5-6", partial(5, 6)),
            ("bytes= 5-6 ,", partial(5, 6)),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-200", Unsatisfiable),
            ("bytes=99999999999999999999-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-4", Full), // last < first: invalid, ignored
            ("bytes=0-1,5-6", Full),
            ("bytes=0-1, 200-300", Full),
            ("bytes=+1-2", Full),
            ("bytes=1 -2", Full),
            ("bytes=", Full),
            ("bytes=-", Full),
            ("items=0-1", Full),
            ("0-1", Full),
        ] {
            assert_eq!(answer(Some(field), None, &v(), 100), want, "{field:?}");
        }
        assert_eq!(answer(None, None, &v(), 100), Full);
        assert_eq!(answer(Some("bytes=0-0"), None, &v(), 0), Full);
    }

    #[test]
    fn if_range_must_match_strongly_or_equal_the_date() {
        let etag = v().etag;
        let date = v().last_modified();
        let range = Some("bytes=0-0");
        assert_eq!(answer(range, Some(&etag), &v(), 100), partial(0, 0));
        assert_eq!(answer(range, Some(&date), &v(), 100), partial(0, 0));
        let weak = format!("W/{etag}");
        for stale in [
            "\"other\"",
            weak.as_str(),
            "Tue, 14 Nov 2023 22:13:21 GMT",
            "Tue, 14 Nov 2023 22:13:19 GMT",
            "garbage",
            "*",
        ] {
            assert_eq!(
                answer(range, Some(stale), &v(), 100),
                RangeAnswer::Full,
                "{stale:?}"
            );
        }
    }
}
