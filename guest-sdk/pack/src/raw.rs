//! The format one value at a time, without building [`Value`](crate::Value)s: what a
//! language binding (snlua's `skynet.pack`) uses to write from and read into its own values.
//!
//! The writer functions each append one encoding; a table is [`write_table_start`], its
//! array values, its key/value pairs, then [`write_table_end`]. The [`Reader`] returns one
//! [`Item`] at a time and checks the structure itself, with the same guarantees as
//! [`Unpacker`](crate::Unpacker): no panics, at most [`MAX_DEPTH`] nested tables, and no
//! array size larger than the remaining input could hold.

use alloc::vec::Vec;

use crate::format::{
    type_byte, LONG_STRING_DWORD, LONG_STRING_WORD, MAX_COOKIE, MAX_DEPTH, NIL_BYTE, NUMBER_BYTE,
    NUMBER_DWORD, NUMBER_QWORD, NUMBER_REAL, NUMBER_WORD, NUMBER_ZERO, TABLE_EXTENDED,
    TYPE_BOOLEAN, TYPE_LONG_STRING, TYPE_NIL, TYPE_NUMBER, TYPE_SHORT_STRING, TYPE_TABLE,
    TYPE_USERDATA,
};
use crate::pack::PackError;
use crate::unpack::{UnpackError, UnpackErrorKind};

/// Appends a nil.
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(NIL_BYTE);
}

/// Appends a boolean.
pub fn write_boolean(out: &mut Vec<u8>, b: bool) {
    out.push(type_byte(TYPE_BOOLEAN, u8::from(b)));
}

/// Appends an integer in the smallest form skynet's writer would pick.
///
/// Negative numbers always use the signed 32-bit form when they fit: the byte and word
/// forms are unsigned.
pub fn write_integer(out: &mut Vec<u8>, i: i64) {
    if i == 0 {
        out.push(type_byte(TYPE_NUMBER, NUMBER_ZERO));
    } else if let Ok(small) = i32::try_from(i) {
        if let Ok(byte) = u8::try_from(small) {
            out.push(type_byte(TYPE_NUMBER, NUMBER_BYTE));
            out.push(byte);
        } else if let Ok(word) = u16::try_from(small) {
            out.push(type_byte(TYPE_NUMBER, NUMBER_WORD));
            out.extend_from_slice(&word.to_le_bytes());
        } else {
            out.push(type_byte(TYPE_NUMBER, NUMBER_DWORD));
            out.extend_from_slice(&small.to_le_bytes());
        }
    } else {
        out.push(type_byte(TYPE_NUMBER, NUMBER_QWORD));
        out.extend_from_slice(&i.to_le_bytes());
    }
}

/// Appends a float (always the 8-byte form, even for integral values).
pub fn write_real(out: &mut Vec<u8>, f: f64) {
    out.push(type_byte(TYPE_NUMBER, NUMBER_REAL));
    out.extend_from_slice(&f.to_le_bytes());
}

/// Appends a light userdata (a pointer, meaningful only inside the process that wrote it).
pub fn write_light_userdata(out: &mut Vec<u8>, pointer: u64) {
    out.push(type_byte(TYPE_USERDATA, 0));
    out.extend_from_slice(&pointer.to_le_bytes());
}

/// Appends a string; fails for strings of 4 GiB or more.
pub fn write_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), PackError> {
    let len = bytes.len();
    match u8::try_from(len) {
        // Lengths 0..=31 fit in the cookie itself.
        Ok(short) if short < MAX_COOKIE => out.push(type_byte(TYPE_SHORT_STRING, short)),
        _ => {
            if let Ok(word) = u16::try_from(len) {
                out.push(type_byte(TYPE_LONG_STRING, LONG_STRING_WORD));
                out.extend_from_slice(&word.to_le_bytes());
            } else if let Ok(dword) = u32::try_from(len) {
                out.push(type_byte(TYPE_LONG_STRING, LONG_STRING_DWORD));
                out.extend_from_slice(&dword.to_le_bytes());
            } else {
                return Err(PackError::StringTooLong { len });
            }
        }
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends a table header announcing `array_len` array values.
pub fn write_table_start(out: &mut Vec<u8>, array_len: usize) {
    match u8::try_from(array_len) {
        Ok(small) if small < TABLE_EXTENDED => out.push(type_byte(TYPE_TABLE, small)),
        // 31 and up: the size follows as a complete number value.
        _ => {
            out.push(type_byte(TYPE_TABLE, TABLE_EXTENDED));
            write_integer(out, i64::try_from(array_len).unwrap_or(i64::MAX));
        }
    }
}

/// Appends the end of a table (a nil where the next key would be).
pub fn write_table_end(out: &mut Vec<u8>) {
    out.push(NIL_BYTE);
}

/// One step of a packed stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// nil.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// A light userdata (a pointer from the writer's process).
    LightUserdata(u64),
    /// A string, borrowed from the input.
    String(&'a [u8]),
    /// The start of a table: `array_len` array values follow, then key/value items until
    /// [`Item::TableEnd`].
    Table {
        /// How many array values follow (`t[1..=array_len]`).
        array_len: usize,
    },
    /// The end of the innermost open table; appears only where a key could.
    TableEnd,
}

/// Where the reader is inside one open table.
#[derive(Debug, Clone, Copy, Default)]
struct Open {
    /// Array values not yet started.
    array_left: usize,
    /// In the hash part: the next item is a value (else a key or the end).
    want_value: bool,
}

/// Reads a packed stream one [`Item`] at a time, checking its structure.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Input bytes already promised to the open tables: one per array value not yet started
    /// and one per end marker. A new table's array size must fit in what is left after
    /// these, which bounds the preallocation of all open tables by the input length.
    reserved: usize,
    open: [Open; MAX_DEPTH + 1],
    depth: usize,
    failed: Option<UnpackError>,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            reserved: 0,
            open: [Open::default(); MAX_DEPTH + 1],
            depth: 0,
            failed: None,
        }
    }

    /// Byte offset of the next item.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// `true` when the input is exhausted between top-level values.
    pub fn is_at_end(&self) -> bool {
        self.depth == 0 && self.pos >= self.bytes.len()
    }

    /// How many tables are open around the next item.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next item; `Ok(None)` when the input ends between top-level values. After an
    /// error every call returns the same error.
    pub fn next_item(&mut self) -> Result<Option<Item<'a>>, UnpackError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.step();
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    fn step(&mut self) -> Result<Option<Item<'a>>, UnpackError> {
        if self.depth == 0 {
            if self.pos >= self.bytes.len() {
                return Ok(None);
            }
            self.reserved = 0;
            return self.value().map(Some);
        }
        let top = self.depth - 1;
        if self.open[top].array_left > 0 {
            // This array value's promised byte is now being consumed by the value itself.
            self.open[top].array_left -= 1;
            self.reserved = self.reserved.saturating_sub(1);
            return self.value().map(Some);
        }
        if self.open[top].want_value {
            self.open[top].want_value = false;
            return self.value().map(Some);
        }
        match self.bytes.get(self.pos) {
            Some(&NIL_BYTE) => {
                self.pos += 1;
                self.depth -= 1;
                // Release the end marker's reservation.
                self.reserved = self.reserved.saturating_sub(1);
                Ok(Some(Item::TableEnd))
            }
            Some(_) => {
                self.open[top].want_value = true;
                self.value().map(Some)
            }
            None => Err(Self::error(self.pos, UnpackErrorKind::Truncated)),
        }
    }

    fn error(offset: usize, kind: UnpackErrorKind) -> UnpackError {
        UnpackError::new(offset, kind)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
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

    /// Reads one value inside the open tables (a table only as its header).
    fn value(&mut self) -> Result<Item<'a>, UnpackError> {
        let start = self.pos;
        let byte = self.take_byte()?;
        if self.depth > MAX_DEPTH {
            return Err(Self::error(start, UnpackErrorKind::TooDeep));
        }
        let invalid_cookie = Self::error(start, UnpackErrorKind::InvalidCookie { byte });
        let cookie = byte >> 3;
        // skynet's reader ignores the cookie of nil, boolean and light userdata; we only
        // accept what its writer produces.
        let item = match byte & 7 {
            TYPE_NIL if cookie == 0 => Item::Nil,
            TYPE_BOOLEAN if cookie <= 1 => Item::Boolean(cookie == 1),
            TYPE_NUMBER if cookie == NUMBER_REAL => {
                Item::Real(f64::from_le_bytes(self.take_array()?))
            }
            TYPE_NUMBER => Item::Integer(self.integer(byte, start)?),
            TYPE_USERDATA if cookie == 0 => {
                Item::LightUserdata(u64::from_le_bytes(self.take_array()?))
            }
            TYPE_SHORT_STRING => Item::String(self.take(usize::from(cookie))?),
            TYPE_LONG_STRING => {
                let len = match cookie {
                    LONG_STRING_WORD => usize::from(u16::from_le_bytes(self.take_array()?)),
                    LONG_STRING_DWORD => usize::try_from(u32::from_le_bytes(self.take_array()?))
                        .map_err(|_| Self::error(self.pos, UnpackErrorKind::Truncated))?,
                    _ => return Err(invalid_cookie),
                };
                Item::String(self.take(len)?)
            }
            TYPE_TABLE => self.table(cookie, start)?,
            TYPE_NIL | TYPE_BOOLEAN | TYPE_USERDATA => return Err(invalid_cookie),
            _ => return Err(Self::error(start, UnpackErrorKind::InvalidType { byte })),
        };
        Ok(item)
    }

    /// Reads the payload of an integer whose type byte (at `start`) was `byte`.
    fn integer(&mut self, byte: u8, start: usize) -> Result<i64, UnpackError> {
        Ok(match byte >> 3 {
            NUMBER_ZERO => 0,
            NUMBER_BYTE => i64::from(self.take_byte()?),
            NUMBER_WORD => i64::from(u16::from_le_bytes(self.take_array()?)),
            NUMBER_DWORD => i64::from(i32::from_le_bytes(self.take_array()?)),
            NUMBER_QWORD => i64::from_le_bytes(self.take_array()?),
            _ => return Err(Self::error(start, UnpackErrorKind::InvalidCookie { byte })),
        })
    }

    /// Opens a table whose header byte (at `start`) had `cookie`.
    fn table(&mut self, cookie: u8, start: usize) -> Result<Item<'a>, UnpackError> {
        let size = if cookie == TABLE_EXTENDED {
            // An integer number value (skynet rejects reals and other types here).
            let at = self.pos;
            let byte = self.take_byte()?;
            if byte & 7 != TYPE_NUMBER || byte >> 3 == NUMBER_REAL {
                return Err(Self::error(at, UnpackErrorKind::InvalidArraySize));
            }
            let size = self.integer(byte, at)?;
            u64::try_from(size).map_err(|_| Self::error(at, UnpackErrorKind::InvalidArraySize))?
        } else {
            u64::from(cookie)
        };
        // The array values and the end marker each need at least one byte, on top of what
        // the enclosing tables still need.
        let too_large = Self::error(start, UnpackErrorKind::ArraySizeTooLarge { size });
        let array_len = usize::try_from(size).map_err(|_| too_large)?;
        let claim = array_len.checked_add(1).ok_or(too_large)?;
        let needed = claim.checked_add(self.reserved).ok_or(too_large)?;
        if needed > self.remaining() {
            return Err(too_large);
        }
        self.reserved = needed;
        // `depth <= MAX_DEPTH` was checked by `value`, so there is a slot for this table.
        self.open[self.depth] = Open {
            array_left: array_len,
            want_value: false,
        };
        self.depth += 1;
        Ok(Item::Table { array_len })
    }
}
