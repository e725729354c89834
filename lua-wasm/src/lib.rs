//! snlua: the skywasm service module that runs one Lua 5.4 VM per service, as skynet's
//! snlua does, inside the service's own wasm instance.
//!
//! Launch it as `snlua <script> [args...]`: the loader (`lualib/loader.lua`, skynet's
//! `loader.lua` semantics) finds `<script>` along the `luaservice` search path, through the
//! host (a service never opens host files), and runs it with the arguments.
//!
//! The Lua it links is built by `build.rs` from the `lua-src` crate's Lua 5.4.9, patched so
//! that a `coroutine.yield` called from Lua code returns to `lua_resume` instead of throwing:
//! in wasm a throw is an exception costing microseconds, and every skynet call yields.

//!
//! Built for any other target (the workspace's host-side lints) the crate is empty.

#[cfg(target_family = "wasm")]
mod bson;
#[cfg(target_family = "wasm")]
mod core;
#[cfg(target_family = "wasm")]
mod crypt;
#[cfg(target_family = "wasm")]
mod dispatch;
#[cfg(target_family = "wasm")]
mod entry;
#[cfg(target_family = "wasm")]
mod heap;
#[cfg(target_family = "wasm")]
mod host;
#[cfg(target_family = "wasm")]
mod lualib;
#[cfg(target_family = "wasm")]
mod native;
#[cfg(target_family = "wasm")]
mod pack;
#[cfg(target_family = "wasm")]
mod profile;
#[cfg(target_family = "wasm")]
mod socket;
#[cfg(target_family = "wasm")]
mod sproto;
#[cfg(target_family = "wasm")]
mod state;
#[cfg(target_family = "wasm")]
mod upgrade;
