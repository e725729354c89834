//! sproto's zero-packing (Cap'n Proto's, without special zero words): each 8 bytes of the
//! message (zero-padded at the end) become a bit-mask byte of their non-zero bytes and those
//! bytes; a run of words with few zeros is copied raw behind `0xff` and its word count
//! minus one.

/// Why bytes do not unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPacking;

impl std::fmt::Display for BadPacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invalid unpack stream")
    }
}

impl std::error::Error for BadPacking {}

/// The most bytes packing `len` bytes can take.
pub fn max_packed_len(len: usize) -> usize {
    len.div_ceil(2048) * 2 + len + 2
}

/// Packs `src` onto the end of `out`.
pub fn pack(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(max_packed_len(src.len()));
    // the raw run being built: where its 0xff header is in `out`, and its word count
    let mut run: Option<(usize, usize)> = None;
    for chunk in src.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        let nonzero = word.iter().filter(|&&b| b != 0).count();
        // a word with at most two zeros extends a run (copying is cheaper than a new mask),
        // a full word starts one
        let raw = match run {
            Some(_) => nonzero >= 6,
            None => nonzero == 8,
        };
        if raw {
            match &mut run {
                Some((_, words)) => *words += 1,
                None => {
                    run = Some((out.len(), 1));
                    out.extend_from_slice(&[0xff, 0]);
                }
            }
            out.extend_from_slice(&word);
            if let Some((header, 256)) = run {
                out[header + 1] = 255;
                run = None;
            }
            continue;
        }
        if let Some((header, words)) = run.take() {
            out[header + 1] = (words - 1) as u8;
        }
        let mask = word
            .iter()
            .enumerate()
            .fold(0u8, |m, (i, &b)| if b != 0 { m | 1 << i } else { m });
        out.push(mask);
        out.extend(word.iter().filter(|&&b| b != 0));
    }
    if let Some((header, words)) = run {
        out[header + 1] = (words - 1) as u8;
    }
}

/// Unpacks `src` onto the end of `out` (a multiple of 8 bytes). `limit` bounds the unpacked
/// size (the packed form can expand 8-fold); over it, or on a truncated stream, fails.
pub fn unpack(mut src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BadPacking> {
    let start = out.len();
    while let Some((&mask, rest)) = src.split_first() {
        src = rest;
        if mask == 0xff {
            let (&count, rest) = src.split_first().ok_or(BadPacking)?;
            let len = (usize::from(count) + 1) * 8;
            if rest.len() < len {
                return Err(BadPacking);
            }
            out.extend_from_slice(&rest[..len]);
            src = &rest[len..];
        } else {
            for bit in 0..8 {
                if mask & 1 << bit != 0 {
                    let (&b, rest) = src.split_first().ok_or(BadPacking)?;
                    out.push(b);
                    src = rest;
                } else {
                    out.push(0);
                }
            }
        }
        if out.len() - start > limit {
            return Err(BadPacking);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pack(src, &mut out);
        out
    }

    #[test]
    fn the_readme_s_examples() {
        let src = [
            0x08, 0, 0, 0, 0x03, 0, 0x02, 0, 0x19, 0, 0, 0, 0xaa, 0x01, 0, 0,
        ];
        assert_eq!(
            packed(&src),
            [0x51, 0x08, 0x03, 0x02, 0x31, 0x19, 0xaa, 0x01]
        );
        let mut expected = vec![0xff, 0x03];
        expected.extend([0x8a; 30]);
        expected.extend([0, 0]);
        assert_eq!(packed(&[0x8a; 30]), expected);
    }

    #[test]
    fn long_runs_split_at_256_words() {
        let src = vec![1u8; 8 * 300];
        let out = packed(&src);
        assert_eq!(&out[..2], &[0xff, 255]);
        assert_eq!(&out[2 + 2048..2 + 2048 + 2], &[0xff, 43]);
        let mut back = Vec::new();
        unpack(&out, &mut back, usize::MAX).unwrap();
        assert_eq!(back, src);
    }

    #[test]
    fn truncated_and_oversized_streams_fail() {
        let mut out = Vec::new();
        assert_eq!(unpack(&[0xff], &mut out, 1024), Err(BadPacking));
        assert_eq!(unpack(&[0xff, 0, 1, 2], &mut out, 1024), Err(BadPacking));
        assert_eq!(unpack(&[0x03, 1], &mut out, 1024), Err(BadPacking));
        assert_eq!(unpack(&[0; 10], &mut Vec::new(), 16), Err(BadPacking));
        assert!(unpack(&[0; 2], &mut Vec::new(), 16).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn pack_round_trips(src in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(0u8), proptest::num::u8::ANY], 0..3000)) {
            let out = packed(&src);
            proptest::prop_assert!(out.len() <= max_packed_len(src.len()));
            let mut back = Vec::new();
            unpack(&out, &mut back, usize::MAX).unwrap();
            let mut padded = src.clone();
            padded.resize(src.len().div_ceil(8) * 8, 0);
            proptest::prop_assert_eq!(back, padded);
        }

        #[test]
        fn unpack_never_panics(src in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = unpack(&src, &mut Vec::new(), 4096);
        }
    }
}
