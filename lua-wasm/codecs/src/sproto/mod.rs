//! sproto, skynet's schema-based serialization: the schema bundle a parser makes from
//! schema text ([`parser`]), its in-memory form ([`schema`]), messages encoded from and
//! decoded to a dynamic value source/sink ([`encode`], [`decode`]: Lua tables in snlua), and
//! the zero-packing of messages ([`pack`]). Byte for byte as skynet's `sproto.core` and
//! `sprotoparser` (the format is documented in skynet's `lualib-src/sproto/README.md`).

pub mod decode;
pub mod encode;
pub mod pack;
pub mod parser;
pub mod schema;
#[cfg(test)]
mod tests;

/// Bytes of a length prefix.
const SIZEOF_LENGTH: usize = 4;
/// Deepest nesting of structs in a message, as skynet's Lua binding allows.
pub const MAX_DEPTH: usize = 64;
/// Largest encoded message, as skynet's Lua binding allows.
pub const MAX_ENCODED: usize = 0x100_0000;

fn read_u16(bytes: &[u8], at: usize) -> usize {
    usize::from(bytes[at]) | usize::from(bytes[at + 1]) << 8
}

fn read_u32(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
}
