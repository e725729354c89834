//! Host memory a tenant, a peer or a client can make the node hold: each kind bounded and
//! charged, floods meeting backpressure or a clear refusal, and nobody hanging because
//! someone else filled a mailbox (issue 21; docs/tenants.md, "Host memory").

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

/// A caller whose mailbox is full when its answer comes still gets the answer: replies are
/// never refused for a full mailbox (they would be lost, and the caller would wait forever).
#[test]
fn an_answer_reaches_a_caller_whose_mailbox_is_full() {
    let mut t = start_lua("tenants = { small = { trusted = true, mailbox = 4 } }");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let small = "small";
    let holder = t.launch("snlua", "bounds_holder");
    let victim = shared.launch_in(small, "snlua", "bounds_victim").unwrap();
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
    calm.finish(std::time::Duration::from_secs(2));
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
    let shared = t.node.handle();
    let tenant = "r";
    let logger = shared.launch_in(tenant, "snlua", "bounds_logger").unwrap();
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
    let mut t = start_lua(
        "cluster_secret = \"hush\"\nharbor_secret = \"hush\"\n\
         tenants = { r = { setenv = { \"*\" } } }",
    );
    let shared = t.node.handle();
    let trusted = t.launch("snlua", "bounds_env");
    for secret in ["cluster_secret", "harbor_secret"] {
        assert_eq!(
            t.ask(trusted, &[s("GET"), s(secret)]),
            vec![skywasm_pack::Value::Nil]
        );
        t.wait_log(&format!("DENIED GETENV {secret}: the key holds a secret"));
    }
    let tenant = "r";
    let untrusted = shared.launch_in(tenant, "snlua", "bounds_env").unwrap();
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

/// A client flooding a gate that is busy meets backpressure: the gate's socket stops
/// reading once its mailbox holds `socket_backlog`, the client's writes wait in TCP, and
/// every byte arrives once the gate drains.
#[test]
fn a_flooding_client_is_paused_at_the_owners_backlog_and_nothing_is_lost() {
    const FLOOD: usize = 48 << 20;
    let mut t = start_lua("cpu_limit = 6000\nsocket_backlog = \"1M\"");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let gate = t.launch("snlua", "bounds_gate");
    let port = t.ask(gate, &[s("LISTEN")])[0].as_integer().unwrap() as u16;
    let client = std::thread::spawn(move || {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_write_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..FLOOD / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
    });
    // Once the gate reads the connection, it is busy for 1.5 s while the client writes as
    // fast as loopback takes it.
    wait_until("the gate reads the connection", || {
        t.ask(gate, &[s("STARTED")]) == vec![i(1)]
    });
    let spin = t.request(gate, &[s("SPIN"), i(1500)]);
    let mut most = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.is_finished() && std::time::Instant::now() < deadline {
        most = most.max(shared.service(gate).map_or(0, |s| s.queue_bytes));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    client.join().unwrap();
    t.wait(gate, spin).unwrap();
    // The backlog, plus the one read (64 KiB) that found it full, plus the SPIN request.
    assert!(
        most <= (1 << 20) + (64 << 10) + 64,
        "the mailbox held {most} bytes"
    );
    wait_until("every byte arrived", || {
        t.ask(gate, &[s("RECEIVED")]) == vec![i(FLOOD as i64)]
    });
    calm.finish(std::time::Duration::from_secs(2));
}

/// The timeouts of a service that ended go back to its tenant at once (not when they would
/// have fired, 1,000 s later), and leave the timer wheel soon after.
#[test]
fn the_timeouts_of_an_ended_service_are_released_at_once() {
    let mut t = start_lua("tenants = { r = { timers = 3000 } }");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let tenant = "r";
    let first = shared.launch_in(tenant, "snlua", "bounds_timers").unwrap();
    assert_eq!(t.ask(first, &[s("ARM"), i(3001)]), vec![i(3000)]);
    assert!(shared.pending_timers() >= 3000);
    shared.kill(first);
    t.wait_dead(first);
    let second = shared.launch_in(tenant, "snlua", "bounds_timers").unwrap();
    assert_eq!(t.ask(second, &[s("ARM"), i(3000)]), vec![i(3000)]);
    // The first one's timeouts are swept out of the wheel: only the second's remain.
    wait_until("the ended service's timeouts left the wheel", || {
        shared.pending_timers() <= 3000
    });
    calm.finish(std::time::Duration::from_secs(2));
}

/// Names are capped per service and per tenant; a service that ends gives its names back.
#[test]
fn names_are_capped_per_service_and_per_tenant() {
    let mut t = start_lua("tenants = { r = { names = 2, tenant_names = 3 } }");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let tenant = "r";
    let reg = |t: &mut TestNode, who, name: &str| {
        t.ask(who, &[s("REG"), s(name)]) == vec![skywasm_pack::Value::Boolean(true)]
    };
    let a = shared.launch_in(tenant, "snlua", "bounds_names").unwrap();
    let b = shared.launch_in(tenant, "snlua", "bounds_names").unwrap();
    assert!(reg(&mut t, a, ".a1") && reg(&mut t, a, ".a2"));
    assert!(!reg(&mut t, a, ".a3"), "over the service's 2 names");
    t.wait_log("REG .a3 refused");
    assert!(reg(&mut t, b, ".b1"));
    assert!(!reg(&mut t, b, ".b2"), "over the tenant's 3 names");
    shared.kill(a);
    t.wait_dead(a);
    assert!(reg(&mut t, b, ".b2"), "the ended service's names came back");
    calm.finish(std::time::Duration::from_secs(2));
}

/// `.launcher` keeps a bounded line per service it launched, however long the arguments;
/// an untrusted tenant cannot launch with more than 64 KiB of them.
#[test]
fn the_launchers_bookkeeping_is_bounded_and_oversized_arguments_are_refused() {
    let mut t = start(r#"tenants = { r = { launch = { "echo" } } }"#);
    let shared = t.node.handle();
    let launcher = shared.query(".launcher").unwrap();
    let long = "a".repeat(10_000);
    let reply = t.ask(launcher, &[s("LAUNCH"), s("echo"), s(&long)]);
    let echo = reply[0].as_integer().unwrap();
    let list = t.ask(launcher, &[s("LIST")]);
    let line = list[0]
        .as_table()
        .unwrap()
        .hash
        .iter()
        .find(|(k, _)| k.as_str() == Some(&format!(":{echo:08x}")))
        .map(|(_, v)| v.as_str().unwrap().to_string())
        .expect("the launched service is listed");
    assert!(line.len() < 300, "{} bytes", line.len());
    assert!(line.ends_with("...(10000 bytes)"), "{line}");
    // An untrusted tenant's guest launching with 70 KB of arguments is refused.
    let tenant = "r";
    let attacker = shared.launch_in(tenant, "hostile/launcher", "").unwrap();
    let body = format!("echo {}", "b".repeat(70_000));
    let answer = t
        .client
        .call(
            attacker,
            ptype::TEXT,
            body.as_bytes(),
            std::time::Duration::from_secs(20),
        )
        .unwrap();
    let code = i32::from_le_bytes(answer[..4].try_into().unwrap());
    assert_eq!(code, skywasm_abi::error::LIMIT);
    t.wait_log("70000 bytes of arguments, over the 65536");
}

/// An untrusted tenant whose `connect` list allows any address still cannot reach this
/// machine's own addresses or the node's listeners: those need an entry naming the host.
#[test]
fn untrusted_sockets_reach_the_node_itself_only_through_an_entry_naming_it() {
    let mut t = start_lua(
        r#"tenants = {
            open = { sockets = true, connect = { "*:*" } },
            named = { sockets = true, connect = { "127.0.0.1:*" } },
        }"#,
    );
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let gate = t.launch("snlua", "bounds_gate");
    let port = t.ask(gate, &[s("LISTEN")])[0].as_integer().unwrap();
    let open = "open";
    let prober = shared.launch_in(open, "snlua", "bounds_connect").unwrap();
    for host in ["127.0.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1"] {
        let reply = t.ask(prober, &[s("OPEN"), s(host), i(port)]);
        assert_eq!(reply[0], skywasm_pack::Value::Boolean(false), "{host}");
    }
    t.wait_log("this machine's own addresses and the node's listeners need a `connect` entry");
    let named = "named";
    let allowed = shared.launch_in(named, "snlua", "bounds_connect").unwrap();
    let reply = t.ask(allowed, &[s("OPEN"), s("127.0.0.1"), i(port)]);
    assert_eq!(reply[0], skywasm_pack::Value::Boolean(true), "{reply:?}");
    calm.finish(std::time::Duration::from_secs(2));
}

/// The mailboxes of a tenant are capped together (`tenant_mailbox_bytes`), not only one by
/// one: three busy services with 1 MiB mailboxes take 1.5 MiB between them (alone, each
/// would take three messages of 256 KiB).
#[test]
fn a_tenants_mailboxes_are_capped_together() {
    let mut t = start_lua(
        r#"tenants = { r = { trusted = true, mailbox_bytes = "1M", tenant_mailbox_bytes = "1536K" } }"#,
    );
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let tenant = "r";
    let busy: Vec<_> = (0..3)
        .map(|_| shared.launch_in(tenant, "snlua", "bounds_victim").unwrap())
        .collect();
    let slow = skywasm_pack::pack(&[s("SLOW")]).unwrap();
    for target in &busy {
        for _ in 0..20 {
            t.client.send(*target, ptype::LUA, &slow).unwrap();
        }
    }
    let sender = t.launch("snlua", "bounds_sender");
    let mut request = vec![s("FILL")];
    request.extend(busy.iter().map(|handle| h(*handle)));
    let took: Vec<i64> = t
        .ask(sender, &request)
        .iter()
        .map(|v| v.as_integer().unwrap())
        .collect();
    assert_eq!(took.len(), 3);
    assert!(
        took.iter().all(|n| *n <= 4),
        "one mailbox took more than 1 MiB: {took:?}"
    );
    let total: i64 = took.iter().sum();
    assert!(
        (3..=6).contains(&total),
        "the tenant's mailboxes took {total} x 256 KiB"
    );
    t.wait_log("all of tenant `r`'s mailboxes hold");
    calm.finish(std::time::Duration::from_secs(2));
}

/// A service of an untrusted tenant that never answers holds at most
/// `MAX_UNTRUSTED_OWED` requests unanswered; the next is answered with an error at once.
#[test]
fn requests_left_unanswered_are_capped_for_untrusted_services() {
    let mut t = start(r#"tenants = { r = { launch = { "hostile/mute" } } }"#);
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let tenant = "r";
    let mute = shared.launch_in(tenant, "hostile/mute", "").unwrap();
    let cap = skywasm::service::MAX_UNTRUSTED_OWED;
    for _ in 0..cap {
        t.client.request(mute, ptype::TEXT, b"").unwrap();
    }
    let over = t.client.request(mute, ptype::TEXT, b"").unwrap();
    let answer = t
        .client
        .wait(mute, over, std::time::Duration::from_secs(20));
    assert!(
        matches!(answer, Err(skywasm::client::CallError::Failed(_))),
        "the request past the cap was not refused: {answer:?}"
    );
    t.wait_log(&format!("{cap} requests wait for this service's answers"));
    calm.finish(std::time::Duration::from_secs(2));
}

/// An untrusted tenant reads only the service scripts it may launch (and a service its
/// own), not every file on `luaservice`; a trusted one reads any.
#[test]
fn untrusted_tenants_read_only_the_scripts_they_may_launch() {
    let mut t = start_lua(
        r#"tenants = { r = { launch = { "hostile/read_script", "snlua bounds_env" } } }"#,
    );
    let shared = t.node.handle();
    let tenant = "r";
    let reader = shared.launch_in(tenant, "hostile/read_script", "").unwrap();
    let read = |t: &mut TestNode, who, script: &str| {
        let answer = t
            .client
            .call(
                who,
                ptype::TEXT,
                script.as_bytes(),
                std::time::Duration::from_secs(20),
            )
            .unwrap();
        i32::from_le_bytes(answer[..4].try_into().unwrap())
    };
    assert!(
        read(&mut t, reader, "bounds_env") > 0,
        "a script it may launch"
    );
    assert_eq!(
        read(&mut t, reader, "bounds_gate"),
        skywasm_abi::error::DENIED
    );
    t.wait_log("DENIED load_source bounds_gate: the tenant may not launch that script");
    let trusted = t.launch("hostile/read_script", "");
    assert!(
        read(&mut t, trusted, "bounds_gate") > 0,
        "a trusted service reads any"
    );
}

/// A tenant's services together log at most `tenant_log_rate` lines a second, however
/// many of them there are; the lines dropped are counted and said.
#[test]
fn a_tenants_log_lines_are_capped_together() {
    let mut t = start_lua("tenants = { r = { log_rate = 1000, tenant_log_rate = 20 } }");
    let shared = t.node.handle();
    let tenant = "r";
    let loggers: Vec<_> = (0..2)
        .map(|_| shared.launch_in(tenant, "snlua", "bounds_logger").unwrap())
        .collect();
    for logger in &loggers {
        t.ask(*logger, &[s("FLOOD"), i(200), i(100)]);
    }
    wait_until("the drop is reported", || {
        t.ask(loggers[0], &[s("NOTE"), s("AFTER")]);
        t.log_text()
            .contains("the tenant_log_rate of 20/s of tenant `r`")
    });
    let written = t.log_text().lines().filter(|l| l.ends_with("xxxx")).count();
    // The burst of 20, and what the bucket refilled while the floods ran.
    assert!(written < 100, "{written} of 400 lines were written");
}

/// By default every Lua service takes its own string-hash seed after it starts from the
/// shared snapshot: the order `pairs` visits the same keys in differs between services
/// (with one seed for all, it is the same, and colliding keys could be made for all of
/// them). The snapshot's strings keep their old hash, so every key of every table is still
/// found through a string made after the reseed. A tenant may ask for the fixed seed.
#[test]
fn two_lua_services_hash_strings_with_different_seeds() {
    let mut t = start_lua("tenants = { f = { lua_hash_seed = \"fixed\" } }");
    let orders: Vec<Vec<skywasm_pack::Value>> = (0..3)
        .map(|_| {
            let service = t.launch("snlua", "bounds_hash_order");
            let lookup = t.ask(service, &[s("LOOKUP")]);
            assert_every_key_found(&lookup);
            t.ask(service, &[s("ORDER")])
        })
        .collect();
    assert!(
        orders[0] != orders[1] || orders[1] != orders[2],
        "three services visit keys in one order: {:?}",
        orders[0]
    );
    // The fixed seed of a tenant that asks for it: one order for all.
    let shared = t.node.handle();
    let fixed = "f";
    let fixed_orders: Vec<Vec<skywasm_pack::Value>> = (0..2)
        .map(|_| {
            let service = shared
                .launch_in(fixed, "snlua", "bounds_hash_order")
                .unwrap();
            assert_every_key_found(&t.ask(service, &[s("LOOKUP")]));
            t.ask(service, &[s("ORDER")])
        })
        .collect();
    assert_eq!(fixed_orders[0], fixed_orders[1]);
}

/// A LOOKUP answer of bounds_hash_order: short and long keys checked, the first lost one.
fn assert_every_key_found(answer: &[skywasm_pack::Value]) {
    use skywasm_pack::Value;
    assert!(
        matches!(answer.get(2), None | Some(Value::Nil)),
        "a key was not found again: {answer:?}"
    );
    // The registry reaches the loaded library: hundreds of names.
    assert!(
        matches!(answer.first(), Some(Value::Integer(n)) if *n > 100),
        "too few keys walked: {answer:?}"
    );
}
