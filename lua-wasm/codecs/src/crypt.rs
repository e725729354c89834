//! The algorithms of skynet's `skynet.crypt`, byte for byte: the key hash and the MD5-based
//! 64-bit HMACs its login protocol uses, Diffie-Hellman over the largest 64-bit prime,
//! DES in ECB mode with its two padding modes, and its lenient base64 and hex codecs.
//! The standard primitives (DES, SHA-1, MD5, HMAC) are RustCrypto's.

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

/// Why a `skynet.crypt` function refused its input; the texts are skynet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptError {
    /// A DES key that is not 8 bytes.
    KeySize(usize),
    /// A padding mode other than those in [`PADDING_MODES`].
    PaddingMode(i64),
    /// DES cipher text whose length is not a positive multiple of 8.
    TextLength(usize),
    /// DES cipher text whose padding does not check out.
    BadText,
    /// Hex text of odd length.
    HexSize(usize),
    /// Hex text with a character that is not a hex digit.
    BadHex,
    /// Base64 text that cannot be decoded.
    BadBase64,
    /// An argument that must be 8 bytes (`what` names it as skynet does).
    NotUint64(&'static str),
    /// A zero Diffie-Hellman key.
    Zero,
    /// `xor_str` with an empty key.
    EmptyXor,
}

impl std::fmt::Display for CryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptError::KeySize(n) => write!(f, "Invalid key size {n}, need 8 bytes"),
            CryptError::PaddingMode(m) => write!(f, "Invalid padding mode {m}"),
            CryptError::TextLength(n) => write!(f, "Invalid des crypt text length {n}"),
            CryptError::BadText => f.write_str("Invalid des crypt text"),
            CryptError::HexSize(n) => write!(f, "Invalid hex text size {n}"),
            CryptError::BadHex => f.write_str("Invalid hex text"),
            CryptError::BadBase64 => f.write_str("Invalid base64 text"),
            CryptError::NotUint64(what) => write!(f, "Invalid {what}"),
            CryptError::Zero => f.write_str("Can't be 0"),
            CryptError::EmptyXor => f.write_str("Can't xor empty string"),
        }
    }
}

impl std::error::Error for CryptError {}

/// `crypt.padding`: each padding mode's name and number.
pub const PADDING_MODES: [(&str, i64); 2] = [("iso7816_4", 0), ("pkcs7", 1)];

/// A DES padding mode (`crypt.padding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// ISO/IEC 7816-4: 0x80 then zeros (skynet's default).
    Iso7816_4,
    /// PKCS#7: n bytes of value n.
    Pkcs7,
}

impl Padding {
    /// The mode numbered `mode` in [`PADDING_MODES`].
    pub fn from_mode(mode: i64) -> Result<Padding, CryptError> {
        match mode {
            0 => Ok(Padding::Iso7816_4),
            1 => Ok(Padding::Pkcs7),
            other => Err(CryptError::PaddingMode(other)),
        }
    }

    /// Fills `block[used..]`.
    fn add(self, block: &mut [u8; 8], used: usize) {
        match self {
            Padding::Iso7816_4 => {
                block[used] = 0x80;
                block[used + 1..].fill(0);
            }
            Padding::Pkcs7 => block[used..].fill((8 - used) as u8),
        }
    }

    /// How many bytes at the end of `text` are padding (1..=8), if it is well formed.
    fn strip(self, text: &[u8]) -> Option<usize> {
        let last = &text[text.len() - 8..];
        match self {
            Padding::Iso7816_4 => {
                let zeros = last.iter().rev().take_while(|&&b| b == 0).count();
                (zeros < 8 && last[7 - zeros] == 0x80).then_some(zeros + 1)
            }
            Padding::Pkcs7 => {
                let n = usize::from(last[7]);
                ((1..=8).contains(&n) && last[8 - n..].iter().all(|&b| usize::from(b) == n))
                    .then_some(n)
            }
        }
    }
}

fn des_cipher(key: &[u8]) -> Result<des::Des, CryptError> {
    des::Des::new_from_slice(key).map_err(|_| CryptError::KeySize(key.len()))
}

/// `crypt.desencode`: DES-ECB of `text` padded to a whole number of blocks (a full block of
/// padding when it already is one).
pub fn des_encode(key: &[u8], text: &[u8], padding: Padding) -> Result<Vec<u8>, CryptError> {
    let cipher = des_cipher(key)?;
    let whole = text.len() / 8 * 8;
    let mut out = Vec::with_capacity(whole + 8);
    out.extend_from_slice(&text[..whole]);
    let mut tail = [0u8; 8];
    tail[..text.len() - whole].copy_from_slice(&text[whole..]);
    padding.add(&mut tail, text.len() - whole);
    out.extend_from_slice(&tail);
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    Ok(out)
}

/// `crypt.desdecode`: the inverse of [`des_encode`].
pub fn des_decode(key: &[u8], text: &[u8], padding: Padding) -> Result<Vec<u8>, CryptError> {
    let cipher = des_cipher(key)?;
    if text.is_empty() || text.len() % 8 != 0 {
        return Err(CryptError::TextLength(text.len()));
    }
    let mut out = text.to_vec();
    for block in out.chunks_exact_mut(8) {
        cipher.decrypt_block(GenericArray::from_mut_slice(block));
    }
    let pad = padding.strip(&out).ok_or(CryptError::BadText)?;
    out.truncate(out.len() - pad);
    Ok(out)
}

/// skynet's string hash: a DJB hash and a JS hash of `text`, each 4 bytes little-endian.
fn string_hash(text: &[u8]) -> [u8; 8] {
    let mut djb: u32 = 5381;
    let mut js: u32 = 1_315_423_911;
    for &c in text {
        djb = djb.wrapping_add((djb << 5).wrapping_add(u32::from(c)));
        js ^= (js << 5).wrapping_add(u32::from(c)).wrapping_add(js >> 2);
    }
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&djb.to_le_bytes());
    key[4..].copy_from_slice(&js.to_le_bytes());
    key
}

/// `crypt.hashkey`: an 8-byte key from any text.
pub fn hashkey(text: &[u8]) -> [u8; 8] {
    string_hash(text)
}

/// `crypt.randomkey` from 8 random bytes: a key whose bytes never XOR to zero.
pub fn random_key(mut bytes: [u8; 8]) -> [u8; 8] {
    if bytes.iter().fold(0, |x, b| x ^ b) == 0 {
        bytes[0] |= 1;
    }
    bytes
}

/// `crypt.hexencode`: lower-case hex.
pub fn hex_encode(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .collect()
}

/// `crypt.hexdecode`. skynet's takes lower-case digits only; upper case is taken here too.
pub fn hex_decode(text: &[u8]) -> Result<Vec<u8>, CryptError> {
    if text.len() % 2 != 0 {
        return Err(CryptError::HexSize(text.len()));
    }
    let digit = |c: u8| char::from(c).to_digit(16).ok_or(CryptError::BadHex);
    text.chunks_exact(2)
        .map(|pair| Ok((digit(pair[0])? << 4 | digit(pair[1])?) as u8))
        .collect()
}

/// MD5's initial state.
const MD5_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// MD5's per-step constants (RFC 1321: the integer part of |sin(i + 1)| * 2^32).
const MD5_K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// MD5's per-step left rotations, four per round.
const MD5_SHIFT: [[u32; 4]; 4] = [
    [7, 12, 17, 22],
    [5, 9, 14, 20],
    [4, 11, 16, 23],
    [6, 10, 15, 21],
];

/// MD5's compression of one block of 16 words from the initial state, without adding the
/// initial state back at the end (skynet's hmac64 takes the state so). RustCrypto's md-5
/// keeps its compression function private, hence this.
fn md5_rounds(w: &[u32; 16]) -> [u32; 4] {
    let [mut a, mut b, mut c, mut d] = MD5_INIT;
    for i in 0..64 {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let rotated = a
            .wrapping_add(f)
            .wrapping_add(MD5_K[i])
            .wrapping_add(w[g])
            .rotate_left(MD5_SHIFT[i / 16][i % 4]);
        (a, b, c, d) = (d, b.wrapping_add(rotated), b, c);
    }
    [a, b, c, d]
}

fn words(bytes: &[u8; 8]) -> [u32; 2] {
    [
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
    ]
}

fn qword(result: [u32; 2]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&result[0].to_le_bytes());
    out[4..].copy_from_slice(&result[1].to_le_bytes());
    out
}

/// skynet's `hmac`: one MD5 round without padding over x and y repeated, its state taken
/// before MD5 adds the initial one back.
fn hmac_words(x: [u32; 2], y: [u32; 2]) -> [u8; 8] {
    let mut w = [0u32; 16];
    for group in w.chunks_exact_mut(4) {
        group.copy_from_slice(&[x[1], x[0], y[1], y[0]]);
    }
    let r = md5_rounds(&w);
    qword([r[2] ^ r[3], r[0] ^ r[1]])
}

/// The 8-byte argument `what` (skynet's error names it).
pub fn uint64_arg(bytes: &[u8], what: &'static str) -> Result<[u8; 8], CryptError> {
    bytes.try_into().map_err(|_| CryptError::NotUint64(what))
}

/// `crypt.hmac64(x, y)`.
pub fn hmac64(x: &[u8; 8], y: &[u8; 8]) -> [u8; 8] {
    hmac_words(words(x), words(y))
}

/// `crypt.hmac64_md5(x, y)`: MD5 of `(x..y):rep(3)`, its two halves XORed.
pub fn hmac64_md5(x: &[u8; 8], y: &[u8; 8]) -> [u8; 8] {
    let (x, y) = (words(x), words(y));
    let mut w = [0u32; 16];
    for group in w[..12].chunks_exact_mut(4) {
        group.copy_from_slice(&[x[0], x[1], y[0], y[1]]);
    }
    w[12] = 0x80;
    w[14] = 384;
    let r: [u32; 4] = std::array::from_fn(|i| md5_rounds(&w)[i].wrapping_add(MD5_INIT[i]));
    qword([r[0] ^ r[2], r[1] ^ r[3]])
}

/// `crypt.hmac_hash(key, text)`: [`hmac64`] of the text's hash and the key.
pub fn hmac_hash(key: &[u8; 8], text: &[u8]) -> [u8; 8] {
    hmac_words(words(&string_hash(text)), words(key))
}

/// The largest prime below 2^64, skynet's Diffie-Hellman modulus.
const DH_PRIME: u64 = 0xffff_ffff_ffff_ffc5;
/// skynet's Diffie-Hellman generator.
const DH_GENERATOR: u64 = 5;

fn mul_mod(a: u64, b: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(DH_PRIME)) as u64
}

/// a^b mod p, `b > 0`, as skynet computes it (including its answer for `a == p`).
fn pow_mod(a: u64, b: u64) -> u64 {
    let a = if a > DH_PRIME { a % DH_PRIME } else { a };
    if a == DH_PRIME {
        // skynet's reduction leaves p itself unreduced: p^1 is p, any higher power 0
        return if b == 1 { DH_PRIME } else { 0 };
    }
    let (mut base, mut exp, mut acc) = (a, b, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul_mod(acc, base);
        }
        base = mul_mod(base, base);
        exp >>= 1;
    }
    acc
}

/// `crypt.dhexchange(x)`: g^x mod p, x read little-endian.
pub fn dh_exchange(x: &[u8; 8]) -> Result<[u8; 8], CryptError> {
    let x = u64::from_le_bytes(*x);
    if x == 0 {
        return Err(CryptError::Zero);
    }
    Ok(pow_mod(DH_GENERATOR, x).to_le_bytes())
}

/// `crypt.dhsecret(x, y)`: x^y mod p.
pub fn dh_secret(x: &[u8; 8], y: &[u8; 8]) -> Result<[u8; 8], CryptError> {
    let (x, y) = (u64::from_le_bytes(*x), u64::from_le_bytes(*y));
    if x == 0 || y == 0 {
        return Err(CryptError::Zero);
    }
    Ok(pow_mod(x, y).to_le_bytes())
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `crypt.base64encode`: standard alphabet, `=` padding.
pub fn base64_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |v, (i, &b)| v | u32::from(b) << (16 - 8 * i));
        let digits = chunk.len() + 1;
        for i in 0..4 {
            out.push(if i < digits {
                BASE64[(v >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

/// One base64 character: its value, [`B64_PAD`] for `=`, or `None` to be skipped.
fn base64_value(c: u8) -> Option<i32> {
    match c {
        b'A'..=b'Z' => Some(i32::from(c - b'A')),
        b'a'..=b'z' => Some(i32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(i32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(B64_PAD),
        _ => None,
    }
}

const B64_PAD: i32 = -2;

/// `crypt.base64decode`, as lenient as skynet's: characters outside the alphabet are
/// skipped, and missing `=` at the end count as present.
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut out = Vec::with_capacity(text.len().div_ceil(4) * 3);
    let mut i = 0;
    while i < text.len() {
        let mut c = [0i32; 4];
        let mut padding = 0;
        let mut j = 0;
        while j < 4 {
            let value = if i >= text.len() {
                B64_PAD
            } else {
                match base64_value(text[i]) {
                    Some(v) => v,
                    None => {
                        i += 1;
                        continue;
                    }
                }
            };
            if value == B64_PAD {
                padding += 1;
            }
            c[j] = value;
            i += 1;
            j += 1;
        }
        match padding {
            0 => {
                let v = (c[0] << 18 | c[1] << 12 | c[2] << 6 | c[3]) as u32;
                out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
            }
            1 if c[3] == B64_PAD && c[0] >= 0 && c[1] >= 0 && c[2] >= 0 && c[2] & 3 == 0 => {
                let v = (c[0] << 10 | c[1] << 4 | c[2] >> 2) as u32;
                out.extend_from_slice(&[(v >> 8) as u8, v as u8]);
            }
            2 if c[3] == B64_PAD && c[2] == B64_PAD && c[0] >= 0 && c[1] >= 0 && c[1] & 15 == 0 => {
                out.push((c[0] << 2 | c[1] >> 4) as u8);
            }
            _ => return Err(CryptError::BadBase64),
        }
    }
    Ok(out)
}

/// `crypt.xor_str(a, key)`: `a` XORed with `key` repeated.
pub fn xor_str(text: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptError> {
    if key.is_empty() {
        return Err(CryptError::EmptyXor);
    }
    Ok(text
        .iter()
        .zip(key.iter().cycle())
        .map(|(a, b)| a ^ b)
        .collect())
}

/// `crypt.sha1`.
pub fn sha1(text: &[u8]) -> [u8; 20] {
    Sha1::digest(text).into()
}

/// SHA-256 (`skywasm.digest.sha256`: not in skynet's crypt; MySQL's caching_sha2 needs it).
pub fn sha256(text: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(text).into()
}

/// `crypt.hmac_sha1(key, text)`: RFC 2104 HMAC-SHA1.
pub fn hmac_sha1(key: &[u8], text: &[u8]) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        String::from_utf8(base64_encode(bytes)).unwrap()
    }

    // Vectors from skynet's test/testcrypt.lua, which real skynet passes.
    #[test]
    fn des_matches_skynets_vectors() {
        let key = b"12345678";
        let iso = des_encode(key, b"hello world", Padding::Iso7816_4).unwrap();
        assert_eq!(b64(&iso), "KNugLrX23UcGtcVlk9y+LA==");
        assert_eq!(
            des_decode(key, &iso, Padding::Iso7816_4).unwrap(),
            b"hello world"
        );
        let pkcs7 = [
            ("", "/rlZt9RkL8s="),
            ("1", "g6AtgJul6q0="),
            ("12", "NefFpG+m1O4="),
            ("123", "LDiFUdf0iew="),
            ("1234", "T9u7dzBdi+w="),
            ("12345", "AGgKdx/Qic8="),
            ("123456", "ED5wLgc3Mnw="),
            ("1234567", "mYo+BYIT41M="),
            ("12345678", "ltACiHjVjIn+uVm31GQvyw=="),
        ];
        for (text, expected) in pkcs7 {
            let encoded = des_encode(key, text.as_bytes(), Padding::Pkcs7).unwrap();
            assert_eq!(b64(&encoded), expected, "{text:?}");
            assert_eq!(
                des_decode(key, &encoded, Padding::Pkcs7).unwrap(),
                text.as_bytes()
            );
        }
    }

    #[test]
    fn des_refuses_what_skynet_refuses() {
        assert_eq!(
            des_encode(b"1234567", b"x", Padding::Pkcs7),
            Err(CryptError::KeySize(7))
        );
        assert_eq!(
            des_decode(b"12345678", b"", Padding::Pkcs7),
            Err(CryptError::TextLength(0))
        );
        assert_eq!(
            des_decode(b"12345678", b"123456789", Padding::Pkcs7),
            Err(CryptError::TextLength(9))
        );
        // the right length, but garbage once decrypted
        let garbage = des_encode(b"12345678", b"1234567", Padding::Pkcs7).unwrap();
        assert_eq!(
            des_decode(b"abcdefgh", &garbage, Padding::Pkcs7),
            Err(CryptError::BadText)
        );
        assert_eq!(Padding::from_mode(2), Err(CryptError::PaddingMode(2)));
    }

    // The expected values below were printed by real skynet's crypt (skynet f19d1605,
    // luaclib/client.so) through crypt.hexencode.
    #[test]
    fn skynets_own_algorithms_match_a_real_skynet_run() {
        assert_eq!(hex_encode(&hashkey(b"hello world")), b"c1c8513506e36bbc");
        let (x, y) = (*b"abcdefgh", *b"12345678");
        assert_eq!(hex_encode(&hmac64(&x, &y)), b"fe3bcdd7a8bb7ce5");
        assert_eq!(hex_encode(&hmac64_md5(&x, &y)), b"b390b2dafc9e40da");
        assert_eq!(hex_encode(&hmac_hash(&y, b"hello")), b"c7c836eeffbdd948");
        assert_eq!(hex_encode(&dh_exchange(&x).unwrap()), b"c3c0880df34049bd");
        assert_eq!(hex_encode(&dh_secret(&x, &y).unwrap()), b"395a7fd768b78782");
    }

    #[test]
    fn md5_rounds_are_md5s_compression() {
        // "abc" padded to one block: its digest is the rounds plus the initial state
        let mut block = [0u32; 16];
        block[0] = u32::from_le_bytes([b'a', b'b', b'c', 0x80]);
        block[14] = 24;
        let state = md5_rounds(&block);
        let digest: Vec<u8> = (0..4)
            .flat_map(|i| state[i].wrapping_add(MD5_INIT[i]).to_le_bytes())
            .collect();
        assert_eq!(digest, md5::Md5::digest(b"abc").to_vec());
    }

    #[test]
    fn hmac64_md5_is_the_xor_of_an_md5_sum() {
        let (x, y) = (*b"\x01\x02\x03\x04\x05\x06\x07\x08", *b"zyxwvuts");
        let sum: [u8; 16] = md5::Md5::digest([x, y].concat().repeat(3)).into();
        let folded: Vec<u8> = sum[..8].iter().zip(&sum[8..]).map(|(a, b)| a ^ b).collect();
        assert_eq!(hmac64_md5(&x, &y).to_vec(), folded);
    }

    #[test]
    fn diffie_hellman_agrees() {
        let (a, b) = (
            *b"\x11\x22\x33\x44\x55\x66\x77\x08",
            *b"\x99\x88\x77\x66\x55\x44\x33\x02",
        );
        let (pa, pb) = (dh_exchange(&a).unwrap(), dh_exchange(&b).unwrap());
        assert_eq!(dh_secret(&pb, &a).unwrap(), dh_secret(&pa, &b).unwrap());
        assert_eq!(dh_exchange(&[0; 8]), Err(CryptError::Zero));
        assert_eq!(dh_secret(&a, &[0; 8]), Err(CryptError::Zero));
    }

    #[test]
    fn base64_decodes_as_leniently_as_skynet() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert_eq!(base64_decode(b"aGVsbG8=\n"), Err(CryptError::BadBase64));
        assert_eq!(base64_decode(b"a==="), Err(CryptError::BadBase64));
        assert_eq!(base64_decode(b"aB=="), Err(CryptError::BadBase64));
    }

    #[test]
    fn hex_and_xor() {
        assert_eq!(hex_decode(b"00ff7A").unwrap(), [0, 255, 0x7a]);
        assert_eq!(hex_decode(b"0"), Err(CryptError::HexSize(1)));
        assert_eq!(hex_decode(b"0g"), Err(CryptError::BadHex));
        assert_eq!(xor_str(b"abc", b"\x01").unwrap(), b"`cb");
        assert_eq!(xor_str(b"abc", b""), Err(CryptError::EmptyXor));
        assert_eq!(
            random_key([1, 1, 0, 0, 0, 0, 0, 0]),
            [1, 1, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            random_key([2, 2, 0, 0, 0, 0, 0, 0]),
            [3, 2, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn sha256_vector() {
        assert_eq!(
            hex_encode(&sha256(b"abc")),
            b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(
            hex_encode(&sha1(b"abc")),
            b"a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_encode(&hmac_sha1(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            b"de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
    }

    proptest::proptest! {
        #[test]
        fn codecs_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                             key in proptest::array::uniform8(proptest::num::u8::ANY)) {
            proptest::prop_assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes.clone());
            proptest::prop_assert_eq!(hex_decode(&hex_encode(&bytes)).unwrap(), bytes.clone());
            for padding in [Padding::Iso7816_4, Padding::Pkcs7] {
                let sealed = des_encode(&key, &bytes, padding).unwrap();
                proptest::prop_assert_eq!(des_decode(&key, &sealed, padding).unwrap(), bytes.clone());
            }
        }

        #[test]
        fn decoders_never_panic(text in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = base64_decode(&text);
            let _ = hex_decode(&text);
            if !text.is_empty() && text.len() % 8 == 0 {
                let _ = des_decode(b"12345678", &text, Padding::Iso7816_4);
                let _ = des_decode(b"12345678", &text, Padding::Pkcs7);
            }
        }
    }
}
