//! Unit tests' node: the shared state of a node from config text, with no thread running
//! (no worker, timer, monitor, logger or network). Services launch on the test's thread;
//! what is sent to them waits in their mailboxes for the test to look, so a test can state
//! exactly what a command, a launch or an upgrade did.

use std::sync::Arc;

use skywasm_abi::Handle;

use super::NodeShared;
use crate::mq::Message;
use crate::service::{Behavior, Fault, ServiceCore};

/// A node with nothing running, from the lines of a config (on top of test defaults).
pub(crate) fn idle_node(extra: &str) -> Arc<NodeShared> {
    let text =
        format!("thread = 2\nharbor = 1\nwasm_max_services = 16\nwasm_cache = false\n{extra}\n");
    let config = crate::config::NodeConfig::from_source("test", &text).expect("a valid config");
    NodeShared::new(config).expect("the node's shared state")
}

/// A native service that takes its messages and does nothing with them.
pub(crate) struct Quiet {
    core: ServiceCore,
}

impl Behavior for Quiet {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, _message: Message) -> Result<(), Fault> {
        Ok(())
    }
}

/// Registers the native module `quiet` (a [`Quiet`] service).
pub(crate) fn add_quiet(node: &NodeShared) {
    node.modules.add_native("quiet", |core, _| {
        Ok(Box::new(Quiet { core }) as Box<dyn Behavior>)
    });
}

/// Launches a [`Quiet`] service into `tenant` with `args`.
pub(crate) fn quiet_in(node: &Arc<NodeShared>, tenant: &str, args: &str) -> Handle {
    add_quiet(node);
    let tenant = node.tenants.get(tenant).expect("the tenant").clone();
    node.launch_in(&tenant, "quiet", args)
        .expect("a quiet service")
}

/// Runs `body` with the core of service `handle`, as its code would (the test's thread
/// holds its queue: no worker runs).
pub(crate) fn as_service<R>(
    node: &NodeShared,
    handle: Handle,
    body: impl FnOnce(&mut ServiceCore) -> R,
) -> R {
    let service = node.router.service(handle).expect("a live service");
    let mut instance = service.instance();
    let behavior = instance.as_mut().expect("a started service");
    body(behavior.core())
}

/// Takes the messages waiting in `handle`'s mailbox.
pub(crate) fn drain(node: &NodeShared, handle: Handle) -> Vec<Message> {
    let service = node.router.service(handle).expect("a live service");
    std::iter::from_fn(|| service.queue.pop()).collect()
}
