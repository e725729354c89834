//! The reader: bytes to [`Value`]s. Safe on untrusted input.
//!
//! Guarantees: no panics, recursion bounded by [`MAX_DEPTH`], and no
//! allocation sized by a length field beyond what the remaining input could
//! possibly hold.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use crate::format::MAX_DEPTH;
use crate::raw::{Item, Reader};
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
    pub(crate) fn new(offset: usize, kind: UnpackErrorKind) -> Self {
        UnpackError { offset, kind }
    }

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
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Unpacker<'a> {
    /// A reader positioned at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(bytes),
            failed: false,
        }
    }

    /// Byte offset of the next value.
    pub fn offset(&self) -> usize {
        self.reader.offset()
    }

    /// `true` once every value has been read (or an error was returned).
    pub fn is_finished(&self) -> bool {
        self.failed || self.reader.is_at_end()
    }

    /// Reads the next value; `Ok(None)` at the end of the input.
    ///
    /// After an error the reader stays finished and returns `Ok(None)`.
    pub fn next_value(&mut self) -> Result<Option<Value>, UnpackError> {
        if self.failed {
            return Ok(None);
        }
        let result = match self.reader.next_item() {
            Ok(Some(item)) => self.build(item).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// The value that starts with `item` (a whole table for a table header). Recursion is
    /// bounded by the reader, which refuses more than `MAX_DEPTH` open tables.
    fn build(&mut self, item: Item<'_>) -> Result<Value, UnpackError> {
        Ok(match item {
            Item::Nil => Value::Nil,
            Item::Boolean(b) => Value::Boolean(b),
            Item::Integer(i) => Value::Integer(i),
            Item::Real(f) => Value::Real(f),
            Item::LightUserdata(p) => Value::LightUserdata(p),
            Item::String(bytes) => Value::String(bytes.to_vec()),
            Item::Table { array_len } => {
                let mut table = Table {
                    array: Vec::with_capacity(array_len),
                    hash: Vec::new(),
                };
                for _ in 0..array_len {
                    let item = self.expect_item()?;
                    table.array.push(self.build(item)?);
                }
                loop {
                    let key = match self.expect_item()? {
                        Item::TableEnd => break,
                        item => self.build(item)?,
                    };
                    let item = self.expect_item()?;
                    let value = self.build(item)?;
                    table.hash.push((key, value));
                }
                Value::Table(table)
            }
            // The reader returns an end only where a key could be, handled above.
            Item::TableEnd => Value::Nil,
        })
    }

    /// The next item inside an open table, where the input must go on.
    fn expect_item(&mut self) -> Result<Item<'a>, UnpackError> {
        let offset = self.reader.offset();
        self.reader
            .next_item()?
            .ok_or(UnpackError::new(offset, UnpackErrorKind::Truncated))
    }
}

impl Iterator for Unpacker<'_> {
    type Item = Result<Value, UnpackError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_value().transpose()
    }
}

impl FusedIterator for Unpacker<'_> {}
