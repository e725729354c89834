//! The skynet command set (`skynet_command` and `cmd_funcs` in `skynet_server.c`).
//!
//! A command is a name and a text parameter; the result is text. Where skynet returns NULL
//! this returns an error code, so guests can tell "no such name" from an empty result:
//! [`error::NOT_FOUND`] for a missing name or key, [`error::NAME_TAKEN`] for a taken name
//! or an existing env key, [`error::INVALID_ARGUMENT`] for malformed parameters,
//! [`error::UNKNOWN_COMMAND`] for anything else. Result texts are skynet's: `REG`/`QUERY`
//! answer `:%x`, `LAUNCH` answers `:%08X`. `NOW` (centiseconds since start) is an addition:
//! skynet reads the clock through its C API instead.

use std::sync::atomic::Ordering;

use skywasm_abi::{error, ptype, Handle};

use crate::handle::HandleError;
use crate::mq::Message;
use crate::node::split_command;
use crate::service::ServiceCore;

/// Runs one command for the service `core` belongs to.
///
/// # Errors
/// An ABI error code (see the module documentation).
pub fn execute(core: &mut ServiceCore, command: &str, param: &str) -> Result<String, i32> {
    let node = core.node.clone();
    match command {
        "TIMEOUT" => {
            let ticks: i64 = param.trim().parse().map_err(|_| error::INVALID_ARGUMENT)?;
            timeout(core, ticks).map(|session| session.to_string())
        }
        "REG" => {
            if param.is_empty() {
                Ok(format!(":{:x}", core.handle().0))
            } else {
                bind(core, param, core.handle())
            }
        }
        "QUERY" => match node.handles.find_name(param) {
            Some(handle) => Ok(format!(":{:x}", handle.0)),
            None => Err(error::NOT_FOUND),
        },
        "NAME" => {
            let mut words = param.split_whitespace();
            let (Some(name), Some(address), None) = (words.next(), words.next(), words.next())
            else {
                return Err(error::INVALID_ARGUMENT);
            };
            let handle = Handle::parse(address).ok_or(error::INVALID_ARGUMENT)?;
            bind(core, name, handle)
        }
        "EXIT" => {
            node.exit(core.handle());
            Ok(String::new())
        }
        "KILL" => {
            let target = node.resolve(param.trim())?;
            let stopped = if target == core.handle() {
                node.exit(target)
            } else {
                node.kill(target)
            };
            if stopped {
                Ok(String::new())
            } else {
                Err(error::INVALID_ADDRESS)
            }
        }
        "LAUNCH" => {
            let (module, args) = split_command(param);
            if module.is_empty() {
                return Err(error::INVALID_ARGUMENT);
            }
            match node.launch(module, args) {
                Ok(handle) => Ok(format!(":{:08X}", handle.0)),
                Err(e) => Err(e.code()),
            }
        }
        "GETENV" => node.getenv(param).ok_or(error::NOT_FOUND),
        "SETENV" => {
            let (key, value) = param.split_once(' ').unwrap_or((param, ""));
            if key.is_empty() {
                return Err(error::INVALID_ARGUMENT);
            }
            if node.setenv(key, value) {
                Ok(String::new())
            } else {
                Err(error::NAME_TAKEN)
            }
        }
        "STARTTIME" => Ok(node.clock.start_time().to_string()),
        "NOW" => Ok(node.clock.now().to_string()),
        "ABORT" => {
            node.log(core.handle(), "ABORT: stopping the node");
            node.request_stop();
            Ok(String::new())
        }
        "MONITOR" => {
            if param.trim().is_empty() {
                node.exit_monitor()
                    .map(|h| format!(":{:x}", h.0))
                    .ok_or(error::NOT_FOUND)
            } else {
                node.set_exit_monitor(node.resolve(param.trim())?);
                Ok(String::new())
            }
        }
        "STAT" => stat(core, param.trim()),
        // skywasm: a service's linear memory, for consoles (any service's, by address).
        "MEMORY" => {
            let target = if param.trim().is_empty() {
                core.handle()
            } else {
                node.resolve(param.trim())?
            };
            let service = node.handles.get(target).ok_or(error::INVALID_ADDRESS)?;
            // Read from the instance when it is idle (as `SIGNAL` runs an idle one); while
            // it runs a message (the caller itself, say) the last reading stands.
            if let Ok(mut slot) = service.slot.try_lock() {
                if let Some(bytes) = slot.as_mut().and_then(|b| b.memory_size()) {
                    service.stats.memory.store(bytes as u64, Ordering::Relaxed);
                }
            }
            Ok(service.stats.memory.load(Ordering::Relaxed).to_string())
        }
        "LOGON" | "LOGOFF" => {
            let target = node.resolve(param.trim())?;
            let service = node.handles.get(target).ok_or(error::INVALID_ADDRESS)?;
            if command == "LOGON" {
                if !crate::log::open_message_log(&node, &service, core.handle()) {
                    return Err(error::FAILED);
                }
            } else {
                crate::log::close_message_log(&node, &service, core.handle());
            }
            Ok(String::new())
        }
        "SIGNAL" => {
            let (address, signal) = split_command(param);
            let target = node.resolve(address)?;
            if target == core.handle() {
                // A service cannot interrupt or signal the message it is running.
                return Err(error::INVALID_ARGUMENT);
            }
            let signal: i32 = if signal.is_empty() {
                0
            } else {
                signal.trim().parse().map_err(|_| error::INVALID_ARGUMENT)?
            };
            if node.signal(target, signal) {
                Ok(String::new())
            } else {
                Err(error::INVALID_ADDRESS)
            }
        }
        _ => Err(error::UNKNOWN_COMMAND),
    }
}

/// Arms a timeout of `ticks` centiseconds and returns its session. A timeout of 0 (or less)
/// is queued as a message at once: it is never delivered inline.
///
/// # Errors
/// [`error::INVALID_ARGUMENT`] for a delay beyond the wheel's range.
pub fn timeout(core: &mut ServiceCore, ticks: i64) -> Result<i32, i32> {
    let ticks = u32::try_from(ticks.max(0)).map_err(|_| error::INVALID_ARGUMENT)?;
    let session = core.new_session();
    let handle = core.handle();
    if ticks == 0 {
        let message = Message::empty(Handle::NONE, ptype::RESPONSE as u8, session);
        core.node
            .push(handle, message)
            .map_err(|_| error::INVALID_ADDRESS)?;
    } else {
        core.node.clock.add_timeout(ticks, handle, session);
    }
    Ok(session)
}

fn bind(core: &ServiceCore, name: &str, handle: Handle) -> Result<String, i32> {
    match core.node.handles.bind_name(name, handle) {
        Ok(()) => Ok(name.to_string()),
        Err(HandleError::NameTaken(_)) => Err(error::NAME_TAKEN),
        Err(HandleError::NoSuchHandle(_)) => Err(error::INVALID_ADDRESS),
        Err(_) => Err(error::INVALID_ARGUMENT),
    }
}

fn stat(core: &ServiceCore, what: &str) -> Result<String, i32> {
    let service = core.service();
    let stats = &service.stats;
    match what {
        "mqlen" => Ok(service.queue.len().to_string()),
        "endless" => Ok(if stats.endless.swap(false, Ordering::Relaxed) {
            "1".into()
        } else {
            "0".into()
        }),
        "cpu" => Ok(format!(
            "{:.6}",
            stats.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9
        )),
        "time" => {
            let spent = match core.message_started_ns {
                Some(start) => crate::clock::thread_cpu_ns().saturating_sub(start),
                None => 0,
            };
            Ok(format!("{:.6}", spent as f64 / 1e9))
        }
        "message" => Ok(stats.messages.load(Ordering::Relaxed).to_string()),
        _ => Err(error::INVALID_ARGUMENT),
    }
}
