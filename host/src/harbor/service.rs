//! `cslave`: the native service through which Lua and Rust services use the harbor
//! network (skynet's `service/cslave.lua`; `skynet.harbor` talks to it as `.cslave` over
//! `"lua"`). Bootstrap launches it, in place of `cdummy`, on a node whose config names a
//! `master`.
//!
//! Commands (`skynet.pack`ed), as skynet's: `REGISTER name handle` (a global name, told to
//! the master), `QUERYNAME name` (answered once the name is known, however long that
//! takes; a `.name` is looked up here), `LINK id` (answered when node `id` goes down, at
//! once when it is not linked), `CONNECT id` (answered when node `id` is linked, at once
//! when it is), `LINKMASTER` (answered when the master's connection drops).

use std::sync::Arc;

use skywasm_abi::{ptype, Handle};
use skywasm_pack::Value;

use super::{Harbor, Waiter};
use crate::mq::Message;
use crate::service::{Behavior, Fault, ServiceCore};

/// The `cslave` service.
pub struct Cslave {
    core: ServiceCore,
    harbor: Arc<Harbor>,
}

impl Cslave {
    /// Starts `cslave`.
    ///
    /// # Errors
    /// The node is not in a harbor network (its config names no `master`).
    pub fn start(core: ServiceCore, _args: &str) -> Result<Box<dyn Behavior>, String> {
        let harbor =
            core.node.harbor.clone().ok_or(
                "cslave: this node is not in a harbor network (no `master` in its config)",
            )?;
        Ok(Box::new(Cslave { core, harbor }))
    }

    /// Runs one command: the values to answer with now, or `None` when the answer comes
    /// later (or is not wanted).
    fn command(
        &mut self,
        message: &Message,
        values: &[Value],
    ) -> Result<Option<Vec<Value>>, String> {
        let command = values
            .first()
            .and_then(Value::as_str)
            .ok_or("a command expected")?;
        let text = |i: usize, what: &str| {
            values
                .get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{command}: {what} expected"))
        };
        let id = |i: usize| {
            values
                .get(i)
                .and_then(Value::as_integer)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("{command}: a harbor id (0..=255) expected"))
        };
        let waiter = Waiter {
            requester: message.source,
            session: message.session,
            answerer: self.core.handle(),
        };
        let parked = |core: &mut ServiceCore, parked: bool| {
            if parked {
                // Answered by the harbor when the time comes, not by this service's code.
                core.disown(message.source, message.session);
                None
            } else {
                Some(Vec::new())
            }
        };
        match command {
            "REGISTER" => {
                let name = text(1, "a name")?;
                let handle = values
                    .get(2)
                    .and_then(Value::as_integer)
                    .and_then(|h| u32::try_from(h).ok())
                    .ok_or("REGISTER: a handle expected")?;
                self.harbor
                    .register(name, Handle(handle))
                    .map_err(|e| format!("REGISTER {name}: {e}"))?;
                Ok(Some(Vec::new()))
            }
            "QUERYNAME" => {
                let name = text(1, "a name")?;
                if name.starts_with('.') {
                    let found = self.core.resolve(name).ok();
                    return Ok(Some(vec![
                        found.map_or(Value::Nil, |h| Value::Integer(i64::from(h.0)))
                    ]));
                }
                match self.harbor.query_name(name, waiter) {
                    Some(handle) => Ok(Some(vec![Value::Integer(i64::from(handle.0))])),
                    None => Ok(parked(&mut self.core, true)),
                }
            }
            "LINK" => {
                let watching = self.harbor.watch_link(id(1)?, waiter);
                Ok(parked(&mut self.core, watching))
            }
            "CONNECT" => {
                let watching = self.harbor.watch_connect(id(1)?, waiter);
                Ok(parked(&mut self.core, watching))
            }
            "LINKMASTER" => {
                let watching = self.harbor.watch_master(waiter);
                Ok(parked(&mut self.core, watching))
            }
            other => Err(format!("unknown command `{other}`")),
        }
    }
}

impl Behavior for Cslave {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        if u32::from(message.ptype) != ptype::LUA {
            return Ok(());
        }
        let outcome = skywasm_pack::unpack(&message.data)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|values| self.command(&message, &values));
        if let Err(why) = &outcome {
            self.core.log(&format!("cslave: {why}"));
        }
        self.core.answer_lua(&message, &outcome);
        Ok(())
    }
}
