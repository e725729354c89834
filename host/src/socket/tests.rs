//! The socket server on real loopback TCP, with a sink that records events.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use super::*;

/// Generous: only to keep a broken test from hanging.
const WAIT: Duration = Duration::from_secs(10);

/// The servers' cap on a socket's unsent bytes.
const MAX_UNSENT: u64 = 32 << 20;

/// One decoded event: (owner, type, id, ud, payload).
type Seen = (u32, u32, i32, i32, Vec<u8>);

fn server() -> (SocketServer, Receiver<Seen>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let server = SocketServer::new(
        Box::new(move |owner, body| {
            let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
            let seen = (
                owner.0,
                word(0),
                word(4) as i32,
                word(8) as i32,
                body[abi::EVENT_HEADER..].to_vec(),
            );
            if lock(&tx).send(seen).is_ok() {
                Delivery::Taken
            } else {
                Delivery::Gone
            }
        }),
        Box::new(|_| {}),
        MAX_UNSENT,
        1 << 20,
        std::sync::Arc::new(super::busy::BusyPoll::new(std::time::Duration::ZERO)),
    );
    (server, rx)
}

/// Service `handle` as a socket owner with a quota of its own, unlimited.
fn owner(handle: u32) -> Owner {
    Owner {
        handle: Handle(handle),
        quota: SocketQuota::new(u32::MAX),
        may_resolve: true,
    }
}

fn next(events: &Receiver<Seen>) -> Seen {
    events.recv_timeout(WAIT).expect("an event")
}

/// The next event, skipping nothing: its type must be `kind`.
fn expect(events: &Receiver<Seen>, kind: u32) -> Seen {
    let seen = next(events);
    assert_eq!(seen.1, kind, "event {seen:?}");
    seen
}

fn port_of(address: &str) -> u16 {
    super::port_of(address).expect("an ip:port")
}

#[test]
fn accept_start_echo_half_close_and_close() {
    let (server, events) = server();
    let listener = server.listen(&owner(1), "127.0.0.1", 0, 16).unwrap();
    let port = port_of(&server.local_address(listener).unwrap());
    server.start(Handle(1), listener).unwrap();
    let (_, _, id, _, local) = expect(&events, abi::CONNECT);
    assert_eq!(
        (id, port_of(std::str::from_utf8(&local).unwrap())),
        (listener, port)
    );

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let (owner, _, id, accepted, peer) = expect(&events, abi::ACCEPT);
    assert_eq!((owner, id), (1, listener));
    assert_eq!(peer, client.local_addr().unwrap().to_string().into_bytes());

    // The accepted socket is read only once started; its new owner hears CONNECT first.
    client.write_all(b"early").unwrap();
    server.start(Handle(2), accepted).unwrap();
    let (owner, _, id, _, _) = expect(&events, abi::CONNECT);
    assert_eq!((owner, id), (2, accepted));
    let mut got = Vec::new();
    while got.len() < 5 {
        let (owner, _, _, ud, data) = expect(&events, abi::DATA);
        assert_eq!((owner, ud as usize), (2, data.len()));
        got.extend(data);
    }
    assert_eq!(got, b"early");

    // A hand-over: the next owner starts it and hears CONNECT too; events follow it.
    server.start(Handle(3), accepted).unwrap();
    let (owner, _, _, _, _) = expect(&events, abi::CONNECT);
    assert_eq!(owner, 3);
    server
        .send(accepted, false, Bytes::from_static(b"reply"))
        .unwrap();
    let mut reply = [0u8; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"reply");

    // Half close: the peer's EOF is CLOSE, and the socket still writes until closed.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let (owner, _, _, _, _) = expect(&events, abi::CLOSE);
    assert_eq!(owner, 3);
    server
        .send(accepted, true, Bytes::from_static(b"after"))
        .unwrap();
    server.close(accepted).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"after");
    // No second CLOSE for a close after the peer's EOF; the socket is gone.
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err());
    assert_eq!(
        server.start(Handle(3), accepted),
        Err(SocketError::Unknown(accepted))
    );
}

#[test]
fn connect_reports_connect_then_data_and_close() {
    let (server, events) = server();
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let id = server.connect(&owner(7), "127.0.0.1", port).unwrap();
    // Bytes sent before the connection is up are queued, in order.
    server.send(id, false, Bytes::from_static(b"a")).unwrap();
    server.send(id, false, Bytes::from_static(b"b")).unwrap();
    let (mut peer, _) = outside.accept().unwrap();
    let (owner, _, got, _, address) = expect(&events, abi::CONNECT);
    assert_eq!((owner, got), (7, id));
    assert_eq!(address, format!("127.0.0.1:{port}").into_bytes());
    let mut two = [0u8; 2];
    peer.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"ab");
    peer.write_all(b"xyz").unwrap();
    let (_, _, _, ud, data) = expect(&events, abi::DATA);
    assert_eq!((ud, data.as_slice()), (3, &b"xyz"[..]));
    drop(peer);
    expect(&events, abi::CLOSE);
}

#[test]
fn refused_connections_and_taken_ports_are_clear_errors() {
    let (server, events) = server();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let id = server.connect(&owner(3), "127.0.0.1", port).unwrap();
    let (_, _, got, _, reason) = expect(&events, abi::ERROR);
    assert_eq!(got, id);
    let reason = String::from_utf8(reason).unwrap();
    assert!(
        reason.contains(&format!("connect 127.0.0.1:{port}")),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("refused"), "{reason}");

    let taken = server.listen(&owner(3), "127.0.0.1", 0, 0).unwrap();
    let port = port_of(&server.local_address(taken).unwrap());
    let err = server.listen(&owner(3), "127.0.0.1", port, 0).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(matches!(
        server.listen(&owner(3), "no such host.invalid", 1, 0),
        Err(SocketError::Address(_))
    ));
    assert!(server.connect(&owner(3), "", 80).is_err());
    assert_eq!(server.pause(12345), Err(SocketError::Unknown(12345)));
}

#[test]
fn a_socket_whose_owner_is_gone_is_closed() {
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = channel::<(u32, i32)>();
    let tx = Mutex::new(tx);
    let owner_gone = gone.clone();
    // Events for owner 9 cannot be delivered once it is "gone".
    let server = SocketServer::new(
        Box::new(move |owner, body| {
            let _ = lock(&tx).send((owner.0, i32::from_le_bytes(body[8..12].try_into().unwrap())));
            if owner_gone.load(Ordering::Acquire) {
                Delivery::Gone
            } else {
                Delivery::Taken
            }
        }),
        Box::new(|_| {}),
        MAX_UNSENT,
        1 << 20,
        std::sync::Arc::new(super::busy::BusyPoll::new(std::time::Duration::ZERO)),
    );
    let listener = server.listen(&owner(9), "127.0.0.1", 0, 0).unwrap();
    let port = port_of(&server.local_address(listener).unwrap());
    server.start(Handle(9), listener).unwrap();
    rx.recv_timeout(WAIT).unwrap(); // CONNECT of the start
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.set_read_timeout(Some(WAIT)).unwrap();
    let (_, accepted) = rx.recv_timeout(WAIT).unwrap(); // ACCEPT: ud = the new socket
    gone.store(true, Ordering::Release);
    // The connection's next event (the CONNECT of its start) finds no owner: it closes.
    server.start(Handle(9), accepted).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(first.read(&mut byte).unwrap_or(0), 0);
    // So does the listener, at its next accept.
    let _second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !server.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(server.is_empty());
}

#[test]
fn a_slow_reader_makes_the_writer_warned_and_memory_is_the_queue() {
    let (server, events) = server();
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let id = server.connect(&owner(4), "127.0.0.1", port).unwrap();
    let (peer, _) = outside.accept().unwrap();
    expect(&events, abi::CONNECT);
    // The peer never reads: what the kernel does not take (sent directly while nothing is
    // queued) queues up, and the owner is warned as that passes 1 MiB.
    let chunk = Bytes::from(vec![7u8; 256 << 10]);
    for _ in 0..48 {
        server.send(id, false, chunk.clone()).unwrap();
    }
    let (_, _, _, kib, _) = expect(&events, abi::WARNING);
    assert!(kib >= 1024, "warned at {kib} KiB");
    let info = server.info(None);
    let unsent = match &info[0] {
        Value::Table(t) => t
            .hash
            .iter()
            .find(|(k, _)| k == &Value::from("wbuffer"))
            .and_then(|(_, v)| v.as_integer())
            .unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(unsent > 0, "netstat shows the unsent bytes");
    // Before the peer goes: a reset would end the socket first.
    server.shutdown(id).unwrap();
    drop(peer);
}

#[test]
fn events_are_type_id_ud_then_payload() {
    assert_eq!(
        event(abi::ACCEPT, 5, 6, b"1.2.3.4:5"),
        [
            &4u32.to_le_bytes()[..],
            &5i32.to_le_bytes(),
            &6i32.to_le_bytes(),
            b"1.2.3.4:5"
        ]
        .concat()
    );
}

#[test]
fn udp_echo_over_ipv4_and_ipv6() {
    for (host, any) in [("127.0.0.1", "127.0.0.1:0"), ("::1", "[::1]:0")] {
        let (server, events) = server();
        let id = server.udp(&owner(5), host, 0).unwrap();
        let local = server.local_address(id).unwrap();
        let peer = std::net::UdpSocket::bind(any).unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        peer.send_to(b"ping", &local).unwrap();
        let (owner, kind, got, ud, payload) = next(&events);
        assert_eq!((owner, kind, got, ud), (5, abi::UDP, id, 4));
        let (data, from) = payload.split_at(4);
        assert_eq!(data, b"ping");
        let from = std::str::from_utf8(from).unwrap();
        assert_eq!(from, peer.local_addr().unwrap().to_string());
        // Answer the sender at the address the event gave, then through a default peer.
        server
            .send_to(id, from, Bytes::from_static(b"pong"))
            .unwrap();
        let mut reply = [0u8; 16];
        let (n, _) = peer.recv_from(&mut reply).unwrap();
        assert_eq!(&reply[..n], b"pong");
        let at = peer.local_addr().unwrap();
        server
            .udp_connect(id, &at.ip().to_string(), at.port(), false)
            .unwrap();
        server
            .send(id, false, Bytes::from_static(b"again"))
            .unwrap();
        let (n, _) = peer.recv_from(&mut reply).unwrap();
        assert_eq!(&reply[..n], b"again");
        assert!(matches!(
            server.send_to(id, "not an address", Bytes::new()),
            Err(SocketError::Address(_))
        ));
        server.close(id).unwrap();
        expect(&events, abi::CLOSE);
    }
}

#[test]
fn a_low_priority_buffer_begun_is_finished_before_normal_bytes() {
    let (server, events) = server();
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let id = server.connect(&owner(6), "127.0.0.1", port).unwrap();
    let (mut peer, _) = outside.accept().unwrap();
    expect(&events, abi::CONNECT);
    // Larger than the socket buffers: it is still being written when the normal bytes come.
    let low = vec![b'l'; 8 << 20];
    server.send(id, true, Bytes::from(low.clone())).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    server.send(id, false, Bytes::from_static(b"HIGH")).unwrap();
    server.close(id).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), low.len() + 4);
    assert!(
        got.ends_with(b"HIGH"),
        "normal bytes went into the middle of the low buffer"
    );
}

#[test]
fn a_peer_that_never_reads_is_cut_off_at_the_unsent_cap() {
    let (server, events) = server();
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let id = server.connect(&owner(8), "127.0.0.1", port).unwrap();
    let (_peer, _) = outside.accept().unwrap();
    expect(&events, abi::CONNECT);
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    for _ in 0..64 {
        if server.send(id, false, chunk.clone()).is_err() {
            break;
        }
    }
    let reason = loop {
        let (_, kind, _, _, payload) = next(&events);
        if kind == abi::ERROR {
            break String::from_utf8(payload).unwrap();
        }
        assert_eq!(kind, abi::WARNING);
    };
    assert!(reason.contains("over socket_max_unsent"), "{reason}");
    let deadline = std::time::Instant::now() + WAIT;
    while !server.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(server.is_empty(), "the socket is gone");
}

#[test]
fn a_quota_caps_open_sockets_and_accepted_connections_count_against_the_listeners() {
    let (tx, rx) = channel::<(u32, u32)>();
    let tx = Mutex::new(tx);
    let (notes_tx, notes) = channel::<String>();
    let notes_tx = Mutex::new(notes_tx);
    let server = SocketServer::new(
        Box::new(move |owner, body| {
            let kind = u32::from_le_bytes(body[0..4].try_into().unwrap());
            if lock(&tx).send((owner.0, kind)).is_ok() {
                Delivery::Taken
            } else {
                Delivery::Gone
            }
        }),
        Box::new(move |text| {
            let _ = lock(&notes_tx).send(text.to_string());
        }),
        MAX_UNSENT,
        1 << 20,
        std::sync::Arc::new(super::busy::BusyPoll::new(std::time::Duration::ZERO)),
    );
    let quota = SocketQuota::new(2);
    let tenant = Owner {
        handle: Handle(5),
        quota: quota.clone(),
        may_resolve: true,
    };
    let listener = server.listen(&tenant, "127.0.0.1", 0, 0).unwrap();
    let port = port_of(&server.local_address(listener).unwrap());
    server.start(Handle(5), listener).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().1, abi::CONNECT);
    let _first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().1, abi::ACCEPT);
    assert_eq!(quota.open(), 2);
    // The third socket of the group: refused at connect, closed at accept.
    assert!(matches!(
        server.connect(&tenant, "127.0.0.1", port),
        Err(SocketError::Limit(_))
    ));
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second.set_read_timeout(Some(WAIT)).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        second.read(&mut byte).unwrap_or(0),
        0,
        "closed by the server"
    );
    let note = notes.recv_timeout(WAIT).unwrap();
    assert!(note.contains("limit of 2 open sockets"), "{note}");
    // Other groups are not affected, and a closed socket gives its place back.
    let other = owner(6);
    let id = server.udp(&other, "127.0.0.1", 0).unwrap();
    assert!(server.check_group(id, &other.quota).is_ok());
    assert_eq!(
        server.check_group(id, &quota),
        Err(SocketError::Unknown(id))
    );
    assert_eq!(server.info(Some(&quota)).len(), 2);
    server.close(listener).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while quota.open() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(quota.open(), 1);
}

#[test]
fn numeric_addresses_need_no_lookup_and_names_need_the_right_to_one() {
    let v4 = resolve("127.0.0.1", 80, false).unwrap();
    assert_eq!(v4.to_string(), "127.0.0.1:80");
    assert_eq!(resolve("::1", 81, false).unwrap().to_string(), "[::1]:81");
    assert_eq!(resolve("[::1]", 82, false).unwrap().to_string(), "[::1]:82");
    let refused = resolve("localhost", 83, false).unwrap_err().to_string();
    assert!(
        refused.contains("host names are not looked up"),
        "{refused}"
    );
    assert!(resolve("localhost", 84, true).is_ok());
}

#[test]
fn a_host_panic_in_a_socket_task_closes_that_socket_and_tells_its_owner() {
    let (server, events) = server();
    let id = server.listen(&owner(7), "127.0.0.1", 0, 16).unwrap();
    let entry = lock(&server.shared.sockets).get(&id).cloned().unwrap();
    let reactor = server.running().unwrap();
    reactor
        .handle
        .spawn(task::guarded(server.shared.clone(), entry, async {
            panic!("a host bug");
        }));
    let (owner, _, seen_id, _, why) = expect(&events, abi::ERROR);
    assert_eq!((owner, seen_id), (7, id));
    let why = String::from_utf8_lossy(&why).into_owned();
    assert!(
        why.contains("the host panicked serving it: a host bug"),
        "{why}"
    );
    assert!(!lock(&server.shared.sockets).contains_key(&id));
}

#[test]
fn a_socket_still_connecting_queues_no_more_than_max_unsent() {
    let (server, _events) = server();
    let owner = owner(3);
    let ticket = owner.quota.take().unwrap();
    let (entry, _control) =
        server
            .shared
            .register(owner.handle, Kind::Connecting, "10.0.0.1:9".into(), ticket);
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    let mut queued = 0u64;
    let refused = loop {
        match server.send(entry.id, false, chunk.clone()) {
            Ok(()) => queued += chunk.len() as u64,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, SocketError::Limit(_)), "{refused}");
    assert_eq!(queued, MAX_UNSENT);
}

#[test]
fn an_untrusted_tenant_has_at_most_eight_lookups_in_flight() {
    let quota = SocketQuota::new(100);
    let turns: Vec<_> = (0..UNTRUSTED_LOOKUPS)
        .map(|_| quota.take_lookup(UNTRUSTED_LOOKUPS).expect("a turn"))
        .collect();
    let refused = quota.take_lookup(UNTRUSTED_LOOKUPS).err().expect("refused");
    assert!(
        refused
            .to_string()
            .contains("8 host-name lookups in flight"),
        "{refused}"
    );
    drop(turns);
    assert!(
        quota.take_lookup(UNTRUSTED_LOOKUPS).is_ok(),
        "turns come back"
    );
}

#[test]
fn a_lookup_answers_with_a_resolve_event_and_frees_its_turn() {
    let (server, events) = server();
    let quota = SocketQuota::new(100);
    let owner = Owner {
        handle: Handle(7),
        quota: quota.clone(),
        may_resolve: false,
    };
    let id = server.resolve(&owner, "127.0.0.1", false, None).unwrap();
    let (who, kind, got, ud, payload) = events.recv_timeout(WAIT).unwrap();
    assert_eq!((who, kind, got, ud), (7, abi::RESOLVE, id, 0));
    assert_eq!(payload, b"127.0.0.1");
    // the turn and the socket place are given back once the task ends
    let deadline = std::time::Instant::now() + WAIT;
    while (quota.lookups.load(Ordering::Acquire) != 0 || quota.open() != 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(quota.lookups.load(Ordering::Acquire), 0);
    assert_eq!(quota.open(), 0);
    let err = server
        .resolve(&owner, "bad name!", false, None)
        .unwrap_err();
    assert!(err.to_string().contains("not a host name"), "{err}");
}

#[test]
fn direct_and_queued_writes_from_two_threads_keep_each_sender_s_order_whole() {
    let (server, events) = server();
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let id = server.connect(&owner(8), "127.0.0.1", port).unwrap();
    let (mut peer, _) = outside.accept().unwrap();
    expect(&events, abi::CONNECT);
    // records of [sender, seq (u32), len (u32), len bytes of (seq as u8)]: small ones go
    // straight to the socket while nothing is queued, large ones fill it and queue, so the
    // two paths take turns many times
    const RECORDS: u32 = 300;
    let record = |sender: u8, seq: u32| {
        let len = if seq % 7 == 0 {
            200_000 + seq as usize
        } else {
            10 + seq as usize % 50
        };
        let mut r = vec![sender];
        r.extend_from_slice(&seq.to_le_bytes());
        r.extend_from_slice(&(len as u32).to_le_bytes());
        r.resize(9 + len, seq as u8);
        Bytes::from(r)
    };
    // the peer starts reading once the socket is full and bytes are queued, then reads
    // while more are sent: room comes back with bytes still queued
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = sent.clone();
    let reader = std::thread::spawn(move || {
        while seen.load(std::sync::atomic::Ordering::Acquire) < 60 {
            std::thread::sleep(Duration::from_millis(1));
        }
        peer.set_read_timeout(Some(WAIT)).unwrap();
        let mut next = [0u32; 2];
        let mut head = [0u8; 9];
        while next != [RECORDS; 2] {
            peer.read_exact(&mut head).unwrap();
            let sender = head[0] as usize;
            let seq = u32::from_le_bytes(head[1..5].try_into().unwrap());
            let len = u32::from_le_bytes(head[5..9].try_into().unwrap()) as usize;
            assert_eq!(seq, next[sender], "sender {sender}'s records out of order");
            let mut body = vec![0u8; len];
            peer.read_exact(&mut body).unwrap();
            assert!(
                body.iter().all(|&b| b == seq as u8),
                "a record torn by another"
            );
            next[sender] += 1;
        }
    });
    std::thread::scope(|scope| {
        for sender in 0..2u8 {
            let (server, sent) = (&server, &sent);
            scope.spawn(move || {
                for seq in 0..RECORDS {
                    server.send(id, false, record(sender, seq)).unwrap();
                    sent.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            });
        }
    });
    reader.join().unwrap();
    let entry = server.entry(id).unwrap();
    let total: u64 = (0..2u8)
        .flat_map(|sender| (0..RECORDS).map(move |seq| record(sender, seq).len() as u64))
        .sum();
    assert_eq!(
        entry.written.load(Ordering::Acquire),
        total,
        "every byte written once"
    );
    assert!(
        entry.direct_writes.load(Ordering::Relaxed) > 0,
        "no send was written directly"
    );
    server.close(id).unwrap();
}
