//! Guests in other languages and WASI: the C example answers a Rust service; a guest's
//! stdout becomes log lines.

use skywasm_abi::ptype;

use crate::support::*;

#[test]
fn the_c_service_answers_a_rust_service() {
    let mut t = start("");
    let echo = t.launch("echo_c", "");
    let reply = t.client.call(echo, ptype::TEXT, b"hi", WAIT).unwrap();
    assert_eq!(reply, b"C HEARD: HI");
    t.wait_log("echo_c: a C service is ready");
    // A Rust service calls it by the name the C service registered.
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("call_text"), s(".echo_c"), s("from rust")]);
    assert_eq!(reply, vec![s("ok"), s("C HEARD: FROM RUST")]);
    // Requests the C service does not understand fail instead of hanging.
    assert!(t.call(echo, &[s("echo")]).is_err());
}

#[test]
fn guest_stdout_goes_to_the_log() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    t.ask(probe, &[s("print"), s("hello from wasi stdout")]);
    let log = t.wait_log("hello from wasi stdout");
    assert!(
        log.contains(&format!("[{probe}] hello from wasi stdout")),
        "{log}"
    );
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let t = start(&format!("wasm_cache = \"{}\"", cache.path().display()));
    t.launch("probe", "");
    let entries = walk(cache.path());
    assert!(
        entries
            .iter()
            .any(|p| p.to_string_lossy().contains("wasmtime")),
        "{entries:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
