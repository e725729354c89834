//! Sending and calling: by address and by name, ordering per sender, many calls in flight.

use skywasm::client::CallError;
use skywasm_abi::ptype;
use skywasm_pack::Value;

use crate::support::*;

#[test]
fn calls_by_address_and_by_name() {
    let mut t = start("");
    let server = t.launch("probe", "name .server");
    let client = t.launch("probe", "");
    let reply = t.ask(client, &[s("call"), h(server), s("echo"), i(1)]);
    assert_eq!(reply, vec![s("ok"), i(1)]);
    let reply = t.ask(client, &[s("call"), s(".server"), s("echo"), s("by name")]);
    assert_eq!(reply, vec![s("ok"), s("by name")]);
    let reply = t.ask(
        client,
        &[s("call"), s(&server.to_string()), s("echo"), i(3)],
    );
    assert_eq!(reply, vec![s("ok"), i(3)]);
    let reply = t.ask(client, &[s("call"), s(".nobody"), s("echo")]);
    assert_eq!(reply[0], s("error"));
}

#[test]
fn values_keep_their_types_and_nil_holes_through_a_call() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let values = vec![
        i(1),
        Value::Nil,
        Value::Real(2.0),
        Value::Boolean(false),
        s("x"),
        Value::Nil,
    ];
    let mut request = vec![s("echo")];
    request.extend(values.clone());
    assert_eq!(t.ask(probe, &request), values);
}

#[test]
fn order_is_kept_per_sender_receiver_pair() {
    every_message_arrives_once_in_order("thread = 2", 3, 1, 2000);
}

#[test]
fn many_to_many_floods_on_more_workers_than_cores_lose_nothing() {
    // More workers than cores, so that workers are preempted inside the scheduler's
    // hand-offs (next slots, the global queue, sleeping and waking) as often as possible.
    every_message_arrives_once_in_order("thread = 6", 6, 4, 1000);
}

/// `senders` probes each send `each` numbered texts to every one of `receivers` probes, all
/// at once; every receiver must see every number of every sender once, in order.
fn every_message_arrives_once_in_order(config: &str, senders: usize, receivers: usize, each: i64) {
    let mut t = start(config);
    let receivers: Vec<_> = (0..receivers).map(|_| t.launch("probe", "")).collect();
    let senders: Vec<_> = (0..senders).map(|_| t.launch("probe", "")).collect();
    let mut sessions = Vec::new();
    for receiver in &receivers {
        for sender in &senders {
            let session = t.request(*sender, &[s("send_text"), h(*receiver), i(each)]);
            sessions.push((*sender, session));
        }
    }
    for (sender, session) in sessions {
        assert_eq!(t.wait(sender, session).unwrap(), vec![i(0)]);
    }
    for receiver in receivers {
        // Order between the senders and the client is not implied: poll until all arrived.
        let expected = senders.len() as i64 * each;
        let deadline = std::time::Instant::now() + WAIT;
        let seen = loop {
            let reply = t.ask(receiver, &[s("seen")]);
            let table = reply[0].as_table().unwrap().array.clone();
            if table.len() as i64 >= expected {
                break table;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{receiver} lost messages: {} of {expected}",
                table.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(seen.len() as i64, expected, "{receiver}: duplicates");
        for sender in &senders {
            let numbers: Vec<i64> = seen
                .iter()
                .filter_map(|pair| {
                    let pair = pair.as_table().unwrap();
                    (pair.array[0] == h(*sender)).then(|| pair.array[1].as_integer().unwrap())
                })
                .collect();
            assert_eq!(
                numbers,
                (0..each).collect::<Vec<_>>(),
                "order from {sender} to {receiver}"
            );
        }
    }
}

#[test]
fn many_calls_in_flight_at_once() {
    let mut t = start("");
    let server = t.launch("probe", "");
    let callers: Vec<_> = (0..20).map(|_| t.launch("probe", "")).collect();
    // Each caller parks a sleeping call on the server; all are in flight together.
    let sessions: Vec<_> = callers
        .iter()
        .map(|c| {
            (
                *c,
                t.request(*c, &[s("call"), h(server), s("sleep"), i(20)]),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    for (caller, session) in sessions {
        let reply = t.wait(caller, session).unwrap();
        assert_eq!(reply[0], s("ok"));
    }
    // Twenty 200 ms sleeps served concurrently, not one after the other (bound is generous).
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn the_overload_warning_is_logged_at_1024_queued() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let busy = t.request(probe, &[s("busy"), i(300)]);
    for n in 0..1100 {
        t.client
            .send(probe, ptype::TEXT, n.to_string().as_bytes())
            .unwrap();
    }
    t.wait(probe, busy).unwrap();
    let log = t.wait_log("May overload, message queue length = 1025");
    assert!(log.contains(&format!("[{probe}] May overload")), "{log}");
}

#[test]
fn a_forwarded_request_is_answered_by_its_new_destination() {
    let mut t = start("");
    let proxy = t.launch("probe", "");
    let echo = t.launch("echo", "");
    // The proxy passes the request on with `redirect` and does not answer; the WAT echo
    // answers the client directly with the body.
    let body = format!("forward {}", echo.0);
    let reply = t.client.call(proxy, ptype::TEXT, body.as_bytes(), WAIT);
    assert_eq!(reply.unwrap(), body.as_bytes());
    assert!(!t.log_text().contains("dropped without an answer"));
}

#[test]
fn a_request_forwarded_to_a_dead_address_is_answered_with_an_error() {
    let mut t = start("");
    let proxy = t.launch("probe", "");
    let gone = t.launch("echo", "");
    t.node.handle().kill(gone);
    t.wait_dead(gone);
    for dest in [gone.0, 0x00ff_fff0] {
        // The obligation to answer left the proxy with the request, which never arrived:
        // the host answers for it instead of leaving the caller waiting.
        let body = format!("forward {dest}");
        let reply = t.client.call(proxy, ptype::TEXT, body.as_bytes(), WAIT);
        assert!(
            matches!(reply, Err(CallError::Failed(_))),
            "forward to {dest:#x}: {reply:?}"
        );
    }
    assert_eq!(t.ask(proxy, &[s("echo"), i(1)]), vec![i(1)]);
    assert!(!t.log_text().contains("dropped without an answer"));
}

#[test]
fn a_flooded_service_does_not_starve_another() {
    // One worker, so fairness comes from the scheduler alone: after each turn a worker
    // moves on to the next ready service instead of draining one queue.
    let mut t = start("thread = 1");
    let flooded = t.launch("probe", "");
    let other = t.launch("probe", "");
    let busy = t.request(flooded, &[s("busy"), i(100)]);
    for n in 0..20_000 {
        t.client
            .send(flooded, ptype::TEXT, n.to_string().as_bytes())
            .unwrap();
    }
    assert_eq!(t.ask(other, &[s("echo"), i(1)]), vec![i(1)]);
    let left = t.node.handle().service(flooded).unwrap().queue_len;
    assert!(
        left > 1000,
        "the other service was served while the flood waited ({left} left)"
    );
    t.wait(flooded, busy).unwrap();
}
