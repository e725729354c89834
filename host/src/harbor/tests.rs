//! This node's side of the harbor network without a network: a node with nothing
//! running whose config names a master it never joins, so every link is in the state a
//! test puts it in.

use std::sync::Arc;

use skywasm_abi::{ptype, Handle, HostError};
use skywasm_harbor_wire::{RemoteHeader, HANDLE_MASK};

use super::{Harbor, PeerState, Waiter, MAX_WAITING};
use crate::mq::Message;
use crate::router::Remote;
use crate::shared::testing::{drain, idle_node, quiet_in};
use crate::shared::NodeShared;

/// A harbor-1 node (not joined) and a local service.
fn harbor_node() -> (Arc<NodeShared>, Arc<Harbor>, Handle) {
    let node = idle_node("harbor = 1\nmaster = '127.0.0.1:1'\naddress = '127.0.0.1:2'");
    let harbor = node.harbor.clone().expect("the config names a master");
    let local = quiet_in(&node, "node", "");
    drain(&node, local);
    (node, harbor, local)
}

fn call(from: Handle, session: i32, body: &[u8]) -> Message {
    Message {
        source: from,
        session,
        ptype: ptype::LUA as u8,
        data: body.into(),
    }
}

#[test]
fn messages_for_a_node_not_linked_yet_wait_within_a_bound() {
    let (_node, harbor, local) = harbor_node();
    let far = Handle::from_parts(2, 5);
    assert!(harbor.forward(far, call(local, 0, b"first"), None).is_ok());
    assert_eq!(harbor.peers(), vec![(2, PeerState::Waiting(1))]);
    let big = vec![0u8; 8 << 20];
    let fits = (MAX_WAITING - 100) / (big.len() + 16);
    for _ in 0..fits {
        assert!(harbor.forward(far, call(local, 0, &big), None).is_ok());
    }
    assert!(
        harbor.forward(far, call(local, 0, &big), None).is_err(),
        "past the bound sends are refused"
    );
    assert_eq!(harbor.peers(), vec![(2, PeerState::Waiting(1 + fits))]);
}

#[test]
fn a_node_going_down_fails_its_calls_at_once_and_refuses_later_sends() {
    let (node, harbor, local) = harbor_node();
    let far = Handle::from_parts(2, 5);
    assert!(harbor.forward(far, call(local, 7, b"ask"), None).is_ok());
    assert!(harbor.forward(far, call(local, 0, b"push"), None).is_ok());
    harbor.peer_down(2, None, "the test says so");
    let answers = drain(&node, local);
    assert_eq!(answers.len(), 1, "one answer, for the call");
    assert_eq!(u32::from(answers[0].ptype), ptype::ERROR);
    assert_eq!(answers[0].session, 7);
    assert_eq!(&*answers[0].data, b"harbor 2 is down: the test says so");
    assert!(harbor.forward(far, call(local, 8, b"again"), None).is_err());
    assert_eq!(harbor.peers(), vec![(2, PeerState::Down)]);
    harbor.peer_down(2, None, "twice");
    assert!(drain(&node, local).is_empty(), "down once");
}

#[test]
fn an_answer_from_a_peer_reaches_its_caller_and_settles_the_call() {
    let (node, harbor, local) = harbor_node();
    let far = Handle::from_parts(2, 5);
    assert!(harbor.forward(far, call(local, 9, b"ask"), None).is_ok());
    let header = RemoteHeader {
        source: far.0,
        ptype: ptype::RESPONSE as u8,
        destination: local.0 & HANDLE_MASK,
        session: 9,
    };
    assert!(matches!(
        harbor.deliver(2, header, b"ok".to_vec()),
        Ok(None)
    ));
    let answers = drain(&node, local);
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].source, answers[0].session), (far, 9));
    assert_eq!(&*answers[0].data, b"ok");
    harbor.peer_down(2, None, "gone");
    assert!(
        drain(&node, local).is_empty(),
        "the settled call is not failed again"
    );
}

#[test]
fn a_peer_may_send_only_from_its_own_addresses() {
    let (node, harbor, local) = harbor_node();
    let header = RemoteHeader {
        source: Handle::from_parts(1, 3).0,
        ptype: ptype::LUA as u8,
        destination: local.0 & HANDLE_MASK,
        session: 0,
    };
    let Err(why) = harbor.deliver(2, header, b"forged".to_vec()) else {
        panic!("a forged source is accepted");
    };
    assert!(why.contains("not an address of harbor 2"), "{why}");
    assert!(drain(&node, local).is_empty());
}

#[test]
fn a_message_for_nobody_here_is_answered_with_an_error() {
    let (_node, harbor, _local) = harbor_node();
    let far = Handle::from_parts(2, 5);
    let header = RemoteHeader {
        source: far.0,
        ptype: ptype::LUA as u8,
        destination: 0xfff,
        session: 4,
    };
    assert!(matches!(harbor.deliver(2, header, Vec::new()), Ok(None)));
    // The error waits for the link to node 2, as anything sent there would.
    assert_eq!(harbor.peers(), vec![(2, PeerState::Waiting(1))]);
    let error = RemoteHeader {
        ptype: ptype::ERROR as u8,
        ..header
    };
    assert!(matches!(harbor.deliver(2, error, Vec::new()), Ok(None)));
    assert_eq!(
        harbor.peers(),
        vec![(2, PeerState::Waiting(1))],
        "an error is never answered with one"
    );
}

#[test]
fn messages_for_a_global_name_wait_until_it_is_named_then_go_there_in_order() {
    let (node, harbor, local) = harbor_node();
    let target = quiet_in(&node, "node", "");
    drain(&node, target);
    assert!(harbor
        .send_name("LATER", call(local, 0, b"one"), None)
        .is_ok());
    assert!(harbor
        .send_name("LATER", call(local, 3, b"two"), None)
        .is_ok());
    assert_eq!(harbor.global_name("LATER"), None);
    let waiter = Waiter {
        requester: local,
        session: 11,
        answerer: target,
    };
    assert_eq!(harbor.query_name("LATER", waiter), None);
    assert!(
        drain(&node, target).is_empty(),
        "nothing arrives before the name is known"
    );
    harbor.register("LATER", target).unwrap();
    let arrived: Vec<Vec<u8>> = drain(&node, target)
        .into_iter()
        .map(|m| m.data.to_vec())
        .collect();
    assert_eq!(arrived, vec![b"one".to_vec(), b"two".to_vec()]);
    let answers = drain(&node, local);
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].source, answers[0].session), (target, 11));
    assert_eq!(
        skywasm_pack::unpack(&answers[0].data).unwrap(),
        vec![skywasm_pack::Value::Integer(i64::from(target.0))]
    );
    assert_eq!(harbor.global_name("LATER"), Some(target));
    assert_eq!(
        harbor.register("LATER", target),
        Ok(()),
        "its own name again"
    );
    assert_eq!(harbor.register("LATER", local), Err(HostError::NameTaken));
    assert_eq!(
        harbor.register(".local", target),
        Err(HostError::InvalidArgument)
    );
    assert_eq!(
        harbor.register("12", target),
        Err(HostError::InvalidArgument)
    );
}

#[test]
fn link_connect_and_master_watchers_wait_only_for_what_can_happen() {
    let (_node, harbor, local) = harbor_node();
    let waiter = Waiter {
        requester: local,
        session: 1,
        answerer: local,
    };
    assert!(
        !harbor.watch_link(2, waiter),
        "not linked: LINK returns at once"
    );
    assert!(harbor.watch_connect(2, waiter), "not linked: CONNECT waits");
    assert!(!harbor.watch_connect(1, waiter), "this node itself");
    assert!(
        !harbor.watch_master(waiter),
        "no master connection: at once"
    );
}

#[test]
fn empty_messages_to_ever_new_global_names_are_bounded_too() {
    let (_node, harbor, local) = harbor_node();
    let mut sent = 0usize;
    while sent < 10_000_000 {
        let name = format!("N{sent}");
        if harbor.send_name(&name, call(local, 0, b""), None).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 10_000_000, "a bound is reached");
    assert!(
        sent > 100_000,
        "after {sent} names: the bound is on bytes, not far lower"
    );
}

/// A tenant whose mailboxes are capped together waits for links and names under that
/// cap, not in the node-wide rooms: filling its cap leaves the rooms to everyone else,
/// and what waited is given back when it leaves or is dropped.
#[test]
fn a_capped_tenant_waits_under_its_own_cap_and_leaves_the_rooms_to_others() {
    let node = idle_node(
        "harbor = 1\nmaster = '127.0.0.1:1'\naddress = '127.0.0.1:2'\n\
         tenants = { r = { harbor = true, tenant_mailbox_bytes = '1M' } }",
    );
    let harbor = node.harbor.clone().expect("the config names a master");
    let rogue = node.tenants.get("r").expect("the tenant").clone();
    let local = quiet_in(&node, "node", "");
    drain(&node, local);
    let far = Handle::from_parts(2, 5);
    let chunk = vec![0u8; 64 << 10];
    let mut taken = 0;
    while harbor
        .forward(far, call(local, 0, &chunk), Some(&rogue))
        .is_ok()
    {
        taken += 1;
        assert!(taken < 100, "the tenant's cap of 1 MiB holds");
    }
    assert_eq!(taken, 15, "1 MiB of 64 KiB frames and their bookkeeping");
    assert!(rogue.queued_bytes() > 15 * chunk.len());
    // Names too: a new name's entry and each message count.
    let mut named = 0;
    while harbor
        .send_name(&format!("R{named}"), call(local, 0, b""), Some(&rogue))
        .is_ok()
    {
        named += 1;
        assert!(named < 10_000, "the tenant's cap holds for names");
    }
    // The node's own services still have the whole room.
    let big = vec![0u8; 8 << 20];
    for _ in 0..7 {
        assert!(harbor.forward(far, call(local, 0, &big), None).is_ok());
    }
    assert!(harbor
        .send_name("CALM", call(local, 0, b"ok"), None)
        .is_ok());
    // Dropped with the link, the tenant's bytes come back; so do those of named messages.
    harbor.peer_down(2, None, "the test says so");
    let left = rogue.queued_bytes();
    assert!(
        left < 1 << 20 && left > 0,
        "only what waits for names: {left}"
    );
    for n in 0..named {
        harbor.named(&format!("R{n}"), local);
    }
    assert_eq!(rogue.queued_bytes(), 0, "everything given back");
}
