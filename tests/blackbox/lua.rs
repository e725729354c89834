//! snlua: Lua services in wasm. Scripts come from `tests/lua/`, found along `luaservice`.

use crate::support::*;

/// The Lua test scripts.
/// The lines a service printed, in order, without the logger's time and `[:handle] `, and
/// without the node's own `LAUNCH` line for it.
fn printed_by(t: &TestNode, handle: skywasm::Handle) -> Vec<String> {
    let tag = format!("[{handle}] ");
    t.log_text()
        .lines()
        .filter_map(|line| line.split_once(&tag).map(|(_, text)| text.to_string()))
        .filter(|text| !text.starts_with("LAUNCH "))
        .collect()
}

/// Runs a script with the host's native, stock Lua 5.4 (mlua), collecting what it prints.
fn run_natively(script: &str) -> Vec<String> {
    // SAFETY: the test's own script, which needs the `debug` library like a skynet service.
    let lua = unsafe { mlua::Lua::unsafe_new() };
    let printed = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let sink = printed.clone();
    let print = lua
        .create_function(move |lua, args: mlua::MultiValue| {
            let mut parts = Vec::new();
            for value in args {
                let text: mlua::LuaString = lua
                    .globals()
                    .get::<mlua::Function>("tostring")?
                    .call(value)?;
                parts.push(text.to_string_lossy());
            }
            sink.borrow_mut().push(parts.join("\t"));
            Ok(())
        })
        .unwrap();
    lua.globals().set("print", print).unwrap();
    let source = std::fs::read_to_string(lua_dir().join(script)).unwrap();
    lua.load(source)
        .set_name(format!("@{script}"))
        .exec()
        .unwrap();
    let lines = printed.borrow().clone();
    lines
}

/// Runs the Lua test service `script` as the node's `start` service: it prints PASS/FAIL
/// lines and stops the node with `skynet.abort()`.
fn run_lua_suite(script: &str) -> String {
    run_lua_suite_with(&format!("start = \"snlua {script}\""), script)
}

/// As [`run_lua_suite`], with the config lines `config` choosing how `script` is started.
/// Returns the node's log.
fn run_lua_suite_with(config: &str, script: &str) -> String {
    let t = start_lua(&format!(
        "{config}\nlua_path = \"{}/lib/?.lua\"",
        lua_dir().display()
    ));
    finish_suite(t, script)
}

#[test]
fn lua_calls_sends_and_coroutines() {
    run_lua_suite("test_call");
}

#[test]
fn lua_services_names_env_and_debug_protocol() {
    run_lua_suite("test_services");
}

#[test]
fn skynet_coroutines_can_call_services() {
    run_lua_suite("test_coroutine");
}

#[test]
fn lua_memory_limits_raise_catchable_errors() {
    run_lua_suite_with(
        "start = \"snlua test_memory\"\nlua_memlimit = \"8M\"",
        "test_memory",
    );
}

#[test]
fn signal_0_breaks_a_lua_loop_with_a_catchable_error() {
    run_lua_suite("test_signal");
}

#[test]
fn every_way_a_message_ends_in_dispatch_behaves_as_skynet_lua_says() {
    let log = run_lua_suite("test_dispatch");
    let failed = log
        .lines()
        .find(|l| l.contains("lua call [") && l.contains("deliberate failure one"));
    assert!(
        failed.is_some(),
        "the error inside dispatch is logged with its message; log:\n{log}"
    );
    let forgot = log
        .lines()
        .find(|l| l.contains("Maybe forgot response session "));
    assert!(
        forgot.is_some_and(|l| l.contains("dispatch_peer.lua:")),
        "a request left unanswered is logged with its handler; log:\n{log}"
    );
}

#[test]
fn lua_forwarding_filters_monitors_killthread_select_trace_and_debug_tasks() {
    run_lua_suite("test_advanced");
}

#[test]
fn the_rust_launcher_answers_skynet_s_launcher_commands() {
    run_lua_suite("test_launcher");
}

#[test]
fn the_lua_launcher_answers_skynet_s_launcher_commands() {
    run_lua_suite_with(
        "bootstrap = \"snlua bootstrap\"\nstart = \"test_launcher\"",
        "test_launcher",
    );
}

#[test]
fn lua_sockets_echo_read_fragments_and_change_hands() {
    run_lua_suite("test_socket");
}

#[test]
fn lua_udp_echo_over_ipv4_and_ipv6() {
    run_lua_suite("test_udp");
}

#[test]
fn lua_gate_frames_forwards_and_kicks() {
    run_lua_suite("test_gate");
}

#[test]
fn lua_socketchannel_order_session_auth_reconnect() {
    run_lua_suite("test_socketchannel");
}

#[test]
fn lua_pack_matches_skynet() {
    run_lua_suite("test_pack");
}

#[test]
fn coroutines_behave_in_wasm_exactly_as_in_stock_lua() {
    let t = start_lua("");
    let handle = t.launch("snlua", "coroutine_semantics");
    t.wait_log(&format!("[{handle}] END"));
    let in_wasm = printed_by(&t, handle);
    let native = run_natively("coroutine_semantics.lua");
    assert!(
        native.len() > 50,
        "the script prints its checks: {native:?}"
    );
    assert_eq!(in_wasm, native);
}

#[test]
fn a_missing_script_fails_the_launch_and_names_the_paths_tried() {
    let t = start_lua("");
    let err = t
        .node
        .handle()
        .launch("snlua", "no_such_script")
        .unwrap_err()
        .to_string();
    assert!(err.contains("init failed"), "{err}");
    let log = t.wait_log("lua loader error");
    assert!(
        log.contains(&format!(
            "cannot open {}/no_such_script.lua",
            lua_dir().display()
        )),
        "{log}"
    );
}

#[test]
fn an_error_in_the_script_fails_the_launch_with_a_traceback() {
    let t = start_lua("");
    assert!(t.node.handle().launch("snlua", "raises at_start").is_err());
    let log = t.wait_log("lua loader error");
    assert!(log.contains("raises.lua:"), "{log}");
    assert!(log.contains("deliberate failure at_start"), "{log}");
    assert!(log.contains("stack traceback:"), "{log}");
    // The node carries on: another Lua service starts.
    let ok = t.launch("snlua", "coroutine_semantics");
    t.wait_log(&format!("[{ok}] END"));
}

#[test]
fn scripts_get_their_arguments_service_name_and_modules() {
    let t = start_lua(&format!(
        "lua_path = \"{}/lib/?.lua\"\npreload = \"{}/preload.lua\"",
        lua_dir().display(),
        lua_dir().display()
    ));
    let handle = t.launch("snlua", "args  one 2   three");
    t.wait_log(&format!("[{handle}] missing module"));
    let printed = printed_by(&t, handle);
    assert_eq!(
        printed,
        [
            "preload args one 2 three",
            "name args",
            format!("path {}/", lua_dir().display()).as_str(),
            "args 3 one 2 three",
            "module hello from lib",
            "module again true",
            "missing module false",
        ]
    );
}

#[test]
fn a_directory_service_requires_the_modules_next_to_it() {
    let dir = lua_dir();
    let t = start(&format!(
        "luaservice = \"{0}/?.lua;{0}/dirsvc/?/init.lua\"\nlua_path = \"{0}/lib/?.lua\"",
        dir.display()
    ));
    let handle = t.launch("snlua", "agent");
    t.wait_log(&format!("[{handle}] lib "));
    assert_eq!(
        printed_by(&t, handle),
        [
            format!("path {}/dirsvc/agent/", dir.display()).as_str(),
            "helper next to the service",
            "lib hello from lib",
        ]
    );
}
