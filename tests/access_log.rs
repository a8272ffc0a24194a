//! The access log names the client and a request id (the client's `X-Request-Id` when it is a
//! plain token, else one of ours). Its own test binary: the logger is process-wide.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;

use common::TestServer;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct AccessLog;

impl log::Log for AccessLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "corral::access"
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// The access-log lines of requests for `path`.
fn lines_for(path: &str) -> Vec<String> {
    let needle = format!(" GET {path} ");
    let lines = LINES.lock().unwrap();
    lines
        .iter()
        .filter(|l| l.contains(&needle))
        .cloned()
        .collect()
}

#[test]
fn each_request_is_logged_with_its_client_and_request_id() {
    static LOGGER: AccessLog = AccessLog;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let client = c.stream.local_addr().unwrap().to_string();
    let get = |c: &mut common::Client, path: &str, id: Option<&str>| {
        let id = id.map_or(String::new(), |id| format!("X-Request-Id: {id}\r\n"));
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{id}\r\n").as_bytes());
        assert_eq!(c.reply().status, 200);
    };
    get(&mut c, "/plaintext?given", Some("abc-123.x"));
    get(&mut c, "/plaintext?forged", Some("two words"));
    get(&mut c, "/plaintext?none", None);

    let given = lines_for("/plaintext?given");
    assert_eq!(given.len(), 1, "{given:?}");
    assert!(
        given[0].starts_with(&format!("{client} abc-123.x ")),
        "{given:?}"
    );

    let ours = format!("{:x}-", std::process::id());
    for path in ["/plaintext?forged", "/plaintext?none"] {
        let lines = lines_for(path);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let mut fields = lines[0].split(' ');
        assert_eq!(fields.next(), Some(client.as_str()), "{lines:?}");
        assert!(fields.next().unwrap().starts_with(&ours), "{lines:?}");
    }
    // Two generated ids differ.
    let id = |path| lines_for(path)[0].split(' ').nth(1).unwrap().to_string();
    assert_ne!(id("/plaintext?forged"), id("/plaintext?none"));
}
