//! Harbor against a real skynet node: a skynet master with a skywasm node joining it, and
//! a skywasm master with a skynet node joining it; each side calls the other by address
//! and by global name. skynet is built outside the repository (DEVELOPERS.md): these tests
//! run when `SKYWASM_SKYNET` names its directory, and are skipped with a message otherwise
//! (CI has none).

use std::path::{Path, PathBuf};

use skywasm_pack::Value;

use crate::support::*;

/// The directory of a built skynet, or `None` (after saying why the test is skipped).
fn skynet_dir() -> Option<PathBuf> {
    match std::env::var_os("SKYWASM_SKYNET") {
        Some(dir) if Path::new(&dir).join("skynet").is_file() => Some(PathBuf::from(dir)),
        Some(dir) => panic!("SKYWASM_SKYNET={dir:?} has no built `skynet` binary"),
        None => {
            eprintln!("skipped: set SKYWASM_SKYNET to a built skynet's directory to run it");
            None
        }
    }
}

/// A real skynet node running tests/skynet/harbor_echo.lua with `harbor_lines`.
fn harbor_echo(skynet: &Path, harbor_lines: &str) -> SkynetNode {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/skynet");
    SkynetNode::start(skynet, "harbor_echo", &scripts, harbor_lines)
}

/// What both directions check once both nodes run: skynet found and called skywasm's
/// global name (by address, by name, 100 sends in order), and skywasm calls skynet's.
fn both_ways(skynet: &SkynetNode, sky: &mut TestNode, peer: skywasm::Handle) {
    assert_eq!(
        sky.ask(peer, &[s("REGISTER"), s("SKYWASM_ECHO")]),
        vec![Value::Boolean(true)]
    );
    skynet.wait_for("INTEROP ADDRESS by address");
    skynet.wait_for("INTEROP NAME by name");
    skynet.wait_for("INTEROP NOTES 100 0");
    let ready = skynet.wait_for("INTEROP READY ");
    let at = ready.rsplit(' ').next().unwrap().trim();
    let handle = skywasm::Handle::parse(at).expect("skynet's address");
    for dest in [s("SKYNET_ECHO"), h(handle)] {
        let answer = sky.ask(peer, &[s("CALL"), dest, s("ECHO"), s("to skynet")]);
        assert_eq!(answer, vec![Value::Boolean(true), s("to skynet")]);
    }
    assert_eq!(
        sky.ask(peer, &[s("QUERYNAME"), s("SKYNET_ECHO")]),
        vec![h(handle)]
    );
}

#[test]
fn a_skywasm_node_joins_a_skynet_master() {
    let Some(dir) = skynet_dir() else { return };
    let master = free_address();
    let skynet = harbor_echo(&dir, &harbor_lines(1, &master, true));
    skynet.wait_for("INTEROP READY");
    let mut sky = start_lua(&harbor_lines(2, &master, false));
    let peer = sky.launch("snlua", "harbor_peer");
    both_ways(&skynet, &mut sky, peer);
}

#[test]
fn a_skynet_node_joins_a_skywasm_master() {
    let Some(dir) = skynet_dir() else { return };
    let master = free_address();
    let mut sky = start_lua(&harbor_lines(1, &master, true));
    let peer = sky.launch("snlua", "harbor_peer");
    let skynet = harbor_echo(&dir, &harbor_lines(2, &master, false));
    skynet.wait_for("INTEROP READY");
    both_ways(&skynet, &mut sky, peer);
}
