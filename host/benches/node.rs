//! Node-level benchmarks (BENCHMARKS.md): call round trips, one-way sends, many callers on
//! one service, spawn rate and memory per idle service, and the native floor (two threads
//! over a channel). Each figure is the median of several runs, each on a fresh node.
//!
//! `cargo bench --bench node` runs everything (cargo passes `--bench`); `cargo test
//! --benches` runs each scenario once, small, as a smoke test; `-- NAME` runs only scenarios
//! whose name contains NAME (`calls`, `sends`, `fanin`, `rust-spawn`, `native`, `100k`,
//! `lua-coroutine`, `lua-calls`, `lua-sends`, `lua-spawn`, `net-echo`, `net-accept`,
//! `noisy`, `upgrade`, `cluster`, `harbor`, `lua-100k`).
//!
//! `vs-skynet` runs the same Lua scripts (tests/lua/cmp_*.lua) on the `skywasm` binary and
//! on real skynet (`SKYWASM_SKYNET`, DEVELOPERS.md), alternately, one fresh process per
//! figure, and prints the medians and the per-round ratios; without skynet it says so.
//! `harbor` runs the same Lua services on two skywasm nodes and, when `SKYWASM_SKYNET`
//! names a built skynet (DEVELOPERS.md), on two real skynet nodes in the same rounds, and
//! prints the medians of the per-round ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use skywasm::client::Client;
use skywasm::config::NodeConfig;
use skywasm::node::Node;
use skywasm::Handle;
use skywasm_abi::ptype;
use skywasm_pack::Value;

const LIMIT: Duration = Duration::from_secs(600);

struct Bench {
    node: Node,
    client: Client,
}

fn node(extra: &str) -> Bench {
    // BENCH_THREADS overrides the worker count for experiments; the reported figures use 2.
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    // BENCH_EXTRA appends config lines, e.g. `wasm_profiler = "perfmap"` for `perf record`.
    let extra = format!(
        "{extra}\n{}",
        std::env::var("BENCH_EXTRA").unwrap_or_default()
    );
    // The drivers run a whole benchmark in one message (10,000 launches, a million calls):
    // the per-message CPU limit (1 s by default) is lifted so that a slow run is not
    // aborted by it on this noisy machine.
    let config = format!(
        "thread = {threads}\nharbor = 0\nbootstrap = \"bootstrap\"\nstart = \"bench echo\"\nlogger = \"/dev/null\"\n\
         wasm_path = \"{}/?.wasm;{}/../tests/wat/?.wat\"\nwasm_memory = \"16M\"\nwasm_max_services = 2000\n\
         cpu_limit = 600000\n{extra}\n",
        PathBuf::from(env!("SKYWASM_GUEST_DIR")).display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let config = NodeConfig::from_source("bench.config", &config).expect("bench config");
    let node = Node::start(config).expect("node starts");
    let client = Client::new(&node.handle()).expect("client");
    Bench { node, client }
}

impl Bench {
    fn launch(&self, args: &str) -> Handle {
        self.node
            .handle()
            .launch("bench", args)
            .expect("launch bench")
    }

    fn lua(&mut self, dest: Handle, values: &[Value]) -> Vec<Value> {
        let body = skywasm_pack::pack(values).unwrap();
        let reply = self
            .client
            .call(dest, ptype::LUA, &body, LIMIT)
            .expect("bench call");
        skywasm_pack::unpack(&reply).unwrap()
    }

    fn request(&mut self, dest: Handle, values: &[Value]) -> i32 {
        let body = skywasm_pack::pack(values).unwrap();
        self.client.request(dest, ptype::LUA, &body).unwrap()
    }
}

fn h(handle: Handle) -> Value {
    Value::Integer(handle.0 as i64)
}

/// (a) Sequential call round trips between two Rust services; calls per second.
fn calls(n: i64) -> f64 {
    let mut b = node("");
    let echo = b.launch("echo");
    let pinger = b.launch("pinger");
    let reply = b.lua(pinger, &[Value::from("run"), h(echo), Value::Integer(n)]);
    let nanos = reply[0].as_integer().unwrap() as f64;
    n as f64 / (nanos / 1e9)
}

/// (b) One-way sends delivered per second, one sender to one sink.
fn sends(n: i64) -> f64 {
    // The whole flood may be queued at once: lift the mailbox limit above it.
    let mut b = node(&format!("mailbox_limit = {}", n + 10));
    let sink = b.launch("sink");
    let sender = b.launch("sender");
    let expect = b.request(sink, &[Value::from("expect"), Value::Integer(n)]);
    let started = Instant::now();
    b.lua(sender, &[Value::from("flood"), h(sink), Value::Integer(n)]);
    b.client.wait(sink, expect, LIMIT).expect("all delivered");
    n as f64 / started.elapsed().as_secs_f64()
}

/// (c) `callers` services each making `each` sequential calls to one service; calls/s.
fn fanin(callers: usize, each: i64) -> f64 {
    let mut b = node(&format!("wasm_max_services = {}", callers + 100));
    let echo = b.launch("echo");
    let pingers: Vec<Handle> = (0..callers).map(|_| b.launch("pinger")).collect();
    let started = Instant::now();
    let sessions: Vec<(Handle, i32)> = pingers
        .iter()
        .map(|p| {
            (
                *p,
                b.request(*p, &[Value::from("run"), h(echo), Value::Integer(each)]),
            )
        })
        .collect();
    for (pinger, session) in sessions {
        b.client.wait(pinger, session, LIMIT).expect("fan-in run");
    }
    (callers as f64 * each as f64) / started.elapsed().as_secs_f64()
}

/// The process's PSS in KiB, after handing the allocator's free memory back to the system:
/// earlier rounds' freed nodes would otherwise be reused unseen and hide what new services
/// cost.
fn settled_pss_kib() -> f64 {
    trim_heap();
    memory_kib("Pss:", "/proc/self/smaps_rollup")
}

fn trim_heap() {
    // SAFETY: malloc_trim only returns free memory of glibc's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn memory_kib(field: &str, file: &str) -> f64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

struct Spawned {
    per_second: f64,
    rss_per_service_kib: f64,
    pss_per_service_kib: f64,
    answered: usize,
    /// Spawns/s of a second round into the slots the first round's services left (when
    /// asked for): a node that churns services reuses warm slots.
    respawn_per_second: Option<f64>,
    /// Milliseconds one metrics reading (what `/metrics` serves) takes with the services
    /// live: the median of 5.
    reading_ms: f64,
}

/// Asks `spawner` to launch `n` services of `module args`; spawns/s and the handle range.
fn spawn_round(
    b: &mut Bench,
    spawner: Handle,
    n: i64,
    module: &str,
    args: &str,
) -> (f64, u32, u32) {
    let reply = b.lua(
        spawner,
        &[
            Value::from("spawn"),
            Value::Integer(n),
            Value::from(module),
            Value::from(args),
        ],
    );
    let nanos = reply[0].as_integer().unwrap() as f64;
    (
        n as f64 / (nanos / 1e9),
        reply[1].as_integer().unwrap() as u32,
        reply[2].as_integer().unwrap() as u32,
    )
}

/// (d) Spawn `n` idle Rust services from one service; rate, memory per service, and a call
/// to a sample of them (every one of them when `call_all`). With `respawn`, the services are
/// then killed and, once every one is gone, `n` more are spawned into the freed slots.
fn spawn(n: i64, call_all: bool, respawn: bool) -> Spawned {
    let mut b = node(&format!("wasm_max_services = {}", n + 100));
    let spawner = b.launch("spawner");
    // Warm: one spawn so the module is compiled and the first pool slot touched.
    b.lua(spawner, &[Value::from("spawn"), Value::Integer(1)]);
    let pss_before = settled_pss_kib();
    let rss_before = memory_kib("VmRSS:", "/proc/self/status");
    // BENCH_SPAWN="module args" spawns another module (e.g. the WAT `echo`) for comparison.
    let what = std::env::var("BENCH_SPAWN").unwrap_or_else(|_| "bench idle".into());
    let (module, args) = what.split_once(' ').unwrap_or((what.as_str(), ""));
    let (per_second, first, last) = spawn_round(&mut b, spawner, n, module, args);
    let rss_after = memory_kib("VmRSS:", "/proc/self/status");
    let pss_after = memory_kib("Pss:", "/proc/self/smaps_rollup");
    let handles: Vec<Handle> = b
        .node
        .handle()
        .services()
        .into_iter()
        .filter(|s| s.module == module && s.args == args && (first..=last).contains(&s.handle.0))
        .map(|s| s.handle)
        .collect();
    assert_eq!(handles.len() as i64, n, "every spawned service is alive");
    let step = if call_all {
        1
    } else {
        (handles.len() / 100).max(1)
    };
    let mut answered = 0;
    for handle in handles.iter().step_by(step) {
        b.client
            .call(*handle, ptype::TEXT, b"", LIMIT)
            .expect("an idle service answers");
        answered += 1;
    }
    let readings: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let text = b.node.handle().metrics_text().expect("a reading");
            std::hint::black_box(text);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let reading_ms = median(readings).0;
    let respawn_per_second = respawn.then(|| {
        let node = b.node.handle();
        let live = || {
            node.tenant_usage("node")
                .expect("the node's tenant")
                .services
        };
        let before = live() - handles.len() as u32;
        for handle in &handles {
            assert!(node.kill(*handle));
        }
        let deadline = Instant::now() + LIMIT;
        while live() > before {
            assert!(Instant::now() < deadline, "killed services are finalized");
            std::thread::sleep(Duration::from_millis(10));
        }
        spawn_round(&mut b, spawner, n, module, args).0
    });
    Spawned {
        per_second,
        respawn_per_second,
        rss_per_service_kib: (rss_after - rss_before) / n as f64,
        pss_per_service_kib: (pss_after - pss_before) / n as f64,
        answered,
        reading_ms,
    }
}

/// (e) The floor: two native threads doing round trips over std channels; round trips/s.
/// `spin` makes both sides poll (`try_recv`) instead of sleeping in `recv`, which is the
/// fastest hand-off between two cores; without it each message wakes a sleeping thread.
fn native(n: u64, spin: bool) -> f64 {
    use std::sync::mpsc::{channel, Receiver, TryRecvError};
    fn receive(inbox: &Receiver<u64>, spin: bool) -> Option<u64> {
        if !spin {
            return inbox.recv().ok();
        }
        loop {
            match inbox.try_recv() {
                Ok(v) => return Some(v),
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
    }
    let (to_echo, echo_inbox) = channel::<u64>();
    let (to_main, main_inbox) = channel::<u64>();
    let echo = std::thread::spawn(move || {
        while let Some(v) = receive(&echo_inbox, spin) {
            if to_main.send(v).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    for i in 0..n {
        to_echo.send(i).unwrap();
        receive(&main_inbox, spin).unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(to_echo);
    echo.join().unwrap();
    rate
}

/// Round trips/s of 16 bytes over loopback TCP between two native threads that block in
/// `read`: what any design that sleeps between messages pays on this machine.
fn tcp_round_trips(n: u64) -> f64 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut buffer = [0u8; 16];
        while stream.read_exact(&mut buffer).is_ok() {
            if stream.write_all(&buffer).is_err() {
                break;
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(at).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = [0u8; 16];
    let started = Instant::now();
    for i in 0..n {
        buffer[..8].copy_from_slice(&i.to_le_bytes());
        stream.write_all(&buffer).unwrap();
        stream.read_exact(&mut buffer).unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(stream);
    echo.join().unwrap();
    rate
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn report(name: &str, unit: &str, values: Vec<f64>) -> f64 {
    let runs = values.len();
    let (mid, low, high) = median(values);
    // Small figures (milliseconds) keep two decimals; rates are whole numbers.
    let digits = if high < 100.0 { 2 } else { 0 };
    println!(
        "{name:<44} median {mid:>12.digits$} {unit:<12} (min {low:.digits$}, max {high:.digits$}, {runs} runs)"
    );
    mid
}

/// The Lua benchmark scripts, in `tests/lua`.
fn lua_scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/lua")
}

/// ns per resume+yield pair inside snlua: a service whose start runs `n` pairs, timed by
/// its launch, minus the launch of the same service running none.
fn lua_coroutines_in_wasm(n: i64, mode: &str) -> f64 {
    let bench = node(&format!(
        "luaservice = \"{}/?.lua\"",
        lua_scripts().display()
    ));
    let shared = bench.node.handle();
    let timed = |count: i64| {
        let started = Instant::now();
        shared
            .launch("snlua", &format!("bench_coroutine {count} {mode}"))
            .expect("launch snlua");
        started.elapsed().as_secs_f64()
    };
    timed(0); // compile and warm up
    let empty = timed(0);
    let full = timed(n);
    (full - empty) * 1e9 / n as f64
}

/// A fresh node with an instance pool of `pool` and a warm `bench_pinger` (its pong exists
/// and both are compiled and running).
fn lua_node(pool: i64) -> (Bench, Handle) {
    // SENDS may queue its whole flood at once: the mailbox limit is lifted above it.
    let mut bench = node(&format!(
        "luaservice = \"{}/?.lua\"\nwasm_max_services = {pool}\nmailbox_limit = 10000000",
        lua_scripts().display(),
    ));
    let pinger = bench
        .node
        .handle()
        .launch("snlua", "bench_pinger")
        .expect("launch snlua");
    bench.lua(pinger, &[Value::from("CALLS"), Value::Integer(10)]);
    (bench, pinger)
}

/// Runs one command of `tests/lua/bench_pinger.lua` on a fresh node whose instance pool
/// holds `pool` services: the operations per second, and the process's PSS growth per
/// operation in KiB (meaningful for SPAWN).
fn lua_bench(command: &str, n: i64, pool: i64) -> (f64, f64) {
    let (mut bench, pinger) = lua_node(pool);
    let pss_before = settled_pss_kib();
    let reply = bench.lua(pinger, &[Value::from(command), Value::Integer(n)]);
    let pss_after = memory_kib("Pss:", "/proc/self/smaps_rollup");
    let nanos = reply[0].as_integer().expect("elapsed ns") as f64;
    (n as f64 * 1e9 / nanos, (pss_after - pss_before) / n as f64)
}

/// Spawns `n` idle Lua services in one node and calls every one: spawns/s, PSS growth per
/// service in KiB, and how many answered.
fn lua_spawn_and_call(n: i64) -> (f64, f64, i64) {
    let (mut bench, pinger) = lua_node(n + 100);
    let pss_before = settled_pss_kib();
    let reply = bench.lua(pinger, &[Value::from("SPAWN"), Value::Integer(n)]);
    let pss_after = memory_kib("Pss:", "/proc/self/smaps_rollup");
    let nanos = reply[0].as_integer().expect("elapsed ns") as f64;
    let answered = bench.lua(pinger, &[Value::from("PINGALL")])[0]
        .as_integer()
        .expect("a count");
    (
        n as f64 * 1e9 / nanos,
        (pss_after - pss_before) / n as f64,
        answered,
    )
}

/// A fresh node running the Lua echo server, and the port it listens on.
fn echo_node() -> (Bench, u16) {
    let (mut bench, _) = lua_node(100);
    let (_, port) = lua_listener(&mut bench, "bench_echo_server", "PORT");
    (bench, port)
}

/// Launches the Lua service `script` on `bench` and asks it (`command`) for the port it
/// listens on.
fn lua_listener(bench: &mut Bench, script: &str, command: &str) -> (Handle, u16) {
    let service = bench
        .node
        .handle()
        .launch("snlua", script)
        .unwrap_or_else(|e| panic!("launch {script}: {e}"));
    let port = bench.lua(service, &[Value::from(command)])[0]
        .as_integer()
        .expect("a port") as u16;
    (service, port)
}

/// Echo through a Lua service (`tests/lua/bench_echo_server.lua`): `clients` threads, each
/// with its own connection, send `size`-byte messages and wait for each echo, `n` times.
/// Round trips/s over all clients.
fn net_echo(clients: usize, n: usize, size: usize) -> f64 {
    use std::io::{Read, Write};
    let (_bench, port) = echo_node();
    let streams: Vec<std::net::TcpStream> = (0..clients)
        .map(|_| {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let message = vec![7u8; size];
                let mut echo = vec![0u8; size];
                barrier.wait();
                for _ in 0..n {
                    stream.write_all(&message).unwrap();
                    stream.read_exact(&mut echo).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for thread in threads {
        thread.join().unwrap();
    }
    (clients * n) as f64 / started.elapsed().as_secs_f64()
}

/// A client floods a Lua gate (`tests/lua/bounds_gate.lua`) with `total` bytes while the
/// gate is busy for `busy_ms`: the most the process's RSS grew meanwhile (MiB; bounded by
/// the gate's `socket_backlog`, not by the flood), and the flood's throughput in MB/s once
/// every byte has reached the gate.
fn net_flood(total: usize, busy_ms: i64) -> (f64, f64) {
    use std::io::Write;
    let mut bench = node(&format!(
        "luaservice = \"{}/?.lua\"",
        lua_scripts().display()
    ));
    let (gate, port) = lua_listener(&mut bench, "bounds_gate", "LISTEN");
    trim_heap();
    let rss_before = memory_kib("VmRSS:", "/proc/self/status");
    let started = Instant::now();
    let client = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..total / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
    });
    // The gate reads the connection before it gets busy.
    while bench.lua(gate, &[Value::from("STARTED")])[0].as_integer() != Some(1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let spin = bench.request(gate, &[Value::from("SPIN"), Value::Integer(busy_ms)]);
    let mut peak = rss_before;
    while !client.is_finished() {
        peak = peak.max(memory_kib("VmRSS:", "/proc/self/status"));
        std::thread::sleep(Duration::from_millis(2));
    }
    client.join().unwrap();
    bench.client.wait(gate, spin, LIMIT).expect("the gate spun");
    while bench.lua(gate, &[Value::from("RECEIVED")])[0].as_integer() != Some(total as i64) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = started.elapsed().as_secs_f64();
    ((peak - rss_before) / 1024.0, total as f64 / seconds / 1e6)
}

/// Connections accepted, served (one echo) and closed per second by the Lua echo service,
/// from 4 client threads.
fn net_accept(n: usize) -> f64 {
    use std::io::{Read, Write};
    let (_bench, port) = echo_node();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..n / 4 {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.write_all(b"x").unwrap();
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    (n / 4 * 4) as f64 / started.elapsed().as_secs_f64()
}

/// Hot upgrade: a target (`rust`: the `probe` guest, else the Lua counter of
/// `tests/lua/upgrade_v1.lua`) holding `state` extra bytes in its state is upgraded `n`
/// times, a tick (10 ms) apart, by a Lua driver, while a Lua caller calls it in a loop.
/// Returns the time of each upgrade as the driver sees it (request to outcome, ms), the
/// caller's longest wait between two answers during the upgrades, and its longest wait over
/// the same time without upgrades (ms).
fn upgrades(rust: bool, state: i64, n: i64) -> (Vec<f64>, f64, f64) {
    let mut bench = node(&format!(
        "luaservice = \"{0}/?.lua\"\nlua_path = \"{0}/lib/?.lua\"\nwasm_memory = \"128M\"",
        lua_scripts().display(),
    ));
    let shared = bench.node.handle();
    let launch = |module: &str, args: &str| shared.launch(module, args).expect("launch");
    let (target, ballast, call, names) = if rust {
        (launch("probe", ""), "ballast", "count", ["probe", "probe"])
    } else {
        let target = launch("snlua", "upgrade_v1");
        (target, "BALLAST", "INC", ["upgrade_v2", "upgrade_v1"])
    };
    bench.lua(target, &[Value::from(ballast), Value::Integer(state)]);
    let driver = launch("snlua", "upgrade_driver");
    let caller = launch("snlua", "upgrade_caller");
    let longest_wait = |bench: &mut Bench, during: &mut dyn FnMut(&mut Bench)| {
        bench.lua(caller, &[Value::from("RUN"), h(target), Value::from(call)]);
        during(bench);
        let report = bench.lua(caller, &[Value::from("STOP")]);
        assert_eq!(
            report[1],
            Value::Integer(0),
            "calls failed during the upgrades"
        );
        report[4].as_integer().unwrap_or(0) as f64 / 1e6
    };
    let idle = Duration::from_millis(n as u64 * 11);
    let baseline = longest_wait(&mut bench, &mut |_| std::thread::sleep(idle));
    let mut times = Vec::new();
    let during = longest_wait(&mut bench, &mut |bench| {
        let reply = bench.lua(
            driver,
            &[
                Value::from("TIMES"),
                h(target),
                Value::Integer(n),
                Value::from(names[0]),
                Value::from(names[1]),
            ],
        );
        if let Some(Value::Table(failures)) = reply.get(1) {
            assert!(failures.array.is_empty(), "upgrades failed: {failures:?}");
        }
        if let Some(Value::Table(list)) = reply.first() {
            times = list.array.iter().filter_map(Value::as_real).collect();
        }
    });
    (times, during, baseline)
}

/// Two nodes in this process, joined by the cluster over loopback: node `db` runs
/// `tests/lua/cluster_server.lua` (its `@echo`), the other `tests/lua/bench_cluster.lua`,
/// already connected (one call made); `extra` config lines for both. Returns both nodes and
/// the driver.
fn cluster_pair(extra: &str) -> (Bench, Bench, Handle) {
    // The pushes of SENDS arrive faster than @echo takes them: room for all in its mailbox.
    let lua = format!(
        "luaservice = \"{}/?.lua\"\nmailbox_limit = 1000000\n{extra}",
        lua_scripts().display()
    );
    let mut server = node(&lua);
    let echo = server
        .node
        .handle()
        .launch("snlua", "cluster_server")
        .expect("launch the server");
    let at = server.lua(echo, &[Value::from("LISTEN"), Value::Integer(0)]);
    let at = at[0].as_str().expect("the bound address").to_string();
    let mut client = node(&lua);
    let driver = client
        .node
        .handle()
        .launch("snlua", "bench_cluster")
        .expect("launch the driver");
    client
        .node
        .handle()
        .set_cluster_nodes(&[("db", at.as_str())])
        .expect("reload");
    client.lua(driver, &[Value::from("SEQ"), Value::Integer(1)]);
    (server, client, driver)
}

/// A free loopback address.
fn free_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The config lines both harbor benchmark nodes share, skywasm's and skynet's alike:
/// node `id` of a network whose master (on node 1) listens at `master`, starting `start`.
fn harbor_config(id: u8, master: &str, start: &str, calls: i64, pushes: i64) -> String {
    let mut text = format!(
        "thread = 2\nharbor = {id}\nmaster = \"{master}\"\naddress = \"{}\"\n\
         bootstrap = \"snlua bootstrap\"\nstart = \"{start}\"\nprofile = false\n\
         bench_calls = {calls}\nbench_pushes = {pushes}\ncmp_echo_name = \"HECHO\"\n",
        free_address()
    );
    if id == 1 {
        text.push_str(&format!("standalone = \"{master}\"\n"));
    }
    text
}

/// Waits for a line containing `needle` in the file `log`; the line.
fn wait_for_line(log: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Calls/s and sends/s from a `HARBOR BENCH calls X sends Y` line.
fn harbor_figures(line: &str) -> (f64, f64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> f64 {
        let at = words.iter().position(|w| *w == key).expect("a figure");
        words[at + 1].parse().expect("a number")
    };
    (after("calls"), after("sends"))
}

/// Two skywasm nodes in this process joined by the harbor, the second calling the first
/// (tests/lua/bench_harbor.lua): calls/s and sends/s.
fn harbor_skywasm(calls: i64, pushes: i64, extra: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let master = free_address();
    let scripts = lua_scripts().display().to_string();
    let start = |id: u8, script: &str| {
        let log = dir.path().join(format!("node{id}.log"));
        let text = format!(
            "{}luaservice = \"{scripts}/?.lua\"\nlogger = \"{}\"\n{extra}\n",
            harbor_config(id, &master, script, calls, pushes),
            log.display()
        );
        let config = NodeConfig::from_source("bench.config", &text).expect("bench config");
        (Node::start(config).expect("node starts"), log)
    };
    let (_echo, echo_log) = start(1, "cmp_echo");
    wait_for_line(&echo_log, "CMP ECHO READY");
    let (_driver, driver_log) = start(2, "bench_harbor");
    harbor_figures(&wait_for_line(&driver_log, "HARBOR BENCH"))
}

/// The same two nodes as [`harbor_skywasm`], as two real skynet processes.
fn harbor_skynet(skynet: &std::path::Path, calls: i64, pushes: i64) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let master = free_address();
    let s = skynet.display();
    let start = |id: u8, script: &str| {
        let text = format!(
            "{}luaservice = \"{s}/service/?.lua;{}/?.lua\"\nlualoader = \"{s}/lualib/loader.lua\"\n\
             lua_path = \"{s}/lualib/?.lua;{s}/lualib/?/init.lua\"\nlua_cpath = \"{s}/luaclib/?.so\"\n\
             cpath = \"{s}/cservice/?.so\"\n",
            harbor_config(id, &master, script, calls, pushes),
            lua_scripts().display()
        );
        let config = dir.path().join(format!("config{id}"));
        std::fs::write(&config, text).expect("write the config");
        let log = dir.path().join(format!("node{id}.log"));
        let child = std::process::Command::new(skynet.join("skynet"))
            .arg(&config)
            .current_dir(skynet)
            .stdout(std::fs::File::create(&log).expect("a log file"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("skynet starts");
        (KillOnDrop(child), log)
    };
    let (_echo, echo_log) = start(1, "cmp_echo");
    wait_for_line(&echo_log, "CMP ECHO READY");
    let (_driver, driver_log) = start(2, "bench_harbor");
    harbor_figures(&wait_for_line(&driver_log, "HARBOR BENCH"))
}

/// Which runtime a comparison process runs.
#[derive(Clone, Copy, PartialEq)]
enum Runtime {
    Skywasm,
    Skynet,
}

/// PSS of process `pid` in KiB.
fn pss_kib(pid: u32) -> f64 {
    memory_kib("Pss:", &format!("/proc/{pid}/smaps_rollup"))
}

/// One figure of tests/lua/cmp_bench.lua in a fresh process of `runtime`: the logged
/// figure, or for `memory` the PSS growth per idle service (KiB).
fn compare_once(runtime: Runtime, skynet: &std::path::Path, row: &Comparison) -> f64 {
    let Comparison {
        mode,
        n,
        clients,
        crowd,
        ..
    } = *row;
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("node.log");
    let scripts = lua_scripts().display().to_string();
    // a Redis server for the driver's row, a port for the HTTP server's
    let redis = mode.starts_with("redis").then(start_redis);
    let port = match &redis {
        Some((_, port)) => *port,
        None => free_port(),
    };
    let common = format!(
        "thread = 2\nharbor = 0\nbootstrap = \"snlua bootstrap\"\nstart = \"cmp_bench\"\n\
         profile = false\ncmp_mode = \"{mode}\"\ncmp_n = {n}\ncmp_clients = {clients}\n\
         cmp_crowd = {crowd}\ncmp_port = {port}\n"
    );
    let s = skynet.display();
    let (program, config) = match runtime {
        // The node's defaults, as a plain skynet config gets them (docs/config.md).
        Runtime::Skywasm => (
            PathBuf::from(env!("CARGO_BIN_EXE_skywasm")),
            format!(
                "{common}luaservice = \"{scripts}/?.lua\"\nlogger = \"{}\"\n",
                log.display()
            ),
        ),
        Runtime::Skynet => (
            skynet.join("skynet"),
            format!(
                "{common}luaservice = \"{s}/service/?.lua;{scripts}/?.lua\"\n\
                 lualoader = \"{s}/lualib/loader.lua\"\n\
                 lua_path = \"{s}/lualib/?.lua;{s}/lualib/?/init.lua\"\n\
                 lua_cpath = \"{s}/luaclib/?.so\"\ncpath = \"{s}/cservice/?.so\"\n"
            ),
        ),
    };
    let path = dir.path().join("config");
    std::fs::write(&path, config).expect("write the config");
    let child = std::process::Command::new(program)
        .arg(&path)
        .current_dir(if runtime == Runtime::Skynet {
            skynet
        } else {
            dir.path()
        })
        .stdout(std::fs::File::create(&log).expect("a log file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the node starts");
    let child = KillOnDrop(child);
    if mode == "memory" || mode == "sharemem" {
        wait_for_line(&log, "CMP BASELINE");
        let before = pss_kib(child.0.id());
        wait_for_line(&log, "CMP SPAWNED");
        std::thread::sleep(Duration::from_millis(500));
        let after = pss_kib(child.0.id());
        return (after - before) / n as f64;
    }
    if mode == "httpd" {
        wait_for_line(&log, "CMP httpd READY");
        return http_load(port, clients as usize, Duration::from_secs(3));
    }
    let line = wait_for_line(&log, &format!("CMP {mode} "));
    line.rsplit(' ')
        .next()
        .and_then(|f| f.trim().parse().ok())
        .expect("a figure")
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` (Debian's; scripts/setup installs it) on a free port, nothing on disk.
fn start_redis() -> (KillOnDrop, u16) {
    let port = free_port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/setup installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (KillOnDrop(child), port)
}

/// Requests per second that `clients` keep-alive connections get from the HTTP server on
/// `port` over `duration` (after a short warm-up), each sending the next request when the
/// last response has arrived whole.
fn http_load(port: u16, clients: usize, duration: Duration) -> f64 {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let counting = std::sync::Arc::new(AtomicBool::new(false));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (counting, stop, done) = (counting.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_nodelay(true).unwrap();
                let request = format!("GET /c{i} HTTP/1.1\r\nHost: bench\r\n\r\n");
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if stream.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    // a response: its header, then content-length bytes
                    let mut got = Vec::new();
                    let complete = loop {
                        let Ok(n) = stream.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                            let length: usize = head
                                .split("content-length:")
                                .nth(1)
                                .and_then(|rest| rest.split("\r\n").next())
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if got.len() >= end + 4 + length {
                                break true;
                            }
                        }
                    };
                    if complete && counting.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    counting.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    std::thread::sleep(duration);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    drop(threads);
    count as f64 / elapsed
}

/// One row of the same-run comparison: what `tests/lua/cmp_bench.lua` measures, and how
/// much.
#[derive(Clone, Copy)]
struct Comparison {
    /// Its name in the report.
    name: &'static str,
    /// `cmp_mode`.
    mode: &'static str,
    /// The figure's unit.
    unit: &'static str,
    /// `cmp_n`.
    n: i64,
    /// `cmp_clients` (fan-in).
    clients: i64,
    /// `cmp_crowd`: idle services spawned first.
    crowd: i64,
}

/// A child process killed when it goes out of scope.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the hostile tenant does in a noisy-neighbour run.
#[derive(Clone, Copy, PartialEq)]
enum Noise {
    /// Nothing: the clean figure.
    Quiet,
    /// An endless loop, a memory bomb and a flood at once (`tests/lua/noisy_neighbour.lua`),
    /// under the default worker cap of an untrusted tenant.
    Capped,
    /// The same, with the worker cap lifted (`workers = 2`): what fairness buys.
    Uncapped,
}

/// A well-behaved pair of Lua services in tenant `calm` making `n` sequential calls while
/// tenant `rogue` makes `noise`: calls/s, and how long each of the rogue's endless loops ran
/// (ms, from the host's log line) before the host ended it at its CPU limit of 100 ms.
fn noisy_neighbour(noise: Noise, n: i64) -> (f64, Vec<f64>) {
    let start = match noise {
        Noise::Quiet => "",
        Noise::Capped => "start = \"snlua noisy_neighbour NOISEARGS\",",
        Noise::Uncapped => "start = \"snlua noisy_neighbour NOISEARGS\", workers = 2,",
    };
    let start = start.replace(
        "NOISEARGS",
        &std::env::var("NOISE").unwrap_or("loop bomb flood".into()),
    );
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut bench = node(&format!(
        "luaservice = \"{}/?.lua\"\nwasm_max_services = 200\nlogger = \"{}\"\n\
         tenants = {{\n\
           calm = {{ launch = {{ \"snlua bench_pong\" }} }},\n\
           rogue = {{ {start} launch = {{ \"snlua looper\", \"snlua memory_hog\", \"snlua bench_pong\" }},\n\
                     cpu = 100, memory = \"16M\" }},\n\
         }}",
        lua_scripts().display(),
        log.path().display(),
    ));
    let shared = bench.node.handle();
    let calm = "calm";
    let pinger = shared
        .launch_in(calm, "snlua", "bench_pinger")
        .expect("launch the calm pinger");
    bench.lua(pinger, &[Value::from("CALLS"), Value::Integer(10)]);
    if noise != Noise::Quiet {
        // Let the noise get going: the first loop, bomb and flood are under way.
        std::thread::sleep(Duration::from_millis(300));
    }
    let reply = bench.lua(pinger, &[Value::from("CALLS"), Value::Integer(n)]);
    let nanos = reply[0].as_integer().expect("elapsed ns") as f64;
    drop(bench);
    let loops = std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("stopped after ")?;
            rest.split(' ').next()?.parse::<f64>().ok()
        })
        .collect();
    (n as f64 * 1e9 / nanos, loops)
}

/// ns per resume+yield pair for the same script in the host's stock native Lua (mlua).
fn lua_coroutines_native(n: i64, mode: &str) -> f64 {
    let source = std::fs::read_to_string(lua_scripts().join("bench_coroutine.lua")).unwrap();
    let lua = mlua::Lua::new();
    let chunk = lua.load(source).into_function().unwrap();
    let started = Instant::now();
    chunk.call::<()>((n, mode)).unwrap();
    started.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = !args.iter().any(|a| a == "--bench");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    // BENCH_RUNS=1 for profiling: each run is a fresh engine whose code lands at new
    // addresses, and perf's map of guest functions would otherwise hold stale entries.
    let runs = match std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        Some(runs) => runs,
        None if quick => 1,
        None => 5,
    };
    let scale = |full: i64, small: i64| if quick { small } else { full };

    // (a) and its floors (e) run interleaved, so each ratio compares figures taken moments
    // apart on this noisy machine.
    if wanted("calls") || wanted("native") {
        let (mut calls_runs, mut spin_runs, mut park_runs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut spin_ratio, mut park_ratio) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let spin = native(scale(1_000_000, 1000) as u64, true);
            let park = native(scale(200_000, 1000) as u64, false);
            let call = calls(scale(1_000_000, 1000));
            spin_ratio.push(call / spin);
            park_ratio.push(call / park);
            calls_runs.push(call);
            spin_runs.push(spin);
            park_runs.push(park);
        }
        report("(e) native threads, channel, polling", "trips/s", spin_runs);
        report(
            "(e) native threads, channel, blocking",
            "trips/s",
            park_runs,
        );
        report(
            "(a) call round trips, two Rust services",
            "calls/s",
            calls_runs,
        );
        println!(
            "    ratio (a)/(e polling) = {:.2}, (a)/(e blocking) = {:.2} (medians of per-round ratios)",
            median(spin_ratio).0,
            median(park_ratio).0
        );
    }
    if wanted("sends") {
        let values = (0..runs).map(|_| sends(scale(2_000_000, 1000))).collect();
        report("(b) one-way sends delivered", "msgs/s", values);
    }
    if wanted("fanin") {
        let values = (0..runs)
            .map(|_| fanin(scale(1000, 10) as usize, scale(500, 5)))
            .collect();
        report("(c) 1000 services calling one", "calls/s", values);
    }
    if wanted("rust-spawn") {
        let results: Vec<Spawned> = (0..runs)
            .map(|_| spawn(scale(10_000, 50), false, true))
            .collect();
        report(
            "(d) spawns of idle Rust services",
            "spawns/s",
            results.iter().map(|r| r.per_second).collect(),
        );
        report(
            "(d) respawns into the slots of killed ones",
            "spawns/s",
            results
                .iter()
                .filter_map(|r| r.respawn_per_second)
                .collect(),
        );
        let rss = median(results.iter().map(|r| r.rss_per_service_kib).collect()).0;
        let pss = median(results.iter().map(|r| r.pss_per_service_kib).collect()).0;
        println!(
            "    resident per idle service at 10,000 live: RSS {rss:.1} KiB, PSS {pss:.1} KiB"
        );
        report(
            "(d) one metrics reading at 10,000 live services",
            "ms",
            results.iter().map(|r| r.reading_ms).collect(),
        );
    }
    if wanted("lua-coroutine") {
        let n = scale(1_000_000, 1000);
        for mode in ["plain", "pcall"] {
            let (mut wasm_runs, mut native_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                let wasm = lua_coroutines_in_wasm(n, mode);
                let native = lua_coroutines_native(n, mode);
                ratios.push(wasm / native);
                wasm_runs.push(wasm);
                native_runs.push(native);
            }
            report(
                &format!("Lua coroutine resume+yield ({mode}), snlua in wasm"),
                "ns/pair",
                wasm_runs,
            );
            report(
                &format!("Lua coroutine resume+yield ({mode}), stock native Lua"),
                "ns/pair",
                native_runs,
            );
            println!(
                "    ratio wasm/native = {:.2} (median of per-round ratios)",
                median(ratios).0
            );
        }
    }
    if wanted("lua-calls") {
        let values = (0..runs)
            .map(|_| lua_bench("CALLS", scale(200_000, 1000), 100).0)
            .collect();
        report(
            "Lua call round trips, two snlua services",
            "calls/s",
            values,
        );
    }
    if wanted("lua-sends") {
        let values = (0..runs)
            .map(|_| lua_bench("SENDS", scale(500_000, 1000), 100).0)
            .collect();
        report("Lua one-way sends delivered", "msgs/s", values);
    }
    if wanted("lua-spawn") {
        let results: Vec<(f64, f64)> = (0..runs)
            .map(|_| {
                let n = scale(2_000, 20);
                lua_bench("SPAWN", n, n + 100)
            })
            .collect();
        report(
            "new idle Lua services (newservice)",
            "spawns/s",
            results.iter().map(|r| r.0).collect(),
        );
        let pss = median(results.iter().map(|r| r.1).collect()).0;
        println!("    PSS per idle Lua service: {pss:.1} KiB");
    }
    if wanted("net-echo") {
        for (clients, size) in [(1, 64), (64, 64), (1, 16384), (64, 16384)] {
            let n = scale(if size > 1024 { 5_000 } else { 20_000 }, 50) as usize / clients.min(16);
            let values: Vec<f64> = (0..runs).map(|_| net_echo(clients, n, size)).collect();
            let (mid, _, _) = median(values.clone());
            report(
                &format!("echo via Lua, {clients} client(s), {size} B"),
                "msgs/s",
                values,
            );
            println!("    = {:.1} MB/s each way", mid * size as f64 / 1e6);
        }
    }
    if wanted("net-flood") {
        let total = scale(256 << 20, 1 << 20) as usize;
        let results: Vec<(f64, f64)> = (0..runs).map(|_| net_flood(total, 1500)).collect();
        report(
            &format!(
                "flood of {} MiB into a busy Lua gate: RSS growth",
                total >> 20
            ),
            "MiB",
            results.iter().map(|r| r.0).collect(),
        );
        report(
            "    throughput once the gate drains",
            "MB/s",
            results.iter().map(|r| r.1).collect(),
        );
    }
    if wanted("net-accept") {
        let values = (0..runs)
            .map(|_| net_accept(scale(4_000, 40) as usize))
            .collect();
        report("connections accepted+served+closed", "conn/s", values);
    }
    if wanted("noisy") {
        let n = scale(200_000, 1000);
        let (mut clean, mut capped, mut uncapped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut capped_ratio, mut uncapped_ratio, mut loops) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let quiet = noisy_neighbour(Noise::Quiet, n).0;
            let (with_cap, mut loop_ms) = noisy_neighbour(Noise::Capped, n);
            // Without the cap the pair crawls: a twentieth of the calls measures its rate.
            let without_cap = noisy_neighbour(Noise::Uncapped, n / 20).0;
            capped_ratio.push(with_cap / quiet);
            uncapped_ratio.push(without_cap / quiet);
            clean.push(quiet);
            capped.push(with_cap);
            uncapped.push(without_cap);
            loops.append(&mut loop_ms);
        }
        report("noisy neighbour: Lua calls, clean", "calls/s", clean);
        report(
            "noisy neighbour: Lua calls, rogue tenant noisy",
            "calls/s",
            capped,
        );
        report(
            "noisy neighbour: the same, rogue's worker cap lifted",
            "calls/s",
            uncapped,
        );
        println!(
            "    ratio noisy/clean = {:.2}, uncapped/clean = {:.2} (medians of per-round ratios)",
            median(capped_ratio).0,
            median(uncapped_ratio).0
        );
        if !loops.is_empty() {
            let count = loops.len();
            let (mid, low, high) = median(loops);
            println!(
                "    rogue's endless loops were stopped after median {mid:.0} ms (min {low:.0}, max {high:.0}, {count} loops; CPU limit 100 ms)"
            );
        }
    }
    if wanted("upgrade") {
        let n = scale(20, 2);
        for (rust, name) in [(false, "Lua"), (true, "Rust")] {
            for (state, size) in [(0, "small"), (10 << 20, "10 MB")] {
                let (mut times, mut pauses, mut baselines) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..runs {
                    let (mut t, pause, baseline) = upgrades(rust, state, n);
                    times.append(&mut t);
                    pauses.push(pause);
                    baselines.push(baseline);
                }
                report(
                    &format!("upgrade, {name} service, {size} state"),
                    "ms",
                    times,
                );
                let (pause, low, high) = median(pauses);
                let (baseline, _, _) = median(baselines);
                println!(
                    "    longest wait for an answer while upgraded: median {pause:.2} ms (min {low:.2}, max {high:.2}); without upgrades {baseline:.2} ms"
                );
            }
        }
    }
    if wanted("cluster") {
        let n = scale(20_000, 100);
        let pushes = scale(100_000, 100);
        // Interleaved in each round: the defaults, the same with the network thread running
        // trusted services (`network_assist`, opt-in), the same with the network thread
        // neither polling nor running services (every hop wakes a thread, as skynet's
        // does), and blocking TCP round trips between two native threads (two wake-ups
        // each).
        let modes = [
            ("", ""),
            (" [network assist]", "network_assist = true"),
            (
                " [no busy poll, no assist]",
                "cluster_busy_poll = 0\nnetwork_assist = false",
            ),
        ];
        let mut figures: Vec<[Vec<f64>; 5]> = modes.iter().map(|_| Default::default()).collect();
        let mut floor = Vec::new();
        for _ in 0..runs {
            for ((_, extra), figures) in modes.iter().zip(figures.iter_mut()) {
                let [rates, p50s, p99s, conc, sends] = figures;
                let (_server, mut client, driver) = cluster_pair(extra);
                let seq = client.lua(driver, &[Value::from("SEQ"), Value::Integer(n)]);
                let ns = |v: &Value| v.as_integer().expect("ns") as f64;
                rates.push(n as f64 * 1e9 / ns(&seq[0]));
                p50s.push(ns(&seq[1]) / 1e3);
                p99s.push(ns(&seq[2]) / 1e3);
                let each = n / 32;
                let took = client.lua(
                    driver,
                    &[
                        Value::from("CONC"),
                        Value::Integer(32),
                        Value::Integer(each),
                    ],
                );
                conc.push((32 * each) as f64 * 1e9 / ns(&took[0]));
                let took = client.lua(driver, &[Value::from("SENDS"), Value::Integer(pushes)]);
                sends.push(pushes as f64 * 1e9 / ns(&took[0]));
            }
            floor.push(tcp_round_trips(n as u64));
        }
        for ((label, _), [rates, p50s, p99s, conc, sends]) in modes.iter().zip(figures) {
            report(
                &format!("cluster.call, sequential{label}"),
                "calls/s",
                rates,
            );
            report("    latency p50", "us", p50s);
            report("    latency p99", "us", p99s);
            report("cluster.call, 32 concurrent callers", "calls/s", conc);
            report("cluster.send, delivered", "msgs/s", sends);
        }
        report(
            "floor: blocking TCP round trips, 2 threads",
            "trips/s",
            floor,
        );
    }
    if wanted("vs-skynet") {
        match std::env::var_os("SKYWASM_SKYNET").map(PathBuf::from) {
            None => {
                println!("vs-skynet: skipped: set SKYWASM_SKYNET to a built skynet (DEVELOPERS.md)")
            }
            Some(skynet) => {
                let row = |name, mode, unit, n, clients, crowd| Comparison {
                    name,
                    mode,
                    unit,
                    n,
                    clients,
                    crowd,
                };
                let rows = [
                    row("calls", "calls", "calls/s", scale(200_000, 100), 0, 0),
                    row("sends", "sends", "sends/s", scale(1_000_000, 100), 0, 0),
                    row(
                        "fanin",
                        "fanin",
                        "calls/s",
                        scale(100, 10),
                        scale(1000, 10),
                        0,
                    ),
                    row("spawn 5000", "spawn", "services/s", scale(5000, 10), 0, 0),
                    row(
                        "sharetable 1000",
                        "sharetable",
                        "lookups/s",
                        scale(1000, 10),
                        scale(1000, 10),
                        0,
                    ),
                    row(
                        "sharemem 1000",
                        "sharemem",
                        "KiB/reader",
                        scale(1000, 10),
                        0,
                        0,
                    ),
                    row(
                        "multicast 100",
                        "multicast",
                        "deliveries/s",
                        scale(10_000, 100),
                        scale(100, 10),
                        0,
                    ),
                    row(
                        "sproto encode",
                        "sproto_encode",
                        "msgs/s",
                        scale(200_000, 100),
                        0,
                        0,
                    ),
                    row(
                        "sproto decode",
                        "sproto_decode",
                        "msgs/s",
                        scale(200_000, 100),
                        0,
                        0,
                    ),
                    row(
                        "bson encode",
                        "bson_encode",
                        "docs/s",
                        scale(100_000, 100),
                        0,
                        0,
                    ),
                    row(
                        "bson decode",
                        "bson_decode",
                        "docs/s",
                        scale(100_000, 100),
                        0,
                        0,
                    ),
                    row("crypt", "crypt", "rounds/s", scale(20_000, 100), 0, 0),
                    row("redis", "redis", "trips/s", scale(20_000, 100), 0, 0),
                    row(
                        "redis socket",
                        "redis_socket",
                        "trips/s",
                        scale(20_000, 100),
                        0,
                        0,
                    ),
                    row("httpd 64", "httpd", "requests/s", 0, 64, 0),
                    row(
                        "memory 5000",
                        "memory",
                        "KiB/service",
                        scale(5000, 10),
                        0,
                        0,
                    ),
                    row(
                        "spawn 50000",
                        "spawn",
                        "services/s",
                        scale(50_000, 10),
                        0,
                        0,
                    ),
                    row(
                        "memory 50000",
                        "memory",
                        "KiB/service",
                        scale(50_000, 10),
                        0,
                        0,
                    ),
                    row(
                        "calls among 10000",
                        "calls",
                        "calls/s",
                        scale(200_000, 100),
                        0,
                        scale(10_000, 10),
                    ),
                    row(
                        "calls among 50000",
                        "calls",
                        "calls/s",
                        scale(200_000, 100),
                        0,
                        scale(50_000, 10),
                    ),
                ];
                let only = std::env::var("CMP_ROWS").ok();
                let rows: Vec<Comparison> = rows
                    .into_iter()
                    .filter(|r| {
                        only.as_deref()
                            .is_none_or(|o| o.split(',').any(|w| w == r.name))
                    })
                    .collect();
                let mut figures: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
                    rows.iter().map(|_| Default::default()).collect();
                for _ in 0..runs {
                    for (row, (ours, theirs, ratios)) in rows.iter().zip(figures.iter_mut()) {
                        let a = compare_once(Runtime::Skywasm, &skynet, row);
                        let b = compare_once(Runtime::Skynet, &skynet, row);
                        ours.push(a);
                        theirs.push(b);
                        ratios.push(a / b);
                    }
                }
                for (row, (ours, theirs, ratios)) in rows.iter().zip(figures) {
                    let name = row.name;
                    report(&format!("vs-skynet {name} (skywasm)"), row.unit, ours);
                    report(&format!("vs-skynet {name} (skynet)"), row.unit, theirs);
                    report(&format!("vs-skynet {name}: skywasm / skynet"), "x", ratios);
                }
            }
        }
    }
    if wanted("harbor") {
        let (calls, pushes) = (scale(20_000, 100), scale(100_000, 100));
        let skynet = std::env::var_os("SKYWASM_SKYNET").map(PathBuf::from);
        if skynet.is_none() {
            println!(
                "harbor: no skynet beside it (set SKYWASM_SKYNET, DEVELOPERS.md): skywasm only"
            );
        }
        let (mut ours, mut theirs) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        let (mut call_ratios, mut send_ratios) = (Vec::new(), Vec::new());
        let mut assisted = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (c, s) = harbor_skywasm(calls, pushes, "");
            ours.0.push(c);
            ours.1.push(s);
            let (ac, as_) = harbor_skywasm(calls, pushes, "network_assist = true");
            assisted.0.push(ac);
            assisted.1.push(as_);
            if let Some(dir) = &skynet {
                let (sc, ss) = harbor_skynet(dir, calls, pushes);
                theirs.0.push(sc);
                theirs.1.push(ss);
                call_ratios.push(c / sc);
                send_ratios.push(s / ss);
            }
        }
        report(
            "harbor: call round trips, sequential (skywasm)",
            "calls/s",
            ours.0,
        );
        report(
            "harbor: one-way sends delivered (skywasm)",
            "msgs/s",
            ours.1,
        );
        report(
            "harbor: calls [network assist] (skywasm)",
            "calls/s",
            assisted.0,
        );
        report(
            "harbor: sends [network assist] (skywasm)",
            "msgs/s",
            assisted.1,
        );
        if skynet.is_some() {
            report(
                "harbor: call round trips, sequential (skynet)",
                "calls/s",
                theirs.0,
            );
            report(
                "harbor: one-way sends delivered (skynet)",
                "msgs/s",
                theirs.1,
            );
            report(
                "harbor: calls, skywasm / skynet (per round)",
                "x",
                call_ratios,
            );
            report(
                "harbor: sends, skywasm / skynet (per round)",
                "x",
                send_ratios,
            );
        }
    }
    if wanted("lua-100k") && !quick {
        let n = 100_000;
        let (per_second, pss, answered) = lua_spawn_and_call(n);
        println!(
            "100,000 idle Lua services: spawned at {per_second:.0}/s, {answered} answered a call, PSS {pss:.1} KiB each"
        );
    }
    if wanted("100k") && !quick {
        let result = spawn(100_000, true, false);
        println!(
            "(d) 100,000 live services: spawned at {:.0}/s, {} answered a call, RSS {:.1} KiB, PSS {:.1} KiB each",
            result.per_second, result.answered, result.rss_per_service_kib, result.pss_per_service_kib
        );
    }
}
