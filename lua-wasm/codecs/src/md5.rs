//! The algorithms of skynet's `md5` module (the Kepler project's lua-md5 that skynet ships):
//! the digest, XOR of equal strings, and its MD5 cipher-feedback stream `crypt`/`decrypt`,
//! whose output carries the seed in front.

use md5::{Digest, Md5};

/// The longest seed `crypt` takes.
pub const MAX_SEED: usize = 16;
/// The longest key `crypt` and `decrypt` take.
pub const MAX_KEY: usize = 256;

/// Why an `md5` function refused its input; the texts are lua-md5's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Md5Error {
    /// `exor` of strings of different lengths.
    Lengths,
    /// A key longer than [`MAX_KEY`].
    KeyTooLong,
    /// A seed longer than [`MAX_SEED`].
    SeedTooLong,
    /// Text that `crypt` did not make.
    NotCyphered,
}

impl std::fmt::Display for Md5Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Md5Error::Lengths => f.write_str("lengths must be equal"),
            Md5Error::KeyTooLong => write!(f, "key too long (> {MAX_KEY})"),
            Md5Error::SeedTooLong => write!(f, "seed too long (> {MAX_SEED})"),
            Md5Error::NotCyphered => f.write_str("invalid cyphered string"),
        }
    }
}

impl std::error::Error for Md5Error {}

/// `md5.sum`: the 16-byte digest.
pub fn sum(text: &[u8]) -> [u8; 16] {
    Md5::digest(text).into()
}

/// `md5.exor`: two strings of equal length XORed.
pub fn exor(a: &[u8], b: &[u8]) -> Result<Vec<u8>, Md5Error> {
    if a.len() != b.len() {
        return Err(Md5Error::Lengths);
    }
    Ok(a.iter().zip(b).map(|(x, y)| x ^ y).collect())
}

/// The stream's starting block: the seed zero-padded to 16 bytes, then the key.
fn first_block(seed: &[u8], key: &[u8]) -> Result<Vec<u8>, Md5Error> {
    if key.len() > MAX_KEY {
        return Err(Md5Error::KeyTooLong);
    }
    let mut block = vec![0u8; MAX_SEED + key.len()];
    block[..seed.len()].copy_from_slice(seed);
    block[MAX_SEED..].copy_from_slice(key);
    Ok(block)
}

/// `md5.crypt(message, key, seed)`: the seed's length and the seed, then the message XORed
/// with MD5 of the running block, whose first bytes each cipher chunk replaces.
pub fn crypt(message: &[u8], key: &[u8], seed: &[u8]) -> Result<Vec<u8>, Md5Error> {
    if seed.len() > MAX_SEED {
        return Err(Md5Error::SeedTooLong);
    }
    let mut block = first_block(seed, key)?;
    let mut out = Vec::with_capacity(1 + seed.len() + message.len());
    out.push(seed.len() as u8);
    out.extend_from_slice(seed);
    for chunk in message.chunks(MAX_SEED) {
        let code = sum(&block);
        let start = out.len();
        out.extend(chunk.iter().zip(code).map(|(m, c)| m ^ c));
        block[..chunk.len()].copy_from_slice(&out[start..]);
    }
    Ok(out)
}

/// `md5.decrypt(cyphertext, key)`: the inverse of [`crypt`].
pub fn decrypt(cyphertext: &[u8], key: &[u8]) -> Result<Vec<u8>, Md5Error> {
    let seed_len = usize::from(*cyphertext.first().ok_or(Md5Error::NotCyphered)?);
    // lua-md5 reads the length byte as a signed char: 128 and up never check out
    if seed_len > MAX_SEED || cyphertext.len() < seed_len + 1 {
        return Err(Md5Error::NotCyphered);
    }
    let (seed, body) = cyphertext[1..].split_at(seed_len);
    let mut block = first_block(seed, key)?;
    let mut out = Vec::with_capacity(body.len());
    for chunk in body.chunks(MAX_SEED) {
        let code = sum(&block);
        out.extend(chunk.iter().zip(code).map(|(c, k)| c ^ k));
        block[..chunk.len()].copy_from_slice(chunk);
    }
    Ok(out)
}

/// `md5.hmacmd5(data, key)` as lower-case hex: RFC 2104 HMAC-MD5 (skynet's md5.lua pads a
/// key of up to 64 bytes and hashes a longer one first, which is the RFC's rule).
pub fn hmac_md5_hex(data: &[u8], key: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    crate::crypt::hex_encode(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::hex_encode;

    #[test]
    fn digests() {
        assert_eq!(hex_encode(&sum(b"")), b"d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hmac_md5_hex(b"The quick brown fox jumps over the lazy dog", b"key"),
            b"80070713463e7749b90c2dc24911e275"
        );
        let long_key = [b'k'; 100];
        assert_eq!(hmac_md5_hex(b"x", &long_key).len(), 32);
    }

    // Printed by real skynet's md5 (f19d1605, luaclib/md5.so) through crypt.hexencode.
    #[test]
    fn crypt_matches_a_real_skynet_run() {
        let sealed = crypt(b"a message longer than sixteen bytes", b"key", b"seed").unwrap();
        assert_eq!(
            hex_encode(&sealed),
            b"0473656564cec524be52b9e45e90b8e2e8b7023f668f42315374cf0e607b4185e3d6e6f8d96e5e7d"
        );
        assert_eq!(
            hmac_md5_hex(b"data", b"key"),
            b"9d5c73ef85594d34ec4438b7c97e51d8"
        );
    }

    #[test]
    fn crypt_round_trips_and_carries_its_seed() {
        let sealed = crypt(b"a message longer than sixteen bytes", b"key", b"seed").unwrap();
        assert_eq!(&sealed[..5], b"\x04seed");
        assert_eq!(
            decrypt(&sealed, b"key").unwrap(),
            b"a message longer than sixteen bytes"
        );
        assert_ne!(
            decrypt(&sealed, b"other").unwrap(),
            b"a message longer than sixteen bytes"
        );
        assert_eq!(decrypt(b"", b"key"), Err(Md5Error::NotCyphered));
        assert_eq!(decrypt(b"\x05abc", b"key"), Err(Md5Error::NotCyphered));
        assert_eq!(crypt(b"m", b"k", &[0; 17]), Err(Md5Error::SeedTooLong));
        assert_eq!(crypt(b"m", &[0; 257], b""), Err(Md5Error::KeyTooLong));
        assert_eq!(exor(b"ab", b"a"), Err(Md5Error::Lengths));
    }

    proptest::proptest! {
        #[test]
        fn decrypt_never_panics(text in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = decrypt(&text, b"key");
        }
    }
}
