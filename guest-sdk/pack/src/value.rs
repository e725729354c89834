//! The in-memory model of packed values: [`Value`] and [`Table`].

use alloc::string::String;
use alloc::vec::Vec;

/// One Lua value as carried by `skynet.pack`.
///
/// Derived equality is structural: `Integer(1) != Real(1.0)` and
/// `Real(NaN) != Real(NaN)`. Table lookups ([`Table::get`]) use Lua's key
/// rules instead.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// Lua `nil`.
    #[default]
    Nil,
    /// Lua boolean.
    Boolean(bool),
    /// Lua integer (always 64-bit in skynet's Lua 5.4).
    Integer(i64),
    /// Lua float; skynet encodes every float as a double, even `1.0`.
    Real(f64),
    /// Lua string: arbitrary bytes, not necessarily UTF-8.
    String(Vec<u8>),
    /// Lua table.
    Table(Table),
    /// Lua light userdata: a raw pointer, only meaningful inside the process
    /// that packed it.
    LightUserdata(u64),
}

/// A Lua table split the way the format carries it.
///
/// `array` holds `t[1..=n]`; `hash` holds every other key/value pair in the
/// order they appear in the stream (packing writes them in this order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The array part: `array[i]` is `t[i + 1]`.
    pub array: Vec<Value>,
    /// The hash part as key/value pairs, in stream order.
    ///
    /// Keys must not be nil or NaN when packing.
    pub hash: Vec<(Value, Value)>,
}

impl Value {
    /// Returns `true` for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Lua truthiness: everything except `nil` and `false` is true.
    pub fn is_truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Boolean(false))
    }

    /// The boolean, if this is a [`Value::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an integer, like Lua's `math.tointeger`: integers as is,
    /// floats only when they hold an exact integer in `i64` range.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(f) => float_to_integer(*f),
            _ => None,
        }
    }

    /// The value as a float: floats as is, integers converted (possibly
    /// rounding, as Lua does).
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Value::Real(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The raw bytes of a [`Value::String`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The string as `&str`, if this is a [`Value::String`] holding valid
    /// UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes()
            .and_then(|bytes| core::str::from_utf8(bytes).ok())
    }

    /// The table, if this is a [`Value::Table`].
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The table, mutably, if this is a [`Value::Table`].
    pub fn as_table_mut(&mut self) -> Option<&mut Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The pointer bits, if this is a [`Value::LightUserdata`].
    pub fn as_light_userdata(&self) -> Option<u64> {
        match self {
            Value::LightUserdata(p) => Some(*p),
            _ => None,
        }
    }

    /// The name Lua's `type()` gives this value (`"nil"`, `"number"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) | Value::Real(_) => "number",
            Value::String(_) => "string",
            Value::Table(_) => "table",
            Value::LightUserdata(_) => "userdata",
        }
    }
}

/// Exact float-to-integer conversion (Lua's `math.tointeger`).
fn float_to_integer(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every float in [-2^63, 2^63) converts
    // without saturating, so the round trip check below is exact. NaN fails
    // both comparisons.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&f) {
        let i = f as i64;
        (i as f64 == f).then_some(i)
    } else {
        None
    }
}

/// Lua key equality: floats with an integral value are the same key as the
/// equal integer. Tables compare structurally (there is no identity here).
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x == y,
        // NaN equals nothing; -0.0 equals 0.0.
        (Value::Real(x), Value::Real(y)) => x == y,
        (Value::Integer(i), Value::Real(f)) | (Value::Real(f), Value::Integer(i)) => {
            float_to_integer(*f) == Some(*i)
        }
        (Value::Nil, _) | (_, Value::Nil) => false,
        _ => a == b,
    }
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table whose array part is `array` (`{array[0], array[1], ...}`).
    pub fn from_array(array: Vec<Value>) -> Self {
        Self {
            array,
            hash: Vec::new(),
        }
    }

    /// `true` when both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty() && self.hash.is_empty()
    }

    /// Appends to the array part (`t[#t + 1] = value`).
    pub fn push(&mut self, value: impl Into<Value>) {
        self.array.push(value.into());
    }

    /// Sets `t[key] = value`, returning the previous value.
    ///
    /// An integer key inside `1..=array.len()` replaces that array slot; any
    /// other existing key is replaced in place; a new key is appended to the
    /// hash part (keys never migrate into the array part). A nil key is
    /// stored as given and makes [`pack`](crate::pack) fail.
    pub fn insert(&mut self, key: impl Into<Value>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.array_slot(&key) {
            return Some(core::mem::replace(&mut self.array[slot], value));
        }
        match self.hash.iter_mut().find(|(k, _)| same_key(k, &key)) {
            Some((_, old)) => Some(core::mem::replace(old, value)),
            None => {
                self.hash.push((key, value));
                None
            }
        }
    }

    /// Looks up `t[key]` with Lua's key rules (`t[1.0]` is `t[1]`).
    ///
    /// The hash part is searched linearly.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        if let Some(slot) = self.array_slot(key) {
            return self.array.get(slot);
        }
        self.hash
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v)
    }

    /// Looks up `t[key]` for a string key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.hash
            .iter()
            .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Looks up `t[index]` for an integer key (array part first).
    pub fn get_int(&self, index: i64) -> Option<&Value> {
        self.get(&Value::Integer(index))
    }

    /// The array index holding `key`, if `key` is an integer in
    /// `1..=array.len()`.
    fn array_slot(&self, key: &Value) -> Option<usize> {
        let index = usize::try_from(key.as_integer()?).ok()?;
        (1..=self.array.len()).contains(&index).then(|| index - 1)
    }
}

impl<V: Into<Value>> FromIterator<V> for Table {
    /// Collects into the array part.
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        Self::from_array(iter.into_iter().map(Into::into).collect())
    }
}

/// `From` conversions for integer types that fit `i64` losslessly.
macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v.into_bytes())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::String(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::String(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::String(v)
    }
}

impl From<Table> for Value {
    fn from(v: Table) -> Self {
        Value::Table(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` becomes nil.
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}
