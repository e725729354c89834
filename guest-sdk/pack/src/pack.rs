//! The writer: [`Value`]s to bytes, choosing the same encodings as skynet.

use alloc::vec::Vec;
use core::fmt;

use crate::format::{
    type_byte, LONG_STRING_DWORD, LONG_STRING_WORD, MAX_COOKIE, MAX_DEPTH, NIL_BYTE, NUMBER_BYTE,
    NUMBER_DWORD, NUMBER_QWORD, NUMBER_REAL, NUMBER_WORD, NUMBER_ZERO, TABLE_EXTENDED,
    TYPE_BOOLEAN, TYPE_LONG_STRING, TYPE_NUMBER, TYPE_SHORT_STRING, TYPE_TABLE, TYPE_USERDATA,
};
use crate::value::{Table, Value};

/// Why a list of values could not be packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackError {
    /// A value sits inside more than [`MAX_DEPTH`] nested tables.
    TooDeep,
    /// A string is 4 GiB or longer; the format's length field is 32 bits.
    StringTooLong {
        /// Length of the offending string in bytes.
        len: usize,
    },
    /// A table's hash part has a nil key. It would be read back as the end
    /// of the table, corrupting the rest of the stream.
    NilKey,
    /// A table's hash part has a NaN key. Lua cannot store it: unpacking in
    /// a Lua service would raise "table index is NaN".
    NanKey,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::TooDeep => write!(
                f,
                "serialize can't pack too depth table (more than {MAX_DEPTH} nested tables)"
            ),
            PackError::StringTooLong { len } => {
                write!(
                    f,
                    "serialize can't pack a string of {len} bytes (limit 4 GiB - 1)"
                )
            }
            PackError::NilKey => f.write_str("serialize can't pack a table with a nil key"),
            PackError::NanKey => f.write_str("serialize can't pack a table with a NaN key"),
        }
    }
}

impl core::error::Error for PackError {}

/// Packs `values` into a new buffer, like `skynet.pack(...)`.
///
/// The result is the concatenation of each value's encoding; an empty slice
/// gives an empty buffer.
pub fn pack(values: &[Value]) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::new();
    pack_into(&mut out, values)?;
    Ok(out)
}

/// Appends the packed form of `values` to `out`.
///
/// On error `out` is restored to its original length.
pub fn pack_into(out: &mut Vec<u8>, values: &[Value]) -> Result<(), PackError> {
    let start = out.len();
    let result = values
        .iter()
        .try_for_each(|value| write_value(out, value, 0));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Writes one value found inside `depth` nested tables.
///
/// Recursion is bounded: tables deeper than `MAX_DEPTH` are rejected before
/// their contents are visited.
fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), PackError> {
    if depth > MAX_DEPTH {
        return Err(PackError::TooDeep);
    }
    match value {
        Value::Nil => out.push(NIL_BYTE),
        Value::Boolean(b) => out.push(type_byte(TYPE_BOOLEAN, u8::from(*b))),
        Value::Integer(i) => write_integer(out, *i),
        Value::Real(f) => {
            out.push(type_byte(TYPE_NUMBER, NUMBER_REAL));
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::LightUserdata(p) => {
            out.push(type_byte(TYPE_USERDATA, 0));
            out.extend_from_slice(&p.to_le_bytes());
        }
        Value::String(bytes) => write_string(out, bytes)?,
        Value::Table(table) => write_table(out, table, depth)?,
    }
    Ok(())
}

/// Writes an integer in the smallest form skynet's writer would pick.
///
/// Negative numbers always use the signed 32-bit form when they fit: the
/// byte and word forms are unsigned.
fn write_integer(out: &mut Vec<u8>, i: i64) {
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

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), PackError> {
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

/// Writes a table sitting inside `depth` tables; its contents are one deeper.
fn write_table(out: &mut Vec<u8>, table: &Table, depth: usize) -> Result<(), PackError> {
    let array_len = table.array.len();
    match u8::try_from(array_len) {
        Ok(small) if small < TABLE_EXTENDED => out.push(type_byte(TYPE_TABLE, small)),
        // 31 and up: the size follows as a complete number value.
        _ => {
            out.push(type_byte(TYPE_TABLE, TABLE_EXTENDED));
            // A Vec can never hold more than i64::MAX elements.
            write_integer(out, i64::try_from(array_len).unwrap_or(i64::MAX));
        }
    }
    for value in &table.array {
        write_value(out, value, depth + 1)?;
    }
    for (key, value) in &table.hash {
        match key {
            Value::Nil => return Err(PackError::NilKey),
            Value::Real(f) if f.is_nan() => return Err(PackError::NanKey),
            _ => {}
        }
        write_value(out, key, depth + 1)?;
        write_value(out, value, depth + 1)?;
    }
    out.push(NIL_BYTE);
    Ok(())
}
