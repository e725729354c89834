//! Names and the env: bound once, released on exit; GETENV/SETENV as skynet.

use skywasm_abi::error;

use crate::support::*;

#[test]
fn a_taken_name_keeps_its_first_binding_and_is_released_on_exit() {
    let mut t = start("");
    let first = t.launch("probe", "name .db");
    let second = t.launch("probe", "");
    let reply = t.ask(second, &[s("command"), s("REG"), s(".db")]);
    assert_eq!(
        reply,
        vec![skywasm_pack::Value::Nil, i(error::NAME_TAKEN as i64)]
    );
    let reply = t.ask(second, &[s("command"), s("QUERY"), s(".db")]);
    assert_eq!(reply, vec![s(&format!(":{:x}", first.0))]);
    t.node.handle().kill(first);
    t.wait_dead(first);
    let reply = t.ask(second, &[s("command"), s("QUERY"), s(".db")]);
    assert_eq!(
        reply,
        vec![skywasm_pack::Value::Nil, i(error::NOT_FOUND as i64)]
    );
    assert_eq!(
        t.ask(second, &[s("command"), s("REG"), s(".db")]),
        vec![s(".db")]
    );
}

#[test]
fn name_binds_another_handle_and_reg_answers_the_address() {
    let mut t = start("");
    let a = t.launch("probe", "");
    let b = t.launch("probe", "");
    let reply = t.ask(a, &[s("command"), s("NAME"), s(&format!(".other {b}"))]);
    assert_eq!(reply, vec![s(".other")]);
    assert_eq!(t.node.handle().query(".other"), Some(b));
    let reply = t.ask(a, &[s("command"), s("REG"), s("")]);
    assert_eq!(reply, vec![s(&format!(":{:x}", a.0))]);
    let reply = t.ask(a, &[s("command"), s("NAME"), s(".x notahandle")]);
    assert_eq!(reply[1], i(error::INVALID_ARGUMENT as i64));
}

#[test]
fn env_keys_from_the_config_are_readable_and_set_once() {
    let mut t = start("game_region = 'eu'\nmax_rooms = 40");
    let probe = t.launch("probe", "");
    assert_eq!(
        t.ask(probe, &[s("command"), s("GETENV"), s("game_region")]),
        vec![s("eu")]
    );
    assert_eq!(
        t.ask(probe, &[s("command"), s("GETENV"), s("max_rooms")]),
        vec![s("40")]
    );
    assert_eq!(
        t.ask(probe, &[s("command"), s("GETENV"), s("thread")]),
        vec![s("2")]
    );
    let reply = t.ask(probe, &[s("command"), s("GETENV"), s("nope")]);
    assert_eq!(reply[1], i(error::NOT_FOUND as i64));
    assert_eq!(
        t.ask(probe, &[s("command"), s("SETENV"), s("fresh 1")]),
        vec![s("")]
    );
    assert_eq!(
        t.ask(probe, &[s("command"), s("GETENV"), s("fresh")]),
        vec![s("1")]
    );
    let reply = t.ask(probe, &[s("command"), s("SETENV"), s("fresh 2")]);
    assert_eq!(reply[1], i(error::NAME_TAKEN as i64));
}

#[test]
fn stat_and_launch_results_use_skynet_formats() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let reply = t.ask(probe, &[s("command"), s("LAUNCH"), s("probe")]);
    let text = reply[0].as_str().unwrap().to_string();
    assert_eq!(text.len(), 9);
    assert!(
        text.starts_with(':')
            && text[1..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
        "{text}"
    );
    let messages: u64 = t.ask(probe, &[s("command"), s("STAT"), s("message")])[0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(messages >= 2);
    assert_eq!(
        t.ask(probe, &[s("command"), s("STAT"), s("mqlen")]),
        vec![s("0")]
    );
    assert_eq!(
        t.ask(probe, &[s("command"), s("STAT"), s("endless")]),
        vec![s("0")]
    );
}

#[test]
fn logon_writes_every_message_of_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = start(&format!("logpath = \"{}\"", dir.path().display()));
    let probe = t.launch("probe", "");
    let other = t.launch("probe", "");
    t.ask(other, &[s("command"), s("LOGON"), s(&probe.to_string())]);
    t.ask(probe, &[s("echo"), i(42)]);
    t.ask(other, &[s("command"), s("LOGOFF"), s(&probe.to_string())]);
    let text = std::fs::read_to_string(dir.path().join(format!("{:08x}.log", probe.0))).unwrap();
    assert!(text.starts_with("open time: "), "{text}");
    let client = t.client.handle();
    assert!(text.contains(&format!(":{:08x} 10 ", client.0)), "{text}");
    assert!(text.contains("close time: "), "{text}");
}
