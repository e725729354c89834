//! Tenants: an untrusted tenant's attacks are contained, the other tenants and the node
//! carry on (the adversarial suite; `docs/tenants.md`).

use skywasm::Handle;
use skywasm_pack::Value;

use crate::support::*;

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
    let victim = t.node.handle().query(".good").expect(".good is bound");
    assert_eq!(
        seen("squat"),
        format!("ok {victim}"),
        "the name stays the victim's"
    );
    // Unexported names live in their tenant's own name space: hidden from the attacker,
    // and its binding of the same name is its own business.
    assert_eq!(seen("private_name_hidden"), "ok true");
    assert_eq!(seen("squat_private"), "ok true");
    let private = t
        .node
        .handle()
        .query_in("calm", ".good_private")
        .expect("calm still finds its private name");
    assert_eq!(
        t.node.handle().service(private).map(|s| s.args),
        Some("tenant_victim private".to_string())
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
    // Deep recursion in Lua is a catchable Lua error, in Lua code (its stack meets the 8 MiB
    // memory limit first) and through C calls alike; the service lives on.
    let deep = seen("deep_recursion");
    assert!(
        deep.starts_with("error")
            && (deep.contains("stack overflow") || deep.contains("not enough memory")),
        "{log}"
    );
    assert!(seen("deep_c_recursion").contains("stack overflow"), "{log}");
    assert_eq!(seen("alive_after_recursion"), "ok still here");
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
    assert!(log.contains("mailbox full (100 messages or "), "{log}");
    assert!(
        log.contains("already runs its limit of 4 services"),
        "{log}"
    );
    // The node runs on; the victim answers and got every note it accepted.
    assert!(!t.node.handle().is_stopping());
    let good = victim;
    assert_eq!(t.ask(good, &[s("PING")]), vec![s("pong")]);
    let notes = t.ask(good, &[s("COUNT")]);
    assert_eq!(
        notes,
        vec![i(accepted)],
        "the victim handles every message its mailbox took"
    );
    let launcher = t.node.handle().query(".launcher").expect("launcher alive");
    assert!(t.alive(launcher));
    assert!(t.node.handle().getenv("planted").is_none());
}

/// A plain skynet config lets the node's own services do what skynet code does (issue 24,
/// item 4; docs/config.md, "Limits of the node's own services"): one message sends far
/// more than 100,000 messages into a mailbox that cannot drain meanwhile, and an endless
/// loop still ends, first with a catchable error, then for good.
#[test]
fn a_plain_config_takes_a_flood_and_still_ends_an_endless_loop() {
    let mut t = start_lua("");
    let sender = t.launch("snlua", "self_sender");
    const NOTES: i64 = 250_000;
    assert_eq!(t.ask(sender, &[s("FLOOD"), i(NOTES)]), vec![i(NOTES)]);
    assert_eq!(
        t.ask(sender, &[s("COUNT")]),
        vec![i(NOTES)],
        "every note arrived"
    );

    let looper = t.launch("snlua", "looper");
    let caught = t.ask(looper, &[s("LOOP_PCALL")]);
    assert!(
        matches!(&caught[..], [Value::String(e)] if String::from_utf8_lossy(e).contains("cpu limit")),
        "{caught:?}"
    );
    let stubborn = t.request(looper, &[s("LOOP_STUBBORN")]);
    assert!(
        t.wait(looper, stubborn).is_err(),
        "the loop ended in an error"
    );
    let log = t.wait_log("ran past the CPU limit of 10000 ms");
    assert!(
        !t.alive(looper),
        "a service aborted mid-message is discarded:\n{log}"
    );
}

/// Fair scheduling: a tenant looping in more services than the node has workers runs at
/// most its worker cap of them at once (an untrusted tenant: one worker less than the node),
/// and another tenant's service answers while the loops run.
#[test]
fn a_looping_tenant_cannot_take_every_worker() {
    let mut t = start(&format!(
        "luaservice = \"{lua}/?.lua\"\ntenants = {{ calm = {{ mailbox = 1000 }}, rogue = {{ cpu = 8000 }} }}",
        lua = lua_dir().display()
    ));
    let shared = t.node.handle();
    let rogue = "rogue";
    let calm = "calm";
    let pong = shared.launch_in(calm, "snlua", "pong").expect("calm pong");
    let loopers: Vec<Handle> = (0..3)
        .map(|_| shared.launch_in(rogue, "snlua", "looper").expect("looper"))
        .collect();
    for looper in &loopers {
        t.request(*looper, &[s("LOOP_STUBBORN")]);
    }
    t.wait_log("looping stubbornly");
    // Both workers are free for rogue's three loops unless its cap holds: calm would then
    // wait 8 s for a worker.
    let reply = t.ask(pong, &[s("PING")]);
    assert_eq!(reply[0], s("PONG"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = t.log_text();
    assert_eq!(
        log.matches("looping stubbornly").count(),
        1,
        "rogue ran two loops at once on a two-worker node:\n{log}"
    );
    assert!(!log.contains("ran past the CPU limit"), "{log}");
}

/// Socket and timer quotas: a tenant's open sockets, pending timeouts and socket addresses
/// are limited as configured, and it cannot touch or list another tenant's sockets.
#[test]
fn socket_and_timer_quotas_hold() {
    let t = start(&format!(
        r#"luaservice = "{lua}/?.lua"
tenants = {{
    other = {{ start = "snlua tenant_sockets owner", export = {{ ".other_sockets" }}, sockets = true }},
    limited = {{
        start = "snlua tenant_sockets", sockets = true, max_sockets = 2, timers = 5,
        listen = {{ "127.0.0.1:*" }}, connect = {{ "127.0.0.1:*" }},
    }},
}}"#,
        lua = lua_dir().display()
    ));
    let log = t.wait_log("QUOTAS DONE");
    let seen = |name: &str| observed(&log, name).to_string();
    let timers = seen("timers");
    assert!(
        timers.starts_with("ok armed 5: ") && timers.contains("timeout refused"),
        "{log}"
    );
    assert!(log.contains("has its limit of 5 timeouts pending"), "{log}");
    assert!(
        seen("listen_denied").starts_with("error") && seen("listen_denied").contains("denied"),
        "{log}"
    );
    assert!(
        log.contains("DENIED socket_listen 0.0.0.0:0: the address is not in its `listen` list"),
        "{log}"
    );
    assert_eq!(seen("listen_allowed"), "ok integer");
    assert_eq!(seen("connect_denied"), "ok permission denied");
    assert_eq!(seen("connect_allowed"), "ok integer");
    assert!(
        seen("socket_limit").contains("the limit of 2 open sockets is reached"),
        "{log}"
    );
    assert_eq!(seen("foreign_write"), "ok false");
    assert!(seen("foreign_close").starts_with("ok nil "), "{log}");
    assert_eq!(seen("foreign_still_open"), "ok true");
    assert_eq!(seen("netstat_own"), "ok 2");
    let limited = t.node.handle().tenant_usage("limited").expect("limited");
    assert_eq!(limited.sockets, 2);
}

/// A service `.launcher` starts for an untrusted tenant runs its init under the tenant's
/// worker cap, not on the launcher's worker: a script looping in its main chunk does not
/// hold up other launches, and the `newservice` waiting for it fails when its init does.
#[test]
fn an_init_that_loops_does_not_hold_the_launcher() {
    let mut t = start(&format!(
        r#"luaservice = "{lua}/?.lua"
tenants = {{ rogue = {{ start = "snlua init_looper spawn", launch = {{ "snlua init_looper" }}, cpu = 6000 }} }}"#,
        lua = lua_dir().display()
    ));
    t.wait_log("looping in init");
    let launcher = t.node.handle().query(".launcher").expect("a launcher");
    let reply = t.ask(launcher, &[s("LAUNCH"), s("snlua"), s("pong")]);
    assert!(
        matches!(reply.first(), Some(Value::Integer(_))),
        "{reply:?}"
    );
    assert!(
        !t.log_text().contains("INIT LOOPER"),
        "the launch waited for the looping init:\n{}",
        t.log_text()
    );
    // The soft CPU stage (3 s) ends the init with a Lua error: the launch fails.
    let log = t.wait_log("INIT LOOPER");
    assert!(log.contains("INIT LOOPER false"), "{log}");
    assert!(log.contains("FAILED launch snlua init_looper"), "{log}");
}

/// The adversarial suite for wasm guests: an untrusted tenant's Rust services loop, trap,
/// overflow their stack, bomb memory, abuse the ABI, send 64 MiB and exit while serving
/// calls. Each attack ends at most the attacking service, its callers get errors, the log
/// says why, and a well-behaved pair of another tenant exchanges 100,000 messages all
/// delivered in order meanwhile.
#[test]
fn rust_attackers_are_contained() {
    let mut t = start(
        r#"wasm_memory = "96M"
tenants = {
    calm = { mailbox = 200000 },
    rogue = { cpu = 300, memory = "96M" },
}"#,
    );
    let shared = t.node.handle();
    let calm = "calm";
    let rogue = "rogue";
    let sender = shared.launch_in(calm, "probe", "").expect("calm sender");
    let receiver = shared.launch_in(calm, "probe", "").expect("calm receiver");
    const NOTES: i64 = 100_000;
    let streaming = t.request(sender, &[s("send_text"), h(receiver), i(NOTES)]);
    let attacker = || shared.launch_in(rogue, "probe", "").expect("rogue probe");

    let attacks: [(&str, Vec<Value>); 6] = [
        ("endless loop", vec![s("busy"), i(60_000)]),
        ("trap", vec![s("trap")]),
        ("stack overflow", vec![s("recurse"), i(1 << 30)]),
        ("memory bomb", vec![s("alloc_bomb")]),
        ("out-of-bounds pointer", vec![s("abi"), s("send_oob")]),
        ("length near 4 GiB", vec![s("abi"), s("send_huge_len")]),
    ];
    for (what, request) in attacks {
        let probe = attacker();
        let result = t.call(probe, &request);
        assert!(result.is_err(), "{what}: the caller got {result:?}");
        t.wait_dead(probe);
    }
    // The logger writes asynchronously: wait (boundedly) for the lines.
    t.wait_log("ran past the CPU limit of 300 ms per message of tenant `rogue`");
    t.wait_log("memory limit");

    // Exit in the middle of serving calls: every waiting caller gets an error.
    let holder = attacker();
    let held: Vec<i32> = (0..3).map(|_| t.request(holder, &[s("hold")])).collect();
    t.request(holder, &[s("exit")]);
    for session in held {
        assert!(t.wait(holder, session).is_err(), "a held call was answered");
    }

    // 64 MiB at the calm receiver, under an untrusted tenant's default message size (4 MiB).
    let big = attacker();
    let code = t.ask(big, &[s("send_big"), i(64 << 20), h(receiver)]);
    assert_eq!(code, vec![i(i64::from(skywasm_abi::error::TOO_LARGE))]);

    // The calm pair: every note arrived, in order, while all of that went on.
    assert_eq!(t.wait(sender, streaming).expect("the stream"), vec![i(0)]);
    let seen = t.ask(receiver, &[s("seen")]);
    let Some(Value::Table(pairs)) = seen.first() else {
        panic!("seen: {seen:?}");
    };
    let numbers: Vec<i64> = pairs
        .array
        .iter()
        .filter_map(|pair| match pair {
            Value::Table(p) if p.array.first() == Some(&h(sender)) => p.array[1].as_integer(),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, (0..NOTES).collect::<Vec<_>>());
    assert!(!shared.is_stopping());
}
