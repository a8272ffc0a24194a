//! `Server::start` called from inside a coroutine: may's scheduler is up already (it runs the
//! caller), so Corral cannot have configured it, nor can it block a worker to check it.

use corral::RuntimeError;
use corral::{Router, Server, ServerError};

#[test]
fn a_server_started_from_a_coroutine_is_refused() {
    // Built here, not in the coroutine: parsing the embedded TOML needs more than may's
    // default coroutine stack; the refusal itself must not.
    let config = corral_may_defaults::test_config();
    let refusal = may::go!(move || {
        let router = Router::new().get("/", |_: &corral::Request| "never served");
        Server::start(config, router).err().map(|err| {
            (
                matches!(err, ServerError::Runtime(RuntimeError::StartedInCoroutine)),
                err.to_string(),
            )
        })
    })
    .join()
    .expect("the coroutine returned");
    let (right_kind, message) = refusal.expect("Server::start refuses inside a coroutine");
    assert!(right_kind, "wrong refusal: {message}");
    assert!(message.contains("from inside a may coroutine"), "{message}");
    assert!(
        message.contains("start the server from a plain thread"),
        "{message}"
    );
}
