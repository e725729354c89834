//! The skynet command set (`skynet_command` and `cmd_funcs` in `skynet_server.c`).
//!
//! A command is a name and a text parameter; the result is text. Where skynet returns NULL
//! this returns an error code, so guests can tell "no such name" from an empty result:
//! [`HostError::NotFound`] for a missing name or key, [`HostError::NameTaken`] for a taken name
//! or an existing env key, [`HostError::InvalidArgument`] for malformed parameters,
//! [`HostError::UnknownCommand`] for anything else. Result texts are skynet's: `REG`/`QUERY`
//! answer `:%x`, `LAUNCH` answers `:%08X`. `NOW` (centiseconds since start) is an addition:
//! skynet reads the clock through its C API instead.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use skywasm_abi::{ptype, Handle, HostError};

use crate::handle::HandleError;
use crate::log::Shown;
use crate::module::split_command;
use crate::mq::Message;
use crate::service::ServiceCore;
use crate::tenant::{RefusalKind, Tenant};

/// Runs one command for the service `core` belongs to.
///
/// # Errors
/// An ABI error code (see the module documentation).
pub fn execute(core: &mut ServiceCore, command: &str, param: &str) -> Result<String, HostError> {
    let node = core.node.clone();
    let tenant = core.service().tenant().clone();
    let trusted = tenant.is_trusted();
    match command {
        "TIMEOUT" => {
            let ticks: i64 = param
                .trim()
                .parse()
                .map_err(|_| HostError::InvalidArgument)?;
            timeout(core, ticks).map(|session| session.to_string())
        }
        "REG" => {
            if param.is_empty() {
                Ok(format!(":{:x}", core.handle().0))
            } else {
                may_bind(core, command, param)?;
                bind(core, param, core.handle())
            }
        }
        "QUERY" => match node.router.find_name_in(tenant.name_scope(), param) {
            Some(handle) => Ok(format!(":{:x}", handle.0)),
            None => Err(HostError::NotFound),
        },
        "NAME" => {
            let mut words = param.split_whitespace();
            let (Some(name), Some(address), None) = (words.next(), words.next(), words.next())
            else {
                return Err(HostError::InvalidArgument);
            };
            let handle = Handle::parse(address).ok_or(HostError::InvalidArgument)?;
            may_bind(core, command, name)?;
            own_tenant(core, command, handle)?;
            bind(core, name, handle)
        }
        "EXIT" => {
            // skynet's handle_exit says so in the log.
            core.log("KILL self");
            exit_self(core);
            Ok(String::new())
        }
        "KILL" => {
            let target = core.resolve(param.trim())?;
            own_tenant(core, command, target)?;
            // skynet's handle_exit says so in the log (by address, even for itself).
            core.log(&format!("KILL :{:x}", target.0));
            let stopped = if target == core.handle() {
                exit_self(core)
            } else {
                node.kill(target)
            };
            if stopped {
                Ok(String::new())
            } else {
                Err(HostError::InvalidAddress)
            }
        }
        "LAUNCH" => {
            let (module, args) = split_command(param);
            launch_for(core, &tenant, module, args)
        }
        // skywasm: launch on behalf of another service, into its tenant (`.launcher`).
        "LAUNCHAS" => {
            if !trusted {
                return Err(deny(core, command, param, "only the node's own tenant may"));
            }
            let (requester, rest) = split_command(param);
            let requester = Handle::parse(requester).ok_or(HostError::InvalidArgument)?;
            let on_behalf = if requester.is_none() {
                tenant.clone()
            } else {
                let service = node
                    .router
                    .service(requester)
                    .ok_or(HostError::InvalidAddress)?;
                service.tenant().clone()
            };
            let (module, args) = split_command(rest);
            launch_for(core, &on_behalf, module, args)
        }
        // skywasm: replace a service's code at its address (docs/upgrade.md): `target name
        // [args]`. The outcome comes back later as the reply to the session this answers.
        "UPGRADE" => {
            let (target, rest) = split_command(param);
            let (name, args) = split_command(rest);
            if name.is_empty() {
                return Err(HostError::InvalidArgument);
            }
            let target = core.resolve(target)?;
            own_tenant(core, command, target)?;
            let service = node
                .router
                .service(target)
                .ok_or(HostError::InvalidAddress)?;
            let (module, args) = upgraded_code(&service, name, args);
            if !tenant.spec.may_launch(&module, &args) {
                return Err(deny(
                    core,
                    command,
                    param,
                    &format!("tenant `{}` may not launch that module", tenant.name()),
                ));
            }
            let session = core.new_session();
            let request = crate::lifecycle::upgrade::UpgradeRequest {
                module,
                args,
                requester: core.handle(),
                session,
            };
            node.request_upgrade(target, request)?;
            Ok(session.to_string())
        }
        // skywasm: `module args` a service runs now (default: the caller); an upgrade
        // changes it, the launcher's list keeps the launch line.
        "CODE" => {
            let service = named_service(core, command, param)?;
            Ok(format!("{} {}", service.module(), service.args())
                .trim_end()
                .to_string())
        }
        // skywasm: `name trusted` or `name untrusted`, for a service (default: the caller).
        "TENANT" => {
            let service = if param.trim().is_empty() {
                core.service().clone()
            } else {
                let target = core.resolve(param.trim())?;
                node.router
                    .service(target)
                    .ok_or(HostError::InvalidAddress)?
            };
            let of = service.tenant();
            let trust = if of.is_trusted() {
                "trusted"
            } else {
                "untrusted"
            };
            Ok(format!("{} {trust}", of.name()))
        }
        "GETENV" => {
            if !tenant.spec.may_getenv(param) {
                let why = if crate::tenant::is_secret_key(param) {
                    "the key holds a secret no service may read"
                } else {
                    "the key is not in its getenv list"
                };
                return Err(deny(core, command, param, why));
            }
            // A tenant may set the Lua hash seed for its own services.
            let own = (param == "lua_hash_seed")
                .then(|| tenant.spec.lua_hash_seed.clone())
                .flatten();
            own.or_else(|| node.getenv(param))
                .ok_or(HostError::NotFound)
        }
        "SETENV" => {
            let (key, value) = param.split_once(' ').unwrap_or((param, ""));
            if key.is_empty() {
                return Err(HostError::InvalidArgument);
            }
            if !tenant.spec.may_setenv(key) {
                let why = if tenant.spec.may_setenv_listed(key) {
                    "the runtime reads that key; only a trusted tenant may set it"
                } else {
                    "the key is not in its setenv list"
                };
                return Err(deny(core, command, key, why));
            }
            if node.setenv(key, value) {
                Ok(String::new())
            } else {
                Err(HostError::NameTaken)
            }
        }
        "STARTTIME" => Ok(node.clock.start_time().to_string()),
        "NOW" => Ok(node.clock.now().to_string()),
        "ABORT" => {
            if !trusted {
                return Err(deny(core, command, param, "only the node's own tenant may"));
            }
            node.log(core.handle(), "ABORT: stopping the node");
            node.request_stop();
            Ok(String::new())
        }
        "MONITOR" => {
            if param.trim().is_empty() {
                node.exit_monitor()
                    .map(|h| format!(":{:x}", h.0))
                    .ok_or(HostError::NotFound)
            } else {
                if !trusted {
                    return Err(deny(core, command, param, "only the node's own tenant may"));
                }
                node.set_exit_monitor(core.resolve(param.trim())?);
                Ok(String::new())
            }
        }
        "STAT" => stat(core, param.trim()),
        // skywasm: the harbor network as this node sees it (the console's `harbor`).
        "HARBOR" => {
            if !trusted {
                return Err(deny(core, command, param, "only trusted tenants may"));
            }
            Ok(node
                .harbor
                .as_ref()
                .map_or_else(|| "not in a harbor network".to_string(), |h| h.describe()))
        }
        // skywasm: a service's linear memory, for consoles (any service's, by address).
        "MEMORY" => {
            let service = named_service(core, command, param)?;
            Ok(memory_reading(&service).to_string())
        }
        // skywasm: every service's linear memory, one `:%08x bytes` line each, for
        // skynet.memory (an untrusted tenant sees its own services only).
        "MEMINFO" => {
            use std::fmt::Write as _;
            let mut out = String::new();
            for (handle, service) in node.router.list() {
                if trusted || Arc::ptr_eq(service.tenant(), &tenant) {
                    let _ = writeln!(out, ":{:08x} {}", handle.0, memory_reading(&service));
                }
            }
            Ok(out)
        }
        // skywasm: the console's `top`, `tenants` and `stat`, from the host's own counters
        // (no guest is asked); an untrusted tenant's service sees its own tenant only.
        "TOP" => {
            let only = (!trusted).then_some(&tenant);
            crate::metrics::console::top(&node, param, only).map_err(|why| {
                core.log(&format!("TOP {}: {why}", Shown(param)));
                HostError::InvalidArgument
            })
        }
        "TENANTS" => Ok(crate::metrics::console::tenants(
            &node,
            (!trusted).then_some(&tenant),
        )),
        "STATS" => Ok(crate::metrics::console::stats(
            &node,
            (!trusted).then_some(&tenant),
        )),
        "LOGON" | "LOGOFF" => {
            let target = core.resolve(param.trim())?;
            if !tenant.spec.logon {
                return Err(deny(
                    core,
                    command,
                    param,
                    "its tenant has no logon capability",
                ));
            }
            own_tenant(core, command, target)?;
            let service = node
                .router
                .service(target)
                .ok_or(HostError::InvalidAddress)?;
            if command == "LOGON" {
                if !crate::log::open_message_log(&node, &service, core.handle()) {
                    return Err(HostError::Failed);
                }
            } else {
                crate::log::close_message_log(&node, &service, core.handle());
            }
            Ok(String::new())
        }
        "SIGNAL" => {
            let (address, signal) = split_command(param);
            let target = core.resolve(address)?;
            own_tenant(core, command, target)?;
            if target == core.handle() {
                // A service cannot interrupt or signal the message it is running.
                return Err(HostError::InvalidArgument);
            }
            let signal: i32 = if signal.is_empty() {
                0
            } else {
                signal
                    .trim()
                    .parse()
                    .map_err(|_| HostError::InvalidArgument)?
            };
            if node.signal(target, signal) {
                Ok(String::new())
            } else {
                Err(HostError::InvalidAddress)
            }
        }
        _ => Err(HostError::UnknownCommand),
    }
}

/// Logs a refused command (see [`crate::log::worth_logging`]) and returns
/// [`HostError::Denied`].
pub(crate) fn deny(core: &ServiceCore, command: &str, param: &str, why: &str) -> HostError {
    if let Some(refused) = count_refusal(core, RefusalKind::Denied) {
        core.log(&format!(
            "DENIED {} {}: {why} (tenant `{}`; {refused} refused so far)",
            Shown(command),
            Shown(param),
            core.service().tenant().name()
        ));
    }
    HostError::Denied
}

/// Counts one more refusal of the service's (and one of `kind` of its tenant's); the count
/// when it is worth a log line (the first 16, then every doubling).
fn count_refusal(core: &ServiceCore, kind: RefusalKind) -> Option<u64> {
    core.service().tenant().activity.refusals.add(kind);
    let refused = core.service().stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
    crate::log::worth_logging(refused).then_some(refused)
}

/// The service a command names (`param`: a target, or empty for the caller), when the
/// caller may act on it.
fn named_service(
    core: &ServiceCore,
    command: &str,
    param: &str,
) -> Result<Arc<crate::service::Service>, HostError> {
    let target = if param.trim().is_empty() {
        core.handle()
    } else {
        core.resolve(param.trim())?
    };
    own_tenant(core, command, target)?;
    core.node
        .router
        .service(target)
        .ok_or(HostError::InvalidAddress)
}

/// An untrusted service acts only on services of its own tenant.
/// A service's linear memory in bytes: read from the instance when it is idle (as `SIGNAL`
/// runs an idle one); while it runs a message (the caller itself, say) the last reading
/// stands.
fn memory_reading(service: &crate::service::Service) -> u64 {
    if let Some(mut slot) = service.try_instance() {
        if let Some(bytes) = slot.as_mut().and_then(|b| b.memory_size()) {
            service.stats.memory.store(bytes as u64, Ordering::Relaxed);
        }
    }
    service.stats.memory.load(Ordering::Relaxed)
}

fn own_tenant(core: &ServiceCore, command: &str, target: Handle) -> Result<(), HostError> {
    let tenant = core.service().tenant();
    if tenant.is_trusted() {
        return Ok(());
    }
    match core.node.router.service(target) {
        Some(service) if Arc::ptr_eq(service.tenant(), tenant) => Ok(()),
        Some(_) => Err(deny(
            core,
            command,
            &target.to_string(),
            "it belongs to another tenant",
        )),
        None => Ok(()),
    }
}

/// An untrusted service may not take a name another tenant exports.
fn may_bind(core: &ServiceCore, command: &str, name: &str) -> Result<(), HostError> {
    let tenant = core.service().tenant();
    if tenant.is_trusted() {
        return Ok(());
    }
    let taken =
        core.node.tenants.iter().any(|other| {
            !Arc::ptr_eq(other, tenant) && other.spec.export.iter().any(|e| e == name)
        });
    if taken {
        return Err(deny(
            core,
            command,
            name,
            "another tenant exports that name",
        ));
    }
    Ok(())
}

/// Most bytes of arguments a service of an untrusted tenant is launched with: the host
/// keeps them for as long as the service lives (`.launcher`'s list, logs), so a tenant's
/// launch arguments hold at most its `services` times this.
pub const MAX_UNTRUSTED_ARGS: usize = 64 << 10;

/// Launches `module args` into `tenant`, under its launch list and spawn rate.
fn launch_for(
    core: &ServiceCore,
    tenant: &Arc<Tenant>,
    module: &str,
    args: &str,
) -> Result<String, HostError> {
    if module.is_empty() {
        return Err(HostError::InvalidArgument);
    }
    let what = format!("{} {}", Shown(module), Shown(args));
    if !tenant.spec.may_launch(module, args) {
        return Err(deny(
            core,
            "LAUNCH",
            &what,
            &format!("tenant `{}` may not launch that module", tenant.name()),
        ));
    }
    if !tenant.is_trusted() && args.len() > MAX_UNTRUSTED_ARGS {
        if let Some(refused) = count_refusal(core, RefusalKind::Launch) {
            core.log(&format!(
                "FAILED launch {what}: {} bytes of arguments, over the {MAX_UNTRUSTED_ARGS} an \
                 untrusted tenant's service may have (tenant `{}`; {refused} refused so far)",
                args.len(),
                tenant.name()
            ));
        }
        return Err(HostError::Limit);
    }
    if !tenant.take_spawn_token() {
        if let Some(refused) = count_refusal(core, RefusalKind::Launch) {
            core.log(&format!(
                "FAILED launch {what}: tenant `{}` launches faster than its spawn_rate of \
                 {}/s ({refused} refused so far)",
                tenant.name(),
                tenant.spec.limits.spawn_rate
            ));
        }
        return Err(HostError::Limit);
    }
    // On behalf of another tenant with a worker cap (LAUNCHAS from `.launcher`), the init
    // runs under that cap, not on this worker.
    let node = &core.node;
    let launched = if !Arc::ptr_eq(tenant, core.service().tenant())
        && node.scheduler.is_capped(tenant.index)
    {
        node.launch_deferred(tenant, module, args)
    } else {
        // The init runs inside this call: stopping this call stops it too.
        let _enclosing = crate::wasm::budget::Enclosing::enter(core.service().clone());
        node.launch_in(tenant, module, args)
    };
    match launched {
        Ok(handle) => Ok(format!(":{:08X}", handle.0)),
        Err(e) => Err(e.error()),
    }
}

/// The code an upgrade of `service` to `name` runs: a Lua service (`snlua script args`) gets
/// script `name`, any other service module `name`; both keep their arguments unless `args`
/// gives new ones.
fn upgraded_code(service: &crate::service::Service, name: &str, args: &str) -> (String, String) {
    let (module, old_args) = (service.module(), service.args());
    if &*module == "snlua" {
        let (_, old_rest) = split_command(&old_args);
        let rest = if args.is_empty() { old_rest } else { args };
        (
            "snlua".into(),
            format!("{name} {rest}").trim_end().to_string(),
        )
    } else {
        let args = if args.is_empty() { &old_args } else { args };
        (name.to_string(), args.to_string())
    }
}

/// Ends the calling service after its current message — or, for code being started by an
/// upgrade, fails the upgrade instead (the service's running code carries on).
fn exit_self(core: &mut ServiceCore) -> bool {
    if core.upgrading {
        core.exit_requested = true;
        return true;
    }
    core.node.exit(core.handle())
}

/// Arms a timeout of `ticks` centiseconds and returns its session. A timeout of 0 (or less)
/// is queued as a message at once: it is never delivered inline.
///
/// # Errors
/// [`HostError::InvalidArgument`] for a delay beyond the wheel's range; [`HostError::Limit`] when
/// the tenant has its limit of timeouts pending, or (0 ticks) the service's own mailbox is
/// full.
pub fn timeout(core: &mut ServiceCore, ticks: i64) -> Result<i32, HostError> {
    let ticks = u32::try_from(ticks.max(0)).map_err(|_| HostError::InvalidArgument)?;
    let handle = core.handle();
    if ticks == 0 {
        let session = core.new_session();
        let message = Message::empty(Handle::NONE, ptype::RESPONSE as u8, session);
        // Into its own mailbox, under its tenant's mailbox limits (one bounded push).
        return match core
            .node
            .push_from(&core.service, false, handle, message, &mut None)
        {
            Ok(()) => Ok(session),
            Err(crate::router::Refusal::Full(_)) => Err(HostError::Limit),
            Err(refusal) => Err(refusal.error()),
        };
    }
    let tenant = core.service().tenant();
    if !tenant.take_timer() {
        let why = format!(
            "tenant `{}` has its limit of {} timeouts pending",
            tenant.name(),
            tenant.spec.limits.timers
        );
        return Err(limit_hit(core, &why));
    }
    let index = tenant.index;
    let session = core.new_session();
    core.service().count_timer();
    let timeout = crate::clock::Timeout {
        handle,
        owner: Arc::downgrade(core.service()),
        session,
        tenant: index,
    };
    core.node.clock.add_timeout(ticks, timeout);
    Ok(session)
}

/// Logs a refused `TIMEOUT` (thinned out as every refusal) and returns [`HostError::Limit`].
fn limit_hit(core: &ServiceCore, why: &str) -> HostError {
    if let Some(refused) = count_refusal(core, RefusalKind::Timers) {
        core.log(&format!(
            "TIMEOUT refused: {why} ({refused} refused so far)"
        ));
    }
    HostError::Limit
}

/// Binds `name`: in the shared name space, or, for an untrusted tenant's name it does not
/// export, in the tenant's own name space (where no other tenant can see it or be denied it).
fn bind(core: &ServiceCore, name: &str, handle: Handle) -> Result<String, HostError> {
    let tenant = core.service().tenant();
    let scope = if tenant.exports(name) {
        crate::handle::SHARED_SCOPE
    } else {
        tenant.name_scope()
    };
    // In a harbor network a global name in the shared space is the network's: told to
    // the master too (skynet's manager.lua sends it to `.cslave`), by those that may
    // reach other nodes.
    if let Some(harbor) = &core.node.harbor {
        if scope == crate::handle::SHARED_SCOPE
            && crate::harbor::is_global_name(name)
            && tenant.spec.capabilities.harbor
        {
            harbor.register(name, handle)?;
        }
    }
    let limits = &tenant.spec.limits;
    let caps = crate::handle::NameCaps {
        per_service: limits.names as usize,
        per_owner: limits.tenant_names as usize,
    };
    let bound = core
        .node
        .router
        .bind_name_capped(scope, name, handle, tenant.index, caps);
    match bound {
        Ok(()) => Ok(name.to_string()),
        Err(HandleError::TooManyNames(why)) => {
            if let Some(refused) = count_refusal(core, RefusalKind::Names) {
                core.log(&format!(
                    "REG {} refused: {why} (tenant `{}`; {refused} refused so far)",
                    Shown(name),
                    tenant.name()
                ));
            }
            Err(HostError::Limit)
        }
        Err(HandleError::NameTaken(_)) => Err(HostError::NameTaken),
        Err(HandleError::NoSuchHandle(_)) => Err(HostError::InvalidAddress),
        Err(_) => Err(HostError::InvalidArgument),
    }
}

fn stat(core: &ServiceCore, what: &str) -> Result<String, HostError> {
    let service = core.service();
    let stats = &service.stats;
    match what {
        "mqlen" => Ok(service.queue_len().to_string()),
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
        // skywasm: why `skywasm_interrupt` was last called (`signal` or `cpu`).
        "interrupt" => Ok(match service.interrupt_reason() {
            crate::service::InterruptReason::Cpu => "cpu".into(),
            crate::service::InterruptReason::Signal => "signal".into(),
        }),
        _ => Err(HostError::InvalidArgument),
    }
}

#[cfg(test)]
mod tests {
    use skywasm_abi::{ptype, Handle, HostError};

    use super::execute;
    use crate::mq::Message;
    use crate::shared::testing::{as_service, drain, idle_node, quiet_in};
    use crate::shared::NodeShared;

    /// Runs `command` as service `who` would.
    fn run(
        node: &NodeShared,
        who: Handle,
        command: &str,
        param: &str,
    ) -> Result<String, HostError> {
        as_service(node, who, |core| execute(core, command, param))
    }

    const TENANTS: &str = r#"tenants = { guest = { export = { ".room" }, getenv = { "game_*" },
        setenv = { "game_*", "lua_path" } } }"#;

    #[test]
    fn names_are_bound_once_and_found_by_others() {
        let node = idle_node("");
        let (a, b) = (quiet_in(&node, "node", "a"), quiet_in(&node, "node", "b"));
        assert_eq!(run(&node, a, "REG", ""), Ok(format!(":{:x}", a.0)));
        assert_eq!(run(&node, a, "REG", ".db"), Ok(".db".to_string()));
        assert_eq!(run(&node, b, "QUERY", ".db"), Ok(format!(":{:x}", a.0)));
        assert_eq!(run(&node, b, "REG", ".db"), Err(HostError::NameTaken));
        assert_eq!(run(&node, b, "QUERY", ".nobody"), Err(HostError::NotFound));
        // NAME binds another service's address.
        assert_eq!(
            run(&node, a, "NAME", &format!(".cache :{:x}", b.0)),
            Ok(".cache".to_string())
        );
        assert_eq!(node.router.resolve(".cache"), Ok(b));
        assert_eq!(run(&node, a, "NAME", ".x"), Err(HostError::InvalidArgument));
    }

    #[test]
    fn an_untrusted_tenant_keeps_its_names_to_itself_and_cannot_take_an_exported_one() {
        let node = idle_node(TENANTS);
        let host = quiet_in(&node, "node", "host");
        let guest = quiet_in(&node, "guest", "guest");
        // Its unexported name lives in its own name space.
        assert_eq!(run(&node, guest, "REG", ".mine"), Ok(".mine".to_string()));
        assert_eq!(run(&node, host, "QUERY", ".mine"), Err(HostError::NotFound));
        assert_eq!(
            run(&node, guest, "QUERY", ".mine"),
            Ok(format!(":{:x}", guest.0))
        );
        // The name it exports is shared.
        assert_eq!(run(&node, guest, "REG", ".room"), Ok(".room".to_string()));
        assert_eq!(
            run(&node, host, "QUERY", ".room"),
            Ok(format!(":{:x}", guest.0))
        );
        // It acts on its own tenant's services only.
        assert_eq!(
            run(&node, guest, "KILL", &format!(":{:x}", host.0)),
            Err(HostError::Denied)
        );
        assert!(node.router.service(host).is_some());
    }

    #[test]
    fn env_keys_are_set_once_and_untrusted_tenants_see_only_their_lists() {
        let node = idle_node(&format!("{TENANTS}\ngame_mode = \"pvp\"\nsecret_sauce = 1"));
        let host = quiet_in(&node, "node", "host");
        let guest = quiet_in(&node, "guest", "guest");
        assert_eq!(run(&node, host, "SETENV", "score 7"), Ok(String::new()));
        assert_eq!(
            run(&node, host, "SETENV", "score 8"),
            Err(HostError::NameTaken)
        );
        assert_eq!(run(&node, host, "GETENV", "score"), Ok("7".to_string()));
        assert_eq!(
            run(&node, host, "GETENV", "missing"),
            Err(HostError::NotFound)
        );
        assert_eq!(
            run(&node, guest, "GETENV", "game_mode"),
            Ok("pvp".to_string())
        );
        assert_eq!(
            run(&node, guest, "GETENV", "secret_sauce"),
            Err(HostError::Denied)
        );
        assert_eq!(
            run(&node, guest, "SETENV", "game_level 3"),
            Ok(String::new())
        );
        // Listed, but the Lua runtime reads it: only a trusted tenant may set it.
        assert_eq!(
            run(&node, guest, "SETENV", "lua_path x"),
            Err(HostError::Denied)
        );
        assert_eq!(
            run(&node, guest, "SETENV", "other 1"),
            Err(HostError::Denied)
        );
        assert_ne!(node.getenv("lua_path").as_deref(), Some("x"));
    }

    #[test]
    fn a_timeout_of_zero_is_queued_at_once_and_others_wait_in_the_wheel() {
        let node = idle_node("");
        let a = quiet_in(&node, "node", "a");
        let now = run(&node, a, "TIMEOUT", "0")
            .unwrap()
            .parse::<i32>()
            .unwrap();
        let later = run(&node, a, "TIMEOUT", "100")
            .unwrap()
            .parse::<i32>()
            .unwrap();
        assert_ne!(now, later);
        assert_eq!(node.clock.pending(), 1);
        assert_eq!(
            drain(&node, a),
            [Message::empty(Handle::NONE, ptype::RESPONSE as u8, now)]
        );
        assert_eq!(
            run(&node, a, "TIMEOUT", "soon"),
            Err(HostError::InvalidArgument)
        );
    }

    #[test]
    fn stat_counts_what_waits_and_exit_ends_the_caller() {
        let node = idle_node("");
        let (a, b) = (quiet_in(&node, "node", "a"), quiet_in(&node, "node", "b"));
        for session in 1..=3 {
            let message = Message::empty(b, ptype::TEXT as u8, session);
            node.router.push(a, message).unwrap();
        }
        assert_eq!(run(&node, a, "STAT", "mqlen"), Ok("3".to_string()));
        assert_eq!(
            run(&node, a, "STAT", "nonsense"),
            Err(HostError::InvalidArgument)
        );
        assert_eq!(run(&node, a, "EXIT", ""), Ok(String::new()));
        assert!(
            node.router.service(a).is_none(),
            "its handle is retired at once"
        );
        assert_eq!(
            run(&node, b, "KILL", &format!(":{:x}", a.0)),
            Err(HostError::InvalidAddress)
        );
        assert_eq!(run(&node, b, "NOSUCH", ""), Err(HostError::UnknownCommand));
    }
}
