//! The handler API: plain functions registered on method + path patterns.
//!
//! ```ignore
//! let app = Router::new()
//!     .get("/users/:id", get_user)       // fn get_user(req: &Request) -> impl IntoResponse
//!     .post("/echo", echo)
//!     .get("/static/*path", static_files);
//! ```
//! A bad pattern does not panic here: the errors are collected and `Server::start` refuses
//! to start, naming each one.

pub mod tree;

use crate::http::request::Request;
use crate::http::response::{IntoResponse, Response};

pub use crate::http::params::Params;
pub use tree::{Found, RouteError, RouteId};

/// A request handler: any `Fn(&Request) -> impl IntoResponse` that is `Send + Sync`.
pub trait Handler: Send + Sync + 'static {
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

pub type BoxHandler = Box<dyn Handler>;

/// Routes plus an optional fallback for requests no route matches.
pub struct Router {
    routes: tree::Routes<BoxHandler>,
    fallback: Option<BoxHandler>,
    errors: Vec<RouteError>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    pub fn new() -> Self {
        Router {
            routes: tree::Routes::new(),
            fallback: None,
            errors: Vec::new(),
        }
    }

    /// Registers `handler` for `method` on `pattern` (`/users/:id`, `/static/*path`).
    pub fn route(mut self, method: &str, pattern: &str, handler: impl Handler) -> Self {
        if let Err(err) = self.routes.add(method, pattern, Box::new(handler)) {
            self.errors.push(err);
        }
        self
    }

    pub fn get(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("GET", pattern, handler)
    }

    pub fn post(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("POST", pattern, handler)
    }

    pub fn put(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("PUT", pattern, handler)
    }

    pub fn delete(self, pattern: &str, handler: impl Handler) -> Self {
        self.route("DELETE", pattern, handler)
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

    pub fn routes(&self) -> &tree::Routes<BoxHandler> {
        &self.routes
    }
}
