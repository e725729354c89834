//! The host ABI: the contract test, misuse that traps, failures that return codes, and
//! modules the host refuses. In every case the node and the other services carry on.

use skywasm::client::CallError;
use skywasm_abi::{error, ptype};

use crate::support::*;

#[test]
fn a_module_importing_every_host_function_instantiates() {
    let t = start("");
    let handle = t.launch("all_imports", "");
    assert!(t.alive(handle));
    t.wait_log("all imports linked");
    // And the list of imports in the WAT is the ABI's list, no more, no less.
    let wat = std::fs::read_to_string(wat_dir().join("all_imports.wat")).unwrap();
    let imported: Vec<&str> = wat
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(import \"skywasm\" \""))
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert_eq!(imported, skywasm_abi::import::ALL);
}

#[test]
fn a_wat_service_answers() {
    let mut t = start("");
    let echo = t.launch("echo", "");
    let reply = t.client.call(echo, ptype::TEXT, b"ping", WAIT).unwrap();
    assert_eq!(reply, b"ping");
}

#[test]
fn misuse_traps_that_service_only() {
    let mut t = start("");
    let bystander = t.launch("probe", "");
    for misuse in [
        "send_oob",
        "send_huge_len",
        "send_bad_ptype",
        "command_out_oob",
        "log_oob",
    ] {
        let victim = t.launch("probe", "");
        assert_eq!(
            t.call(victim, &[s("abi"), s(misuse)]),
            Err(CallError::Failed(victim)),
            "{misuse} must end the service"
        );
        t.wait_dead(victim);
        assert_eq!(t.ask(bystander, &[s("echo"), s(misuse)]), vec![s(misuse)]);
    }
    let log = t.log_text();
    assert!(
        log.contains("skywasm.send: range [0xfffffff0, +64) is outside"),
        "{log}"
    );
    assert!(log.contains("message type 300 is over 255"), "{log}");
    assert!(log.contains("skywasm.command: range"), "{log}");
    assert!(log.contains("skywasm.log: range"), "{log}");
}

#[test]
fn expected_failures_are_return_codes() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    for (misuse, code) in [
        ("send_zero", error::INVALID_ADDRESS),
        ("send_unknown", error::INVALID_ADDRESS),
        ("send_name_unknown", error::UNKNOWN_NAME),
        ("send_name_bad_utf8", error::INVALID_ARGUMENT),
        ("unknown_command", error::UNKNOWN_COMMAND),
    ] {
        assert_eq!(
            t.ask(probe, &[s("abi"), s(misuse)]),
            vec![i(code as i64)],
            "{misuse}"
        );
    }
    assert!(t.alive(probe));
}

#[test]
fn sending_to_retired_handles_is_an_error_code() {
    let mut t = start("");
    let probe = t.launch("probe", "");
    let gone = t.launch("probe", "");
    t.node.handle().kill(gone);
    t.wait_dead(gone);
    let reply = t.ask(probe, &[s("send"), h(gone), i(1)]);
    assert_eq!(reply, vec![i(error::INVALID_ADDRESS as i64)]);
    let reply = t.ask(probe, &[s("call"), h(gone), s("echo")]);
    assert_eq!(reply[0], s("error"));
}

#[test]
fn an_allocator_returning_a_bad_pointer_ends_the_service() {
    let mut t = start("");
    let bad = t.launch("bad_alloc", "");
    assert_eq!(
        t.client.call(bad, ptype::TEXT, b"hello", WAIT),
        Err(CallError::Failed(bad))
    );
    t.wait_dead(bad);
    t.wait_log("skywasm_alloc returned 0x7ffffff0 for 5 bytes");
}

#[test]
fn malformed_modules_are_refused_with_a_clear_reason() {
    let t = start("");
    let shared = t.node.handle();
    let err = shared.launch("wrong_dispatch", "").unwrap_err().to_string();
    assert!(err.contains("skywasm_dispatch"), "{err}");
    let err = shared.launch("unknown_import", "").unwrap_err().to_string();
    assert!(err.contains("format_disk"), "{err}");
    let err = shared.launch("no_such_module", "").unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
    let err = shared.launch("../etc/passwd", "").unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
    shared.provide_module("garbage", b"\0asm\x01\0\0\0\x07garbage".to_vec());
    let err = shared.launch("garbage", "").unwrap_err().to_string();
    assert!(err.contains("invalid"), "{err}");
}

#[test]
fn the_c_header_matches_the_abi_constants() {
    let header = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/include/skywasm.h"),
    )
    .unwrap();
    let define = |name: &str| -> i64 {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing from skywasm.h"));
        let value = line.split_whitespace().nth(2).unwrap();
        value
            .trim_matches(|c| c == '(' || c == ')')
            .parse()
            .unwrap()
    };
    for id in 0..=ptype::TRACE {
        let name = ptype::name(id).unwrap().to_ascii_uppercase();
        assert_eq!(define(&format!("SKYWASM_PTYPE_{name}")), id as i64);
    }
    for (name, code) in [
        ("INVALID_ADDRESS", error::INVALID_ADDRESS),
        ("UNKNOWN_NAME", error::UNKNOWN_NAME),
        ("DENIED", error::DENIED),
        ("TOO_LARGE", error::TOO_LARGE),
        ("MAILBOX_FULL", error::MAILBOX_FULL),
        ("UNKNOWN_COMMAND", error::UNKNOWN_COMMAND),
        ("INVALID_ARGUMENT", error::INVALID_ARGUMENT),
        ("NOT_FOUND", error::NOT_FOUND),
        ("FAILED", error::FAILED),
        ("NAME_TAKEN", error::NAME_TAKEN),
        ("LIMIT", error::LIMIT),
    ] {
        assert_eq!(define(&format!("SKYWASM_E_{name}")), code as i64, "{name}");
    }
    for import in skywasm_abi::import::ALL {
        assert!(
            header.contains(&format!("SKYWASM_IMPORT({import})")),
            "{import} missing from skywasm.h"
        );
    }
}

#[test]
fn messages_over_the_size_limit_are_refused() {
    let mut t = start("max_message_size = 1024");
    let probe = t.launch("probe", "");
    let big = "x".repeat(2000);
    let reply = t.ask(probe, &[s("send"), h(probe), s(&big)]);
    assert_eq!(reply, vec![i(error::TOO_LARGE as i64)]);
}
