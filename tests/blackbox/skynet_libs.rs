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

#[test]
fn lua_services_read_data_files_under_lua_data_path_only() {
    let data = lua_dir().join("data");
    run_skynet_style(
        "test_data_files",
        &format!(
            "lua_data_path = \"{data}\"\ntest_data_dir = \"{data}\"",
            data = data.display()
        ),
    );
}

#[test]
fn an_untrusted_tenant_reads_data_and_snax_files_only_when_granted() {
    let lua = lua_dir();
    let data = lua.join("data");
    let file = data.join("lines.txt");
    let t = start_skynet_style(&format!(
        "start = \"pong\"\nlua_data_path = \"{data}\"\nsnax = \"{lua}/snax/?.lua\"\n\
         tenants = {{\n\
           granted = {{ start = {{ \"snlua data_reader {file}\" }}, launch = {{ \"snlua data_reader\", \"snlua snaxd\" }},\n\
                        lua_data_path = \"{data}\" }},\n\
           denied = {{ start = {{ \"snlua data_reader {file}\" }}, launch = {{ \"snlua data_reader\" }} }},\n\
         }}",
        data = data.display(),
        lua = lua.display(),
        file = file.display(),
    ));
    let log = t.wait_log_count("SHARE ", 2);
    assert_eq!(
        log.matches("DATA first line").count(),
        1,
        "only the granted tenant reads the file:\n{log}"
    );
    assert!(
        log.contains("DATA ") && log.contains("Permission denied"),
        "the other is denied:\n{log}"
    );
    assert_eq!(
        log.matches("SNAX read").count(),
        1,
        "only the tenant that may launch snaxd reads snax files:\n{log}"
    );
    assert!(
        log.contains("the tenant may not launch snaxd") || log.contains("error -3"),
        "the refusal says why:\n{log}"
    );
    assert_eq!(
        log.matches("stm: only trusted services may use skynet.stm")
            .count(),
        2,
        "skynet.stm is for trusted services:\n{log}"
    );
    assert_eq!(
        log.matches("sharetable: only trusted services may share tables")
            .count(),
        2,
        "so are the host's shared tables:\n{log}"
    );
}

#[test]
fn stm_readers_see_a_writers_versions_until_it_lets_go() {
    run_skynet_style("test_stm", "");
}

#[test]
fn multicast_delivers_every_publish_to_every_subscriber() {
    run_skynet_style("test_multicast", "");
}

#[test]
fn mqueue_serves_queued_messages_in_order() {
    run_skynet_style("test_mqueue", "");
}

#[test]
fn sharetable_readers_read_one_host_copy_and_see_updates() {
    let data = lua_dir().join("data");
    run_skynet_style(
        "test_sharetable",
        &format!(
            "lua_data_path = \"{data}\"\ntest_data_dir = \"{data}\"",
            data = data.display()
        ),
    );
}

#[test]
fn sharedata_and_datasheet_objects_follow_updates() {
    let data = lua_dir().join("data");
    run_skynet_style(
        "test_sharedata",
        &format!(
            "lua_data_path = \"{data}\"\ntest_data_dir = \"{data}\"",
            data = data.display()
        ),
    );
}
