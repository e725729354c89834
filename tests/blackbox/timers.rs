//! Timers: sleeps take at least their time, same-deadline timers fire in order.

use crate::support::*;

#[test]
fn sleep_lasts_at_least_its_ticks() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("sleep"), i(5)]);
    assert_eq!(reply[0], i(0));
    assert!(reply[1].as_integer().unwrap() >= 5, "{reply:?}");
}

#[test]
fn a_zero_timeout_arrives_as_a_later_message() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("sleep"), i(0)]);
    assert_eq!(reply[0], i(0));
}

#[test]
fn same_deadline_timers_fire_in_registration_order() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("timer_order"), i(50), i(3)]);
    let order: Vec<i64> = reply[0]
        .as_table()
        .unwrap()
        .array
        .iter()
        .map(|v| v.as_integer().unwrap())
        .collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
}

#[test]
fn now_advances_in_centiseconds() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let first = t.ask(probe, &[s("now")])[0].as_integer().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let second = t.ask(probe, &[s("now")])[0].as_integer().unwrap();
    assert!(second - first >= 9, "{first} -> {second}");
    let start = t.ask(probe, &[s("command"), s("STARTTIME"), s("")]);
    let start: u64 = start[0].as_str().unwrap().parse().unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(start <= wall && wall - start < 600);
}
