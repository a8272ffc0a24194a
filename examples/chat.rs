//! Run with: cargo run --release --example chat
//! Then open http://127.0.0.1:3001/ in two browser windows, or:
//!     curl -N http://127.0.0.1:3001/events &   curl -d 'hello' http://127.0.0.1:3001/say
//!
//! A chat on Server-Sent Events and long-polling: every handler is a plain function, the
//! waiting ones block in sequential code while thousands of others wait alongside.

use std::time::Duration;

use corral::{Config, Server};

fn main() -> Result<(), corral::ServerError> {
    env_logger::init();
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:3001".into();
    let app = corral::app::chat::router(Duration::from_secs(15), Duration::from_secs(30));
    let server = Server::start(config, app)?;
    log::warn!("chat on http://{}/", server.local_addr());
    loop {
        std::thread::park();
    }
}
