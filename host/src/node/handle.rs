//! [`NodeHandle`]: what an embedder, a test or a benchmark does with a running node —
//! launch, kill, signal and upgrade services, look them up, and read what they and the
//! tenants use — without reaching into the node's parts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use skywasm_abi::{Handle, HostError};

pub use crate::cluster::ClusterError;
use crate::lifecycle::upgrade::UpgradeRequest;
use crate::lifecycle::LaunchError;
use crate::service::{Behavior, ServiceCore};
use crate::shared::NodeShared;

/// A cheap, cloneable handle on a running node ([`super::Node::handle`]); it keeps the
/// node's shared state alive, not its threads.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<NodeShared>,
}

/// What a service is and uses now, read from the host alone (no guest is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its address.
    pub handle: Handle,
    /// The module it runs.
    pub module: String,
    /// Its argument string.
    pub args: String,
    /// The name of its tenant.
    pub tenant: String,
    /// Messages waiting in its mailbox.
    pub queue_len: usize,
    /// Bytes of the messages waiting in its mailbox.
    pub queue_bytes: usize,
    /// Messages it was given so far.
    pub messages: u64,
    /// Bytes of linear memory at the last reading (wasm services).
    pub memory: u64,
}

/// What a tenant's services use now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUsage {
    /// Live services (counted until each is finalized).
    pub services: u32,
    /// Linear memory of its services, in bytes.
    pub memory: u64,
    /// Its open sockets.
    pub sockets: u32,
    /// Bytes of the messages waiting in its mailboxes (counted under a
    /// `tenant_mailbox_bytes` cap only).
    pub queued_bytes: usize,
}

impl NodeHandle {
    pub(super) fn new(shared: Arc<NodeShared>) -> NodeHandle {
        NodeHandle { shared }
    }

    /// The shared state, for the crate's own parts.
    pub(crate) fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// Launches `module` with its argument string into the node's own tenant; its init
    /// runs on the calling thread before this returns (skynet's `LAUNCH`). The calling
    /// thread needs [`super::WORKER_STACK`] of stack when inits launch in turn.
    ///
    /// # Errors
    /// A [`LaunchError`]; the failure is also logged as skynet does (`FAILED launch ...`).
    pub fn launch(&self, module: &str, args: &str) -> Result<Handle, LaunchError> {
        self.shared.launch(module, args)
    }

    /// Launches `module` into the tenant named `tenant`, counted against its limits.
    ///
    /// # Errors
    /// [`LaunchError::Denied`] when the node has no such tenant; otherwise as
    /// [`NodeHandle::launch`].
    pub fn launch_in(&self, tenant: &str, module: &str, args: &str) -> Result<Handle, LaunchError> {
        let tenant = self
            .shared
            .tenants
            .get(tenant)
            .ok_or_else(|| LaunchError::Denied(format!("the node has no tenant `{tenant}`")))?
            .clone();
        self.shared.launch_in(&tenant, module, args)
    }

    /// Launches a native service whose instance `start` builds (an embedder's service that
    /// captures state); `module` and `args` are what lists and logs show.
    ///
    /// # Errors
    /// As [`NodeHandle::launch`].
    pub fn launch_with(
        &self,
        module: &str,
        args: &str,
        start: impl FnOnce(ServiceCore) -> Result<Box<dyn Behavior>, LaunchError>,
    ) -> Result<Handle, LaunchError> {
        self.shared.launch_with(module, args, start)
    }

    /// Registers a native module: services launched by `name` get the instance `factory`
    /// builds from their core and argument string.
    pub fn add_native(
        &self,
        name: &str,
        factory: impl Fn(ServiceCore, &str) -> Result<Box<dyn Behavior>, String> + Send + Sync + 'static,
    ) {
        self.shared.modules.add_native(name, factory);
    }

    /// Makes wasm (or wat) `bytes` available as module `name`, ahead of the search path.
    pub fn provide_module(&self, name: &str, bytes: Vec<u8>) {
        self.shared.modules.provide(name, bytes);
    }

    /// Ends a service from outside (`KILL`); false when it was not alive.
    pub fn kill(&self, handle: Handle) -> bool {
        self.shared.kill(handle)
    }

    /// Sends a service a signal (`SIGNAL`); false when it is not alive.
    pub fn signal(&self, handle: Handle, signal: i32) -> bool {
        self.shared.signal(handle, signal)
    }

    /// Asks for the hot upgrade of service `target` (see [`crate::lifecycle::upgrade`]).
    ///
    /// # Errors
    /// An ABI error code: no such live service, or an upgrade of it already pending.
    pub fn request_upgrade(
        &self,
        target: Handle,
        request: UpgradeRequest,
    ) -> Result<(), HostError> {
        self.shared.request_upgrade(target, request)
    }

    /// The address a name stands for: `.local` and global names, `:hex` addresses.
    pub fn query(&self, name: &str) -> Option<Handle> {
        self.shared.router.resolve(name).ok()
    }

    /// The address a name stands for as the services of tenant `tenant` see it: its own
    /// private names first (untrusted tenants), then the node's.
    pub fn query_in(&self, tenant: &str, name: &str) -> Option<Handle> {
        let scope = self.shared.tenants.get(tenant)?.name_scope();
        self.shared.router.resolve_in(scope, name).ok()
    }

    /// What the live service at `handle` is and uses now.
    pub fn service(&self, handle: Handle) -> Option<ServiceInfo> {
        self.shared.router.service(handle).map(|s| info(&s))
    }

    /// Every live service, by address.
    pub fn services(&self) -> Vec<ServiceInfo> {
        self.shared
            .router
            .list()
            .into_iter()
            .map(|(_, service)| info(&service))
            .collect()
    }

    /// What the tenant named `name` uses now.
    pub fn tenant_usage(&self, name: &str) -> Option<TenantUsage> {
        self.shared.tenants.get(name).map(|tenant| TenantUsage {
            services: tenant.services.load(Ordering::Acquire),
            memory: tenant.memory.load(Ordering::Relaxed),
            sockets: tenant.sockets.open(),
            queued_bytes: tenant.queued_bytes(),
        })
    }

    /// How many 4 KiB pages of linear memory every start of the loaded wasm module
    /// `module` writes (learned with `wasm_prefault`): what an idle service of it keeps
    /// privately resident. `None` for a native module, one that cannot be loaded, or while
    /// nothing is learned.
    pub fn start_pages(&self, module: &str) -> Option<usize> {
        match self.shared.modules.resolve(module).ok()? {
            crate::module::ModuleKind::Wasm(module) => module.start_pages(),
            crate::module::ModuleKind::Native(_) => None,
        }
    }

    /// Where the Prometheus endpoint listens (`metrics`), once it does.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.shared.metrics.endpoint.get().copied()
    }

    /// The node's metrics in the Prometheus text format, as `/metrics` serves them.
    ///
    /// # Errors
    /// When the text would be larger than the endpoint sends.
    pub fn metrics_text(&self) -> Result<String, String> {
        crate::metrics::exposition::render(&self.shared)
    }

    /// Timeouts pending in the node's timer wheel.
    pub fn pending_timers(&self) -> usize {
        self.shared.clock.pending()
    }

    /// Sockets open in the node.
    pub fn open_sockets(&self) -> usize {
        self.shared.sockets.len()
    }

    /// Reads an env entry (`GETENV`).
    pub fn getenv(&self, key: &str) -> Option<String> {
        self.shared.getenv(key)
    }

    /// Writes a line to the node's log with `source` as its origin.
    pub fn log(&self, source: Handle, text: &str) {
        self.shared.log(source, text);
    }

    /// Asks the node to stop, as `ABORT` does; [`super::Node::wait`] returns.
    pub fn request_stop(&self) {
        self.shared.request_stop();
    }

    /// True once the node is stopping.
    pub fn is_stopping(&self) -> bool {
        self.shared.is_quitting()
    }

    /// Asks the log service to reopen its file (SIGHUP).
    pub fn reopen_log(&self) {
        self.shared.reopen_log();
    }

    /// Reloads the cluster's node table from its file (SIGHUP), when the cluster is in use.
    pub fn reload_cluster(&self) {
        self.shared.reload_cluster();
    }

    /// Merges `nodes` (name, `host:port` or `false`) into the cluster's node table, as
    /// `cluster.reload(table)` does from Lua (nodes not named keep their address): for
    /// embedders that learn their peers' addresses at run time.
    ///
    /// # Errors
    /// Why the table was not taken: a [`ClusterError`] (a bad address).
    pub fn set_cluster_nodes(&self, nodes: &[(&str, &str)]) -> Result<(), ClusterError> {
        let table = crate::cluster::NodeTable::from_entries(nodes.iter().copied())?;
        self.shared.cluster.reload(Some(table))
    }
}

/// A service's [`ServiceInfo`].
fn info(service: &crate::service::Service) -> ServiceInfo {
    ServiceInfo {
        handle: service.handle(),
        module: service.module().to_string(),
        args: service.args().to_string(),
        tenant: service.tenant().name().to_string(),
        queue_len: service.queue_len(),
        queue_bytes: service.queue_bytes(),
        messages: service.stats.messages.load(Ordering::Relaxed),
        memory: service.stats.memory.load(Ordering::Relaxed),
    }
}
