//! Hot upgrade: a service's code is replaced at its address, keeping its mailbox, names,
//! timers and sockets (docs/upgrade.md). skynet has no such thing; Erlang's `code_change`
//! is the model.
//!
//! The worker that holds the service's queue runs the whole upgrade between two messages,
//! so nothing is dispatched meanwhile and no message is lost, duplicated or reordered:
//! messages that arrive wait in the mailbox and go to the new code. The steps: load the new
//! module (read again from disk), ask the running code for its state (`skywasm_snapshot`),
//! start the new code at the same address with that state (`skywasm_restore`, then
//! `skywasm_init`), and swap the two. Until the swap the running code is untouched, so any
//! failure — the new module missing or invalid, its restore or init trapping or refusing,
//! its init exiting — leaves it serving as before.
//!
//! After the swap, requests the old code received and never answered get PTYPE_ERROR (the
//! new code knows nothing of them), and replies to the old code's own calls and its timeouts
//! are dropped when they arrive: they belong to tasks that ended with it. The new code's
//! sessions continue the old code's count, which is how those replies are told apart.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::work::Bits;

use skywasm_abi::{ptype, Handle, HostError};

use crate::lifecycle::LaunchError;
use crate::module::ModuleKind;
use crate::mq::Message;
use crate::service::{Behavior, SavedState, Service, ServiceCore, Snapshot};
use crate::shared::NodeShared;
use crate::wasm::budget::Budget;
use crate::wasm::WasmService;

/// An upgrade asked for: the new code and who is told how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The module to run (`snlua` for a Lua service).
    pub module: String,
    /// Its argument string (for `snlua`: the script and its arguments).
    pub args: String,
    /// The service told the outcome (none: [`Handle::NONE`]).
    pub requester: Handle,
    /// The session of the requester's reply.
    pub session: i32,
}

/// How an upgrade went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new code runs and took the old code's state.
    Restored {
        /// The state's version, as the old code gave it.
        version: u32,
        /// The state's size.
        bytes: usize,
    },
    /// The new code runs and started fresh, for the reason given.
    Fresh(String),
    /// The old code carries on, for the reason given.
    Failed(String),
}

impl Outcome {
    /// The reply's text: `restored VERSION BYTES`, `fresh REASON` or `failed REASON`.
    pub fn reply_text(&self) -> String {
        match self {
            Outcome::Restored { version, bytes } => format!("restored {version} {bytes}"),
            Outcome::Fresh(why) => format!("fresh {why}"),
            Outcome::Failed(why) => format!("failed {why}"),
        }
    }
}

impl NodeShared {
    /// Asks for the upgrade of service `target`; it happens after the message the service
    /// is running now, and the outcome reaches the requester as a PTYPE_RESPONSE with the
    /// request's session and the text of [`Outcome::reply_text`].
    ///
    /// # Errors
    /// [`HostError::InvalidAddress`] (no such live service), [`HostError::Failed`] (an upgrade of
    /// it is already pending).
    pub fn request_upgrade(
        &self,
        target: Handle,
        request: UpgradeRequest,
    ) -> Result<(), HostError> {
        let service = self
            .router
            .service(target)
            .ok_or(HostError::InvalidAddress)?;
        if service.park_upgrade(request).is_err() {
            return Err(HostError::Failed);
        }
        if service.ask(Bits::UPGRADE) {
            self.scheduler.ready(service);
        }
        Ok(())
    }

    /// Runs the pending upgrade of `service`; the worker holding its queue calls it between
    /// messages.
    pub(crate) fn run_upgrade(self: &Arc<Self>, service: &Arc<Service>) {
        service.take_work(Bits::UPGRADE);
        let Some(request) = service.take_upgrade() else {
            return;
        };
        let span = tracing::info_span!(
            target: "skywasm::lifecycle",
            "upgrade",
            service = %service.handle(),
            module = %request.module,
            outcome = tracing::field::Empty,
        );
        let _entered = span.enter();
        let outcome = self.upgrade(service, &request);
        let counted = match outcome {
            Outcome::Restored { .. } => crate::metrics::UpgradeOutcome::Restored,
            Outcome::Fresh(_) => crate::metrics::UpgradeOutcome::Fresh,
            Outcome::Failed(_) => crate::metrics::UpgradeOutcome::Failed,
        };
        self.metrics.upgrades.add(counted);
        span.record("outcome", crate::tenant::Kind::label(counted));
        let what = format!(
            "UPGRADE {} {}",
            crate::log::Shown(&request.module),
            crate::log::Shown(&request.args)
        );
        let line = match &outcome {
            Outcome::Restored { version, bytes } => {
                format!("{what}: the new code took the state (version {version}, {bytes} bytes)")
            }
            Outcome::Fresh(why) => format!("{what}: the new code started fresh ({why})"),
            Outcome::Failed(why) => format!("{what} failed: {why}; the running code carries on"),
        };
        self.log(service.handle(), &line);
        if !request.requester.is_none() {
            let reply = Message {
                source: service.handle(),
                session: request.session,
                ptype: ptype::RESPONSE as u8,
                data: outcome.reply_text().into_bytes().into(),
            };
            let _ = self.router.push(request.requester, reply);
        }
    }

    fn upgrade(self: &Arc<Self>, service: &Arc<Service>, request: &UpgradeRequest) -> Outcome {
        let asker = crate::module::Asker::tenant(service.tenant());
        let kind = match self.modules.reload_for(&request.module, &asker) {
            Ok(kind) => kind,
            Err(e) => return Outcome::Failed(format!("the new code cannot be loaded: {e}")),
        };
        // The old code's snapshot and the new code's start share one CPU limit: an upgrade
        // costs at most what one message may.
        let _budget = Budget::enter(crate::wasm::cpu_limit(service.tenant()));
        let mut slot = service.instance();
        let Some(running) = slot.as_mut() else {
            return Outcome::Failed("the service is not running".into());
        };
        let (snapshot, _) = service.run_call(|| running.snapshot());
        let (state, fresh) = match snapshot {
            Ok(Snapshot::State(state)) => (Some(state), None),
            Ok(Snapshot::Empty) => (None, Some("the running code handed over no state")),
            Ok(Snapshot::Unsupported) => (None, Some("the running code has no snapshot entry")),
            Ok(Snapshot::Refused(code)) => {
                return Outcome::Failed(format!(
                    "the running code refused the upgrade (its snapshot returned {code})"
                ))
            }
            Err(fault) => {
                drop(slot);
                let why = format!("the running code faulted while handing over its state: {fault}");
                self.fault(
                    service,
                    &fault,
                    "faulted while handing over its state for an upgrade",
                );
                return Outcome::Failed(why);
            }
        };
        let core = running.core().successor();
        // The new code's restore entry is always called, so it knows an upgrade started it:
        // version 0 with no bytes when the old code handed over nothing.
        let handed = state.clone().unwrap_or(SavedState {
            version: 0,
            bytes: Vec::new(),
        });
        let (mut new, restored) = match start_code(kind, core, &request.args, Some(&handed)) {
            Ok(started) => started,
            Err(e) => return Outcome::Failed(format!("the new code did not start: {e}")),
        };
        if new.core().exit_requested {
            return Outcome::Failed("the new code exited during its start".into());
        }
        new.core().upgrading = false;
        let mut old = std::mem::replace(running, new);
        if let Some(bytes) = slot.as_mut().and_then(|new| new.memory_size()) {
            service.stats.memory.store(bytes as u64, Ordering::Relaxed);
        }
        drop(slot);
        service.set_code(&request.module, &request.args);
        // The new code cannot answer what the old one was asked and left unanswered.
        for (requester, session) in old.core().take_owed() {
            self.router
                .answer_error(requester, service.handle(), session);
        }
        drop(old);
        match (state, restored, fresh) {
            (Some(state), true, _) => Outcome::Restored {
                version: state.version,
                bytes: state.bytes.len(),
            },
            (Some(_), false, _) => Outcome::Fresh("the new code has no restore entry".into()),
            (None, _, why) => Outcome::Fresh(why.unwrap_or("no state").into()),
        }
    }
}

/// Starts the new code of an upgrade; true when it took `state`.
fn start_code(
    kind: ModuleKind,
    core: ServiceCore,
    args: &str,
    state: Option<&SavedState>,
) -> Result<(Box<dyn Behavior>, bool), LaunchError> {
    match kind {
        ModuleKind::Native(factory) => factory(core, args)
            .map(|behavior| (behavior, false))
            .map_err(LaunchError::Init),
        ModuleKind::Wasm(module) => {
            WasmService::start_with(&module, core, args, state).map(|started| {
                (
                    Box::new(started.service) as Box<dyn Behavior>,
                    started.restored,
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use skywasm_abi::{ptype, Handle, HostError};

    use super::UpgradeRequest;
    use crate::lifecycle::work::Bits;
    use crate::mq::Message;
    use crate::shared::testing::{add_quiet, as_service, drain, idle_node, quiet_in};

    fn request(module: &str, requester: Handle, session: i32) -> UpgradeRequest {
        UpgradeRequest {
            module: module.to_string(),
            args: "v2".to_string(),
            requester,
            session,
        }
    }

    #[test]
    fn an_upgrade_swaps_the_code_at_the_address_and_answers_what_the_old_code_owed() {
        let node = idle_node("");
        let requester = quiet_in(&node, "node", "requester");
        let target = quiet_in(&node, "node", "v1");
        // The old code received a request it never answered.
        let owed = Message::empty(requester, ptype::LUA as u8, 5);
        assert!(as_service(&node, target, |core| core.note_delivery(&owed)));
        add_quiet(&node);
        assert_eq!(
            node.request_upgrade(target, request("quiet", requester, 9)),
            Ok(())
        );
        // One at a time.
        assert_eq!(
            node.request_upgrade(target, request("quiet", requester, 10)),
            Err(HostError::Failed)
        );
        let service = node.router.service(target).unwrap();
        assert!(service.pending().has(Bits::UPGRADE));
        // What the worker holding the queue does between two messages.
        node.run_upgrade(&service);
        assert!(!service.pending().has(Bits::UPGRADE));
        assert_eq!(&*service.args(), "v2");
        let told = drain(&node, requester);
        assert_eq!(
            told,
            [
                Message::empty(target, ptype::ERROR as u8, 5),
                Message {
                    source: target,
                    session: 9,
                    ptype: ptype::RESPONSE as u8,
                    data: b"fresh the running code has no snapshot entry"
                        .to_vec()
                        .into(),
                },
            ]
        );
    }

    #[test]
    fn a_failed_upgrade_leaves_the_running_code_serving() {
        let node = idle_node("");
        let requester = quiet_in(&node, "node", "requester");
        let target = quiet_in(&node, "node", "v1");
        assert_eq!(
            node.request_upgrade(target, request("missing", requester, 3)),
            Ok(())
        );
        let service = node.router.service(target).unwrap();
        node.run_upgrade(&service);
        assert_eq!(&*service.args(), "v1");
        assert!(service.is_alive());
        let told = drain(&node, requester);
        assert_eq!(told.len(), 1);
        let text = String::from_utf8_lossy(&told[0].data).to_string();
        assert!(
            text.starts_with("failed the new code cannot be loaded"),
            "{text}"
        );
        assert_eq!(
            node.request_upgrade(Handle(0x0100_7777), request("quiet", requester, 4)),
            Err(HostError::InvalidAddress)
        );
    }
}
