//! The handler API: plain functions registered on method + path patterns.
//!
//! ```ignore
//! let users = Router::new()
//!     .get("/:id", get_user)             // fn get_user(req: &Request) -> impl IntoResponse
//!     .patch("/:id", update_user);
//! let app = Router::new()
//!     .post("/echo", echo)
//!     .get("/static/*path", static_files)
//!     .any("/proxy/*rest", proxy)        // every method
//!     .nest("/users", users);            // GET /users/:id, PATCH /users/:id
//! ```
//! A bad pattern does not panic here: the errors are collected and `Server::start` refuses
//! to start, naming each one. The same holds for what [`Router::nest`] and [`Router::merge`]
//! refuse: a route both routers have, a nested fallback, two fallbacks, two states.
//!
//! Which route answers: a route for the request's method, else (for `HEAD`) the `GET` route,
//! else the pattern's [`Router::any`] route. A path whose patterns serve none of these is 405
//! with an `Allow` listing the methods that have their own route; a pattern with an `any`
//! route serves every method, so it never answers 405.

mod pattern;
pub mod tree;

use std::any::Any;
use std::sync::Arc;

use crate::http::request::Request;
use crate::http::response::{IntoResponse, Response};

pub use crate::http::params::Params;
pub use pattern::RouteError;
pub use tree::{Found, RouteId};

/// A request handler: any `Fn(&Request) -> impl IntoResponse` that is `Send + Sync`.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, req: &Request<'_>) -> Response;
}

impl<F, R> Handler for F
where
    F: Fn(&Request<'_>) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn call(&self, req: &Request<'_>) -> Response {
        self(req).into_response()
    }
}

/// A handler as the router stores it.
pub type BoxHandler = Box<dyn Handler>;

/// Routes plus an optional fallback for requests no route matches, and an optional state
/// shared by every handler.
pub struct Router {
    routes: tree::Routes<BoxHandler>,
    fallback: Option<BoxHandler>,
    errors: Vec<RouteError>,
    state: Option<Arc<dyn Any + Send + Sync>>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// A router with no routes: every request gets 404 (or the fallback, once set).
    pub fn new() -> Self {
        Router {
            routes: tree::Routes::new(),
            fallback: None,
            errors: Vec::new(),
            state: None,
        }
    }

    /// A router with no routes that holds `state` (a database pool, a config) for its
    /// handlers. A server has one state: [`Router::nest`] and [`Router::merge`] keep the one
    /// state either side has and refuse two.
    pub fn with_state<S: Send + Sync + 'static>(state: S) -> Self {
        Router {
            state: Some(Arc::new(state)),
            ..Self::new()
        }
    }

    /// Registers `handler` for `method` on `pattern` (`/users/:id`, `/static/*path`).
    pub fn route(mut self, method: &str, pattern: &str, handler: impl Handler) -> Self {
        if let Err(err) = self.routes.add(method, pattern, Box::new(handler)) {
            self.errors.push(err);
        }
        self
    }

    /// Registers `handler` for `GET` on `pattern`; it answers `HEAD` too, unless `pattern`
    /// has a `HEAD` route of its own (the body is not sent).
    pub fn get(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("GET", pattern, handler)
    }

    /// Registers `handler` for `POST` on `pattern`.
    pub fn post(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("POST", pattern, handler)
    }

    /// Registers `handler` for `PUT` on `pattern`.
    pub fn put(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("PUT", pattern, handler)
    }

    /// Registers `handler` for `DELETE` on `pattern`.
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("DELETE", pattern, handler)
    }

    /// Registers `handler` for `PATCH` on `pattern`.
    pub fn patch(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("PATCH", pattern, handler)
    }

    /// Registers `handler` for `HEAD` on `pattern`, instead of the `GET` route answering it.
    pub fn head(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("HEAD", pattern, handler)
    }

    /// Registers `handler` for `OPTIONS` on `pattern`.
    pub fn options(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("OPTIONS", pattern, handler)
    }

    /// Registers `handler` for every method on `pattern`. Routes for one method on the same
    /// pattern win; `HEAD` goes to the `GET` route if there is one (so it gets the head `GET`
    /// would send), else here. The pattern then never answers 405. In metrics and in
    /// `routes().method(id)` the route's method is `*`.
    pub fn any(mut self, pattern: &str, handler: impl Handler) -> Self {
        if let Err(err) = self.routes.add_any(pattern, Box::new(handler)) {
            self.errors.push(err);
        }
        self
    }

    /// Mounts every route of `router` under `prefix`: `/api` and `/users/:id` make
    /// `/api/users/:id`, and the nested `/` is `/api` itself. The prefix is a pattern
    /// (`/tenants/:tenant` works) without a trailing '/' or a `*wildcard`.
    ///
    /// The handlers are moved, not copied. A route `self` already has, a bad prefix, and a
    /// fallback on `router` are refused as [`RouteError`]s (a fallback answers for the whole
    /// server, so it belongs on the outer router); `router`'s own errors come along. The
    /// state of either side is kept; two states are refused.
    pub fn nest(mut self, prefix: &str, router: Router) -> Self {
        if let Err(err) = pattern::check_prefix(prefix) {
            self.errors.push(err);
            return self;
        }
        if router.fallback.is_some() {
            self.errors.push(RouteError::NestedFallback {
                prefix: prefix.into(),
            });
        }
        self.absorb(prefix, router)
    }

    /// Adds every route of `router` to `self`, as if registered here after `self`'s own.
    /// A route both have is refused as a [`RouteError`]; so are two fallbacks and two states
    /// (one side's fallback or state is kept). `router`'s own errors come along.
    pub fn merge(mut self, mut router: Router) -> Self {
        if let Some(fallback) = router.fallback.take() {
            match self.fallback {
                Some(_) => self.errors.push(RouteError::TwoFallbacks),
                None => self.fallback = Some(fallback),
            }
        }
        self.absorb("", router)
    }

    /// Answers every request that matches no route (instead of 404/405).
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// The registration errors, if any pattern was refused.
    pub fn errors(&self) -> &[RouteError] {
        &self.errors
    }

    pub(crate) fn find<'a>(
        &'a self,
        method: &str,
        path: &'a str,
        params: &mut Params<'a>,
    ) -> Found<'a, BoxHandler> {
        self.routes.find(method, path, params)
    }

    pub(crate) fn fallback_handler(&self) -> Option<&BoxHandler> {
        self.fallback.as_ref()
    }

    /// The value given to [`Router::with_state`], for the connection loop to hand handlers.
    pub(crate) fn state(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.state.as_deref()
    }

    /// The route table: patterns and methods by `RouteId`.
    pub fn routes(&self) -> &tree::Routes<BoxHandler> {
        &self.routes
    }

    /// Moves the routes, errors and state of `router` into `self`, each pattern after
    /// `prefix` (checked, or empty). The caller has dealt with `router`'s fallback.
    fn absorb(mut self, prefix: &str, router: Router) -> Self {
        self.errors.extend(router.errors);
        match (&self.state, router.state) {
            (Some(_), Some(_)) => self.errors.push(RouteError::TwoStates),
            (None, state) => self.state = state,
            (Some(_), None) => {}
        }
        for (method, pattern, handler) in router.routes.into_routes() {
            let pattern = match &*pattern {
                "/" if !prefix.is_empty() => prefix.to_owned(),
                pattern => format!("{prefix}{pattern}"),
            };
            let added = match method {
                Some(method) => self.routes.add(&method, &pattern, handler),
                None => self.routes.add_any(&pattern, handler),
            };
            if let Err(err) = added {
                self.errors.push(err);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::status::Status;

    fn ok(_req: &Request<'_>) -> Status {
        Status::OK
    }

    /// The "METHOD pattern" that answers `method path`, with the handler's address, or None.
    fn answer(router: &Router, method: &str, path: &str) -> Option<(String, *const ())> {
        match router.find(method, path, &mut Params::new()) {
            Found::Route {
                handler,
                id,
                pattern,
                ..
            } => {
                let method = router.routes().method(id);
                Some((format!("{method} {pattern}"), handler_addr(handler)))
            }
            _ => None,
        }
    }

    fn handler_addr(handler: &BoxHandler) -> *const () {
        &**handler as *const dyn Handler as *const ()
    }

    fn route_of(router: &Router, method: &str, path: &str) -> Option<String> {
        answer(router, method, path).map(|(route, _)| route)
    }

    #[test]
    fn patch_head_and_options_register_their_method() {
        let router = Router::new()
            .patch("/x", ok)
            .head("/x", ok)
            .options("/x", ok)
            .get("/x", ok);
        for method in ["PATCH", "HEAD", "OPTIONS", "GET"] {
            assert_eq!(
                route_of(&router, method, "/x"),
                Some(format!("{method} /x"))
            );
        }
        let allow = match router.find("PUT", "/x", &mut Params::new()) {
            Found::MethodNotAllowed { allow } => allow,
            _ => panic!("PUT /x should be 405"),
        };
        assert_eq!(allow, "GET, HEAD, OPTIONS, PATCH");
    }

    #[test]
    fn any_answers_every_method_after_the_specific_routes() {
        let router = Router::new().get("/x", ok).any("/x", ok).any("/y", ok);
        assert_eq!(route_of(&router, "GET", "/x"), Some("GET /x".into()));
        assert_eq!(route_of(&router, "HEAD", "/x"), Some("GET /x".into()));
        assert_eq!(route_of(&router, "DELETE", "/x"), Some("* /x".into()));
        assert_eq!(route_of(&router, "HEAD", "/y"), Some("* /y".into()));
        assert_eq!(route_of(&router, "TRACE", "/y"), Some("* /y".into()));
        assert!(router.errors().is_empty());
        let router = router.any("/y", ok);
        assert!(matches!(router.errors(), [RouteError::Duplicate { .. }]));
    }

    #[test]
    fn nest_mounts_routes_under_the_prefix_and_moves_the_handlers() {
        let users = Router::new()
            .get("/", ok)
            .get("/users/:id", ok)
            .any("/raw/*rest", ok);
        let (_, addr) = answer(&users, "GET", "/users/1").expect("registered");
        let router = Router::new().get("/", ok).nest("/api", users);
        assert!(router.errors().is_empty(), "{:?}", router.errors());
        let (route, nested_addr) = answer(&router, "GET", "/api/users/7").expect("nested");
        assert_eq!(route, "GET /api/users/:id");
        assert_eq!(nested_addr, addr, "the same boxed handler, moved");
        assert_eq!(route_of(&router, "GET", "/api"), Some("GET /api".into()));
        assert_eq!(route_of(&router, "GET", "/api/"), None);
        assert_eq!(route_of(&router, "GET", "/"), Some("GET /".into()));
        assert_eq!(
            route_of(&router, "POST", "/api/raw/a/b"),
            Some("* /api/raw/*rest".into())
        );
        let mut params = Params::new();
        router.find("GET", "/api/users/7", &mut params);
        assert_eq!(params.get("id"), Some("7"));
    }

    #[test]
    fn nest_under_a_param_prefix_keeps_both_params() {
        let router = Router::new().nest("/t/:tenant", Router::new().get("/u/:id", ok));
        let mut params = Params::new();
        assert!(matches!(
            router.find("GET", "/t/acme/u/3", &mut params),
            Found::Route { .. }
        ));
        assert_eq!(
            (params.get("tenant"), params.get("id")),
            (Some("acme"), Some("3"))
        );
    }

    #[test]
    fn nest_refuses_duplicates_bad_prefixes_and_nested_fallbacks() {
        let router = Router::new()
            .get("/api/users", ok)
            .nest("/api", Router::new().get("/users", ok).post("/users", ok));
        assert_eq!(
            router.errors(),
            [RouteError::Duplicate {
                method: "GET".into(),
                pattern: "/api/users".into()
            }]
        );
        assert_eq!(
            route_of(&router, "POST", "/api/users"),
            Some("POST /api/users".into())
        );

        let router = Router::new().nest("/api/", Router::new().get("/x", ok));
        assert!(matches!(
            router.errors(),
            [RouteError::BadNestPrefix { .. }]
        ));
        assert_eq!(route_of(&router, "GET", "/api//x"), None);

        let router = Router::new().nest("/api", Router::new().get("/x", ok).fallback(ok));
        assert_eq!(
            router.errors(),
            [RouteError::NestedFallback {
                prefix: "/api".into()
            }]
        );
        assert!(router.fallback_handler().is_none());
    }

    #[test]
    fn nested_errors_come_along() {
        let inner = Router::new().get("no-slash", ok);
        let router = Router::new().nest("/api", inner);
        assert!(matches!(
            router.errors(),
            [RouteError::NoLeadingSlash { .. }]
        ));
    }

    #[test]
    fn merge_combines_routes_and_refuses_duplicates() {
        let a = Router::new().get("/a", ok).get("/same", ok);
        let b = Router::new()
            .post("/b", ok)
            .get("/same", ok)
            .post("/same", ok);
        let router = a.merge(b);
        assert_eq!(route_of(&router, "GET", "/a"), Some("GET /a".into()));
        assert_eq!(route_of(&router, "POST", "/b"), Some("POST /b".into()));
        assert_eq!(
            route_of(&router, "POST", "/same"),
            Some("POST /same".into())
        );
        assert_eq!(
            router.errors(),
            [RouteError::Duplicate {
                method: "GET".into(),
                pattern: "/same".into()
            }]
        );
        let msg = router.errors()[0].to_string();
        assert!(msg.contains("`GET /same` is registered twice"), "{msg}");
    }

    #[test]
    fn merge_keeps_one_fallback_and_refuses_two() {
        let router = Router::new().merge(Router::new().fallback(ok));
        assert!(router.fallback_handler().is_some() && router.errors().is_empty());
        let router = Router::new().fallback(ok).merge(Router::new().fallback(ok));
        assert_eq!(router.errors(), [RouteError::TwoFallbacks]);
    }

    #[test]
    fn state_is_stored_kept_through_merge_and_nest_and_refused_twice() {
        assert!(Router::new().state().is_none());
        let router = Router::with_state(42u32);
        let state = router.state().expect("stored");
        assert_eq!(state.downcast_ref::<u32>(), Some(&42));

        let router = Router::new().merge(Router::with_state("db"));
        let state = router.state().and_then(|s| s.downcast_ref::<&str>());
        assert_eq!(state, Some(&"db"));
        let router = Router::with_state(1u8).nest("/api", Router::new().get("/x", ok));
        assert_eq!(router.state().and_then(|s| s.downcast_ref()), Some(&1u8));
        assert!(router.errors().is_empty());

        let router = Router::with_state(1u8).nest("/api", Router::with_state(2u8));
        assert_eq!(router.errors(), [RouteError::TwoStates]);
        assert_eq!(router.state().and_then(|s| s.downcast_ref()), Some(&1u8));
    }
}
