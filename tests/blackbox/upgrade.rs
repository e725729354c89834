//! Hot upgrade (docs/upgrade.md): a service's code is replaced at its address under load,
//! with its state, losing, duplicating and reordering nothing; failed upgrades leave the old
//! code serving.

use skywasm::Handle;
use skywasm_pack::Value;

use crate::support::*;

/// A Lua node whose `lua_path` has the upgrade scripts' library.
fn start_with_lib() -> TestNode {
    start(&format!(
        "luaservice = \"{0}/?.lua\"\nlua_path = \"{0}/lib/?.lua\"",
        lua_dir().display()
    ))
}

/// The strings of a Lua array.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Table(t) => t
            .array
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The value a Lua table holds under integer key `key` (array part or hash part).
fn entry(table: &Value, key: i64) -> Option<i64> {
    let Value::Table(t) = table else { return None };
    if key >= 1 && (key as usize) <= t.array.len() {
        return t.array[key as usize - 1].as_integer();
    }
    t.hash
        .iter()
        .find(|(k, _)| k.as_integer() == Some(key))
        .and_then(|(_, v)| v.as_integer())
}

#[test]
fn a_lua_service_upgraded_100_times_under_load_loses_nothing() {
    let mut t = start_with_lib();
    let target = t.launch("snlua", "upgrade_v1");
    let driver = t.launch("snlua", "upgrade_driver");
    let callers: Vec<Handle> = (0..3)
        .map(|_| t.launch("snlua", "upgrade_caller"))
        .collect();
    for caller in &callers {
        t.ask(*caller, &[s("RUN"), h(target)]);
    }
    let outcome = t.ask(driver, &[s("UPGRADES"), h(target), i(100)]);
    assert_eq!(
        strings(&outcome[0]),
        Vec::<String>::new(),
        "upgrades that did not restore"
    );

    let mut calls = 0;
    let mut notes_sent = Vec::new();
    for caller in &callers {
        let report = t.ask(*caller, &[s("STOP")]);
        let made = report[0].as_integer().unwrap();
        assert_eq!(report[1], i(0), "calls that failed");
        assert_eq!(strings(&report[2]), Vec::<String>::new(), "anomalies");
        assert!(
            made > 100,
            "the caller kept calling during the upgrades: {made}"
        );
        calls += made;
        notes_sent.push(report[3].as_integer().unwrap());
    }
    let state = t.ask(target, &[s("STATE")]);
    assert_eq!(
        state[0],
        i(calls),
        "every call was served exactly once, state intact"
    );
    assert_eq!(state[1], i(0), "notes out of order");
    for (caller, sent) in callers.iter().zip(&notes_sent) {
        assert_eq!(
            entry(&state[2], i64::from(caller.0)),
            Some(*sent),
            "every note of {caller} arrived"
        );
    }
    assert_eq!(state[3], i(101), "101 generations of code");
    assert_eq!(state[4], i(1), "the 100th upgrade went back to version 1");
    // The logger writes asynchronously: wait (boundedly) for the 100th line, then no more.
    let log = t.wait_log_count("the new code took the state", 100);
    assert_eq!(
        log.matches("the new code took the state").count(),
        100,
        "{log}"
    );
}

#[test]
fn a_failed_lua_upgrade_leaves_the_old_code_serving() {
    let mut t = start_with_lib();
    let target = t.launch("snlua", "upgrade_v1");
    let driver = t.launch("snlua", "upgrade_driver");
    assert_eq!(t.ask(target, &[s("INC")]), vec![i(1), i(1), i(1)]);
    let cases = [
        ("upgrade_missing", "did not start"),
        ("upgrade_syntax_error", "did not start"),
        ("upgrade_start_fails", "exited during its start"),
        ("upgrade_refuses_state", "did not start"),
    ];
    for (name, why) in cases {
        let reply = t.ask(driver, &[s("TRY"), h(target), s(name)]);
        assert_eq!(reply[0], Value::Boolean(false), "{name}: {reply:?}");
        let text = reply[1].as_str().unwrap_or("");
        assert!(
            text.contains("upgrade failed") && text.contains(why),
            "{name}: {text}"
        );
    }
    // The old code's hook fails: the upgrade is refused.
    assert_eq!(t.ask(target, &[s("FAIL_HOOK")]), vec![Value::Boolean(true)]);
    let reply = t.ask(driver, &[s("TRY"), h(target), s("upgrade_v2")]);
    assert_eq!(reply[0], Value::Boolean(false), "{reply:?}");
    assert!(
        reply[1]
            .as_str()
            .unwrap_or("")
            .contains("refused the upgrade"),
        "{reply:?}"
    );
    // Version 1, generation 1, the count carried on: nothing changed.
    assert_eq!(t.ask(target, &[s("INC")]), vec![i(1), i(2), i(1)]);
    // The logger writes asynchronously: wait (boundedly) for each line.
    t.wait_log("upgrade_missing");
    t.wait_log("the upgrade hook failed: ");
    t.wait_log("the running code carries on");
}

#[test]
fn a_service_without_a_hook_starts_fresh_at_the_same_address() {
    let mut t = start_with_lib();
    let pong = t.launch("snlua", "pong");
    let driver = t.launch("snlua", "upgrade_driver");
    assert_eq!(t.ask(pong, &[s("PING")])[..2], [s("PONG"), i(1)]);
    let reply = t.ask(driver, &[s("TRY"), h(pong), s("pong")]);
    assert_eq!(reply[0], Value::Boolean(true), "{reply:?}");
    assert!(
        reply[1].as_str().unwrap_or("").starts_with("fresh "),
        "{reply:?}"
    );
    // The same address answers, counting from 1 again: new code, fresh state.
    assert_eq!(t.ask(pong, &[s("PING")])[..2], [s("PONG"), i(1)]);
}

#[test]
fn a_rust_service_keeps_its_state_and_rolls_back_when_the_new_code_refuses_it() {
    let mut t = start_with_lib();
    let probe = t.launch("probe", "");
    let driver = t.launch("snlua", "upgrade_driver");
    for n in 1..=3 {
        assert_eq!(t.ask(probe, &[s("count")]), vec![i(n)]);
    }
    // Same module, new arguments: new code reporting v2, and the count goes on.
    let reply = t.ask(
        driver,
        &[s("TRY"), h(probe), s("probe"), s("version"), s("v2")],
    );
    assert_eq!(reply[0], Value::Boolean(true), "{reply:?}");
    assert!(
        reply[1].as_str().unwrap_or("").starts_with("restored 1 "),
        "{reply:?}"
    );
    assert_eq!(t.ask(probe, &[s("version")]), vec![s("v2")]);
    assert_eq!(
        t.ask(probe, &[s("count")]),
        vec![i(4)],
        "the count survived"
    );
    // New code that refuses the state: the old code (v2, its count) carries on.
    let reply = t.ask(driver, &[s("TRY"), h(probe), s("probe"), s("refuse_state")]);
    assert_eq!(reply[0], Value::Boolean(false), "{reply:?}");
    assert!(
        reply[1].as_str().unwrap_or("").contains("did not start"),
        "{reply:?}"
    );
    assert_eq!(t.ask(probe, &[s("version")]), vec![s("v2")]);
    assert_eq!(t.ask(probe, &[s("count")]), vec![i(5)]);
    t.wait_log("this code refuses the old state");
    // The Rust SDK's upgrade, from another Rust service.
    let other = t.launch("probe", "");
    let reply = t.ask(
        other,
        &[s("upgrade"), h(probe), s("probe"), s("version v3")],
    );
    assert_eq!(reply[..2], [s("restored"), i(1)], "{reply:?}");
    assert_eq!(t.ask(probe, &[s("version")]), vec![s("v3")]);
    assert_eq!(t.ask(probe, &[s("count")]), vec![i(6)]);
    let reply = t.ask(other, &[s("upgrade"), h(probe), s("no_such_module")]);
    assert_eq!(reply[0], s("error"), "{reply:?}");
    assert!(
        reply[1].as_str().unwrap_or("").contains("cannot be loaded"),
        "{reply:?}"
    );
}

/// The raw ABI: a trap in the new code's `skywasm_restore` fails the upgrade and the old
/// code serves on; a trap in the old code's `skywasm_snapshot` ends the service, as a trap in
/// a message would, and the upgrade reports it.
#[test]
fn traps_in_restore_and_snapshot() {
    let mut t = start_with_lib();
    let driver = t.launch("snlua", "upgrade_driver");
    let echo = t.launch("upgrade_traps", "");
    let reply = t.ask(driver, &[s("TRY"), h(echo), s("upgrade_traps")]);
    assert_eq!(reply[0], Value::Boolean(false), "{reply:?}");
    let why = reply[1].as_str().unwrap_or("").to_string();
    assert!(
        why.contains("did not start") && why.contains("skywasm_restore"),
        "{why}"
    );
    let answer = t
        .client
        .call(echo, skywasm_abi::ptype::TEXT, b"still here", WAIT)
        .expect("the old code answers");
    assert_eq!(answer, b"still here");

    let fragile = t.launch("upgrade_traps", "snapshot");
    let reply = t.ask(driver, &[s("TRY"), h(fragile), s("upgrade_traps")]);
    assert_eq!(reply[0], Value::Boolean(false), "{reply:?}");
    assert!(
        reply[1]
            .as_str()
            .unwrap_or("")
            .contains("faulted while handing over its state"),
        "{reply:?}"
    );
    t.wait_dead(fragile);
    assert!(t.alive(echo));
}
