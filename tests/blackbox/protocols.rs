//! Protocols and clients for Lua services (issue 26): skynet.crypt and md5, run from
//! configs as skynet users write them.

use crate::support::*;

#[test]
fn skynet_crypt_and_md5_give_skynet_s_bytes() {
    run_skynet_style("test_crypt", "");
}

#[test]
fn the_redis_driver_speaks_to_a_real_redis_server() {
    let plain = crate::servers::redis(None, None);
    let locked = crate::servers::redis(None, Some("foobared"));
    run_skynet_style(
        "test_redis",
        &format!(
            "redis_port = {}\nredis_auth_port = {}",
            plain.port, locked.port
        ),
    );
}

#[test]
fn sproto_encodes_decodes_and_packs_as_skynet_s_and_its_rpc_works() {
    run_skynet_style("test_sproto", "");
}

#[test]
fn a_service_s_own_package_path_patterns_are_searched() {
    // skynet's examples/protoloader.lua puts "./examples/?.lua" in front of package.path
    run_skynet_style(
        "test_package_path",
        &format!("own_module_path = \"{}/own/?.lua\"", lua_dir().display()),
    );
}

#[test]
fn the_mysql_driver_speaks_to_a_real_mariadb_server() {
    let db = crate::servers::mariadb(None, "s3cret", "skywasm");
    run_skynet_style("test_mysql", &format!("mysql_port = {}", db.port));
}

#[test]
fn httpd_and_httpc_serve_each_other_and_refuse_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 game.test\n").unwrap();
    run_skynet_style("test_http", &format!("dns_hosts = \"{}\"", hosts.display()));
}

#[test]
fn an_untrusted_tenant_looks_up_only_the_names_it_may_connect_to() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 game.test other.test\n").unwrap();
    let t = start_skynet_style(&format!(
        "start = \"pong\"\ndns_hosts = \"{hosts}\"\n\
         tenants = {{\n\
           named = {{ start = {{ \"snlua dns_probe game.test other.test\" }}, sockets = true,\n\
                      connect = {{ \"game.test:80\" }} }},\n\
           anywhere = {{ start = {{ \"snlua dns_probe other.test\" }}, sockets = true }},\n\
         }}",
        hosts = hosts.display()
    ));
    let log = t.wait_log_count("DNS ", 3);
    assert!(
        log.contains("DNS game.test ok 127.0.0.1"),
        "a name its connect list names is looked up:\n{log}"
    );
    assert!(
        log.contains("DNS other.test refused"),
        "another name is not:\n{log}"
    );
    assert!(
        log.contains("the name is not in its `connect` list"),
        "the refusal says why:\n{log}"
    );
    assert!(
        log.contains("DNS other.test ok 127.0.0.1"),
        "a tenant that may connect anywhere looks any name up:\n{log}"
    );
}
