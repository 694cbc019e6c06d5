//! Deterministic VRAM test pattern shared by the device's self-test, the host
//! tools and the guest tools, so any side can fill and any side can check.
//!
//! The little-endian 8-byte word at 8-aligned VRAM offset `o` is
//! `splitmix64(((seed as u64) << 32) ^ o)`; the byte at offset `i` is byte
//! `i % 8` of the word at `i & !7`. Keying on the absolute offset (not the
//! position in a buffer) makes any sub-range checkable on its own.
//!
//! Only `core` is used here so the code stays trivially portable.

/// One step of the SplitMix64 generator started from state `x`: add the
/// golden-ratio increment, then apply the finalizer.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern word covering `offset` (the low three bits are ignored).
pub fn word(seed: u32, offset: u64) -> u64 {
    splitmix64((u64::from(seed) << 32) ^ (offset & !7))
}

/// Walks `len` bytes starting at absolute offset `start` one pattern word at a
/// time, yielding (position in buffer, the word's bytes covering it).
/// Offsets wrap at `u64::MAX` rather than panic.
fn for_each_word(
    seed: u32,
    start: u64,
    len: usize,
    mut f: impl FnMut(usize, &[u8]) -> bool,
) -> Option<usize> {
    let mut pos = 0usize;
    while pos < len {
        let abs = start.wrapping_add(pos as u64);
        let skip = (abs & 7) as usize;
        let n = (8 - skip).min(len - pos);
        let bytes = word(seed, abs).to_le_bytes();
        if !f(pos, &bytes[skip..skip + n]) {
            return Some(pos);
        }
        pos += n;
    }
    None
}

/// Fills `buf` with the pattern as it appears at VRAM offset `start_offset`.
pub fn fill(seed: u32, start_offset: u64, buf: &mut [u8]) {
    let len = buf.len();
    for_each_word(seed, start_offset, len, |pos, expected| {
        buf[pos..pos + expected.len()].copy_from_slice(expected);
        true
    });
}

/// Index in `buf` of the first byte that differs from the pattern at
/// `start_offset`, or `None` if all match.
pub fn first_mismatch(seed: u32, start_offset: u64, buf: &[u8]) -> Option<usize> {
    let chunk = for_each_word(seed, start_offset, buf.len(), |pos, expected| {
        buf[pos..pos + expected.len()] == *expected
    })?;
    let expected = word(seed, start_offset.wrapping_add(chunk as u64)).to_le_bytes();
    let skip = (start_offset.wrapping_add(chunk as u64) & 7) as usize;
    let within = buf[chunk..]
        .iter()
        .zip(&expected[skip..])
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Some(chunk + within)
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::*;

    /// Byte-at-a-time reference straight from the definition.
    fn byte_at(seed: u32, offset: u64) -> u8 {
        word(seed, offset & !7).to_le_bytes()[(offset % 8) as usize]
    }

    #[test]
    fn splitmix64_known_values() {
        // Reference outputs of SplitMix64 seeded with 0: the first two
        // outputs are splitmix64(0) and splitmix64(golden).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn word_definition() {
        assert_eq!(word(0, 0), splitmix64(0));
        assert_eq!(word(7, 0x1000), splitmix64((7u64 << 32) ^ 0x1000));
        // Unaligned offsets name the containing word.
        assert_eq!(word(7, 0x1005), word(7, 0x1000));
        assert_ne!(word(1, 0), word(2, 0));
        assert_ne!(word(1, 0), word(1, 8));
    }

    #[test]
    fn fill_matches_definition_for_unaligned_ranges() {
        for start in [0u64, 1, 3, 7, 8, 13, 0x1000 - 5, u64::MAX - 20] {
            for len in [0usize, 1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 100] {
                let mut buf = vec![0u8; len];
                fill(42, start, &mut buf);
                for (i, b) in buf.iter().enumerate() {
                    assert_eq!(*b, byte_at(42, start.wrapping_add(i as u64)));
                }
                assert_eq!(first_mismatch(42, start, &buf), None);
            }
        }
    }

    #[test]
    fn fill_of_subrange_equals_slice_of_whole() {
        let mut whole = vec![0u8; 256];
        fill(9, 0, &mut whole);
        for start in 0..40usize {
            for end in start..start + 40 {
                let mut part = vec![0u8; end - start];
                fill(9, start as u64, &mut part);
                assert_eq!(part, &whole[start..end]);
            }
        }
    }

    #[test]
    fn first_mismatch_finds_every_position() {
        for start in [0u64, 1, 5, 8, 11] {
            let mut buf = vec![0u8; 50];
            fill(3, start, &mut buf);
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x40;
                assert_eq!(
                    first_mismatch(3, start, &bad),
                    Some(i),
                    "start {start} i {i}"
                );
                // A later second error does not hide the first.
                if i + 3 < bad.len() {
                    bad[i + 3] ^= 1;
                    assert_eq!(first_mismatch(3, start, &bad), Some(i));
                }
            }
            // Wrong seed or wrong start offset is caught at once.
            assert_eq!(first_mismatch(4, start, &buf), Some(0));
        }
        assert_eq!(first_mismatch(1, 0, &[]), None);
    }
}
