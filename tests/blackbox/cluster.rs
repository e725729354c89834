//! Cluster: skywasm nodes calling each other's services in skynet's cluster protocol, over
//! loopback (docs/cluster.md). Each node is a real node started from a config file; the Lua
//! scripts are tests/lua/cluster_server.lua (the called side) and cluster_driver.lua.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use skywasm::Handle;
use skywasm_pack::{Table, Value};

use crate::support::*;

/// A node whose `cluster_server` listens (on `port`, 0: a free one); its cluster address.
fn server(port: u16) -> (TestNode, String) {
    server_with("", port)
}

/// [`server`] with extra config lines.
fn server_with(extra: &str, port: u16) -> (TestNode, String) {
    let t = start_lua(extra);
    t.launch("snlua", &format!("cluster_server listen {port}"));
    let log = t.wait_log("CLUSTER LISTENING ");
    let at = log
        .lines()
        .find_map(|l| l.split_once("CLUSTER LISTENING "))
        .map(|(_, at)| at.trim().to_string())
        .expect("the server logs where it listens");
    (t, at)
}

/// A node running the driver, whose node table is `nodes`.
fn client(extra: &str, nodes: &[(&str, Value)]) -> (TestNode, Handle) {
    let mut t = start_lua(extra);
    let driver = t.launch("snlua", "cluster_driver");
    reload(&mut t, driver, nodes);
    (t, driver)
}

fn reload(t: &mut TestNode, driver: Handle, nodes: &[(&str, Value)]) {
    let table = Value::Table(Table {
        array: Vec::new(),
        hash: nodes.iter().map(|(k, v)| (s(k), v.clone())).collect(),
    });
    assert_eq!(
        t.ask(driver, &[s("RELOAD"), table]),
        vec![Value::Boolean(true)]
    );
}

#[test]
fn two_nodes_call_push_query_and_proxy_by_name_and_by_number() {
    let (server_node, at) = server(0);
    let (mut c, d) = client("", &[("db", s(&at))]);
    assert_eq!(
        ok(c.ask(
            d,
            &[s("CALL"), s("db"), s("@echo"), s("ECHO"), i(1), s("two")]
        )),
        vec![i(1), s("two")]
    );
    assert_eq!(
        ok(c.ask(
            d,
            &[s("CALL"), s("db"), s(".echo"), s("ECHO"), s("local name")]
        )),
        vec![s("local name")]
    );
    let handle = ok(c.ask(d, &[s("QUERY"), s("db"), s("echo")]))[0].clone();
    assert_eq!(
        ok(c.ask(d, &[s("CALL"), s("db"), handle.clone(), s("HANDLE")])),
        vec![handle.clone()]
    );
    // Unknown names, remote errors: `call failed` with the reason.
    let why = failed(c.ask(d, &[s("QUERY"), s("db"), s("nobody")]));
    assert!(
        why.contains("call failed: remote error from node `db`: name not found"),
        "{why}"
    );
    let why = failed(c.ask(d, &[s("CALL"), s("db"), s("@nobody"), s("ECHO")]));
    assert!(why.contains("Invalid name"), "{why}");
    let why = failed(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("FAIL"), s("boom")]));
    assert!(
        why.contains("call failed: remote error from node `db`"),
        "{why}"
    );
    // 1,000 pushes arrive, in order.
    assert_eq!(
        ok(c.ask(d, &[s("PUSHES"), s("db"), s("@echo"), i(1000)])),
        vec![i(1000), i(0)]
    );
    // A traced call sends its tag ahead (skynet's trace packet); the server logs it.
    assert_eq!(
        ok(c.ask(
            d,
            &[s("TRACED"), s("db"), s("@echo"), s("ECHO"), s("traced")]
        )),
        vec![s("traced")]
    );
    let log = server_node.wait_log("cluster: trace (skywasm");
    assert!(
        log.contains("-db-") && log.contains("Name(\"@echo\")"),
        "{log}"
    );
    // Proxies, in skynet's three forms; one per target.
    let proxy = ok(c.ask(d, &[s("PROXY"), s("db"), s("@echo")]))[0].clone();
    assert_eq!(ok(c.ask(d, &[s("PROXY"), s("db@echo")]))[0], proxy);
    let by_local = ok(c.ask(d, &[s("PROXY"), s("db.echo")]))[0].clone();
    assert_ne!(by_local, proxy);
    for p in [proxy, by_local] {
        assert_eq!(
            ok(c.ask(d, &[s("PROXY_CALL"), p, s("ECHO"), s("via proxy")])),
            vec![s("via proxy")]
        );
    }
}

#[test]
fn payloads_around_the_multipart_threshold_both_ways() {
    let (_server, at) = server(0);
    let (mut c, d) = client("", &[("db", s(&at))]);
    let handle = ok(c.ask(d, &[s("QUERY"), s("db"), s("echo")]))[0].clone();
    for payload in [32767usize, 32768, 32769, 100_000] {
        // A request `SIZE s` packs to 5 + a string header (3 bytes under 64 KiB, else 5).
        let header = if payload - 8 < 65536 { 3 } else { 5 };
        let text = "x".repeat(payload - 5 - header);
        for address in [s("@echo"), handle.clone()] {
            let size = ok(c.ask(
                d,
                &[s("CALL"), s("db"), address.clone(), s("SIZE"), s(&text)],
            ));
            assert_eq!(size, vec![i(text.len() as i64)], "request of {payload}");
            // A reply of `payload` bytes: one string, packed with its header.
            let header = if payload - 3 < 65536 { 3 } else { 5 };
            let reply = ok(c.ask(
                d,
                &[
                    s("CALL"),
                    s("db"),
                    address.clone(),
                    s("BIG"),
                    i((payload - header) as i64),
                ],
            ));
            assert_eq!(
                reply[0].as_str().map(str::len),
                Some(payload - header),
                "reply of {payload}"
            );
            // A push of `payload` bytes (`ECHO text` packs as `SIZE text` does).
            let push = &[s("SEND"), s("db"), address.clone(), s("ECHO"), s(&text)];
            assert_eq!(c.ask(d, push), vec![Value::Boolean(true)]);
        }
    }
    // The pushes went through: the connection is still in order.
    assert_eq!(
        ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), s("after")])),
        vec![s("after")]
    );
}

#[test]
fn thirty_two_concurrent_calls_get_their_own_replies_in_reverse_order() {
    // With the defaults, with the network assist, and with workers doing all the work (no
    // busy polling).
    for extra in ["", "network_assist = true", "cluster_busy_poll = 0"] {
        let (_server, at) = server_with(extra, 0);
        let (mut c, d) = client(extra, &[("db", s(&at))]);
        let reply = c.ask(d, &[s("CONCURRENT"), s("db"), s("@echo"), i(32)]);
        let order: Vec<i64> = match &reply[0] {
            Value::Table(t) => t.array.iter().filter_map(Value::as_integer).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(order, (1..=32).rev().collect::<Vec<_>>(), "{extra}");
        assert_eq!(reply[1], Value::Table(Table::new()), "{extra}");
        assert_eq!(
            ok(c.ask(d, &[s("PUSHES"), s("db"), s("@echo"), i(1000)])),
            vec![i(1000), i(0)],
            "{extra}"
        );
    }
}

#[test]
fn three_nodes_call_each_other_and_relay_failures_with_their_reasons() {
    let (b_node, b_at) = server(0);
    let (c_node, c_at) = server(0);
    // Node `a` knows both; `b` serves `a` and calls `c` (its own table names only `c`).
    let (mut a, d) = client("", &[("b", s(&b_at)), ("c", s(&c_at))]);
    let mut b = b_node;
    let b_driver = b.launch("snlua", "cluster_driver");
    reload(&mut b, b_driver, &[("c", s(&c_at))]);
    for (node, tag) in [("b", "to b"), ("c", "to c")] {
        assert_eq!(
            ok(a.ask(d, &[s("CALL"), s(node), s("@echo"), s("ECHO"), s(tag)])),
            vec![s(tag)]
        );
    }
    // a -> b -> c and back (b's service calls c while serving a).
    let relay = |tail: &[Value]| {
        let mut args = vec![
            s("CALL"),
            s("b"),
            s("@echo"),
            s("RELAY"),
            s("c"),
            s("@echo"),
        ];
        args.extend_from_slice(tail);
        args
    };
    assert_eq!(
        ok(a.ask(d, &relay(&[s("ECHO"), s("via b")]))),
        vec![s("via b")]
    );
    let reply = a.ask(d, &[s("CONCURRENT"), s("c"), s("@echo"), i(32)]);
    assert_eq!(reply[1], Value::Table(Table::new()), "{reply:?}");
    // Pushes to two nodes each arrive in order.
    for node in ["b", "c"] {
        assert_eq!(
            ok(a.ask(d, &[s("PUSHES"), s(node), s("@echo"), i(500)])),
            vec![i(500), i(0)]
        );
    }
    // `c` goes away: `a`'s calls to it fail as a network error, and the relay through `b`
    // as a remote error of `b` (whose service raised; as in skynet, a local error reply
    // carries no text, so the reason is `call failed`).
    drop(c_node);
    let why = failed(a.ask(d, &[s("CALL"), s("c"), s("@echo"), s("ECHO")]));
    assert!(
        why.contains("call failed: network:") && why.contains("`c`"),
        "{why}"
    );
    let why = failed(a.ask(d, &relay(&[s("ECHO")])));
    assert!(
        why.contains("call failed: remote error from node `b`: call failed"),
        "{why}"
    );
    // `b` itself is unaffected.
    assert_eq!(
        ok(a.ask(d, &[s("CALL"), s("b"), s("@echo"), s("ECHO"), s("still")])),
        vec![s("still")]
    );
}

#[test]
fn down_unknown_and_later_named_nodes() {
    let (_server, at) = server(0);
    let (mut c, d) = client("", &[("db", Value::Boolean(false))]);
    let why = failed(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO")]));
    assert!(why.contains("node `db` is down"), "{why}");
    // Without __nowaiting a call to an unknown node waits until the table names it.
    let waiting = c.request(
        d,
        &[s("CALL"), s("later"), s("@echo"), s("ECHO"), s("waited")],
    );
    reload(&mut c, d, &[("later", s(&at))]);
    assert_eq!(ok(c.wait(d, waiting).unwrap()), vec![s("waited")]);
    reload(&mut c, d, &[("__nowaiting", Value::Boolean(true))]);
    let why = failed(c.ask(d, &[s("CALL"), s("nope"), s("@echo"), s("ECHO")]));
    assert!(why.contains("unknown node `nope`"), "{why}");
}

#[test]
fn a_peer_that_dies_mid_stream_fails_its_calls_promptly_and_comes_back() {
    let (server_node, at) = server(0);
    let port: u16 = at.rsplit_once(':').unwrap().1.parse().unwrap();
    let (mut c, d) = client("", &[("db", s(&at))]);
    assert_eq!(
        ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), i(1)])),
        vec![i(1)]
    );
    // Five calls waiting 30 s each; the server goes away under them.
    assert_eq!(
        c.ask(d, &[s("INFLIGHT"), s("db"), s("@echo"), i(5), i(3000)]),
        vec![Value::Boolean(true)]
    );
    std::thread::sleep(Duration::from_millis(200));
    drop(server_node);
    let results = c.ask(d, &[s("RESULTS")]);
    let Value::Table(results) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(results.array.len(), 5);
    for result in &results.array {
        let Value::Table(r) = result else { panic!() };
        assert_eq!(r.array[0], Value::Boolean(false), "{r:?}");
        let why = r.array[1].as_str().unwrap_or("");
        assert!(
            why.contains("network: connection to node `db` lost"),
            "{why}"
        );
        let ticks = r.array[2].as_integer().unwrap();
        assert!(
            ticks < 3000,
            "failed when the peer died, not at its time limit ({ticks} cs)"
        );
    }
    // Nobody listens now: calls fail fast.
    let started = Instant::now();
    let why = failed(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO")]));
    assert!(why.contains("network: cannot reach node `db`"), "{why}");
    assert!(started.elapsed() < WAIT);
    // A new server on the same port: a later call gets through once the backoff allows.
    let (_again, again_at) = server(port);
    assert_eq!(again_at, at);
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), s("back")]);
        if reply[0] == Value::Boolean(true) {
            assert_eq!(reply[1], s("back"));
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A listener that accepts and reads, and never answers.
fn mute_peer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    at
}

#[test]
fn timeouts_fire_on_a_peer_that_never_answers() {
    let mute = mute_peer();
    let (mut c, d) = client("", &[("mute", s(&mute))]);
    let started = Instant::now();
    let why = failed(c.ask(
        d,
        &[s("CALL_TIMEOUT"), i(30), s("mute"), s("@echo"), s("ECHO")],
    ));
    assert!(
        why.contains("timeout: no reply from node `mute` within 300 ms"),
        "{why}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The node-wide default.
    let (mut c, d) = client("cluster_timeout = 200", &[("mute", s(&mute))]);
    let why = failed(c.ask(d, &[s("CALL"), s("mute"), s("@echo"), s("ECHO")]));
    assert!(why.contains("within 200 ms"), "{why}");
}

#[test]
fn garbage_and_truncated_frames_close_that_connection_only() {
    let (server_node, at) = server(0);
    let (mut c, d) = client("", &[("db", s(&at))]);
    for garbage in [
        vec![0x00, 0x03, 0x09, 1, 2],          // an unknown kind
        vec![0x00, 0x00],                      // an empty packet
        vec![0x00, 0x04, 0x80, 9, b'@', b'x'], // a name longer than its packet
        vec![
            0x00, 0x0d, 0x01, 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ], // 4 GiB declared
    ] {
        let mut peer = TcpStream::connect(&at).unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        peer.write_all(&garbage).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(
            peer.read(&mut byte).unwrap_or(0),
            0,
            "closed after {garbage:?}"
        );
    }
    // A truncated frame, then the peer leaves.
    let mut peer = TcpStream::connect(&at).unwrap();
    peer.write_all(&[0x00, 0x64, 0x00, 1, 2, 3]).unwrap();
    drop(peer);
    let log = server_node.wait_log("cluster: closed the connection from");
    assert!(log.contains("malformed packet"), "{log}");
    assert_eq!(
        ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), s("fine")])),
        vec![s("fine")]
    );
    assert!(!server_node.node.handle().is_stopping());
}

/// `cluster.reload{...}` merges into the node table as skynet's clusterd does: a node named
/// only in the config's `cluster` file keeps its address through a partial reload, an
/// option given alone changes nothing else, and `reload()` re-reads the file and merges it.
#[test]
fn a_partial_reload_keeps_the_nodes_it_does_not_name() {
    let (_db, db_at) = server(0);
    let (_db2, db2_at) = server(0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("db = \"{db_at}\"\n")).unwrap();
    let mut c = start_lua(&format!("cluster = \"{}\"", file.path().display()));
    let d = c.launch("snlua", "cluster_driver");
    let call = |c: &mut TestNode, node: &str| {
        c.ask(d, &[s("CALL"), s(node), s("@echo"), s("ECHO"), s(node)])
    };
    reload(&mut c, d, &[("c", Value::Boolean(false))]);
    assert_eq!(
        ok(call(&mut c, "db")),
        vec![s("db")],
        "named only in the file"
    );
    assert!(failed(call(&mut c, "c")).contains("node `c` is down"));
    reload(&mut c, d, &[("__nowaiting", Value::Boolean(true))]);
    assert_eq!(ok(call(&mut c, "db")), vec![s("db")]);
    assert!(failed(call(&mut c, "nope")).contains("unknown node `nope`"));
    // The file now names only a new node: reading it again adds that one and forgets none.
    std::fs::write(file.path(), format!("db2 = \"{db2_at}\"\n")).unwrap();
    assert_eq!(c.ask(d, &[s("RELOAD")]), vec![Value::Boolean(true)]);
    assert_eq!(ok(call(&mut c, "db2")), vec![s("db2")]);
    assert_eq!(ok(call(&mut c, "db")), vec![s("db")]);
    assert!(failed(call(&mut c, "c")).contains("node `c` is down"));
}

/// The console lists the nodes with their connections, and reloads the node file.
#[test]
fn the_console_shows_nodes_and_reloads_the_node_file() {
    let (_server, at) = server(0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("db = \"{at}\"\ngone = false\n")).unwrap();
    let mut c = start_lua(&format!("cluster = \"{}\"", file.path().display()));
    let d = c.launch("snlua", "cluster_driver");
    assert_eq!(
        ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), i(7)])),
        vec![i(7)]
    );
    c.ask(d, &[s("CONSOLE")]);
    let log = c.wait_log("Start debug console at 127.0.0.1:");
    let port = log
        .lines()
        .find_map(|l| l.split_once("Start debug console at 127.0.0.1:"))
        .and_then(|(_, p)| p.trim().parse::<u16>().ok())
        .unwrap();
    let mut console = TcpStream::connect(("127.0.0.1", port)).unwrap();
    console.set_read_timeout(Some(WAIT)).unwrap();
    let mut run = |command: &str| {
        console
            .write_all(format!("{command}\n").as_bytes())
            .unwrap();
        let mut text = String::new();
        let mut byte = [0u8; 1];
        while !text.ends_with("<CMD OK>\n") && !text.ends_with("<CMD Error>\n") {
            assert_eq!(console.read(&mut byte).unwrap(), 1, "{text}");
            text.push(byte[0] as char);
        }
        text
    };
    let nodes = run("cluster");
    assert!(
        nodes.contains(&format!("db\t{at} connected in-flight 0 sent ")),
        "{nodes}"
    );
    assert!(nodes.contains("gone\tdown idle"), "{nodes}");
    std::fs::write(file.path(), "db = false\n").unwrap();
    assert!(run("cluster reload").contains("the node table was reloaded"));
    let why = failed(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO")]));
    assert!(why.contains("node `db` is down"), "{why}");
}

/// The Rust SDK's cluster operations, from a Rust service.
#[test]
fn a_rust_service_uses_the_cluster() {
    let (_server, at) = server(0);
    let mut c = start_lua("");
    let probe = c.launch("probe", "");
    assert_eq!(
        c.ask(probe, &[s("cluster_reload"), s("db"), s(&at)]),
        vec![i(0)]
    );
    assert_eq!(
        c.ask(
            probe,
            &[
                s("cluster_call"),
                s("db"),
                s("@echo"),
                s("ECHO"),
                s("from rust")
            ]
        ),
        vec![s("ok"), s("from rust")]
    );
    let handle = c.ask(probe, &[s("cluster_query"), s("db"), s("echo")]);
    assert!(matches!(handle[0], Value::Integer(_)), "{handle:?}");
    assert_eq!(
        c.ask(
            probe,
            &[
                s("cluster_call"),
                s("db"),
                handle[0].clone(),
                s("ECHO"),
                i(3)
            ]
        ),
        vec![s("ok"), i(3)]
    );
    let failed = c.ask(
        probe,
        &[s("cluster_call"), s("db"), s("@nobody"), s("ECHO")],
    );
    assert_eq!(failed[0], s("error"));
    assert!(
        failed[1].as_str().unwrap_or("").contains("Invalid name"),
        "{failed:?}"
    );
    assert_eq!(
        c.ask(probe, &[s("cluster_reload"), s("db"), s("")]),
        vec![i(0)]
    );
    let down = c.ask(probe, &[s("cluster_call"), s("db"), s("@echo"), s("ECHO")]);
    assert!(
        down[1].as_str().unwrap_or("").contains("node `db` is down"),
        "{down:?}"
    );
}

/// `cluster_secret`: nodes that share it talk; a node with another secret, or none, is
/// refused, and both sides say why.
#[test]
fn nodes_sharing_a_secret_talk_and_others_are_refused() {
    let (server_node, at) = server_with("cluster_secret = \"hush\"", 0);
    let call =
        |c: &mut TestNode, d| c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), s("hi")]);
    let (mut c, d) = client("cluster_secret = \"hush\"", &[("db", s(&at))]);
    assert_eq!(ok(call(&mut c, d)), vec![s("hi")]);

    let (mut c, d) = client("cluster_secret = \"wrong\"", &[("db", s(&at))]);
    let why = failed(call(&mut c, d));
    assert!(
        why.contains("network: cannot reach node `db`") && why.contains("handshake"),
        "{why}"
    );
    server_node.wait_log("does not hold this node's cluster_secret");

    let (mut c, d) = client("", &[("db", s(&at))]);
    let why = failed(call(&mut c, d));
    assert!(
        why.contains("network: connection to node `db` lost"),
        "{why}"
    );
    server_node.wait_log("did not answer with skywasm's handshake");

    let (_plain, plain_at) = server(0);
    let (mut c, d) = client("cluster_secret = \"hush\"", &[("db", s(&plain_at))]);
    let why = failed(call(&mut c, d));
    assert!(why.contains("no handshake from the peer in time"), "{why}");
}

/// Guest code the network thread runs for a cluster request (its assist, while the workers
/// sleep) may call WASI — a Lua `io.write` — and a handler that runs long there is run by
/// the workers from then on, while every call keeps being answered.
#[test]
fn guest_code_on_the_network_thread_writes_and_is_held_to_its_budget() {
    let (server_node, at) = server_with("network_assist = true", 0);
    let (mut c, d) = client("", &[("db", s(&at))]);
    for n in 0..50 {
        let text = format!("written from a cluster request {n}");
        assert_eq!(
            ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("WRITE"), s(&text)])),
            vec![Value::Boolean(true)]
        );
    }
    server_node.wait_log("written from a cluster request 49");
    for _ in 0..8 {
        assert_eq!(
            ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("SPIN"), i(3)])),
            vec![Value::Boolean(true)]
        );
        assert_eq!(
            ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), s("still")])),
            vec![s("still")]
        );
    }
    let log = server_node.log_text();
    // The 30 ms handler ran on the network thread while the workers slept, three times,
    // then never again (of eight).
    assert_eq!(
        log.matches("ran past the network thread's budget").count(),
        1,
        "{log}"
    );
}

/// A raw peer speaking skynet's cluster wire format.
struct RawPeer {
    stream: TcpStream,
    packets: skywasm_cluster_wire::PacketReader,
    replies: skywasm_cluster_wire::ResponseAssembler,
}

impl RawPeer {
    fn connect(at: &str) -> RawPeer {
        let stream = TcpStream::connect(at).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        RawPeer {
            stream,
            packets: skywasm_cluster_wire::PacketReader::new(),
            replies: skywasm_cluster_wire::ResponseAssembler::new(64 << 20),
        }
    }

    /// Sends a call (`session` > 0) or a push (0) of `values` to `name`.
    fn send(&mut self, name: &str, session: u32, values: &[Value]) {
        let msg = skywasm_pack::pack(values).unwrap();
        let mut out = Vec::new();
        let address = skywasm_cluster_wire::Address::Name(name.into());
        skywasm_cluster_wire::encode_request(&address, session, session == 0, &msg, &mut out)
            .unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// The next reply: its session, and the values or the error text.
    fn reply(&mut self) -> (u32, Result<Vec<Value>, String>) {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            while let Some(body) = self.packets.next_packet().unwrap() {
                if let Some((session, reply)) = self.replies.packet(&body).unwrap() {
                    let reply = reply
                        .map(|bytes| skywasm_pack::unpack(&bytes).unwrap())
                        .map_err(|why| String::from_utf8_lossy(&why).into_owned());
                    return (session, reply);
                }
            }
            let n = self.stream.read(&mut buffer).expect("a reply in time");
            assert!(n > 0, "the node closed the connection");
            self.packets.extend(&buffer[..n]);
        }
    }
}

/// A peer flooding a busy service with pushes stops being read once the service's mailbox
/// holds its backlog, and every push arrives, in order, once the service drains.
#[test]
fn a_peer_flooding_a_busy_service_is_paused_and_nothing_is_lost() {
    const PUSHES: i64 = 12_000;
    let (server_node, at) = server_with("socket_backlog = \"1M\"", 0);
    let shared = server_node.node.handle();
    let calm = Calm::start(&shared);
    let echo = shared.query(".echo").unwrap();
    let mut peer = RawPeer::connect(&at);
    peer.send("@echo", 0, &[s("SPIN"), i(150)]);
    let pad = "p".repeat(4000);
    let flood = std::thread::spawn(move || {
        for n in 1..=PUSHES {
            peer.send("@echo", 0, &[s("NOTE"), i(n), s(&pad)]);
        }
        peer
    });
    let mut most = 0;
    while !flood.is_finished() {
        most = most.max(shared.service(echo).map_or(0, |s| s.queue_bytes));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut peer = flood.join().unwrap();
    // The backlog, plus what one read of the connection (64 KiB) delivered past it.
    assert!(
        most <= (1 << 20) + (80 << 10),
        "the mailbox held {most} bytes"
    );
    peer.send("@echo", 7, &[s("NOTES")]);
    assert_eq!(peer.reply(), (7, Ok(vec![i(PUSHES), i(0)])));
    calm.finish(std::time::Duration::from_secs(2));
}

/// Caps on what one peer may hold: connections per node, requests awaiting their answers
/// per connection.
#[test]
fn connections_and_requests_in_flight_are_capped() {
    let (server_node, at) = server_with("cluster_max_connections = 2\ncluster_max_pending = 3", 0);
    let mut first = RawPeer::connect(&at);
    let _second = RawPeer::connect(&at);
    let mut third = RawPeer::connect(&at);
    let mut byte = [0u8; 1];
    assert!(
        matches!(third.stream.read(&mut byte), Ok(0)),
        "a third connection is closed at once"
    );
    server_node.wait_log("connections are open (cluster_max_connections");
    for session in 1..=4 {
        first.send("@echo", session, &[s("SLOW"), i(100), i(session as i64)]);
    }
    // The fourth is answered at once, with the reason; the three others in time.
    let (session, refused) = first.reply();
    assert_eq!(session, 4);
    assert!(refused.unwrap_err().contains("cluster_max_pending"));
    let mut answered: Vec<u32> = (0..3).map(|_| first.reply().0).collect();
    answered.sort();
    assert_eq!(answered, [1, 2, 3]);
}

/// With `cluster_tenant`, a peer's requests have that tenant's rights: it reaches only the
/// names the node exports, and `.launcher` launches for it only what the tenant may.
#[test]
fn requests_from_peers_run_with_the_rights_of_cluster_tenant() {
    let (_server_node, at) = server_with(
        r#"cluster_tenant = "peers"
tenants = { node = { export = { ".launcher", ".echo" } }, peers = { cpu = 1000 } }"#,
        0,
    );
    let mut peer = RawPeer::connect(&at);
    peer.send(".echo", 1, &[s("ECHO"), s("hello")]);
    assert_eq!(peer.reply(), (1, Ok(vec![s("hello")])));
    peer.send(".launcher", 2, &[s("LAUNCH"), s("snlua"), s("pong")]);
    let (session, launched) = peer.reply();
    assert_eq!(session, 2);
    assert!(
        launched.is_err(),
        "the peers' tenant launched: {launched:?}"
    );
    // Without it, a peer has the node's rights, as in skynet.
    let (_plain_node, plain_at) = server(0);
    let mut peer = RawPeer::connect(&plain_at);
    peer.send(".launcher", 3, &[s("LAUNCH"), s("snlua"), s("pong")]);
    let (session, launched) = peer.reply();
    assert_eq!(session, 3);
    assert!(launched.is_ok(), "{launched:?}");
}

/// A node of its own, whose RSS alone is measured: a raw peer floods a service busy for 3 s
/// with about 380 MiB of pushes; the node's RSS grows by at most its `socket_backlog`
/// (4 MiB) plus a stated constant (24 MiB), and every push arrives. (Without the
/// backpressure it grew by about 60 MiB here, as fast as a debug build's peer writes.)
#[test]
fn a_peer_flooding_a_busy_node_keeps_its_rss_within_the_backlog() {
    const PUSHES: i64 = 12_000;
    let node = NodeProcess::start(&format!(
        "luaservice = \"{}/?.lua\"\ncpu_limit = 10000\nsocket_backlog = \"4M\"\n\
         tenants = {{ db = {{ trusted = true, start = \"snlua cluster_server listen\" }} }}",
        lua_dir().display()
    ));
    let at = node
        .wait_for("CLUSTER LISTENING ")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut peer = RawPeer::connect(&at);
    peer.send("@echo", 0, &[s("SPIN"), i(300)]);
    let before = node.rss_kib();
    let pad = "p".repeat(32_000);
    let flood = std::thread::spawn(move || {
        for n in 1..=PUSHES {
            peer.send("@echo", 0, &[s("NOTE"), i(n), s(&pad)]);
        }
        peer
    });
    let most = node.most_rss_kib_while(|| !flood.is_finished());
    let mut peer = flood.join().unwrap();
    peer.send("@echo", 7, &[s("NOTES")]);
    assert_eq!(peer.reply(), (7, Ok(vec![i(PUSHES), i(0)])));
    let grown_mib = most.saturating_sub(before) / 1024;
    node.stop();
    assert!(
        grown_mib <= 4 + 24,
        "the node's RSS grew by {grown_mib} MiB"
    );
}

#[test]
fn the_metrics_show_each_peer_its_calls_and_their_latency() {
    let (_server_node, at) = server(0);
    let (mut c, d) = client("metrics = \"127.0.0.1:0\"", &[("db", s(&at))]);
    for n in 0..10 {
        assert_eq!(
            ok(c.ask(d, &[s("CALL"), s("db"), s("@echo"), s("ECHO"), i(n)])),
            vec![i(n)]
        );
    }
    let text = c.node.handle().metrics_text().unwrap();
    let scrape = parse_metrics(&text);
    let sample = |name: &str| {
        series(&scrape, name, &[("peer", "db")])
            .unwrap_or_else(|| panic!("no {name} for db in:\n{text}"))
    };
    assert_eq!(
        sample("skywasm_cluster_peer_connected").labels.get("state"),
        Some("connected")
    );
    assert_eq!(
        sample("skywasm_cluster_peer_connected").value,
        prometheus_parse::Value::Gauge(1.0)
    );
    assert_eq!(
        sample("skywasm_cluster_calls_in_flight").value,
        prometheus_parse::Value::Gauge(0.0)
    );
    assert!(matches!(
        sample("skywasm_cluster_sent_bytes_total").value,
        prometheus_parse::Value::Counter(bytes) if bytes > 0.0
    ));
    let prometheus_parse::Value::Histogram(buckets) = &sample("skywasm_cluster_call_seconds").value
    else {
        panic!("the call latency is not a histogram:\n{text}");
    };
    assert!(
        buckets.last().is_some_and(|b| b.count >= 10.0),
        "{buckets:?}"
    );
}
