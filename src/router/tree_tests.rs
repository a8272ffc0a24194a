//! One route table, a table of lookups against it, every registration error, and proptests.

use super::{ANY_METHOD, Found, Params, RouteError, RouteId, Routes};
use crate::http::params::MAX_PARAMS;
use crate::router::pattern::check_prefix;
use proptest::prelude::*;

/// (method, pattern); the handler is the row's index, so it must equal the `RouteId`.
const TABLE: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("GET", "/users/"),
    ("GET", "/users/:id"),
    ("DELETE", "/users/:id"),
    ("GET", "/users/me"),
    ("GET", "/users/:id/posts/:post"),
    ("GET", "/a/:x/c"),
    ("GET", "/a/b/d"),
    ("GET", "/static/*path"),
    ("GET", "/static/special"),
    ("GET", "/files/:name"),
    ("GET", "/files/*rest"),
    ("HEAD", "/head-only"),
    ("GET", "/both"),
    ("HEAD", "/both"),
    ("PUT", "/any/*rest"),
    ("GET", "/v1/items:batchGet"),
    ("OPTIONS", "/o"),
    ("get", "/o"),
];

fn table() -> Routes<usize> {
    let mut routes = Routes::new();
    for (i, &(method, pattern)) in TABLE.iter().enumerate() {
        let id = routes.add(method, pattern, i).expect("the table is valid");
        assert_eq!(id, RouteId(i as u32));
    }
    routes
}

/// What a lookup should give.
enum Want {
    /// The route's "METHOD pattern", and its params as "name=value ..." in pattern order.
    R(&'static str, &'static str),
    /// 405 with this Allow value.
    A(&'static str),
    /// 404.
    N,
}
use Want::{A, N, R};

/// ("METHOD path", outcome).
const LOOKUPS: &[(&str, Want)] = &[
    ("GET /", R("GET /", "")),
    ("GET /users", R("GET /users", "")),
    ("POST /users", R("POST /users", "")),
    // Trailing slash is significant.
    ("GET /users/", R("GET /users/", "")),
    ("POST /users/", A("GET, HEAD")),
    ("GET /users/42", R("GET /users/:id", "id=42")),
    ("GET /users/42/", N),
    ("GET /users//posts/1", N),
    ("GET /users/%20x", R("GET /users/:id", "id=%20x")),
    // Literal beats param.
    ("GET /users/me", R("GET /users/me", "")),
    (
        "GET /users/4/posts/7",
        R("GET /users/:id/posts/:post", "id=4 post=7"),
    ),
    (
        "GET /users/me/posts/7",
        R("GET /users/:id/posts/:post", "id=me post=7"),
    ),
    ("GET /users/42/posts", N),
    // Backtracking: literal `b` leads nowhere for `c`, so `:x` gets it.
    ("GET /a/b/c", R("GET /a/:x/c", "x=b")),
    ("GET /a/b/d", R("GET /a/b/d", "")),
    ("GET /a/z/c", R("GET /a/:x/c", "x=z")),
    ("GET /a/z/d", N),
    ("GET /a/b", N),
    // Wildcards take the rest, empty included, after literals and params fail.
    ("GET /static/", R("GET /static/*path", "path=")),
    ("GET /static", N),
    (
        "GET /static/css/a.css",
        R("GET /static/*path", "path=css/a.css"),
    ),
    ("GET /static/a//b/", R("GET /static/*path", "path=a//b/")),
    ("GET /static/special", R("GET /static/special", "")),
    (
        "GET /static/special/x",
        R("GET /static/*path", "path=special/x"),
    ),
    ("GET /files/a", R("GET /files/:name", "name=a")),
    ("GET /files/a/b", R("GET /files/*rest", "rest=a/b")),
    ("GET /files/", R("GET /files/*rest", "rest=")),
    ("PUT /any/", R("PUT /any/*rest", "rest=")),
    ("GET /any/x", A("PUT")),
    // A ':' inside a segment is literal.
    ("GET /v1/items:batchGet", R("GET /v1/items:batchGet", "")),
    ("GET /v1/items", N),
    // 405 with exact Allow values; HEAD is listed wherever GET is.
    ("PUT /users", A("GET, HEAD, POST")),
    ("POST /users/1", A("DELETE, GET, HEAD")),
    ("DELETE /users/1", R("DELETE /users/:id", "id=1")),
    ("POST /both", A("GET, HEAD")),
    ("GET /head-only", A("HEAD")),
    // Methods are case-sensitive.
    ("get /users", A("GET, HEAD, POST")),
    ("get /o", R("get /o", "")),
    ("GET /o", A("OPTIONS, get")),
    // HEAD falls back to GET, unless HEAD has its own route.
    ("HEAD /users/9", R("GET /users/:id", "id=9")),
    ("HEAD /both", R("HEAD /both", "")),
    ("HEAD /head-only", R("HEAD /head-only", "")),
    ("HEAD /any/x", A("PUT")),
    // A less specific pattern that serves the method beats a more specific one that does not;
    ("DELETE /users/me", R("DELETE /users/:id", "id=me")),
    // if none serves it, the most specific match gives the Allow value.
    ("PATCH /users/me", A("GET, HEAD")),
    // Not origin-form paths at all.
    ("GET ", N),
    ("OPTIONS *", N),
    ("GET users", N),
    ("GET /nope", N),
];

#[test]
fn lookups_give_route_405_or_404() {
    let routes = table();
    let mut params = Params::new();
    for (request, want) in LOOKUPS {
        let (method, path) = request.split_once(' ').expect("METHOD path");
        let found = routes.find(method, path, &mut params);
        match (want, found) {
            (
                R(route, want_params),
                Found::Route {
                    handler,
                    id,
                    pattern,
                },
            ) => {
                let got = format!("{} {pattern}", routes.method(id));
                assert_eq!(got, *route, "{request}");
                assert_eq!(routes.pattern(id), pattern, "{request}");
                assert_eq!(*handler as u32, id.0, "{request}");
                let got: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
                assert_eq!(got.join(" "), *want_params, "{request}");
            }
            (A(want), Found::MethodNotAllowed { allow }) => {
                assert_eq!(allow, *want, "{request}");
                assert!(params.is_empty(), "{request}: no params without a route");
            }
            (N, Found::NotFound) => assert!(params.is_empty(), "{request}"),
            (_, other) => panic!("{request}: got {other:?}"),
        }
    }
}

#[test]
fn params_get_by_name_and_are_cleared_by_the_next_find() {
    let routes = table();
    let mut params = Params::new();
    let found = routes.find("GET", "/users/42/posts/7", &mut params);
    assert!(matches!(found, Found::Route { .. }));
    assert_eq!(params.get("post"), Some("7"));
    assert_eq!(params.get("id"), Some("42"));
    assert_eq!(params.get("nope"), None);
    assert_eq!(format!("{params:?}"), r#"{"id": "42", "post": "7"}"#);
    let mut params = Params::new();
    routes.find("GET", "/users/1", &mut params);
    assert_eq!(params.len(), 1);
    routes.find("GET", "/nope", &mut params);
    assert!(params.is_empty());
}

#[test]
fn max_params_fill_every_slot() {
    let mut routes = Routes::new();
    let pattern = "/:a/:b/:c/:d/:e/:f/:g/*h";
    routes
        .add("GET", pattern, ())
        .expect("8 params are allowed");
    let mut params = Params::new();
    let found = routes.find("GET", "/1/2/3/4/5/6/7/8/9", &mut params);
    assert!(matches!(found, Found::Route { .. }));
    assert_eq!(params.len(), MAX_PARAMS);
    assert_eq!(params.get("h"), Some("8/9"));
}

#[test]
fn route_ids_are_dense_stable_and_skip_refused_routes() {
    let mut routes = Routes::new();
    assert!(routes.is_empty());
    assert_eq!(routes.add("GET", "/u/:id/x", 'a'), Ok(RouteId(0)));
    // Refused deep in the pattern: no id used, no half-built branch left behind.
    assert!(routes.add("GET", "/u/:name/y/z", 'b').is_err());
    assert_eq!(routes.add("POST", "/u/:id/x", 'c'), Ok(RouteId(1)));
    assert_eq!(routes.add("GET", "/", 'd'), Ok(RouteId(2)));
    assert_eq!(routes.len(), 3);
    assert_eq!(
        (routes.method(RouteId(1)), routes.pattern(RouteId(1))),
        ("POST", "/u/:id/x")
    );
    let mut params = Params::new();
    assert!(matches!(
        routes.find("GET", "/u/1/y/z", &mut params),
        Found::NotFound
    ));
    match routes.find("POST", "/u/1/x", &mut params) {
        Found::Route { handler, id, .. } => assert_eq!((*handler, id), ('c', RouteId(1))),
        other => panic!("got {other:?}"),
    }
}

fn err(method: &str, pattern: &str) -> RouteError {
    let mut routes = Routes::new();
    routes.add("GET", "/u/:id", ()).expect("valid");
    routes.add("GET", "/f/*path", ()).expect("valid");
    routes
        .add(method, pattern, ())
        .expect_err("must be refused")
}

#[test]
fn malformed_patterns_are_refused_naming_the_pattern() {
    use RouteError::*;
    for p in ["users", ""] {
        assert_eq!(err("GET", p), NoLeadingSlash { pattern: p.into() });
    }
    for p in ["/a b", "/a?b=1", "/a#x", "/caf\u{e9}", "/a\tb"] {
        assert_eq!(err("GET", p), InvalidChar { pattern: p.into() });
    }
    for p in ["/a//b", "//", "//a"] {
        assert_eq!(err("GET", p), EmptySegment { pattern: p.into() });
    }
    for p in ["/a/:", "/a/*", "/:/b"] {
        assert_eq!(err("GET", p), EmptyParamName { pattern: p.into() });
    }
    for (p, name) in [("/a/:id.txt", "id.txt"), ("/a/*p-q", "p-q")] {
        let want = BadParamName {
            pattern: p.into(),
            name: name.into(),
        };
        assert_eq!(err("GET", p), want);
    }
    for p in ["/a/*p/b", "/a/*p/"] {
        let want = WildcardNotLast {
            pattern: p.into(),
            name: "p".into(),
        };
        assert_eq!(err("GET", p), want);
    }
    for p in ["/a/:x/:x", "/a/:x/*x"] {
        let want = DuplicateParam {
            pattern: p.into(),
            name: "x".into(),
        };
        assert_eq!(err("GET", p), want);
    }
    let p = "/:a/:b/:c/:d/:e/:f/:g/:h/*i";
    assert_eq!(err("GET", p), TooManyParams { pattern: p.into() });
}

#[test]
fn patterns_that_clash_with_earlier_routes_are_refused() {
    // `err` registers GET /u/:id and GET /f/*path first.
    let cases = [
        ("/u/:name", ":name", ":id"),
        ("/u/:user/posts", ":user", ":id"),
        ("/f/*rest", "*rest", "*path"),
    ];
    for (p, name, existing) in cases {
        let want = RouteError::ConflictingParam {
            pattern: p.into(),
            name: name.into(),
            existing: existing.into(),
        };
        assert_eq!(err("POST", p), want);
    }
    let want = RouteError::Duplicate {
        method: "GET".into(),
        pattern: "/u/:id".into(),
    };
    assert_eq!(err("GET", "/u/:id"), want);
}

#[test]
fn methods_that_are_not_tokens_are_refused() {
    for m in ["", "GE T", "GET\r\n", "GET/", "G\u{c9}T"] {
        let want = RouteError::BadMethod {
            method: m.into(),
            pattern: "/x".into(),
        };
        assert_eq!(err(m, "/x"), want);
    }
}

#[test]
fn error_messages_name_the_pattern_and_the_fix() {
    let msg = err("POST", "/u/:name").to_string();
    assert!(
        msg.contains("/u/:name") && msg.contains("write `:id` here too"),
        "{msg}"
    );
    let msg = err("GET", "users").to_string();
    assert!(msg.contains("write `/users`"), "{msg}");
    let msg = err("GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i").to_string();
    assert!(msg.contains("more than 8 parameters"), "{msg}");
}

#[test]
fn same_pattern_other_method_merges_and_updates_allow() {
    let mut routes = Routes::new();
    routes.add("POST", "/x", 0).expect("valid");
    let found = routes.find("GET", "/x", &mut Params::new());
    assert!(
        matches!(found, Found::MethodNotAllowed { allow: "POST" }),
        "{found:?}"
    );
    routes.add("GET", "/x", 1).expect("valid");
    routes.add("HEAD", "/x", 2).expect("valid");
    let mut params = Params::new();
    let found = routes.find("PUT", "/x", &mut params);
    assert!(
        matches!(
            found,
            Found::MethodNotAllowed {
                allow: "GET, HEAD, POST"
            }
        ),
        "{found:?}"
    );
}

proptest! {
    #[test]
    fn find_never_panics_on_arbitrary_paths(
        path in prop_oneof![any::<String>(), "/[a-z:*/%. ]{0,40}", "(/(users|static|files|a|b|me|[0-9]{1,3})){0,8}/?"],
        method in prop_oneof!["GET|HEAD|POST|PATCH", "\\PC{0,8}"],
    ) {
        let routes = table();
        let mut params = Params::new();
        match routes.find(&method, &path, &mut params) {
            Found::Route { id, .. } => {
                prop_assert!((id.0 as usize) < routes.len());
                for (_, value) in params.iter() {
                    prop_assert!(path.contains(value));
                }
            }
            Found::MethodNotAllowed { allow } => prop_assert!(!allow.is_empty()),
            Found::NotFound => prop_assert!(params.is_empty()),
        }
    }

    #[test]
    fn any_single_segment_under_users_is_the_id(id in "[^/]{1,20}") {
        let routes = table();
        let mut params = Params::new();
        let path = format!("/users/{id}");
        let found = routes.find("GET", &path, &mut params);
        let Found::Route { pattern, .. } = found else {
            return Err(TestCaseError::fail(format!("{path}: {found:?}")));
        };
        if id == "me" {
            prop_assert_eq!(pattern, "/users/me");
        } else {
            prop_assert_eq!(pattern, "/users/:id");
            prop_assert_eq!(params.get("id"), Some(id.as_str()));
        }
    }
}

/// A lookup's outcome as plain values: route id and params, or the 405's Allow, or 404.
fn outcome(found: Found<'_, impl std::fmt::Debug>, params: &Params<'_>) -> String {
    match found {
        Found::Route { id, pattern, .. } => {
            let params: Vec<_> = params.iter().collect();
            format!("route {} {pattern} {params:?}", id.0)
        }
        Found::MethodNotAllowed { allow } => format!("405 {allow}"),
        Found::NotFound => "404".into(),
    }
}

#[test]
fn every_all_literal_pattern_is_in_the_static_table_once() {
    let routes = table();
    let statics: Vec<&str> = routes.statics.iter().map(|(s, _)| &**s).collect();
    let mut want: Vec<&str> = TABLE
        .iter()
        .map(|&(_, pattern)| &pattern[1..])
        .filter(|rest| !rest.split('/').any(|s| s.starts_with([':', '*'])))
        .collect();
    want.sort_by(|a, b| super::literal_order(a, b));
    want.dedup();
    assert_eq!(statics, want);
}

proptest! {
    #[test]
    fn the_static_table_answers_as_the_walk_would(
        path in prop_oneof![
            "(/(users|static|files|a|b|c|d|me|special|head-only|both|o|x|y|lit|[0-9]{1,2})){0,4}/?",
            "/v1/items:batchGet",
        ],
        method in "GET|HEAD|POST|PUT|DELETE|OPTIONS|get|BREW",
    ) {
        for routes in [outcomes_of(&table(), &method, &path), outcomes_of(&with_any_and_lit(), &method, &path)] {
            prop_assert_eq!(&routes.0, &routes.1);
        }
    }
}

#[test]
fn many_static_patterns_of_one_length_are_all_found() {
    // Over four of a length, the static table searches them by bytes.
    let mut routes = Routes::new();
    let names: Vec<String> = (0..40).map(|i| format!("/r{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        routes.add("GET", name, i).expect("valid");
    }
    for (i, name) in names.iter().enumerate() {
        let found = routes.find("GET", name, &mut Params::new());
        assert!(
            matches!(found, Found::Route { handler: &h, .. } if h == i),
            "{name}: {found:?}"
        );
        let (found, walked) = outcomes_of(&routes, "GET", name);
        assert_eq!(found, walked);
    }
    assert!(matches!(
        routes.find("GET", "/r40", &mut Params::new()),
        Found::NotFound
    ));
    assert!(matches!(
        routes.find("GET", "/r0", &mut Params::new()),
        Found::NotFound
    ));
}

/// `with_any` and a literal beside its param route, where the walk backtracks.
fn with_any_and_lit() -> Routes<&'static str> {
    let mut routes = with_any();
    routes.add("GET", "/y/lit", "lit").expect("valid");
    routes.add("GET", "/z", "z").expect("valid");
    routes
}

/// (`find`'s outcome, the walk's outcome) for one request.
fn outcomes_of<H: std::fmt::Debug>(
    routes: &Routes<H>,
    method: &str,
    path: &str,
) -> (String, String) {
    let mut params = Params::new();
    let found = outcome(routes.find(method, path, &mut params), &params);
    let mut params = Params::new();
    let walked = match path.strip_prefix('/') {
        Some(rest) => outcome(routes.walk(method, rest, &mut params), &params),
        None => "404".into(),
    };
    (found, walked)
}

/// GET and POST on `/x`, `any` on `/x` and on `/y/:id`; the handler names the route.
fn with_any() -> Routes<&'static str> {
    let mut routes = Routes::new();
    routes.add("GET", "/x", "get").expect("valid");
    routes.add("POST", "/x", "post").expect("valid");
    routes.add_any("/x", "any").expect("valid");
    routes.add_any("/y/:id", "any-y").expect("valid");
    routes
}

fn handler_for(routes: &Routes<&'static str>, method: &str, path: &str) -> Option<&'static str> {
    match routes.find(method, path, &mut Params::new()) {
        Found::Route { handler, .. } => Some(*handler),
        _ => None,
    }
}

#[test]
fn any_serves_the_methods_without_a_route_of_their_own() {
    let routes = with_any();
    assert_eq!(handler_for(&routes, "GET", "/x"), Some("get"));
    assert_eq!(handler_for(&routes, "POST", "/x"), Some("post"));
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "BREW"] {
        assert_eq!(handler_for(&routes, method, "/x"), Some("any"), "{method}");
    }
    assert_eq!(handler_for(&routes, "DELETE", "/y/7"), Some("any-y"));
    assert_eq!(routes.method(RouteId(2)), ANY_METHOD);
    assert_eq!(routes.pattern(RouteId(2)), "/x");
}

#[test]
fn head_prefers_get_to_any_and_any_to_nothing() {
    let routes = with_any();
    assert_eq!(handler_for(&routes, "HEAD", "/x"), Some("get"));
    assert_eq!(handler_for(&routes, "HEAD", "/y/1"), Some("any-y"));
}

#[test]
fn a_pattern_with_any_never_answers_405() {
    let mut routes = with_any();
    routes.add("GET", "/z", "z").expect("valid");
    let found = routes.find("PUT", "/z", &mut Params::new());
    assert!(
        matches!(found, Found::MethodNotAllowed { allow: "GET, HEAD" }),
        "{found:?}"
    );
    // Backtracking reaches a matching `any` after a literal that lacks the method.
    routes.add("GET", "/y/lit", "lit").expect("valid");
    assert_eq!(handler_for(&routes, "PUT", "/y/lit"), Some("any-y"));
}

#[test]
fn any_twice_on_one_pattern_is_a_duplicate() {
    let mut routes = with_any();
    let want = RouteError::Duplicate {
        method: "*".into(),
        pattern: "/x".into(),
    };
    assert_eq!(routes.add_any("/x", "again"), Err(want));
    assert!(routes.add_any("x", "bad").is_err());
    assert_eq!(routes.len(), 4);
}

#[test]
fn into_routes_gives_every_route_in_id_order() {
    let taken: Vec<_> = with_any().into_routes().collect();
    let want = [
        (Some("GET"), "/x", "get"),
        (Some("POST"), "/x", "post"),
        (None, "/x", "any"),
        (None, "/y/:id", "any-y"),
    ];
    assert_eq!(taken.len(), want.len());
    for ((method, pattern, handler), want) in taken.iter().zip(want) {
        assert_eq!((method.as_deref(), &**pattern, *handler), want);
    }
}

#[test]
fn nest_prefixes_are_checked() {
    for ok in ["/api", "/v1/api", "/tenants/:tenant"] {
        assert_eq!(check_prefix(ok), Ok(()), "{ok}");
    }
    for (bad, fix) in [
        ("", "merge"),
        ("/", "merge"),
        ("api", "write `/api`"),
        ("/api/", "write `/api`"),
        ("/files/*rest", "use `:rest`"),
    ] {
        let err = check_prefix(bad).expect_err(bad);
        assert!(
            matches!(err, RouteError::BadNestPrefix { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(fix), "{bad}: {err}");
    }
    assert_eq!(
        check_prefix("/a b"),
        Err(RouteError::InvalidChar {
            pattern: "/a b".into()
        })
    );
}
