//! The shared state's own duties, on a node with nothing running: host log lines and their
//! bounded backlog, refused sends counted and logged, the env, and stopping.

use std::sync::Arc;
use std::time::Duration;

use skywasm_abi::{ptype, Handle};

use super::NodeShared;
use crate::mq::Message;
use crate::router::Refusal;
use crate::shared::testing::{drain, idle_node, quiet_in};

/// A quiet service bound as `.logger`, where host lines go before the node notes its log
/// service (as at start).
fn logger(node: &Arc<NodeShared>) -> Handle {
    let logger = quiet_in(node, "node", "");
    node.router
        .bind_name(".logger", logger)
        .expect("the name is free");
    logger
}

/// The texts waiting in `handle`'s mailbox, with their sources.
fn lines(node: &NodeShared, handle: Handle) -> Vec<(Handle, String)> {
    drain(node, handle)
        .into_iter()
        .inspect(|m| assert_eq!(u32::from(m.ptype), ptype::TEXT))
        .map(|m| (m.source, String::from_utf8_lossy(&m.data).into_owned()))
        .collect()
}

fn text(from: Handle, body: &[u8]) -> Message {
    Message {
        source: from,
        session: 0,
        ptype: ptype::TEXT as u8,
        data: body.into(),
    }
}

#[test]
fn host_lines_reach_the_logger_with_their_source_and_are_cut() {
    let node = idle_node("");
    let logger = logger(&node);
    node.log(Handle(0x0100_0005), "hello");
    let long = "x".repeat(crate::log::HOST_LINE_LIMIT * 2);
    node.log(Handle::NONE, &long);
    let got = lines(&node, logger);
    assert_eq!(got[0], (Handle(0x0100_0005), "hello".to_string()));
    assert!(got[1].1.len() < long.len(), "a host line is cut");
    assert_eq!(got.len(), 2);
}

#[test]
fn lines_past_the_log_backlog_are_dropped_and_counted() {
    let node = idle_node("log_backlog = '64K'");
    let logger = logger(&node);
    let line = "y".repeat(4096);
    for _ in 0..40 {
        node.log_line(Handle::NONE, &line);
    }
    let kept = lines(&node, logger).len();
    let dropped = node.log_dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(kept <= 16, "at most 64 KiB of lines wait: {kept} kept");
    assert_eq!(kept as u64 + dropped, 40, "every line is kept or counted");
}

#[test]
fn a_send_refused_for_a_full_mailbox_is_counted_on_the_receiver_and_logged() {
    let node = idle_node("mailbox_limit = 1");
    let logger = logger(&node);
    let (a, b) = (quiet_in(&node, "node", ""), quiet_in(&node, "node", ""));
    lines(&node, logger); // the LAUNCH lines
    let sender = node.router.service(a).expect("a lives");
    let send = |body: &[u8]| node.push_from(&sender, false, b, text(a, body), &mut None);
    assert!(send(b"first").is_ok());
    assert!(matches!(send(b"second"), Err(Refusal::Full(_))));
    let receiver = node.router.service(b).expect("b lives");
    let rejected = receiver
        .stats
        .rejected
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(rejected, 1);
    let logged = lines(&node, logger);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].0, b, "logged as the full service's");
    assert!(
        logged[0].1.starts_with("mailbox full (1 messages"),
        "{}",
        logged[0].1
    );
}

#[test]
fn a_send_an_untrusted_tenant_may_not_make_is_counted_on_the_sender_and_logged() {
    let node = idle_node("tenants = { guest = {} }");
    let logger = logger(&node);
    let target = quiet_in(&node, "node", "");
    let guest = quiet_in(&node, "guest", "");
    lines(&node, logger); // the LAUNCH lines
    let sender = node.router.service(guest).expect("the guest lives");
    let refused = node.push_from(&sender, false, target, text(guest, b"hi"), &mut None);
    assert!(matches!(refused, Err(Refusal::Denied(_))));
    assert_eq!(
        sender
            .stats
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let logged = lines(&node, logger);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].0, guest);
    assert!(
        logged[0].1.starts_with("DENIED send (type 0)"),
        "{}",
        logged[0].1
    );
    assert!(
        drain(&node, target).is_empty(),
        "nothing reached the target"
    );
}

#[test]
fn the_env_starts_from_the_config_and_takes_a_key_once() {
    let node = idle_node("game_mode = 'pvp'");
    assert_eq!(node.getenv("game_mode").as_deref(), Some("pvp"));
    assert!(
        !node.setenv("game_mode", "pve"),
        "a config key is set already"
    );
    assert!(node.setenv("round", "1"));
    assert!(!node.setenv("round", "2"));
    assert_eq!(node.getenv("round").as_deref(), Some("1"));
    assert_eq!(node.getenv("nothing"), None);
}

#[test]
fn a_failure_stops_the_node_wakes_its_waiters_and_is_kept() {
    let node = idle_node("");
    assert!(!node.wait_for_stop(Some(Duration::from_millis(10))));
    let failing = node.clone();
    let failer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        failing.fail("the test said so");
    });
    assert!(
        node.wait_for_stop(Some(Duration::from_secs(20))),
        "the waiter was woken"
    );
    failer.join().expect("the failing thread");
    assert!(node.is_quitting());
    assert_eq!(node.failure().as_deref(), Some("the test said so"));
}
