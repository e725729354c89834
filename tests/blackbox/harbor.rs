//! Harbor: skywasm nodes joined in skynet's master/slave network over loopback
//! (docs/harbor.md). Each node is a real node started from a config file; the Lua service
//! on each is tests/lua/harbor_peer.lua.

use std::time::{Duration, Instant};

use skywasm::Handle;
use skywasm_pack::Value;

use crate::support::*;

/// A node of the network, with its peer service.
struct Member {
    node: TestNode,
    peer: Handle,
}

fn member(id: u8, master: &str, standalone: bool) -> Member {
    let node = start_lua(&harbor_lines(id, master, standalone));
    let peer = node.launch("snlua", "harbor_peer");
    assert_eq!(peer.harbor(), id, "addresses carry the node's harbor id");
    Member { node, peer }
}

/// What the node's `HARBOR` command (the console's `harbor`) says.
fn harbor_status(m: &mut Member) -> String {
    let status = m.node.ask(m.peer, &[s("STATUS")]);
    status[0].as_str().unwrap_or("").to_string()
}

#[test]
fn three_nodes_call_and_send_each_other_by_address_in_order() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let mut b = member(2, &master, false);
    let mut c = member(3, &master, false);
    // Every pair, both ways: calls answered across the network.
    let members = [a.peer, b.peer, c.peer];
    for (from, node) in [
        (a.peer, &mut a.node),
        (b.peer, &mut b.node),
        (c.peer, &mut c.node),
    ] {
        for to in members {
            if to == from {
                continue;
            }
            let tag = format!("{from} to {to}");
            assert_eq!(
                ok(node.ask(from, &[s("CALL"), h(to), s("ECHO"), s(&tag)])),
                vec![s(&tag)]
            );
        }
    }
    // One-way sends between a pair arrive, all and in order.
    assert_eq!(
        ok(b.node.ask(b.peer, &[s("SENDS"), h(c.peer), i(2000)])),
        vec![i(2000), i(0)]
    );
    assert_eq!(
        ok(c.node.ask(c.peer, &[s("SENDS"), h(a.peer), i(2000)])),
        vec![i(2000), i(0)]
    );
    // A call to an address with no service there fails at once, as a dead local one does.
    let nobody = Handle::from_parts(2, 0xfff);
    let why = failed(a.node.ask(a.peer, &[s("CALL"), h(nobody), s("ECHO")]));
    assert!(!why.is_empty());
    let status = harbor_status(&mut a);
    assert!(status.starts_with("harbor 1 at 127.0.0.1:"), "{status}");
    assert!(
        status.contains(&format!("master {master} connected")),
        "{status}"
    );
    assert!(
        status.contains("harbor 2\tup") && status.contains("harbor 3\tup"),
        "{status}"
    );
}

#[test]
fn a_node_that_goes_down_fails_its_callers_at_once_and_is_linked_again_when_back() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let b = member(2, &master, false);
    // Five calls wait 30 s each in b when b goes away.
    assert_eq!(
        a.node
            .ask(a.peer, &[s("INFLIGHT"), h(b.peer), i(5), i(3000)]),
        vec![Value::Boolean(true)]
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let gone = b.peer;
    drop(b);
    let deadline = Instant::now() + WAIT;
    let results = loop {
        let results = a.node.ask(a.peer, &[s("RESULTS")]);
        if results.len() == 5 || Instant::now() > deadline {
            break results;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(results.len(), 5, "every call got its answer: {results:?}");
    for result in &results {
        let text = result.as_str().unwrap_or("");
        assert!(text.contains("call failed: harbor 2 is down"), "{result:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "not at the calls' own end"
    );
    // Later calls to it fail at once, and the drop is logged as skynet's harbor does.
    let why = failed(a.node.ask(a.peer, &[s("CALL"), h(gone), s("ECHO")]));
    assert!(why.contains("call to invalid address"), "{why}");
    a.node.wait_log("drop message to harbor 2");
    a.node.wait_log("harbor 2 is down");
    // It comes back under the same id: linked again, calls flow.
    let b = member(2, &master, false);
    assert_eq!(
        ok(a.node
            .ask(a.peer, &[s("CALL"), h(b.peer), s("ECHO"), s("again")])),
        vec![s("again")]
    );
}

#[test]
fn a_node_that_cannot_reach_its_master_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let nowhere = free_address();
    std::fs::write(
        &path,
        config_text(dir.path(), &harbor_lines(2, &nowhere, false)),
    )
    .unwrap();
    let config = skywasm::config::NodeConfig::load(&path).unwrap();
    let started = skywasm::Node::start(config);
    let err = started.err().expect("the start fails").to_string();
    assert!(
        err.contains(&format!("cannot join the master at {nowhere}")),
        "{err}"
    );
}

#[test]
fn a_second_node_with_a_taken_id_is_refused() {
    let master = free_address();
    let _a = member(1, &master, true);
    let _b = member(2, &master, false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        config_text(dir.path(), &harbor_lines(2, &master, false)),
    )
    .unwrap();
    let config = skywasm::config::NodeConfig::load(&path).unwrap();
    let err = skywasm::Node::start(config)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("is harbor 2 in use by another node?"), "{err}");
}

/// A peer played by the test: it joins the master as a node of its own, takes the links
/// the nodes open to it, and writes what a broken or hostile node would.
struct FakeNode {
    master: std::net::TcpStream,
    links: Vec<(u8, std::net::TcpStream)>,
}

impl FakeNode {
    fn join(master: &str, id: u8, expected_links: u32) -> FakeNode {
        use skywasm_harbor_wire::{MasterMessage, MasterReader};
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let mut connection = std::net::TcpStream::connect(master).unwrap();
        connection.set_read_timeout(Some(WAIT)).unwrap();
        let mut hello = Vec::new();
        MasterMessage::Handshake { id, address }
            .encode(&mut hello)
            .unwrap();
        connection.write_all(&hello).unwrap();
        let mut reader = MasterReader::new();
        let wait = loop {
            if let Some(message) = reader.next_message().unwrap() {
                break message;
            }
            let mut bytes = [0u8; 64];
            let n = connection.read(&mut bytes).unwrap();
            assert!(n > 0, "the master closed the connection");
            reader.extend(&bytes[..n]);
        };
        assert_eq!(wait, MasterMessage::Wait(expected_links));
        let mut links = Vec::new();
        for _ in 0..expected_links {
            let (mut link, _) = listener.accept().unwrap();
            link.set_read_timeout(Some(WAIT)).unwrap();
            let mut peer = [0u8; 1];
            link.read_exact(&mut peer).unwrap();
            link.write_all(&[id]).unwrap();
            links.push((peer[0], link));
        }
        FakeNode {
            master: connection,
            links,
        }
    }

    fn link_to(&mut self, id: u8) -> &mut std::net::TcpStream {
        &mut self
            .links
            .iter_mut()
            .find(|(peer, _)| *peer == id)
            .expect("a link from that node")
            .1
    }
}

#[test]
fn a_malformed_or_forging_peer_loses_only_its_own_link() {
    use std::io::Write;
    let master = free_address();
    let mut a = member(1, &master, true);
    let b = member(2, &master, false);
    let mut fake = FakeNode::join(&master, 9, 2);
    // To a: a length whose first byte is not 0 (16 MiB or more), which skynet refuses too.
    fake.link_to(1).write_all(&[1, 0, 0, 0]).unwrap();
    a.node.wait_log("harbor 9 is down: a malformed frame");
    // To b: a message claiming to come from a's address.
    let mut frame = Vec::new();
    let header = skywasm_harbor_wire::RemoteHeader {
        source: a.peer.0,
        ptype: 10,
        destination: b.peer.0 & 0x00ff_ffff,
        session: 0,
    };
    skywasm_harbor_wire::encode_remote(&header, b"forged", &mut frame).unwrap();
    fake.link_to(2).write_all(&frame).unwrap();
    b.node.wait_log("not an address of harbor 9");
    // a and b still talk.
    assert_eq!(
        ok(a.node
            .ask(a.peer, &[s("CALL"), h(b.peer), s("ECHO"), s("still")])),
        vec![s("still")]
    );
    // Garbage to the master ends that connection only: the master says harbor 9 is gone.
    fake.master.write_all(&[3, 0xff, 0xff, 0xff]).unwrap();
    a.node.wait_log("harbor master: harbor 9 is down");
    assert_eq!(
        ok(a.node
            .ask(a.peer, &[s("CALL"), h(b.peer), s("ECHO"), s("after")])),
        vec![s("after")]
    );
}

#[test]
fn an_untrusted_tenant_reaches_other_nodes_only_with_the_harbor_capability() {
    let master = free_address();
    let tenants = "tenants = { guest = { launch = { 'snlua' } }, \
                   crosser = { harbor = true, launch = { 'snlua' } } }\n";
    let node = start_lua(&format!("{}{tenants}", harbor_lines(1, &master, true)));
    let b = member(2, &master, false);
    let handle = node.node.handle();
    let guest = handle.launch_in("guest", "snlua", "harbor_peer").unwrap();
    let crosser = handle.launch_in("crosser", "snlua", "harbor_peer").unwrap();
    let mut a = Member { node, peer: guest };
    let why = failed(a.node.ask(guest, &[s("CALL"), h(b.peer), s("ECHO")]));
    assert!(!why.is_empty());
    a.node.wait_log("may not reach other harbor nodes");
    assert_eq!(
        ok(a.node
            .ask(crosser, &[s("CALL"), h(b.peer), s("ECHO"), s("allowed")])),
        vec![s("allowed")]
    );
    assert_eq!(a.peer, guest);
}

#[test]
fn global_names_the_datacenter_and_global_unique_services_work_from_every_node() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let mut b = member(2, &master, false);
    let mut c = member(3, &master, false);
    // A call to a global name nobody registered yet waits until one does.
    let waiting = c
        .node
        .request(c.peer, &[s("CALL"), s("LATER"), s("ECHO"), s("waited")]);
    assert_eq!(
        b.node.ask(b.peer, &[s("REGISTER"), s("LATER")]),
        vec![Value::Boolean(true)]
    );
    assert_eq!(ok(c.node.wait(c.peer, waiting).unwrap()), vec![s("waited")]);
    // Every node finds it, by name and with harbor.queryname.
    for m in [&mut a, &mut c] {
        assert_eq!(
            ok(m.node
                .ask(m.peer, &[s("CALL"), s("LATER"), s("ECHO"), s("by name")])),
            vec![s("by name")]
        );
        assert_eq!(
            m.node.ask(m.peer, &[s("QUERYNAME"), s("LATER")]),
            vec![h(b.peer)]
        );
    }
    // A name registered again elsewhere keeps its first service.
    c.node.ask(c.peer, &[s("REGISTER"), s("LATER")]);
    assert_eq!(
        ok(a.node
            .ask(a.peer, &[s("CALL"), s("LATER"), s("ECHO"), s("still b")])),
        vec![s("still b")]
    );
    let status = harbor_status(&mut a);
    assert!(
        status.contains(&format!("name LATER\t{}", b.peer)),
        "{status}"
    );
    // DATACENTER lives on the standalone node and serves every node.
    b.node.ask(b.peer, &[s("DCSET"), s("round"), i(7)]);
    assert_eq!(c.node.ask(c.peer, &[s("DCGET"), s("round")]), vec![i(7)]);
    assert_eq!(a.node.ask(a.peer, &[s("DCGET"), s("round")]), vec![i(7)]);
    // uniqueservice(true, ...) is one service for the whole network, on the standalone node.
    let from_b = b.node.ask(b.peer, &[s("GUNIQUE"), s("harbor_peer")]);
    let from_c = c.node.ask(c.peer, &[s("GUNIQUE"), s("harbor_peer")]);
    assert_eq!(from_b, from_c);
    let unique = Handle(from_b[0].as_integer().unwrap() as u32);
    assert_eq!(unique.harbor(), 1);
}

#[test]
fn harbor_link_returns_when_the_node_goes_down_and_connect_once_it_is_up() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let b = member(2, &master, false);
    assert_eq!(
        a.node.ask(a.peer, &[s("CONNECT"), i(2)]),
        vec![s("connected")]
    );
    let link = a.node.request(a.peer, &[s("LINK"), i(2)]);
    let connect = a.node.request(a.peer, &[s("CONNECT"), i(3)]);
    drop(b);
    assert_eq!(a.node.wait(a.peer, link).unwrap(), vec![s("link down")]);
    let _c = member(3, &master, false);
    assert_eq!(a.node.wait(a.peer, connect).unwrap(), vec![s("connected")]);
}

#[test]
fn nodes_sharing_a_harbor_secret_join_and_others_are_refused() {
    let master = free_address();
    let secret = "harbor_secret = \"s3cret\"\n";
    let a = start_lua(&format!("{}{secret}", harbor_lines(1, &master, true)));
    let a_peer = a.launch("snlua", "harbor_peer");
    let b = start_lua(&format!("{}{secret}", harbor_lines(2, &master, false)));
    let b_peer = b.launch("snlua", "harbor_peer");
    let mut a = Member {
        node: a,
        peer: a_peer,
    };
    assert_eq!(
        ok(a.node
            .ask(a.peer, &[s("CALL"), h(b_peer), s("ECHO"), s("shared")])),
        vec![s("shared")]
    );
    // A node with another secret, or none, cannot join.
    for other in ["harbor_secret = \"wrong\"\n", ""] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let text = format!("{}{other}", harbor_lines(3, &master, false));
        std::fs::write(&path, config_text(dir.path(), &text)).unwrap();
        let config = skywasm::config::NodeConfig::load(&path).unwrap();
        let err = skywasm::Node::start(config)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("cannot join the master"), "{err}");
    }
    a.node.wait_log("harbor master: refused");
    drop(b);
}

/// A tenant granted `harbor` that floods a node not linked yet (harbor 7 never joins) fills
/// its own `tenant_mailbox_bytes`, not the node-wide room where messages for that node
/// wait: the node's own service still gets all of its messages into the room afterwards.
#[test]
fn a_harbor_tenant_flooding_a_node_not_linked_yet_waits_under_its_own_cap() {
    let master = free_address();
    let mut t = start_lua(&format!(
        "{}\ntenants = {{ r = {{ harbor = true, tenant_mailbox_bytes = \"4M\", \
         launch = {{ \"snlua harbor_filler\" }} }} }}",
        harbor_lines(1, &master, true)
    ));
    let rogue = t
        .node
        .handle()
        .launch_in("r", "snlua", "harbor_filler")
        .expect("the rogue");
    let calm = t.launch("snlua", "harbor_filler");
    let far =
        |count: u32| -> Vec<Value> { (1..=count).map(|k| h(Handle::from_parts(7, k))).collect() };
    let total = |reply: Vec<Value>| -> i64 { reply.iter().filter_map(Value::as_integer).sum() };
    // 6 × 64 × 256 KiB would be 96 MiB, past the node's 64 MiB room for harbor 7.
    let mut ask = vec![s("FILL"), i(64)];
    ask.extend(far(6));
    let rogue_took = total(t.ask(rogue, &ask));
    assert!(
        (1..16).contains(&rogue_took),
        "4 MiB of 256 KiB messages, not the room: {rogue_took}"
    );
    t.wait_log("hold tenant_mailbox_bytes");
    // 3 × 64 × 256 KiB = 48 MiB: all of it fits in the room the rogue did not take.
    let mut ask = vec![s("FILL"), i(64)];
    ask.extend(far(3));
    assert_eq!(
        total(t.ask(calm, &ask)),
        192,
        "the node's own messages wait"
    );
}

#[test]
fn a_multicast_channel_reaches_subscribers_on_every_node() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let mut b = member(2, &master, false);
    let publisher = a.node.launch("snlua", "multicast_pub");
    let channel = a.node.ask(publisher, &[s("NEW")])[0].clone();
    assert_eq!(
        channel.as_integer().map(|c| c % 256),
        Some(1),
        "a channel's low byte is its node's harbor id"
    );
    let local = a.node.launch("snlua", "multicast_sub");
    let remote: Vec<Handle> = (0..2)
        .map(|_| b.node.launch("snlua", "multicast_sub"))
        .collect();
    a.node.ask(local, &[s("SUB"), channel.clone()]);
    for &sub in &remote {
        b.node.ask(sub, &[s("SUB"), channel.clone()]);
    }
    for n in 1..=3 {
        a.node.ask(publisher, &[s("PUB"), i(n)]);
    }
    // a publish from the other node goes through the channel's owner to everyone
    let far_publisher = b.node.launch("snlua", "multicast_pub");
    b.node.ask(far_publisher, &[s("USE"), channel.clone()]);
    b.node.ask(far_publisher, &[s("PUB"), i(4)]);
    let got = |node: &mut TestNode, sub: Handle| -> Vec<i64> {
        let answer = node.ask(sub, &[s("GOT"), i(4)]);
        let Some(entries) = answer.first().and_then(Value::as_table) else {
            panic!("GOT answers a table: {answer:?}")
        };
        entries
            .array
            .iter()
            .filter_map(|entry| entry.as_table()?.get_str("n")?.as_integer())
            .collect()
    };
    assert_eq!(got(&mut a.node, local), [1, 2, 3, 4]);
    for &sub in &remote {
        assert_eq!(
            got(&mut b.node, sub),
            [1, 2, 3, 4],
            "subscriber {sub} on node 2"
        );
    }
}

#[test]
fn the_metrics_show_each_harbor_node_its_calls_and_their_latency() {
    let master = free_address();
    let mut a = member(1, &master, true);
    let b = member(2, &master, false);
    for n in 0..10 {
        let tag = format!("call {n}");
        assert_eq!(
            ok(a.node
                .ask(a.peer, &[s("CALL"), h(b.peer), s("ECHO"), s(&tag)])),
            vec![s(&tag)]
        );
    }
    let text = a.node.node.handle().metrics_text().unwrap();
    let scrape = parse_metrics(&text);
    let sample = |name: &str| {
        series(&scrape, name, &[("peer", "2")])
            .unwrap_or_else(|| panic!("no {name} for harbor 2 in:\n{text}"))
    };
    assert_eq!(
        sample("skywasm_harbor_peer_up").labels.get("state"),
        Some("up")
    );
    assert_eq!(
        sample("skywasm_harbor_peer_up").value,
        prometheus_parse::Value::Gauge(1.0)
    );
    assert_eq!(
        sample("skywasm_harbor_calls_in_flight").value,
        prometheus_parse::Value::Gauge(0.0)
    );
    for name in [
        "skywasm_harbor_sent_bytes_total",
        "skywasm_harbor_received_bytes_total",
    ] {
        assert!(
            matches!(sample(name).value, prometheus_parse::Value::Counter(n) if n > 0.0),
            "{name}: {text}"
        );
    }
    let prometheus_parse::Value::Histogram(buckets) = &sample("skywasm_harbor_call_seconds").value
    else {
        panic!("the call latency is not a histogram:\n{text}");
    };
    assert!(
        buckets.last().is_some_and(|b| b.count >= 10.0),
        "{buckets:?}"
    );
    drop(b);
}
