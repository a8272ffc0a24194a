//! `corral --app echo`: every request answered with the HTTP Garden's origin-echo JSON of
//! what Corral parsed — method, target, version, headers in order, body — each base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use corral::{Json, Request, Router};

pub fn router() -> Router {
    Router::new().fallback(echo)
}

#[derive(serde::Serialize)]
struct Echo {
    method: String,
    uri: String,
    version: String,
    headers: Vec<[String; 2]>,
    body: String,
}

fn echo(req: &Request) -> Json<Echo> {
    Json(Echo {
        method: STANDARD.encode(req.method()),
        uri: STANDARD.encode(req.target()),
        version: STANDARD.encode(req.version().as_str()),
        headers: req
            .headers()
            .map(|(name, value)| [STANDARD.encode(name), STANDARD.encode(value)])
            .collect(),
        body: STANDARD.encode(req.body()),
    })
}
