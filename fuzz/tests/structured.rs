//! The checks under proptest, without coverage guidance: random bytes for each target (for
//! `pipeline` every byte string is a plan), and request-shaped streams for `conn` built from
//! valid heads, mutated, concatenated and cut anywhere. `PROPTEST_CASES` sets how many.

use proptest::prelude::*;

const HEADS: [&[u8]; 6] = [
    b"GET /hi HTTP/1.1\r\nHost: f\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /echo HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: f\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"GET /panic HTTP/1.1\r\nHost: f\r\n\r\n",
];

/// A request from `HEADS`, maybe with one byte changed, inserted or removed.
fn mutated_request() -> impl Strategy<Value = Vec<u8>> {
    (
        0..HEADS.len(),
        any::<u8>(),
        any::<prop::sample::Index>(),
        0..4u8,
    )
        .prop_map(|(i, byte, at, how)| {
            let mut request = HEADS[i].to_vec();
            let at = at.index(request.len());
            match how {
                0 => request[at] = byte,
                1 => request.insert(at, byte),
                2 => {
                    request.remove(at);
                }
                _ => {}
            }
            request
        })
}

proptest! {
    #[test]
    fn head(data in prop::collection::vec(any::<u8>(), 0..400)) {
        corral_fuzz::head::check(&data);
    }

    #[test]
    fn differential(data in prop::collection::vec(any::<u8>(), 0..300)) {
        corral_fuzz::differential::check(&data);
    }

    #[test]
    fn differential_on_mutated_heads(seed in any::<u8>(), request in mutated_request()) {
        let mut data = vec![seed];
        data.extend(request);
        corral_fuzz::differential::check(&data);
    }

    #[test]
    fn chunked(data in prop::collection::vec(any::<u8>(), 0..400)) {
        corral_fuzz::chunked::check(&data);
    }

    #[test]
    fn pipeline(data in prop::collection::vec(any::<u8>(), 0..200)) {
        corral_fuzz::pipeline::check(&data);
    }

    #[test]
    fn conn_on_request_shaped_streams(
        seed in any::<u8>(),
        requests in prop::collection::vec(mutated_request(), 1..6),
    ) {
        let mut data = vec![seed];
        data.extend(requests.concat());
        corral_fuzz::conn::check(&data);
    }
}

#[test]
fn every_kind_of_planned_request_gets_its_answer_alone_and_after_another() {
    for kind in 0..corral_fuzz::pipeline::KINDS as u8 {
        for seed in [0, 5, 7] {
            // Seed, one request of `kind` with 3 body bytes; then GET /hi before it.
            corral_fuzz::pipeline::check(&[seed, 0, 0, kind, 3, 1, 2, 3]);
            corral_fuzz::pipeline::check(&[seed, 1, 0, 0, 0, kind, 3, 1, 2, 3]);
        }
    }
}
