//! `corral::StaticFiles` over real sockets: validators, conditional and range requests,
//! HEAD, path safety, the in-memory cache and its revalidation, and large files streamed.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Client, Reply, TestServer, eventually, rss_bytes, test_config};
use corral::{Router, StaticFiles};

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("corral-static-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 4 KiB of text that differs at every offset (so a wrong range shows).
fn four_k() -> Vec<u8> {
    (0..4096u32).map(|i| b'a' + (i % 26) as u8).collect()
}

fn serve(files: StaticFiles) -> TestServer {
    TestServer::start(test_config(), Router::new().get("/static/*path", files))
}

fn site() -> (TempDir, TestServer) {
    let dir = TempDir::new("site");
    dir.write("4k.txt", &four_k());
    let srv = serve(StaticFiles::new(&dir.0));
    (dir, srv)
}

/// `method path` with extra header lines, then the reply (HEAD: the head only).
fn ask(c: &mut Client, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    c.send(request.as_bytes());
    match method {
        "HEAD" => c.head_reply(),
        _ => c.reply(),
    }
}

fn get(c: &mut Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    ask(c, "GET", path, headers)
}

#[test]
fn a_file_is_served_with_etag_last_modified_and_accept_ranges() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    for _ in 0..2 {
        // The first answer comes from the disk, the second from memory: the same.
        let r = get(&mut c, "/static/4k.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, four_k());
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        let etag = r.header("etag").expect("an ETag");
        assert!(etag.starts_with('"') && etag.ends_with("-1000\""), "{etag}");
        let modified = r.header("last-modified").expect("a Last-Modified");
        httpdate::parse_http_date(modified).expect("an HTTP-date");
    }
}

#[test]
fn matching_if_none_match_is_304_with_validators_and_no_body() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    let first = get(&mut c, "/static/4k.txt", &[]);
    let etag = first.header("etag").unwrap().to_string();
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for field in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let r = get(&mut c, "/static/4k.txt", &[("If-None-Match", field)]);
        assert_eq!(r.status, 304, "{field}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("last-modified"), first.header("last-modified"));
        assert_eq!(r.header("content-length"), None);
    }
    let r = get(&mut c, "/static/4k.txt", &[("If-None-Match", "\"other\"")]);
    assert_eq!((r.status, r.body.len()), (200, 4096));
    // HEAD is conditional too.
    let r = ask(
        &mut c,
        "HEAD",
        "/static/4k.txt",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    // The connection is still in step.
    assert_eq!(get(&mut c, "/static/4k.txt", &[]).body, four_k());
}

#[test]
fn if_modified_since_is_304_only_without_a_disagreeing_if_none_match() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    let first = get(&mut c, "/static/4k.txt", &[]);
    let modified = first.header("last-modified").unwrap().to_string();
    let r = get(
        &mut c,
        "/static/4k.txt",
        &[("If-Modified-Since", &modified)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), first.header("etag"));
    let earlier = "Sat, 01 Jan 2000 00:00:00 GMT";
    let r = get(&mut c, "/static/4k.txt", &[("If-Modified-Since", earlier)]);
    assert_eq!((r.status, r.body.len()), (200, 4096));
    let r = get(
        &mut c,
        "/static/4k.txt",
        &[("If-Modified-Since", "yesterday")],
    );
    assert_eq!(r.status, 200, "an invalid date is ignored");
    let r = get(
        &mut c,
        "/static/4k.txt",
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &modified),
        ],
    );
    assert_eq!(r.status, 200, "If-None-Match decides when it is there");
}

#[test]
fn if_match_that_fails_is_412() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    let etag = get(&mut c, "/static/4k.txt", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let r = get(&mut c, "/static/4k.txt", &[("If-Match", "\"other\"")]);
    assert_eq!(r.status, 412);
    let r = get(&mut c, "/static/4k.txt", &[("If-Match", &etag)]);
    assert_eq!(r.status, 200);
}

#[test]
fn single_ranges_are_206_past_the_end_416_and_several_200() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    let whole = four_k();
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=4000-", 4000, 4095),
        ("bytes=-10", 4086, 4095),
        ("bytes=4090-99999", 4090, 4095),
        ("bytes=-99999", 0, 4095),
    ] {
        // Twice: from the disk the first time, from memory after.
        for _ in 0..2 {
            let r = get(&mut c, "/static/4k.txt", &[("Range", range)]);
            assert_eq!(r.status, 206, "{range}");
            let content_range = format!("bytes {start}-{end}/4096");
            assert_eq!(r.header("content-range"), Some(content_range.as_str()));
            assert_eq!(r.body, &whole[start..=end], "{range}");
        }
    }
    for range in ["bytes=4096-", "bytes=5000-6000", "bytes=-0"] {
        let r = get(&mut c, "/static/4k.txt", &[("Range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */4096"));
    }
    for ignored in ["bytes=0-1,5-6", "bytes=9-2", "lines=0-1", "bytes=abc"] {
        let r = get(&mut c, "/static/4k.txt", &[("Range", ignored)]);
        assert_eq!((r.status, r.body.len()), (200, 4096), "{ignored}");
        assert_eq!(r.header("content-range"), None);
    }
}

#[test]
fn a_failed_if_range_gets_the_whole_file() {
    let (_dir, srv) = site();
    let mut c = srv.client();
    let first = get(&mut c, "/static/4k.txt", &[]);
    let etag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();
    for holds in [etag.as_str(), modified.as_str()] {
        let r = get(
            &mut c,
            "/static/4k.txt",
            &[("Range", "bytes=0-0"), ("If-Range", holds)],
        );
        assert_eq!((r.status, r.body.len()), (206, 1), "{holds}");
    }
    let weak = format!("W/{etag}");
    for stale in ["\"other\"", weak.as_str(), "Sat, 01 Jan 2000 00:00:00 GMT"] {
        let r = get(
            &mut c,
            "/static/4k.txt",
            &[("Range", "bytes=0-0"), ("If-Range", stale)],
        );
        assert_eq!((r.status, r.body.len()), (200, 4096), "{stale}");
    }
}

#[test]
fn head_answers_the_headers_get_would_without_the_body() {
    let dir = TempDir::new("head");
    dir.write("4k.txt", &four_k());
    dir.write("big.bin", &vec![7u8; 300_000]);
    let srv = serve(StaticFiles::new(&dir.0).max_cached_file_bytes(100_000));
    let mut c = srv.client();
    for (path, len) in [("/static/4k.txt", "4096"), ("/static/big.bin", "300000")] {
        let got = get(&mut c, path, &[]);
        let head = ask(&mut c, "HEAD", path, &[]);
        assert_eq!(head.status, 200);
        for name in [
            "content-length",
            "content-type",
            "etag",
            "last-modified",
            "accept-ranges",
        ] {
            assert_eq!(head.header(name), got.header(name), "{path} {name}");
        }
        assert_eq!(head.header("content-length"), Some(len));
        let head = ask(&mut c, "HEAD", path, &[("Range", "bytes=1-2")]);
        assert_eq!(head.status, 206);
        assert_eq!(head.header("content-length"), Some("2"));
    }
    // No body followed any HEAD answer: the next reply on the connection is in step.
    assert_eq!(get(&mut c, "/static/4k.txt", &[]).body, four_k());
}

#[test]
fn paths_out_of_the_root_are_404() {
    let outer = TempDir::new("outer");
    outer.write("secret.txt", b"secret");
    let root = outer.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("4k.txt"), four_k()).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("up.txt")).unwrap();
    std::os::unix::fs::symlink(outer.0.join("secret.txt"), root.join("abs.txt")).unwrap();
    std::os::unix::fs::symlink("..", root.join("parent")).unwrap();
    std::os::unix::fs::symlink("4k.txt", root.join("alias.txt")).unwrap();
    let srv = serve(StaticFiles::new(&root));
    let mut c = srv.client();
    for bad in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/..%2fsecret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/static/4k.txt%00",
        "/static/.%2f4k.txt",
        "/static/up.txt",
        "/static/abs.txt",
        "/static/parent/secret.txt",
        "/static/missing.txt",
        "/static/4k.txt/",
    ] {
        let r = get(&mut c, bad, &[]);
        assert_eq!(r.status, 404, "{bad}");
        assert!(!r.body.starts_with(b"secret"), "{bad}");
    }
    // A symlink that stays inside the root is followed.
    assert_eq!(get(&mut c, "/static/alias.txt", &[]).body, four_k());
}

#[test]
fn a_directory_redirects_to_its_slash_which_serves_its_index() {
    let dir = TempDir::new("dirs");
    dir.write("docs/index.html", b"<p>docs</p>");
    dir.write("empty/x.txt", b"x");
    let srv = serve(StaticFiles::new(&dir.0));
    let mut c = srv.client();
    let r = get(&mut c, "/static/docs?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/static/docs/?x=1"));
    let r = get(&mut c, "/static/docs/", &[]);
    assert_eq!((r.status, r.text()), (200, "<p>docs</p>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(get(&mut c, "/static/empty/", &[]).status, 404);
    let srv = serve(StaticFiles::new(&dir.0).index_file(None));
    assert_eq!(get(&mut srv.client(), "/static/docs/", &[]).status, 404);
}

#[test]
fn methods_other_than_get_and_head_are_405() {
    let dir = TempDir::new("methods");
    dir.write("4k.txt", &four_k());
    let router = Router::new().any("/static/*path", StaticFiles::new(&dir.0));
    let srv = TestServer::start(test_config(), router);
    let mut c = srv.client();
    c.send(b"DELETE /static/4k.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert!(dir.0.join("4k.txt").exists());
}

#[test]
fn a_held_file_is_served_from_memory_within_the_revalidation_window() {
    let dir = TempDir::new("held");
    let path = dir.write("page.txt", b"version one");
    let srv = serve(StaticFiles::new(&dir.0).revalidate_after(Duration::from_secs(3600)));
    // One connection: its scheduler's cache shard holds the file after the first answer.
    let mut c = srv.client();
    assert_eq!(get(&mut c, "/static/page.txt", &[]).text(), "version one");
    std::fs::write(&path, b"version two, longer").unwrap();
    assert_eq!(get(&mut c, "/static/page.txt", &[]).text(), "version one");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(get(&mut c, "/static/page.txt", &[]).text(), "version one");
}

#[test]
fn an_edited_file_is_served_fresh_after_the_revalidation_window() {
    let dir = TempDir::new("edited");
    let path = dir.write("page.txt", b"version one");
    let srv = serve(StaticFiles::new(&dir.0).revalidate_after(Duration::from_millis(20)));
    let mut c = srv.client();
    let first = get(&mut c, "/static/page.txt", &[]);
    assert_eq!(first.text(), "version one");
    std::fs::write(&path, b"version two, longer").unwrap();
    let mut last = String::new();
    eventually(Duration::from_secs(5), "the edit is served", || {
        last = get(&mut c, "/static/page.txt", &[]).text().to_string();
        last == "version two, longer"
    });
    // With validators of its own.
    let r = get(&mut c, "/static/page.txt", &[]);
    assert_ne!(r.header("etag"), first.header("etag"));
    // A file that is gone is 404 after the window too.
    std::fs::remove_file(&path).unwrap();
    eventually(Duration::from_secs(5), "the removal is seen", || {
        get(&mut c, "/static/page.txt", &[]).status == 404
    });
}

/// The byte at `offset` of the large test file: a pattern that repeats only every 251 bytes
/// and differs from its neighbours, so a piece out of place or missing shows.
fn large_byte(offset: u64) -> u8 {
    (offset % 251) as u8 ^ ((offset >> 16) as u8)
}

/// A GET whose body is checked against `large_byte` as it arrives, never held whole.
struct LargeBody {
    stream: std::net::TcpStream,
    head: Reply,
    /// Body bytes that came with the head.
    early: Vec<u8>,
    checked: u64,
}

impl LargeBody {
    fn get(srv: &TestServer, path: &str) -> LargeBody {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(srv.addr).unwrap();
        stream
            .set_read_timeout(Some(common::CLIENT_TIMEOUT))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            let n = stream.read(&mut piece).unwrap();
            assert!(n > 0, "closed before the head");
            buf.extend_from_slice(&piece[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = parsed.parse(&buf).unwrap() {
                let head = Reply {
                    status: parsed.code.unwrap(),
                    reason: parsed.reason.unwrap().to_string(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
                        .collect(),
                    body: Vec::new(),
                };
                let early = buf[len..].to_vec();
                return LargeBody {
                    stream,
                    head,
                    early,
                    checked: 0,
                };
            }
        }
    }

    fn check_until(&mut self, until: u64) {
        let mut piece = vec![0u8; 1 << 16];
        while self.checked < until {
            let n = if self.early.is_empty() {
                let want = ((until - self.checked) as usize).min(piece.len());
                self.stream.read(&mut piece[..want]).unwrap()
            } else {
                let n = self.early.len();
                piece[..n].copy_from_slice(&self.early);
                self.early.clear();
                n
            };
            assert!(n > 0, "closed at byte {}", self.checked);
            for (i, &b) in piece[..n].iter().enumerate() {
                let at = self.checked + i as u64;
                assert_eq!(b, large_byte(at), "byte {at}");
            }
            self.checked += n as u64;
        }
    }
}

#[test]
fn a_large_file_is_streamed_whole_while_the_server_holds_one_piece() {
    const LEN: u64 = 64 << 20;
    let dir = TempDir::new("large");
    let bytes: Vec<u8> = (0..LEN).map(large_byte).collect();
    dir.write("large.bin", &bytes);
    drop(bytes);
    let srv = serve(StaticFiles::new(&dir.0));
    let before = rss_bytes();
    let mut body = LargeBody::get(&srv, "/static/large.bin");
    assert_eq!(body.head.status, 200);
    assert_eq!(
        body.head.header("content-length"),
        Some(LEN.to_string().as_str())
    );
    assert_eq!(
        body.head.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(body.head.header("etag").is_some());
    // Read 4 MiB, then look at the process: a server that read the file whole would hold
    // all 64 MiB of it by now (it sends the head only after the read).
    body.check_until(4 << 20);
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 32 << 20, "the process grew by {} MiB", grown >> 20);
    body.check_until(LEN);
    let mut c = srv.client();
    // A range of it, streamed from its offset.
    let r = get(
        &mut c,
        "/static/large.bin",
        &[("Range", "bytes=40000000-40000099")],
    );
    assert_eq!(r.status, 206);
    let want: Vec<u8> = (40_000_000..40_000_100).map(large_byte).collect();
    assert_eq!(r.body, want);
}

#[test]
fn the_demo_serves_its_static_dir_through_static_files() {
    let srv = TestServer::demo(|c| {
        c.demo.static_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static");
    });
    let mut c = srv.client();
    let r = get(&mut c, "/static/4k.txt", &[]);
    assert_eq!((r.status, r.body.len()), (200, 4096));
    assert!(r.header("etag").is_some());
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(
        get(&mut c, "/static/4k.txt", &[("If-None-Match", &etag)]).status,
        304
    );
}
