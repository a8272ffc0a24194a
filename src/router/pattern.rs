//! Route patterns as registration sees them: parsing `/users/:id/*rest` into segments, the
//! checks on methods, names and nest prefixes, and the errors that say what to write instead.

use crate::http::params::MAX_PARAMS;

/// Why a pattern or method was refused at registration; each message names the route and says
/// what to write instead.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// The pattern does not start with `/`: write `/` and the pattern.
    #[error("route pattern `{pattern}` must start with '/': write `/{pattern}`")]
    NoLeadingSlash {
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// The pattern holds a space, control, non-ASCII, `?` or `#` byte, which no request path
    /// holds: percent-encode it, and leave any query string out.
    #[error(
        "route pattern `{pattern}` contains a space, control, non-ASCII, '?' or '#' character, \
         which a request path never holds: percent-encode it, and leave any query string out"
    )]
    InvalidChar {
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// The pattern has an empty segment (`//`): remove the extra `/` (only a trailing `/` is
    /// allowed).
    #[error(
        "route pattern `{pattern}` has an empty segment (`//`): remove the extra '/' \
         (only a trailing '/' is allowed)"
    )]
    EmptySegment {
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// A `:` or `*` with no name after it: write e.g. `/users/:id` or `/files/*path`.
    #[error(
        "route pattern `{pattern}`: ':' and '*' must be followed by a name, \
         e.g. `/users/:id` or `/files/*path`"
    )]
    EmptyParamName {
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// A parameter name holding more than ASCII letters, digits and `_`, often text after it
    /// in its segment: make the parameter the whole segment (`/files/:name`).
    #[error(
        "route pattern `{pattern}`: parameter name `{name}` may hold only ASCII letters, digits \
         and '_', and a parameter is a whole segment (`/files/:name`, not `/files/:name.txt`)"
    )]
    BadParamName {
        /// The pattern, with any nest prefix in front.
        pattern: String,
        /// All of the segment after its `:` or `*` (`name.txt` in `/files/:name.txt`).
        name: String,
    },
    /// A `*wildcard` before the last segment: use `:name` to match a single segment.
    #[error(
        "route pattern `{pattern}`: `*{name}` must be the last segment; \
         use `:{name}` to match a single segment"
    )]
    WildcardNotLast {
        /// The pattern, with any nest prefix in front.
        pattern: String,
        /// The wildcard's name, without its `*`.
        name: String,
    },
    /// One parameter name used twice in a pattern: give each parameter its own.
    #[error("route pattern `{pattern}` uses the name `{name}` twice: give each parameter its own")]
    DuplicateParam {
        /// The pattern, with any nest prefix in front.
        pattern: String,
        /// The repeated name, without its `:` or `*`.
        name: String,
    },
    /// More parameters than a request can hold (8): capture the tail with one `*rest` and
    /// split it in the handler.
    #[error(
        "route pattern `{pattern}` has more than {max} parameters: \
         capture the tail with one `*rest` and split it in the handler",
        max = MAX_PARAMS
    )]
    TooManyParams {
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// A parameter where an earlier route has one of another name: one position takes one
    /// name, so write the earlier one here too.
    #[error(
        "route pattern `{pattern}` has `{name}` where an earlier route has `{existing}`: \
         one position takes one name, so write `{existing}` here too"
    )]
    ConflictingParam {
        /// The pattern, with any nest prefix in front.
        pattern: String,
        /// This pattern's parameter at that position, with its sigil (`:user`).
        name: String,
        /// The earlier route's parameter there, with its sigil (`:id`): the name to write.
        existing: String,
    },
    /// A method and pattern registered twice, perhaps by [`Router::nest`] or
    /// [`Router::merge`]: remove one of them.
    /// `method` is `*` for a route registered with `any`.
    ///
    /// [`Router::nest`]: crate::Router::nest
    /// [`Router::merge`]: crate::Router::merge
    #[error("`{method} {pattern}` is registered twice: remove one of them")]
    Duplicate {
        /// The method both routes serve.
        method: String,
        /// The pattern, with any nest prefix in front.
        pattern: String,
    },
    /// A method that is not an HTTP token (empty, or with a space or separator): write one
    /// such as `GET` (methods are case-sensitive).
    #[error(
        "route `{method} {pattern}`: `{method}` is not a method token; write a method such \
         as `GET` (methods are case-sensitive)"
    )]
    BadMethod {
        /// The method as given.
        method: String,
        /// The pattern it was to serve.
        pattern: String,
    },
    /// A [`Router::nest`] prefix that is the root, lacks its leading `/`, ends in `/` or ends
    /// in a `*wildcard`; `fix` says what to write instead.
    ///
    /// [`Router::nest`]: crate::Router::nest
    #[error("nest prefix `{prefix}`: {fix}")]
    BadNestPrefix {
        /// The prefix as given.
        prefix: String,
        /// What to write instead, e.g. `.merge(router)` for the root.
        fix: String,
    },
    /// The router given to [`Router::nest`] has a fallback, which answers for the whole
    /// server: set it on the outer router, or route `prefix/*rest` there.
    ///
    /// [`Router::nest`]: crate::Router::nest
    #[error(
        "the router nested at `{prefix}` has a fallback, but a fallback answers for the whole \
         server: set it on the outer router, or route the rest of the prefix with `{prefix}/*rest`"
    )]
    NestedFallback {
        /// Where the router was to be nested.
        prefix: String,
    },
    /// Both routers given to [`Router::merge`] have a fallback: a server has one, so keep one.
    ///
    /// [`Router::merge`]: crate::Router::merge
    #[error("both merged routers have a fallback: a server has one, so keep one of them")]
    TwoFallbacks,
    /// Both routers nested or merged have a state ([`Router::with_state`]): a server has one,
    /// so put both values in one struct.
    ///
    /// [`Router::with_state`]: crate::Router::with_state
    #[error(
        "both routers have a state (`Router::with_state`): a server has one state, so put \
         both values in one struct"
    )]
    TwoStates,
}

/// A parsed pattern segment; names exclude their `:` or `*`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Segment<'p> {
    Literal(&'p str),
    Param(&'p str),
    Wildcard(&'p str),
}

/// Checks a `Router::nest` prefix: a pattern (`/api`, `/tenants/:tenant`) that nested
/// patterns can follow, so no trailing '/', no `*wildcard`, and not the root.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), RouteError> {
    let refuse = |fix: String| {
        Err(RouteError::BadNestPrefix {
            prefix: prefix.into(),
            fix,
        })
    };
    if prefix.is_empty() || prefix == "/" {
        return refuse("nesting at the root is merging: write `.merge(router)`".into());
    }
    if !prefix.starts_with('/') {
        return refuse(format!("a prefix starts with '/': write `/{prefix}`"));
    }
    if let Some(trimmed) = prefix.strip_suffix('/') {
        return refuse(format!(
            "write `{trimmed}`: the nested patterns bring their own leading '/'"
        ));
    }
    let segments = parse_pattern(prefix)?;
    if let Some(Segment::Wildcard(name)) = segments.last() {
        return refuse(format!(
            "`*{name}` takes the rest of the path, so nothing can follow it; use `:{name}`"
        ));
    }
    Ok(())
}

pub(super) fn check_method(method: &str, pattern: &str) -> Result<(), RouteError> {
    if !method.is_empty() && method.bytes().all(is_tchar) {
        return Ok(());
    }
    Err(RouteError::BadMethod {
        method: method.into(),
        pattern: pattern.into(),
    })
}

pub(super) fn parse_pattern(pattern: &str) -> Result<Vec<Segment<'_>>, RouteError> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(RouteError::NoLeadingSlash {
            pattern: pattern.into(),
        });
    };
    if !pattern
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(RouteError::InvalidChar {
            pattern: pattern.into(),
        });
    }
    let count = rest.split('/').count();
    let segments = rest
        .split('/')
        .enumerate()
        .map(|(i, s)| parse_segment(pattern, s, i + 1 == count))
        .collect::<Result<Vec<_>, _>>()?;
    check_param_names(pattern, &segments)?;
    Ok(segments)
}

fn parse_segment<'p>(pattern: &str, s: &'p str, last: bool) -> Result<Segment<'p>, RouteError> {
    if let Some(name) = s.strip_prefix(':') {
        check_name(pattern, name)?;
        return Ok(Segment::Param(name));
    }
    if let Some(name) = s.strip_prefix('*') {
        check_name(pattern, name)?;
        if !last {
            return Err(RouteError::WildcardNotLast {
                pattern: pattern.into(),
                name: name.into(),
            });
        }
        return Ok(Segment::Wildcard(name));
    }
    if s.is_empty() && !last {
        return Err(RouteError::EmptySegment {
            pattern: pattern.into(),
        });
    }
    Ok(Segment::Literal(s))
}

fn check_name(pattern: &str, name: &str) -> Result<(), RouteError> {
    if name.is_empty() {
        return Err(RouteError::EmptyParamName {
            pattern: pattern.into(),
        });
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(RouteError::BadParamName {
            pattern: pattern.into(),
            name: name.into(),
        });
    }
    Ok(())
}

fn check_param_names(pattern: &str, segments: &[Segment<'_>]) -> Result<(), RouteError> {
    let names: Vec<&str> = segments
        .iter()
        .filter_map(|s| match *s {
            Segment::Param(name) | Segment::Wildcard(name) => Some(name),
            Segment::Literal(_) => None,
        })
        .collect();
    if names.len() > MAX_PARAMS {
        return Err(RouteError::TooManyParams {
            pattern: pattern.into(),
        });
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(RouteError::DuplicateParam {
                pattern: pattern.into(),
                name: (*name).into(),
            });
        }
    }
    Ok(())
}

/// RFC 9110 §5.6.2 `tchar`: what a method token is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
