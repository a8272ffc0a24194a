//! Method + path-pattern routing: a segment tree, no HTTP types, no sockets.
//!
//! A pattern is `/`-separated segments: a literal, `:name` (one non-empty segment) or `*name`
//! (the rest of the path, possibly empty; last segment only). A trailing `/` is an empty literal
//! segment, so `/users` and `/users/` are different routes. Each tree [`Node`] is one segment
//! position: sorted literal children, at most one `:param` child, at most one `*wildcard` child,
//! and, where patterns end, an [`Endpoint`] holding one route per method and the `Allow` value,
//! both built at registration so that `find` never allocates.
//!
//! `find` tries literal, then `:param`, then `*wildcard` at each level and backtracks, so
//! `/a/:x/c` and `/a/b/d` both match. The first endpoint in that order that serves the method
//! wins (`HEAD` falls back to `GET`, and any method without a route of its own falls back to
//! the pattern's [`Routes::add_any`] route); if none does but some matched the path, the
//! answer is 405 with the `Allow` of the first one. Recursion is no deeper than the longest pattern, and each
//! node is visited at most once per lookup, because a node's depth fixes the segment it compares.

use super::pattern::{RouteError, Segment, check_method, parse_pattern};
use crate::http::params::Params;

/// Index of a registered (method, pattern); stable, dense from 0, usable as a cost-table key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteId(pub u32);

/// The outcome of [`Routes::find`].
#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // `NotFound` reads as HTTP's 404, which it becomes
pub enum Found<'r, H> {
    Route {
        handler: &'r H,
        id: RouteId,
        pattern: &'r str,
    },
    /// The path exists for other methods; `allow` is the ready-made Allow header value, e.g.
    /// "GET, HEAD, POST".
    MethodNotAllowed {
        allow: &'r str,
    },
    NotFound,
}

/// The route table: register with [`Routes::add`] at startup, then [`Routes::find`] per request.
#[derive(Debug)]
pub struct Routes<H> {
    root: Node,
    /// Indexed by `RouteId`.
    routes: Vec<Route<H>>,
    endpoints: Vec<Endpoint>,
    /// The endpoints of patterns made of literal segments only, by the pattern after its
    /// leading '/', sorted by `literal_order`: `find` looks a path up here first, one binary
    /// search instead of a walk down the tree (most requests hit such a route).
    statics: Vec<(Box<str>, usize)>,
    /// `statics_of_len[n]`: the range of `statics` whose patterns are `n` bytes long (after
    /// the '/'), so a lookup goes there at once; two binary searches by length were ~100
    /// instructions a request (benches/server_instructions.sh).
    statics_of_len: Vec<(u32, u32)>,
}

/// What [`Routes::method`] says for a route registered with [`Routes::add_any`].
pub const ANY_METHOD: &str = "*";

#[derive(Debug)]
struct Route<H> {
    /// `None` for a route registered with `add_any`.
    method: Option<Box<str>>,
    pattern: Box<str>,
    handler: H,
}

/// Where one pattern ends: its routes by method, and the `Allow` value they make.
#[derive(Debug, Default)]
struct Endpoint {
    methods: Vec<(Box<str>, usize)>,
    /// The `add_any` route: serves every method `methods` (and HEAD→GET) does not.
    any: Option<usize>,
    /// Lists `methods` only: with an `any` route the endpoint never answers 405.
    allow: String,
}

/// One segment position in the tree.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by segment, for binary search.
    literals: Vec<(Box<str>, Node)>,
    param: Option<(Box<str>, Box<Node>)>,
    /// Only `endpoint` is used in a wildcard's node: nothing can follow `*name`.
    wildcard: Option<(Box<str>, Box<Node>)>,
    endpoint: Option<usize>,
}

impl<H> Routes<H> {
    pub fn new() -> Self {
        Self {
            root: Node::default(),
            routes: Vec::new(),
            endpoints: Vec::new(),
            statics: Vec::new(),
            statics_of_len: Vec::new(),
        }
    }

    /// Registers `handler` for `method` (exact, case-sensitive) and `pattern`. A failed call
    /// leaves the table unchanged.
    pub fn add(&mut self, method: &str, pattern: &str, handler: H) -> Result<RouteId, RouteError> {
        check_method(method, pattern)?;
        self.add_route(Some(method), pattern, handler)
    }

    /// Registers `handler` for every method on `pattern`: it serves the methods the pattern
    /// has no route of its own for, `HEAD` only if there is no `GET` either. A failed call
    /// leaves the table unchanged.
    pub fn add_any(&mut self, pattern: &str, handler: H) -> Result<RouteId, RouteError> {
        self.add_route(None, pattern, handler)
    }

    /// Takes the table apart: (method, pattern, handler) in `RouteId` order, method `None`
    /// for an `add_any` route. For `Router::nest` and `Router::merge`, which re-register them.
    pub(crate) fn into_routes(self) -> impl Iterator<Item = (Option<Box<str>>, Box<str>, H)> {
        self.routes
            .into_iter()
            .map(|route| (route.method, route.pattern, route.handler))
    }

    /// `add` (method `Some`, already checked) or `add_any` (`None`).
    fn add_route(
        &mut self,
        method: Option<&str>,
        pattern: &str,
        handler: H,
    ) -> Result<RouteId, RouteError> {
        let segments = parse_pattern(pattern)?;
        self.check_conflicts(method, pattern, &segments)?;
        let index = self.routes.len();
        let id = RouteId(u32::try_from(index).expect("fewer than 2^32 routes fit in memory"));
        let endpoint = self.insert(&segments);
        if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            self.add_static(&pattern[1..], endpoint);
        }
        self.routes.push(Route {
            method: method.map(Into::into),
            pattern: pattern.into(),
            handler,
        });
        let endpoint = &mut self.endpoints[endpoint];
        match method {
            Some(method) => {
                endpoint.methods.push((method.into(), index));
                endpoint.allow = allow_value(&endpoint.methods);
            }
            None => endpoint.any = Some(index),
        }
        Ok(id)
    }

    /// Looks up `path` (starting with '/', no query string) for `method`. `params` is cleared,
    /// then filled on a match. Allocation-free.
    pub fn find<'a>(
        &'a self,
        method: &str,
        path: &'a str,
        params: &mut Params<'a>,
    ) -> Found<'a, H> {
        params.len = 0;
        let Some(rest) = path.strip_prefix('/') else {
            return Found::NotFound; // `*`, absolute-form or empty: never a route
        };
        // A path spelled as an all-literal pattern: the walk below would go down literal
        // children to that pattern's endpoint, the first endpoint it visits, so if that one
        // serves the method, the walk's answer is this one. Otherwise the walk decides.
        if let Some(index) = self.static_route(rest, method) {
            let route = &self.routes[index];
            return Found::Route {
                handler: &route.handler,
                id: RouteId(index as u32), // `add` checked it fits
                pattern: &route.pattern,
            };
        }
        self.walk(method, rest, params)
    }

    /// `find` down the tree: `rest` is the path after its leading '/'.
    fn walk<'a>(&'a self, method: &str, rest: &'a str, params: &mut Params<'a>) -> Found<'a, H> {
        let mut search = Search {
            endpoints: &self.endpoints,
            method,
            params,
            first_match: None,
        };
        match search.node(&self.root, Some(rest)) {
            Some(index) => {
                let route = &self.routes[index];
                Found::Route {
                    handler: &route.handler,
                    id: RouteId(index as u32), // `add` checked it fits
                    pattern: &route.pattern,
                }
            }
            None => match search.first_match {
                Some(endpoint) => Found::MethodNotAllowed {
                    allow: &endpoint.allow,
                },
                None => Found::NotFound,
            },
        }
    }

    /// The route of an all-literal pattern equal to `rest` (the path after its '/') that
    /// serves `method`, if there is one.
    ///
    /// The patterns of `rest`'s length are found by length alone, then compared as bytes: a
    /// binary search by `literal_order` compared the bytes of the hit twice (its last probe
    /// repeats), each a `memcmp` call.
    fn static_route(&self, rest: &str, method: &str) -> Option<usize> {
        let &(from, to) = self.statics_of_len.get(rest.len())?;
        let same = &self.statics[from as usize..to as usize];
        let found = if same.len() <= 4 {
            same.iter().find(|(s, _)| s.as_bytes() == rest.as_bytes())
        } else {
            let at = same.binary_search_by(|(s, _)| s.as_bytes().cmp(rest.as_bytes()));
            at.ok().map(|at| &same[at])
        };
        let endpoint = self.endpoints.get(found?.1)?;
        endpoint.route_for(method, true)
    }

    /// Notes the endpoint of an all-literal pattern (`rest`: after its '/'), once.
    fn add_static(&mut self, rest: &str, endpoint: usize) {
        if let Err(at) = self
            .statics
            .binary_search_by(|(s, _)| literal_order(s, rest))
        {
            self.statics.insert(at, (rest.into(), endpoint));
            self.index_statics_by_len();
        }
    }

    /// Rebuilds `statics_of_len` (at registration: `statics` is sorted by length first).
    fn index_statics_by_len(&mut self) {
        let longest = self.statics.last().map_or(0, |(s, _)| s.len());
        self.statics_of_len = vec![(0, 0); longest + 1];
        for (i, (s, _)) in self.statics.iter().enumerate() {
            let i = i as u32; // `add` checked that route indices fit
            let range = &mut self.statics_of_len[s.len()];
            if range.0 == range.1 {
                *range = (i, i);
            }
            range.1 = i + 1;
        }
    }

    /// The pattern `id` was registered with. Panics if `id` is not from this table.
    pub fn pattern(&self, id: RouteId) -> &str {
        &self.route(id).pattern
    }

    /// The method `id` was registered with ([`ANY_METHOD`] for an `add_any` route). Panics
    /// if `id` is not from this table.
    pub fn method(&self, id: RouteId) -> &str {
        self.route(id).method.as_deref().unwrap_or(ANY_METHOD)
    }

    /// Number of routes; ids run from 0 to `len() - 1`.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn route(&self, id: RouteId) -> &Route<H> {
        usize::try_from(id.0)
            .ok()
            .and_then(|i| self.routes.get(i))
            .expect("RouteId comes from this table's `add`")
    }

    /// Read-only walk along `segments`: refuses a name that differs from the one already at
    /// its position, or a method already registered for the pattern. Runs before `insert`, so
    /// a refused route leaves no half-built branch behind.
    fn check_conflicts(
        &self,
        method: Option<&str>,
        pattern: &str,
        segments: &[Segment<'_>],
    ) -> Result<(), RouteError> {
        let mut node = &self.root;
        for segment in segments {
            let next = match *segment {
                Segment::Literal(s) => node.literal(s),
                Segment::Param(name) => same_name(pattern, ':', name, node.param.as_ref())?,
                Segment::Wildcard(name) => same_name(pattern, '*', name, node.wildcard.as_ref())?,
            };
            let Some(next) = next else {
                return Ok(()); // the rest of the branch is new
            };
            node = next;
        }
        let registered = node.endpoint.and_then(|e| match method {
            Some(method) => self.endpoints[e].route_for(method, false),
            None => self.endpoints[e].any,
        });
        match registered {
            Some(_) => Err(RouteError::Duplicate {
                method: method.unwrap_or(ANY_METHOD).into(),
                pattern: pattern.into(),
            }),
            None => Ok(()),
        }
    }

    /// Creates the nodes `segments` need; returns the endpoint index where the pattern ends.
    fn insert(&mut self, segments: &[Segment<'_>]) -> usize {
        let mut node = &mut self.root;
        for segment in segments {
            node = match *segment {
                Segment::Literal(s) => node.literal_mut(s),
                Segment::Param(name) => child(&mut node.param, name),
                Segment::Wildcard(name) => child(&mut node.wildcard, name),
            };
        }
        *node.endpoint.get_or_insert_with(|| {
            self.endpoints.push(Endpoint::default());
            self.endpoints.len() - 1
        })
    }
}

impl<H> Default for Routes<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    fn literal(&self, segment: &str) -> Option<&Node> {
        let i = self
            .literals
            .binary_search_by(|(s, _)| literal_order(s, segment))
            .ok()?;
        self.literals.get(i).map(|(_, node)| node)
    }

    fn literal_mut(&mut self, segment: &str) -> &mut Node {
        let i = match self
            .literals
            .binary_search_by(|(s, _)| literal_order(s, segment))
        {
            Ok(i) => i,
            Err(i) => {
                self.literals.insert(i, (segment.into(), Node::default()));
                i
            }
        };
        &mut self.literals[i].1
    }
}

/// How a node's literal children are sorted: by length, then bytes. Most comparisons of a
/// lookup are then settled by the lengths, without comparing bytes.
fn literal_order(have: &str, wanted: &str) -> std::cmp::Ordering {
    have.len()
        .cmp(&wanted.len())
        .then_with(|| have.as_bytes().cmp(wanted.as_bytes()))
}

/// The param or wildcard child, created with `name` if absent (`check_conflicts` has
/// already made sure an existing one has the same name).
fn child<'n>(slot: &'n mut Option<(Box<str>, Box<Node>)>, name: &str) -> &'n mut Node {
    &mut slot.get_or_insert_with(|| (name.into(), Box::default())).1
}

/// The existing param/wildcard child if it has `name`; an error if it has another name.
fn same_name<'n>(
    pattern: &str,
    sigil: char,
    name: &str,
    existing: Option<&'n (Box<str>, Box<Node>)>,
) -> Result<Option<&'n Node>, RouteError> {
    match existing {
        None => Ok(None),
        Some((have, node)) if **have == *name => Ok(Some(node)),
        Some((have, _)) => Err(RouteError::ConflictingParam {
            pattern: pattern.into(),
            name: format!("{sigil}{name}"),
            existing: format!("{sigil}{have}"),
        }),
    }
}

impl Endpoint {
    /// The route serving `method`. With `lookup` (a request, not a registration check), a
    /// `HEAD` without its own route gets the `GET` one (the connection then drops the body),
    /// and a method still without one gets the `any` route. HEAD prefers GET to `any` so that
    /// it answers with the head GET would have (RFC 9110 §9.3.2).
    fn route_for(&self, method: &str, lookup: bool) -> Option<usize> {
        let exact = |m: &str| self.methods.iter().find(|(have, _)| same_method(have, m));
        exact(method)
            .or_else(|| (lookup && method == "HEAD").then(|| exact("GET")).flatten())
            .map(|&(_, index)| index)
            .or(if lookup { self.any } else { None })
    }
}

/// `a == b` for method names, which are short: compared byte by byte inline, where `==` on
/// `str` is a `memcmp` call (every lookup compares at least one).
fn same_method(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Sorted, deduplicated, comma+space separated; `HEAD` is listed whenever `GET` is.
fn allow_value(methods: &[(Box<str>, usize)]) -> String {
    let mut names: Vec<&str> = methods.iter().map(|(m, _)| &**m).collect();
    if names.contains(&"GET") {
        names.push("HEAD");
    }
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// The state of one `find`: where it may record params, and the first endpoint whose pattern
/// matched the path, for the 405 answer.
struct Search<'a, 'm, 'p> {
    endpoints: &'a [Endpoint],
    method: &'m str,
    params: &'p mut Params<'a>,
    first_match: Option<&'a Endpoint>,
}

impl<'a> Search<'a, '_, '_> {
    /// Matches `rest` (the path after the '/' that leads to `node`'s segment, or `None` once
    /// the path is used up) below `node`; returns the route index on success.
    fn node(&mut self, node: &'a Node, rest: Option<&'a str>) -> Option<usize> {
        let Some(rest) = rest else {
            return self.endpoint(node);
        };
        // `/` is ASCII: both sides are on char boundaries.
        let (segment, next) = match crate::http::bytes::find_byte(b'/', rest.as_bytes()) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        if let Some(child) = node.literal(segment)
            && let Some(hit) = self.node(child, next)
        {
            return Some(hit);
        }
        if let Some((name, child)) = &node.param
            && !segment.is_empty()
            && let Some(hit) = self.captured(name, segment, |s| s.node(child, next))
        {
            return Some(hit);
        }
        let (name, child) = node.wildcard.as_ref()?;
        self.captured(name, rest, |s| s.endpoint(child))
    }

    /// Runs `then` with `name = value` recorded, and forgets it again if `then` fails, so a
    /// failed branch leaves no stray params for the branch tried next.
    fn captured(
        &mut self,
        name: &'a str,
        value: &'a str,
        then: impl FnOnce(&mut Self) -> Option<usize>,
    ) -> Option<usize> {
        let mark = self.params.len;
        self.params.push(name, value);
        let hit = then(self);
        if hit.is_none() {
            self.params.len = mark;
        }
        hit
    }

    fn endpoint(&mut self, node: &'a Node) -> Option<usize> {
        let endpoint = self.endpoints.get(node.endpoint?)?;
        self.first_match.get_or_insert(endpoint);
        endpoint.route_for(self.method, true)
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
