//! Protocols and clients for Lua services (issue 26): skynet.crypt and md5, run from
//! configs as skynet users write them.

use crate::support::*;

#[test]
fn skynet_crypt_and_md5_give_skynet_s_bytes() {
    run_skynet_style("test_crypt", "");
}

#[test]
fn the_redis_driver_speaks_to_a_real_redis_server() {
    let plain = crate::servers::redis(None, None);
    let locked = crate::servers::redis(None, Some("foobared"));
    run_skynet_style(
        "test_redis",
        &format!(
            "redis_port = {}\nredis_auth_port = {}",
            plain.port, locked.port
        ),
    );
}

#[test]
fn sproto_encodes_decodes_and_packs_as_skynet_s_and_its_rpc_works() {
    run_skynet_style("test_sproto", "");
}

#[test]
fn a_service_s_own_package_path_patterns_are_searched() {
    // skynet's examples/protoloader.lua puts "./examples/?.lua" in front of package.path
    run_skynet_style(
        "test_package_path",
        &format!("own_module_path = \"{}/own/?.lua\"", lua_dir().display()),
    );
}

#[test]
fn bson_gives_skynet_s_bytes_and_values() {
    run_skynet_style("test_bson", "");
}

#[test]
fn the_mongo_driver_speaks_op_msg_to_a_protocol_peer() {
    // not a MongoDB server: none installs here (tests/blackbox/mongo_peer.rs says why)
    let peer = crate::mongo_peer::MongoPeer::start(Some(("admin", "123456")));
    run_skynet_style("test_mongo", &format!("mongo_port = {}", peer.port));
    let rejected = peer.rejected.lock().unwrap();
    assert!(
        rejected.is_empty(),
        "MongoDB's BSON could not read what the driver sent: {rejected:#?}"
    );
}

#[test]
fn the_mysql_driver_speaks_to_a_real_mariadb_server() {
    let db = crate::servers::mariadb(None, "s3cret", "skywasm");
    run_skynet_style("test_mysql", &format!("mysql_port = {}", db.port));
}

#[test]
fn httpd_and_httpc_serve_each_other_and_refuse_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 game.test\n").unwrap();
    run_skynet_style("test_http", &format!("dns_hosts = \"{}\"", hosts.display()));
}

#[test]
fn an_untrusted_tenant_looks_up_only_the_names_it_may_connect_to() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 game.test other.test\n").unwrap();
    let t = start_skynet_style(&format!(
        "start = \"pong\"\ndns_hosts = \"{hosts}\"\n\
         tenants = {{\n\
           named = {{ start = {{ \"snlua dns_probe game.test other.test\" }}, sockets = true,\n\
                      connect = {{ \"game.test:80\" }} }},\n\
           anywhere = {{ start = {{ \"snlua dns_probe other.test\" }}, sockets = true }},\n\
         }}",
        hosts = hosts.display()
    ));
    let log = t.wait_log_count("DNS ", 3);
    assert!(
        log.contains("DNS game.test ok 127.0.0.1"),
        "a name its connect list names is looked up:\n{log}"
    );
    assert!(
        log.contains("DNS other.test refused"),
        "another name is not:\n{log}"
    );
    assert!(
        log.contains("the name is not in its `connect` list"),
        "the refusal says why:\n{log}"
    );
    assert!(
        log.contains("DNS other.test ok 127.0.0.1"),
        "a tenant that may connect anywhere looks any name up:\n{log}"
    );
}

#[test]
fn websocket_server_and_client_talk_and_refuse_broken_frames() {
    run_skynet_style("test_websocket", "");
}

/// A node running tests/lua/web_server.lua, once it serves: the node, its HTTP port and its
/// WebSocket port.
fn web_server() -> (TestNode, u16, u16) {
    let http_port = crate::servers::free_port();
    let ws_port = crate::servers::free_port();
    let t = start_skynet_style(&format!(
        "start = \"web_server\"\nhttp_port = {http_port}\nws_port = {ws_port}"
    ));
    t.wait_log("WEB READY");
    (t, http_port, ws_port)
}

/// The Lua HTTP and WebSocket servers, as Rust clients see them: ureq (keep-alive, chunked
/// replies, a form) and tungstenite (text, binary, ping, close).
#[test]
fn native_http_and_websocket_clients_talk_to_the_lua_servers() {
    let (_node, http_port, ws_port) = web_server();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{http_port}");
    for i in 0..3 {
        // one agent: the requests reuse the connection (keep-alive)
        let mut reply = agent
            .get(&format!("{base}/hello?name=n{i}"))
            .call()
            .expect("a GET is served");
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["x-seen"], "yes");
        let body = reply.body_mut().read_to_string().unwrap();
        assert_eq!(body, format!("GET /hello n{i} "));
    }
    let body = agent
        .post(&format!("{base}/form"))
        .send_form([("a", "1 2"), ("b", "x&y")])
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "POST /form - a=1+2&b=x%26y");
    let chunked = agent
        .get(&format!("{base}/chunked"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(chunked, "part1;part2;part3;");

    let (mut ws, response) =
        tungstenite::connect(format!("ws://127.0.0.1:{ws_port}/echo")).expect("the handshake");
    assert_eq!(response.status(), 101);
    use tungstenite::Message;
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    let blob: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    ws.send(Message::binary(blob.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(blob));
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    let pong = ws.read().unwrap();
    assert_eq!(pong, Message::Pong(b"p".to_vec().into()));
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// The node's TLS config for a test CA's certificate of game.test, pinned to 127.0.0.1.
fn tls_config(ca: &crate::servers::TestCa, hosts: &std::path::Path) -> String {
    std::fs::write(hosts, "127.0.0.1 game.test other.test\n").unwrap();
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\ndns_hosts = \"{}\"",
        ca.file("cert.pem"),
        ca.file("key.pem"),
        ca.file("ca.pem"),
        hosts.display()
    )
}

#[test]
fn tls_by_the_host_serves_https_and_wss_and_refuses_what_does_not_verify() {
    let ca = crate::servers::TestCa::new(&["game.test", "127.0.0.1"]);
    let hosts = ca.dir.path().join("hosts");
    run_skynet_style("test_tls", &tls_config(&ca, &hosts));
}

/// A native TLS client (rustls, trusting the test CA) gets a page from a Lua https server.
#[test]
fn a_native_tls_client_talks_to_a_lua_https_server() {
    use std::io::{Read, Write};
    let ca = crate::servers::TestCa::new(&["game.test", "127.0.0.1"]);
    let hosts = ca.dir.path().join("hosts");
    let http_port = crate::servers::free_port();
    let t = start_skynet_style(&format!(
        "start = \"web_server\"\nhttp_port = {http_port}\nws_port = {}\nweb_tls = \"yes\"\n{}",
        crate::servers::free_port(),
        tls_config(&ca, &hosts)
    ));
    t.wait_log("WEB READY");
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca.file("ca.pem")).unwrap();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    #[allow(deprecated)] // ring, as the host's (see host/src/socket/tls.rs)
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("game.test").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(
        b"GET /native?name=rust HTTP/1.1\r\nHost: game.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("GET /native rust "), "{reply}");
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Sends `bytes` (after `prefix`, whose reply is read up to its blank line) on a new
/// connection to `port`, half-closes, and reads until the server closes (bounded).
fn throw_bytes(port: u16, prefix: &[u8], bytes: &[u8]) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server listens");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    if !prefix.is_empty() {
        conn.write_all(prefix).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "the handshake: {head:?}");
    }
    let _ = conn.write_all(bytes);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

/// Valid input with some bytes changed, some cut off, or some put in.
fn mangled(valid: Vec<u8>) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let len = valid.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 0..6),
        0..=len,
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(changes, cut, extra)| {
            let mut bytes = valid.clone();
            for (at, b) in changes {
                bytes[at] = b;
            }
            bytes.truncate(cut.max(1));
            bytes.extend(extra);
            bytes
        })
}

#[test]
fn the_lua_http_and_websocket_parsers_survive_arbitrary_and_mangled_input() {
    use proptest::prelude::*;
    let (t, http_port, ws_port) = web_server();
    let handshake = b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let request = b"POST /form?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
        .to_vec();
    // a masked text frame "hi", a masked ping, a 126-length binary frame's head
    let frames = [
        &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2][..],
        &[0x89, 0x80, 9, 9, 9, 9],
        &[0x82, 0xfe, 0x01, 0x00, 0, 0, 0, 0],
    ]
    .concat();
    // (Http, bytes) or (WebSocket after a good handshake, bytes)
    let inputs = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| (false, b)),
        mangled(request).prop_map(|b| (false, b)),
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| (true, b)),
        mangled(frames).prop_map(|b| (true, b)),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&inputs, |(websocket, bytes)| {
            if websocket {
                throw_bytes(ws_port, handshake, &bytes);
            } else {
                throw_bytes(http_port, b"", &bytes);
            }
            Ok(())
        })
        .unwrap();
    // the same service still serves both, and no parser raised
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let body = agent
        .get(&format!("http://127.0.0.1:{http_port}/hello?name=z"))
        .call()
        .expect("a GET is served after the garbage")
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "GET /hello z ");
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{ws_port}/echo")).unwrap();
    ws.send(tungstenite::Message::text("still")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("still"));
    let log = t.log_text();
    assert!(
        !log.contains("stack traceback"),
        "a parser raised instead of answering or closing:\n{log}"
    );
}
