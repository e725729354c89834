//! The `skywasm` binary, run as a user would: help, version, the example, bad configs,
//! signals, log files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn skywasm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skywasm"));
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("skywasm runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(skywasm().arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Usage: skywasm <CONFIG>"), "{out}");
    let (code, out, _) = run(skywasm().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("skywasm {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_example_runs_lua_rust_and_c_services_until_ctrl_c() {
    run_example_until_ctrl_c(
        "examples/config",
        &[
            "LAUNCH snlua launcher",
            "main: simpledb GET greeting -> hello from Lua",
            "main: uniqueservice again gives the same service: true",
            "ping: done after 3 rounds",
            "main: datacenter example.started_at =",
            "main: heartbeat, up",
            "main: PING 1 -> \"PONG\", 1, 1",
            "main: echo_c answered \"C HEARD: HELLO FROM RUST\"",
        ],
    );
}

#[test]
fn the_gate_example_serves_its_client_through_watchdog_and_agent() {
    run_example_until_ctrl_c(
        "examples/gate_config",
        &[
            "Listen on 127.0.0.1:8888",
            "watchdog: new client from 127.0.0.1:",
            "client: \"echo hello, gate\" -> \"echo hello, gate\"",
            "client: \"quit\" -> \"bye\"",
            "client done",
        ],
    );
}

/// A running `skywasm` on an example config, its stdout read line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    out: String,
}

impl Running {
    fn start(config: &str) -> Running {
        use std::io::BufRead;
        let mut child = skywasm()
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            out: String::new(),
        }
    }

    /// Reads until every needle was printed.
    fn expect(&mut self, needles: &[&str]) {
        let mut needles = needles.to_vec();
        let deadline = Instant::now() + WAIT;
        while !needles.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                let _ = self.child.kill();
                panic!("missing {needles:?} in:\n{}", self.out);
            };
            needles.retain(|needle| !line.contains(needle));
            self.out.push_str(&line);
            self.out.push('\n');
        }
    }

    /// Ctrl-C: the node must stop with exit code 0 and print nothing on stderr.
    fn stop(mut self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.out);
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.is_empty(), "nothing on stderr: {err}");
    }
}

/// Runs the binary on an example config until every needle was printed, then sends SIGINT:
/// the node must stop with exit code 0 and print nothing on stderr.
fn run_example_until_ctrl_c(config: &str, needles: &[&str]) {
    let mut running = Running::start(config);
    running.expect(needles);
    running.stop();
}

/// The example node with its metrics on (docs/operations.md) serves them over HTTP: the
/// node's, its tenant's, and the busiest services' series, in the Prometheus text format.
#[test]
fn the_metrics_example_serves_prometheus_text() {
    let mut running = Running::start("examples/metrics_config");
    running.expect(&[
        "metrics: serving http://127.0.0.1:9180/metrics",
        "main: simpledb GET greeting -> hello from Lua",
    ]);
    let text = ureq::get("http://127.0.0.1:9180/metrics")
        .call()
        .expect("the example serves its metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    let scrape = parse_metrics(&text);
    for (name, labels) in [
        ("skywasm_services", &[][..]),
        ("skywasm_workers", &[][..]),
        ("skywasm_tenant_services", &[("tenant", "node")][..]),
        (
            "skywasm_tenant_messages_received_total",
            &[("tenant", "node")][..],
        ),
    ] {
        assert!(
            series(&scrape, name, labels).is_some(),
            "no {name} in:\n{text}"
        );
    }
    running.stop();
}

/// The README's two-node example: game calls db's `@sdb` over the cluster, fails clearly
/// while db is not running, and gets through once it is.
#[test]
fn the_cluster_example_joins_two_nodes() {
    let mut game = Running::start("examples/cluster/game_config");
    game.expect(&["node game: call failed: network: cannot reach node `db`"]);
    let mut db = Running::start("examples/cluster/db_config");
    db.expect(&["node db: @sdb is served on 127.0.0.1:2528"]);
    game.expect(&["(db's @sdb, over the cluster)"]);
    game.stop();
    db.stop();
}

/// The README's harbor example: node 2 calls node 1's global name `SDB` and its
/// datacenter, and sees the link go down when node 1 stops.
#[test]
fn the_harbor_example_joins_two_nodes() {
    let mut master = Running::start("examples/harbor/master_config");
    master.expect(&["harbor 1: SDB is :01000008"]);
    let mut slave = Running::start("examples/harbor/slave_config");
    slave.expect(&[
        "harbor 2: SDB is :01000008 on harbor 1",
        "harbor 2: visits nil -> 1 (SDB on harbor 1; datacenter last_visit",
    ]);
    master.stop();
    slave.expect(&["harbor 2: the link to harbor 1 is down"]);
    slave.stop();
}

#[test]
fn a_bad_config_gets_one_line_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("syntax", "thread = 2\nharbor = = 0\n", "syntax:2:"),
        (
            "env",
            "a = 1\nb = \"$SKYWASM_TEST_UNSET_VARIABLE\"\n",
            "env:2: environment variable SKYWASM_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "value",
            "harbor = 0\nthread = 'lots'\n",
            "value:2: `thread = \"lots\"`: expected an integer",
        ),
        ("table", "a = 1\nt = {}\n", "table:2: `t` is a table"),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = run(skywasm().arg(&path));
        assert_ne!(code, 0, "{name}");
        assert!(out.is_empty(), "{name}: {out}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
    let (code, _, err) = run(skywasm().arg(dir.path().join("missing")));
    assert_ne!(code, 0);
    assert!(err.contains("missing: cannot read"), "{err}");
}

#[test]
fn a_missing_start_module_is_logged_and_a_missing_bootstrap_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        config_text(dir.path(), "bootstrap = \"no_such_bootstrap\""),
    )
    .unwrap();
    let (code, _, err) = run(skywasm().arg(&path));
    assert_ne!(code, 0);
    assert!(
        err.contains("bootstrap error: cannot launch `no_such_bootstrap`"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_node_with_exit_code_0_and_sighup_reopens_the_log() {
    let mut node = NodeProcess::start("");
    let log = node.log.clone();
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("LAUNCH probe")
    {
        assert!(Instant::now() < deadline, "the node never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Rotate: move the file away, SIGHUP, and the logger opens a new one.
    std::fs::rename(&log, node.dir.path().join("node.log.1")).unwrap();
    node.signal(libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while !log.exists() {
        assert!(Instant::now() < deadline, "SIGHUP did not reopen the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.signal(libc::SIGTERM);
    let status = node.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("signal 15: stopping"), "{text}");
    // File log lines carry skynet's timestamp prefix.
    let first = text.lines().next().unwrap();
    assert!(
        first.as_bytes()[2] == b'/' && first.contains("] "),
        "{first}"
    );
}

/// A node of its own, whose RSS alone is measured: a client floods a busy Lua gate with
/// 256 MiB; the node's RSS grows by at most its `socket_backlog` (4 MiB) plus a stated
/// constant (48 MiB: allocator slack, buffers, the gate's Lua heap), and every byte arrives.
#[test]
fn a_flood_into_a_busy_gate_keeps_the_nodes_rss_within_its_backlog() {
    use std::io::Write;
    const FLOOD: usize = 256 << 20;
    let node = NodeProcess::start(&format!(
        "luaservice = \"{}/?.lua\"\ncpu_limit = 5000\nsocket_backlog = \"4M\"\n\
         tenants = {{ gate = {{ trusted = true, start = \"snlua bounds_gate alone\" }} }}",
        lua_dir().display()
    ));
    let port: u16 = node
        .wait_for("GATE LISTENING ")
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let before = node.rss_kib();
    let flood = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..FLOOD / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
    });
    let most = node.most_rss_kib_while(|| !flood.is_finished());
    flood.join().unwrap();
    node.wait_for(&format!("GATE RECEIVED {FLOOD}"));
    let grown_mib = most.saturating_sub(before) / 1024;
    node.stop();
    assert!(
        grown_mib <= 4 + 48,
        "the node's RSS grew by {grown_mib} MiB"
    );
}

/// A node of its own under every host-memory attack an untrusted tenant's Lua services can
/// make, all at once for 5 s (tests/lua/bounds_battery.lua: log floods, refused GETENVs of
/// 1 MiB keys, names, timers, full mailboxes, launches with 1 MiB arguments, unanswered
/// calls, memory up to the limit): the node's RSS grows by at most the tenant's caps
/// (`tenant_memory` 64 MiB, `tenant_mailbox_bytes` 8 MiB, `log_backlog` 4 MiB) plus a
/// stated constant (32 MiB), the caps are met (refusals), and a calm service of another
/// tenant gets every answer meanwhile. (The tenant cap leaves every attacker room to reach
/// its own limits: at the tenant's cap a Lua service may fault rather than raise, see
/// docs/tenants.md.)
#[test]
fn every_attack_of_a_tenant_at_once_keeps_the_nodes_rss_within_its_caps() {
    const ATTACKS: [&str; 8] = [
        "log", "getenv", "names", "timers", "mail", "launch", "owe", "grow",
    ];
    let starts: Vec<String> = ATTACKS
        .iter()
        .map(|mode| format!("\"snlua bounds_battery {mode} 5\""))
        .collect();
    let node = NodeProcess::start(&format!(
        "luaservice = \"{}/?.lua\"\nlog_backlog = \"4M\"\n\
         tenants = {{\n\
           r = {{ memory = \"16M\", tenant_memory = \"64M\", tenant_mailbox_bytes = \"8M\", timers = 200,\n\
                 launch = {{ \"snlua bounds_battery\" }}, start = {{ {} }} }},\n\
           calm = {{ trusted = true, start = \"snlua bounds_battery calm 7\" }},\n\
         }}",
        lua_dir().display(),
        starts.join(", ")
    ));
    for mode in ATTACKS.iter().chain(&["calm"]) {
        node.wait_for(&format!("BATTERY READY {mode}"));
    }
    let before = node.rss_kib();
    let log = node.log.clone();
    let done = std::thread::spawn(move || {
        let mut counts = std::collections::HashMap::new();
        for mode in ATTACKS.iter().chain(&["calm"]) {
            let line = wait_for_line(&log, &format!("BATTERY DONE {mode} "));
            let mut numbers = line.rsplit(' ').map(|n| n.parse::<u64>().unwrap());
            let worked = numbers.next().unwrap();
            let tried = numbers.next().unwrap();
            counts.insert(*mode, (tried, worked));
        }
        counts
    });
    let most = node.most_rss_kib_while(|| !done.is_finished());
    let counts = done.join().unwrap();
    let grown_mib = most.saturating_sub(before) / 1024;
    node.stop();
    eprintln!("attempts and successes: {counts:?}; RSS grew by {grown_mib} MiB");
    for mode in ["names", "timers", "mail", "grow"] {
        let (tried, worked) = counts[mode];
        assert!(worked < tried, "{mode}: no attempt of {tried} was refused");
    }
    for mode in ["getenv", "launch"] {
        assert_eq!(counts[mode].1, 0, "{mode}: an attempt was allowed");
    }
    let (asked, answered) = counts["calm"];
    assert!(
        answered > 0 && answered == asked,
        "calm: {answered} of {asked}"
    );
    assert!(
        grown_mib <= 64 + 8 + 4 + 32,
        "the node's RSS grew by {grown_mib} MiB"
    );
}
