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

#[test]
fn skynet_service_starts_a_function_once_per_name() {
    run_skynet_style("test_skynet_service", "");
}

#[test]
fn snax_services_answer_post_and_req_hotfix_and_exit_as_skynet_s() {
    run_skynet_style(
        "test_snax",
        &format!("snax = \"{}/snax/?.lua\"", lua_dir().display()),
    );
}

#[test]
fn skynet_profile_counts_a_coroutine_s_running_time_only() {
    run_skynet_style("test_profile", "");
}

#[test]
fn skynet_memory_reports_wasm_memory_and_the_code_cache_api_is_accepted() {
    let log = run_skynet_style("test_memory_lib", "");
    assert!(
        log.contains("Total memory: ") && log.contains(" wasm memories"),
        "dumpinfo writes the total to the log:\n{log}"
    );
}
