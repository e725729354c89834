//! BSON as skynet's `bson` Lua module writes and reads it: the element writers its encoder
//! is built from, a decoder that hands elements to a [`Sink`], and the field index behind
//! its in-place `__newindex`.
//!
//! skynet's Lua values for the types Lua lacks are strings that start with a zero byte and
//! the BSON type: `"\0\x07"` and 12 bytes is an object id, `"\0\x09"` and a 32-bit second
//! count a date, `"\0\x0a"` null, and so on ([`is_special`]). Both directions keep that
//! form byte for byte, so documents made here and by skynet's C module are the same bytes.
//!
//! Where skynet's C code would read out of bounds on a malformed document (a negative
//! length, a regex without its terminator), this code returns an error instead; and
//! nesting is bounded in both directions ([`MAX_DEPTH`]).

use std::fmt;

/// A double.
pub const REAL: u8 = 1;
/// A UTF-8 string.
pub const STRING: u8 = 2;
/// An embedded document.
pub const DOCUMENT: u8 = 3;
/// An array (a document keyed "0", "1", ...).
pub const ARRAY: u8 = 4;
/// Binary data with a subtype.
pub const BINARY: u8 = 5;
/// An object id (12 bytes).
pub const OBJECTID: u8 = 7;
/// A boolean.
pub const BOOLEAN: u8 = 8;
/// A UTC date in milliseconds (skynet's Lua form holds seconds).
pub const DATE: u8 = 9;
/// Null.
pub const NULL: u8 = 10;
/// A regular expression: pattern and options, both C strings.
pub const REGEX: u8 = 11;
/// A DB pointer (deprecated by BSON; carried through).
pub const DBPOINTER: u8 = 12;
/// JavaScript code.
pub const JSCODE: u8 = 13;
/// A symbol (deprecated by BSON; carried through).
pub const SYMBOL: u8 = 14;
/// JavaScript code with a scope.
pub const CODEWS: u8 = 15;
/// A 32-bit integer.
pub const INT32: u8 = 16;
/// A MongoDB timestamp: increment and seconds.
pub const TIMESTAMP: u8 = 17;
/// A 64-bit integer.
pub const INT64: u8 = 18;
/// The min key.
pub const MINKEY: u8 = 255;
/// The max key.
pub const MAXKEY: u8 = 127;

/// How deep documents may nest, encoding and decoding (skynet's encoder's limit; its
/// decoder has none and recurses on the native stack).
pub const MAX_DEPTH: usize = 128;
/// A field index entry is its BSON type plus its value's offset shifted by this.
pub const TYPE_SHIFT: u32 = 5;

/// What is wrong with a value to encode or a document to decode; the texts are skynet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A key or string is not UTF-8 by skynet's rules.
    Utf8,
    /// A `"\0"`-prefixed string names no BSON type skynet encodes.
    Subtype(u8),
    /// An object id is not 12 bytes.
    ObjectId,
    /// A date is not 4 bytes.
    Date,
    /// A timestamp is not 8 bytes.
    Timestamp,
    /// An int64 is not 8 bytes.
    Int64,
    /// A regex lacks the zero byte between pattern and options.
    Regex,
    /// A binary lacks its subtype byte.
    Binary,
    /// A document ends before an element does (what is left, what was wanted).
    Block(usize, i64),
    /// A key or regex part lacks its terminating zero.
    CString,
    /// A document does not end with a zero byte.
    DocumentEnd,
    /// A string's length is not positive.
    StringLength(i32),
    /// An element of an unknown type.
    Type(u8),
    /// Tables nest deeper than [`MAX_DEPTH`] while encoding.
    TooDeep,
    /// Documents nest deeper than [`MAX_DEPTH`] while decoding.
    DecodeDepth,
    /// A document would pass BSON's 2 GiB length.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Utf8 => f.write_str("Invalid utf8 string"),
            Error::Subtype(t) => write!(f, "Invalid subtype {t}"),
            Error::ObjectId => f.write_str("Invalid object id"),
            Error::Date => f.write_str("Invalid date"),
            Error::Timestamp => f.write_str("Invalid timestamp"),
            Error::Int64 => f.write_str("Invalid int64"),
            Error::Regex => f.write_str("Invalid regex"),
            Error::Binary => f.write_str("Invalid binary"),
            Error::Block(have, want) => write!(f, "Invalid bson block ({have}:{want})"),
            Error::CString => f.write_str("Invalid bson block : cstring"),
            Error::DocumentEnd => f.write_str("Invalid document end"),
            Error::StringLength(n) => write!(f, "Invalid bson string , length = {n}"),
            Error::Type(t) => write!(f, "Invalid bson type : {t}"),
            Error::TooDeep => f.write_str("Too depth while encoding bson"),
            Error::DecodeDepth => f.write_str("Too depth while decoding bson"),
            Error::TooLarge => f.write_str("bson document too large"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether `bytes` is skynet's Lua form of a value Lua lacks (null, an object id, ...):
/// longer than one byte and starting with a zero.
pub fn is_special(bytes: &[u8]) -> bool {
    bytes.len() > 1 && bytes[0] == 0
}

/// Whether `bytes` is UTF-8 as skynet's encoder checks it: no overlong forms, nothing
/// past U+10FFFF, at most four bytes a character. Surrogates and zero bytes pass, as
/// there.
pub fn valid_utf8(bytes: &[u8]) -> bool {
    const LIMITS: [u32; 4] = [0xFF, 0x7F, 0x7FF, 0xFFFF];
    let mut rest = bytes;
    while let Some(&lead) = rest.first() {
        if lead < 0x80 {
            rest = &rest[1..];
            continue;
        }
        let mut c = u32::from(lead);
        let mut value = 0u32;
        let mut count = 0usize;
        while c & 0x40 != 0 {
            count += 1;
            match rest.get(count) {
                Some(&cc) if cc & 0xC0 == 0x80 => value = (value << 6) | u32::from(cc & 0x3F),
                _ => return false,
            }
            c <<= 1;
            if count > 3 {
                return false;
            }
        }
        value |= (c & 0x7F) << (count * 5);
        if value > 0x10FFFF || value <= LIMITS[count] {
            return false;
        }
        rest = &rest[count + 1..];
    }
    true
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `bytes` and a zero, checking UTF-8 as skynet does.
pub fn put_cstring(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Error> {
    if !valid_utf8(bytes) {
        return Err(Error::Utf8);
    }
    out.extend_from_slice(bytes);
    out.push(0);
    Ok(())
}

/// Appends an element's type and name.
pub fn put_key(out: &mut Vec<u8>, kind: u8, key: &[u8]) -> Result<(), Error> {
    out.push(kind);
    put_cstring(out, key)
}

/// Appends an array element's type and name: its 0-based index in decimal.
pub fn put_index_key(out: &mut Vec<u8>, kind: u8, index: usize) {
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = index;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.push(0);
}

/// Reserves a document's length; [`end_document`] fills it in.
pub fn begin_document(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Ends the document begun at `start`: its zero byte and its length.
pub fn end_document(out: &mut Vec<u8>, start: usize) -> Result<(), Error> {
    out.push(0);
    let len = i32::try_from(out.len() - start).map_err(|_| Error::TooLarge)?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The type an integer is written as: 32 bits when it fits, else 64.
pub fn integer_type(v: i64) -> u8 {
    if i32::try_from(v).is_ok() {
        INT32
    } else {
        INT64
    }
}

/// Appends an integer's value (its key written with [`integer_type`]).
pub fn put_integer(out: &mut Vec<u8>, v: i64) {
    match i32::try_from(v) {
        Ok(small) => put_i32(out, small),
        Err(_) => put_i64(out, v),
    }
}

/// Appends a double's value.
pub fn put_double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a string's value: length (with the zero), bytes, zero.
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Error> {
    let len = i32::try_from(bytes.len() + 1).map_err(|_| Error::TooLarge)?;
    put_i32(out, len);
    put_cstring(out, bytes)
}

/// Appends a special value's element (key and value), `value` being skynet's Lua form
/// ([`is_special`]).
pub fn put_special(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    index: usize,
    value: &[u8],
) -> Result<(), Error> {
    let kind = value[1];
    let payload = &value[2..];
    // check before the key goes out, so that a bad value leaves nothing half-written
    match kind {
        BINARY if payload.is_empty() => return Err(Error::Binary),
        OBJECTID if payload.len() != 12 => return Err(Error::ObjectId),
        DATE if payload.len() != 4 => return Err(Error::Date),
        TIMESTAMP if payload.len() != 8 => return Err(Error::Timestamp),
        INT64 if payload.len() != 8 => return Err(Error::Int64),
        REGEX if regex_split(payload).is_none() => return Err(Error::Regex),
        BINARY | OBJECTID | DATE | TIMESTAMP | INT64 | REGEX | JSCODE | DBPOINTER | SYMBOL
        | CODEWS | MINKEY | MAXKEY | NULL => {}
        other => return Err(Error::Subtype(other)),
    }
    match key {
        Some(key) => put_key(out, kind, key)?,
        None => put_index_key(out, kind, index),
    }
    match kind {
        BINARY => {
            let len = i32::try_from(payload.len() - 1).map_err(|_| Error::TooLarge)?;
            put_i32(out, len);
            out.extend_from_slice(payload);
        }
        DATE => {
            let seconds = u32::from_le_bytes(payload.try_into().expect("checked"));
            put_i64(out, i64::from(seconds) * 1000);
        }
        REGEX => {
            let (pattern, options) = regex_split(payload).expect("checked");
            put_cstring(out, pattern)?;
            put_cstring(out, options)?;
        }
        MINKEY | MAXKEY | NULL => {}
        // object ids, timestamps and int64s are their bytes as they stand (little-endian,
        // as skynet's on the machines it runs on), code and symbols too
        _ => out.extend_from_slice(payload),
    }
    Ok(())
}

/// Splits a regex's Lua form after its two bytes (`pattern \0 options \0`) at the last
/// zero before the final one.
fn regex_split(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = payload.strip_suffix(&[0])?;
    let middle = body.iter().rposition(|&b| b == 0)?;
    Some((&body[..middle], &body[middle + 1..]))
}

/// A decoded element's name: a document's key, or an array's index plus one (Lua's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Key<'a> {
    /// A document's key.
    Name(&'a [u8]),
    /// An array element's position, 1-based.
    Index(i64),
}

/// A decoded scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A double.
    Double(f64),
    /// A string's bytes.
    String(&'a [u8]),
    /// A boolean.
    Bool(bool),
    /// An integer (INT32 or INT64).
    Integer(i64),
    /// skynet's Lua form of a special value, as the concatenation of these parts.
    Special(&'a [&'a [u8]]),
}

/// Where [`decode`] puts what it reads.
pub trait Sink {
    /// A document or array begins; `key` is `None` for the outermost one.
    fn open(&mut self, key: Option<Key<'_>>, array: bool) -> Result<(), Error>;
    /// The document or array last opened ends (`outermost` for the last).
    fn close(&mut self, outermost: bool) -> Result<(), Error>;
    /// A scalar element.
    fn value(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), Error>;
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: i64) -> Result<&'a [u8], Error> {
        let have = self.bytes.len();
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= have)
            .ok_or(Error::Block(have, n))?;
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn cstring(&mut self) -> Result<&'a [u8], Error> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::CString)?;
        let s = &self.bytes[..end];
        self.bytes = &self.bytes[end + 1..];
        Ok(s)
    }
}

/// The length a document says it has (its first four bytes), if it has four.
pub fn declared_length(doc: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(doc.get(..4)?.try_into().ok()?))
}

/// Decodes the document at the start of `bytes` into `sink`, as skynet's `bson.decode`;
/// returns the document's length.
pub fn decode<S: Sink>(bytes: &[u8], sink: &mut S) -> Result<usize, Error> {
    let mut reader = Reader { bytes };
    decode_document(&mut reader, sink, None, false, 0)?;
    Ok(bytes.len() - reader.bytes.len())
}

fn decode_document<S: Sink>(
    reader: &mut Reader<'_>,
    sink: &mut S,
    key: Option<Key<'_>>,
    array: bool,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::DecodeDepth);
    }
    let len = reader.i32()?;
    let mut body = Reader {
        bytes: reader.take(i64::from(len) - 5)?,
    };
    if reader.byte()? != 0 {
        return Err(Error::DocumentEnd);
    }
    sink.open(key, array)?;
    while !body.bytes.is_empty() {
        let kind = body.byte()?;
        let name = body.cstring()?;
        let key = if array {
            Key::Index(array_index(name))
        } else {
            Key::Name(name)
        };
        let value = match kind {
            REAL => Value::Double(f64::from_bits(body.i64()? as u64)),
            BOOLEAN => Value::Bool(body.byte()? != 0),
            STRING => {
                let len = body.i32()?;
                if len <= 0 {
                    return Err(Error::StringLength(len));
                }
                let bytes = body.take(i64::from(len))?;
                Value::String(&bytes[..bytes.len() - 1])
            }
            DOCUMENT | ARRAY => {
                decode_document(&mut body, sink, Some(key), kind == ARRAY, depth + 1)?;
                continue;
            }
            BINARY => {
                let len = body.i32()?;
                let subtype = body.byte()?;
                let data = body.take(i64::from(len))?;
                sink.value(key, Value::Special(&[&[0, BINARY, subtype], data]))?;
                continue;
            }
            OBJECTID => {
                let id = body.take(12)?;
                sink.value(key, Value::Special(&[&[0, OBJECTID], id]))?;
                continue;
            }
            DATE => {
                // seconds, cut to 32 bits as skynet's
                let seconds = (body.i64()? / 1000) as u32;
                sink.value(key, Value::Special(&[&[0, DATE], &seconds.to_le_bytes()]))?;
                continue;
            }
            MINKEY | MAXKEY | NULL => {
                sink.value(key, Value::Special(&[&[0, kind]]))?;
                continue;
            }
            REGEX => {
                let pattern = body.cstring()?;
                let options = body.cstring()?;
                sink.value(
                    key,
                    Value::Special(&[&[0, REGEX], pattern, &[0], options, &[0]]),
                )?;
                continue;
            }
            INT32 => Value::Integer(i64::from(body.i32()?)),
            TIMESTAMP => {
                let both = body.take(8)?;
                sink.value(key, Value::Special(&[&[0, TIMESTAMP], both]))?;
                continue;
            }
            INT64 => Value::Integer(body.i64()?),
            DBPOINTER | JSCODE | SYMBOL | CODEWS => {
                // the Lua form keeps the length word in front, as skynet's
                let whole = body.bytes;
                let len = i64::from(body.i32()?);
                let rest = match kind {
                    DBPOINTER => len + 12,
                    CODEWS => len - 4,
                    _ => len,
                };
                body.take(rest)?;
                let taken = whole.len() - body.bytes.len();
                sink.value(key, Value::Special(&[&[0, kind], &whole[..taken]]))?;
                continue;
            }
            other => return Err(Error::Type(other)),
        };
        sink.value(key, value)?;
    }
    sink.close(depth == 0)
}

/// An array element's name as skynet reads it (`strtol`, plus one): the leading decimal
/// digits, 0 when there are none.
fn array_index(name: &[u8]) -> i64 {
    let (negative, digits) = match name.first() {
        Some(b'-') => (true, &name[1..]),
        Some(b'+') => (false, &name[1..]),
        _ => (false, name),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    let n = if negative { -n } else { n };
    // skynet keeps it in a C int
    i64::from((n.wrapping_add(1)) as i32)
}

/// A replaceable field of an encoded document: where its value is and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The field's BSON type.
    pub kind: u8,
    /// Its value's offset from the document's start.
    pub offset: usize,
}

impl Slot {
    /// The index entry skynet's `makeindex` keeps for it.
    pub fn id(self) -> i64 {
        i64::from(self.kind) | (self.offset as i64) << TYPE_SHIFT
    }

    /// The slot an index entry names, if it lies whole inside a document of `len` bytes.
    pub fn from_id(id: i64, len: usize) -> Option<Slot> {
        let kind = (id & ((1 << TYPE_SHIFT) - 1)) as u8;
        let offset = usize::try_from(id >> TYPE_SHIFT).ok()?;
        let slot = Slot { kind, offset };
        (offset.checked_add(slot.width()?)? <= len).then_some(slot)
    }

    /// How many bytes the value takes, for the types that can be replaced in place.
    pub fn width(self) -> Option<usize> {
        match self.kind {
            INT64 | TIMESTAMP | DATE | REAL => Some(8),
            BOOLEAN => Some(1),
            OBJECTID => Some(12),
            INT32 => Some(4),
            _ => None,
        }
    }
}

/// Calls `f` with the name and slot of each fixed-size field at the top of `doc` (skynet's
/// `makeindex`: numbers, booleans, dates, timestamps, object ids).
pub fn index(doc: &[u8], mut f: impl FnMut(&[u8], Slot) -> Result<(), Error>) -> Result<(), Error> {
    let len = declared_length(doc).ok_or(Error::Block(doc.len(), 4))?;
    let end = usize::try_from(len)
        .ok()
        .filter(|&n| n >= 5 && n <= doc.len());
    let end = end.ok_or(Error::Block(doc.len(), i64::from(len)))?;
    let mut reader = Reader {
        bytes: &doc[4..end - 1],
    };
    while !reader.bytes.is_empty() {
        let kind = reader.byte()?;
        let name = reader.cstring()?;
        let offset = end - 1 - reader.bytes.len();
        let slot = Slot { kind, offset };
        if let Some(width) = slot.width() {
            reader.take(width as i64)?;
            f(name, slot)?;
            continue;
        }
        match kind {
            JSCODE | SYMBOL | STRING => {
                let n = reader.i32()?;
                reader.take(i64::from(n))?;
            }
            CODEWS | ARRAY | DOCUMENT => {
                let n = reader.i32()?;
                reader.take(i64::from(n) - 4)?;
            }
            BINARY => {
                let n = reader.i32()?;
                reader.take(i64::from(n) + 1)?;
            }
            MINKEY | MAXKEY | NULL => {}
            REGEX => {
                reader.cstring()?;
                reader.cstring()?;
            }
            DBPOINTER => {
                let n = reader.i32()?;
                reader.take(i64::from(n) + 12)?;
            }
            other => return Err(Error::Type(other)),
        }
    }
    Ok(())
}

/// A new object id: seconds (big-endian), five bytes naming the process, and a 24-bit
/// count (big-endian), as skynet's `bson.objectid()`.
pub fn object_id(seconds: u32, process: [u8; 5], count: u32) -> [u8; 12] {
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&seconds.to_be_bytes());
    id[4..9].copy_from_slice(&process);
    id[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    id
}

/// An object id from its 24 hex digits, read as leniently as skynet's (a byte that is no
/// digit counts as 0, letters past `f` as their place in the alphabet plus 10).
pub fn object_id_from_hex(hex: &[u8]) -> Option<[u8; 12]> {
    fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => 0,
        }
    }
    if hex.len() != 24 {
        return None;
    }
    let mut id = [0u8; 12];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        id[i] = (digit(pair[0]) << 4) | digit(pair[1]);
    }
    Some(id)
}

#[cfg(test)]
mod tests;
