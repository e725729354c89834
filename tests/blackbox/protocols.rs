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
