//! The reader: bytes to [`Value`]s. Safe on untrusted input.
//!
//! Guarantees: no panics, recursion bounded by [`MAX_DEPTH`], and no
//! allocation sized by a length field beyond what the remaining input could
//! possibly hold.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use crate::format::{
    LONG_STRING_DWORD, LONG_STRING_WORD, MAX_DEPTH, NIL_BYTE, NUMBER_BYTE, NUMBER_DWORD,
    NUMBER_QWORD, NUMBER_REAL, NUMBER_WORD, NUMBER_ZERO, TABLE_EXTENDED, TYPE_BOOLEAN,
    TYPE_LONG_STRING, TYPE_NIL, TYPE_NUMBER, TYPE_SHORT_STRING, TYPE_TABLE, TYPE_USERDATA,
};
use crate::value::{Table, Value};

/// What was wrong with a packed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnpackErrorKind {
    /// The input ended in the middle of a value.
    Truncated,
    /// The type byte has type tag 7, which does not exist.
    InvalidType {
        /// The offending type byte.
        byte: u8,
    },
    /// The type byte's cookie is not valid for its type tag.
    InvalidCookie {
        /// The offending type byte.
        byte: u8,
    },
    /// A value sits inside more than [`MAX_DEPTH`] nested tables.
    TooDeep,
    /// A table's array size is larger than the remaining input could hold
    /// (every element takes at least one byte).
    ArraySizeTooLarge {
        /// The declared array size.
        size: u64,
    },
    /// An extended array size is not a non-negative integer number value.
    InvalidArraySize,
}

impl fmt::Display for UnpackErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("unexpected end of input"),
            Self::InvalidType { byte } => write!(f, "invalid type byte {byte:#04x}"),
            Self::InvalidCookie { byte } => {
                write!(f, "invalid cookie {} in type byte {byte:#04x}", byte >> 3)
            }
            Self::TooDeep => write!(f, "more than {MAX_DEPTH} nested tables"),
            Self::ArraySizeTooLarge { size } => {
                write!(f, "array size {size} is larger than the remaining input")
            }
            Self::InvalidArraySize => {
                f.write_str("extended array size is not a non-negative integer")
            }
        }
    }
}

/// A malformed packed stream: what was wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackError {
    offset: usize,
    kind: UnpackErrorKind,
}

impl UnpackError {
    /// Byte offset in the input of the value or field that is wrong (for
    /// [`UnpackErrorKind::Truncated`], of the field that was cut short).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> UnpackErrorKind {
        self.kind
    }
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid serialize stream at byte {}: {}",
            self.offset, self.kind
        )
    }
}

impl core::error::Error for UnpackError {}

/// Unpacks every value in `bytes`, like `skynet.unpack`.
///
/// An empty input gives no values.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Value>, UnpackError> {
    Unpacker::new(bytes).collect()
}

/// Reads the values of a packed message one at a time.
///
/// Also an [`Iterator`] over `Result<Value, UnpackError>`; after an error it
/// yields nothing more.
#[derive(Debug, Clone)]
pub struct Unpacker<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Input bytes already promised to the tables currently open: one per
    /// array element not yet started and one per end marker. A new table's
    /// array size must fit in what is left after these, which bounds the
    /// total capacity preallocated by all open tables by the input length.
    reserved: usize,
    failed: bool,
}

impl<'a> Unpacker<'a> {
    /// A reader positioned at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            reserved: 0,
            failed: false,
        }
    }

    /// Byte offset of the next value.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// `true` once every value has been read (or an error was returned).
    pub fn is_finished(&self) -> bool {
        self.failed || self.pos >= self.bytes.len()
    }

    /// Reads the next value; `Ok(None)` at the end of the input.
    ///
    /// After an error the reader stays finished and returns `Ok(None)`.
    pub fn next_value(&mut self) -> Result<Option<Value>, UnpackError> {
        if self.is_finished() {
            return Ok(None);
        }
        self.reserved = 0;
        match self.read_value(0) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn error(offset: usize, kind: UnpackErrorKind) -> UnpackError {
        UnpackError { offset, kind }
    }

    /// Consumes exactly `len` bytes.
    fn take(&mut self, len: usize) -> Result<&'a [u8], UnpackError> {
        let slice = self
            .pos
            .checked_add(len)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(Self::error(self.pos, UnpackErrorKind::Truncated))?;
        self.pos += len;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], UnpackError> {
        let start = self.pos;
        let slice = self.take(N)?;
        <[u8; N]>::try_from(slice).map_err(|_| Self::error(start, UnpackErrorKind::Truncated))
    }

    fn take_byte(&mut self) -> Result<u8, UnpackError> {
        let [byte] = self.take_array::<1>()?;
        Ok(byte)
    }

    /// Reads one value found inside `depth` nested tables.
    fn read_value(&mut self, depth: usize) -> Result<Value, UnpackError> {
        let start = self.pos;
        let byte = self.take_byte()?;
        if depth > MAX_DEPTH {
            return Err(Self::error(start, UnpackErrorKind::TooDeep));
        }
        let invalid_cookie = Self::error(start, UnpackErrorKind::InvalidCookie { byte });
        let cookie = byte >> 3;
        // skynet's reader ignores the cookie of nil, boolean and light
        // userdata; we only accept what its writer produces.
        let value = match byte & 7 {
            TYPE_NIL if cookie == 0 => Value::Nil,
            TYPE_BOOLEAN if cookie <= 1 => Value::Boolean(cookie == 1),
            TYPE_NUMBER if cookie == NUMBER_REAL => {
                Value::Real(f64::from_le_bytes(self.take_array()?))
            }
            TYPE_NUMBER => Value::Integer(self.read_integer(byte, start)?),
            TYPE_USERDATA if cookie == 0 => {
                Value::LightUserdata(u64::from_le_bytes(self.take_array()?))
            }
            TYPE_SHORT_STRING => Value::String(self.take(usize::from(cookie))?.to_vec()),
            TYPE_LONG_STRING => {
                let len = match cookie {
                    LONG_STRING_WORD => usize::from(u16::from_le_bytes(self.take_array()?)),
                    LONG_STRING_DWORD => usize::try_from(u32::from_le_bytes(self.take_array()?))
                        .map_err(|_| Self::error(self.pos, UnpackErrorKind::Truncated))?,
                    _ => return Err(invalid_cookie),
                };
                Value::String(self.take(len)?.to_vec())
            }
            TYPE_TABLE => Value::Table(self.read_table(cookie, depth, start)?),
            TYPE_NIL | TYPE_BOOLEAN | TYPE_USERDATA => return Err(invalid_cookie),
            _ => return Err(Self::error(start, UnpackErrorKind::InvalidType { byte })),
        };
        Ok(value)
    }

    /// Reads the payload of an integer number whose type byte (at `start`)
    /// was `byte`.
    fn read_integer(&mut self, byte: u8, start: usize) -> Result<i64, UnpackError> {
        Ok(match byte >> 3 {
            NUMBER_ZERO => 0,
            NUMBER_BYTE => i64::from(self.take_byte()?),
            NUMBER_WORD => i64::from(u16::from_le_bytes(self.take_array()?)),
            NUMBER_DWORD => i64::from(i32::from_le_bytes(self.take_array()?)),
            NUMBER_QWORD => i64::from_le_bytes(self.take_array()?),
            _ => return Err(Self::error(start, UnpackErrorKind::InvalidCookie { byte })),
        })
    }

    /// Reads the size after an extended table header: an integer number
    /// value (skynet rejects reals and other types here).
    fn read_extended_array_size(&mut self) -> Result<u64, UnpackError> {
        let start = self.pos;
        let byte = self.take_byte()?;
        if byte & 7 != TYPE_NUMBER || byte >> 3 == NUMBER_REAL {
            return Err(Self::error(start, UnpackErrorKind::InvalidArraySize));
        }
        let size = self.read_integer(byte, start)?;
        u64::try_from(size).map_err(|_| Self::error(start, UnpackErrorKind::InvalidArraySize))
    }

    /// Reads the body of a table whose header byte (at `start`) had `cookie`
    /// and which sits inside `depth` tables.
    fn read_table(&mut self, cookie: u8, depth: usize, start: usize) -> Result<Table, UnpackError> {
        let size = if cookie == TABLE_EXTENDED {
            self.read_extended_array_size()?
        } else {
            u64::from(cookie)
        };
        // The array elements and the end marker each need at least one byte,
        // on top of what the enclosing tables still need.
        let too_large = Self::error(start, UnpackErrorKind::ArraySizeTooLarge { size });
        let array_len = usize::try_from(size).map_err(|_| too_large)?;
        let claim = array_len.checked_add(1).ok_or(too_large)?;
        let needed = claim.checked_add(self.reserved).ok_or(too_large)?;
        if needed > self.remaining() {
            return Err(too_large);
        }
        self.reserved = needed;

        let mut table = Table {
            array: Vec::with_capacity(array_len),
            hash: Vec::new(),
        };
        for _ in 0..array_len {
            // This element's byte is now being consumed by the element itself.
            self.reserved = self.reserved.saturating_sub(1);
            table.array.push(self.read_value(depth + 1)?);
        }
        loop {
            // A nil where a key would be ends the table.
            match self.bytes.get(self.pos) {
                Some(&NIL_BYTE) => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {}
                None => return Err(Self::error(self.pos, UnpackErrorKind::Truncated)),
            }
            let key = self.read_value(depth + 1)?;
            let value = self.read_value(depth + 1)?;
            table.hash.push((key, value));
        }
        // Release the end marker's reservation.
        self.reserved = self.reserved.saturating_sub(1);
        Ok(table)
    }
}

impl Iterator for Unpacker<'_> {
    type Item = Result<Value, UnpackError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_value().transpose()
    }
}

impl FusedIterator for Unpacker<'_> {}
