//! Wire-level constants of the `skynet.pack` format.
//!
//! Every value starts with one type byte: the low 3 bits are the type tag and
//! the high 5 bits are the "cookie", whose meaning depends on the tag.

/// Maximum number of tables a value may be nested in.
///
/// skynet's writer refuses to pack a value sitting inside more than this many
/// nested tables ("serialize can't pack too depth table"); the reader applies
/// the same bound so that untrusted input cannot force deep recursion.
pub const MAX_DEPTH: usize = 32;

pub(crate) const TYPE_NIL: u8 = 0;
pub(crate) const TYPE_BOOLEAN: u8 = 1;
pub(crate) const TYPE_NUMBER: u8 = 2;
pub(crate) const TYPE_USERDATA: u8 = 3;
pub(crate) const TYPE_SHORT_STRING: u8 = 4;
pub(crate) const TYPE_LONG_STRING: u8 = 5;
pub(crate) const TYPE_TABLE: u8 = 6;

// Cookies of `TYPE_NUMBER`.
pub(crate) const NUMBER_ZERO: u8 = 0;
pub(crate) const NUMBER_BYTE: u8 = 1;
pub(crate) const NUMBER_WORD: u8 = 2;
pub(crate) const NUMBER_DWORD: u8 = 4;
pub(crate) const NUMBER_QWORD: u8 = 6;
pub(crate) const NUMBER_REAL: u8 = 8;

// Cookies of `TYPE_LONG_STRING`: the width in bytes of the length field.
pub(crate) const LONG_STRING_WORD: u8 = 2;
pub(crate) const LONG_STRING_DWORD: u8 = 4;

/// One past the largest cookie (cookies are 5 bits wide).
pub(crate) const MAX_COOKIE: u8 = 32;

/// Table cookie meaning "the array size follows as a number value".
pub(crate) const TABLE_EXTENDED: u8 = MAX_COOKIE - 1;

/// The nil byte; also terminates the hash part of a table.
pub(crate) const NIL_BYTE: u8 = TYPE_NIL;

/// Builds a type byte from a type tag and a cookie (`cookie < 32`).
pub(crate) const fn type_byte(tag: u8, cookie: u8) -> u8 {
    tag | (cookie << 3)
}
