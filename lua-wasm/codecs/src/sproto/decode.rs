//! Decoding a sproto message into a [`Sink`] (snlua's builds Lua tables), checking every
//! length against the bytes there are: bytes from a peer can be anything.

use std::ffi::CStr;

use super::schema::{Field, Kind, Schema, Type};
use super::{read_u16, read_u32, MAX_DEPTH, SIZEOF_LENGTH};

/// A decoded value that is not a table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// An integer.
    Integer(i64),
    /// A double, or a fixed-point integer divided by its scale.
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// A string or binary.
    Bytes(&'a [u8]),
}

/// Why a message did not decode; the texts are skynet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError<'s> {
    /// Lengths or field words that do not add up.
    Malformed,
    /// Structs nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A keyed array's element without its key field.
    NoMainIndex {
        /// The key field's tag.
        tag: u16,
        /// The array field's name.
        field: &'s CStr,
    },
    /// A two-field map's entry without its key.
    NoKey(&'s CStr),
    /// A two-field map's entry without its value.
    NoValue(&'s CStr),
}

impl std::fmt::Display for DecodeError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed => f.write_str("decode error"),
            DecodeError::TooDeep => f.write_str("The table is too deep"),
            DecodeError::NoMainIndex { tag, field } => write!(
                f,
                "Can't find main index (tag={tag}) in [{}]",
                field.to_string_lossy()
            ),
            DecodeError::NoKey(field) => {
                write!(f, "Can't find key field in [{}]", field.to_string_lossy())
            }
            DecodeError::NoValue(field) => {
                write!(f, "Can't find value field in [{}]", field.to_string_lossy())
            }
        }
    }
}

impl std::error::Error for DecodeError<'_> {}

/// Where decoded values go: a stack of tables, the top one being filled.
pub trait Sink<'s> {
    /// `top[field.name] = value`.
    fn set(&mut self, field: &'s Field, value: Scalar<'_>) -> Result<(), DecodeError<'s>>;
    /// Pushes a new, empty table, sized for `items` array items and `fields` named fields
    /// (hints).
    fn push_table(&mut self, items: usize, fields: usize) -> Result<(), DecodeError<'s>>;
    /// Pops a table and stores it as `top[field.name]`.
    fn set_table(&mut self, field: &'s Field) -> Result<(), DecodeError<'s>>;
    /// `top[index] = value` (top is an array).
    fn set_element(&mut self, index: usize, value: Scalar<'_>) -> Result<(), DecodeError<'s>>;
    /// Pops a table and stores it as `top[index]`.
    fn set_element_table(&mut self, index: usize) -> Result<(), DecodeError<'s>>;
    /// Pops a struct and stores it as `top[struct[key.name]]`; `Ok(false)` when the struct
    /// has no such field.
    fn set_keyed(&mut self, key: &'s Field) -> Result<bool, DecodeError<'s>>;
    /// Pops a two-field entry and stores `top[entry[key.name]] = entry[value.name]`; which
    /// of the two is missing, if one is.
    fn set_pair(&mut self, key: &'s Field, value: &'s Field)
        -> Result<PairFields, DecodeError<'s>>;
}

/// What [`Sink::set_pair`] found in the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFields {
    /// Both.
    Both,
    /// No key.
    NoKey,
    /// A key but no value.
    NoValue,
}

/// Decodes the message of type `ty` at the start of `bytes` into the table on top of the
/// sink; returns how many bytes it took (what follows is left: an RPC header is followed by
/// its content).
pub fn decode<'s>(
    schema: &'s Schema,
    ty: usize,
    bytes: &[u8],
    sink: &mut impl Sink<'s>,
) -> Result<usize, DecodeError<'s>> {
    Decoder { schema, sink }.structure(&schema.types[ty], bytes, 0)
}

struct Decoder<'s, 'k, S> {
    schema: &'s Schema,
    sink: &'k mut S,
}

impl<'s, S: Sink<'s>> Decoder<'s, '_, S> {
    /// The struct at the start of `bytes`, into the top table; the bytes it took.
    fn structure(
        &mut self,
        ty: &'s Type,
        bytes: &[u8],
        depth: usize,
    ) -> Result<usize, DecodeError<'s>> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        if bytes.len() < 2 {
            return Err(DecodeError::Malformed);
        }
        let count = read_u16(bytes, 0);
        let mut data = 2 + 2 * count;
        if bytes.len() < data {
            return Err(DecodeError::Malformed);
        }
        let mut tag: usize = usize::MAX; // -1: the first word is tag 0
        for i in 0..count {
            let word = read_u16(bytes, 2 + 2 * i);
            tag = tag.wrapping_add(1);
            if word & 1 == 1 {
                tag += word / 2;
                continue;
            }
            let object = if word == 0 {
                let (object, next) = object_at(bytes, data)?;
                data = next;
                Some(object)
            } else {
                None
            };
            let Some(field) = ty.field_by_tag(tag) else {
                continue; // a newer schema's field: skipped, as skynet does
            };
            match object {
                None => self.inline(field, (word / 2 - 1) as i64)?,
                Some(object) if field.array => self.array(field, object, depth)?,
                Some(object) => self.object(field, object, depth)?,
            }
        }
        Ok(data)
    }

    /// A value held in its field word.
    fn inline(&mut self, field: &'s Field, value: i64) -> Result<(), DecodeError<'s>> {
        let value = match (field.array, field.kind) {
            (false, Kind::Integer { decimal: 0 }) => Scalar::Integer(value),
            (false, Kind::Integer { decimal }) => Scalar::Number(value as f64 / decimal as f64),
            (false, Kind::Boolean) => Scalar::Boolean(value != 0),
            _ => return Err(DecodeError::Malformed),
        };
        self.sink.set(field, value)
    }

    /// A value held in the data part.
    fn object(
        &mut self,
        field: &'s Field,
        object: &[u8],
        depth: usize,
    ) -> Result<(), DecodeError<'s>> {
        match field.kind {
            Kind::Integer { .. } | Kind::Double => {
                let bits = match object.len() {
                    4 => read_u32(object, 0) as u32 as i32 as i64,
                    8 => i64::from_le_bytes(object.try_into().expect("8 bytes")),
                    _ => return Err(DecodeError::Malformed),
                };
                self.sink.set(field, number(field.kind, bits))
            }
            Kind::Boolean => Err(DecodeError::Malformed),
            Kind::String { .. } => self.sink.set(field, Scalar::Bytes(object)),
            Kind::Struct(sub) => {
                self.sink
                    .push_table(0, self.schema.types[sub].fields.len())?;
                self.whole_struct(sub, object, depth)?;
                self.sink.set_table(field)
            }
        }
    }

    /// A struct that must take all of `object`.
    fn whole_struct(
        &mut self,
        ty: usize,
        object: &[u8],
        depth: usize,
    ) -> Result<(), DecodeError<'s>> {
        let taken = self.structure(&self.schema.types[ty], object, depth + 1)?;
        if taken != object.len() {
            return Err(DecodeError::Malformed);
        }
        Ok(())
    }

    fn array(
        &mut self,
        field: &'s Field,
        object: &[u8],
        depth: usize,
    ) -> Result<(), DecodeError<'s>> {
        let items = match field.kind {
            Kind::Integer { .. } | Kind::Double if !object.is_empty() => {
                (object.len() - 1) / usize::from(object[0]).max(1)
            }
            Kind::Boolean => object.len(),
            _ => 0,
        };
        self.sink
            .push_table(if field.key.is_some() { 0 } else { items }, 0)?;
        match field.kind {
            Kind::Integer { .. } | Kind::Double if !object.is_empty() => {
                let (&width, items) = object.split_first().expect("not empty");
                let width = usize::from(width);
                if !items.is_empty() && (!(width == 4 || width == 8) || items.len() % width != 0) {
                    return Err(DecodeError::Malformed);
                }
                for (i, item) in items.chunks_exact(width.max(1)).enumerate() {
                    let bits = if width == 4 {
                        read_u32(item, 0) as u32 as i32 as i64
                    } else {
                        i64::from_le_bytes(item.try_into().expect("8 bytes"))
                    };
                    self.sink.set_element(i + 1, number(field.kind, bits))?;
                }
            }
            Kind::Integer { .. } | Kind::Double => {}
            Kind::Boolean => {
                for (i, &b) in object.iter().enumerate() {
                    self.sink.set_element(i + 1, Scalar::Boolean(b != 0))?;
                }
            }
            Kind::String { .. } => {
                let mut at = 0;
                let mut index = 0;
                while at < object.len() {
                    let (item, next) = object_at(object, at)?;
                    index += 1;
                    self.sink.set_element(index, Scalar::Bytes(item))?;
                    at = next;
                }
            }
            Kind::Struct(sub) => {
                let sub_type = &self.schema.types[sub];
                let mut at = 0;
                let mut index = 0;
                while at < object.len() {
                    let (item, next) = object_at(object, at)?;
                    index += 1;
                    self.sink.push_table(0, sub_type.fields.len())?;
                    self.whole_struct(sub, item, depth)?;
                    self.store_element(field, sub_type, index)?;
                    at = next;
                }
            }
        }
        self.sink.set_table(field)
    }

    /// Stores the struct just decoded into the array on top: by index, by its key field,
    /// or as a key → value pair.
    fn store_element(
        &mut self,
        field: &'s Field,
        sub: &'s Type,
        index: usize,
    ) -> Result<(), DecodeError<'s>> {
        let Some(key_tag) = field.key else {
            return self.sink.set_element_table(index);
        };
        let key = sub
            .field_by_tag(usize::from(key_tag))
            .expect("the schema checked map keys");
        if field.map {
            let value = &sub.fields[1];
            match self.sink.set_pair(key, value)? {
                PairFields::Both => Ok(()),
                PairFields::NoKey => Err(DecodeError::NoKey(&field.name)),
                PairFields::NoValue => Err(DecodeError::NoValue(&field.name)),
            }
        } else if self.sink.set_keyed(key)? {
            Ok(())
        } else {
            Err(DecodeError::NoMainIndex {
                tag: key_tag,
                field: &field.name,
            })
        }
    }
}

/// An integer field's or a double field's value from its 64 bits.
fn number<'a>(kind: Kind, bits: i64) -> Scalar<'a> {
    match kind {
        Kind::Integer { decimal: 0 } => Scalar::Integer(bits),
        Kind::Integer { decimal } => Scalar::Number(bits as f64 / decimal as f64),
        _ => Scalar::Number(f64::from_bits(bits as u64)),
    }
}

/// The length-prefixed object at `at` of `bytes`, and where the next begins.
fn object_at(bytes: &[u8], at: usize) -> Result<(&[u8], usize), DecodeError<'static>> {
    if bytes.len() - at < SIZEOF_LENGTH {
        return Err(DecodeError::Malformed);
    }
    let len = read_u32(bytes, at);
    let start = at + SIZEOF_LENGTH;
    if bytes.len() - start < len {
        return Err(DecodeError::Malformed);
    }
    Ok((&bytes[start..start + len], start + len))
}
