//! Helpers: start a node from a config file in a temporary directory, talk to it through a
//! [`Client`], decode `skynet.pack` replies, and read its log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skywasm::client::{CallError, Client};
use skywasm::config::NodeConfig;
use skywasm::Handle;
use skywasm::{Node, NodeHandle};
use skywasm_abi::ptype;
use skywasm_pack::Value;

/// Generous bound on any single wait, so a broken build fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(20);

/// Where the build put the wasm guests (services, examples, test services).
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("SKYWASM_GUEST_DIR"))
}

/// A running node with a client attached and its log in a file.
pub struct TestNode {
    pub node: Node,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// The config every test node starts from; `extra` lines are appended (later assignments win).
pub fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        "thread = 2\nharbor = 0\nbootstrap = \"bootstrap\"\nstart = \"probe\"\nlogger = \"{log}\"\n\
         wasm_path = \"{guests}/?.wasm;{wat}/?.wat\"\nwasm_max_services = 200\n\
         wasm_memory = \"64M\"\nwasm_cache = \"{cache}\"\n{extra}\n",
        log = dir.join("node.log").display(),
        guests = guest_dir().display(),
        wat = wat_dir().display(),
        cache = std::env::temp_dir().join("skywasm-test-cache").display(),
    )
}

/// Test modules written in WAT.
pub fn wat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/wat")
}

/// Starts a node from a config file written with [`config_text`].
pub fn start(extra: &str) -> TestNode {
    start_with(|dir| config_text(dir, extra))
}

/// Starts a node from the config `text` makes for its temporary directory (where the log
/// goes, as `node.log`).
fn start_with(text: impl FnOnce(&Path) -> String) -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config");
    std::fs::write(&path, text(dir.path())).expect("write config");
    let config = NodeConfig::load(&path).expect("valid config");
    let node = Node::start(config).expect("node starts");
    let client = Client::new(&node.handle()).expect("client");
    TestNode {
        log: dir.path().join("node.log"),
        node,
        client,
        dir,
    }
}

impl TestNode {
    /// Launches a module with LAUNCH semantics (init runs before this returns).
    pub fn launch(&self, module: &str, args: &str) -> Handle {
        self.node
            .handle()
            .launch(module, args)
            .unwrap_or_else(|e| panic!("launch {module} {args}: {e}"))
    }

    /// A `"lua"` call: packs `values`, unpacks the reply.
    pub fn call(&mut self, dest: Handle, values: &[Value]) -> Result<Vec<Value>, CallError> {
        let body = skywasm_pack::pack(values).expect("packable");
        let reply = self.client.call(dest, ptype::LUA, &body, WAIT)?;
        Ok(skywasm_pack::unpack(&reply).expect("reply is skynet.pack"))
    }

    /// Sends a `"lua"` request without waiting; returns the session.
    pub fn request(&mut self, dest: Handle, values: &[Value]) -> i32 {
        let body = skywasm_pack::pack(values).expect("packable");
        self.client
            .request(dest, ptype::LUA, &body)
            .unwrap_or_else(|e| panic!("request {dest}: {e}"))
    }

    /// Waits for the reply to [`TestNode::request`].
    pub fn wait(&mut self, dest: Handle, session: i32) -> Result<Vec<Value>, CallError> {
        let reply = self.client.wait(dest, session, WAIT)?;
        Ok(skywasm_pack::unpack(&reply).expect("reply is skynet.pack"))
    }

    /// A `"lua"` call whose failure fails the test.
    pub fn ask(&mut self, dest: Handle, values: &[Value]) -> Vec<Value> {
        self.call(dest, values)
            .unwrap_or_else(|e| panic!("call {dest} {values:?}: {e}"))
    }

    /// The log written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?}; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the log contains `needle` `count` times; returns the log.
    pub fn wait_log_count(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= count {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?} {count} times; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while `handle` is a live service.
    pub fn alive(&self, handle: Handle) -> bool {
        self.node.handle().service(handle).is_some()
    }

    /// Waits until `handle` is gone.
    pub fn wait_dead(&self, handle: Handle) {
        let deadline = Instant::now() + WAIT;
        while self.alive(handle) {
            assert!(Instant::now() < deadline, "{handle} did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Asserts that the log of a Lua test suite (`tests/lua/lib/check.lua`'s lines) reports a
/// run with checks and no failure.
pub fn check_suite_log(script: &str, log: &str) {
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("] FAIL ")).collect();
    assert!(failures.is_empty(), "{script}: {failures:#?}\nlog:\n{log}");
    assert!(
        log.contains(" failed") && log.contains("] DONE ") && log.contains(", 0 failed"),
        "{script} did not report; log:\n{log}"
    );
    assert!(
        log.contains("] PASS "),
        "{script} checked nothing; log:\n{log}"
    );
}

/// Starts a node from a config as a skynet user writes one — no `bootstrap` key, so skynet's
/// default (`snlua bootstrap`) launches `start` as a Lua service — with `luaservice` and
/// `lua_path` on `tests/lua`, a log file, and the `extra` lines.
pub fn start_skynet_style(extra: &str) -> TestNode {
    start_with(|dir| {
        format!(
            "thread = 2\nharbor = 0\nlogger = \"{log}\"\n\
             luaservice = \"{lua}/?.lua\"\nlua_path = \"{lua}/lib/?.lua\"\n\
             wasm_cache = \"{cache}\"\n{extra}\n",
            log = dir.join("node.log").display(),
            lua = lua_dir().display(),
            cache = std::env::temp_dir().join("skywasm-test-cache").display(),
        )
    })
}

/// Runs the Lua test suite `script` (it ends the node when done) as the `start` service of a
/// [`start_skynet_style`] node with the `extra` lines, and checks its report; returns the log.
pub fn run_skynet_style(script: &str, extra: &str) -> String {
    finish_suite(
        start_skynet_style(&format!("start = \"{script}\"\n{extra}")),
        script,
    )
}

/// Waits (bounded) for a Lua test suite's node to stop itself, stops it (which writes out
/// every queued log line), and checks the suite's report; returns the log.
pub fn finish_suite(mut t: TestNode, script: &str) -> String {
    let stopped = t.node.wait_timeout(WAIT * 3);
    t.node.stop();
    let log = t.log_text();
    assert!(stopped, "{script} did not finish; log:\n{log}");
    check_suite_log(script, &log);
    log
}

/// Shorthand for a string value.
pub fn s(text: &str) -> Value {
    Value::from(text)
}

/// Shorthand for an integer value.
pub fn i(n: i64) -> Value {
    Value::Integer(n)
}

/// A handle as the integer the probe takes.
pub fn h(handle: Handle) -> Value {
    Value::Integer(handle.0 as i64)
}

/// The calm pair: a WAT echo of the node's own tenant, called by a client of the node's
/// tenant every 20 ms from a thread of its own, for as long as an attack runs.
pub struct Calm {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CalmReport>>,
}

/// What the calm pair saw.
#[derive(Debug)]
pub struct CalmReport {
    /// Calls answered.
    pub answered: usize,
    /// What went wrong with the others.
    pub failures: Vec<String>,
    /// The longest wait for an answer.
    pub slowest: Duration,
}

impl Calm {
    /// Starts the pair on `node`.
    pub fn start(node: &NodeHandle) -> Calm {
        let echo = node.launch("echo", "").expect("the calm echo starts");
        let mut client = Client::new(node).expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = CalmReport {
                answered: 0,
                failures: Vec::new(),
                slowest: Duration::ZERO,
            };
            while !stopping.load(Ordering::Acquire) {
                let started = Instant::now();
                match client.call(echo, ptype::TEXT, b"calm", WAIT) {
                    Ok(body) if body == b"calm" => report.answered += 1,
                    Ok(body) => report.failures.push(format!("echo answered {body:?}")),
                    Err(e) => report.failures.push(e.to_string()),
                }
                report.slowest = report.slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            report
        });
        Calm {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the pair and checks that every call was answered, none later than `window`
    /// (a generous multiple of the attackers' CPU limits: a stall would last forever).
    pub fn finish(mut self, window: Duration) -> CalmReport {
        self.stop.store(true, Ordering::Release);
        let report = self
            .thread
            .take()
            .expect("running")
            .join()
            .expect("the calm caller does not panic");
        assert!(
            report.failures.is_empty(),
            "the calm pair failed: {report:?}"
        );
        assert!(report.answered > 0, "the calm pair never got an answer");
        assert!(
            report.slowest <= window,
            "the calm pair waited {:?} for an answer (window {window:?})",
            report.slowest
        );
        report
    }
}

impl Drop for Calm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A real skynet node (skynet built outside the repository, DEVELOPERS.md), its output in
/// a file; killed on drop.
pub struct SkynetNode {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SkynetNode {
    /// Starts skynet's binary in its tree `skynet` with the Lua service `start`, found in
    /// skynet's `service/` or in `scripts`, and the config lines `extra`.
    pub fn start(skynet: &Path, start: &str, scripts: &Path, extra: &str) -> SkynetNode {
        let dir = tempfile::tempdir().unwrap();
        let s = skynet.display();
        let config = format!(
            "thread = 2\n{extra}start = \"{start}\"\nbootstrap = \"snlua bootstrap\"\n\
             luaservice = \"{s}/service/?.lua;{}/?.lua\"\nlualoader = \"{s}/lualib/loader.lua\"\n\
             lua_path = \"{s}/lualib/?.lua;{s}/lualib/?/init.lua\"\n\
             lua_cpath = \"{s}/luaclib/?.so\"\ncpath = \"{s}/cservice/?.so\"\n",
            scripts.display()
        );
        let path = dir.path().join("config");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("out.log");
        let child = std::process::Command::new(skynet.join("skynet"))
            .arg(&path)
            .current_dir(skynet)
            .stdout(std::process::Stdio::from(
                std::fs::File::create(&log).unwrap(),
            ))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("skynet starts");
        SkynetNode {
            child,
            log,
            _dir: dir,
        }
    }

    /// Waits (up to a minute) for a line of its output containing `needle`; that line.
    pub fn wait_for(&self, needle: &str) -> String {
        wait_for_line(&self.log, needle)
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SkynetNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to a minute) until the log file `log` has a line containing `needle`; that line.
pub fn wait_for_line(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Lua test scripts (`tests/lua`).
pub fn lua_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua")
}

/// Starts a node whose `luaservice` is [`lua_dir`], with `extra` config lines.
pub fn start_lua(extra: &str) -> TestNode {
    start(&format!(
        "luaservice = \"{}/?.lua\"\n{extra}",
        lua_dir().display()
    ))
}

/// A node in a process of its own (the `skywasm` binary) on a config written with
/// [`config_text`]: what a test measures or signals from outside.
pub struct NodeProcess {
    /// The process.
    pub child: std::process::Child,
    /// Its log file.
    pub log: PathBuf,
    /// Holds the config and the log while the node runs.
    pub dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts the binary on the test config with `extra` lines (stdout and stderr dropped).
    pub fn start(extra: &str) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config");
        std::fs::write(&path, config_text(dir.path(), extra)).expect("write config");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_skywasm"))
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        NodeProcess {
            child,
            log: dir.path().join("node.log"),
            dir,
        }
    }

    /// The first log line containing `needle`, once there is one (see [`wait_for_line`]).
    pub fn wait_for(&self, needle: &str) -> String {
        wait_for_line(&self.log, needle)
    }

    /// The node's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// The most resident memory (KiB) seen while `running` holds, sampled every 2 ms.
    pub fn most_rss_kib_while(&self, running: impl Fn() -> bool) -> u64 {
        let mut most = self.rss_kib();
        // Bounded: a node that stopped taking what it is given fails the test, not hangs it.
        let deadline = Instant::now() + Duration::from_secs(120);
        while running() {
            assert!(
                Instant::now() < deadline,
                "still running after 120 s; the node's log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            most = most.max(self.rss_kib());
            std::thread::sleep(Duration::from_millis(2));
        }
        most
    }

    /// Sends `signal` to the node.
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM: the node must end with exit code 0.
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        assert_eq!(self.child.wait().expect("the node ends").code(), Some(0));
    }
}

impl Drop for NodeProcess {
    /// A test that failed before [`NodeProcess::stop`] leaves no node running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The values after the leading `true` of a Lua driver's `pcall` result.
pub fn ok(values: Vec<Value>) -> Vec<Value> {
    assert_eq!(values.first(), Some(&Value::Boolean(true)), "{values:?}");
    values[1..].to_vec()
}

/// The error text of a Lua driver's failed `pcall`.
pub fn failed(values: Vec<Value>) -> String {
    assert_eq!(values.first(), Some(&Value::Boolean(false)), "{values:?}");
    values[1].as_str().unwrap_or("").to_string()
}

/// A free loopback port's address (bound and released: a test's own ports do not collide).
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The config lines of harbor node `id` joining the master at `master` (listening at a
/// free address of its own); the master itself too when `standalone`.
pub fn harbor_lines(id: u8, master: &str, standalone: bool) -> String {
    let mut lines = format!(
        "harbor = {id}\nmaster = \"{master}\"\naddress = \"{}\"\n",
        free_address()
    );
    if standalone {
        lines.push_str(&format!("standalone = \"{master}\"\n"));
    }
    lines
}

/// Metrics in the Prometheus text format, read with a Prometheus text-format parser.
pub fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format")
}

/// The series `name` whose labels include `labels`.
pub fn series<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}
