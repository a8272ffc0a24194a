//! Tables of valid and invalid bodies, every case re-run split at every byte (hyper decode.rs
//! `all_async_cases`), and proptests: encode-split-decode round trip, no input panics.

use super::{ChunkedDecoder, ChunkedError, ChunkedError as E};
use proptest::prelude::*;

const LINE: usize = 64;
const BODY: u64 = 64;

/// What a decode run produced: the body, the bytes consumed in total, whether it completed.
type Run = Result<(Vec<u8>, usize, bool), ChunkedError>;

/// Feeds `pieces` the way a connection does: bytes not consumed are kept and offered again
/// with the next piece; stops at completion, leaving later bytes alone.
fn feed<'p>(mut dec: ChunkedDecoder, pieces: impl IntoIterator<Item = &'p [u8]>) -> Run {
    let (mut out, mut pending, mut total) = (Vec::new(), Vec::new(), 0);
    for piece in pieces {
        pending.extend_from_slice(piece);
        let (used, done) = dec.decode(&pending, &mut out)?;
        assert!(used <= pending.len());
        total += used;
        pending.drain(..used);
        if done {
            return Ok((out, total, true));
        }
    }
    Ok((out, total, false))
}

fn decode_with(input: &[u8], line: usize, body: u64) -> Run {
    feed(ChunkedDecoder::new(line, body), [input])
}

fn decode(input: &[u8]) -> Run {
    decode_with(input, LINE, BODY)
}

/// (input, body, bytes consumed): every case completes.
const VALID: &[(&[u8], &[u8], usize)] = &[
    (b"0\r\n\r\n", b"", 0),
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", 0),
    (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
    (
        b"1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",
        b"0123456789abcdef0123456789abcde",
        0,
    ),
    // Leading zeros and a last-chunk of several zeros.
    (b"0005\r\nhello\r\n000\r\n\r\n", b"hello", 0),
    // Chunk data is opaque: CR, LF and NUL inside it are data.
    (b"4\r\n\r\n\0\n\r\n0\r\n\r\n", b"\r\n\0\n", 0),
    // Extensions: names, token values, quoted values, BWS around every separator.
    (b"5;a\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5;a=b\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5\t;\ta\t=\t\"\"\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5;a=\"q \\\" ;x\";b\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5;a=\"\xff\" ;b\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    // A quoted-pair may escape HTAB and SP too (RFC 9110 §5.6.4).
    (b"5;a=\"\\\t\\ \"\r\nhello\r\n0\r\n\r\n", b"hello", 0),
    (b"5;n=\"v\"\r\nhello\r\n0;last=1\r\n\r\n", b"hello", 0),
    (
        b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
        b"hello",
        0,
    ),
    // Trailers are validated, then dropped.
    (b"0\r\nX-Sum: abc\r\n\r\n", b"", 0),
    (
        b"3\r\nabc\r\n0\r\nA:\r\nB: \tv v\t\r\nC:\xe9\xff\r\n\r\n",
        b"abc",
        0,
    ),
    // Pipelining: bytes after the final CRLF are left for the next request.
    (b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"", 18),
    (b"2\r\nhi\r\n0\r\n\r\n0\r\n\r\n", b"hi", 5),
];

/// `VALID` with the bytes each case consumes.
fn valid_cases() -> impl Iterator<Item = (&'static [u8], &'static [u8], usize)> {
    VALID
        .iter()
        .map(|&(input, body, left)| (input, body, input.len() - left))
}

/// (input, error) under the `LINE` and `BODY` limits; the other limits have their own tests.
const INVALID: &[(&[u8], ChunkedError)] = &[
    (b"\r\n", E::BadSize),
    (b"x\r\n", E::BadSize),
    (b"0x5\r\nhello\r\n", E::BadSize),
    (b"+5\r\nhello\r\n", E::BadSize),
    (b"-5\r\nhello\r\n", E::BadSize),
    (b" 5\r\nhello\r\n", E::BadSize),
    (b"5z\r\nhello\r\n", E::BadSize),
    (b"5\r\nhello\r\nG\r\n", E::BadSize),
    (b"10000000000000000\r\n", E::SizeOverflow),
    (b"00FFFFFFFFFFFFFFFFF\r\n", E::SizeOverflow),
    (b"41\r\n", E::TooLarge),
    (b"FFFFFFFFFFFFFFFF\r\n", E::TooLarge),
    (
        b"20\r\n01234567890123456789012345678901\r\n21;x",
        E::TooLarge,
    ),
    (b"5;\r\nhello", E::BadExtension),
    (b"5;=b\r\nhello", E::BadExtension),
    (b"5;a=\r\nhello", E::BadExtension),
    (b"5;a b\r\nhello", E::BadExtension),
    (b"5 \r\nhello", E::BadExtension),
    (b"5;a \r\nhello", E::BadExtension),
    (b"5;a=b \r\nhello", E::BadExtension),
    (b"5;a=b=c\r\nhello", E::BadExtension),
    (b"5;a=\"open\r\nhello", E::BadExtension),
    (b"5;a=\"x\"y\r\nhello", E::BadExtension),
    (b"5;a=\"\x7f\"\r\nhello", E::BadExtension),
    (b"5;a=\"\\\x01\"\r\nhello", E::BadExtension),
    (b"5;a\x00\r\nhello", E::BadExtension),
    (b"5;a,b\r\nhello", E::BadExtension),
    (b"5\nhello\r\n", E::BadLineEnding),
    (b"5\rhello\r\n", E::BadLineEnding),
    (b"5;a\nhello\r\n", E::BadLineEnding),
    (b"5;a=\"x\nhello\r\n", E::BadLineEnding),
    (b"\n", E::BadLineEnding),
    (b"5\r\nhello\n0\r\n\r\n", E::BadLineEnding),
    (b"5\r\nhello\rX", E::BadLineEnding),
    (b"0\r\n\n", E::BadLineEnding),
    (b"0\r\n\r\r", E::BadLineEnding),
    (b"0\r\nA: b\n\r\n", E::BadLineEnding),
    (b"0\r\nA: b\rX", E::BadLineEnding),
    (b"3\r\nabcd\r\n0\r\n\r\n", E::BadDataEnd),
    (b"5\r\nhello0\r\n\r\n", E::BadDataEnd),
    (b"0\r\n: v\r\n\r\n", E::BadTrailer),
    (b"0\r\nA b: v\r\n\r\n", E::BadTrailer),
    (b"0\r\nA\r\n\r\n", E::BadTrailer),
    (b"0\r\nA: b\r\n c\r\n\r\n", E::BadTrailer),
    (b"0\r\nA : b\r\n\r\n", E::BadTrailer),
    (b"0\r\nA: \x00\r\n\r\n", E::BadTrailer),
    (b"0\r\nA: \x7f\r\n\r\n", E::BadTrailer),
    (b"0\r\nA: \x1b\r\n\r\n", E::BadTrailer),
];

#[test]
fn valid_bodies_decode_and_stop_at_the_final_crlf() {
    for (input, body, used) in valid_cases() {
        let got = decode(input);
        assert_eq!(got, Ok((body.to_vec(), used, true)), "{}", show(input));
    }
}

#[test]
fn invalid_bodies_fail_with_their_error() {
    for &(input, err) in INVALID {
        assert_eq!(decode(input), Err(err), "{}", show(input));
    }
}

#[test]
fn valid_bodies_decode_split_at_every_byte() {
    for (input, body, used) in valid_cases() {
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            let got = feed(ChunkedDecoder::new(LINE, BODY), [a, b]);
            assert_eq!(
                got,
                Ok((body.to_vec(), used, true)),
                "{} at {at}",
                show(input)
            );
        }
        let bytes = input.chunks(1);
        let got = feed(ChunkedDecoder::new(LINE, BODY), bytes);
        assert_eq!(
            got,
            Ok((body.to_vec(), used, true)),
            "{} bytewise",
            show(input)
        );
    }
}

#[test]
fn invalid_bodies_fail_the_same_way_split_at_every_byte() {
    for &(input, err) in INVALID {
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            let got = feed(ChunkedDecoder::new(LINE, BODY), [a, b]);
            assert_eq!(got, Err(err), "{} at {at}", show(input));
        }
        let got = feed(ChunkedDecoder::new(LINE, BODY), input.chunks(1));
        assert_eq!(got, Err(err), "{} bytewise", show(input));
    }
}

#[test]
fn truncated_bodies_are_incomplete_not_errors() {
    for (input, body, used) in valid_cases() {
        for end in 0..used {
            let (got, consumed, done) = decode(&input[..end]).expect("a valid prefix");
            assert!(!done, "{} cut at {end}", show(input));
            assert_eq!(consumed, end);
            assert!(body.starts_with(&got));
        }
    }
}

#[test]
fn body_of_exactly_the_limit_is_accepted() {
    let mut input = b"20\r\n".to_vec();
    input.extend_from_slice(&[b'x'; 32]);
    input.extend_from_slice(b"\r\n20\r\n");
    input.extend_from_slice(&[b'y'; 32]);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    let (body, used, done) = decode(&input).expect("64 bytes fit a 64-byte limit");
    assert_eq!((body.len(), used, done), (64, input.len(), true));
}

#[test]
fn huge_declared_chunk_is_refused_before_its_data() {
    let mut dec = ChunkedDecoder::new(LINE, 1024 * 1024);
    let mut out = Vec::new();
    assert_eq!(dec.decode(b"7FFFFFFF\r", &mut out), Err(E::TooLarge));
    assert!(out.is_empty());
}

#[test]
fn size_line_of_exactly_the_limit_is_accepted_one_more_is_too_long() {
    let line = |len: usize| {
        let mut l = b"1;".to_vec();
        l.resize(len, b'a');
        l.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        l
    };
    assert_eq!(decode(&line(LINE)), Ok((b"x".to_vec(), LINE + 10, true)));
    assert_eq!(decode(&line(LINE + 1)), Err(E::LineTooLong));
    let zeros = [b'0'; LINE + 1];
    assert_eq!(decode(&zeros), Err(E::LineTooLong));
}

#[test]
fn trailer_line_of_exactly_the_limit_is_accepted_one_more_is_too_long() {
    let trailer = |len: usize| {
        let mut t = b"0\r\nX:".to_vec();
        t.resize(3 + len, b'v');
        t.extend_from_slice(b"\r\n\r\n");
        t
    };
    assert_eq!(decode(&trailer(LINE)), Ok((vec![], LINE + 7, true)));
    assert_eq!(decode(&trailer(LINE + 1)), Err(E::LineTooLong));
}

#[test]
fn extensions_are_bounded_in_total_across_chunks() {
    // 60-byte extension lines: each is fine, 300 of them (18 000 bytes) are not.
    let mut input = Vec::new();
    for _ in 0..300 {
        input.extend_from_slice(b"1;");
        input.extend_from_slice(&[b'e'; 58]);
        input.extend_from_slice(b"\r\nx\r\n");
    }
    assert_eq!(decode_with(&input, LINE, 1000), Err(E::ExtensionsTooLong));
    let few = &input[..input.len() / 2];
    assert!(decode_with(few, LINE, 1000).is_ok());
}

#[test]
fn extensions_of_exactly_the_total_limit_are_accepted_one_more_byte_is_not() {
    // Chunks of one byte whose extension lines hold `per_line` extension bytes (the bytes
    // after the `;`), `total` of them over the whole body.
    let body = |total: usize| {
        let per_line = 58;
        let mut input = Vec::new();
        let mut left = total;
        while left > 0 {
            let n = left.min(per_line);
            input.extend_from_slice(b"1;");
            input.extend_from_slice(&vec![b'e'; n]);
            input.extend_from_slice(b"\r\nx\r\n");
            left -= n;
        }
        input.extend_from_slice(b"0\r\n\r\n");
        input
    };
    let limit = super::MAX_EXTENSION_BYTES as usize;
    let (out, _, done) = decode_with(&body(limit), LINE, 1000).expect("exactly the limit");
    assert!(done && out.len() == limit.div_ceil(58));
    assert_eq!(
        decode_with(&body(limit + 1), LINE, 1000),
        Err(E::ExtensionsTooLong)
    );
}

#[test]
fn trailer_fields_are_bounded_in_number() {
    let body = |fields: usize| {
        let mut b = b"0\r\n".to_vec();
        for _ in 0..fields {
            b.extend_from_slice(b"T: v\r\n");
        }
        b.extend_from_slice(b"\r\n");
        b
    };
    assert!(matches!(decode(&body(64)), Ok((_, _, true))));
    assert_eq!(decode(&body(65)), Err(E::TooManyTrailers));
}

#[test]
fn errors_are_sticky() {
    let mut dec = ChunkedDecoder::new(LINE, BODY);
    let mut out = Vec::new();
    assert_eq!(dec.decode(b"zz", &mut out), Err(E::BadSize));
    assert_eq!(dec.decode(b"0\r\n\r\n", &mut out), Err(E::BadSize));
}

#[test]
fn a_complete_decoder_consumes_nothing_more() {
    let mut dec = ChunkedDecoder::new(LINE, BODY);
    let mut out = Vec::new();
    assert_eq!(dec.decode(b"0\r\n\r\n", &mut out), Ok((5, true)));
    assert_eq!(dec.decode(b"5\r\nhello\r\n", &mut out), Ok((0, true)));
    assert!(out.is_empty());
}

#[test]
fn output_is_appended_not_replaced() {
    let mut out = b"kept:".to_vec();
    let mut dec = ChunkedDecoder::new(LINE, BODY);
    assert_eq!(
        dec.decode(b"2\r\nok\r\n0\r\n\r\n", &mut out),
        Ok((12, true))
    );
    assert_eq!(out, b"kept:ok");
}

fn show(input: &[u8]) -> String {
    format!("input {:?}", String::from_utf8_lossy(input))
}

/// One valid extension list, as it would follow a chunk size.
fn extension() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,6}";
    let one = prop_oneof![
        name.prop_map(|n| format!(";{n}")),
        (name, name).prop_map(|(n, v)| format!(";{n}={v}")),
        (name, "[ \t]{0,2}", name).prop_map(|(n, ws, v)| format!("{ws};{ws}{n}{ws}={ws}{v}")),
        (name, "[ !#-\\[\\]-~]{0,8}").prop_map(|(n, v)| format!(";{n}=\"{v}\\\"\"")),
    ];
    prop::collection::vec(one, 0..3).prop_map(|exts| exts.concat())
}

/// A chunked encoding of `data` with chunks of `sizes` (cycled), extensions `exts` (cycled),
/// random hex case and leading zeros, and `trailers`.
fn encode(
    data: &[u8],
    sizes: &[usize],
    exts: &[String],
    trailers: &[String],
    upper: bool,
) -> Vec<u8> {
    let mut enc = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let size = if upper {
            format!("{:0w$X}", n, w = i % 4)
        } else {
            format!("{n:x}")
        };
        enc.extend_from_slice(size.as_bytes());
        enc.extend_from_slice(exts[i % exts.len()].as_bytes());
        enc.extend_from_slice(b"\r\n");
        enc.extend_from_slice(&rest[..n]);
        enc.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    enc.extend_from_slice(b"0");
    enc.extend_from_slice(exts[i % exts.len()].as_bytes());
    enc.extend_from_slice(b"\r\n");
    for t in trailers {
        enc.extend_from_slice(t.as_bytes());
        enc.extend_from_slice(b"\r\n");
    }
    enc.extend_from_slice(b"\r\n");
    enc
}

/// Cuts `bytes` into pieces of the given sizes (cycled); the last piece takes what is left.
fn split<'b>(bytes: &'b [u8], sizes: &[usize]) -> Vec<&'b [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

proptest! {
    #[test]
    fn random_chunks_split_anywhere_decode_to_the_original(
        data in prop::collection::vec(any::<u8>(), 0..600),
        sizes in prop::collection::vec(1..80usize, 1..8),
        exts in prop::collection::vec(extension(), 1..5),
        trailers in prop::collection::vec("[A-Za-z-]{1,8}:[ -~\t]{0,16}", 0..3),
        upper in any::<bool>(),
        pieces in prop::collection::vec(1..40usize, 1..8),
    ) {
        let encoded = encode(&data, &sizes, &exts, &trailers, upper);
        let mut wire = encoded.clone();
        wire.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        let dec = ChunkedDecoder::new(256, data.len() as u64);
        let got = feed(dec, split(&wire, &pieces));
        prop_assert_eq!(got, Ok((data, encoded.len(), true)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..512),
        pieces in prop::collection::vec(1..64usize, 1..4),
    ) {
        check_no_panic(&input, &pieces)?;
    }

    #[test]
    fn framing_like_bytes_never_panic(
        input in prop::collection::vec(
            prop::sample::select(b"0123456789abcdefABCDEFxX;= \t\"\\\r\n:\x00\x7f".to_vec()),
            0..256,
        ),
        pieces in prop::collection::vec(1..16usize, 1..4),
    ) {
        check_no_panic(&input, &pieces)?;
    }
}

fn check_no_panic(input: &[u8], pieces: &[usize]) -> Result<(), TestCaseError> {
    if let Ok((body, used, _)) = feed(ChunkedDecoder::new(32, 128), split(input, pieces)) {
        prop_assert!(used <= input.len());
        prop_assert!(body.len() <= 128);
    }
    Ok(())
}
