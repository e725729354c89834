//! Where messages go: the node's services by address and name (the handle table, owned
//! here), the rules a message meets on its way (tenant crossing, mailbox limits), and the
//! destinations that serve some messages themselves instead of queueing them (a `Gateway`).
//!
//! Every push into a service's mailbox goes through a [`Router`] (bounded for services'
//! sends, unbounded or measured for the host's own messages); a push that makes an idle
//! mailbox non-empty hands the service to the scheduler. Logging a refusal is the caller's
//! (the router only says why, with a `Refusal`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use skywasm_abi::{error, ptype, Handle};

use crate::handle::{HandleError, HandleTable, NameCaps};
use crate::mq::{Message, Push, Refused};
use crate::scheduler::Scheduler;
use crate::service::{is_request, Service};
use crate::sync::lock_plain;

/// A destination that serves some messages itself, on the sender's thread, instead of
/// queueing them for its service: the cluster gateway serves requests sent to `clusterd`.
/// One service of a node has one at a time ([`Router::attach_gateway`]).
pub(crate) trait Gateway: Send + Sync {
    /// Serves `message`, or gives it back to be queued as usual.
    ///
    /// # Errors
    /// The message, when this gateway does not serve it.
    fn serve(&self, message: Message) -> Result<(), Message>;
}

/// Why a service's send was refused.
pub(crate) enum Refusal {
    /// No live local service at the address.
    NoService,
    /// An untrusted tenant's message to a service of another tenant it may not reach.
    Denied(Arc<Service>),
    /// The destination's mailbox, or its tenant's mailboxes together, are full.
    Full(Arc<Service>),
}

impl Refusal {
    /// The ABI error code a guest sees.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Refusal::NoService => error::INVALID_ADDRESS,
            Refusal::Denied(_) => error::DENIED,
            Refusal::Full(_) => error::MAILBOX_FULL,
        }
    }
}

/// The node's services by address and name, and the way messages reach them.
pub struct Router {
    handles: HandleTable<Arc<Service>>,
    scheduler: Arc<Scheduler>,
    /// The service whose messages [`Router::gateway`] sees first (0: none): one relaxed
    /// load per push, in the router's own read-mostly memory.
    gateway_for: AtomicU32,
    gateway: Mutex<Option<Arc<dyn Gateway>>>,
}

impl Router {
    /// A router for node `harbor` whose ready services go to `scheduler`.
    pub(crate) fn new(harbor: u8, scheduler: Arc<Scheduler>) -> Router {
        Router {
            handles: HandleTable::new(harbor),
            scheduler,
            gateway_for: AtomicU32::new(0),
            gateway: Mutex::new(None),
        }
    }

    /// Lets `gateway` serve the messages sent to `service` before they reach its mailbox,
    /// instead of the gateway attached before.
    pub(crate) fn attach_gateway(&self, service: Handle, gateway: Arc<dyn Gateway>) {
        *lock_plain(&self.gateway) = Some(gateway);
        self.gateway_for.store(service.0, Ordering::Release);
    }

    /// Removes the gateway of `service`, if it has the node's.
    pub(crate) fn detach_gateway(&self, service: Handle) {
        let detached = self
            .gateway_for
            .compare_exchange(service.0, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if detached {
            *lock_plain(&self.gateway) = None;
        }
    }

    /// The gateway that serves messages to `dest`, if one does.
    fn gateway(&self, dest: Handle) -> Option<Arc<dyn Gateway>> {
        if self.gateway_for.load(Ordering::Relaxed) != dest.0 {
            return None;
        }
        lock_plain(&self.gateway).clone()
    }

    /// This node's harbor id (the high 8 bits of its addresses).
    pub fn harbor(&self) -> u8 {
        self.handles.harbor()
    }

    /// The live local service at `handle`.
    pub fn service(&self, handle: Handle) -> Option<Arc<Service>> {
        self.handles.get(handle)
    }

    /// Every live service, in address order.
    pub fn list(&self) -> Vec<(Handle, Arc<Service>)> {
        self.handles.list()
    }

    /// The service bound to a shared name (`.local` or global).
    pub fn find_name(&self, name: &str) -> Option<Handle> {
        self.handles.find_name(name)
    }

    /// The service bound to `name` as seen from name space `scope`.
    pub fn find_name_in(&self, scope: usize, name: &str) -> Option<Handle> {
        self.handles.find_name_in(scope, name)
    }

    /// Every bound name of the shared space.
    pub fn names(&self) -> Vec<(String, Handle)> {
        self.handles.names()
    }

    /// Gives a new service an address.
    ///
    /// # Errors
    /// As [`HandleTable::register`].
    pub(crate) fn register(
        &self,
        make: impl FnOnce(Handle) -> Arc<Service>,
    ) -> Result<(Handle, Arc<Service>), HandleError> {
        self.handles.register(make)
    }

    /// Takes the service at `handle` out (with its names); it receives nothing more.
    pub(crate) fn retire(&self, handle: Handle) -> Option<Arc<Service>> {
        self.handles.retire(handle)
    }

    /// Takes every service out (node stop).
    pub(crate) fn retire_all(&self) -> Vec<(Handle, Arc<Service>)> {
        self.handles.retire_all()
    }

    /// Binds a shared name (the node's own services: the logger, `clusterd`).
    ///
    /// # Errors
    /// As [`HandleTable::bind_name`].
    pub(crate) fn bind_name(&self, name: &str, handle: Handle) -> Result<(), HandleError> {
        self.handles.bind_name(name, handle)
    }

    /// Binds a name in `scope` within the owner's caps (`REG`, `NAME`).
    ///
    /// # Errors
    /// As [`HandleTable::bind_name_capped`].
    pub(crate) fn bind_name_capped(
        &self,
        scope: usize,
        name: &str,
        handle: Handle,
        owner: usize,
        caps: NameCaps,
    ) -> Result<(), HandleError> {
        self.handles
            .bind_name_capped(scope, name, handle, owner, caps)
    }

    /// Resolves `:hex`, `.local` and global names to a handle.
    ///
    /// # Errors
    /// [`error::UNKNOWN_NAME`] for an unbound name, [`error::INVALID_ARGUMENT`] for bad text.
    pub fn resolve(&self, name: &str) -> Result<Handle, i32> {
        self.resolve_in(crate::handle::SHARED_SCOPE, name)
    }

    /// Resolves a name as seen from name space `scope` (a tenant's
    /// [`crate::tenant::Tenant::name_scope`]): its own names first, then the shared ones.
    ///
    /// # Errors
    /// As [`Router::resolve`].
    pub fn resolve_in(&self, scope: usize, name: &str) -> Result<Handle, i32> {
        if name.starts_with(':') {
            return Handle::parse(name).ok_or(error::INVALID_ARGUMENT);
        }
        self.handles
            .find_name_in(scope, name)
            .ok_or(error::UNKNOWN_NAME)
    }

    /// Queues a message for a local service, without limits (the host's own messages).
    ///
    /// # Errors
    /// The message comes back when the destination is not a live local service.
    pub fn push(&self, dest: Handle, message: Message) -> Result<(), Message> {
        self.push_cached(dest, message, &mut None)
    }

    /// Like [`Router::push`], remembering the destination in `cache` so the next message
    /// to the same service skips the handle table (and its lock).
    ///
    /// # Errors
    /// As [`Router::push`].
    pub(crate) fn push_cached(
        &self,
        dest: Handle,
        message: Message,
        cache: &mut Option<Arc<Service>>,
    ) -> Result<(), Message> {
        let Some(service) = self.cached_service(dest, cache) else {
            return Err(message);
        };
        match service.queue.push(message) {
            Ok(Push::Ready) => {
                self.scheduler.ready(service.clone());
                Ok(())
            }
            Ok(Push::Queued) => Ok(()),
            Err(message) => {
                *cache = None;
                Err(message)
            }
        }
    }

    /// Queues a host message for `dest` while its mailbox holds less than `max_bytes` of
    /// bodies (the logger's backlog).
    ///
    /// # Errors
    /// [`Refused::Full`] past `max_bytes`; [`Refused::Closed`] when `dest` is not a live
    /// local service.
    pub(crate) fn push_within(
        &self,
        dest: Handle,
        message: Message,
        max_bytes: usize,
    ) -> Result<(), Refused> {
        let Some(service) = self.cached_service(dest, &mut None).cloned() else {
            return Err(Refused::Closed(message));
        };
        match service.queue.push_bounded(message, usize::MAX, max_bytes)? {
            Push::Ready => self.scheduler.ready(service),
            Push::Queued => {}
        }
        Ok(())
    }

    /// Queues a host message for `dest` whatever its mailbox holds (socket data: the
    /// socket pauses instead), and says how many bytes of bodies the mailbox holds with it.
    /// `None` when `dest` is not a live local service.
    pub(crate) fn push_measured(
        &self,
        dest: Handle,
        message: Message,
    ) -> Option<(Arc<Service>, usize)> {
        let service = self.cached_service(dest, &mut None).cloned()?;
        match service.queue.push_measured(message).ok()? {
            (Push::Ready, held) => {
                self.scheduler.ready(service.clone());
                Some((service, held))
            }
            (Push::Queued, held) => Some((service, held)),
        }
    }

    /// The live local service at `dest`, from `cache` when it holds it, else from the handle
    /// table (and then kept in `cache`).
    fn cached_service<'a>(
        &self,
        dest: Handle,
        cache: &'a mut Option<Arc<Service>>,
    ) -> Option<&'a Arc<Service>> {
        let hit = matches!(cache, Some(s) if s.handle() == dest && s.is_alive());
        if !hit {
            *cache = None;
            if dest.is_none() || dest.harbor() != self.harbor() {
                return None;
            }
            *cache = Some(self.handles.get(dest)?);
        }
        cache.as_ref()
    }

    /// Queues a message `sender` sends, under its tenant's rules: an untrusted tenant
    /// reaches another tenant only through the names that tenant exports (and answers
    /// requests it received), and no mailbox takes more than its tenant's limits. An answer
    /// is never refused for a full mailbox (its caller would wait forever). A destination
    /// with a [`Gateway`] may serve the message itself.
    ///
    /// # Errors
    /// A [`Refusal`]; the message is dropped.
    pub(crate) fn push_from(
        &self,
        sender: &Service,
        answer: bool,
        dest: Handle,
        message: Message,
        cache: &mut Option<Arc<Service>>,
    ) -> Result<(), Refusal> {
        let Some(service) = self.cached_service(dest, cache) else {
            return Err(Refusal::NoService);
        };
        let tenant = service.tenant();
        if !Arc::ptr_eq(tenant, sender.tenant())
            && !sender.tenant().is_trusted()
            && !self.may_cross(service, answer, message.ptype)
        {
            return Err(Refusal::Denied(service.clone()));
        }
        let message = match self.gateway(dest) {
            Some(gateway) => match gateway.serve(message) {
                Ok(()) => return Ok(()),
                Err(message) => message,
            },
            None => message,
        };
        let limits = &tenant.spec.limits;
        // An answer is never refused for a full mailbox: its caller would wait forever (the
        // obligation to answer is already settled). It still counts in the mailbox's bytes,
        // and there is one per request the receiver made.
        let (max_len, max_bytes) = if answer {
            (usize::MAX, usize::MAX)
        } else if tenant.mailboxes_full(message.data.len()) {
            // All the tenant's mailboxes together hold their cap.
            (0, 0)
        } else {
            (limits.mailbox, limits.mailbox_bytes)
        };
        match service.queue.push_bounded(message, max_len, max_bytes) {
            Ok(Push::Ready) => {
                self.scheduler.ready(service.clone());
                Ok(())
            }
            Ok(Push::Queued) => Ok(()),
            Err(Refused::Full(_)) => Err(Refusal::Full(service.clone())),
            Err(Refused::Closed(_)) => {
                *cache = None;
                Err(Refusal::NoService)
            }
        }
    }

    /// Whether a message of `ptype` from an untrusted tenant may reach `dest` of another
    /// tenant: answers to requests it received, and application messages (not debug,
    /// system or forged responses) to a service bound to a name its tenant exports.
    fn may_cross(&self, dest: &Service, answer: bool, ptype: u8) -> bool {
        if !is_request(ptype) {
            return answer;
        }
        let application = matches!(
            u32::from(ptype),
            ptype::TEXT | ptype::CLIENT | ptype::LUA | ptype::SNAX
        ) || u32::from(ptype) > ptype::TRACE;
        let exports = &dest.tenant().spec.export;
        application && !exports.is_empty() && self.handles.has_any_name(dest.handle(), exports)
    }
}
