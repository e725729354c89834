//! Built-in wasm services, compiled from `services/` by the build script and embedded in the
//! binary so a node always finds them, whatever its `wasm_path`.

/// The wasm bytes of the built-in service `name`, if there is one.
pub fn module(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, bytes)| *bytes)
}

const BUILTINS: &[(&str, &[u8])] = &[
    (
        "bootstrap",
        include_bytes!(concat!(env!("OUT_DIR"), "/bootstrap.wasm")),
    ),
    (
        "launcher",
        include_bytes!(concat!(env!("OUT_DIR"), "/launcher.wasm")),
    ),
    (
        "snlua",
        include_bytes!(concat!(env!("OUT_DIR"), "/snlua.wasm")),
    ),
];
