//! What a handler may return: the `IntoResponse` conversions, `Json`, and `HttpError`.

use std::borrow::Cow;

use super::response::Response;
use super::status::Status;

/// Anything a handler may return: `Response`, `&'static str`, `String`, `Vec<u8>`, `Status`,
/// `(Status, T)`, [`Json`], [`HttpError`], and `Result<T, E>` where both sides are
/// `IntoResponse`, so a handler can use `?` with its own error type.
///
/// One enum for everything that can go wrong in an app, one `impl IntoResponse` for it, and
/// every handler returns `Result<_, AppError>`:
///
/// ```
/// use corral::{HttpError, IntoResponse, Json, Request, Response, Router, Status};
///
/// #[derive(serde::Serialize)]
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// enum AppError {
///     /// No such user: 404.
///     NotFound,
///     /// A malformed request (here: `param_as` on a bad `:id`): its own 400.
///     BadRequest(HttpError),
///     /// The database failed: logged, and the client sees a bare 500.
///     Database(std::io::Error),
/// }
///
/// impl From<HttpError> for AppError {
///     fn from(err: HttpError) -> Self {
///         AppError::BadRequest(err)
///     }
/// }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         match self {
///             AppError::NotFound => Status::NOT_FOUND.into_response(),
///             AppError::BadRequest(err) => err.into_response(),
///             AppError::Database(err) => {
///                 log::error!("database: {err}"); // the detail stays in the log
///                 Status::INTERNAL_SERVER_ERROR.into_response()
///             }
///         }
///     }
/// }
///
/// fn load_user(id: u64) -> std::io::Result<Option<User>> {
///     Ok((id == 1).then(|| User { id, name: "Ada".into() }))
/// }
///
/// fn get_user(req: &Request) -> Result<Json<User>, AppError> {
///     let id: u64 = req.param_as("id")?;
///     let user = load_user(id).map_err(AppError::Database)?;
///     Ok(Json(user.ok_or(AppError::NotFound)?))
/// }
///
/// let app = Router::new().get("/users/:id", get_user);
/// assert!(app.errors().is_empty());
///
/// let not_found: Result<Json<User>, AppError> = Err(AppError::NotFound);
/// assert_eq!(not_found.into_response().status(), Status::NOT_FOUND);
/// let failed = AppError::Database(std::io::Error::other("connection reset"));
/// assert_eq!(failed.into_response().status(), Status::INTERNAL_SERVER_ERROR);
/// ```
pub trait IntoResponse {
    /// Converts `self` into the response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes("application/octet-stream", self)
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        if self.allows_body() && self.0 >= 400 {
            Response::error(self)
        } else {
            Response::new(self)
        }
    }
}

impl<T: IntoResponse> IntoResponse for (Status, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// A JSON body: `Json(value)` serialises with serde_json (`application/json`); a value that
/// fails to serialise is logged and answered with 500.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::bytes("application/json", body),
            Err(err) => {
                log::error!("JSON serialisation failed: {err}");
                Response::error(Status::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// An error a handler returns with `?`: a status and a fixed message (never request input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status:?}: {message}")]
pub struct HttpError {
    /// The response status.
    pub status: Status,
    /// The plain-text response body (a newline is added).
    pub message: Cow<'static, str>,
}

impl HttpError {
    /// An error with `status` and a fixed `message`.
    pub fn new(status: Status, message: impl Into<Cow<'static, str>>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    /// A 400 with a fixed `message`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::BAD_REQUEST, message)
    }

    /// A 404 "Not Found".
    pub fn not_found() -> Self {
        Self::new(Status::NOT_FOUND, "Not Found")
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut text = self.message.into_owned();
        text.push('\n');
        Response::text(text).with_status(self.status)
    }
}
