//! The chunked decoder on arbitrary bytes fed in arbitrary pieces (the first input byte
//! picks the cut). Fed whole or in pieces, as the loop feeds it what each read brought, it
//! must give the same data, the same end and the same error; until the body ends it takes
//! every byte offered; once it ends, the bytes it left belong to the next request and are
//! not needed to decide the end.

use corral::__bench::ChunkedBodies;

use crate::splits::cut;

thread_local! {
    /// The limits, read once (from the embedded default config).
    static BODIES: ChunkedBodies = ChunkedBodies::default();
}

/// What a decode made of its input: data, bytes taken (0 on an error), complete or the error.
type Run = (Vec<u8>, usize, Result<bool, String>);

pub fn check(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let whole = decode(&[input]);
    let pieces = decode(&cut(input, seed));
    assert_eq!(pieces, whole, "fed in pieces (seed {seed}) vs whole");
    let (body, used, done) = &whole;
    assert!(*used <= input.len());
    match done {
        Ok(true) => {
            assert!(body.len() <= input.len());
            let again = decode(&[&input[..*used]]);
            assert_eq!(&again, &whole, "the end needed bytes past it");
        }
        Ok(false) => assert_eq!(*used, input.len(), "an unfinished body leaves no byte"),
        Err(_) => {}
    }
}

/// Feeds `pieces` in order until the body ends or fails.
fn decode(pieces: &[&[u8]]) -> Run {
    let mut decoder = BODIES.with(ChunkedBodies::start);
    let mut body = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match decoder.feed(piece, &mut body) {
            Ok((n, true)) => return (body, used + n, Ok(true)),
            Ok((n, false)) => {
                assert_eq!(
                    n,
                    piece.len(),
                    "an unfinished body takes every byte offered"
                );
                used += n;
            }
            // How much the decoder took before failing is not said: the loop closes.
            Err(err) => return (body, 0, Err(err)),
        }
    }
    (body, used, Ok(false))
}
