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

use skywasm_abi::{ptype, Handle, HostError};

use crate::handle::{HandleError, HandleTable, NameCaps};
use crate::mq::{Message, Push, Refused};
use crate::scheduler::Scheduler;
use crate::service::{is_request, Service};
use crate::sync::lock_plain;
use crate::tenant::Tenant;

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

/// Where messages for the addresses of other nodes go (harbor: the high 8 bits of an
/// address name its node). Set once, when the node joins a harbor network.
pub(crate) trait Remote: Send + Sync {
    /// Sends `message` to `dest` on another node, or queues it until that node is linked:
    /// charged to `payer`'s tenant while it waits, when one sends it.
    ///
    /// # Errors
    /// The message, when `dest`'s node is known to be down (or cannot take it).
    fn forward(
        &self,
        dest: Handle,
        message: Message,
        payer: Option<&Tenant>,
    ) -> Result<(), Message>;
}

/// Why a service's send was refused.
pub(crate) enum Refusal {
    /// No live local service at the address.
    NoService,
    /// An untrusted tenant's message to a service of another tenant it may not reach.
    Denied(Arc<Service>),
    /// The destination's mailbox, or its tenant's mailboxes together, are full.
    Full(Arc<Service>),
    /// An untrusted tenant's message to another harbor node, which its tenant may not
    /// reach (capability `harbor`).
    Remote,
}

impl Refusal {
    /// The error a guest sees.
    pub(crate) fn error(&self) -> HostError {
        match self {
            Refusal::NoService => HostError::InvalidAddress,
            Refusal::Denied(_) => HostError::Denied,
            Refusal::Full(_) => HostError::MailboxFull,
            Refusal::Remote => HostError::Denied,
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
    /// Where other nodes' addresses go, once the node joined a harbor network.
    remote: std::sync::OnceLock<Arc<dyn Remote>>,
}

impl Router {
    /// A router for node `harbor` whose ready services go to `scheduler`.
    pub(crate) fn new(harbor: u8, scheduler: Arc<Scheduler>) -> Router {
        Router {
            handles: HandleTable::new(harbor),
            scheduler,
            gateway_for: AtomicU32::new(0),
            gateway: Mutex::new(None),
            remote: std::sync::OnceLock::new(),
        }
    }

    /// Sends other nodes' addresses to `remote` from now on (the first call wins).
    pub(crate) fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// The way to `dest` when it is another node's address and this node is linked to others.
    fn remote_for(&self, dest: Handle) -> Option<&Arc<dyn Remote>> {
        if dest.is_none() || dest.harbor() == self.harbor() {
            return None;
        }
        self.remote.get()
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
    /// [`HostError::UnknownName`] for an unbound name, [`HostError::InvalidArgument`] for bad text.
    pub fn resolve(&self, name: &str) -> Result<Handle, HostError> {
        self.resolve_in(crate::handle::SHARED_SCOPE, name)
    }

    /// Resolves a name as seen from name space `scope` (a tenant's
    /// [`crate::tenant::Tenant::name_scope`]): its own names first, then the shared ones.
    ///
    /// # Errors
    /// As [`Router::resolve`].
    pub fn resolve_in(&self, scope: usize, name: &str) -> Result<Handle, HostError> {
        if name.starts_with(':') {
            return Handle::parse(name).ok_or(HostError::InvalidArgument);
        }
        self.handles
            .find_name_in(scope, name)
            .ok_or(HostError::UnknownName)
    }

    /// Queues a message for a local service, without limits (the host's own messages).
    ///
    /// # Errors
    /// The message comes back when the destination is not a live local service.
    pub fn push(&self, dest: Handle, message: Message) -> Result<(), Message> {
        self.push_cached(dest, message, &mut None)
    }

    /// Answers `requester`'s request `session` with an empty PTYPE_ERROR from `on_behalf`
    /// (a service that will not answer it: ended, replaced, refusing); dropped when the
    /// requester is gone too.
    pub(crate) fn answer_error(&self, requester: Handle, on_behalf: Handle, session: i32) {
        self.answer_error_saying(requester, on_behalf, session, "");
    }

    /// [`Router::answer_error`] with `why` as the error's body (Lua raises `call failed:
    /// why`): a call the host fails for a service elsewhere (a remote node, a link down).
    pub(crate) fn answer_error_saying(
        &self,
        requester: Handle,
        on_behalf: Handle,
        session: i32,
        why: &str,
    ) {
        let error = Message {
            source: on_behalf,
            session,
            ptype: ptype::ERROR as u8,
            data: why.as_bytes().into(),
        };
        let _ = self.push(requester, error);
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
            return match self.remote_for(dest) {
                Some(remote) => remote.forward(dest, message, None),
                None => Err(message),
            };
        };
        match service.queue.push(message) {
            Ok(push) => {
                self.wake_if_ready(service, push);
                Ok(())
            }
            Err(message) => {
                *cache = None;
                Err(message)
            }
        }
    }

    /// Hands `service` to the scheduler when `push` made its idle mailbox ready.
    fn wake_if_ready(&self, service: &Arc<Service>, push: Push) {
        if push == Push::Ready {
            self.scheduler.ready(service.clone());
        }
    }

    /// Queues a host message for `dest` while its mailbox holds less than `max_bytes`
    /// (the logger's backlog).
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
        let push = service.queue.push_bounded(message, usize::MAX, max_bytes)?;
        self.wake_if_ready(&service, push);
        Ok(())
    }

    /// Queues a host message for `dest` whatever its mailbox holds (socket data: the
    /// socket pauses instead), and says how many bytes the mailbox holds with it.
    /// `None` when `dest` is not a live local service.
    pub(crate) fn push_measured(
        &self,
        dest: Handle,
        message: Message,
    ) -> Option<(Arc<Service>, usize)> {
        let service = self.cached_service(dest, &mut None).cloned()?;
        let (push, held) = service.queue.push_measured(message).ok()?;
        self.wake_if_ready(&service, push);
        Some((service, held))
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
            return self.push_remote_from(sender, answer, dest, message);
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
        } else if tenant.mailboxes_full(message.footprint()) {
            // All the tenant's mailboxes together hold their cap.
            (0, 0)
        } else {
            (limits.mailbox, limits.mailbox_bytes)
        };
        match service.queue.push_bounded(message, max_len, max_bytes) {
            Ok(push) => {
                self.wake_if_ready(service, push);
                Ok(())
            }
            Err(Refused::Full(_)) => Err(Refusal::Full(service.clone())),
            Err(Refused::Closed(_)) => {
                *cache = None;
                Err(Refusal::NoService)
            }
        }
    }

    /// [`Router::push_from`] for an address that is not local: to another node when this
    /// one is linked to others and the sender's tenant may reach them (answers always may).
    fn push_remote_from(
        &self,
        sender: &Service,
        answer: bool,
        dest: Handle,
        message: Message,
    ) -> Result<(), Refusal> {
        let Some(remote) = self.remote_for(dest) else {
            return Err(Refusal::NoService);
        };
        if !answer && !sender.tenant().spec.capabilities.harbor {
            return Err(Refusal::Remote);
        }
        // An answer is the caller's due: it waits in the node's room, as it is never refused
        // for a full mailbox either.
        let payer = (!answer).then(|| sender.tenant().as_ref());
        remote
            .forward(dest, message, payer)
            .map_err(|_| Refusal::NoService)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{tenants_from_specs, Tenants};

    /// A router on harbor 1 with the tenants of `config` (Lua config text).
    fn router_with(config: &str) -> (Router, Tenants) {
        let config = crate::config::NodeConfig::from_source("t", config).expect("config");
        let scheduler = Arc::new(Scheduler::new(1, &[crate::mq::UNCAPPED; 4]));
        (
            Router::new(1, scheduler),
            tenants_from_specs(config.tenants),
        )
    }

    /// A running service of tenant `name` (its queue no longer held by an init).
    fn service(router: &Router, tenants: &Tenants, name: &str) -> Arc<Service> {
        let tenant = tenants.get(name).expect("tenant").clone();
        let (_, service) = router
            .register(|h| Arc::new(Service::new(h, "test", "", tenant)))
            .expect("a handle");
        service.queue.release_hold();
        service
    }

    fn lua(source: Handle) -> Message {
        Message {
            source,
            session: 0,
            ptype: ptype::LUA as u8,
            data: b"hello".to_vec().into(),
        }
    }

    #[test]
    fn a_send_is_queued_and_makes_its_service_ready_once() {
        let (router, tenants) = router_with("harbor = 1");
        let (a, b) = (
            service(&router, &tenants, "node"),
            service(&router, &tenants, "node"),
        );
        let mut cache = None;
        for _ in 0..2 {
            let sent = router.push_from(&a, false, b.handle(), lua(a.handle()), &mut cache);
            assert!(sent.is_ok());
        }
        assert_eq!(b.queue_len(), 2);
        assert_eq!(
            router.scheduler.ready_len(),
            1,
            "ready once, not per message"
        );
        assert!(
            cache.is_some_and(|s| Arc::ptr_eq(&s, &b)),
            "the destination is cached"
        );
    }

    #[test]
    fn dead_unknown_and_remote_addresses_are_no_service() {
        let (router, tenants) = router_with("harbor = 1");
        let a = service(&router, &tenants, "node");
        let b = service(&router, &tenants, "node");
        router.retire(b.handle());
        let remote = Handle(0x0200_0001);
        for dest in [b.handle(), Handle(0x0100_0fff), remote, Handle::NONE] {
            let sent = router.push_from(&a, false, dest, lua(a.handle()), &mut None);
            assert!(matches!(sent, Err(Refusal::NoService)), "{dest}");
        }
        assert!(router.push(remote, lua(a.handle())).is_err());
    }

    #[test]
    fn an_untrusted_tenant_crosses_only_into_exported_names_and_with_answers() {
        let (router, tenants) =
            router_with("harbor = 1\ntenants = { u = {}, s = { export = { '.open' } } }");
        let attacker = service(&router, &tenants, "u");
        let target = service(&router, &tenants, "s");
        let to_target = |ptype: u8, answer: bool| {
            let message = Message {
                ptype,
                ..lua(attacker.handle())
            };
            router.push_from(&attacker, answer, target.handle(), message, &mut None)
        };
        assert!(matches!(
            to_target(ptype::LUA as u8, false),
            Err(Refusal::Denied(_))
        ));
        router.bind_name(".open", target.handle()).unwrap();
        assert!(
            to_target(ptype::LUA as u8, false).is_ok(),
            "an exported name"
        );
        let system = ptype::SYSTEM as u8;
        assert!(
            matches!(to_target(system, false), Err(Refusal::Denied(_))),
            "not an application message"
        );
        let response = ptype::RESPONSE as u8;
        assert!(matches!(
            to_target(response, false),
            Err(Refusal::Denied(_))
        ));
        assert!(to_target(response, true).is_ok(), "an answer it owes");
        // Trusted senders and the tenant's own services are not asked.
        let node = service(&router, &tenants, "node");
        let own = service(&router, &tenants, "u");
        for sender in [&node, &own] {
            let sent =
                router.push_from(sender, false, own.handle(), lua(sender.handle()), &mut None);
            assert!(sent.is_ok());
        }
    }

    #[test]
    fn a_full_mailbox_refuses_sends_but_never_answers() {
        let (router, tenants) = router_with("harbor = 1\ntenants = { s = { mailbox = 1 } }");
        let sender = service(&router, &tenants, "node");
        let full = service(&router, &tenants, "s");
        let send = |answer| {
            router.push_from(
                &sender,
                answer,
                full.handle(),
                lua(sender.handle()),
                &mut None,
            )
        };
        assert!(send(false).is_ok());
        assert!(matches!(send(false), Err(Refusal::Full(_))));
        assert!(send(true).is_ok(), "an answer passes a full mailbox");
        assert_eq!(full.queue_len(), 2);
        assert_eq!(Refusal::NoService.error(), HostError::InvalidAddress);
    }

    /// Takes Lua messages, hands back the rest.
    struct TakesLua(std::sync::atomic::AtomicUsize);

    impl Gateway for TakesLua {
        fn serve(&self, message: Message) -> Result<(), Message> {
            if message.ptype != ptype::LUA as u8 {
                return Err(message);
            }
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn a_gateway_serves_its_services_messages_until_detached() {
        let (router, tenants) = router_with("harbor = 1");
        let sender = service(&router, &tenants, "node");
        let served = service(&router, &tenants, "node");
        let other = service(&router, &tenants, "node");
        let gateway = Arc::new(TakesLua(Default::default()));
        router.attach_gateway(served.handle(), gateway.clone());
        let send = |dest: &Service, ptype: u8| {
            let message = Message {
                ptype,
                ..lua(sender.handle())
            };
            router.push_from(&sender, false, dest.handle(), message, &mut None)
        };
        assert!(send(&served, ptype::LUA as u8).is_ok());
        assert!(send(&served, ptype::TEXT as u8).is_ok());
        assert!(send(&other, ptype::LUA as u8).is_ok());
        assert_eq!(gateway.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!((served.queue_len(), other.queue_len()), (1, 1));
        router.detach_gateway(other.handle());
        router.detach_gateway(served.handle());
        assert!(send(&served, ptype::LUA as u8).is_ok());
        assert_eq!(served.queue_len(), 2, "queued once the gateway is gone");
    }

    #[test]
    fn names_resolve_in_a_tenants_scope_then_the_shared_one() {
        let (router, tenants) = router_with("harbor = 1\ntenants = { u = {} }");
        let shared = service(&router, &tenants, "node");
        router.bind_name(".shared", shared.handle()).unwrap();
        let scope = tenants.get("u").unwrap().name_scope();
        assert_eq!(router.resolve_in(scope, ".shared"), Ok(shared.handle()));
        assert_eq!(router.resolve(".nobody"), Err(HostError::UnknownName));
        assert_eq!(router.resolve(":0100000a"), Ok(Handle(0x0100_000a)));
        assert_eq!(router.resolve(":zz"), Err(HostError::InvalidArgument));
    }

    /// Records what it is given for other nodes; refuses node 3 (down).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Handle, Message)>>);

    impl Remote for Recorder {
        fn forward(
            &self,
            dest: Handle,
            message: Message,
            _payer: Option<&Tenant>,
        ) -> Result<(), Message> {
            if dest.harbor() == 3 {
                return Err(message);
            }
            lock_plain(&self.0).push((dest, message));
            Ok(())
        }
    }

    #[test]
    fn other_nodes_addresses_go_to_the_remote_under_the_harbor_capability() {
        let (router, tenants) =
            router_with("harbor = 1\ntenants = { u = {}, h = { harbor = true } }");
        let (node, untrusted, crosser) = (
            service(&router, &tenants, "node"),
            service(&router, &tenants, "u"),
            service(&router, &tenants, "h"),
        );
        let far = Handle::from_parts(2, 7);
        let send = |from: &Service, answer: bool, dest: Handle| {
            router.push_from(from, answer, dest, lua(from.handle()), &mut None)
        };
        assert!(
            matches!(send(&node, false, far), Err(Refusal::NoService)),
            "no remote yet"
        );
        let remote = Arc::new(Recorder::default());
        router.set_remote(remote.clone());
        assert!(send(&node, false, far).is_ok());
        assert!(matches!(send(&untrusted, false, far), Err(Refusal::Remote)));
        assert_eq!(Refusal::Remote.error(), HostError::Denied);
        assert!(send(&untrusted, true, far).is_ok(), "answers pass");
        assert!(
            send(&crosser, false, far).is_ok(),
            "the capability allows it"
        );
        assert!(matches!(
            send(&node, false, Handle::from_parts(3, 1)),
            Err(Refusal::NoService)
        ));
        assert!(
            router.push(far, lua(Handle::NONE)).is_ok(),
            "host messages too"
        );
        let dead = Handle::from_parts(1, 0xfff);
        assert!(matches!(send(&node, false, dead), Err(Refusal::NoService)));
        let seen: Vec<Handle> = lock_plain(&remote.0).iter().map(|(d, _)| *d).collect();
        assert_eq!(seen, vec![far; 4], "this node's own addresses never go out");
    }
}
