//! The writer: [`Value`]s to bytes, choosing the same encodings as skynet.

use alloc::vec::Vec;
use core::fmt;

use crate::format::MAX_DEPTH;
use crate::raw;
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
        Value::Nil => raw::write_nil(out),
        Value::Boolean(b) => raw::write_boolean(out, *b),
        Value::Integer(i) => raw::write_integer(out, *i),
        Value::Real(f) => raw::write_real(out, *f),
        Value::LightUserdata(p) => raw::write_light_userdata(out, *p),
        Value::String(bytes) => raw::write_string(out, bytes)?,
        Value::Table(table) => write_table(out, table, depth)?,
    }
    Ok(())
}

/// Writes a table sitting inside `depth` tables; its contents are one deeper.
fn write_table(out: &mut Vec<u8>, table: &Table, depth: usize) -> Result<(), PackError> {
    raw::write_table_start(out, table.array.len());
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
    raw::write_table_end(out);
    Ok(())
}
