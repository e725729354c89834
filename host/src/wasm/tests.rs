//! A wasm service driven by hand on a node with nothing running (`shared::testing`): the test
//! thread does what a worker does — admit a message, dispatch it — and looks at what the
//! guest made the host do.

use skywasm_abi::{ptype, Handle};

use crate::mq::Message;
use crate::service::Fault;
use crate::shared::testing::{drain, idle_node, quiet_in};

/// Launches the WAT module `source` as `name` on a fresh idle node; returns the node, the
/// service and a quiet service to send from.
fn launched(
    name: &str,
    source: &str,
) -> (std::sync::Arc<crate::shared::NodeShared>, Handle, Handle) {
    let node = idle_node("");
    node.modules.provide(name, source.as_bytes().to_vec());
    let service = node.launch(name, "").expect("the module launches");
    let caller = quiet_in(&node, "node", "caller");
    (node, service, caller)
}

/// Delivers `message` to `handle` as a worker does; the dispatch's result.
fn deliver(
    node: &crate::shared::NodeShared,
    handle: Handle,
    message: Message,
) -> Result<(), Fault> {
    let service = node.router.service(handle).expect("a live service");
    let mut instance = service.instance();
    let behavior = instance.as_mut().expect("a started service");
    assert!(behavior.core().note_delivery(&message));
    let (result, _) = service.run_call(|| behavior.dispatch(message));
    result
}

#[test]
fn a_request_is_answered_through_the_host_and_nothing_stays_owed() {
    let (node, echo, caller) = launched("echo", include_str!("../../../tests/wat/echo.wat"));
    let request = Message {
        source: caller,
        session: 7,
        ptype: ptype::TEXT as u8,
        data: b"hello".to_vec().into(),
    };
    assert_eq!(deliver(&node, echo, request), Ok(()));
    let answer = Message {
        source: echo,
        session: 7,
        ptype: ptype::RESPONSE as u8,
        data: b"hello".to_vec().into(),
    };
    assert_eq!(drain(&node, caller), [answer]);
    let service = node.router.service(echo).unwrap();
    let owed = service.instance().as_mut().unwrap().core().owed_len();
    assert_eq!(owed, 0, "the answer settled the request");
}

#[test]
fn a_trap_is_a_fault_that_names_the_export_and_the_guest_function() {
    let source = r#"(module
        (memory (export "memory") 1)
        (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
        (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
        (func $crash (unreachable))
        (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32) (call $crash)))"#;
    let (node, trapper, caller) = launched("trapper", source);
    let fault = deliver(&node, trapper, Message::empty(caller, ptype::TEXT as u8, 0));
    let Err(Fault::Trap {
        export,
        cause,
        function,
        ..
    }) = fault
    else {
        panic!("not a trap: {fault:?}");
    };
    assert_eq!(export, "skywasm_dispatch");
    assert!(cause.contains("unreachable"), "{cause}");
    assert_eq!(function.as_deref(), Some("crash"));
}

#[test]
fn an_allocation_outside_the_guests_memory_breaks_the_abi() {
    let (node, bad, caller) = launched(
        "bad_alloc",
        include_str!("../../../tests/wat/bad_alloc.wat"),
    );
    let message = Message {
        source: caller,
        session: 0,
        ptype: ptype::TEXT as u8,
        data: b"x".to_vec().into(),
    };
    let fault = deliver(&node, bad, message);
    assert!(
        matches!(&fault, Err(Fault::Abi(why)) if why.contains("outside the guest's")),
        "{fault:?}"
    );
    // An empty message needs no allocation: the same guest takes it.
    assert_eq!(
        deliver(&node, bad, Message::empty(caller, ptype::TEXT as u8, 0)),
        Ok(())
    );
}
