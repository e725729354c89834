//! Encoding a sproto message from a [`Source`] (snlua's reads Lua tables) into a buffer of
//! fixed size: when it is too small the caller grows it and encodes again (so that nothing
//! is allocated while the source runs, which may raise a Lua error at any point).

use std::ffi::CStr;

use super::schema::{Field, Kind, Schema, Type};
use super::{MAX_DEPTH, SIZEOF_LENGTH};

/// Why a value did not encode; the texts are skynet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError<'s> {
    /// The buffer is too small: grow it and encode again.
    Full,
    /// Structs nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A value of the wrong type: `<type>.<field>[<index>] is not <what> (Is a <got>)`.
    WrongType {
        /// The struct's type name.
        ty: &'s CStr,
        /// The field's name.
        field: &'s CStr,
        /// Its array index (0 outside arrays).
        index: usize,
        /// "an integer", "a boolean" or "a string".
        what: &'static str,
        /// The Lua type name of what was there.
        got: &'static str,
    },
    /// An array field that is not a table: `<type>.<field>(1) should be a table ...`.
    NotTable {
        /// The struct's type name.
        ty: &'s CStr,
        /// The field's name.
        field: &'s CStr,
        /// The Lua type name of what was there.
        got: &'static str,
    },
}

impl std::fmt::Display for EncodeError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Full => f.write_str("buffer full"),
            EncodeError::TooDeep => f.write_str("The table is too deep"),
            EncodeError::WrongType {
                ty,
                field,
                index,
                what,
                got,
            } => write!(
                f,
                "{}.{}[{index}] is not {what} (Is a {got})",
                ty.to_string_lossy(),
                field.to_string_lossy()
            ),
            EncodeError::NotTable { ty, field, got } => write!(
                f,
                "{}.{}(1) should be a table or an userdata with metamethods (Is a {got})",
                ty.to_string_lossy(),
                field.to_string_lossy()
            ),
        }
    }
}

impl std::error::Error for EncodeError<'_> {}

/// Where values to encode come from: a stack of values, as Lua's. A struct being encoded is
/// "current"; reading a field or an element pushes it, and the `take_*` functions read the
/// pushed value and pop it.
pub trait Source {
    /// Pushes `field` of the current struct; false (nothing pushed) when it is nil.
    fn push_field(&mut self, field: &CStr) -> bool;
    /// The pushed value as an integer (integral floats and numeric strings count, as
    /// `lua_tointegerx`), popped; `Err(type name)` otherwise, left pushed.
    fn take_integer(&mut self) -> Result<i64, &'static str>;
    /// The pushed value as a number (0 when it is none), popped.
    fn take_number(&mut self) -> f64;
    /// The pushed value as a boolean, popped; `Err(type name)` otherwise.
    fn take_boolean(&mut self) -> Result<bool, &'static str>;
    /// The pushed string's bytes (no conversion of numbers); `Err(type name)` otherwise.
    /// The caller pops it with [`Source::pop`] when done with the bytes.
    fn string(&mut self) -> Result<&[u8], &'static str>;
    /// Pops the pushed value.
    fn pop(&mut self);
    /// The pushed value becomes the current struct.
    fn enter(&mut self);
    /// The current struct is popped; the one before is current again.
    fn leave(&mut self);
    /// The pushed value becomes the array being read (until [`Source::end_array`]);
    /// `Err(type name)` when it cannot be iterated.
    fn begin_array(&mut self, keyed: bool) -> Result<(), &'static str>;
    /// Pushes element `index` (from 1) of the array; false at the first nil.
    fn push_element(&mut self, index: usize) -> bool;
    /// Pushes the next value of a keyed array (in `pairs` order); for a two-field map,
    /// an entry struct `{[key] = k, [value] = v}` of the next pair; false at the end.
    fn push_next(&mut self, pair: Option<(&CStr, &CStr)>) -> bool;
    /// Pops the array.
    fn end_array(&mut self);
}

/// Encodes the current struct of `source` as type `ty` into `out`; the message's length.
pub fn encode<'s>(
    schema: &'s Schema,
    ty: usize,
    source: &mut impl Source,
    out: &mut [u8],
) -> Result<usize, EncodeError<'s>> {
    let mut writer = Writer { out, at: 0 };
    Encoder { schema, source }.structure(&schema.types[ty], &mut writer, 0)?;
    Ok(writer.at)
}

/// The bytes written so far into a fixed buffer.
struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError<'static>> {
        let end = self.at + bytes.len();
        self.out
            .get_mut(self.at..end)
            .ok_or(EncodeError::Full)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    fn zeros(&mut self, len: usize) -> Result<(), EncodeError<'static>> {
        let end = self.at + len;
        self.out
            .get_mut(self.at..end)
            .ok_or(EncodeError::Full)?
            .fill(0);
        self.at = end;
        Ok(())
    }

    /// Room for a length, filled by [`Writer::close_length`].
    fn open_length(&mut self) -> Result<usize, EncodeError<'static>> {
        let at = self.at;
        self.put(&[0; SIZEOF_LENGTH])?;
        Ok(at)
    }

    fn close_length(&mut self, at: usize) {
        let len = (self.at - at - SIZEOF_LENGTH) as u32;
        self.out[at..at + SIZEOF_LENGTH].copy_from_slice(&len.to_le_bytes());
    }
}

/// The error for a value of the wrong type in `field` of `ty`.
fn wrong_type<'s>(
    ty: &'s Type,
    field: &'s Field,
    index: usize,
    what: &'static str,
    got: &'static str,
) -> EncodeError<'s> {
    EncodeError::WrongType {
        ty: &ty.name,
        field: &field.name,
        index,
        what,
        got,
    }
}

/// An integer's encoding: small non-negative ones in the field word, else 4 or 8 bytes.
fn fits_32(v: i64) -> bool {
    let high = v >> 31;
    high == 0 || high == -1
}

struct Encoder<'s, 'k, S> {
    schema: &'s Schema,
    source: &'k mut S,
}

impl<'s, S: Source> Encoder<'s, '_, S> {
    fn structure(
        &mut self,
        ty: &'s Type,
        w: &mut Writer,
        depth: usize,
    ) -> Result<(), EncodeError<'s>> {
        if depth >= MAX_DEPTH {
            return Err(EncodeError::TooDeep);
        }
        let start = w.at;
        let header = 2 + 2 * ty.max_words;
        w.zeros(header)?;
        let mut words = 0usize;
        let mut last: i64 = -1;
        for field in &ty.fields {
            let Some(word) = self.field(ty, field, w, depth)? else {
                continue;
            };
            let gap = i64::from(field.tag) - last - 1;
            if gap > 0 {
                let skip = ((gap - 1) * 2 + 1) as u16;
                w.out[start + 2 + 2 * words..start + 4 + 2 * words]
                    .copy_from_slice(&skip.to_le_bytes());
                words += 1;
            }
            w.out[start + 2 + 2 * words..start + 4 + 2 * words]
                .copy_from_slice(&word.to_le_bytes());
            words += 1;
            last = i64::from(field.tag);
        }
        w.out[start..start + 2].copy_from_slice(&(words as u16).to_le_bytes());
        if words < ty.max_words {
            // the header had room for every field; close the gap before the data
            let data = start + header;
            let to = start + 2 + 2 * words;
            w.out.copy_within(data..w.at, to);
            w.at -= data - to;
        }
        Ok(())
    }

    /// Encodes one field; its field word (0: in the data part), or `None` when nil.
    fn field(
        &mut self,
        ty: &'s Type,
        field: &'s Field,
        w: &mut Writer,
        depth: usize,
    ) -> Result<Option<u16>, EncodeError<'s>> {
        if !self.source.push_field(&field.name) {
            return Ok(None);
        }
        if field.array {
            return self.array(ty, field, w, depth).map(|()| Some(0));
        }
        let wrong = |index, what, got| wrong_type(ty, field, index, what, got);
        match field.kind {
            Kind::Integer { decimal } => {
                let v = self
                    .integer(decimal)
                    .map_err(|got| wrong(0, "an integer", got))?;
                if fits_32(v) {
                    if (v as u32) < 0x7fff {
                        return Ok(Some(((v + 1) * 2) as u16));
                    }
                    w.put(&4u32.to_le_bytes())?;
                    w.put(&(v as u32).to_le_bytes())?;
                } else {
                    w.put(&8u32.to_le_bytes())?;
                    w.put(&v.to_le_bytes())?;
                }
            }
            Kind::Boolean => {
                let b = self
                    .source
                    .take_boolean()
                    .map_err(|got| wrong(0, "a boolean", got))?;
                return Ok(Some(if b { 4 } else { 2 }));
            }
            Kind::Double => {
                let v = self.source.take_number();
                w.put(&8u32.to_le_bytes())?;
                w.put(&v.to_le_bytes())?;
            }
            Kind::String { .. } => self
                .string(w)
                .map_err(|e| e.or_wrong(|got| wrong(0, "a string", got)))?,
            Kind::Struct(sub) => {
                let at = w.open_length()?;
                self.source.enter();
                let done = self.structure(&self.schema.types[sub], w, depth + 1);
                self.source.leave();
                done?;
                w.close_length(at);
            }
        }
        Ok(Some(0))
    }

    /// The pushed value as an integer field's (a fixed-point one rounds `number * scale`).
    fn integer(&mut self, decimal: i64) -> Result<i64, &'static str> {
        if decimal == 0 {
            self.source.take_integer()
        } else {
            Ok((self.source.take_number() * decimal as f64).round() as i64)
        }
    }

    /// The pushed string, length-prefixed; pops it.
    fn string(&mut self, w: &mut Writer) -> Result<(), Wrong> {
        let bytes = match self.source.string() {
            Ok(bytes) => bytes,
            Err(got) => return Err(Wrong::Type(got)),
        };
        let len = u32::try_from(bytes.len()).map_err(|_| Wrong::Encode(EncodeError::Full))?;
        let put = w.put(&len.to_le_bytes()).and_then(|()| w.put(bytes));
        self.source.pop();
        put.map_err(Wrong::Encode)
    }

    fn array(
        &mut self,
        ty: &'s Type,
        field: &'s Field,
        w: &mut Writer,
        depth: usize,
    ) -> Result<(), EncodeError<'s>> {
        let keyed = field.key.is_some();
        if let Err(got) = self.source.begin_array(keyed) {
            self.source.pop();
            return Err(EncodeError::NotTable {
                ty: &ty.name,
                field: &field.name,
                got,
            });
        }
        let at = w.open_length()?;
        let done = self.elements(ty, field, w, depth);
        self.source.end_array();
        done?;
        w.close_length(at);
        Ok(())
    }

    fn elements(
        &mut self,
        ty: &'s Type,
        field: &'s Field,
        w: &mut Writer,
        depth: usize,
    ) -> Result<(), EncodeError<'s>> {
        let wrong = |index, what, got| wrong_type(ty, field, index, what, got);
        match field.kind {
            Kind::Integer { .. } | Kind::Double => {
                let width_at = w.at;
                let double = field.kind == Kind::Double;
                let mut width = if double { 8 } else { 4 };
                let mut index = 0;
                while self.source.push_element(index + 1) {
                    index += 1;
                    if index == 1 {
                        w.put(&[width as u8])?;
                    }
                    let v = match field.kind {
                        Kind::Integer { decimal } => self
                            .integer(decimal)
                            .map_err(|got| wrong(index, "an integer", got))?,
                        _ => self.source.take_number().to_bits() as i64,
                    };
                    if width == 4 && !fits_32(v) {
                        // widen what was written so far to 8 bytes each, sign-extended
                        let first = width_at + 1;
                        let count = index - 1;
                        w.zeros(4 * count)?;
                        for i in (0..count).rev() {
                            let mut old = [0u8; 4];
                            old.copy_from_slice(&w.out[first + 4 * i..first + 4 * i + 4]);
                            let wide = i32::from_le_bytes(old) as i64;
                            w.out[first + 8 * i..first + 8 * i + 8]
                                .copy_from_slice(&wide.to_le_bytes());
                        }
                        width = 8;
                        w.out[width_at] = 8;
                    }
                    if width == 4 {
                        w.put(&(v as u32).to_le_bytes())?;
                    } else {
                        w.put(&v.to_le_bytes())?;
                    }
                }
            }
            Kind::Boolean => {
                let mut index = 0;
                while self.source.push_element(index + 1) {
                    index += 1;
                    let b = self
                        .source
                        .take_boolean()
                        .map_err(|got| wrong(index, "a boolean", got))?;
                    w.put(&[u8::from(b)])?;
                }
            }
            Kind::String { .. } => {
                let mut index = 0;
                while self.source.push_element(index + 1) {
                    index += 1;
                    self.string(w)
                        .map_err(|e| e.or_wrong(|got| wrong(index, "a string", got)))?;
                }
            }
            Kind::Struct(sub) => {
                let sub_type = &self.schema.types[sub];
                let pair = match (field.key, field.map) {
                    (Some(_), true) => Some((
                        sub_type.fields[0].name.as_c_str(),
                        sub_type.fields[1].name.as_c_str(),
                    )),
                    _ => None,
                };
                let mut index = 0;
                loop {
                    let more = if field.key.is_some() {
                        self.source.push_next(pair)
                    } else {
                        self.source.push_element(index + 1)
                    };
                    if !more {
                        break;
                    }
                    index += 1;
                    let at = w.open_length()?;
                    self.source.enter();
                    let done = self.structure(sub_type, w, depth + 1);
                    self.source.leave();
                    done?;
                    w.close_length(at);
                }
            }
        }
        Ok(())
    }
}

/// A string that failed: a wrong type (the caller names it), or a full buffer.
enum Wrong {
    Type(&'static str),
    Encode(EncodeError<'static>),
}

impl Wrong {
    fn or_wrong<'s>(self, named: impl FnOnce(&'static str) -> EncodeError<'s>) -> EncodeError<'s> {
        match self {
            Wrong::Type(got) => named(got),
            Wrong::Encode(e) => e,
        }
    }
}
