//! Tenants: named groups of services with their limits and capabilities (`docs/tenants.md`).
//!
//! Every service belongs to one tenant. The node's own services (the logger, bootstrap, the
//! launcher, and everything a plain skynet config starts) form the trusted tenant `node`;
//! tenants named in the config's `tenants` table are untrusted unless they say otherwise.
//! A service launched by a service belongs to the launcher's tenant (through `.launcher`
//! too: it launches on behalf of the requester with `LAUNCHAS`).
//!
//! The config's table form is sugar for flat env keys, so a tenant can also be written in
//! skynet's one-key-per-line style: `tenants = { guest = { cpu = 100, launch = {"snlua"} } }`
//! becomes `tenants.guest.cpu = "100"` and `tenants.guest.launch = "snlua"` (lists are
//! joined with `;`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{parse_size, ConfigError};
use crate::service::Capabilities;
use crate::sync::lock;

/// The name of the trusted tenant of the node's own services.
pub const NODE_TENANT: &str = "node";

/// Env keys every tenant may read: the ones the Lua runtime reads to find its scripts.
const RUNTIME_ENV_KEYS: &[&str] = &[
    "lua_path",
    "lua_cpath",
    "luaservice",
    "lualoader",
    "preload",
    "lua_memlimit",
    "harbor",
];

/// The limits of every service of a tenant, and of the tenant as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time one message (or init, or signal) may run in guest code, in milliseconds; past
    /// it the message is aborted and the service discarded.
    pub cpu_ms: u64,
    /// For guests that can stop their own work (snlua): after this many milliseconds the
    /// running Lua code raises a catchable error; 0 = no soft stage.
    pub cpu_soft_ms: u64,
    /// Linear memory of one service, in bytes.
    pub memory: u64,
    /// Linear memory of all the tenant's services together, in bytes.
    pub tenant_memory: u64,
    /// Messages waiting in one service's mailbox; a send beyond it is refused.
    pub mailbox: usize,
    /// Largest message body a service of the tenant may send.
    pub message_size: usize,
    /// Live services of the tenant.
    pub services: u32,
    /// Launches per second (with a burst of as many); 0 = unlimited.
    pub spawn_rate: u32,
}

/// What a tenant is: its name, trust, limits and capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    /// The tenant's name.
    pub name: String,
    /// Trusted tenants may do anything a skynet service may (limits still apply).
    pub trusted: bool,
    /// The limits.
    pub limits: Limits,
    /// Capabilities beyond messaging (always all false for untrusted tenants except
    /// `sockets`, which the config may grant).
    pub capabilities: Capabilities,
    /// Modules the tenant may launch: `module` (any arguments) or `snlua script`; `None`
    /// allows any module (trusted tenants).
    pub launch: Option<Vec<String>>,
    /// Env keys readable by `GETENV` (a trailing `*` matches a prefix); the Lua runtime's
    /// keys are always readable. `None` = every key.
    pub getenv: Option<Vec<String>>,
    /// Env keys writable by `SETENV`. `None` = every key.
    pub setenv: Option<Vec<String>>,
    /// Names of the tenant's services that other tenants may send to.
    pub export: Vec<String>,
    /// Services the node launches in this tenant at start (`"module args"` each).
    pub start: Vec<String>,
    /// Whether `LOGON`/`LOGOFF` of the tenant's own services are allowed.
    pub logon: bool,
}

impl TenantSpec {
    /// The trusted tenant with the node's defaults.
    fn node(defaults: &Limits) -> TenantSpec {
        TenantSpec {
            name: NODE_TENANT.into(),
            trusted: true,
            limits: defaults.clone(),
            capabilities: Capabilities::TRUSTED,
            launch: None,
            getenv: None,
            setenv: None,
            export: vec![".launcher".into()],
            start: Vec::new(),
            logon: true,
        }
    }

    /// An untrusted tenant with safe defaults derived from the node's.
    fn untrusted(name: &str, defaults: &Limits) -> TenantSpec {
        TenantSpec {
            name: name.into(),
            trusted: false,
            limits: Limits {
                message_size: defaults.message_size.min(UNTRUSTED_MESSAGE_SIZE),
                services: defaults.services.min(UNTRUSTED_SERVICES),
                tenant_memory: UNTRUSTED_TENANT_MEMORY,
                spawn_rate: UNTRUSTED_SPAWN_RATE,
                ..defaults.clone()
            },
            capabilities: Capabilities::NONE,
            launch: Some(Vec::new()),
            getenv: Some(Vec::new()),
            setenv: Some(Vec::new()),
            export: Vec::new(),
            start: Vec::new(),
            logon: false,
        }
    }

    /// True if a service of this tenant may launch `module` with `args`.
    pub fn may_launch(&self, module: &str, args: &str) -> bool {
        let Some(allowed) = &self.launch else {
            return true;
        };
        let script = args.split_whitespace().next().unwrap_or("");
        allowed.iter().any(|entry| match entry.split_once(' ') {
            Some((m, s)) => m == module && s.trim() == script,
            None => entry == module,
        })
    }

    /// True if `GETENV key` is allowed.
    pub fn may_getenv(&self, key: &str) -> bool {
        RUNTIME_ENV_KEYS.contains(&key) || allowed_key(self.getenv.as_deref(), key)
    }

    /// True if `SETENV key` is allowed.
    pub fn may_setenv(&self, key: &str) -> bool {
        allowed_key(self.setenv.as_deref(), key)
    }
}

fn allowed_key(list: Option<&[String]>, key: &str) -> bool {
    let Some(list) = list else {
        return true;
    };
    list.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    })
}

/// Default largest message of an untrusted tenant's service.
const UNTRUSTED_MESSAGE_SIZE: usize = 4 << 20;
/// Default number of live services of an untrusted tenant.
const UNTRUSTED_SERVICES: u32 = 1000;
/// Default memory of all of an untrusted tenant's services together.
const UNTRUSTED_TENANT_MEMORY: u64 = 1 << 30;
/// Default launches per second of an untrusted tenant.
const UNTRUSTED_SPAWN_RATE: u32 = 100;

/// A tenant of a running node: its spec and what its services use now.
#[derive(Debug)]
pub struct Tenant {
    /// What the tenant is.
    pub spec: TenantSpec,
    /// Live services.
    pub services: AtomicU32,
    /// Linear memory of its services, in bytes.
    pub memory: AtomicU64,
    /// Launch tokens and when they were last refilled.
    spawn_tokens: Mutex<(f64, Instant)>,
}

impl Tenant {
    /// A tenant with nothing running.
    pub fn new(spec: TenantSpec) -> Tenant {
        let burst = f64::from(spec.limits.spawn_rate);
        Tenant {
            spec,
            services: AtomicU32::new(0),
            memory: AtomicU64::new(0),
            spawn_tokens: Mutex::new((burst, Instant::now())),
        }
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// True for the node's own tenant and tenants configured as trusted.
    pub fn is_trusted(&self) -> bool {
        self.spec.trusted
    }

    /// Takes one launch token; false when the tenant launched too fast.
    pub fn take_spawn_token(&self) -> bool {
        let rate = f64::from(self.spec.limits.spawn_rate);
        if rate == 0.0 {
            return true;
        }
        let mut tokens = lock(&self.spawn_tokens);
        let now = Instant::now();
        let refill = now.duration_since(tokens.1).as_secs_f64() * rate;
        tokens.0 = (tokens.0 + refill).min(rate);
        tokens.1 = now;
        if tokens.0 >= 1.0 {
            tokens.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts a new service; false (nothing counted) when the tenant is at its limit.
    pub fn add_service(&self) -> bool {
        let limit = self.spec.limits.services;
        self.services
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts a service that ended.
    pub fn remove_service(&self) {
        let _ = self
            .services
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Charges `bytes` more linear memory; false (nothing charged) past the tenant's total.
    pub fn charge_memory(&self, bytes: u64) -> bool {
        let limit = self.spec.limits.tenant_memory;
        self.memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// Gives back memory charged with [`Tenant::charge_memory`].
    pub fn release_memory(&self, bytes: u64) {
        let _ = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// The tenants of a node; the first is the trusted `node` tenant.
#[derive(Debug, Clone)]
pub struct Tenants {
    list: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// The node tenant alone (a config without `tenants`).
    pub fn single(defaults: &Limits) -> Tenants {
        Tenants {
            list: vec![Arc::new(Tenant::new(TenantSpec::node(defaults)))],
        }
    }

    /// The trusted tenant of the node's own services.
    pub fn node(&self) -> &Arc<Tenant> {
        &self.list[0]
    }

    /// A tenant by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.list.iter().find(|t| t.name() == name)
    }

    /// Every tenant, the node's first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.list.iter()
    }
}

/// Builds the tenant specs from the `tenants.NAME.KEY` env entries; `tenants.node.*`
/// configures the trusted tenant. `origin` names the config in errors.
///
/// # Errors
/// A [`ConfigError`] naming the key for an unknown key or a malformed value.
pub fn specs_from_env(
    env: &BTreeMap<String, String>,
    defaults: &Limits,
    origin: &str,
) -> Result<Vec<TenantSpec>, ConfigError> {
    let mut specs = vec![TenantSpec::node(defaults)];
    for (key, value) in env.range("tenants.".to_string()..) {
        let Some(rest) = key.strip_prefix("tenants.") else {
            break;
        };
        let bad = |want: &str| ConfigError(format!("{origin}: `{key} = {value:?}`: {want}"));
        let Some((name, field)) = rest.split_once('.') else {
            return Err(bad("expected tenants.NAME.KEY"));
        };
        if !valid_tenant_name(name) {
            return Err(bad("a tenant's name is letters, digits, `_` and `-`"));
        }
        let index = match specs.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                specs.push(TenantSpec::untrusted(name, defaults));
                specs.len() - 1
            }
        };
        let spec = &mut specs[index];
        apply_field(spec, field, value).map_err(|want| bad(&want))?;
    }
    for spec in &mut specs {
        if spec.name == NODE_TENANT {
            spec.trusted = true;
        }
        if spec.trusted {
            // Trusted means what any skynet service may do: the allow-lists do not apply.
            spec.capabilities = Capabilities::TRUSTED;
            spec.launch = None;
            spec.getenv = None;
            spec.setenv = None;
            spec.logon = true;
        } else {
            // Forging a source and reading host files are never granted to untrusted code.
            spec.capabilities.redirect = false;
            spec.capabilities.files = false;
        }
        if spec.limits.cpu_soft_ms >= spec.limits.cpu_ms {
            spec.limits.cpu_soft_ms = 0;
        }
    }
    Ok(specs)
}

/// Builds the node's tenants from their specs.
pub fn tenants_from_specs(specs: Vec<TenantSpec>) -> Tenants {
    Tenants {
        list: specs
            .into_iter()
            .map(|s| Arc::new(Tenant::new(s)))
            .collect(),
    }
}

fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn list(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn apply_field(spec: &mut TenantSpec, field: &str, value: &str) -> Result<(), String> {
    let number = |max: u64| -> Result<u64, String> {
        match value.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("expected an integer in 0..={max}")),
        }
    };
    let size = || parse_size(value).ok_or_else(|| "expected a size such as 64K, 256M".to_string());
    let flag = || match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    };
    let limits = &mut spec.limits;
    match field {
        "trusted" => spec.trusted = flag()?,
        "cpu" => {
            limits.cpu_ms = number(3_600_000)?.max(10);
            limits.cpu_soft_ms = limits.cpu_ms / 2;
        }
        "cpu_soft" => limits.cpu_soft_ms = number(3_600_000)?,
        "memory" => limits.memory = size()?,
        "tenant_memory" => limits.tenant_memory = size()?,
        "mailbox" => limits.mailbox = number(1 << 32)?.max(1) as usize,
        "message_size" => limits.message_size = (size()?.clamp(1, 1 << 31)) as usize,
        "services" => limits.services = number(u64::from(u32::MAX))? as u32,
        "spawn_rate" => limits.spawn_rate = number(1_000_000)? as u32,
        "launch" => spec.launch = Some(list(value)),
        "getenv" => spec.getenv = Some(list(value)),
        "setenv" => spec.setenv = Some(list(value)),
        "export" => spec.export = list(value),
        "start" => spec.start = list(value),
        "sockets" => spec.capabilities.sockets = flag()?,
        "logon" => spec.logon = flag()?,
        _ => {
            return Err(
                "unknown tenant key (trusted, cpu, cpu_soft, memory, tenant_memory, mailbox, \
                 message_size, services, spawn_rate, launch, getenv, setenv, export, start, \
                 sockets, logon)"
                    .into(),
            )
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Limits {
        Limits {
            cpu_ms: 1000,
            cpu_soft_ms: 500,
            memory: 256 << 20,
            tenant_memory: u64::MAX,
            mailbox: 100_000,
            message_size: 64 << 20,
            services: 1_000_000,
            spawn_rate: 0,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn untrusted_tenants_get_safe_defaults_and_their_settings() {
        let specs = specs_from_env(
            &env(&[
                ("tenants.guest.cpu", "100"),
                ("tenants.guest.launch", "snlua worker;pong"),
                ("tenants.guest.getenv", "game_*"),
                ("tenants.guest.export", ".room"),
                ("tenants.guest.sockets", "true"),
                ("thread", "2"),
            ]),
            &defaults(),
            "t",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert!(specs[0].trusted && specs[0].name == NODE_TENANT);
        let guest = &specs[1];
        assert!(!guest.trusted);
        assert_eq!(guest.limits.cpu_ms, 100);
        assert_eq!(guest.limits.cpu_soft_ms, 50);
        assert_eq!(guest.limits.message_size, 4 << 20);
        assert!(guest.may_launch("snlua", "worker 1 2"));
        assert!(!guest.may_launch("snlua", "other"));
        assert!(guest.may_launch("pong", ""));
        assert!(guest.may_getenv("game_mode") && guest.may_getenv("lua_path"));
        assert!(!guest.may_getenv("secret") && !guest.may_setenv("game_mode"));
        assert!(guest.capabilities.sockets && !guest.capabilities.redirect);
        assert_eq!(guest.export, vec![".room".to_string()]);
    }

    #[test]
    fn bad_tenant_keys_name_the_key() {
        for (key, value) in [
            ("tenants.guest.cpuu", "1"),
            ("tenants.guest.cpu", "lots"),
            ("tenants.g!.cpu", "1"),
            ("tenants.guest", "1"),
            ("tenants.guest.trusted", "yes"),
        ] {
            let err = specs_from_env(&env(&[(key, value)]), &defaults(), "t").unwrap_err();
            assert!(err.0.starts_with(&format!("t: `{key} = ")), "{err}");
        }
    }

    #[test]
    fn trusted_tenants_keep_every_capability() {
        let specs = specs_from_env(
            &env(&[("tenants.ops.trusted", "true"), ("tenants.node.cpu", "50")]),
            &defaults(),
            "t",
        )
        .unwrap();
        assert_eq!(specs[0].limits.cpu_ms, 50);
        let ops = specs.iter().find(|s| s.name == "ops").unwrap();
        assert_eq!(ops.capabilities, Capabilities::TRUSTED);
        assert!(ops.may_launch("anything", ""));
    }

    #[test]
    fn counters_respect_their_limits() {
        let mut spec = TenantSpec::untrusted("g", &defaults());
        spec.limits.services = 2;
        spec.limits.tenant_memory = 100;
        spec.limits.spawn_rate = 2;
        let tenant = Tenant::new(spec);
        assert!(tenant.add_service() && tenant.add_service() && !tenant.add_service());
        tenant.remove_service();
        assert!(tenant.add_service());
        assert!(tenant.charge_memory(60) && !tenant.charge_memory(60));
        tenant.release_memory(60);
        assert!(tenant.charge_memory(100));
        assert!(tenant.take_spawn_token() && tenant.take_spawn_token());
        assert!(!tenant.take_spawn_token());
    }
}
