//! Tenants: named groups of services with their limits and capabilities (`docs/tenants.md`).
//!
//! Every service belongs to one tenant. The node's own services (the logger, bootstrap, the
//! launcher, and everything a plain skynet config starts) form the trusted tenant `node`;
//! tenants named in the config's `tenants` table are untrusted unless they say otherwise.
//! A service launched by a service belongs to the launcher's tenant (through `.launcher`
//! too: it launches on behalf of the requester with `LAUNCHAS`).
//!
//! The config types its `tenants` table into [`TenantSpec`]s (config/tenants.rs); this
//! module is what they become at run time and knows nothing of the config file.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::socket::SocketQuota;
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
    "lua_hash_seed",
    "harbor",
    "snax",
    "snax_interface_g",
    "snax_loader",
];

/// A `lua_hash_seed` setting: `random` (each Lua service hashes the strings it makes with
/// a seed of its own; the default) or `fixed` (the seed of the shared snapshot).
///
/// # Errors
/// Any other value.
pub fn hash_seed_setting(value: &str) -> Result<String, String> {
    match value.trim() {
        setting @ ("random" | "fixed") => Ok(setting.to_string()),
        other => Err(format!(
            "lua_hash_seed = {other:?}: expected random or fixed"
        )),
    }
}

/// Env keys no guest reads, whatever its tenant's `getenv` list says: secrets.
const SECRET_ENV_KEYS: &[&str] = &["cluster_secret", "harbor_secret"];

/// Env keys the host reads for every tenant's services (files it opens, names it pins):
/// only a trusted tenant may set them.
const HOST_ENV_KEYS: &[&str] = &[
    "lua_data_path",
    "dns_hosts",
    "tls_cert",
    "tls_key",
    "tls_ca",
];

/// True for a key the runtime reads (the Lua runtime's keys, the host's, the cluster's),
/// which only a trusted tenant may set.
fn is_runtime_key(key: &str) -> bool {
    RUNTIME_ENV_KEYS.contains(&key) || HOST_ENV_KEYS.contains(&key) || key.starts_with("cluster")
}

/// True for a key whose value no guest may read.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_ENV_KEYS.contains(&key)
}

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
    /// Messages waiting in one service's mailbox; a send beyond it is refused
    /// (`usize::MAX`: no count, only [`Limits::mailbox_bytes`]).
    pub mailbox: usize,
    /// Largest message body a service of the tenant may send.
    pub message_size: usize,
    /// Live services of the tenant.
    pub services: u32,
    /// Launches per second (with a burst of as many); 0 = unlimited.
    pub spawn_rate: u32,
    /// Workers that may run the tenant's services at once; the node's worker count or more
    /// means no cap.
    pub workers: usize,
    /// Timeouts pending at once over all the tenant's services.
    pub timers: u32,
    /// Sockets open at once over all the tenant's services.
    pub sockets: u32,
    /// Bytes of the messages waiting in one service's mailbox: their bodies and
    /// [`crate::mq::MESSAGE_OVERHEAD`] each.
    pub mailbox_bytes: usize,
    /// Log lines per second of one service (with a burst of as many); 0 = unlimited.
    pub log_rate: u32,
    /// Log lines per second of all the tenant's services together; 0 = unlimited.
    pub tenant_log_rate: u32,
    /// Largest wasm module (file or text) the tenant may have compiled, in bytes: compiling
    /// takes time in proportion to size, and nothing can interrupt it.
    pub module_size: u64,
    /// Bytes waiting in one service's mailbox past which its sockets stop reading (and its
    /// listeners stop accepting) until it has taken half of them.
    pub socket_backlog: usize,
    /// Bytes of the messages waiting in all the tenant's mailboxes together.
    pub tenant_mailbox_bytes: usize,
    /// Names (`REG`, `NAME`) one service may hold.
    pub names: u32,
    /// Names all the tenant's services may hold together.
    pub tenant_names: u32,
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
    /// Where its services may listen (TCP) and bind (UDP); `None` = anywhere.
    pub listen: Option<Vec<AddressPattern>>,
    /// Where its services may connect (TCP) and send datagrams (UDP); `None` = anywhere.
    pub connect: Option<Vec<AddressPattern>>,
    /// Its Lua services' string-hash seed (`lua_hash_seed`: `random` or `fixed`); `None`:
    /// the node's setting.
    pub lua_hash_seed: Option<String>,
    /// Directories its Lua services may read data files from (`lua_data_path`); `None`:
    /// the node's `lua_data_path` for a trusted tenant, none for an untrusted one.
    pub lua_data_path: Option<Vec<String>>,
}

/// A `host:port` pattern of a socket allow-list: the host is `*` or written out (an IPv6
/// address may be in brackets), the port is `*`, `N` or `N-M`. Hosts are compared as the
/// service writes them (a listen on the empty host is a listen on `0.0.0.0`), so a
/// pattern with a host name allows that name, not the addresses it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    /// `None` matches every host.
    host: Option<String>,
    ports: std::ops::RangeInclusive<u16>,
}

impl AddressPattern {
    /// Parses `host:port`.
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn parse(text: &str) -> Result<AddressPattern, String> {
        let bad = || format!("`{text}` is not a host:port pattern (port: *, N or N-M)");
        let (host, port) = text.trim().rsplit_once(':').ok_or_else(bad)?;
        let ports = match port {
            "*" => 0..=u16::MAX,
            _ => match port.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (
                        low.parse().map_err(|_| bad())?,
                        high.parse().map_err(|_| bad())?,
                    );
                    if low > high {
                        return Err(bad());
                    }
                    low..=high
                }
                None => {
                    let port = port.parse().map_err(|_| bad())?;
                    port..=port
                }
            },
        };
        let host = normal_host(host);
        if host.is_empty() {
            return Err(bad());
        }
        Ok(AddressPattern {
            host: (host != "*").then_some(host),
            ports,
        })
    }

    /// True when `host:port` is allowed by this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = match normal_host(host) {
            empty if empty.is_empty() => "0.0.0.0".to_string(),
            host => host,
        };
        self.ports.contains(&port) && self.host.as_ref().is_none_or(|h| *h == host)
    }
}

/// A host as compared by [`AddressPattern`]: without IPv6 brackets, in lower case.
fn normal_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

impl TenantSpec {
    /// The trusted tenant with the node's defaults.
    pub(crate) fn node(defaults: &Limits) -> TenantSpec {
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
            lua_hash_seed: None,
            lua_data_path: None,
            listen: None,
            connect: None,
        }
    }

    /// An untrusted tenant with safe defaults derived from the node's.
    pub(crate) fn untrusted(name: &str, defaults: &Limits) -> TenantSpec {
        TenantSpec {
            name: name.into(),
            trusted: false,
            limits: Limits {
                // The node's own services may run long and queue deep (skynet has neither
                // limit, docs/config.md says why they are high); untrusted code keeps tight
                // ones unless the node's are tighter still.
                cpu_ms: defaults.cpu_ms.min(UNTRUSTED_CPU_MS),
                cpu_soft_ms: defaults
                    .cpu_soft_ms
                    .min(defaults.cpu_ms.min(UNTRUSTED_CPU_MS) / 2),
                mailbox: defaults.mailbox.min(UNTRUSTED_MAILBOX),
                message_size: defaults.message_size.min(UNTRUSTED_MESSAGE_SIZE),
                services: defaults.services.min(UNTRUSTED_SERVICES),
                tenant_memory: UNTRUSTED_TENANT_MEMORY,
                spawn_rate: UNTRUSTED_SPAWN_RATE,
                // One worker is always left for the other tenants (on a node of one
                // worker, nothing can be left).
                workers: defaults.workers.saturating_sub(1).max(1),
                timers: defaults.timers.min(UNTRUSTED_TIMERS),
                sockets: defaults.sockets.min(UNTRUSTED_SOCKETS),
                mailbox_bytes: defaults.mailbox_bytes.min(UNTRUSTED_MAILBOX_BYTES),
                socket_backlog: defaults.socket_backlog,
                tenant_mailbox_bytes: UNTRUSTED_TENANT_MAILBOX_BYTES,
                names: UNTRUSTED_NAMES,
                tenant_names: UNTRUSTED_TENANT_NAMES,
                log_rate: UNTRUSTED_LOG_RATE,
                tenant_log_rate: UNTRUSTED_TENANT_LOG_RATE,
                module_size: defaults.module_size.min(UNTRUSTED_MODULE_SIZE),
                ..defaults.clone()
            },
            capabilities: Capabilities::NONE,
            launch: Some(Vec::new()),
            getenv: Some(Vec::new()),
            setenv: Some(Vec::new()),
            export: Vec::new(),
            start: Vec::new(),
            logon: false,
            lua_hash_seed: None,
            lua_data_path: None,
            listen: None,
            connect: None,
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
        !is_secret_key(key)
            && (RUNTIME_ENV_KEYS.contains(&key) || allowed_key(self.getenv.as_deref(), key))
    }

    /// True if `SETENV key` is allowed. An untrusted tenant never sets a key the runtime
    /// reads (where scripts come from, the cluster's settings), whatever its list says:
    /// later launches of every tenant would read it.
    pub fn may_setenv(&self, key: &str) -> bool {
        (self.trusted || !is_runtime_key(key)) && self.may_setenv_listed(key)
    }

    /// True if the tenant's `setenv` list names `key` (or it has none).
    pub fn may_setenv_listed(&self, key: &str) -> bool {
        allowed_key(self.setenv.as_deref(), key)
    }

    /// True if a service may listen (or bind a UDP socket) on `host:port`.
    pub fn may_listen(&self, host: &str, port: u16) -> bool {
        allowed_address(self.listen.as_deref(), host, port)
    }

    /// True if a service may connect (or send a datagram) to `host:port`.
    pub fn may_connect(&self, host: &str, port: u16) -> bool {
        allowed_address(self.connect.as_deref(), host, port)
    }

    /// True if its services may have `name` looked up (`socket_resolve`): when they may
    /// connect anywhere, or to any host on some port (a `*` entry), or when an entry names
    /// that host.
    pub fn may_resolve(&self, name: &str) -> bool {
        self.connect.as_deref().is_none_or(|patterns| {
            patterns.iter().any(|p| {
                p.host
                    .as_deref()
                    .is_none_or(|host| host.eq_ignore_ascii_case(name))
            })
        })
    }

    /// True if the `connect` list has an entry naming `host` itself (not `*`) that
    /// allows `host:port`: what an untrusted tenant needs to reach this machine's own
    /// addresses or the node's own listeners.
    pub fn names_connect_host(&self, host: &str, port: u16) -> bool {
        self.connect.as_deref().is_some_and(|patterns| {
            patterns
                .iter()
                .any(|p| p.host.is_some() && p.matches(host, port))
        })
    }
}

fn allowed_address(list: Option<&[AddressPattern]>, host: &str, port: u16) -> bool {
    list.is_none_or(|patterns| patterns.iter().any(|p| p.matches(host, port)))
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

/// Default CPU per message of an untrusted tenant's service, in milliseconds.
const UNTRUSTED_CPU_MS: u64 = 1000;
/// Default messages waiting in one mailbox of an untrusted tenant's service.
const UNTRUSTED_MAILBOX: usize = 100_000;
/// Default number of names one service of an untrusted tenant may hold.
const UNTRUSTED_NAMES: u32 = 16;
/// Default number of names all services of an untrusted tenant may hold together.
const UNTRUSTED_TENANT_NAMES: u32 = 4096;

/// Default bytes waiting in all the mailboxes of an untrusted tenant together.
const UNTRUSTED_TENANT_MAILBOX_BYTES: usize = 256 << 20;

/// Default largest message of an untrusted tenant's service.
const UNTRUSTED_MESSAGE_SIZE: usize = 4 << 20;
/// Default number of live services of an untrusted tenant.
const UNTRUSTED_SERVICES: u32 = 1000;
/// Default memory of all of an untrusted tenant's services together.
const UNTRUSTED_TENANT_MEMORY: u64 = 1 << 30;
/// Default launches per second of an untrusted tenant.
const UNTRUSTED_SPAWN_RATE: u32 = 100;
/// Default pending timeouts of an untrusted tenant.
const UNTRUSTED_TIMERS: u32 = 100_000;
/// Default open sockets of an untrusted tenant.
const UNTRUSTED_SOCKETS: u32 = 1000;
/// Default bytes waiting in one mailbox of an untrusted tenant's service.
const UNTRUSTED_MAILBOX_BYTES: usize = 64 << 20;
/// Largest module an untrusted tenant may have compiled by default: snlua is about 0.5 MiB.
const UNTRUSTED_MODULE_SIZE: u64 = 16 << 20;
/// Default log lines per second of an untrusted tenant's service.
const UNTRUSTED_LOG_RATE: u32 = 100;
/// Default log lines per second of all an untrusted tenant's services together.
const UNTRUSTED_TENANT_LOG_RATE: u32 = 1000;

/// A tenant of a running node: its spec and what its services use now.
#[derive(Debug)]
pub struct Tenant {
    /// What the tenant is.
    pub spec: TenantSpec,
    /// Its place among the node's tenants (0: the node's own); its scheduling class.
    pub index: usize,
    /// Live services.
    pub services: AtomicU32,
    /// Linear memory of its services, in bytes.
    pub memory: AtomicU64,
    /// Timeouts pending (counted only under a limit).
    pub timers: AtomicU32,
    /// Its sockets: their count against `max_sockets`, and whose they are.
    pub sockets: Arc<SocketQuota>,
    /// Launches allowed now (`spawn_rate`).
    spawn_tokens: TokenBucket,
    /// Log lines its services may write now (`tenant_log_rate`).
    log_tokens: TokenBucket,
    /// Bytes of the messages waiting in all its mailboxes, counted by the mailboxes
    /// themselves when the tenant has a `tenant_mailbox_bytes` cap.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// What its services did, for the metrics and the console.
    pub activity: Activity,
}

/// Why something a tenant's service asked for was refused: the kinds its refusals are
/// counted by (`skywasm_tenant_refusals_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A capability or allow-list said no (a command, a send to another tenant, an
    /// address).
    Denied,
    /// A message to one of its services found the mailbox full (counted for the receiver).
    MailboxFull,
    /// A message larger than its `message_size`.
    MessageSize,
    /// Linear memory past `memory` or `tenant_memory`.
    Memory,
    /// A launch past `services`, `spawn_rate` or the arguments' size.
    Launch,
    /// A timeout past `timers`.
    Timers,
    /// A socket past `max_sockets` (or its lookups' share).
    Sockets,
    /// A name past `names` or `tenant_names`.
    Names,
    /// A log line past `log_rate` or `tenant_log_rate` (dropped).
    LogRate,
    /// A request to a service owing too many answers.
    Owed,
    /// A host call the sandbox bounds (WASI, data files).
    HostCall,
}

impl Kind for RefusalKind {
    const ALL: &'static [RefusalKind] = &[
        RefusalKind::Denied,
        RefusalKind::MailboxFull,
        RefusalKind::MessageSize,
        RefusalKind::Memory,
        RefusalKind::Launch,
        RefusalKind::Timers,
        RefusalKind::Sockets,
        RefusalKind::Names,
        RefusalKind::LogRate,
        RefusalKind::Owed,
        RefusalKind::HostCall,
    ];

    fn label(self) -> &'static str {
        match self {
            RefusalKind::Denied => "denied",
            RefusalKind::MailboxFull => "mailbox_full",
            RefusalKind::MessageSize => "message_size",
            RefusalKind::Memory => "memory",
            RefusalKind::Launch => "launch",
            RefusalKind::Timers => "timers",
            RefusalKind::Sockets => "sockets",
            RefusalKind::Names => "names",
            RefusalKind::LogRate => "log_rate",
            RefusalKind::Owed => "owed",
            RefusalKind::HostCall => "host_call",
        }
    }
}

/// Why a service of the tenant was ended against its will: the causes its faults are
/// counted by (`skywasm_tenant_faults_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCause {
    /// It ran past its CPU limit.
    Cpu,
    /// `KILL`, `SIGNAL 0` or the node stopping interrupted it.
    Interrupted,
    /// Its wasm stack overflowed.
    Stack,
    /// Any other trap of its code (unreachable, out of bounds, an uncaught error...).
    Trap,
    /// It broke the ABI's contract.
    Abi,
    /// Host code panicked while serving it.
    HostPanic,
    /// A native service ended itself.
    Native,
}

impl Kind for FaultCause {
    const ALL: &'static [FaultCause] = &[
        FaultCause::Cpu,
        FaultCause::Interrupted,
        FaultCause::Stack,
        FaultCause::Trap,
        FaultCause::Abi,
        FaultCause::HostPanic,
        FaultCause::Native,
    ];

    fn label(self) -> &'static str {
        match self {
            FaultCause::Cpu => "cpu",
            FaultCause::Interrupted => "interrupted",
            FaultCause::Stack => "stack",
            FaultCause::Trap => "trap",
            FaultCause::Abi => "abi",
            FaultCause::HostPanic => "host_panic",
            FaultCause::Native => "native",
        }
    }
}

/// What a [`ByKind`] counts by: a closed set of kinds, each with its label value.
pub trait Kind: Copy + Eq + 'static {
    /// Every kind, in the order their counts are kept.
    const ALL: &'static [Self];
    /// Its label value on `/metrics`.
    fn label(self) -> &'static str;
}

/// One counter per kind `K` (`N`: how many kinds there are), counted with relaxed adds.
#[derive(Debug)]
pub struct ByKind<K: Kind, const N: usize> {
    counts: [AtomicU64; N],
    kind: std::marker::PhantomData<K>,
}

impl<K: Kind, const N: usize> Default for ByKind<K, N> {
    fn default() -> Self {
        debug_assert_eq!(K::ALL.len(), N, "one counter per kind");
        ByKind {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: Kind, const N: usize> ByKind<K, N> {
    /// Counts one of `kind`.
    pub fn add(&self, kind: K) {
        let index = K::ALL.iter().position(|k| *k == kind);
        if let Some(counter) = index.and_then(|i| self.counts.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every kind with its count so far.
    pub fn counts(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        K::ALL
            .iter()
            .zip(&self.counts)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
    }
}

/// A tenant's counters that only grow. The message counts of live services are on the
/// services (their holders count without atomic read-modify-writes); a service that ends
/// adds its counts here, so the tenant's totals are these plus its live services'.
#[derive(Debug, Default)]
pub struct Activity {
    /// Messages delivered to its services that have ended.
    pub ended_received: AtomicU64,
    /// Messages its ended services sent.
    pub ended_sent: AtomicU64,
    /// Busy time of its services in nanoseconds, sampled as [`crate::service`]'s `busy_ns`.
    pub busy_ns: AtomicU64,
    /// Refusals, by kind.
    pub refusals: ByKind<RefusalKind, 11>,
    /// Faults, by cause.
    pub faults: ByKind<FaultCause, 7>,
}

impl Tenant {
    /// A tenant with nothing running, the `index`th of its node.
    pub fn new(spec: TenantSpec, index: usize) -> Tenant {
        let sockets = SocketQuota::new(spec.limits.sockets);
        let spawn_tokens = TokenBucket::new(spec.limits.spawn_rate);
        let log_tokens = TokenBucket::new(spec.limits.tenant_log_rate);
        Tenant {
            spec,
            index,
            services: AtomicU32::new(0),
            memory: AtomicU64::new(0),
            timers: AtomicU32::new(0),
            sockets,
            spawn_tokens,
            log_tokens,
            queued: Arc::default(),
            activity: Activity::default(),
        }
    }

    /// The counter a new mailbox of this tenant adds its bytes to, when the tenant's
    /// mailboxes are capped together (`tenant_mailbox_bytes`).
    pub fn mailbox_account(&self) -> Option<Arc<std::sync::atomic::AtomicUsize>> {
        (self.spec.limits.tenant_mailbox_bytes != usize::MAX).then(|| self.queued.clone())
    }

    /// True when `more` bytes would take its mailboxes together past
    /// `tenant_mailbox_bytes`.
    pub fn mailboxes_full(&self, more: usize) -> bool {
        let limit = self.spec.limits.tenant_mailbox_bytes;
        limit != usize::MAX && self.queued.load(Ordering::Relaxed).saturating_add(more) > limit
    }

    /// Counts `bytes` a message of this tenant holds while it waits outside any mailbox (for
    /// a harbor link or a global name) in its mailbox bytes, when its mailboxes are capped
    /// together (`tenant_mailbox_bytes`): `Ok(None)` when they are not, `Err` when that cap
    /// is reached. The bytes are given back when the returned charge drops.
    pub fn charge_waiting(&self, bytes: usize) -> Result<Option<WaitingCharge>, CapReached> {
        let Some(account) = self.mailbox_account() else {
            return Ok(None);
        };
        if self.mailboxes_full(bytes) {
            return Err(CapReached);
        }
        account.fetch_add(bytes, Ordering::Relaxed);
        Ok(Some(WaitingCharge { account, bytes }))
    }

    /// Bytes of the messages waiting in all its mailboxes (counted only under a cap).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The name space its services bind unexported names in and look names up from: the
    /// shared one for a trusted tenant, a private one (its index) for an untrusted one.
    pub fn name_scope(&self) -> usize {
        if self.is_trusted() {
            crate::handle::SHARED_SCOPE
        } else {
            self.index
        }
    }

    /// True if `name` is one the tenant exports.
    pub fn exports(&self, name: &str) -> bool {
        self.spec.export.iter().any(|e| e == name)
    }

    /// True for the node's own tenant and tenants configured as trusted.
    pub fn is_trusted(&self) -> bool {
        self.spec.trusted
    }

    /// Takes one log line token; false when the tenant's services log faster than its
    /// `tenant_log_rate`.
    pub fn take_log_token(&self) -> bool {
        self.log_tokens.take()
    }

    /// Takes one launch token; false when the tenant launched too fast.
    pub fn take_spawn_token(&self) -> bool {
        self.spawn_tokens.take()
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

    /// Counts a new pending timeout; false (nothing counted) at the tenant's limit. A
    /// tenant without a limit counts nothing: every worker's timeouts would otherwise meet
    /// on one shared counter.
    pub fn take_timer(&self) -> bool {
        let limit = self.spec.limits.timers;
        limit == u32::MAX || take_one(&self.timers, limit)
    }

    /// Counts `count` timeouts that fired or whose service ended.
    pub fn release_timers(&self, count: u32) {
        if self.spec.limits.timers != u32::MAX && count > 0 {
            let _ = self
                .timers
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_sub(count))
                });
        }
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

/// Bytes a waiting message holds of its tenant's `tenant_mailbox_bytes`
/// ([`Tenant::charge_waiting`]), given back when it drops.
pub struct WaitingCharge {
    account: Arc<std::sync::atomic::AtomicUsize>,
    bytes: usize,
}

impl Drop for WaitingCharge {
    fn drop(&mut self) {
        self.account.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A tenant's `tenant_mailbox_bytes` is reached ([`Tenant::charge_waiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached;

/// The linear memory one instance (a service, or a pre-initialization) has charged to its
/// tenant's `tenant_memory`, given back when it is dropped.
pub struct MemoryCharge {
    /// None: nobody is charged (the node's own pre-initializations).
    tenant: Option<Arc<Tenant>>,
    charged: u64,
    /// Charged ahead for a memory's first page (see [`MemoryCharge::with_first_page`]).
    reserve: u64,
}

/// A wasm page: what [`MemoryCharge::with_first_page`] charges ahead.
const FIRST_PAGE: u64 = 64 << 10;

/// Why a linear memory may not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryRefusal {
    /// Past the instance's own limit, in bytes.
    Instance(u64),
    /// Past the tenant's `tenant_memory`, in bytes.
    Tenant(u64),
}

impl MemoryCharge {
    /// Nothing charged yet, to `tenant`.
    pub fn new(tenant: Option<Arc<Tenant>>) -> MemoryCharge {
        MemoryCharge {
            tenant,
            charged: 0,
            reserve: 0,
        }
    }

    /// Charges `tenant` one page ahead (if it still has one) for the first page of a memory
    /// that starts empty: a service's GC heap, where wasm exceptions live, takes its first
    /// page when the guest first throws. Without the reserve, a service that never threw
    /// could not raise its "not enough memory" error once its tenant is at its cap (the
    /// throw itself would fail and end the service).
    pub fn with_first_page(tenant: Arc<Tenant>) -> MemoryCharge {
        let reserve = if tenant.charge_memory(FIRST_PAGE) {
            FIRST_PAGE
        } else {
            0
        };
        MemoryCharge {
            tenant: Some(tenant),
            charged: reserve,
            reserve,
        }
    }

    /// Charges a memory growing from `current` to `desired` bytes, within `limit` bytes for
    /// the instance and its tenant's `tenant_memory`; nothing is charged when refused.
    ///
    /// # Errors
    /// Which limit it would pass.
    pub fn grow(
        &mut self,
        current: usize,
        desired: usize,
        limit: u64,
    ) -> Result<(), MemoryRefusal> {
        if desired as u64 > limit {
            return Err(MemoryRefusal::Instance(limit));
        }
        let extra = desired.saturating_sub(current) as u64;
        if current == 0 && extra <= self.reserve {
            self.reserve = 0;
            return Ok(());
        }
        if let Some(tenant) = &self.tenant {
            if !tenant.charge_memory(extra) {
                return Err(MemoryRefusal::Tenant(tenant.spec.limits.tenant_memory));
            }
            self.charged += extra;
        }
        Ok(())
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        if let Some(tenant) = &self.tenant {
            tenant.release_memory(self.charged);
        }
    }
}

/// A rate limit: `rate` events per second with a burst of as many; rate 0 = unlimited.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    /// Tokens left and when they were last refilled.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket for `rate` events per second.
    pub fn new(rate: u32) -> TokenBucket {
        let rate = f64::from(rate);
        TokenBucket {
            rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one token; false when events come faster than the rate.
    pub fn take(&self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let mut state = lock(&self.state);
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.rate;
        state.0 = (state.0 + refill).min(self.rate);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Adds one to `counter` unless it is at `limit`; true when it did.
fn take_one(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

/// The tenants of a node; the first is the trusted `node` tenant.
#[derive(Debug, Clone)]
pub struct Tenants {
    list: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// The trusted tenant of the node's own services.
    pub fn node(&self) -> &Arc<Tenant> {
        &self.list[0]
    }

    /// A tenant by its index.
    pub fn by_index(&self, index: usize) -> Option<&Arc<Tenant>> {
        self.list.get(index)
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

/// What a service may do beyond sending to addresses and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Send with another source (`redirect`): forwarders and proxies need it; it lets a
    /// service forge replies, so only trusted services get it.
    pub redirect: bool,
    /// Listen, connect and use sockets.
    pub sockets: bool,
    /// Read a host file by its path (`load_source` FILE: the console's `inject`).
    pub files: bool,
    /// Send to services of other harbor nodes (`harbor`): the network's peers trust each
    /// other, so an untrusted tenant reaches them only when its config says so.
    pub harbor: bool,
}

impl Capabilities {
    /// What the node's own (trusted) services may do: everything, as in skynet.
    pub const TRUSTED: Capabilities = Capabilities {
        redirect: true,
        sockets: true,
        files: true,
        harbor: true,
    };

    /// Nothing beyond messaging: an untrusted tenant's starting point.
    pub const NONE: Capabilities = Capabilities {
        redirect: false,
        sockets: false,
        files: false,
        harbor: false,
    };
}

/// Builds the node's tenants from their specs.
pub fn tenants_from_specs(specs: Vec<TenantSpec>) -> Tenants {
    Tenants {
        list: specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| Arc::new(Tenant::new(spec, index)))
            .collect(),
    }
}

/// Node-wide limits for unit tests: a plain config's, with four workers.
#[cfg(test)]
pub(crate) fn test_limits() -> Limits {
    Limits {
        cpu_ms: 1000,
        cpu_soft_ms: 500,
        memory: 256 << 20,
        tenant_memory: u64::MAX,
        mailbox: 100_000,
        message_size: 64 << 20,
        services: 1_000_000,
        spawn_rate: 0,
        workers: 4,
        timers: u32::MAX,
        sockets: u32::MAX,
        mailbox_bytes: 1 << 30,
        socket_backlog: 8 << 20,
        tenant_mailbox_bytes: usize::MAX,
        names: u32::MAX,
        tenant_names: u32::MAX,
        log_rate: 0,
        tenant_log_rate: 0,
        module_size: 64 << 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_bytes_count_under_the_mailbox_cap_until_their_charge_drops() {
        let mut spec = TenantSpec::untrusted("g", &test_limits());
        spec.limits.tenant_mailbox_bytes = 100;
        let capped = Tenant::new(spec, 1);
        let first = capped
            .charge_waiting(60)
            .unwrap()
            .expect("charged under a cap");
        assert_eq!(capped.queued_bytes(), 60);
        assert_eq!(capped.charge_waiting(41).err(), Some(CapReached));
        drop(first);
        assert_eq!(capped.queued_bytes(), 0, "given back");
        assert!(capped.charge_waiting(100).unwrap().is_some());
        let mut spec = TenantSpec::untrusted("h", &test_limits());
        spec.limits.tenant_mailbox_bytes = usize::MAX;
        let uncapped = Tenant::new(spec, 2);
        assert!(
            uncapped.charge_waiting(1 << 40).unwrap().is_none(),
            "nothing to charge without a cap"
        );
    }

    #[test]
    fn counters_respect_their_limits() {
        let mut spec = TenantSpec::untrusted("g", &test_limits());
        spec.limits.services = 2;
        spec.limits.tenant_memory = 100;
        spec.limits.spawn_rate = 2;
        let tenant = Tenant::new(spec, 1);
        assert!(tenant.add_service() && tenant.add_service() && !tenant.add_service());
        tenant.remove_service();
        assert!(tenant.add_service());
        assert!(tenant.charge_memory(60) && !tenant.charge_memory(60));
        tenant.release_memory(60);
        assert!(tenant.charge_memory(100));
        assert!(tenant.take_spawn_token() && tenant.take_spawn_token());
        assert!(!tenant.take_spawn_token());
        let mut spec = TenantSpec::untrusted("t", &test_limits());
        spec.limits.timers = 1;
        let tenant = Tenant::new(spec, 2);
        assert!(tenant.take_timer() && !tenant.take_timer());
        tenant.release_timers(1);
        assert!(tenant.take_timer());
    }

    /// The first page charged ahead serves a memory that starts empty (a GC heap) when the
    /// tenant is at its cap; everything else is charged as it grows, and all given back.
    #[test]
    fn a_first_page_is_charged_ahead_for_a_memory_that_starts_empty() {
        let mut spec = TenantSpec::untrusted("m", &test_limits());
        spec.limits.tenant_memory = 4 * FIRST_PAGE;
        let tenant = Arc::new(Tenant::new(spec, 1));
        let limit = u64::MAX;
        let page = FIRST_PAGE as usize;
        let mut charge = MemoryCharge::with_first_page(tenant.clone());
        assert_eq!(charge.grow(0, 3 * page, limit), Ok(()));
        assert_eq!(
            charge.grow(3 * page, 4 * page, limit),
            Err(MemoryRefusal::Tenant(4 * FIRST_PAGE))
        );
        assert_eq!(charge.grow(0, page, limit), Ok(()), "the reserved page");
        assert!(charge.grow(page, 2 * page, limit).is_err());
        assert!(charge.grow(0, page, limit).is_err(), "one page ahead, once");
        drop(charge);
        assert!(
            tenant.charge_memory(4 * FIRST_PAGE),
            "everything given back"
        );
    }
}
