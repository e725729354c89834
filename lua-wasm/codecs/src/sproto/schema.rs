//! A sproto schema: the types and protocols of a schema bundle (the `.group` message
//! `sprotoparser` produces), checked as skynet's `sproto_create` checks them.

use std::ffi::CString;

use super::{read_u16, read_u32, SIZEOF_LENGTH};

/// A field's base type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer; `decimal` > 0 makes it a fixed-point number with that scale
    /// (`integer(2)`: 100).
    Integer {
        /// 0, or 10 to the precision.
        decimal: i64,
    },
    /// true or false.
    Boolean,
    /// A string; `binary` for `binary` fields (the same on the wire).
    String {
        /// Declared `binary`.
        binary: bool,
    },
    /// An IEEE 754 double.
    Double,
    /// A user type, by its index in [`Schema::types`].
    Struct(usize),
}

/// A field of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name (a C string: snlua reads and writes Lua tables with it).
    pub name: CString,
    /// Its tag.
    pub tag: u16,
    /// Its base type.
    pub kind: Kind,
    /// `*type`: an array.
    pub array: bool,
    /// `*type(key)`: the tag of the struct's field that keys the map.
    pub key: Option<u16>,
    /// `*type()`: a two-field struct seen as key → value.
    pub map: bool,
}

/// A user type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    /// Its full name (`Person.PhoneNumber`).
    pub name: CString,
    /// Its fields, by ascending tag.
    pub fields: Vec<Field>,
    /// The most field words a message of it can have (fields plus gaps in the tags).
    pub max_words: usize,
    /// The first tag when tags are contiguous (a field is found by subtraction).
    base: Option<u16>,
}

impl Type {
    /// The field with `tag`.
    pub fn field_by_tag(&self, tag: usize) -> Option<&Field> {
        match self.base {
            Some(base) => self.fields.get(tag.checked_sub(usize::from(base))?),
            None => self
                .fields
                .binary_search_by_key(&tag, |f| usize::from(f.tag))
                .ok()
                .map(|i| &self.fields[i]),
        }
    }
}

/// A protocol of an RPC schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Its name.
    pub name: CString,
    /// Its tag.
    pub tag: u16,
    /// Its request type.
    pub request: Option<usize>,
    /// Its response type.
    pub response: Option<usize>,
    /// `response nil`: a response with no content is expected.
    pub confirm: bool,
}

/// A schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Its types, in the bundle's order (by name).
    pub types: Vec<Type>,
    /// Its protocols, in the bundle's order (by tag).
    pub protocols: Vec<Protocol>,
}

/// Why a schema bundle was refused (`sproto_create` returns NULL then; the Lua binding
/// returns nil).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBundle;

impl std::fmt::Display for BadBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid sproto schema bundle")
    }
}

impl std::error::Error for BadBundle {}

/// A struct message in a bundle: its field words and the data objects of the fields whose
/// word is 0, each checked to lie within it.
struct Record<'a> {
    words: Vec<usize>,
    objects: Vec<&'a [u8]>,
}

impl Record<'_> {
    /// The field words that hold a value or an object, with their tags (skip words add to
    /// the tag of what follows).
    fn tagged(&self) -> impl Iterator<Item = (i64, usize)> + '_ {
        let mut tag: i64 = -1;
        self.words.iter().filter_map(move |&word| {
            tag += 1;
            if word & 1 == 1 {
                tag += (word / 2) as i64;
                None
            } else {
                Some((tag, word))
            }
        })
    }
}

/// Reads the struct message that is all of `bytes`.
fn record(bytes: &[u8]) -> Result<Record<'_>, BadBundle> {
    if bytes.len() < SIZEOF_LENGTH {
        return Err(BadBundle);
    }
    let count = read_u16(bytes, 0);
    let header = 2 + 2 * count;
    if bytes.len() < header {
        return Err(BadBundle);
    }
    let words: Vec<usize> = (0..count).map(|i| read_u16(bytes, 2 + 2 * i)).collect();
    let mut objects = Vec::new();
    let mut at = header;
    for &word in &words {
        if word != 0 {
            continue;
        }
        let (object, next) = object(bytes, at)?;
        objects.push(object);
        at = next;
    }
    Ok(Record { words, objects })
}

/// The length-prefixed object at `at`, and where the next begins.
fn object(bytes: &[u8], at: usize) -> Result<(&[u8], usize), BadBundle> {
    if bytes.len() < at + SIZEOF_LENGTH {
        return Err(BadBundle);
    }
    let len = read_u32(bytes, at);
    let start = at + SIZEOF_LENGTH;
    let end = start.checked_add(len).ok_or(BadBundle)?;
    if end > bytes.len() {
        return Err(BadBundle);
    }
    Ok((&bytes[start..end], end))
}

/// The objects of an array of objects.
fn objects(mut bytes: &[u8]) -> Result<Vec<&[u8]>, BadBundle> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (item, next) = object(bytes, 0)?;
        items.push(item);
        bytes = &bytes[next..];
    }
    Ok(items)
}

fn name(bytes: &[u8]) -> Result<CString, BadBundle> {
    // a name with a NUL inside could not be looked up from Lua anyway
    CString::new(bytes).map_err(|_| BadBundle)
}

/// A field word's integer value (`word / 2 - 1`), for a word that holds one.
fn value(word: usize) -> i64 {
    (word / 2) as i64 - 1
}

impl Schema {
    /// Reads a schema bundle (`.group { type 0 : *type; protocol 1 : *protocol }`).
    pub fn from_bundle(bundle: &[u8]) -> Result<Schema, BadBundle> {
        let group = record(bundle)?;
        if group.words.len() > 2 || group.words.iter().any(|&w| w != 0) {
            return Err(BadBundle);
        }
        let type_records = match group.objects.first() {
            Some(bytes) => objects(bytes)?,
            None => Vec::new(),
        };
        let protocol_records = match group.objects.get(1) {
            Some(bytes) => objects(bytes)?,
            None => Vec::new(),
        };
        let type_count = type_records.len();
        let types = type_records
            .into_iter()
            .map(|bytes| read_type(bytes, type_count))
            .collect::<Result<Vec<_>, _>>()?;
        let mut protocols = protocol_records
            .into_iter()
            .map(|bytes| read_protocol(bytes, type_count))
            .collect::<Result<Vec<_>, _>>()?;
        // (the parser writes them by tag; looking them up by tag needs that order)
        protocols.sort_by_key(|p| p.tag);
        let schema = Schema { types, protocols };
        schema.check_maps()?;
        Ok(schema)
    }

    /// The type named `name`.
    pub fn type_index(&self, name: &[u8]) -> Option<usize> {
        self.types.iter().position(|t| t.name.as_bytes() == name)
    }

    /// The protocol with `tag`.
    pub fn protocol_by_tag(&self, tag: i64) -> Option<&Protocol> {
        let tag = u16::try_from(tag).ok()?;
        self.protocols
            .binary_search_by_key(&tag, |p| p.tag)
            .ok()
            .map(|i| &self.protocols[i])
    }

    /// The protocol named `name`.
    pub fn protocol_by_name(&self, name: &[u8]) -> Option<&Protocol> {
        self.protocols.iter().find(|p| p.name.as_bytes() == name)
    }

    /// A map's key and value fields must exist in its struct: encoding and decoding look
    /// them up without checking again.
    fn check_maps(&self) -> Result<(), BadBundle> {
        for t in &self.types {
            for f in &t.fields {
                let Some(key) = f.key else { continue };
                let Kind::Struct(sub) = f.kind else {
                    return Err(BadBundle);
                };
                let sub = &self.types[sub];
                if sub.field_by_tag(usize::from(key)).is_none() || (f.map && sub.fields.len() < 2) {
                    return Err(BadBundle);
                }
            }
        }
        Ok(())
    }

    /// The text skynet's `sproto_dump` prints.
    pub fn dump(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("=== {} types ===\n", self.types.len());
        for t in &self.types {
            let _ = writeln!(out, "{}", t.name.to_string_lossy());
            for f in &t.fields {
                let kind = match f.kind {
                    Kind::Struct(i) => self.types[i].name.to_string_lossy().into_owned(),
                    Kind::Integer { decimal: 0 } => "integer".into(),
                    Kind::Integer { .. } => "decimal".into(),
                    Kind::Boolean => "boolean".into(),
                    Kind::String { binary: true } => "binary".into(),
                    Kind::String { binary: false } => "string".into(),
                    Kind::Double => "double".into(),
                };
                let _ = write!(
                    out,
                    "\t{} ({}) {}{}",
                    f.name.to_string_lossy(),
                    f.tag,
                    if f.array { "*" } else { "" },
                    kind
                );
                if let Kind::Integer { decimal } = f.kind {
                    if decimal > 0 {
                        let _ = write!(out, "({decimal})");
                    }
                }
                if let Some(key) = f.key {
                    let _ = write!(out, " key[{key}]");
                    if let (true, Kind::Struct(sub)) = (f.map, f.kind) {
                        let _ = write!(out, " value[{}]", self.types[sub].fields[1].tag);
                    }
                }
                out.push('\n');
            }
        }
        let _ = writeln!(out, "=== {} protocol ===", self.protocols.len());
        for p in &self.protocols {
            let type_name = |t: Option<usize>| {
                t.map_or("(null)".into(), |i| {
                    self.types[i].name.to_string_lossy().into_owned()
                })
            };
            let _ = write!(
                out,
                "\t{} ({}) request:{}",
                p.name.to_string_lossy(),
                p.tag,
                type_name(p.request)
            );
            if p.response.is_some() {
                let _ = write!(out, " response:{}", type_name(p.response));
            } else if p.confirm {
                out.push_str(" response nil");
            }
            out.push('\n');
        }
        out
    }
}

/// `.type { name 0 : string; fields 1 : *field }`
fn read_type(bytes: &[u8], type_count: usize) -> Result<Type, BadBundle> {
    let r = record(bytes)?;
    if r.words.is_empty() || r.words.len() > 2 || r.words.iter().any(|&w| w != 0) {
        return Err(BadBundle);
    }
    let type_name = name(r.objects[0])?;
    let fields = match r.objects.get(1) {
        Some(list) => objects(list)?
            .into_iter()
            .map(|f| read_field(f, type_count))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let mut max_words = fields.len();
    let mut last: i64 = -1;
    for f in &fields {
        let tag = i64::from(f.tag);
        if tag <= last {
            return Err(BadBundle);
        }
        if tag > last + 1 {
            max_words += 1;
        }
        last = tag;
    }
    let base = match (fields.first(), fields.last()) {
        (Some(first), Some(end)) if usize::from(end.tag - first.tag) + 1 == fields.len() => {
            Some(first.tag)
        }
        _ => None,
    };
    Ok(Type {
        name: type_name,
        fields,
        max_words,
        base,
    })
}

/// `.field { name 0; buildin 1; type 2; tag 3; array 4; key 5; map 6 }`
fn read_field(bytes: &[u8], type_count: usize) -> Result<Field, BadBundle> {
    let r = record(bytes)?;
    let mut field_name = None;
    let (mut builtin, mut extra, mut tag, mut array, mut key, mut map) =
        (None, None, None, false, None, false);
    let mut objects = r.objects.iter();
    for (at, word) in r.tagged() {
        if at == 0 {
            if word != 0 {
                return Err(BadBundle);
            }
            field_name = Some(name(objects.next().ok_or(BadBundle)?)?);
            continue;
        }
        if word == 0 {
            return Err(BadBundle);
        }
        let v = value(word);
        match at {
            1 => builtin = Some(v),
            2 => extra = Some(v),
            3 => tag = Some(u16::try_from(v).map_err(|_| BadBundle)?),
            4 => array = v != 0,
            5 => key = Some(u16::try_from(v).map_err(|_| BadBundle)?),
            6 => map = v != 0,
            _ => return Err(BadBundle),
        }
    }
    let kind = match (builtin, extra) {
        (Some(0), extra) => Kind::Integer {
            decimal: match extra.unwrap_or(0) {
                0 => 0,
                digits @ 1..=18 => 10i64.pow(digits as u32),
                _ => return Err(BadBundle),
            },
        },
        (Some(1), None) => Kind::Boolean,
        (Some(2), extra) => Kind::String {
            binary: extra == Some(1),
        },
        (Some(3), None) => Kind::Double,
        (None, Some(index)) if (0..type_count as i64).contains(&index) => {
            Kind::Struct(index as usize)
        }
        _ => return Err(BadBundle),
    };
    Ok(Field {
        name: field_name.ok_or(BadBundle)?,
        tag: tag.ok_or(BadBundle)?,
        kind,
        array,
        key: if array { key } else { None },
        map: array && key.is_some() && map,
    })
}

/// `.protocol { name 0; tag 1; request 2; response 3; confirm 4 }`
fn read_protocol(bytes: &[u8], type_count: usize) -> Result<Protocol, BadBundle> {
    let r = record(bytes)?;
    let (mut proto_name, mut tag, mut request, mut response, mut confirm) =
        (None, None, None, None, false);
    let type_index = |v: i64| {
        usize::try_from(v)
            .ok()
            .filter(|&i| i < type_count)
            .ok_or(BadBundle)
    };
    let mut objects = r.objects.iter();
    for (at, word) in r.tagged() {
        match at {
            0 if word == 0 => proto_name = Some(name(objects.next().ok_or(BadBundle)?)?),
            1 if word != 0 => tag = Some(u16::try_from(value(word)).map_err(|_| BadBundle)?),
            2 if word != 0 => request = Some(type_index(value(word))?),
            3 if word != 0 => response = Some(type_index(value(word))?),
            4 if word != 0 => confirm = value(word) != 0,
            _ => return Err(BadBundle),
        }
    }
    Ok(Protocol {
        name: proto_name.ok_or(BadBundle)?,
        tag: tag.ok_or(BadBundle)?,
        request,
        response,
        confirm,
    })
}
