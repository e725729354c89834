//! skynet's library beyond skynet.lua (issue 25), run from configs as skynet users write
//! them: no `bootstrap` key, `start` a Lua service.

use crate::support::*;

#[test]
fn a_config_without_bootstrap_starts_lua_as_skynet_does() {
    // skynet's default bootstrap: launcher, cdummy, datacenterd, service_mgr, then `start`
    // as a Lua script name.
    let log = run_skynet_style("test_services", "");
    assert!(
        !log.contains("not found"),
        "nothing should be missing; log:\n{log}"
    );
}
