//! A real client: curl against an in-process demo server (CI installs curl).

mod common;

use std::process::Command;

use common::TestServer;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--http1.1", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn curl_gets_posts_streams_and_uploads() {
    let srv = TestServer::demo(|_| {});
    let base = format!("http://{}", srv.addr);
    assert_eq!(curl(&[&format!("{base}/plaintext")]), "Hello, World!");
    let head = curl(&["--head", &format!("{base}/plaintext")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 13\r\n"), "{head}");
    assert_eq!(
        curl(&[
            "--data-binary",
            "payload",
            "-H",
            "Content-Type: text/x",
            &format!("{base}/echo")
        ]),
        "payload"
    );
    // curl sends a chunked upload and, for a large body, waits for 100 Continue.
    let big = "z".repeat(200_000);
    let file = std::env::temp_dir().join(format!("corral-curl-{}.bin", std::process::id()));
    std::fs::write(&file, &big).expect("temp file");
    let upload = format!("@{}", file.display());
    assert_eq!(
        curl(&[
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &upload,
            &format!("{base}/echo")
        ])
        .len(),
        big.len()
    );
    assert_eq!(
        curl(&[&format!("{base}/stream?n=3&ms=5")]),
        "chunk 0\nchunk 1\nchunk 2\n"
    );
    // Keep-alive across several URLs in one curl invocation.
    let both = curl(&[&format!("{base}/plaintext"), &format!("{base}/json")]);
    assert_eq!(both, "Hello, World!{\"message\":\"Hello, World!\"}");
}
