//! `--app echo`: the HTTP Garden origin-echo JSON of the request as Corral parsed it.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::TestServer;

fn decode(v: &serde_json::Value) -> String {
    let text = v.as_str().expect("a base64 string");
    String::from_utf8(STANDARD.decode(text).expect("valid base64")).expect("utf-8")
}

#[test]
fn echo_round_trips_method_target_headers_in_order_and_chunked_body() {
    let config = common::test_config();
    let srv = TestServer::start(config, common::app::echo::router());
    let mut c = srv.client();
    c.send(
        b"PATCH /any/path?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n\
          Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(decode(&json["method"]), "PATCH");
    assert_eq!(decode(&json["uri"]), "/any/path?x=1&y=%20");
    assert_eq!(decode(&json["version"]), "HTTP/1.1");
    assert_eq!(decode(&json["body"]), "abcde");
    let headers: Vec<(String, String)> = json["headers"]
        .as_array()
        .expect("array")
        .iter()
        .map(|pair| (decode(&pair[0]), decode(&pair[1])))
        .collect();
    let expected = [
        ("Host", "h"),
        ("X-B", "2"),
        ("x-a", "1"),
        ("X-B", "3"),
        ("Transfer-Encoding", "chunked"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(headers, expected);
    // Any method and path is answered, on the same connection.
    c.send(b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n");
    let json: serde_json::Value = serde_json::from_slice(&c.reply().body).expect("json");
    assert_eq!(decode(&json["method"]), "BREW");
}
