//! The cluster's sending side on a node with nothing running (`shared::testing`) and a
//! peer played by the test on loopback: what goes out is skynet's cluster request format,
//! and every call ends with exactly one answer in the caller's mailbox — the reply, the
//! remote error, the end of the connection, or the time limit.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use skywasm_abi::{ptype, Handle};

use super::{frame, NodeTable, Outgoing};
use crate::mq::Message;
use crate::shared::testing::{drain, idle_node, quiet_in};
use crate::shared::NodeShared;

/// Longest a test waits for the network thread (a bound against hanging, not a timing).
const PATIENCE: Duration = Duration::from_secs(20);

/// A node whose cluster table names `peer` at a listener of the test's, and a caller.
fn node_with_peer() -> (std::sync::Arc<NodeShared>, Handle, TcpListener) {
    let node = idle_node("");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let address = listener.local_addr().expect("its address").to_string();
    let table = NodeTable::from_entries([("peer", address.as_str())]).expect("a table");
    node.cluster.reload(Some(table)).expect("the table loads");
    let caller = quiet_in(&node, "node", "");
    (node, caller, listener)
}

/// A request for `address` from `caller` (a call with `session` when given).
fn outgoing(name: &str, msg: &[u8], call: Option<(Handle, i32)>) -> Outgoing {
    Outgoing {
        address: frame::Address::Name(name.to_string()),
        msg: msg.to_vec(),
        reply_to: call,
        timeout: None,
        trace: None,
    }
}

/// The peer's side: accepts one connection and reads requests in skynet's format.
struct Peer {
    stream: TcpStream,
    packets: frame::PacketReader,
    requests: frame::RequestAssembler,
}

impl Peer {
    fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().expect("the node connects");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        Peer {
            stream,
            packets: frame::PacketReader::new(),
            requests: frame::RequestAssembler::new(1 << 20),
        }
    }

    /// The next whole request the node sent.
    fn request(&mut self) -> frame::Request {
        loop {
            while let Some(packet) = self.packets.next_packet().expect("a valid packet") {
                if let Some(request) = self.requests.packet(&packet).expect("a valid request") {
                    return request;
                }
            }
            let mut buffer = [0u8; 4096];
            let read = self.stream.read(&mut buffer).expect("bytes from the node");
            assert!(read > 0, "the node closed the connection");
            self.packets.extend(&buffer[..read]);
        }
    }

    fn reply(&mut self, session: u32, result: Result<&[u8], &[u8]>) {
        let mut bytes = Vec::new();
        frame::encode_response(session, result, &mut bytes).expect("a reply frame");
        self.stream.write_all(&bytes).expect("the reply is written");
    }
}

/// The first message to reach `handle`'s mailbox within [`PATIENCE`].
fn next_message(node: &NodeShared, handle: Handle) -> Message {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(message) = drain(node, handle).into_iter().next() {
            return message;
        }
        assert!(Instant::now() < deadline, "no answer reached the caller");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_call_goes_out_in_skynets_format_and_its_reply_reaches_the_caller() {
    let (node, caller, listener) = node_with_peer();
    node.cluster
        .request("peer", outgoing("@db", b"hello", Some((caller, 7))));
    let mut peer = Peer::accept(&listener);
    let request = peer.request();
    assert_eq!(request.address, frame::Address::Name("@db".into()));
    assert!(!request.push, "a call wants a reply");
    assert_ne!(request.session, 0, "a call has a session of its own");
    assert_eq!(request.msg, b"hello");
    peer.reply(request.session, Ok(b"world"));
    let answer = next_message(&node, caller);
    assert_eq!(u32::from(answer.ptype), ptype::RESPONSE);
    assert_eq!(answer.session, 7, "the caller's session, not the wire's");
    assert_eq!(&*answer.data, b"world");
}

#[test]
fn a_push_has_no_session_and_the_next_call_still_gets_its_own_reply() {
    let (node, caller, listener) = node_with_peer();
    node.cluster
        .request("peer", outgoing("@log", b"fire", None));
    node.cluster
        .request("peer", outgoing("@db", b"ask", Some((caller, 9))));
    let mut peer = Peer::accept(&listener);
    let push = peer.request();
    assert!(push.push && push.session == 0 && push.msg == b"fire");
    let call = peer.request();
    assert!(!call.push && call.msg == b"ask");
    peer.reply(call.session, Err(b"no such table"));
    let answer = next_message(&node, caller);
    assert_eq!(u32::from(answer.ptype), ptype::ERROR);
    assert_eq!(answer.session, 9);
    let why = String::from_utf8_lossy(&answer.data);
    assert!(
        why.contains("remote error from node `peer`") && why.contains("no such table"),
        "{why}"
    );
    assert!(drain(&node, caller).is_empty(), "one answer per call");
}

#[test]
fn a_call_in_flight_fails_with_the_reason_when_the_peer_closes() {
    let (node, caller, listener) = node_with_peer();
    node.cluster
        .request("peer", outgoing("@db", b"ask", Some((caller, 3))));
    let mut peer = Peer::accept(&listener);
    let _ = peer.request();
    drop(peer);
    let answer = next_message(&node, caller);
    assert_eq!(u32::from(answer.ptype), ptype::ERROR);
    assert_eq!(answer.session, 3);
    let why = String::from_utf8_lossy(&answer.data);
    assert!(why.contains("closed"), "{why}");
}

#[test]
fn a_call_with_a_time_limit_fails_when_no_reply_comes() {
    let (node, caller, listener) = node_with_peer();
    let mut request = outgoing("@db", b"ask", Some((caller, 5)));
    request.timeout = Some(Duration::from_millis(50));
    node.cluster.request("peer", request);
    // The peer reads the call and never answers.
    let mut peer = Peer::accept(&listener);
    let _ = peer.request();
    let answer = next_message(&node, caller);
    assert_eq!(u32::from(answer.ptype), ptype::ERROR);
    assert_eq!(answer.session, 5);
    let why = String::from_utf8_lossy(&answer.data);
    assert!(
        why.starts_with("timeout: no reply from node `peer` within 50 ms"),
        "{why}"
    );
}

#[test]
fn a_call_to_a_node_marked_down_or_unknown_fails_at_once() {
    let node = idle_node("");
    let caller = quiet_in(&node, "node", "");
    let table =
        NodeTable::from_entries([("gone", "false"), ("__nowaiting", "true")]).expect("a table");
    node.cluster.reload(Some(table)).expect("the table loads");
    node.cluster
        .request("gone", outgoing("@db", b"x", Some((caller, 1))));
    node.cluster
        .request("nobody", outgoing("@db", b"x", Some((caller, 2))));
    let answers = drain(&node, caller);
    let texts: Vec<(i32, String)> = answers
        .iter()
        .map(|m| (m.session, String::from_utf8_lossy(&m.data).into_owned()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, "node `gone` is down".to_string()),
            (2, "unknown node `nobody`".to_string())
        ]
    );
}
