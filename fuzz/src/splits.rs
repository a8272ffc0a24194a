//! Split points: how a byte stream is cut into reads, derived from one seed byte so that
//! AFL++ can mutate the cut along with the bytes.

/// Cuts `data` into pieces whose sizes follow `seed`: its low 3 bits pick the largest piece
/// (1 byte up to 4 KiB), the rest seeds a small generator for the sizes.
pub fn cut(data: &[u8], seed: u8) -> Vec<&[u8]> {
    const LARGEST: [usize; 8] = [1, 2, 3, 7, 16, 64, 512, 4096];
    let largest = LARGEST[usize::from(seed & 7)];
    let mut state = u32::from(seed >> 3).wrapping_mul(2_654_435_761) | 1;
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift32: cheap, and any seed gives a usable sequence.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + (state as usize) % largest;
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn the_pieces_make_the_whole_and_follow_the_largest_size() {
        let data: Vec<u8> = (0..=255).collect();
        for seed in 0..=255u8 {
            let pieces = cut(&data, seed);
            assert_eq!(pieces.concat(), data, "seed {seed}");
            assert!(pieces.iter().all(|p| !p.is_empty()));
            if seed & 7 == 0 {
                assert_eq!(pieces.len(), data.len(), "seed {seed}: one byte a read");
            }
        }
    }
}
