//! Modules: the wasm engine, compiled modules and native (built-in Rust) services
//! (skynet's `skynet_module.c`, which loads each C service `.so` once).
//!
//! One wasmtime [`Engine`] per node, configured for many small instances: the pooling
//! allocator sized from the config (`wasm_fast_services`, `wasm_memory`), copy-on-write
//! memory images, epoch interruption, wasm exceptions; past the pool, up to
//! `wasm_max_services`, engines of their own take the services ([`overflow`]). A module is
//! compiled once per node and kept by name as an [`InstancePre`]; compiled code is also
//! cached on disk by wasmtime's cache, keyed by a hash of the module bytes and the engine
//! configuration, so a restarted node skips compilation.
//!
//! Module names are resolved in order: native services (`logger`), the `wasm_path` search
//! path (skynet's `?` patterns, `;`-separated), then the built-in wasm services embedded in
//! the binary (`bootstrap`, `launcher`), so a project may override a built-in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use anyhow::Context as _;
use skywasm_abi::export;
use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ValType,
};

use crate::config::NodeConfig;
use crate::lifecycle::LaunchError;
use crate::service::{Behavior, ServiceCore};
use crate::sync::{lock, lock_plain, read, write};
use crate::tenant::Tenant;
use crate::wasm::budget::{Budget, Enclosing};
use crate::wasm::prefault::Prefault;
use crate::wasm::WasmState;

pub(crate) mod overflow;

use self::overflow::{Before, OverflowCode, OverflowEngine};

/// Creates a native service from the service's core and its argument string.
pub type NativeFactory =
    Arc<dyn Fn(ServiceCore, &str) -> Result<Box<dyn Behavior>, String> + Send + Sync>;

/// What a module name resolved to.
#[derive(Clone)]
pub enum ModuleKind {
    /// A service implemented in the host.
    Native(NativeFactory),
    /// A compiled wasm module.
    Wasm(Arc<WasmModule>),
}

/// A compiled, linked wasm module, ready to instantiate.
pub struct WasmModule {
    pub(crate) pre: InstancePre<WasmState>,
    pub(crate) has_initialize: bool,
    pub(crate) has_signal: bool,
    pub(crate) has_interrupt: bool,
    pub(crate) has_snapshot: bool,
    pub(crate) has_restore: bool,
    /// A hash of the bytes it was compiled from: an upgrade recompiles only changed code.
    pub(crate) digest: u64,
    /// The size of those bytes (checked against a tenant's `module_size`).
    pub(crate) size: u64,
    /// The pages its init writes, populated before later inits run.
    pub(crate) prefault: Prefault,
    /// Its code for the services past the fast pool, one per overflow tier, in order.
    pub(crate) overflow: Vec<Arc<OverflowCode>>,
}

impl WasmModule {
    /// How many 4 KiB pages of linear memory every start of this module has written, once
    /// learned from its first starts (with `wasm_prefault`): what an idle instance keeps
    /// privately resident of its memory. `None` while learning, or when nothing is learned
    /// (prefaulting off, no page common to the starts, too many pages).
    pub fn start_pages(&self) -> Option<usize> {
        let runs = self.prefault.known()?;
        Some(runs.iter().map(|&(_, pages)| pages as usize).sum())
    }
}

/// What loading a module may cost the tenant that asks: the largest module it may have
/// compiled, and the CPU and memory of a pre-initialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest module (wasm or wat bytes) compiled for it.
    pub module_size: u64,
    /// CPU time of a pre-initialization, in milliseconds.
    pub cpu_ms: u64,
    /// Largest linear memory of a pre-initialization, in bytes.
    pub memory: u64,
}

impl LoadLimits {
    /// The limits of a tenant.
    pub fn of(limits: &crate::tenant::Limits) -> LoadLimits {
        LoadLimits {
            module_size: limits.module_size,
            cpu_ms: limits.cpu_ms,
            memory: limits.memory,
        }
    }
}

/// Who asks for a module: the limits its load runs within, and the tenant whose
/// `tenant_memory` a pre-initialization's memory is charged to (none: the node's own).
#[derive(Clone)]
pub struct Asker {
    /// What the load may cost.
    pub limits: LoadLimits,
    /// Charged for the memory of a pre-initialization while it runs.
    pub account: Option<Arc<Tenant>>,
}

impl Asker {
    /// A load for `tenant`, within its limits and charged to it.
    pub fn tenant(tenant: &Arc<Tenant>) -> Asker {
        Asker {
            limits: LoadLimits::of(&tenant.spec.limits),
            account: Some(tenant.clone()),
        }
    }

    /// A load within `limits`, charged to nobody.
    pub fn within(limits: LoadLimits) -> Asker {
        Asker {
            limits,
            account: None,
        }
    }
}

/// The node's engine and every module it has loaded.
pub struct ModuleRegistry {
    engine: Engine,
    linker: Linker<WasmState>,
    /// The tiers of the services past the fast pool, in order (none when the pool holds
    /// all the node may have).
    overflow: Vec<Arc<OverflowEngine>>,
    search_path: String,
    /// `wasm_prefault`: modules learn and populate the pages their init writes.
    prefault: bool,
    natives: RwLock<HashMap<String, NativeFactory>>,
    loaded: Mutex<HashMap<String, Arc<WasmModule>>>,
    /// The compile of each module name in progress (or failed: a load of the same bytes
    /// within the same limits gets the same error without compiling again), so that
    /// launches of one new module at once compile it once while other modules compile in
    /// parallel.
    compiling: Mutex<HashMap<String, Arc<Compile>>>,
    /// Modules given as bytes by an embedder (tests, benches), by name.
    provided: RwLock<HashMap<String, Arc<[u8]>>>,
    /// The node's own limits, for loads no tenant asked for.
    node_limits: Asker,
    /// Set when the node stops: a pre-initialization in progress ends.
    stopping: Arc<AtomicBool>,
    /// Compiles started so far.
    compiles: AtomicU64,
}

impl ModuleRegistry {
    /// Creates the engine and linker for a node.
    ///
    /// # Errors
    /// The engine configuration is rejected (e.g. the pool cannot be reserved).
    pub fn new(config: &NodeConfig) -> anyhow::Result<ModuleRegistry> {
        let engine = Engine::new(&engine_config(config)?)
            .map_err(anyhow::Error::from)
            .context("creating the wasm engine")?;
        let linker = linker_for(&engine)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let overflow = overflow_tiers(config, &engine, &stopping)?;
        let mut natives: HashMap<String, NativeFactory> = HashMap::new();
        natives.insert("logger".into(), Arc::new(crate::log::Logger::start));
        natives.insert("clusterd".into(), Arc::new(crate::cluster::Clusterd::start));
        natives.insert("cslave".into(), Arc::new(crate::harbor::Cslave::start));
        Ok(ModuleRegistry {
            engine,
            linker,
            overflow,
            search_path: config.wasm_path.clone(),
            prefault: config.wasm_prefault,
            natives: RwLock::new(natives),
            loaded: Mutex::new(HashMap::new()),
            compiling: Mutex::new(HashMap::new()),
            provided: RwLock::new(HashMap::new()),
            node_limits: Asker::within(LoadLimits::of(&config.limits)),
            stopping,
            compiles: AtomicU64::new(0),
        })
    }

    /// Ends pre-initializations in progress and refuses new ones (the node is stopping).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// How many compiles of a module (with its pre-initialization) this registry has
    /// started: a module is compiled once per change of its bytes, and a failed compile is
    /// not repeated within the same limits.
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Wasm modules compiled and held now.
    pub fn loaded(&self) -> usize {
        lock(&self.loaded).len()
    }

    /// Advances the epoch of the node's engines (the monitor's tick).
    pub fn increment_epoch(&self) {
        self.engine.increment_epoch();
        for tier in &self.overflow {
            tier.engine.increment_epoch();
        }
    }

    /// Adds a native service module under `name`.
    pub fn add_native(
        &self,
        name: &str,
        factory: impl Fn(ServiceCore, &str) -> Result<Box<dyn Behavior>, String> + Send + Sync + 'static,
    ) {
        write(&self.natives).insert(name.to_string(), Arc::new(factory));
    }

    /// Makes wasm (or wat) bytes available as module `name`, ahead of the search path.
    pub fn provide(&self, name: &str, bytes: impl Into<Arc<[u8]>>) {
        write(&self.provided).insert(name.to_string(), bytes.into());
        lock(&self.loaded).remove(name);
    }

    /// Resolves a module name, compiling and caching a wasm module on first use, within the
    /// node's own limits.
    ///
    /// # Errors
    /// [`LaunchError::NotFound`] or [`LaunchError::Invalid`].
    pub fn resolve(&self, name: &str) -> Result<ModuleKind, LaunchError> {
        self.load(name, false, &self.node_limits)
    }

    /// Resolves a module name for `asker`: a module larger than its `module_size` is
    /// refused, and a pre-initialization runs within its CPU and memory.
    ///
    /// # Errors
    /// As [`ModuleRegistry::resolve`]; [`LaunchError::Limit`] for a module over the size.
    pub fn resolve_for(&self, name: &str, asker: &Asker) -> Result<ModuleKind, LaunchError> {
        self.load(name, false, asker)
    }

    /// Resolves a module name for an upgrade: like [`ModuleRegistry::resolve_for`], but a
    /// wasm module is read again and recompiled when its bytes changed, so the new code is
    /// what the file holds now. Services running the old code keep it until they end.
    ///
    /// # Errors
    /// As [`ModuleRegistry::resolve_for`].
    pub fn reload_for(&self, name: &str, asker: &Asker) -> Result<ModuleKind, LaunchError> {
        self.load(name, true, asker)
    }

    /// True when `name` is a native service or a module already loaded: resolving it
    /// compiles nothing.
    pub fn is_ready(&self, name: &str) -> bool {
        read(&self.natives).contains_key(name) || lock(&self.loaded).contains_key(name)
    }

    /// True when `name` can be found (a native service, a loaded module, a file on the
    /// search path, provided bytes or a built-in), without reading or compiling it.
    pub fn exists(&self, name: &str) -> bool {
        self.is_ready(name)
            || (valid_module_name(name)
                && (read(&self.provided).contains_key(name)
                    || self.search(name).is_some()
                    || crate::builtin::module(name).is_some()))
    }

    fn load(&self, name: &str, fresh: bool, asker: &Asker) -> Result<ModuleKind, LaunchError> {
        let limits = &asker.limits;
        if let Some(factory) = read(&self.natives).get(name) {
            return Ok(ModuleKind::Native(factory.clone()));
        }
        let too_large = |size: u64| {
            LaunchError::Limit(format!(
                "module `{name}` is {size} bytes, over the limit of {} bytes (module_size)",
                limits.module_size
            ))
        };
        if !fresh {
            if let Some(module) = lock(&self.loaded).get(name) {
                if module.size > limits.module_size {
                    return Err(too_large(module.size));
                }
                return Ok(ModuleKind::Wasm(module.clone()));
            }
        }
        if !valid_module_name(name) {
            return Err(LaunchError::NotFound(name.into(), self.search_path.clone()));
        }
        let provided = read(&self.provided).get(name).cloned();
        let bytes: std::borrow::Cow<'_, [u8]> = if let Some(bytes) = provided {
            bytes.to_vec().into()
        } else if let Some(path) = self.search(name) {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            if size > limits.module_size {
                return Err(too_large(size));
            }
            let bytes = std::fs::read(&path).map_err(|e| {
                LaunchError::Invalid(name.into(), format!("reading {}: {e}", path.display()))
            })?;
            bytes.into()
        } else if let Some(bytes) = crate::builtin::module(name) {
            bytes.into()
        } else {
            return Err(LaunchError::NotFound(name.into(), self.search_path.clone()));
        };
        let size = bytes.len() as u64;
        if size > limits.module_size {
            return Err(too_large(size));
        }
        let digest = digest_of(&bytes);
        if let Some(module) = lock(&self.loaded).get(name) {
            if module.digest == digest {
                return Ok(ModuleKind::Wasm(module.clone()));
            }
        }
        let job = {
            let mut jobs = lock(&self.compiling);
            match jobs.get(name) {
                Some(job) if job.serves(digest, limits) => job.clone(),
                _ => {
                    let job = self.start_compile(name, bytes.into_owned(), digest, asker)?;
                    jobs.insert(name.to_string(), job.clone());
                    job
                }
            }
        };
        let module = self.wait_for(name, &job)??;
        let mut jobs = lock(&self.compiling);
        // A compile of newer bytes replaced this one while it ran: its result is not what
        // the name means any more, but this launch may still run it.
        if jobs
            .get(name)
            .is_some_and(|current| Arc::ptr_eq(current, &job))
        {
            jobs.remove(name);
            lock(&self.loaded).insert(name.to_string(), module.clone());
        }
        Ok(ModuleKind::Wasm(module))
    }

    /// Starts compiling (and pre-initializing) module `name` on a thread of its own, so
    /// that no launch waits for it longer than it may (see [`ModuleRegistry::wait_for`]).
    fn start_compile(
        &self,
        name: &str,
        bytes: Vec<u8>,
        digest: u64,
        asker: &Asker,
    ) -> Result<Arc<Compile>, LaunchError> {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Compile {
            digest,
            limits: asker.limits,
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        });
        let compiler = Compiler {
            engine: self.engine.clone(),
            linker: self.linker.clone(),
            overflow: self.overflow.clone(),
            prefault: self.prefault,
            stopping: self.stopping.clone(),
        };
        let (owned_name, done, asker) = (name.to_string(), job.clone(), asker.clone());
        spawn_compile(
            move || {
                let size = bytes.len() as u64;
                compiler.compile(&owned_name, &bytes, digest, size, &asker)
            },
            {
                let name = name.to_string();
                move |outcome| {
                    let outcome = outcome
                        .unwrap_or_else(|panicked| Err(LaunchError::Invalid(name, panicked)));
                    *lock_plain(&done.outcome) = Some(outcome.map(Arc::new));
                    done.finished.notify_all();
                }
            },
        )
        .map_err(|e| LaunchError::Limit(format!("cannot start compiling `{name}`: {e}")))?;
        Ok(job)
    }

    /// Waits for the outcome of `job`, within the budget of the call it runs in
    /// ([`wait_within_budget`]). The compile goes on, and a later launch takes its result.
    fn wait_for(
        &self,
        name: &str,
        job: &Compile,
    ) -> Result<Result<Arc<WasmModule>, LaunchError>, LaunchError> {
        wait_within_budget(&job.outcome, &job.finished, &self.stopping, Option::clone).map_err(
            |(why, waited)| {
                LaunchError::Limit(format!(
                    "module `{name}` is still being compiled ({} ms so far): {why}",
                    waited.as_millis()
                ))
            },
        )
    }

    /// The first file the search path yields for `name`.
    fn search(&self, name: &str) -> Option<PathBuf> {
        self.search_path
            .split(';')
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(|pattern| PathBuf::from(pattern.replace('?', name)))
            .find(|path| path.is_file())
    }
}

/// Runs `compile` on a compile thread of its own and hands its outcome to `finish`: its
/// result, or what the panic that ended it said.
///
/// # Errors
/// When the thread cannot be started.
fn spawn_compile<T: 'static>(
    compile: impl FnOnce() -> T + Send + 'static,
    finish: impl FnOnce(Result<T, String>) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("skywasm-compile".into())
        .stack_size(COMPILE_STACK)
        .spawn(move || {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile)).map_err(|panic| {
                    format!(
                        "the host panicked compiling it: {}",
                        crate::sync::panic_text(&*panic)
                    )
                });
            finish(outcome);
        })
        .map(drop)
}

/// Waits on `signal` until `ready` finds an outcome in `state`. From inside a guest call
/// the wait is bounded by what is left of that call's CPU budget and charged to it; a call
/// stopped by `KILL` or a signal, and the node stopping, end it too: then why, and how long
/// it waited.
fn wait_within_budget<T, R>(
    state: &Mutex<T>,
    signal: &Condvar,
    stopping: &AtomicBool,
    mut ready: impl FnMut(&T) -> Option<R>,
) -> Result<R, (&'static str, std::time::Duration)> {
    let started = std::time::Instant::now();
    let left = Budget::left();
    let mut guard = lock_plain(state);
    let result = loop {
        if let Some(done) = ready(&guard) {
            break Ok(done);
        }
        let waited = started.elapsed();
        let why = if stopping.load(Ordering::Acquire) {
            "the node is stopping"
        } else if Enclosing::interrupted() {
            "the launching call was stopped"
        } else if waited >= left {
            "this call may not wait longer; try again"
        } else {
            ""
        };
        if !why.is_empty() {
            break Err((why, waited));
        }
        let slice = (left - waited).min(COMPILE_POLL);
        guard = signal
            .wait_timeout(guard, slice)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    };
    drop(guard);
    // Outside a guest call nothing is counted.
    let _ = Budget::charge(started.elapsed());
    result
}

/// A module's compile, running on its own thread: launches of the module wait for its
/// outcome, each as long as it may.
struct Compile {
    /// The hash of the bytes compiled.
    digest: u64,
    /// The limits of the tenant that asked (its pre-initialization runs within them).
    limits: LoadLimits,
    /// Set once, when the compile ends.
    outcome: Mutex<Option<Result<Arc<WasmModule>, LaunchError>>>,
    finished: Condvar,
}

impl Compile {
    /// True when this compile answers a load of bytes with `digest` within `limits`: it is
    /// of the same bytes, and still running or ended within the same limits (a failed
    /// pre-initialization may succeed within larger ones; a failure within the same limits
    /// is answered again without compiling).
    fn serves(&self, digest: u64, limits: &LoadLimits) -> bool {
        self.digest == digest && (lock_plain(&self.outcome).is_none() || self.limits == *limits)
    }
}

/// What a compile thread needs of the registry.
struct Compiler {
    engine: Engine,
    linker: Linker<WasmState>,
    overflow: Vec<Arc<OverflowEngine>>,
    prefault: bool,
    stopping: Arc<AtomicBool>,
}

impl Compiler {
    /// Compiles and links wasm bytes; a module asking for pre-initialization is compiled
    /// from its snapshot (`crate::preinit`).
    fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        digest: u64,
        size: u64,
        asker: &Asker,
    ) -> Result<WasmModule, LaunchError> {
        let invalid = |e: String| LaunchError::Invalid(name.into(), e);
        // Text modules become binary here, so a WAT module can ask for pre-initialization.
        let bytes = &*wat::parse_bytes(bytes).map_err(|e| invalid(format!("{e}")))?;
        let code: std::borrow::Cow<'_, [u8]> = if crate::preinit::wants_preinit(bytes) {
            let bounds = crate::preinit::PreinitLimits {
                cpu: std::time::Duration::from_millis(asker.limits.cpu_ms),
                memory: asker.limits.memory,
                account: asker.account.clone(),
                stop: self.stopping.clone(),
            };
            // On an overflow engine when there is one: it takes no slot of the pool, which
            // may be full.
            let engine = self
                .overflow
                .first()
                .map_or(&self.engine, |tier| &tier.engine);
            crate::preinit::preinitialize(engine, bytes, &bounds)
                .map_err(|e| invalid(format!("pre-initialization failed: {e:#}")))?
                .into()
        } else {
            bytes.into()
        };
        let module = Module::new(&self.engine, &code).map_err(|e| invalid(format!("{e:#}")))?;
        let mut linked = self.link(name, &module, digest, size)?;
        // The bytes are kept (copied once) only for a node that has tiers to compile them
        // for later.
        if !self.overflow.is_empty() {
            let code: Arc<[u8]> = code.into_owned().into();
            linked.overflow = self
                .overflow
                .iter()
                .map(|tier| Arc::new(OverflowCode::new(tier.clone(), name, code.clone())))
                .collect();
        }
        Ok(linked)
    }

    /// Checks the module's exports and links its imports.
    fn link(
        &self,
        name: &str,
        module: &Module,
        digest: u64,
        size: u64,
    ) -> Result<WasmModule, LaunchError> {
        let invalid = |why: String| LaunchError::Invalid(name.into(), why);
        let i32_ = || ValType::I32;
        expect_func(module, export::ALLOC, &[i32_()], &[i32_()]).map_err(invalid)?;
        expect_func(module, export::INIT, &[i32_(), i32_()], &[i32_()]).map_err(invalid)?;
        expect_func(
            module,
            export::DISPATCH,
            &[i32_(), i32_(), i32_(), i32_(), i32_()],
            &[],
        )
        .map_err(invalid)?;
        match module.get_export(export::MEMORY) {
            Some(ExternType::Memory(_)) => {}
            _ => return Err(invalid(format!("no exported memory `{}`", export::MEMORY))),
        }
        let optional = |name: &str, params: &[ValType]| match module.get_export(name) {
            None => Ok(false),
            Some(_) => expect_func(module, name, params, &[]).map(|()| true),
        };
        let has_initialize = optional(export::INITIALIZE, &[]).map_err(invalid)?;
        let has_signal = optional(SIGNAL_EXPORT, &[i32_()]).map_err(invalid)?;
        let has_interrupt = optional(export::INTERRUPT, &[]).map_err(invalid)?;
        let has_snapshot =
            optional_returning_i32(module, export::SNAPSHOT, &[]).map_err(invalid)?;
        let has_restore =
            optional_returning_i32(module, export::RESTORE, &[i32_(), i32_(), i32_()])
                .map_err(invalid)?;
        let pre = self
            .linker
            .instantiate_pre(module)
            .map_err(|e| invalid(format!("{e:#}")))?;
        Ok(WasmModule {
            pre,
            has_initialize,
            has_signal,
            has_interrupt,
            has_snapshot,
            has_restore,
            digest,
            size,
            prefault: Prefault::new(self.prefault),
            overflow: Vec::new(),
        })
    }
}

/// True when `module` exports `name` as a function of `params` returning one `i32`; an
/// error when it exports `name` with another type.
fn optional_returning_i32(module: &Module, name: &str, params: &[ValType]) -> Result<bool, String> {
    match module.get_export(name) {
        None => Ok(false),
        Some(_) => expect_func(module, name, params, &[ValType::I32]).map(|()| true),
    }
}

/// A hash of a module's bytes (to tell whether a file changed; not a security measure).
fn digest_of(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Native stack of a compile thread: a worker's, as a pre-initialization runs guest code
/// (only address space until used).
const COMPILE_STACK: usize = crate::scheduler::WORKER_STACK;

/// How often a launch waiting for a compile looks at its budget and at `KILL`.
const COMPILE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Optional export: skynet's module `signal` entry.
pub(crate) const SIGNAL_EXPORT: &str = "skywasm_signal";

fn expect_func(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
) -> Result<(), String> {
    let shape = || {
        let list = |types: &[ValType]| {
            types
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("{name}({}) -> ({})", list(params), list(results))
    };
    match module.get_export(name) {
        Some(ExternType::Func(func)) => {
            let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
                a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
            };
            if same(&mut func.params(), params) && same(&mut func.results(), results) {
                Ok(())
            } else {
                Err(format!(
                    "export `{name}` has type {func}; expected {}",
                    shape()
                ))
            }
        }
        _ => Err(format!("missing export {}", shape())),
    }
}

/// Module names are file-name-like: letters, digits, `_`, `-`, `.`, `/`, without `..`
/// components or a leading `/` (the name is substituted into search paths).
fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && name.split('/').all(|part| !part.is_empty() && part != "..")
}

/// Address space reserved per linear memory (and GC heap) of the fast pool: with 4 GiB
/// and a guard, compiled code needs no explicit bounds checks (guest code runs 20-30%
/// faster: BENCHMARKS.md).
const FAST_RESERVATION: u64 = 4 << 30;

/// Instances the fast pool holds: `wasm_fast_services`, or fewer when the node may have
/// fewer services in all.
pub fn fast_slots(config: &NodeConfig) -> u32 {
    config.wasm_max_services.min(config.wasm_fast_services)
}

/// The host functions (skywasm's ABI and WASI) linked for `engine`.
fn linker_for(engine: &Engine) -> anyhow::Result<Linker<WasmState>> {
    let mut linker = Linker::new(engine);
    crate::abi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    crate::wasm::wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    Ok(linker)
}

/// What both engines share: epochs, exceptions, memories that never move, the profiler
/// and the on-disk cache.
fn common_config(config: &NodeConfig) -> anyhow::Result<Config> {
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        .wasm_exceptions(true)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        .memory_may_move(false);
    match config.wasm_profiler.as_deref() {
        None | Some("none") => {}
        // `perf record` then resolves guest functions by name (perf map / jitdump files).
        Some("perfmap") => {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Some("jitdump") => {
            wasm.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        Some(other) => {
            anyhow::bail!("wasm_profiler = {other:?}: expected perfmap, jitdump or none")
        }
    }
    if let Some(dir) = &config.wasm_cache {
        match cache_for(dir) {
            Ok(cache) => {
                wasm.cache(Some(cache));
            }
            Err(e) => tracing::warn!("compiled-module cache disabled: {e:#}"),
        }
    }
    Ok(wasm)
}

/// The overflow tiers of a node: the wide one (4 GiB reservations, no bounds checks) for
/// `wasm_wide_services`, then the checked one for the rest of `wasm_max_services`; only
/// those the node may need.
fn overflow_tiers(
    config: &NodeConfig,
    pool: &Engine,
    stopping: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<Arc<OverflowEngine>>> {
    let fast = fast_slots(config);
    let past_pool = config.wasm_max_services.saturating_sub(fast);
    let wide = past_pool.min(config.wasm_wide_services);
    let mut tiers: Vec<Arc<OverflowEngine>> = Vec::new();
    let mut add = |reservation: u64, cap: Option<u64>| -> anyhow::Result<()> {
        let engine = Engine::new(&overflow_config(config, reservation)?)
            .map_err(anyhow::Error::from)
            .context("creating an overflow engine")?;
        let before = match tiers.last() {
            Some(tier) => Before::Tier(tier.clone()),
            None => Before::Pool(pool.clone(), u64::from(fast)),
        };
        let linker = linker_for(&engine)?;
        tiers.push(Arc::new(OverflowEngine::new(
            engine,
            linker,
            before,
            cap,
            stopping.clone(),
        )));
        Ok(())
    };
    if wide > 0 {
        add(FAST_RESERVATION, Some(u64::from(wide)))?;
    }
    if past_pool > wide {
        add(config.wasm_memory, None)?;
    }
    Ok(tiers)
}

/// An overflow engine's configuration: memories allocated per instance and reserved at
/// `reservation` (4 GiB: no bounds checks; less: bounds-checked); the GC heap, where only a
/// wasm exception in flight lives, reserved small and allowed to move when it grows.
fn overflow_config(config: &NodeConfig, reservation: u64) -> anyhow::Result<Config> {
    let mut wasm = common_config(config)?;
    wasm.memory_reservation(reservation)
        .gc_heap_reservation(OVERFLOW_GC_HEAP)
        .gc_heap_guard_size(64 << 10)
        .gc_heap_reservation_for_growth(OVERFLOW_GC_HEAP)
        .gc_heap_may_move(true)
        .allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Ok(wasm)
}

/// GC heap reserved per overflow instance (it grows past this if it must).
const OVERFLOW_GC_HEAP: u64 = 1 << 20;

/// The fast engine's configuration: the pool of `wasm_fast_services` instances.
fn engine_config(config: &NodeConfig) -> anyhow::Result<Config> {
    let mut wasm = common_config(config)?;
    wasm.memory_reservation(FAST_RESERVATION);
    let services = fast_slots(config);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(services)
        .total_tables(services)
        // A store that uses exceptions also takes a GC heap, which comes from the memory pool.
        .total_memories(services.saturating_mul(2))
        .total_gc_heaps(services)
        .total_component_instances(0)
        .max_memory_size(config.wasm_memory as usize);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(wasm)
}

fn cache_for(dir: &Path) -> anyhow::Result<wasmtime::Cache> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cache = wasmtime::CacheConfig::new();
    cache.with_directory(dir);
    wasmtime::Cache::new(cache).map_err(anyhow::Error::from)
}

/// Splits skynet's "module args..." into the module name and the rest.
pub(crate) fn split_command(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((module, args)) => (module, args.trim_start()),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_module_and_args() {
        assert_eq!(
            super::split_command("snlua bootstrap"),
            ("snlua", "bootstrap")
        );
        assert_eq!(super::split_command("  logger  "), ("logger", ""));
        assert_eq!(super::split_command("m a b  c"), ("m", "a b  c"));
    }

    use super::*;

    #[test]
    fn a_module_launched_from_two_threads_at_once_is_compiled_once() {
        let config = NodeConfig::from_source(
            "t",
            "wasm_cache = false\nwasm_max_services = 4\nwasm_memory = '1M'",
        )
        .unwrap();
        let registry = ModuleRegistry::new(&config).unwrap();
        // Big enough that compiling takes a while: both threads miss the cache.
        let funcs: String = (0..300)
            .map(|n| format!("(func (export \"f{n}\") (result i32) i32.const {n})"))
            .collect();
        let echo = include_str!("../../tests/wat/echo.wat").trim_end();
        let wat = format!("{}{funcs})", echo.strip_suffix(')').unwrap());
        registry.provide("fresh", wat.into_bytes());
        let start = std::sync::Barrier::new(2);
        let resolve = || {
            start.wait();
            match registry.resolve("fresh") {
                Ok(ModuleKind::Wasm(module)) => module,
                _ => panic!("`fresh` is a wasm module"),
            }
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(resolve);
            let b = s.spawn(resolve);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(Arc::ptr_eq(&a, &b), "two compilations of one module");
        assert_eq!(registry.compiles(), 1);
    }

    #[test]
    fn overflow_code_compiles_once_when_wanted_and_a_call_waits_for_it_within_its_budget() {
        let config = NodeConfig::from_source(
            "t",
            "wasm_cache = false\nwasm_max_services = 4\nwasm_fast_services = 1\n\
             wasm_memory = '1M'",
        )
        .unwrap();
        let registry = ModuleRegistry::new(&config).unwrap();
        // Big enough that compiling takes longer than the call below may wait.
        let funcs: String = (0..3000)
            .map(|n| format!("(func (export \"f{n}\") (result i32) i32.const {n})"))
            .collect();
        let echo = include_str!("../../tests/wat/echo.wat").trim_end();
        let wat = format!("{}{funcs})", echo.strip_suffix(')').unwrap());
        registry.provide("fresh", wat.into_bytes());
        let Ok(ModuleKind::Wasm(module)) = registry.resolve("fresh") else {
            panic!("`fresh` is a wasm module");
        };
        assert_eq!(
            module.overflow.len(),
            1,
            "the 3 past the pool fit the wide tier"
        );
        let code = module.overflow[0].clone();
        {
            let _call = Budget::enter(std::time::Duration::from_millis(1));
            match code.instance_pre() {
                Err(LaunchError::Limit(why)) => {
                    assert!(why.contains("still being compiled"), "{why}")
                }
                _ => panic!("the call waited past its budget"),
            }
        }
        // Outside any call the wait takes the compile's result: code for the other engine.
        let pre = code.instance_pre().expect("the overflow code");
        assert!(!Engine::same(
            pre.module().engine(),
            module.pre.module().engine()
        ));
        let again = code.instance_pre().expect("the same code");
        assert!(Module::same(pre.module(), again.module()), "compiled once");

        let small =
            NodeConfig::from_source("t", "wasm_cache = false\nwasm_max_services = 4").unwrap();
        let registry = ModuleRegistry::new(&small).unwrap();
        let Ok(ModuleKind::Wasm(module)) = registry.resolve("bootstrap") else {
            panic!("`bootstrap` is a wasm module");
        };
        assert!(
            module.overflow.is_empty(),
            "a node within its pool has no overflow tier"
        );
    }

    #[test]
    fn the_wide_tier_holds_its_cap_and_the_checked_tier_the_rest() {
        let config = NodeConfig::from_source(
            "t",
            "wasm_cache = false\nwasm_max_services = 6\nwasm_fast_services = 1\n\
             wasm_wide_services = 2\nwasm_memory = '1M'",
        )
        .unwrap();
        let registry = ModuleRegistry::new(&config).unwrap();
        let [wide, checked] = &registry.overflow[..] else {
            panic!("two tiers past the pool");
        };
        let first = wide.claim().expect("room");
        let second = wide.claim().expect("room");
        assert!(wide.claim().is_none(), "the wide tier holds 2");
        drop(first);
        let third = wide.claim().expect("a slot given back is taken again");
        let rest: Vec<_> = (0..10).map(|_| checked.claim()).collect();
        assert!(
            rest.iter().all(Option::is_some),
            "the node's limit bounds the last tier"
        );
        drop((second, third));
        let none = NodeConfig::from_source(
            "t",
            "wasm_cache = false\nwasm_max_services = 6\nwasm_fast_services = 1\n\
             wasm_wide_services = 0\nwasm_memory = '1M'",
        )
        .unwrap();
        let tiers = ModuleRegistry::new(&none).unwrap().overflow.len();
        assert_eq!(tiers, 1, "checked only");
    }

    /// A registry for tests, and a thread advancing its engine's epoch every 10 ms as the
    /// node's monitor does (pre-initialization counts CPU in epoch ticks).
    fn ticking_registry() -> (Arc<ModuleRegistry>, Arc<AtomicBool>) {
        let config = NodeConfig::from_source(
            "t",
            "wasm_cache = false\nwasm_max_services = 4\nwasm_memory = '1M'",
        )
        .unwrap();
        let registry = Arc::new(ModuleRegistry::new(&config).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let (ticking, finished) = (registry.clone(), done.clone());
        std::thread::spawn(move || {
            while !finished.load(Ordering::Acquire) {
                std::thread::sleep(crate::monitor::EPOCH_PERIOD);
                ticking.increment_epoch();
            }
        });
        (registry, done)
    }

    /// Limits of 1 MiB of module and of memory, and `ms` of CPU.
    fn cpu_limited(ms: u64) -> LoadLimits {
        LoadLimits {
            module_size: 1 << 20,
            cpu_ms: ms,
            memory: 1 << 20,
        }
    }

    const LOOPING_PREINIT: &str = r#"(module (memory (export "memory") 1)
        (func (export "skywasm_preinit") (loop $l (br $l)))
        (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
        (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32)))"#;

    #[test]
    fn a_module_over_the_size_limit_is_refused_before_it_is_compiled() {
        let (registry, done) = ticking_registry();
        let echo = include_str!("../../tests/wat/echo.wat");
        registry.provide("echo", echo.as_bytes().to_vec());
        let limits = LoadLimits {
            module_size: echo.len() as u64 - 1,
            cpu_ms: 1000,
            memory: 1 << 20,
        };
        match registry.resolve_for("echo", &Asker::within(limits)) {
            Err(LaunchError::Limit(why)) => assert!(why.contains("module_size"), "{why}"),
            _ => panic!("a module over the limit was loaded"),
        }
        let fits = LoadLimits {
            module_size: echo.len() as u64,
            ..limits
        };
        assert!(registry.resolve_for("echo", &Asker::within(fits)).is_ok());
        // Once loaded, it is still refused to a tenant whose limit it passes.
        assert!(matches!(
            registry.resolve_for("echo", &Asker::within(limits)),
            Err(LaunchError::Limit(_))
        ));
        done.store(true, Ordering::Release);
    }

    #[test]
    fn pre_initialization_ends_at_its_cpu_limit_and_at_stop() {
        let (registry, done) = ticking_registry();
        registry.provide("spin", LOOPING_PREINIT.as_bytes().to_vec());
        let limits = cpu_limited(50);
        match registry.resolve_for("spin", &Asker::within(limits)) {
            Err(LaunchError::Invalid(_, why)) => {
                assert!(why.contains("ran past its CPU limit of 50 ms"), "{why}")
            }
            _ => panic!("a looping pre-initialization finished"),
        }
        let forever = LoadLimits {
            cpu_ms: 3_600_000,
            ..limits
        };
        let stopper = registry.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            stopper.stop();
        });
        // The wait and the loop both end; whichever tells first says why.
        match registry.resolve_for("spin", &Asker::within(forever)) {
            Err(e) => assert!(e.to_string().contains("the node is stopping"), "{e}"),
            Ok(_) => panic!("a looping pre-initialization finished"),
        }
        done.store(true, Ordering::Release);
    }

    /// A module whose pre-initialization counts to a billion: long enough to outlast a
    /// short wait, short of a generous CPU limit.
    const SLOW_PREINIT: &str = r#"(module (memory (export "memory") 1)
        (global $n (mut i32) (i32.const 1000000000))
        (func (export "skywasm_preinit")
          (loop $l (global.set $n (i32.sub (global.get $n) (i32.const 1)))
                   (br_if $l (global.get $n))))
        (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
        (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32)))"#;

    #[test]
    fn a_call_waits_for_a_compile_at_most_its_budget_and_a_later_load_takes_the_result() {
        let (registry, done) = ticking_registry();
        registry.provide("slow", SLOW_PREINIT.as_bytes().to_vec());
        let limits = cpu_limited(60_000);
        {
            let _call = Budget::enter(std::time::Duration::from_millis(30));
            match registry.resolve_for("slow", &Asker::within(limits)) {
                Err(LaunchError::Limit(why)) => {
                    assert!(why.contains("still being compiled"), "{why}")
                }
                _ => panic!("the call waited past its budget"),
            }
            assert!(Budget::left().is_zero(), "the wait was not charged");
        }
        assert!(!registry.is_ready("slow"));
        // The compile went on: a load outside any call waits for it and takes its result.
        assert!(matches!(
            registry.resolve_for("slow", &Asker::within(limits)),
            Ok(ModuleKind::Wasm(_))
        ));
        assert!(registry.is_ready("slow"));
        done.store(true, Ordering::Release);
    }

    #[test]
    fn a_failed_compile_is_answered_again_without_compiling_within_the_same_limits() {
        let (registry, done) = ticking_registry();
        registry.provide("spin", LOOPING_PREINIT.as_bytes().to_vec());
        let limits = cpu_limited(100);
        assert!(registry
            .resolve_for("spin", &Asker::within(limits))
            .is_err());
        assert_eq!(registry.compiles(), 1);
        // The same bytes within the same limits: the same failure, from the record.
        match registry.resolve_for("spin", &Asker::within(limits)) {
            Err(LaunchError::Invalid(_, why)) => {
                assert!(why.contains("ran past its CPU limit of 100 ms"), "{why}")
            }
            _ => panic!("the failed module loaded"),
        }
        assert_eq!(registry.compiles(), 1, "compiled again");
        // Within other limits it may succeed: it is compiled again.
        let larger = LoadLimits {
            cpu_ms: 200,
            ..limits
        };
        assert!(registry
            .resolve_for("spin", &Asker::within(larger))
            .is_err());
        assert_eq!(registry.compiles(), 2);
        done.store(true, Ordering::Release);
    }

    #[test]
    fn module_names_cannot_escape_the_search_path() {
        for good in ["main", "pong", "my-svc_2", "game/room", "a.b"] {
            assert!(valid_module_name(good), "{good}");
        }
        for bad in ["", "/etc/x", "../x", "a/../b", "a//b", "a b", "x?", "a\0b"] {
            assert!(!valid_module_name(bad), "{bad:?}");
        }
    }
}
