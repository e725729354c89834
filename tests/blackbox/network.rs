//! The socket server under bad and heavy input, through a Lua echo service
//! (tests/lua/bench_echo_server.lua): many connects and disconnects, a flood of small
//! packets, a client that never reads; the node and other connections carry on.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::*;

/// A node running the Lua echo server, and its port.
fn echo_server() -> (TestNode, u16) {
    echo_server_with("")
}

fn echo_server_with(extra: &str) -> (TestNode, u16) {
    let lua = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua");
    let mut t = start(&format!(
        "luaservice = \"{}/?.lua\"\n{extra}",
        lua.display()
    ));
    let server = t.launch("snlua", "bench_echo_server");
    let port = t.ask(server, &[s("PORT")])[0].as_integer().expect("a port") as u16;
    (t, port)
}

fn echo_once(port: u16, text: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(text).unwrap();
    let mut got = vec![0u8; text.len()];
    c.read_exact(&mut got).unwrap();
    got
}

/// Open sockets as the node's netstat shows them.
fn open_sockets(t: &TestNode) -> usize {
    t.node.handle().open_sockets()
}

#[test]
fn ten_thousand_connects_and_disconnects_leave_the_node_serving() {
    let (t, port) = echo_server();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for i in 0..2_500 {
                    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    if i % 2 == 0 {
                        // half of them say something and leave without reading
                        let _ = c.write_all(b"bye");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(echo_once(port, b"still here"), b"still here");
    // Every closed connection is closed on the node too: only the listener remains.
    let deadline = std::time::Instant::now() + WAIT;
    while open_sockets(&t) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(open_sockets(&t), 1, "sockets left open");
}

#[test]
fn a_flood_of_small_packets_arrives_whole_and_in_order() {
    let (_t, port) = echo_server();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = c.try_clone().unwrap();
    let total = 100_000usize;
    let collector = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(total);
        let mut buf = [0u8; 65536];
        while got.len() < total {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0, "closed early after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    for i in 0..total {
        c.write_all(&[(i % 251) as u8]).unwrap();
    }
    let got = collector.join().unwrap();
    let want: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    assert!(got == want, "the echo differs");
}

#[test]
fn a_client_that_never_reads_does_not_stop_the_others() {
    let (t, port) = echo_server();
    // It sends 8 MiB and never reads the echo: the node's queue for it grows (and warns),
    // other clients are served meanwhile.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let writer = std::thread::spawn(move || {
        for _ in 0..8 {
            if slow.write_all(&chunk).is_err() {
                break;
            }
        }
        slow
    });
    assert_eq!(echo_once(port, b"meanwhile"), b"meanwhile");
    let log = t.wait_log("K bytes need to send out");
    assert!(log.contains("WARNING:"), "{log}");
    drop(writer.join().unwrap());
    assert_eq!(echo_once(port, b"after"), b"after");
}

#[test]
fn a_client_that_never_reads_is_cut_off_at_the_unsent_cap() {
    let (t, port) = echo_server_with("socket_max_unsent = \"1M\"");
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Kept open until the node has cut it off: a close with unread echoes in its buffer
    // would reset the connection first.
    let _open = slow.try_clone().unwrap();
    let chunk = vec![1u8; 1 << 20];
    let writer = std::thread::spawn(move || {
        for _ in 0..8 {
            if slow.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let log = t.wait_log("over socket_max_unsent");
    assert!(log.contains("the peer is not reading; closed"), "{log}");
    writer.join().unwrap();
    assert_eq!(echo_once(port, b"others are served"), b"others are served");
}
