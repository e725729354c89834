//! Launch, exit, kill, traps: a fault ends at most that service, callers get errors.

use skywasm::client::CallError;
use skywasm_abi::error;

use crate::support::*;

#[test]
fn a_service_starts_and_answers() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    assert_eq!(
        t.ask(probe, &[s("echo"), i(1), s("two")]),
        vec![i(1), s("two")]
    );
    let log = t.wait_log("LAUNCH probe");
    assert!(log.contains(&format!("[{probe}] LAUNCH probe")), "{log}");
}

#[test]
fn a_trap_in_init_makes_launch_fail_for_the_caller() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    for (args, needle) in [
        ("trap", "wasm trap"),
        ("fail", "returned 1"),
        ("exit", "exited during its init"),
    ] {
        let reply = t.ask(probe, &[s("launch"), s("probe"), s(args)]);
        assert_eq!(
            reply,
            vec![skywasm_pack::Value::Nil, i(error::FAILED as i64)],
            "{args}"
        );
        t.wait_log(needle);
    }
    assert!(t.log_text().contains("FAILED launch probe trap"));
    // The launching service is unaffected.
    assert_eq!(t.ask(probe, &[s("echo"), i(7)]), vec![i(7)]);
}

#[test]
fn a_trap_in_dispatch_ends_only_that_service_and_its_callers_get_errors() {
    let mut t = start("");
    let victim = t.launch("probe", "");
    let bystander = t.launch("probe", "");
    // A caller parked on the victim (the victim holds its request) must get an error too.
    let waiter = t.launch("probe", "");
    let parked = t.request(waiter, &[s("call"), h(victim), s("hold")]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(t.call(victim, &[s("trap")]), Err(CallError::Failed(victim)));
    let outcome = t.wait(waiter, parked).unwrap();
    assert_eq!(outcome[0], s("error"), "{outcome:?}");
    let log = t.wait_log("the service is discarded");
    assert!(log.contains("unreachable"), "the log says why: {log}");
    assert!(!t.alive(victim));
    assert_eq!(t.ask(bystander, &[s("echo"), s("fine")]), vec![s("fine")]);
    assert_eq!(
        t.call(victim, &[s("echo")]),
        Err(CallError::InvalidAddress(victim))
    );
}

#[test]
fn exit_fails_pending_and_queued_callers_and_retires_the_handle() {
    let mut t = start("");
    let target = t.launch("probe", "");
    let caller = t.launch("probe", "");
    // caller parks a call on target (held, never answered), then target exits.
    let parked = t.request(caller, &[s("call"), h(target), s("hold")]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    t.client
        .send(
            target,
            skywasm_abi::ptype::LUA,
            &skywasm_pack::pack(&[s("exit")]).unwrap(),
        )
        .unwrap();
    t.wait_dead(target);
    let outcome = t.wait(caller, parked).unwrap();
    assert_eq!(
        outcome[0],
        s("error"),
        "the parked call failed: {outcome:?}"
    );
    assert_eq!(
        t.call(target, &[s("echo")]),
        Err(CallError::InvalidAddress(target))
    );
    // A new service never gets the retired handle right away.
    let next = t.launch("probe", "");
    assert_ne!(next, target);
}

#[test]
fn requests_queued_behind_a_dying_message_get_errors() {
    let mut t = start("");
    let target = t.launch("probe", "");
    let lua = skywasm_abi::ptype::LUA;
    // Keep the target busy, queue three requests behind, then make it trap.
    t.client
        .send(
            target,
            lua,
            &skywasm_pack::pack(&[s("busy"), i(150)]).unwrap(),
        )
        .unwrap();
    t.client
        .send(target, lua, &skywasm_pack::pack(&[s("trap")]).unwrap())
        .unwrap();
    let queued: Vec<i32> = (0..3).map(|_| t.request(target, &[s("echo")])).collect();
    for session in queued {
        assert_eq!(t.wait(target, session), Err(CallError::Failed(target)));
    }
}

#[test]
fn kill_stops_a_service_stuck_in_an_endless_loop() {
    let mut t = start("");
    let spinner = t.launch("probe", "");
    let killer = t.launch("probe", "");
    assert_eq!(
        t.ask(spinner, &[s("spin")]),
        Vec::<skywasm_pack::Value>::new()
    );
    let reply = t.ask(killer, &[s("command"), s("KILL"), s(&spinner.to_string())]);
    assert_eq!(reply, vec![s("")]);
    t.wait_dead(spinner);
    t.wait_log("was stopped while running a message");
    assert_eq!(t.ask(killer, &[s("echo"), i(3)]), vec![i(3)]);
}

#[test]
fn signal_0_interrupts_a_running_message() {
    let mut t = start("");
    let spinner = t.launch("probe", "");
    let other = t.launch("probe", "");
    t.ask(spinner, &[s("spin")]);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let reply = t.ask(other, &[s("command"), s("SIGNAL"), s(&spinner.to_string())]);
    assert_eq!(reply, vec![s("")]);
    t.wait_dead(spinner);
    t.wait_log("interrupted");
}

#[test]
fn stack_overflow_and_memory_bombs_end_only_the_offender() {
    let mut t = start("wasm_memory = \"16M\"");
    let bystander = t.launch("probe", "");
    for what in ["recurse", "alloc_bomb"] {
        let victim = t.launch("probe", "");
        let result = t.call(victim, &[s(what), i(10_000_000)]);
        assert_eq!(result, Err(CallError::Failed(victim)), "{what}");
        t.wait_dead(victim);
    }
    assert_eq!(t.ask(bystander, &[s("echo"), i(5)]), vec![i(5)]);
}

#[test]
fn the_exit_monitor_hears_about_every_exit() {
    let mut t = start("");
    let me = t.client.handle();
    let probe = t.launch("probe", "");
    t.ask(probe, &[s("command"), s("MONITOR"), s(&me.to_string())]);
    let reply = t.ask(probe, &[s("command"), s("MONITOR"), s("")]);
    assert_eq!(reply, vec![s(&format!(":{:x}", me.0))]);
    let doomed = t.launch("probe", "");
    let _ = t.call(doomed, &[s("trap")]);
    // Other services may exit meanwhile (bootstrap does); wait for the doomed one's notice.
    let notice = loop {
        let m = t.client.recv(WAIT).expect("an exit notice");
        if m.ptype as u32 == skywasm_abi::ptype::CLIENT && m.source == doomed {
            break m;
        }
    };
    assert_eq!(notice.session, 0);
    assert!(notice.data.is_empty());
}

#[test]
fn abort_stops_the_node() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let _ = t.call(probe, &[s("command"), s("ABORT"), s("")]);
    assert!(t.node.wait_timeout(WAIT), "ABORT stops the node");
    t.node.stop();
    assert!(t.log_text().contains("ABORT"));
}

#[test]
fn stopping_the_node_interrupts_a_service_stuck_in_a_loop() {
    let mut t = start("");
    let spinner = t.launch("probe", "");
    t.ask(spinner, &[s("spin")]);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let started = std::time::Instant::now();
    t.node.stop();
    assert!(started.elapsed() < WAIT, "stop returned");
}

#[test]
fn exit_lets_the_current_message_finish() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    // KILL of itself is an EXIT: the message that asked goes on and answers.
    let reply = t.ask(probe, &[s("command"), s("KILL"), s(&probe.to_string())]);
    assert_eq!(reply, vec![s("")]);
    t.wait_dead(probe);
    let other = t.launch("probe", "");
    let reply = t.ask(other, &[s("command"), s("SIGNAL"), s(&other.to_string())]);
    assert_eq!(
        reply[1],
        i(error::INVALID_ARGUMENT as i64),
        "no signal to oneself"
    );
}

#[test]
fn kill_stops_a_service_looping_in_its_init_and_the_launch_fails() {
    let t = start("");
    let shared = t.node.handle();
    let launcher = std::thread::spawn(move || shared.launch("probe", "spin"));
    let deadline = std::time::Instant::now() + WAIT;
    let stuck = loop {
        let found = t
            .node
            .handle()
            .services()
            .into_iter()
            .find(|s| s.args == "spin");
        if let Some(service) = found {
            break service.handle;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the launch never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(t.node.handle().kill(stuck));
    let result = launcher.join().unwrap();
    assert!(result.is_err(), "{result:?}");
    t.wait_log("FAILED launch probe spin");
}

#[test]
fn a_signal_to_a_busy_service_is_delivered_after_its_message() {
    let mut t = start("");
    let busy = t.launch("probe", "");
    let other = t.launch("probe", "");
    let session = t.request(busy, &[s("busy"), i(200)]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let reply = t.ask(other, &[s("command"), s("SIGNAL"), s(&format!("{busy} 1"))]);
    assert_eq!(reply, vec![s("")]);
    assert_eq!(
        t.wait(busy, session).unwrap(),
        Vec::<skywasm_pack::Value>::new()
    );
    // The probe has no skywasm_signal export: the signal is a no-op, the service lives on.
    assert_eq!(t.ask(busy, &[s("echo"), i(1)]), vec![i(1)]);
}

/// Past the fast pool (`wasm_fast_services`) services run in the overflow tiers, wide
/// (`wasm_wide_services`) then checked, up to `wasm_max_services` (issue 24, item 3): Lua
/// and WAT modules, a module first compiled (and pre-initialized) while the pool is full,
/// slots given back and taken again.
#[test]
fn services_past_the_fast_pool_run_on_the_overflow_engine() {
    let mut t = start_lua(
        "wasm_fast_services = 3\nwasm_wide_services = 5\nwasm_max_services = 48\n\
         wasm_cache = false",
    );
    // The bootstrap, the launcher and the start service hold the pool's three slots
    // before anything below starts; snlua is compiled and pre-initialized now.
    let pongs: Vec<_> = (0..24).map(|_| t.launch("snlua", "pong")).collect();
    let echo = t.launch("echo", "");
    for (n, pong) in pongs.iter().enumerate() {
        let reply = t.ask(*pong, &[s("PING"), i(n as i64)]);
        assert_eq!(reply, vec![s("PONG"), i(1), i(n as i64)]);
    }
    let body = skywasm_pack::pack(&[s("x")]).unwrap();
    let reply = t.client.call(echo, skywasm_abi::ptype::LUA, &body, WAIT);
    assert_eq!(reply.ok(), Some(body));
    for pong in &pongs[..12] {
        t.node.handle().kill(*pong);
    }
    for pong in &pongs[..12] {
        t.wait_dead(*pong);
    }
    let again: Vec<_> = (0..12).map(|_| t.launch("snlua", "pong")).collect();
    for pong in again {
        assert_eq!(t.ask(pong, &[s("PING")])[0], s("PONG"));
    }
    // What the node may hold in all is still a limit.
    let over = (0..40).find_map(|_| t.node.handle().launch("snlua", "pong").err());
    let over = over.expect("wasm_max_services bounds the services");
    assert!(
        over.to_string().contains("LIMIT") || over.to_string().contains("limit"),
        "{over}"
    );
}
