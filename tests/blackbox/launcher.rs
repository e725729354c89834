//! The launcher: newservice, LIST, KILL, and its list staying true when services die.

use skywasm_pack::Value;

use crate::support::*;

fn launcher(t: &TestNode) -> skywasm::Handle {
    t.node.handle().query(".launcher").expect(".launcher runs")
}

fn list(t: &mut TestNode) -> Vec<(String, String)> {
    let l = launcher(t);
    let reply = t.ask(l, &[s("LIST")]);
    let mut entries: Vec<(String, String)> = reply[0]
        .as_table()
        .unwrap()
        .hash
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn bootstrap_starts_the_launcher_and_the_start_service() {
    let mut t = start("");
    t.wait_log("LAUNCH probe");
    let entries = list(&mut t);
    let mut launched: Vec<&str> = entries.iter().map(|(_, v)| v.as_str()).collect();
    launched.sort();
    // Before `start`: the Lua services skynet's Lua API relies on.
    assert_eq!(
        launched,
        [
            "probe ",
            "snlua cdummy",
            "snlua datacenterd",
            "snlua service_mgr"
        ],
        "{entries:?}"
    );
    assert!(t.node.handle().query("DATACENTER").is_some());
    assert!(t.node.handle().query(".service").is_some());
    assert!(t.node.handle().query(".cslave").is_some());
    assert_eq!(
        t.node.handle().getenv("standalone").as_deref(),
        Some("true")
    );
}

#[test]
fn newservice_lists_kills_and_forgets_dead_services() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("newservice"), s("probe"), s("name .child")]);
    let child = skywasm::Handle(reply[0].as_integer().unwrap() as u32);
    assert!(list(&mut t).contains(&(child.to_string(), "probe name .child".into())));
    // A service that traps disappears from the list (the host tells the launcher).
    let _ = t.call(child, &[s("trap")]);
    t.wait_dead(child);
    let deadline = std::time::Instant::now() + WAIT;
    while list(&mut t).iter().any(|(a, _)| *a == child.to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the launcher kept a dead service"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // KILL through the launcher.
    let reply = t.ask(probe, &[s("newservice"), s("probe"), s("")]);
    let victim = skywasm::Handle(reply[0].as_integer().unwrap() as u32);
    let l = launcher(&t);
    let reply = t.ask(l, &[s("KILL"), s(&victim.to_string())]);
    let killed = reply[0].as_table().unwrap();
    assert_eq!(killed.get_str(&victim.to_string()), Some(&s("probe ")));
    t.wait_dead(victim);
}

#[test]
fn newservice_of_a_failing_module_fails() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    for args in ["trap", "fail"] {
        let reply = t.ask(probe, &[s("newservice"), s("probe"), s(args)]);
        assert_eq!(reply[0], Value::Nil, "{args}: {reply:?}");
    }
    let reply = t.ask(probe, &[s("newservice"), s("missing_module"), s("")]);
    assert_eq!(reply[0], Value::Nil);
}

#[test]
fn stat_and_mem_cover_rust_services_through_the_debug_protocol() {
    let mut t = start("");
    let l = launcher(&t);
    let probe = t.wait_log("LAUNCH probe");
    let probe = probe
        .lines()
        .find(|l| l.contains("] LAUNCH probe"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .unwrap()
        .to_string();
    let reply = t.ask(l, &[s("STAT")]);
    let stats = reply[0].as_table().unwrap();
    // The probe (Rust) and bootstrap's three Lua services all answer the debug protocol.
    assert_eq!(stats.hash.len(), 4, "{stats:?}");
    for (_, entry) in &stats.hash {
        let entry = entry.as_table().expect("a stat table");
        assert!(entry.get_str("message").is_some());
    }
    let reply = t.ask(l, &[s("MEM")]);
    let mem = reply[0].as_table().unwrap();
    let text = mem.get_str(&probe).and_then(Value::as_str).unwrap();
    assert!(text.ends_with("Kb (probe )"), "{text}");
}
