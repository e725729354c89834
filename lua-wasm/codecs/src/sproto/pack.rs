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
    let at = out.len();
    out.resize(at + max_packed_len(src.len()), 0);
    let len = pack_into(src, &mut out[at..]);
    out.truncate(at + len);
}

/// Packs `src` into `out` (at least [`max_packed_len`] bytes); the packed length.
pub fn pack_into(src: &[u8], out: &mut [u8]) -> usize {
    let mut at = 0;
    // the raw run being built: where its 0xff header is, and its word count
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
                    run = Some((at, 1));
                    out[at] = 0xff;
                    at += 2;
                }
            }
            out[at..at + 8].copy_from_slice(&word);
            at += 8;
            if let Some((header, 256)) = run {
                out[header + 1] = 255;
                run = None;
            }
            continue;
        }
        if let Some((header, words)) = run.take() {
            out[header + 1] = (words - 1) as u8;
        }
        let mask_at = at;
        at += 1;
        let mut mask = 0u8;
        for (i, &b) in word.iter().enumerate() {
            if b != 0 {
                mask |= 1 << i;
                out[at] = b;
                at += 1;
            }
        }
        out[mask_at] = mask;
    }
    if let Some((header, words)) = run {
        out[header + 1] = (words - 1) as u8;
    }
    at
}

/// The unpacked length of `src` (a multiple of 8), once checked whole.
pub fn unpacked_len(mut src: &[u8]) -> Result<usize, BadPacking> {
    let mut len = 0usize;
    while let Some((&mask, rest)) = src.split_first() {
        if mask == 0xff {
            let (&count, rest) = rest.split_first().ok_or(BadPacking)?;
            let n = (usize::from(count) + 1) * 8;
            src = rest.get(n..).ok_or(BadPacking)?;
            len = len.checked_add(n).ok_or(BadPacking)?;
        } else {
            src = rest.get(mask.count_ones() as usize..).ok_or(BadPacking)?;
            len = len.checked_add(8).ok_or(BadPacking)?;
        }
    }
    Ok(len)
}

/// Unpacks `src`, already checked by [`unpacked_len`], into `out` of exactly that length.
pub fn unpack_into(mut src: &[u8], out: &mut [u8]) {
    let mut at = 0;
    while let Some((&mask, rest)) = src.split_first() {
        if mask == 0xff {
            let n = (usize::from(rest[0]) + 1) * 8;
            out[at..at + n].copy_from_slice(&rest[1..1 + n]);
            src = &rest[1 + n..];
            at += n;
        } else {
            src = rest;
            for bit in 0..8 {
                if mask & 1 << bit != 0 {
                    out[at] = src[0];
                    src = &src[1..];
                } else {
                    out[at] = 0;
                }
                at += 1;
            }
        }
    }
}

/// Unpacks `src` onto the end of `out` (a multiple of 8 bytes). `limit` bounds the unpacked
/// size; over it, or on a truncated stream, fails.
pub fn unpack(src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BadPacking> {
    let len = unpacked_len(src)?;
    if len > limit {
        return Err(BadPacking);
    }
    let at = out.len();
    out.resize(at + len, 0);
    unpack_into(src, &mut out[at..]);
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
