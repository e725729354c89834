//! The hostile suite: what a guest makes the *host* do — WASI calls, nested executions,
//! pre-initialization, host panics, node stop — is bounded, and every attack ends at most
//! the attacker (docs/tenants.md, *Threat model*). Each attack runs while a calm pair of the
//! node's own tenant is checked to keep answering, and ends with a node stop that must
//! finish without abandoning anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skywasm::client::CallError;
use skywasm::node::{NodeHandle, ServiceInfo};
use skywasm::service::{Behavior, Fault, ServiceCore};
use skywasm::Handle;
use skywasm_abi::ptype;

use crate::support::*;

/// Stops the node and checks that the stop ended every service without abandoning one.
fn stop_cleanly(t: &mut TestNode) {
    let report = t.node.stop();
    assert_eq!(report.exit_code(), 0, "{report:?}\n{}", t.log_text());
}

/// Two untrusted tenants, `r1` and `r2`, under a 200 ms CPU limit; `extra` adds lines.
fn start_two_tenants(tenant_keys: &str, extra: &str) -> TestNode {
    start(&format!(
        "tenants = {{ r1 = {{ cpu = 200, {tenant_keys} }}, r2 = {{ cpu = 200, {tenant_keys} }} }}\n{extra}"
    ))
}

/// The live services of the node for which `which` holds.
fn services_where(node: &NodeHandle, which: impl Fn(&ServiceInfo) -> bool) -> Vec<Handle> {
    node.services()
        .into_iter()
        .filter(|service| which(service))
        .map(|service| service.handle)
        .collect()
}

/// A request to a WAT attacker whose answer is little-endian i32s.
fn ask_words(t: &mut TestNode, dest: Handle, body: &[u8]) -> Result<Vec<i32>, CallError> {
    let reply = t.client.call(dest, ptype::TEXT, body, WAIT)?;
    Ok(reply
        .chunks_exact(4)
        .map(|w| i32::from_le_bytes(w.try_into().unwrap()))
        .collect())
}

const ENOTSUP: i32 = 58;

/// Point 1 of issue 20: `poll_oneoff` with one monotonic clock and a timeout of 2^63-1 ns,
/// from an init and from a message, in two untrusted tenants at once on a two-worker node.
/// It used to hold each worker forever; now the wait is refused at once (it is longer than
/// the CPU limit) and logged, and a short wait works and is charged.
#[test]
fn a_wasi_sleep_forever_is_refused_at_once_in_two_tenants() {
    let mut t = start_two_tenants(
        r#"start = { "hostile/wasi_sleep forever", "hostile/wasi_sleep forever" }"#,
        "",
    );
    let calm = Calm::start(&t.node.handle());
    let forever = (i64::MAX as u64).to_le_bytes();
    let mut attackers = Vec::new();
    for name in ["r1", "r2"] {
        let tenant = name;
        for _ in 0..2 {
            let sleeper = t
                .node
                .handle()
                .launch_in(tenant, "hostile/wasi_sleep", "")
                .expect("the sleeper starts");
            attackers.push(sleeper);
        }
    }
    // Every request is answered: refused (a wait would answer an event), no event.
    for &sleeper in &attackers {
        assert_eq!(ask_words(&mut t, sleeper, &forever).unwrap(), [ENOTSUP, 0]);
    }
    // Four in messages, four in inits.
    let log = t.wait_log_count("poll_oneoff: a wait of", 8);
    assert!(log.contains("refused with ENOTSUP"), "{log}");
    assert!(
        log.contains("tenant `r1`") && log.contains("tenant `r2`"),
        "{log}"
    );
    // The init attackers started, and serve (a wait of 0 is an event at once).
    let inits = services_where(&t.node.handle(), |s| s.args == "forever");
    assert_eq!(inits.len(), 4, "{log}");
    for init in inits {
        assert_eq!(
            ask_words(&mut t, init, &0u64.to_le_bytes()).unwrap(),
            [0, 1]
        );
    }
    // A wait that fits in the CPU limit happens, and lasts.
    let started = Instant::now();
    let short = 20_000_000u64.to_le_bytes();
    assert_eq!(ask_words(&mut t, attackers[0], &short).unwrap(), [0, 1]);
    assert!(started.elapsed() >= Duration::from_millis(20));
    calm.finish(Duration::from_secs(2));
    stop_cleanly(&mut t);
}

/// A wait that fits in the CPU limit is cut short by `KILL`, and by node stop: five seconds
/// asked, under a ten-second limit, end long before.
#[test]
fn a_wasi_wait_is_interrupted_by_kill_and_by_stop() {
    let mut t = start("tenants = { r1 = { cpu = 10000 } }");
    let r1 = "r1";
    let shared = t.node.handle();
    let five_seconds = 5_000_000_000u64.to_le_bytes();
    let sleeper = shared.launch_in(r1, "hostile/wasi_sleep", "").unwrap();
    let session = t
        .client
        .request(sleeper, ptype::TEXT, &five_seconds)
        .unwrap();
    t.wait_log("about to wait");
    let killed = Instant::now();
    assert!(shared.kill(sleeper));
    assert!(matches!(
        t.client.wait(sleeper, session, WAIT),
        Err(CallError::Failed(_))
    ));
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "KILL did not end the wait"
    );
    let log = t.wait_log("was stopped while running a message");
    assert!(log.contains("interrupted"), "{log}");
    let second = shared.launch_in(r1, "hostile/wasi_sleep", "").unwrap();
    t.client
        .request(second, ptype::TEXT, &five_seconds)
        .unwrap();
    t.wait_log_count("about to wait", 2);
    let stopping = Instant::now();
    stop_cleanly(&mut t);
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "the stop waited for the wait"
    );
}

/// Point 2 of issue 20: 300 idle services whose signal handler recurses thousands of frames
/// and then signals the next one. Signals used to run on the sender's thread, inside its
/// frames, and the chain overflowed the worker's native stack (the process died). Now each
/// signal is delivered by a worker like a message: the chain completes, one level at a time.
#[test]
fn a_signal_chain_runs_one_service_at_a_time() {
    let mut t = start_two_tenants("", "wasm_max_services = 700");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let mut chains = Vec::new();
    // One tenant with 300; then both tenants with 150 each, at once.
    for (names, length) in [(&["r1"][..], 300), (&["r1", "r2"][..], 150)] {
        let mut heads = Vec::new();
        for name in names {
            let tenant = name;
            let mut next = String::new();
            let mut members = Vec::new();
            for _ in 0..length {
                let service = shared
                    .launch_in(tenant, "hostile/signal_chain", &next)
                    .expect("a chain member starts");
                next = service.to_string();
                members.push(service);
            }
            heads.push(*members.last().unwrap());
            chains.push(members);
        }
        for head in heads {
            assert!(shared.signal(head, 3000));
        }
        for members in &chains {
            let tail = members[0];
            let deadline = Instant::now() + WAIT;
            while ask_words(&mut t, tail, b"").unwrap() != [1] {
                assert!(Instant::now() < deadline, "the chain never reached its end");
                std::thread::sleep(Duration::from_millis(10));
            }
            for &member in members {
                assert_eq!(ask_words(&mut t, member, b"").unwrap(), [1]);
            }
        }
        for members in chains.drain(..) {
            for member in members {
                shared.kill(member);
            }
        }
    }
    calm.finish(Duration::from_secs(2));
    stop_cleanly(&mut t);
}

/// The deepest recursion `hostile/launch_chain`'s init can make without a stack overflow
/// (its wasm stack is 512 KiB): found by bisection, launching it with deeper and shallower
/// recursion.
fn deepest_recursion(shared: &NodeHandle) -> u32 {
    let (mut fits, mut overflows) = (1_000u32, 400_000u32);
    while overflows - fits > fits / 50 {
        let depth = fits + (overflows - fits) / 2;
        match shared.launch("hostile/launch_chain", &format!("{depth} 0 0")) {
            Ok(service) => {
                shared.kill(service);
                fits = depth;
            }
            Err(e) => {
                assert!(e.to_string().contains("call stack exhausted"), "{e}");
                overflows = depth;
            }
        }
    }
    fits
}

/// Launch nesting at its bound, every level at full wasm stack: a message recursing to the
/// bottom of its wasm stack LAUNCHes a service whose init does the same, 16 times (the
/// limit); all 17 levels fit the worker's native stack, and a 17th launch is refused.
#[test]
fn launches_nested_to_the_limit_at_full_wasm_stack_fit_the_native_stack() {
    let mut t = start("");
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let depth = deepest_recursion(&shared) * 95 / 100;
    let root = shared.launch("hostile/launch_chain", "").unwrap();
    let mark = t.log_text().len();
    let bottom = ask_words(&mut t, root, format!("{depth} 16 0").as_bytes()).unwrap();
    assert!(bottom[0] >= 0, "{}", t.log_text());
    let log = t.wait_log_count("nested launch ok", 16);
    let chain = &log[mark..];
    assert!(chain.contains("bottom reached"), "{chain}");
    assert!(!chain.contains("nested launch failed"), "{chain}");
    let mark = log.len();
    let refused = ask_words(&mut t, root, format!("{depth} 17 0").as_bytes()).unwrap();
    assert!(refused[0] >= 0, "the root's own launch goes through");
    let log = t.wait_log("launch nested more than 16 deep");
    let chain = &log[mark..];
    assert!(chain.contains("nested launch failed"), "{chain}");
    assert!(!chain.contains("bottom reached"), "{chain}");
    assert!(!t.node.handle().is_stopping());
    calm.finish(Duration::from_secs(5));
    stop_cleanly(&mut t);
}

/// A launch inside a message shares that message's CPU budget: eight nested inits that
/// each burn 200 ms under a 300 ms limit end at the second level (each used to get a whole
/// limit of its own: 1.8 s on one worker for one message).
#[test]
fn nested_launches_share_the_cpu_budget_of_the_message_that_started_them() {
    let mut t = start(
        r#"tenants = { r1 = { cpu = 300, launch = { "hostile/launch_chain" } },
                       r2 = { cpu = 300, launch = { "hostile/launch_chain" } } }"#,
    );
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    for name in ["r1", "r2"] {
        let root = shared.launch_in(name, "hostile/launch_chain", "").unwrap();
        let answer = ask_words(&mut t, root, b"10 8 20");
        // The root either answers the failed launch or is itself past its limit when the
        // nested init returns; never does the chain run to its end.
        if let Ok(words) = answer {
            assert!(
                words[0] < 0,
                "the nested launch succeeded: {}",
                t.log_text()
            );
        }
    }
    let log = t.wait_log("the CPU limit left to the call it runs inside");
    assert!(!log.contains("bottom reached"), "{log}");
    assert!(log.matches("nested launch ok").count() <= 2, "{log}");
    calm.finish(Duration::from_secs(3));
    stop_cleanly(&mut t);
}

/// `KILL` of a service stops the init of a service it is launching inside its message
/// (the init shares the message's budget, and now its interruption too): a five-second
/// init under a ten-second limit ends long before.
#[test]
fn kill_of_a_service_stops_the_init_it_runs_inside_its_message() {
    let mut t = start(r#"tenants = { r1 = { cpu = 10000, launch = { "hostile/launch_chain" } } }"#);
    let shared = t.node.handle();
    let root = shared.launch_in("r1", "hostile/launcher", "").unwrap();
    let session = t
        .client
        .request(root, ptype::TEXT, b"hostile/launch_chain 10 0 500")
        .unwrap();
    t.wait_log("running");
    let killed = Instant::now();
    assert!(shared.kill(root));
    // The launch fails at once; the killed service may still answer that before it ends.
    match t.client.wait(root, session, WAIT) {
        Err(CallError::Failed(_)) => {}
        Ok(reply) => assert!(i32::from_le_bytes(reply[..4].try_into().unwrap()) < 0),
        Err(e) => panic!("{e}"),
    }
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "the nested init ran on after KILL"
    );
    t.wait_dead(root);
    let log = t.wait_log("FAILED launch hostile/launch_chain");
    assert!(log.contains("interrupted"), "{log}");
    stop_cleanly(&mut t);
}

/// Point 3 of issue 20: pre-initialization runs within the asking tenant's CPU limit and
/// memory; while one tenant's loops, another module loads; node stop ends it.
#[test]
fn pre_initialization_is_bounded_in_time_and_memory() {
    let mut t = start(
        r#"tenants = { r1 = { cpu = 300, memory = "8M", tenant_memory = "4M",
                              launch = { "hostile/preinit_loop" } },
                       slow = { cpu = 60000 } }"#,
    );
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let failure = shared
        .launch_in("r1", "hostile/preinit_loop", "")
        .expect_err("a pre-initialization that loops fails");
    let text = failure.to_string();
    assert!(
        text.contains("pre-initialization failed")
            && text.contains("ran past its CPU limit of 300 ms"),
        "{text}"
    );
    // A memory bomb in pre-initialization is held to the tenant's limits: its memory
    // counts against the 4 MiB of all the tenant's services while it runs.
    let grown = shared
        .launch_in("r1", "hostile/preinit_grow", "")
        .expect("the memory bomb's snapshot starts");
    let pages = ask_words(&mut t, grown, b"").unwrap()[0];
    assert!(pages > 1 && pages <= 64, "{pages} pages of 64 KiB");
    // A tenant allowed a minute loops in pre-initialization on its own thread; another
    // module loads meanwhile: the load holds no lock other loads wait on.
    let looping = {
        let shared = shared.clone();
        let slow = "slow";
        std::thread::Builder::new()
            .stack_size(skywasm_test_stack())
            .spawn(move || {
                shared
                    .launch_in(slow, "hostile/preinit_loop", "")
                    .map(|_| ())
            })
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(200));
    let other = shared
        .launch("hostile/wasi_sleep", "")
        .expect("another module loads while the loop runs");
    assert!(t.alive(other));
    // A launch of the same module from inside a message waits for that load at most what
    // is left of the message's CPU limit, then fails.
    let launcher = shared.launch_in("r1", "hostile/launcher", "").unwrap();
    let code = ask_words(&mut t, launcher, b"hostile/preinit_loop").unwrap()[0];
    assert!(code < 0, "{}", t.log_text());
    t.wait_log("is still being compiled");
    assert!(!looping.is_finished(), "the slow loop ended early");
    calm.finish(Duration::from_secs(2));
    // Node stop ends the loop at its next epoch tick.
    stop_cleanly(&mut t);
    let stopped = looping
        .join()
        .unwrap()
        .expect_err("the stop ended the loop");
    assert!(
        stopped.to_string().contains("the node is stopping"),
        "{stopped}"
    );
}

/// An upgrade costs at most one CPU limit: the old code's snapshot and the new code's
/// start share it, so 600 ms in each under a 1 s limit fails the upgrade, and the old code
/// serves on.
#[test]
fn an_upgrade_runs_within_one_cpu_limit() {
    let mut t = start(r#"tenants = { r1 = { cpu = 1000, launch = { "hostile/slow_upgrade" } } }"#);
    let calm = Calm::start(&t.node.handle());
    let shared = t.node.handle();
    let target = shared.launch_in("r1", "hostile/slow_upgrade", "").unwrap();
    let request = skywasm::lifecycle::upgrade::UpgradeRequest {
        module: "hostile/slow_upgrade".into(),
        args: "spin".into(),
        requester: Handle::NONE,
        session: 0,
    };
    shared.request_upgrade(target, request).unwrap();
    let log = t.wait_log("UPGRADE hostile/slow_upgrade spin");
    assert!(
        log.contains("failed: the new code did not start") && log.contains("CPU limit"),
        "{log}"
    );
    assert!(t.alive(target), "the old code no longer serves");
    calm.finish(Duration::from_secs(2));
    stop_cleanly(&mut t);
}

/// Native stack for threads of the test that launch services directly (their inits run on
/// the launching thread).
fn skywasm_test_stack() -> usize {
    32 << 20
}

/// A native service whose code does what a host bug would: panic while serving a message.
struct Panicker {
    core: ServiceCore,
}

impl Behavior for Panicker {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: skywasm::mq::Message) -> Result<(), Fault> {
        if &*message.data == b"panic" {
            panic!("a host bug reached from a message");
        }
        let response = skywasm_abi::ptype::RESPONSE as u8;
        let _ = self.core.send(
            message.source,
            response,
            message.session,
            message.data.into_vec().into(),
        );
        Ok(())
    }
}

/// Point 4 of issue 20: a panic in host code while serving a service ends that service as
/// a fault — its caller gets an error, the log names it — and the worker serves on.
#[test]
fn a_host_panic_ends_that_service_and_the_workers_serve_on() {
    let mut t = start("");
    let shared = t.node.handle();
    shared.add_native("panicker", |core, _| {
        Ok(Box::new(Panicker { core }) as Box<dyn Behavior>)
    });
    let calm = Calm::start(&shared);
    // More panics than workers: none may take a worker with it.
    for _ in 0..4 {
        let victim = shared.launch("panicker", "").unwrap();
        assert_eq!(
            t.client.call(victim, ptype::TEXT, b"hello", WAIT).unwrap(),
            b"hello"
        );
        assert!(matches!(
            t.client.call(victim, ptype::TEXT, b"panic", WAIT),
            Err(CallError::Failed(_))
        ));
        t.wait_dead(victim);
    }
    let log = t.wait_log_count("host panic: a host bug reached from a message", 4);
    assert!(log.contains("service `panicker ` (tenant `node`)"), "{log}");
    assert!(!shared.is_stopping(), "{log}");
    calm.finish(Duration::from_secs(2));
    stop_cleanly(&mut t);
}

/// A host panic inside a launch nested in a message (the new service's init panics) ends
/// the launching service and the half-started one; cleanup that locks shared state while
/// the panic unwinds does not count as leaving it unknown: the node runs on.
#[test]
fn a_host_panic_in_a_nested_launch_ends_both_services_and_the_node_runs_on() {
    let mut t = start("");
    let shared = t.node.handle();
    shared.add_native("panic_init", |_, _| panic!("a host bug in an init"));
    let calm = Calm::start(&shared);
    let launcher = shared.launch("hostile/launcher", "").unwrap();
    assert!(matches!(
        t.client.call(launcher, ptype::TEXT, b"panic_init", WAIT),
        Err(CallError::Failed(_))
    ));
    t.wait_dead(launcher);
    let log = t.wait_log("host panic: a host bug in an init");
    assert!(log.contains("`hostile/launcher `"), "{log}");
    assert!(!shared.is_stopping(), "{log}");
    // No half-started service is left.
    let left_over = services_where(&shared, |s| s.module == "panic_init");
    assert!(left_over.is_empty(), "{left_over:?}");
    // Launching works on.
    let again = shared.launch("hostile/launcher", "").unwrap();
    let code = ask_words(&mut t, again, b"echo").unwrap()[0];
    assert!(code >= 0, "{}", t.log_text());
    calm.finish(Duration::from_secs(2));
    stop_cleanly(&mut t);
}

/// A native service stuck in host code nothing interrupts (a blocking call); it says when
/// it is.
struct Stuck {
    core: ServiceCore,
    entered: Arc<AtomicBool>,
}

impl Behavior for Stuck {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, _: skywasm::mq::Message) -> Result<(), Fault> {
        self.entered.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    }
}

/// Node stop ends within its grace period whatever a service does, abandons the worker
/// stuck in it, names the service, and says so in the exit status.
#[test]
fn node_stop_abandons_a_worker_stuck_in_host_code() {
    let mut t = start("");
    let shared = t.node.handle();
    let entered = Arc::new(AtomicBool::new(false));
    let flag = entered.clone();
    shared.add_native("stuck", move |core, _| {
        let entered = flag.clone();
        Ok(Box::new(Stuck { core, entered }) as Box<dyn Behavior>)
    });
    let stuck = shared.launch("stuck", "").unwrap();
    t.client.send(stuck, ptype::TEXT, b"block").unwrap();
    let deadline = Instant::now() + WAIT;
    while !entered.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "the stuck service never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let report = t.node.stop();
    assert!(started.elapsed() < skywasm::node::STOP_GRACE + WAIT);
    assert_eq!(report.exit_code(), 2, "{report:?}");
    assert_eq!(report.abandoned.len(), 1, "{report:?}");
    assert!(report.abandoned[0].contains("`stuck `"), "{report:?}");
    assert!(t.log_text().contains("did not stop within 5 s"));
}

/// Every WASI preview 1 function links with its exact signature, and each answers as
/// docs/abi.md §8 says: no files, no sockets, no arguments, stdout to the log.
#[test]
fn wasi_imports_link_and_answer_honestly() {
    let mut t = start("");
    let shared = t.node.handle();
    let wasi = shared
        .launch("hostile/wasi_all", "")
        .expect("every import links");
    let answers = ask_words(&mut t, wasi, b"").unwrap();
    let expected = [
        ("args_sizes_get", 0),
        ("argc", 0),
        ("environ_sizes_get", 0),
        ("environ count", 0),
        ("clock_time_get realtime", 0),
        ("clock_time_get cputime", 28),
        ("random_get", 0),
        ("fd_prestat_get 3", 8),
        ("path_open on fd 3", 8),
        ("path_open on stdin", 54),
        ("fd_read stdin", 0),
        ("bytes read", 0),
        ("fd_write stdout", 0),
        ("bytes written", 16),
        ("fd_seek stdout", 70),
        ("fd_write fd 9", 8),
        ("fd_write 1025 buffers", 28),
        ("sock_accept 3", 8),
        ("sched_yield", 0),
        ("fd_close stderr", 0),
        ("fd_write closed stderr", 8),
    ];
    let named: Vec<(&str, i32)> = expected
        .iter()
        .zip(&answers)
        .map(|((name, _), got)| (*name, *got))
        .collect();
    assert_eq!(named, expected.to_vec());
    t.wait_log("hello from wasi");
    // proc_exit ends the service like a trap.
    assert!(matches!(
        t.client.call(wasi, ptype::TEXT, b"exit", WAIT),
        Err(CallError::Failed(_))
    ));
    let log = t.wait_log("exited with code 3 (proc_exit)");
    assert!(log.contains("the service is discarded"), "{log}");
    stop_cleanly(&mut t);
}
