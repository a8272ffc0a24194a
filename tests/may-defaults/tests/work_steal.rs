//! `may = "0.3"` in this crate's manifest turns on may's `work_steal` for the whole build: the
//! server must refuse to start and name the feature and the fix.

use corral::RuntimeError;
use corral::{Router, Server, ServerError};

#[test]
fn a_may_built_with_work_steal_is_refused_with_the_feature_named() {
    let config = corral_may_defaults::test_config();
    assert!(config.server.workers >= 2, "stealing needs two workers");
    let router = Router::new().get("/", |_: &corral::Request| "never served");
    let err = Server::start(config, router)
        .err()
        .expect("Server::start refuses a may that steals work");
    assert!(
        matches!(err, ServerError::Runtime(RuntimeError::WorkSteal)),
        "wrong refusal: {err}"
    );
    let message = err.to_string();
    for needle in [
        "`work_steal`",
        "default-features = false",
        "features = [\"io_timeout\", \"io_cancel\"]",
        "corral::may",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}
