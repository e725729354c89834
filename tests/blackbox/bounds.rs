//! Host memory a tenant, a peer or a client can make the node hold: each kind bounded and
//! charged, floods meeting backpressure or a clear refusal, and nobody hanging because
//! someone else filled a mailbox (issue 21; docs/tenants.md, "Host memory").

use std::path::PathBuf;

use skywasm_abi::ptype;

use crate::support::*;

/// Polls `done` until it holds; a bounded wait, so a broken node fails instead of hanging.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn lua_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua")
}

fn start_lua(extra: &str) -> TestNode {
    start(&format!(
        "luaservice = \"{}/?.lua\"\n{extra}",
        lua_dir().display()
    ))
}

/// A caller whose mailbox is full when its answer comes still gets the answer: replies are
/// never refused for a full mailbox (they would be lost, and the caller would wait forever).
#[test]
fn an_answer_reaches_a_caller_whose_mailbox_is_full() {
    let mut t = start_lua("tenants = { small = { trusted = true, mailbox = 4 } }");
    let shared = t.node.shared().clone();
    let small = shared.tenants.get("small").unwrap().clone();
    let holder = t.launch("snlua", "bounds_holder");
    let victim = shared.launch_in(&small, "snlua", "bounds_victim").unwrap();
    let call = t.request(victim, &[s("CALL"), h(holder)]);
    wait_until("the holder holds the victim's call", || {
        t.ask(holder, &[s("HELD")]) == vec![i(1)]
    });
    // Now the victim's mailbox fills far past its limit of 4 (the host's own pushes are not
    // refused), each message taking it 100 ms.
    let slow = skywasm_pack::pack(&[s("SLOW")]).unwrap();
    for _ in 0..10 {
        t.client.send(victim, ptype::LUA, &slow).unwrap();
    }
    let released = t.ask(holder, &[s("RELEASE")]);
    assert_eq!(released, vec![i(1)], "the answer was refused");
    assert_eq!(t.wait(victim, call).unwrap(), vec![s("answered")]);
}

/// A flood of log lines meets a bounded backlog: lines past it are dropped and counted,
/// and the logger says how many, instead of queueing without end.
#[test]
fn the_logger_backlog_is_bounded_and_says_what_it_dropped() {
    // One worker: the logger cannot write while the flood runs.
    let mut t = start_lua("thread = 1\nlog_backlog = \"64K\"");
    let logger = t.launch("snlua", "bounds_logger");
    let flooded = t.ask(logger, &[s("FLOOD"), i(2000), i(16 << 10)]);
    assert_eq!(flooded, vec![skywasm_pack::Value::Boolean(true)]);
    t.ask(logger, &[s("NOTE"), s("AFTER THE FLOOD")]);
    let log = t.wait_log("AFTER THE FLOOD");
    let note = log
        .lines()
        .find(|line| line.contains("log lines dropped: the logger's backlog of 65536 bytes"))
        .unwrap_or_else(|| panic!("no note of dropped lines"));
    let dropped: u64 = note
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {note}"));
    let written = log.lines().filter(|line| line.ends_with("xxxx")).count() as u64;
    assert_eq!(written + dropped, 2000, "{note}");
}

/// Guest-chosen text in a host log line is cut and escaped: a refused GETENV of a 1 MiB key
/// that carries a forged line logs one short line.
#[test]
fn guest_text_in_host_log_lines_is_cut_and_escaped() {
    let mut t = start_lua("tenants = { r = { cpu = 1000 } }");
    let shared = t.node.shared().clone();
    let tenant = shared.tenants.get("r").unwrap().clone();
    let logger = shared.launch_in(&tenant, "snlua", "bounds_logger").unwrap();
    t.ask(logger, &[s("GETENV"), i(1 << 20)]);
    let log = t.wait_log("DENIED GETENV");
    let line = log.lines().find(|l| l.contains("DENIED GETENV")).unwrap();
    assert!(line.len() < 1024, "{} bytes", line.len());
    assert!(line.contains("...(1048595 bytes)"), "{line}");
    assert!(!log.lines().any(|l| l.starts_with("[:00000001] forged")));
}

/// Secrets never reach a guest, trusted or not; an untrusted tenant cannot set a key the
/// runtime reads (where later launches find their scripts), even with `setenv = { "*" }`.
#[test]
fn secrets_stay_hidden_and_runtime_keys_stay_the_nodes() {
    let mut t = start_lua("cluster_secret = \"hush\"\ntenants = { r = { setenv = { \"*\" } } }");
    let shared = t.node.shared().clone();
    let trusted = t.launch("snlua", "bounds_env");
    assert_eq!(
        t.ask(trusted, &[s("GET"), s("cluster_secret")]),
        vec![skywasm_pack::Value::Nil]
    );
    t.wait_log("DENIED GETENV cluster_secret: the key holds a secret");
    let tenant = shared.tenants.get("r").unwrap().clone();
    let untrusted = shared.launch_in(&tenant, "snlua", "bounds_env").unwrap();
    // Keys the config left unset: skynet.setenv refuses to replace a key by itself.
    for key in ["preload", "lualoader", "cluster_tenant"] {
        assert!(shared.getenv(key).is_none(), "{key} is set by the config");
        t.ask(untrusted, &[s("SET"), s(key), s("/tmp/planted/?.lua")]);
        assert!(
            shared.getenv(key).is_none_or(|v| !v.contains("planted")),
            "{key} was set"
        );
        t.wait_log(&format!(
            "DENIED SETENV {key}: the runtime reads that key; only a trusted tenant may set it"
        ));
    }
    t.ask(untrusted, &[s("SET"), s("score"), s("7")]);
    assert_eq!(shared.getenv("score").as_deref(), Some("7"));
}
