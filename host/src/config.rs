//! The node configuration (skynet's `skynet_main.c` `load_config` and `optint`/`optstring`).
//!
//! A config file is Lua source, evaluated by a real Lua 5.4 (native, through mlua) in a
//! sandbox: the chunk's only environment is the table that collects its globals, plus
//! `include`, exactly as skynet does it. No library is reachable, so a config cannot open
//! files, run programs or read the clock. `include "file"` is resolved relative to the file
//! that includes it; `$NAME` is replaced by the process environment variable `NAME` before
//! the chunk is compiled (an unset variable is an error naming the file and line). Every
//! global becomes an env entry as a string (`true`/`false` for booleans, Lua's `tostring`
//! for numbers).
//!
//! [`NodeConfig`] is the typed view the node needs; every key, known or not, stays readable
//! through [`NodeConfig::env`] (the service command `GETENV`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::tenant::{Limits, TenantSpec};

mod tenants;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

/// Memory a config's Lua state may use.
const CONFIG_MEMORY_LIMIT: usize = 64 << 20;
/// Instructions a config may execute before it is considered stuck.
const CONFIG_INSTRUCTION_BUDGET: u64 = 200_000_000;
/// Nesting depth of `include` (a file including itself would otherwise recurse forever).
const MAX_INCLUDE_DEPTH: usize = 32;

/// A config that could not be loaded; its text is one line naming the file (and line,
/// when known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The Lua state that evaluates configs could not be set up (a host problem).
    #[error("{0}")]
    Setup(String),
    /// A file could not be read or evaluated: missing, not UTF-8, a Lua error, includes
    /// nested too deep, run too long.
    #[error("{0}")]
    Evaluate(String),
    /// A `$NAME` in a file names no environment variable.
    #[error("{place}: environment variable {name} is not set (used as ${name})")]
    UnsetVariable {
        /// `file:line` of the use.
        place: String,
        /// The variable.
        name: String,
    },
    /// A global or a `tenants` entry of a kind the config cannot hold.
    #[error("{0}")]
    Shape(String),
    /// A known key with a malformed or out-of-range value.
    #[error("{place}: `{key} = {value:?}`: {want}")]
    Value {
        /// `file:line` of the assignment, or the config's name when unknown.
        place: String,
        /// The key (`tenants.NAME.KEY` for a tenant's).
        key: String,
        /// The value as written.
        value: String,
        /// What was expected instead.
        want: String,
    },
}

/// A config's globals as strings, its `tenants` table, and where each was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Every global but `tenants`, as a string (skynet's env).
    pub env: BTreeMap<String, String>,
    /// The `tenants` table's entries, by name (read once, here; `crate::tenant` types them).
    pub tenants: Vec<TenantEntry>,
    /// `file:line` of the last assignment to each global, for error messages.
    pub places: BTreeMap<String, String>,
}

/// One entry of the `tenants` table as written: the tenant's name and each of its settings
/// as text (a list's items joined with `;`), by setting name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantEntry {
    /// The tenant's name.
    pub name: String,
    /// Its settings.
    pub settings: Vec<(String, String)>,
}

impl Evaluated {
    /// Where `key` was set (`tenants.NAME.KEY` where `tenants` was), else `fallback`.
    pub fn place<'a>(&'a self, key: &str, fallback: &'a str) -> &'a str {
        let global = key.split('.').next().unwrap_or(key);
        self.places.get(global).map_or(fallback, String::as_str)
    }
}

/// Default worker count: one per core, as the issue of record asks (skynet's default is 8).
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// How a node joins skynet's harbor network (master/slave): `master`, `address` and,
/// on the node that runs the master, `standalone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarborConfig {
    /// The master's address, `host:port` (`master`).
    pub master: String,
    /// Where this node listens for the other slaves while it joins, `host:port`
    /// (`address`).
    pub address: String,
    /// Where this node's master listens, when this node runs it (`standalone`).
    pub standalone: Option<String>,
    /// The secret skywasm harbor nodes prove to each other on every connection
    /// (`harbor_secret`; skynet nodes do not understand it).
    pub secret: Option<crate::socket::auth::Secret>,
}

/// The typed configuration of one node, plus the raw env every service can read.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Every config key as a string, including the defaults written back (as skynet does).
    pub env: BTreeMap<String, String>,
    /// The directory relative paths in the config are resolved against (the process's
    /// working directory, as in skynet).
    pub base_dir: PathBuf,
    /// Worker threads (`thread`, 1..=1024).
    pub thread: usize,
    /// This node's harbor id (`harbor`, 0..=255; 0 = single node).
    pub harbor: u8,
    /// The harbor network this node joins, when the config names a `master`.
    pub harbor_net: Option<HarborConfig>,
    /// The first service after the logger (`bootstrap`, "module args").
    pub bootstrap: String,
    /// The user's main service, launched by bootstrap (`start`).
    pub start: String,
    /// Log file path (`logger`); `None` logs to stdout.
    pub logger: Option<String>,
    /// Module of the log service (`logservice`).
    pub logservice: String,
    /// Directory of per-service message logs opened by `LOGON` (`logpath`).
    pub logpath: Option<PathBuf>,
    /// `daemon` was set: skywasm always runs in the foreground and says so.
    pub daemon: Option<String>,
    /// Per-message CPU accounting (`profile`).
    pub profile: bool,
    /// The network thread runs the trusted services it delivers to while every worker
    /// sleeps (`network_assist`).
    pub network_assist: bool,
    /// Search path of wasm service modules, `;`-separated patterns with `?` (`wasm_path`).
    pub wasm_path: String,
    /// Directory of the on-disk cache of compiled modules (`wasm_cache`; `false` disables).
    pub wasm_cache: Option<PathBuf>,
    /// Largest number of live wasm services (`wasm_max_services`).
    pub wasm_max_services: u32,
    /// Services in the fast pool (`wasm_fast_services`): memories reserved at 4 GiB, no
    /// bounds checks; services past it run on the overflow tiers.
    pub wasm_fast_services: u32,
    /// Services past the pool whose memories are reserved at 4 GiB too, allocated per
    /// service (`wasm_wide_services`); past them memories are bounds-checked.
    pub wasm_wide_services: u32,
    /// Largest linear memory of one service in bytes (`wasm_memory`).
    pub wasm_memory: u64,
    /// Modules learn the pages their init writes and later starts populate them first
    /// (`wasm_prefault`).
    pub wasm_prefault: bool,
    /// Largest message body in bytes (`max_message_size`).
    pub max_message_size: usize,
    /// Most unsent bytes a socket may queue (`socket_max_unsent`): past it the peer is taken
    /// as not reading and the socket is closed with an error.
    pub socket_max_unsent: u64,
    /// Most bytes of log lines waiting for the logger (`log_backlog`): past it lines are
    /// dropped, and the logger says how many.
    pub log_backlog: usize,
    /// Largest data file a Lua service may read from `lua_data_path` (`lua_data_max`).
    pub lua_data_max: u64,
    /// Make guest code visible to `perf` (`wasm_profiler = "perfmap"` or `"jitdump"`).
    pub wasm_profiler: Option<String>,
    /// Where the Prometheus endpoint listens (`metrics`); `None`: no endpoint.
    pub metrics: Option<std::net::SocketAddr>,
    /// Services with series of their own on `/metrics`: the busiest and the most queued,
    /// this many of each (`metrics_top`).
    pub metrics_top: usize,
    /// The least severe of the host's tracing events the node's log shows (`tracing_log`:
    /// `error`, `warn`, `info`, `debug`, `trace`); `None`: none (`off`).
    pub tracing_log: Option<tracing::Level>,
    /// Where the host's spans are exported with OTLP over HTTP (`otlp`, e.g.
    /// `http://127.0.0.1:4318`); `None`: not exported.
    pub otlp: Option<String>,
    /// The `service.name` the exported spans carry (`otlp_service`).
    pub otlp_service: String,
    /// The limits of the node's own services, and the base of every tenant's
    /// (`cpu_limit`, `cpu_soft_limit`, `mailbox_limit`, `wasm_memory`, `max_message_size`).
    pub limits: Limits,
    /// The tenants: the trusted `node` tenant first, then those of the `tenants` table.
    pub tenants: Vec<TenantSpec>,
}

impl NodeConfig {
    /// Loads and evaluates a config file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and line for unreadable files, Lua errors, unset
    /// `$NAME` variables and values of the wrong type.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let config = evaluate_file(path, &|name| std::env::var(name).ok())?;
        Self::from_env(config, path)
    }

    /// Builds the typed view from an evaluated config (as produced by [`evaluate_file`]),
    /// filling in defaults and writing them back into the env. Errors name the file and
    /// line that set the bad value; `origin` names the config where no line is known.
    ///
    /// # Errors
    /// A [`ConfigError`] for a known key with a malformed value.
    pub fn from_env(mut config: Evaluated, origin: &Path) -> Result<NodeConfig, ConfigError> {
        let origin = origin.display().to_string();
        let mut env = std::mem::take(&mut config.env);
        let place = |key: &str| config.place(key, &origin).to_string();
        let bad = |key: &str, value: &str, want: &str| ConfigError::Value {
            place: place(key),
            key: key.to_string(),
            value: value.to_string(),
            want: format!("expected {want}"),
        };
        let mut int_key = |key: &str, default: u64, min: u64, max: u64| {
            int_key_in(&mut env, key, default, min, max)
                .map_err(|value| bad(key, &value, &format!("an integer in {min}..={max}")))
        };
        let thread = int_key("thread", default_threads() as u64, 1, 1024)? as usize;
        let harbor = int_key("harbor", 1, 0, 255)? as u8;
        let wasm_max_services = int_key("wasm_max_services", 100_000, 1, 1_000_000)? as u32;
        // Two 4 GiB reservations per fast service: 8,000 of them take 64 TiB of the 128 TiB
        // a 64-bit process has (more were seen to fail).
        let wasm_fast_services = int_key("wasm_fast_services", 4096, 1, 8000)? as u32;
        // One 4 GiB reservation per wide service (its GC heap is small): with the pool's
        // 32 TiB, 8192 more take 64 TiB of the 128 TiB, as 8,000 fast services do.
        let wasm_wide_services = int_key("wasm_wide_services", 8192, 0, 16384)? as u32;
        let metrics_top = int_key("metrics_top", 10, 0, 1000)? as usize;

        let mut string_key = |key: &str, default: &str| string_key_in(&mut env, key, default);
        // skynet's default: the Lua bootstrap, whose `start` is a Lua service.
        let bootstrap = string_key("bootstrap", "snlua bootstrap");
        let logservice = string_key("logservice", "logger");
        let wasm_path = string_key("wasm_path", "./service/?.wasm");
        let mut bool_key = |key: &str, default: &str| match string_key(key, default).as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(bad(key, other, "true or false")),
        };
        let profile = bool_key("profile", "false")?;
        let network_assist = bool_key("network_assist", "false")?;
        let wasm_prefault = bool_key("wasm_prefault", "true")?;
        let size_key = |env: &mut BTreeMap<String, String>, key: &str, default: &str| {
            let value = env
                .entry(key.to_string())
                .or_insert_with(|| default.to_string())
                .clone();
            parse_size(&value).ok_or_else(|| bad(key, &value, "a size such as 65536, 64K, 256M"))
        };
        // Buffers: below 64K one socket read or log line would not fit.
        let buffer_key = |env: &mut BTreeMap<String, String>, key: &str, default: &str| {
            let size = size_key(env, key, default)?;
            if size < 64 << 10 {
                return Err(bad(key, &size.to_string(), "at least 64K"));
            }
            Ok(size)
        };
        let wasm_memory = size_key(&mut env, "wasm_memory", "256M")?;
        if !(64 * 1024..=4 << 30).contains(&wasm_memory) {
            return Err(bad(
                "wasm_memory",
                &wasm_memory.to_string(),
                "between 64K and 4G",
            ));
        }
        let max_message_size = size_key(&mut env, "max_message_size", "64M")?;
        if max_message_size == 0 || max_message_size > 1 << 31 {
            return Err(bad(
                "max_message_size",
                &max_message_size.to_string(),
                "between 1 and 2G",
            ));
        }
        let log_backlog = buffer_key(&mut env, "log_backlog", "16M")?;
        let lua_data_max = size_key(&mut env, "lua_data_max", "64M")?;
        let socket_max_unsent = buffer_key(&mut env, "socket_max_unsent", "64M")?;
        let wasm_cache = match env.get("wasm_cache").map(String::as_str) {
            Some("false") => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None => default_cache_dir(),
        };
        // The node's own services are trusted skynet code: a start service that loads a
        // game's data, or sends a million messages from one message, is ordinary there.
        // Ten seconds still ends an endless loop (docs/config.md, "Limits of the node's own
        // services"); untrusted tenants keep 1 s (`TenantSpec::untrusted`).
        let cpu_ms = int_key_in(&mut env, "cpu_limit", NODE_CPU_MS, 10, 3_600_000)
            .map_err(|v| bad("cpu_limit", &v, "milliseconds in 10..=3600000"))?;
        let soft_default = cpu_ms / 2;
        let cpu_soft_ms = int_key_in(&mut env, "cpu_soft_limit", soft_default, 0, 3_600_000)
            .map_err(|v| bad("cpu_soft_limit", &v, "milliseconds in 0..=3600000"))?;
        // No count by default: the mailbox's bytes (each message's bookkeeping included)
        // bound it, as skynet's unbounded queues are bounded only by memory.
        let mailbox = match env.get("mailbox_limit") {
            None => usize::MAX,
            Some(_) => int_key_in(&mut env, "mailbox_limit", 0, 1, 1 << 32)
                .map_err(|v| bad("mailbox_limit", &v, "an integer in 1..=4294967296"))?
                as usize,
        };
        let socket_backlog = buffer_key(&mut env, "socket_backlog", "8M")?;
        let mailbox_bytes = size_key(&mut env, "mailbox_bytes", "1G")?;
        if mailbox_bytes < max_message_size {
            return Err(bad(
                "mailbox_bytes",
                &mailbox_bytes.to_string(),
                "at least max_message_size",
            ));
        }
        let module_size = size_key(&mut env, "wasm_module_size", "64M")?;
        let limits = Limits {
            cpu_ms,
            cpu_soft_ms: if cpu_soft_ms >= cpu_ms {
                0
            } else {
                cpu_soft_ms
            },
            memory: wasm_memory,
            tenant_memory: u64::MAX,
            mailbox,
            message_size: max_message_size as usize,
            services: wasm_max_services,
            spawn_rate: 0,
            workers: thread,
            timers: u32::MAX,
            sockets: u32::MAX,
            mailbox_bytes: mailbox_bytes as usize,
            socket_backlog: socket_backlog as usize,
            tenant_mailbox_bytes: usize::MAX,
            names: u32::MAX,
            tenant_names: u32::MAX,
            log_rate: 0,
            tenant_log_rate: 0,
            module_size,
        };
        let tenants = tenants::specs_from(&config.tenants, &limits, &place("tenants"))?;
        if let Some(seed) = env.get("lua_hash_seed") {
            crate::tenant::hash_seed_setting(seed)
                .map_err(|_| bad("lua_hash_seed", seed, "random or fixed"))?;
        }
        // The cluster's numbers are read where the gateway starts, with their defaults; a
        // value there is checked here, so that a typo is an error with its line instead of
        // a silent default.
        for (key, min, max) in CLUSTER_NUMBERS {
            if let Some(value) = env.get(*key) {
                if !value
                    .trim()
                    .parse::<u64>()
                    .is_ok_and(|n| (*min..=*max).contains(&n))
                {
                    return Err(bad(key, value, &format!("an integer in {min}..={max}")));
                }
            }
        }
        if let Some(peers) = env.get("cluster_tenant").filter(|t| !t.is_empty()) {
            if !tenants.iter().any(|t| &t.name == peers) {
                return Err(bad("cluster_tenant", peers, "the name of a tenant"));
            }
        }
        let tracing_log = match string_key_in(&mut env, "tracing_log", "warn").trim() {
            "off" => None,
            level => Some(level.parse::<tracing::Level>().map_err(|_| {
                bad(
                    "tracing_log",
                    level,
                    "off, error, warn, info, debug or trace",
                )
            })?),
        };
        let otlp = match env.get("otlp").map(|v| v.trim().to_string()) {
            None => None,
            Some(url) if url.starts_with("http://") && url.len() > "http://".len() => Some(url),
            Some(url) => {
                return Err(bad(
                    "otlp",
                    &url,
                    "an http:// URL of an OTLP/HTTP collector, e.g. \"http://127.0.0.1:4318\"",
                ))
            }
        };
        let otlp_service = string_key_in(&mut env, "otlp_service", "skywasm");
        let metrics = match env.get("metrics") {
            None => None,
            Some(value) => metrics_address(value).map_err(|want| bad("metrics", value, want))?,
        };
        let start = env.get("start").cloned().unwrap_or_else(|| "main".into());
        let harbor_net =
            harbor_config(&env, harbor).map_err(|(key, value, want)| bad(key, &value, want))?;
        Ok(NodeConfig {
            thread,
            harbor,
            harbor_net,
            bootstrap,
            start,
            logger: env.get("logger").cloned(),
            logservice,
            logpath: env.get("logpath").map(PathBuf::from),
            daemon: env.get("daemon").cloned(),
            profile,
            network_assist,
            wasm_prefault,
            wasm_path,
            wasm_cache,
            wasm_max_services,
            wasm_fast_services,
            wasm_wide_services,
            wasm_memory,
            max_message_size: max_message_size as usize,
            socket_max_unsent,
            log_backlog: log_backlog as usize,
            lua_data_max,
            wasm_profiler: env.get("wasm_profiler").cloned(),
            metrics,
            metrics_top,
            tracing_log,
            otlp,
            otlp_service,
            limits,
            tenants,
            base_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env,
        })
    }

    /// A config from Lua source text (tests and embedding). `name` appears in errors.
    ///
    /// # Errors
    /// As [`NodeConfig::load`].
    pub fn from_source(name: &str, source: &str) -> Result<NodeConfig, ConfigError> {
        let config = evaluate_source(name, source, Path::new("."), &|name| {
            std::env::var(name).ok()
        })?;
        Self::from_env(config, Path::new(name))
    }
}

/// Default CPU per message of the node's own services, in milliseconds (`cpu_limit`).
pub const NODE_CPU_MS: u64 = 10_000;

/// The harbor network a config joins: none without `master` (a single node, whatever its
/// `harbor` id, as before harbor support; skynet would not start), else `master`, `address`
/// and `standalone` checked. The bad key, its value and what was wanted on error.
fn harbor_config(
    env: &BTreeMap<String, String>,
    harbor: u8,
) -> Result<Option<HarborConfig>, (&'static str, String, &'static str)> {
    let address_of =
        |key: &'static str| -> Result<Option<String>, (&'static str, String, &'static str)> {
            match env.get(key) {
                None => Ok(None),
                Some(value) if is_host_port(value) => Ok(Some(value.clone())),
                Some(value) => Err((key, value.clone(), "a `host:port` address")),
            }
        };
    let Some(master) = address_of("master")? else {
        // bootstrap sets `standalone = "true"` on a single node, as skynet's does.
        if let Some(standalone) = env.get("standalone").filter(|v| *v != "true") {
            return Err((
                "standalone",
                standalone.clone(),
                "a `master` too: `standalone` runs the harbor master, which this node joins",
            ));
        }
        return Ok(None);
    };
    if harbor == 0 {
        return Err((
            "harbor",
            "0".into(),
            "an id in 1..=255 to join the harbor `master` names (0 is a single node)",
        ));
    }
    let address = address_of("address")?.ok_or((
        "address",
        String::new(),
        "where this node listens for the other harbor nodes, `host:port`",
    ))?;
    Ok(Some(HarborConfig {
        master,
        address,
        standalone: address_of("standalone")?,
        secret: env
            .get("harbor_secret")
            .filter(|s| !s.is_empty())
            .map(|s| crate::socket::auth::Secret(s.as_bytes().to_vec())),
    }))
}

/// True for `host:port` (a name, an IPv4 address or a bracketed IPv6 one, and a port).
fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The cluster's integer keys (read by [`crate::cluster::ClusterConfig::from_env`]) and
/// their ranges: seconds, milliseconds (0: no timeout), microseconds, counts.
const CLUSTER_NUMBERS: &[(&str, u64, u64)] = &[
    ("cluster_keepalive", 0, 86_400),
    ("cluster_timeout", 0, 86_400_000),
    ("cluster_busy_poll", 0, 1_000_000),
    ("cluster_max_connections", 1, 1_000_000),
    ("cluster_max_pending", 1, 100_000_000),
];

/// The value of `key`, written back as `default` when unset.
fn string_key_in(env: &mut BTreeMap<String, String>, key: &str, default: &str) -> String {
    env.entry(key.to_string())
        .or_insert_with(|| default.to_string())
        .clone()
}

/// Reads an integer key in `min..=max`, writing the default back; the bad text on error.
fn int_key_in(
    env: &mut BTreeMap<String, String>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let value = env
        .entry(key.to_string())
        .or_insert_with(|| default.to_string())
        .clone();
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(value),
    }
}

/// The `metrics` setting: `false` (off), a port (on loopback), or an `ip:port` (`localhost`
/// stands for 127.0.0.1). Loopback is the default because the endpoint has no
/// authentication: exposing it elsewhere is the operator's explicit choice.
fn metrics_address(value: &str) -> Result<Option<std::net::SocketAddr>, &'static str> {
    const WANT: &str = "false, a port, or an `ip:port` address such as \"127.0.0.1:9100\"";
    let value = value.trim();
    if value == "false" {
        return Ok(None);
    }
    if let Ok(port) = value.parse::<u16>() {
        return Ok(Some((std::net::Ipv4Addr::LOCALHOST, port).into()));
    }
    let value = match value.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => value.to_string(),
    };
    value.parse().map(Some).map_err(|_| WANT)
}

/// `$XDG_CACHE_HOME/skywasm` or `~/.cache/skywasm`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("skywasm"))
}

/// Parses `65536`, `64K`, `256M`, `1G` (binary multiples; a trailing `B`/`iB` is accepted).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_suffix("iB")
        .or_else(|| text.strip_suffix('B'))
        .unwrap_or(text);
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1 << shift)
}

/// Looks up `$NAME` substitutions.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Evaluates a config file and returns its globals as strings.
///
/// # Errors
/// See [`NodeConfig::load`].
pub fn evaluate_file(path: &Path, lookup: EnvLookup<'_>) -> Result<Evaluated, ConfigError> {
    let shown = path.display().to_string();
    run(lookup, |_, include| include.call::<()>(shown))
}

/// Evaluates config source text as if it were a file named `name` in directory `dir`.
///
/// # Errors
/// See [`NodeConfig::load`].
pub fn evaluate_source(
    name: &str,
    source: &str,
    dir: &Path,
    lookup: EnvLookup<'_>,
) -> Result<Evaluated, ConfigError> {
    let source = substitute_env(name, source, lookup)?;
    let dir = dir.to_path_buf();
    run(lookup, move |lua, _include| {
        let env: Table = lua.named_registry_value(ENV_KEY)?;
        let state: Rc<IncludeState> = lua
            .app_data_ref::<Rc<IncludeState>>()
            .map(|s| s.clone())
            .ok_or_else(|| mlua::Error::runtime("config state missing"))?;
        state.dirs.borrow_mut().push(dir.clone());
        let result = lua
            .load(source.as_str())
            .set_name(format!("@{name}"))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(env)
            .exec();
        state.dirs.borrow_mut().pop();
        result
    })
}

/// The registry key of the table the config's chunks run in.
const ENV_KEY: &str = "skywasm.config.env";

/// Per-evaluation state shared with the `include` function.
struct IncludeState {
    /// Directories of the files being evaluated, innermost last.
    dirs: RefCell<Vec<PathBuf>>,
    /// The first error raised by `include`, kept verbatim so the report is one clean line.
    error: RefCell<Option<String>>,
}

/// `file:line` of the Lua code a debug record describes (chunks are named `@file`).
fn place_of(debug: &mlua::debug::Debug) -> Option<String> {
    let file = debug.source().source?.strip_prefix('@')?.to_string();
    let line = debug.current_line()?;
    Some(format!("{file}:{line}"))
}

/// Sets up the sandboxed Lua state, runs `body`, and converts the globals it set to strings.
fn run(
    lookup: EnvLookup<'_>,
    body: impl FnOnce(&Lua, &mlua::Function) -> mlua::Result<()>,
) -> Result<Evaluated, ConfigError> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
        .map_err(|e| ConfigError::Setup(format!("cannot create the config's Lua state: {e}")))?;
    let setup_error = |e: mlua::Error| ConfigError::Setup(format!("config sandbox: {e}"));
    lua.set_memory_limit(CONFIG_MEMORY_LIMIT)
        .map_err(setup_error)?;
    let executed = std::cell::Cell::new(0u64);
    const HOOK_EVERY: u32 = 100_000;
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, debug| {
            executed.set(executed.get() + HOOK_EVERY as u64);
            if executed.get() > CONFIG_INSTRUCTION_BUDGET {
                let place = place_of(debug).unwrap_or_else(|| "config".into());
                Err(mlua::Error::runtime(format!(
                    "{place}: the config ran too long (an endless loop?)"
                )))
            } else {
                Ok(VmState::Continue)
            }
        },
    )
    .map_err(setup_error)?;
    let state = Rc::new(IncludeState {
        dirs: RefCell::new(Vec::new()),
        error: RefCell::new(None),
    });
    lua.set_app_data(state.clone());

    // The chunks run in `env`, which stays empty: every assignment to a global goes
    // through `__newindex` into `values`, noting the file and line that made it.
    let values = lua.create_table().map_err(setup_error)?;
    let env = lua.create_table().map_err(setup_error)?;
    lua.set_named_registry_value(ENV_KEY, &env)
        .map_err(setup_error)?;
    let places = RefCell::new(BTreeMap::new());

    // `lookup` borrows from the caller, so `include` lives in a scope.
    let outcome = lua.scope(|scope| {
        let include = scope.create_function(|lua, file: String| include(lua, &file, lookup))?;
        let assign = scope.create_function(|lua, (_, key, value): (Table, Value, Value)| {
            if let Value::String(name) = &key {
                if let Some(place) = lua.inspect_stack(1, place_of).flatten() {
                    places.borrow_mut().insert(name.to_string_lossy(), place);
                }
            }
            values.raw_set(key, value)
        })?;
        let builtins = lua.create_table()?;
        builtins.set("include", &include)?;
        let builtins_meta = lua.create_table()?;
        builtins_meta.set("__index", builtins)?;
        values.set_metatable(Some(builtins_meta))?;
        let meta = lua.create_table()?;
        meta.set("__index", &values)?;
        meta.set("__newindex", assign)?;
        env.set_metatable(Some(meta))?;
        let outcome = body(&lua, &include);
        env.set_metatable(None)?;
        values.set_metatable(None)?;
        outcome
    });
    if let Err(error) = outcome {
        let message = state
            .error
            .borrow_mut()
            .take()
            .unwrap_or_else(|| root_message(&error));
        return Err(ConfigError::Evaluate(message));
    }
    let mut config = Evaluated {
        env: BTreeMap::new(),
        tenants: Vec::new(),
        places: places.into_inner(),
    };
    for pair in values.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| ConfigError::Shape(root_message(&e)))?;
        let key = match key {
            Value::String(s) => s.to_str().map(|s| s.to_string()).map_err(|_| {
                ConfigError::Shape("config: a global's name is not valid UTF-8".to_string())
            })?,
            other => {
                return Err(ConfigError::Shape(format!(
                    "config: invalid config table (a key of type {})",
                    other.type_name()
                )))
            }
        };
        let place = config.place(&key, "config").to_string();
        if key.starts_with("tenants.") {
            return Err(ConfigError::Shape(format!(
                "{place}: `{key}`: tenants are set in the `tenants` table \
                 (tenants = {{ NAME = {{ KEY = value }} }})"
            )));
        }
        if key == "tenants" {
            if let Value::Table(tenants) = &value {
                config.tenants = read_tenants(tenants)
                    .map_err(|e| ConfigError::Shape(format!("{place}: {e}")))?;
                continue;
            }
        }
        let text = match &value {
            Value::Boolean(b) => b.to_string(),
            Value::Integer(_) | Value::Number(_) | Value::String(_) => {
                let not_text =
                    || ConfigError::Shape(format!("{place}: `{key}` is not valid UTF-8"));
                match lua.coerce_string(value.clone()) {
                    Ok(Some(s)) => s.to_str().map(|s| s.to_string()).map_err(|_| not_text())?,
                    _ => return Err(not_text()),
                }
            }
            other => {
                return Err(ConfigError::Shape(format!(
                    "{place}: `{key}` is a {}; config values must be strings, numbers or booleans",
                    other.type_name()
                )))
            }
        };
        config.env.insert(key, text);
    }
    Ok(config)
}

/// Reads `tenants = { NAME = { KEY = value or {list} } }` into [`TenantEntry`]s (lists
/// joined with `;`), by name, each one's settings by key.
fn read_tenants(tenants: &Table) -> Result<Vec<TenantEntry>, ConfigError> {
    let mut entries = Vec::new();
    let scalar = |path: &str, value: &Value| -> Result<String, ConfigError> {
        match value {
            Value::Boolean(b) => Ok(b.to_string()),
            Value::Integer(n) => Ok(n.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) => s
                .to_str()
                .map(|s| s.to_string())
                .map_err(|_| ConfigError::Shape(format!("`{path}` is not valid UTF-8"))),
            other => Err(ConfigError::Shape(format!(
                "`{path}` is a {}; expected a string, number, boolean or list",
                other.type_name()
            ))),
        }
    };
    let key_text = |key: &Value, path: &str| {
        match key {
            Value::String(s) => s.to_str().map(|s| s.to_string()).ok(),
            _ => None,
        }
        .ok_or_else(|| ConfigError::Shape(format!("`{path}` has a key that is not a name")))
    };
    for pair in tenants.pairs::<Value, Value>() {
        let (name, spec) = pair.map_err(|e| ConfigError::Shape(root_message(&e)))?;
        let name = key_text(&name, "tenants")?;
        let Value::Table(spec) = spec else {
            return Err(ConfigError::Shape(format!(
                "`tenants.{name}` is a {}; expected a table of limits and capabilities",
                spec.type_name()
            )));
        };
        // A tenant with every setting at its default (`x = {}`) is still a tenant.
        let mut entry = TenantEntry {
            name: name.clone(),
            settings: Vec::new(),
        };
        for pair in spec.pairs::<Value, Value>() {
            let (field, value) = pair.map_err(|e| ConfigError::Shape(root_message(&e)))?;
            let path = format!("tenants.{name}");
            let field = key_text(&field, &path)?;
            let path = format!("{path}.{field}");
            let text = match &value {
                Value::Table(items) => {
                    let mut joined = Vec::new();
                    for item in items.clone().sequence_values::<Value>() {
                        let item = item.map_err(|e| ConfigError::Shape(root_message(&e)))?;
                        joined.push(scalar(&path, &item)?);
                    }
                    joined.join(";")
                }
                other => scalar(&path, other)?,
            };
            entry.settings.push((field, text));
        }
        entry.settings.sort();
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The `include` global: evaluate another file, relative to the including file's directory.
fn include(lua: &Lua, file: &str, lookup: EnvLookup<'_>) -> mlua::Result<()> {
    let state: Rc<IncludeState> = lua
        .app_data_ref::<Rc<IncludeState>>()
        .map(|s| s.clone())
        .ok_or_else(|| mlua::Error::runtime("config state missing"))?;
    let fail = |message: String| {
        state.error.borrow_mut().get_or_insert(message.clone());
        mlua::Error::runtime(message)
    };
    let depth = state.dirs.borrow().len();
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(fail(format!(
            "{file}: include nested deeper than {MAX_INCLUDE_DEPTH} files (a file including itself?)"
        )));
    }
    let path = {
        let dirs = state.dirs.borrow();
        let requested = Path::new(file);
        match dirs.last() {
            Some(dir) if requested.is_relative() => dir.join(requested),
            _ => requested.to_path_buf(),
        }
    };
    let shown = path.display().to_string();
    let source = std::fs::read(&path).map_err(|e| fail(format!("{shown}: cannot read: {e}")))?;
    let source = String::from_utf8(source)
        .map_err(|_| fail(format!("{shown}: the config is not valid UTF-8")))?;
    let source = substitute_env(&shown, &source, lookup).map_err(|e| fail(e.to_string()))?;
    let env: Table = lua.named_registry_value(ENV_KEY)?;
    state
        .dirs
        .borrow_mut()
        .push(path.parent().map(Path::to_path_buf).unwrap_or_default());
    let result = lua
        .load(source.as_str())
        .set_name(format!("@{shown}"))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .exec();
    state.dirs.borrow_mut().pop();
    result.map_err(|e| fail(root_message(&e)))
}

/// Replaces `$NAME` (letters, digits, underscores) with the environment variable's value,
/// as skynet's `string.gsub(code, "%$([%w_%d]+)", getenv)`.
fn substitute_env(file: &str, source: &str, lookup: EnvLookup<'_>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        let name = &after[..len];
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                let line = source[..source.len() - rest.len() + at]
                    .matches('\n')
                    .count()
                    + 1;
                return Err(ConfigError::UnsetVariable {
                    place: format!("{file}:{line}"),
                    name: name.to_string(),
                });
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The innermost message of a Lua error (callback errors wrap their cause).
fn root_message(error: &mlua::Error) -> String {
    match error {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::WithContext { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(message) => format!("config: out of memory: {message}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(source: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        evaluate_source("test.config", source, Path::new("."), &|name| match name {
            "ROOT" => Some("/srv/game".into()),
            _ => None,
        })
        .map(|config| config.env)
    }

    #[test]
    fn globals_become_strings() {
        let env = eval(
            r#"
            thread = 4
            ratio = 0.5
            one = 1.0
            daemon_off = false
            on = true
            name = "node" .. 1
            "#,
        )
        .unwrap();
        assert_eq!(env["thread"], "4");
        assert_eq!(env["ratio"], "0.5");
        assert_eq!(env["one"], "1.0");
        assert_eq!(env["daemon_off"], "false");
        assert_eq!(env["on"], "true");
        assert_eq!(env["name"], "node1");
    }

    #[test]
    fn env_variables_are_substituted_before_compiling() {
        let env = eval(r#"root = "$ROOT/data" path = "$ROOT" .. "/?.wasm""#).unwrap();
        assert_eq!(env["root"], "/srv/game/data");
        assert_eq!(env["path"], "/srv/game/?.wasm");
        let err = eval("a = 1\nb = \"$NOPE\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.config:2: environment variable NOPE is not set (used as $NOPE)"
        );
    }

    #[test]
    fn the_sandbox_has_no_libraries() {
        for source in ["os.exit(1)", "io.open('/etc/passwd')", "x = require 'os'"] {
            let err = eval(source).unwrap_err();
            assert!(err.to_string().starts_with("test.config:1:"), "{err}");
        }
        let env = eval("x = print\ny = string").unwrap();
        assert!(env.is_empty(), "no library is visible: {env:?}");
        let err = eval("f = include").unwrap_err();
        assert!(err.to_string().contains("`f` is a function"), "{err}");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = eval("a = 1\nb = = 2").unwrap_err();
        assert!(err.to_string().starts_with("test.config:2:"), "{err}");
    }

    #[test]
    fn tables_and_functions_are_rejected() {
        let err = eval("a = 1\nt = {1}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.config:2: `t` is a table; config values must be strings, numbers or booleans"
        );
    }

    #[test]
    fn the_tenants_table_is_read_once_into_entries_and_kept_out_of_the_env() {
        let source = "tenants = { guest = { cpu = 100, trusted = false, \
                      launch = { 'pong', 'snlua w' } }, idle = {} }";
        let config = evaluate_source("test.config", source, Path::new("."), &|_| None).unwrap();
        let setting = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            config.tenants,
            [
                TenantEntry {
                    name: "guest".into(),
                    settings: vec![
                        setting("cpu", "100"),
                        setting("launch", "pong;snlua w"),
                        setting("trusted", "false"),
                    ],
                },
                TenantEntry {
                    name: "idle".into(),
                    settings: Vec::new(),
                },
            ]
        );
        assert!(config.env.keys().all(|key| !key.starts_with("tenants")));
        let typed = NodeConfig::from_source("t", source).unwrap();
        assert!(
            typed.tenants.iter().any(|t| t.name == "idle"),
            "an empty entry is a tenant"
        );
        let err = eval("_ENV['tenants.guest.cpu'] = 1").unwrap_err();
        assert!(
            err.to_string().contains("set in the `tenants` table"),
            "{err}"
        );
        let err = eval("tenants = { guest = 1 }").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("test.config:1: `tenants.guest` is a integer"),
            "{err}"
        );
        let err = NodeConfig::from_source("t", "\ntenants = { g = { cpu = 'x' } }").unwrap_err();
        assert!(
            err.to_string().starts_with("t:2: `tenants.g.cpu = "),
            "{err}"
        );
    }

    #[test]
    fn endless_loops_are_stopped() {
        let err = eval("a = 1\nwhile true do end").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("test.config:2: the config ran too long"),
            "{err}"
        );
    }

    #[test]
    fn include_is_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("main.config"),
            "a = 1\ninclude \"sub/common\"\nc = b .. '!'\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sub/common"),
            "b = 'from sub'\ninclude 'leaf'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("sub/leaf"), "leaf = a + 1\n").unwrap();
        let config = evaluate_file(&dir.path().join("main.config"), &|_| None).unwrap();
        let env = &config.env;
        assert_eq!(env["a"], "1");
        assert_eq!(env["b"], "from sub");
        assert_eq!(env["c"], "from sub!");
        assert_eq!(env["leaf"], "2");
        assert!(!env.contains_key("include"));
        let common = dir.path().join("sub/common").display().to_string();
        assert_eq!(config.place("b", "?"), format!("{common}:1"));
        assert_eq!(
            config.place("c", "?"),
            format!("{}:3", dir.path().join("main.config").display())
        );
    }

    #[test]
    fn a_harbor_network_needs_an_id_a_master_and_an_address() {
        let joined = NodeConfig::from_source(
            "t",
            "harbor = 2\nmaster = '127.0.0.1:2013'\naddress = '127.0.0.1:2526'\n\
             standalone = '0.0.0.0:2013'",
        )
        .unwrap();
        assert_eq!(
            joined.harbor_net,
            Some(HarborConfig {
                master: "127.0.0.1:2013".into(),
                address: "127.0.0.1:2526".into(),
                standalone: Some("0.0.0.0:2013".into()),
                secret: None,
            })
        );
        let single = NodeConfig::from_source("t", "harbor = 2").unwrap();
        assert_eq!(single.harbor_net, None, "no master: a single node");
        for (text, key) in [
            ("harbor = 2\nmaster = '127.0.0.1:1'", "address"),
            ("harbor = 0\nmaster = 'h:1'\naddress = 'h:2'", "harbor"),
            ("harbor = 2\nmaster = 'nowhere'\naddress = 'h:2'", "master"),
            ("harbor = 2\nmaster = 'h:1'\naddress = 'h:99999'", "address"),
            ("standalone = 'h:1'", "standalone"),
        ] {
            let err = NodeConfig::from_source("t", text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key} = ")), "{text}: {err}");
        }
    }

    #[test]
    fn a_bad_value_names_the_file_and_line_of_its_last_assignment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main"), "thread = 2\ninclude 'more'\n").unwrap();
        std::fs::write(dir.path().join("more"), "\n\nthread = 'lots'\nx = 1\n").unwrap();
        let err = NodeConfig::load(&dir.path().join("main")).unwrap_err();
        let more = dir.path().join("more").display().to_string();
        assert_eq!(
            err.to_string(),
            format!("{more}:3: `thread = \"lots\"`: expected an integer in 1..=1024")
        );
    }

    #[test]
    fn include_errors_name_the_included_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main"), "include 'bad'\n").unwrap();
        std::fs::write(dir.path().join("bad"), "x = 1\ny = (\n").unwrap();
        let err = evaluate_file(&dir.path().join("main"), &|_| None).unwrap_err();
        let bad = dir.path().join("bad").display().to_string();
        assert!(err.to_string().starts_with(&format!("{bad}:")), "{err}");
        let err = evaluate_file(&dir.path().join("missing"), &|_| None).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        std::fs::write(dir.path().join("loop"), "include 'loop'\n").unwrap();
        let err = evaluate_file(&dir.path().join("loop"), &|_| None).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn defaults_are_written_back_and_validated() {
        let config = NodeConfig::from_source("t", "harbor = 0\nthread = 3\ncustom = 'x'").unwrap();
        assert_eq!(config.thread, 3);
        assert_eq!(config.harbor, 0);
        assert_eq!(config.start, "main");
        assert_eq!(config.bootstrap, "snlua bootstrap");
        assert_eq!(config.env["bootstrap"], "snlua bootstrap");
        assert_eq!(config.env["custom"], "x");
        assert_eq!(config.wasm_memory, 256 << 20);
        assert!(!config.profile);
        assert!(!config.network_assist);
        assert!(config.wasm_prefault);
        assert_eq!(config.metrics, None);
        assert_eq!(config.metrics_top, 10);
        assert_eq!(config.tracing_log, Some(tracing::Level::WARN));
        assert_eq!(config.otlp, None);
        assert_eq!(config.otlp_service, "skywasm");
        let traced = NodeConfig::from_source(
            "t",
            "tracing_log = 'off'\notlp = 'http://127.0.0.1:4318'\notlp_service = 'game-1'",
        )
        .unwrap();
        assert_eq!(traced.tracing_log, None);
        assert_eq!(traced.otlp.as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!(traced.otlp_service, "game-1");
        for (value, address) in [
            ("9100", "127.0.0.1:9100"),
            ("'localhost:9101'", "127.0.0.1:9101"),
            ("'[::1]:9102'", "[::1]:9102"),
            ("'0.0.0.0:9103'", "0.0.0.0:9103"),
        ] {
            let config = NodeConfig::from_source("t", &format!("metrics = {value}")).unwrap();
            assert_eq!(config.metrics, Some(address.parse().unwrap()), "{value}");
        }
        assert_eq!(
            NodeConfig::from_source("t", "metrics = false")
                .unwrap()
                .metrics,
            None
        );
        for (source, key) in [
            ("thread = 0", "thread"),
            ("thread = 'many'", "thread"),
            ("harbor = 256", "harbor"),
            ("wasm_memory = '1T'", "wasm_memory"),
            ("profile = 'yes'", "profile"),
            ("network_assist = 1", "network_assist"),
            ("wasm_prefault = 'on'", "wasm_prefault"),
            ("cluster_timeout = '5s'", "cluster_timeout"),
            ("cluster_keepalive = -1", "cluster_keepalive"),
            ("cluster_max_pending = 0", "cluster_max_pending"),
            (
                "cluster_max_connections = 'many'",
                "cluster_max_connections",
            ),
            ("cluster_busy_poll = 1.5", "cluster_busy_poll"),
            ("metrics = 'somewhere'", "metrics"),
            ("metrics = 'example.com:9100'", "metrics"),
            ("metrics = 70000", "metrics"),
            ("metrics_top = 5000", "metrics_top"),
            ("tracing_log = 'loud'", "tracing_log"),
            ("otlp = 'https://collector:4318'", "otlp"),
            ("otlp = 'collector:4318'", "otlp"),
        ] {
            let err = NodeConfig::from_source("t", source).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("t:1: `{key} = ")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_tenant_with_every_setting_at_its_default_is_a_tenant() {
        let config = NodeConfig::from_source("t", "tenants = { quiet = {} }").unwrap();
        let quiet = config.tenants.iter().find(|t| t.name == "quiet");
        assert!(quiet.is_some_and(|t| !t.trusted), "{:?}", config.tenants);
    }

    #[test]
    fn the_nodes_services_run_long_and_queue_deep_while_untrusted_tenants_do_not() {
        let config = NodeConfig::from_source("t", "tenants = { guest = {} }").unwrap();
        let node = &config.tenants[0].limits;
        assert_eq!((node.cpu_ms, node.cpu_soft_ms), (10_000, 5_000));
        assert_eq!(node.mailbox, usize::MAX, "no count: the bytes bound it");
        assert_eq!(node.mailbox_bytes, 1 << 30);
        assert!(!config.env.contains_key("mailbox_limit"));
        let guest = &config.tenants[1].limits;
        assert_eq!((guest.cpu_ms, guest.cpu_soft_ms), (1000, 500));
        assert_eq!(guest.mailbox, 100_000);

        // What the config sets applies to the node, and caps the tenants' defaults.
        let config = NodeConfig::from_source(
            "t",
            "cpu_limit = 300\nmailbox_limit = 50\ntenants = { guest = {} }",
        )
        .unwrap();
        let (node, guest) = (&config.tenants[0].limits, &config.tenants[1].limits);
        assert_eq!((node.cpu_ms, node.mailbox), (300, 50));
        assert_eq!(
            (guest.cpu_ms, guest.cpu_soft_ms, guest.mailbox),
            (300, 150, 50)
        );
        let config = NodeConfig::from_source(
            "t",
            "cpu_limit = 60000\ncpu_soft_limit = 0\ntenants = { guest = {} }",
        )
        .unwrap();
        let guest = &config.tenants[1].limits;
        assert_eq!(
            (guest.cpu_ms, guest.cpu_soft_ms),
            (1000, 0),
            "no soft stage"
        );
        assert!(NodeConfig::from_source("t", "mailbox_limit = 0").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
    }
}
