//! The chat page in a real browser: headless Chromium opens it, its WebSocket joins the
//! room, another client posts a line, and the line is in the page's DOM (`--dump-dom`).
//! Skipped when Chromium is missing, unless `CI` is set (then it fails).
//!
//! `--dump-dom` prints the DOM once the page has loaded, so the page must not finish
//! loading before the line is shown: the test serves the chat page at `/probe` with two
//! additions of its own — an image (`/hold`) whose answer waits until the page reports the
//! line, and a few lines of script that report it (`/seen`) as soon as the chat's own
//! script has put it in the log. The room, the WebSocket and the rendering are the page's.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{TestServer, eventually};
use corral::{Request, Response, Router, Status};
use may::sync::mpsc;

const LINE: &str = "bob: hello from another client";
/// How long the browser may take, start to dump, before the test gives up on it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium's binary, if one runs here; otherwise the test is skipped (outside CI).
fn chromium() -> Option<&'static str> {
    for program in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            return Some(program);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("chromium is required in CI (apt-get install chromium)");
    }
    eprintln!("skipped: chromium is not installed; apt-get install chromium");
    None
}

fn probe_page() -> String {
    let probe = format!(
        r#"<script>
new MutationObserver(() => {{
  if (log.textContent.includes({LINE:?})) fetch('/seen');
}}).observe(log, {{childList: true}});
</script>
<img src="/hold" alt="">
"#
    );
    format!("{}{probe}", common::app::chat::PAGE)
}

fn router() -> Router {
    let (seen, held) = mpsc::channel::<()>();
    let seen = Mutex::new(seen);
    let held = may::sync::Mutex::new(held);
    let page = probe_page();
    common::app::chat::router(common::app::pubsub::Topics::new(
        Duration::from_secs(30),
        Duration::from_secs(15),
    ))
    .get("/probe", move |_req: &Request| {
        Response::text(page.clone()).with_content_type("text/html; charset=utf-8")
    })
    .get("/seen", move |_req: &Request| {
        let _ = seen.lock().unwrap().send(());
        Status::NO_CONTENT
    })
    .get("/hold", move |_req: &Request| {
        let held = held.lock().unwrap();
        match held.recv_timeout(BROWSER_TIMEOUT) {
            Ok(()) => Status::NO_CONTENT,
            Err(_) => Status::GATEWAY_TIMEOUT,
        }
    })
}

fn say(srv: &TestServer, line: &str) -> String {
    let mut c = srv.client();
    c.send(
        format!(
            "POST /say HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        )
        .as_bytes(),
    );
    c.reply().text().trim().to_string()
}

#[test]
fn a_line_from_another_client_appears_in_the_chat_page() {
    let Some(program) = chromium() else { return };
    let srv = TestServer::start(common::test_config(), router());
    let profile = std::env::temp_dir().join(format!("corral-chromium-{}", std::process::id()));
    let child = Command::new(program)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/probe", srv.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let (done, dumped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });

    // The page's WebSocket is in the room once a line posted reaches one listener.
    eventually(
        BROWSER_TIMEOUT,
        "the page's WebSocket joins the room",
        || say(&srv, "carol: is anyone there?") == "1",
    );
    assert_eq!(say(&srv, LINE), "1");

    let dom = match dumped.recv_timeout(BROWSER_TIMEOUT) {
        Ok(output) => String::from_utf8_lossy(&output.expect("chromium ran").stdout).into_owned(),
        Err(_) => {
            // SAFETY-free: a signal to the child we started, by its pid.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(dom.contains(&format!("<p>{LINE}</p>")), "{dom}");
    assert!(dom.contains(r#"<p id="status">connected</p>"#), "{dom}");
}
