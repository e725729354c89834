//! Tenants: an untrusted tenant's attacks are contained, the other tenants and the node
//! carry on (the adversarial suite; `docs/tenants.md`).

use std::path::PathBuf;

use crate::support::*;

fn lua_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua")
}

/// The node: tenant `calm` runs a well-behaved service with a small mailbox, tenant `rogue`
/// runs `tenant_attacker.lua`, under a 400 ms CPU limit and 8 MiB per service.
fn start_tenants() -> TestNode {
    start(&format!(
        r#"luaservice = "{lua}/?.lua"
secret = "s3cr3t"
tenants = {{
    calm = {{ start = {{ "snlua tenant_victim", "snlua tenant_victim private" }}, export = {{ ".good" }}, mailbox = 100 }},
    rogue = {{
        start = "snlua tenant_attacker",
        launch = {{ "snlua looper", "snlua memory_hog" }},
        cpu = 400, memory = "8M", message_size = "64K", services = 4,
    }},
}}"#,
        lua = lua_dir().display()
    ))
}

/// The `OBSERVED name ...` line of one attack.
fn observed<'a>(log: &'a str, name: &str) -> &'a str {
    let needle = format!("OBSERVED {name} ");
    log.lines()
        .find_map(|line| line.split_once(&needle).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no observation of {name}; log:\n{log}"))
}

#[test]
fn an_untrusted_tenant_is_contained_and_the_others_carry_on() {
    let mut t = start_tenants();
    let log = t.wait_log("ATTACKS DONE");
    let seen = |name: &str| observed(&log, name).to_string();
    // What the attacker may do works.
    assert_eq!(seen("call_exported"), "ok pong");
    assert_eq!(seen("getenv_runtime"), "ok true");
    // Everything else is refused with a clear error or a log line.
    assert!(
        seen("send_unexported").starts_with("error ")
            && seen("send_unexported").contains("send denied")
    );
    assert!(seen("debug_to_exported").contains("send denied"), "{log}");
    assert!(log.contains("DENIED ABORT"), "{log}");
    let victim = t.node.shared().resolve(".good").expect(".good is bound");
    assert_eq!(
        seen("squat"),
        format!("ok {victim}"),
        "the name stays the victim's"
    );
    assert_eq!(seen("getenv_secret"), "ok nil");
    assert!(log.contains("DENIED GETENV secret"), "{log}");
    assert_eq!(seen("kill_launcher"), "ok true");
    assert!(seen("launcher_list").starts_with("error"), "{log}");
    assert!(seen("redirect").contains("denied"), "{log}");
    assert_eq!(seen("big_message"), "ok false");
    assert!(seen("launch_denied").starts_with("error"), "{log}");
    assert!(log.contains("DENIED LAUNCH snlua pong"), "{log}");
    // The soft CPU stage raises a catchable error; the hard one ends the service.
    assert!(
        seen("loop_pcall").starts_with("ok ") && seen("loop_pcall").contains("cpu limit"),
        "{log}"
    );
    assert!(seen("loop").starts_with("error"), "{log}");
    assert!(seen("loop_stubborn").starts_with("error"), "{log}");
    assert!(
        log.contains("ran past the CPU limit of 400 ms per message of tenant `rogue`"),
        "{log}"
    );
    // The memory bomb gets "not enough memory" and the host says why.
    assert!(seen("memory_bomb").contains("not enough memory"), "{log}");
    assert!(log.contains("memory limit: growing to"), "{log}");
    let flood = seen("flood");
    assert!(flood.contains("mailbox is full"), "{log}");
    let accepted: i64 = flood
        .strip_prefix("ok sent ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("flood line: {flood}"));
    assert!(accepted >= 100, "{flood}");
    assert!(log.contains("mailbox full (100 messages)"), "{log}");
    assert!(
        log.contains("already runs its limit of 4 services"),
        "{log}"
    );
    // The node runs on; the victim answers and got every note it accepted.
    assert!(!t.node.shared().is_quitting());
    let good = victim;
    assert_eq!(t.ask(good, &[s("PING")]), vec![s("pong")]);
    let notes = t.ask(good, &[s("COUNT")]);
    assert_eq!(
        notes,
        vec![i(accepted)],
        "the victim handles every message its mailbox took"
    );
    let launcher = t
        .node
        .shared()
        .resolve(".launcher")
        .expect("launcher alive");
    assert!(t.alive(launcher));
    assert!(t.node.shared().getenv("planted").is_none());
}
