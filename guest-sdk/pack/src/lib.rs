//! Codec for skynet's `skynet.pack` serialization format.
//!
//! Byte compatible with skynet's `lualib-src/lua-seri.c`: [`pack`] produces
//! exactly the bytes `skynet.pack(...)` would for the same values, and
//! [`unpack`] / [`Unpacker`] read anything skynet writes. `no_std` (needs
//! `alloc`), no dependencies; used by guest services on `wasm32-wasip1` and by
//! the native host.
//!
//! The reader is meant for untrusted bytes: it never panics, limits nesting
//! to [`MAX_DEPTH`] tables, and never preallocates more than the remaining
//! input could fill.
//!
//! # Format
//!
//! A message is the concatenation of the encodings of its values, with no
//! count or header; reading stops when the input is exhausted. Every value
//! starts with a type byte: `tag = byte & 7`, `cookie = byte >> 3`. Multi-byte
//! fields are little-endian.
//!
//! | tag | type | cookie | payload |
//! |---|---|---|---|
//! | 0 | nil | 0 | — |
//! | 1 | boolean | 0 false, 1 true | — |
//! | 2 | number | 0 zero, 1 `u8`, 2 `u16`, 4 `i32`, 6 `i64`, 8 `f64` | the number |
//! | 3 | light userdata | 0 | 8-byte pointer |
//! | 4 | short string | length 0..=31 | the bytes |
//! | 5 | long string | 2 or 4: width of the length | length, then the bytes |
//! | 6 | table | array size 0..=30, or 31 then a number value with the size | array values, key/value pairs, nil |
//!
//! Integers use the smallest form: zero; `1..=255` as `u8`; `256..=65535` as
//! `u16`; other values fitting `i32` (including every negative one) as `i32`;
//! the rest as `i64`. Floats are always written as `f64`, even `1.0`. A table
//! writes its array part `t[1..=n]`, then its other entries as alternating
//! keys and values, then a nil where the next key would be.
//!
//! # Example
//!
//! ```
//! use skywasm_pack::{pack, unpack, Table, Value};
//!
//! let mut table = Table::new();
//! table.push(10);
//! table.insert("x", 1);
//! let bytes = pack(&[Value::from("GET"), Value::from(table)])?;
//! assert_eq!(
//!     bytes,
//!     [0x1c, b'G', b'E', b'T', 0x0e, 0x0a, 0x0a, 0x0c, b'x', 0x0a, 0x01, 0x00]
//! );
//!
//! let values = unpack(&bytes)?;
//! assert_eq!(values[0].as_str(), Some("GET"));
//! let table = values[1].as_table().expect("a table");
//! assert_eq!(table.get_int(1).and_then(Value::as_integer), Some(10));
//! assert_eq!(table.get_str("x").and_then(Value::as_integer), Some(1));
//!
//! // The `values!` macro converts each argument with `Value::from`.
//! let bytes = pack(&skywasm_pack::values![1, "a", Value::Nil, true])?;
//! assert_eq!(bytes, [0x0a, 0x01, 0x0c, b'a', 0x00, 0x09]);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

#![no_std]

extern crate alloc;

mod format;
mod pack;
pub mod raw;
mod unpack;
mod value;

pub use format::MAX_DEPTH;
pub use pack::{pack, pack_into, PackError};
pub use unpack::{unpack, UnpackError, UnpackErrorKind, Unpacker};
pub use value::{Table, Value};

/// Builds a `Vec<Value>`, converting each argument with [`Value::from`].
///
/// ```
/// use skywasm_pack::{values, Value};
/// let args = values![1, "GET", true, Value::Nil];
/// assert_eq!(args[1].as_str(), Some("GET"));
/// ```
#[macro_export]
macro_rules! values {
    () => {
        $crate::__private::Vec::<$crate::Value>::new()
    };
    ($($value:expr),+ $(,)?) => {
        $crate::__private::Vec::<$crate::Value>::from([$($crate::Value::from($value)),+])
    };
}

/// Implementation details of the exported macros.
#[doc(hidden)]
pub mod __private {
    pub use alloc::vec::Vec;
}
