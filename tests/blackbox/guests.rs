//! Guests in other languages and WASI: the C example answers a Rust service; a guest's
//! stdout becomes log lines; Rust services use sockets through the SDK.

use skywasm_abi::ptype;
use skywasm_pack::Value;

use crate::support::*;

#[test]
fn the_c_service_answers_a_rust_service() {
    let mut t = start("");
    let echo = t.launch("echo_c", "");
    let reply = t.client.call(echo, ptype::TEXT, b"hi", WAIT).unwrap();
    assert_eq!(reply, b"C HEARD: HI");
    t.wait_log("echo_c: a C service is ready");
    // A Rust service calls it by the name the C service registered.
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("call_text"), s(".echo_c"), s("from rust")]);
    assert_eq!(reply, vec![s("ok"), s("C HEARD: FROM RUST")]);
    // Requests the C service does not understand fail instead of hanging.
    assert!(t.call(echo, &[s("echo")]).is_err());
}

#[test]
fn guest_stdout_goes_to_the_log() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    t.ask(probe, &[s("print"), s("hello from wasi stdout")]);
    let log = t.wait_log("hello from wasi stdout");
    assert!(
        log.contains(&format!("[{probe}] hello from wasi stdout")),
        "{log}"
    );
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let t = start(&format!("wasm_cache = \"{}\"", cache.path().display()));
    t.launch("probe", "");
    let entries = walk(cache.path());
    assert!(
        entries
            .iter()
            .any(|p| p.to_string_lossy().contains("wasmtime")),
        "{entries:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn rust_services_serve_tcp_and_udp_through_the_sdk() {
    use std::io::{Read, Write};
    let mut t = start("");
    let probe = t.launch("probe", "");
    let port = t.ask(probe, &[s("tcp_echo")])[0]
        .as_integer()
        .expect("a port") as u16;
    let mut clients: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(format!("hello {i}").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("hello {i}");
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want.as_bytes());
    }
    // A Rust service as the client, against the Rust server.
    let other = t.launch("probe", "");
    assert_eq!(
        t.ask(
            other,
            &[
                s("connect"),
                Value::Integer(i64::from(port)),
                s("round trip")
            ]
        ),
        [s("round trip")]
    );

    let udp = t.ask(probe, &[s("udp_echo")])[0]
        .as_integer()
        .expect("a port") as u16;
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.send_to(b"datagram", ("127.0.0.1", udp)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"datagram");
}

#[test]
fn services_started_with_their_init_pages_populated_behave_as_without() {
    for prefault in [true, false] {
        let mut t = start(&format!("wasm_prefault = {prefault}"));
        // The first starts teach the module which pages its init writes; the later ones
        // start with those pages already populated.
        for n in 0..8 {
            let name = format!(".prefault{n}");
            let probe = t.launch("probe", &format!("name {name}"));
            let reply = t.ask(probe, &[s("echo"), i(n), s("static data intact")]);
            assert_eq!(reply, vec![i(n), s("static data intact")], "{prefault}");
            let caller = t.launch("probe", "");
            let reply = t.ask(caller, &[s("call"), s(&name), s("echo"), i(n)]);
            assert_eq!(reply, vec![s("ok"), i(n)], "{prefault}");
        }
    }
}

#[test]
fn an_idle_rust_service_writes_one_page_of_its_memory() {
    // Linked with the layout of `.cargo/config.toml`, the SDK keeps its state and its heap's
    // first piece in the page at the top of the stack: starting writes that page only.
    let mut t = start("wasm_prefault = true");
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(t.launch("bench", "idle"));
    }
    let pages = t.node.handle().start_pages("bench");
    assert_eq!(pages, Some(1), "pages every start wrote");
    // Those services work: each answers.
    for service in idle {
        let reply = t.client.call(service, ptype::TEXT, b"", WAIT);
        assert_eq!(reply.ok().as_deref(), Some(&b""[..]));
    }
}

#[test]
fn c_allocation_functions_in_a_rust_service_behave_as_c_expects() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("heap")]);
    let (enomem, einval) = (i(48), i(28));
    let usable = reply[0].as_integer().unwrap();
    assert!((100..200).contains(&usable), "usable size {usable}");
    let expected = [
        // An overflowing calloc fails with ENOMEM.
        Value::Boolean(true),
        enomem.clone(),
        // posix_memalign: EINVAL for alignment 3, 0 and an aligned block for 4096.
        einval,
        i(0),
        Value::Boolean(true),
        // aligned_alloc: null for alignment 3, aligned for 4096.
        Value::Boolean(true),
        Value::Boolean(true),
        // realloc keeps the contents.
        Value::Boolean(true),
        // A 1 MiB block grows the memory by at least 16 pages of 64 KiB.
        reply[9].clone(),
        // 1 GiB (past wasm_memory) fails with ENOMEM instead of trapping.
        Value::Boolean(true),
        enomem,
    ];
    assert_eq!(&reply[1..], &expected, "{reply:?}");
    assert!(reply[9].as_integer().unwrap() >= 16, "{reply:?}");
    // The service is still well.
    assert_eq!(t.ask(probe, &[s("echo"), i(1)]), vec![i(1)]);
}

#[test]
fn a_burst_of_log_lines_arrives_whole_in_order_and_stamped() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    // 5,000 lines from one message (more than the logger's 64 KiB batch), from two
    // services at once.
    let other = t.launch("probe", "");
    let first = t.request(probe, &[s("log_lines"), i(5000), s("burst-a")]);
    let second = t.request(other, &[s("log_lines"), i(5000), s("burst-b")]);
    t.wait(probe, first).unwrap();
    t.wait(other, second).unwrap();
    t.wait_log("burst-a 4999");
    let text = t.wait_log("burst-b 4999");
    for (tag, service) in [("burst-a", probe), ("burst-b", other)] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("] {tag} ")))
            .collect();
        assert_eq!(lines.len(), 5000, "{tag}");
        for (n, line) in lines.iter().enumerate() {
            // `dd/mm/yy HH:MM:SS.cc [:0000000a] burst-a n`
            assert_eq!(line.as_bytes()[2], b'/', "{line}");
            assert!(
                line.ends_with(&format!("[{service}] {tag} {n}")),
                "line {n}: {line}"
            );
        }
    }
}
