//! The byte-level algorithms behind snlua's native Lua modules, kept apart from their Lua
//! bindings (in `skywasm-snlua`, which builds only for wasm) so that they are unit tested,
//! property tested and fuzzed natively.

pub mod bson;
pub mod crypt;
pub mod md5;
pub mod mongo;
pub mod sproto;
