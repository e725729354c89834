//! The worker loop on a host of its own: real workers, a real scheduler and real services
//! (queues and work words), but no node — no wasm, no router, no logger. The host records
//! what the workers asked of it, so each test states the order of what happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skywasm_abi::Handle;

use super::{run_worker, Host, Scheduler};
use crate::lifecycle::work::Bits;
use crate::mq::{Message, Push, UNCAPPED};
use crate::service::{Behavior, Fault, Service, ServiceCore};
use crate::tenant::Tenant;

/// What happened, in the order the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A message with this session reached the service's behaviour.
    Dispatched(Handle, i32),
    /// A signal reached it.
    Signal(Handle, i32),
    /// Its deferred init ran.
    Started(Handle),
    /// An upgrade ran.
    Upgraded(Handle),
    /// It faulted.
    Fault(Handle),
    /// It was finalized.
    Finalized(Handle),
}

type Events = Arc<Mutex<Vec<Event>>>;

/// A behaviour that records its messages and signals: session 13 faults, session 66
/// panics, session 7 asks an upgrade of its own service.
struct Recorder {
    service: std::sync::Weak<Service>,
    events: Events,
}

impl Behavior for Recorder {
    fn core(&mut self) -> &mut ServiceCore {
        unreachable!("this test's host never asks a behaviour for its core")
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        let service = self.record(|handle| Event::Dispatched(handle, message.session));
        match message.session {
            13 => Err(Fault::Native("asked to fault".into())),
            66 => panic!("asked to panic"),
            7 => {
                // Held by this worker: asking finds the queue held, nothing to schedule.
                assert!(!service.ask(Bits::UPGRADE));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn signal(&mut self, signal: i32) -> Result<(), Fault> {
        self.record(|handle| Event::Signal(handle, signal));
        Ok(())
    }
}

impl Recorder {
    /// Records what reached its service; the service.
    fn record(&self, event: impl FnOnce(Handle) -> Event) -> Arc<Service> {
        let service = self
            .service
            .upgrade()
            .expect("the service outlives its behaviour");
        self.events.lock().unwrap().push(event(service.handle()));
        service
    }
}

/// The node's side, recorded.
struct TestHost {
    scheduler: Scheduler,
    events: Events,
}

impl TestHost {
    fn new(workers: usize) -> TestHost {
        TestHost {
            scheduler: Scheduler::new(workers, &[UNCAPPED]),
            events: Events::default(),
        }
    }

    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    /// A service whose behaviour is in place and whose queue is no longer held (as after a
    /// launch on the launching thread).
    fn launched(&self, tenant: &Arc<Tenant>, handle: u32) -> Arc<Service> {
        let service = self.held(tenant, handle);
        self.install(&service);
        if service.queue.release_hold() {
            self.scheduler.ready(service.clone());
        }
        service
    }

    /// A new service, its queue held as during its init.
    fn held(&self, tenant: &Arc<Tenant>, handle: u32) -> Arc<Service> {
        Arc::new(Service::new(Handle(handle), "m", "", tenant.clone()))
    }

    fn install(&self, service: &Arc<Service>) {
        *service.instance() = Some(Box::new(Recorder {
            service: Arc::downgrade(service),
            events: self.events.clone(),
        }));
    }

    /// Sends a message with `session` to `service`, as the router does.
    fn send(&self, service: &Arc<Service>, session: i32) {
        let message = Message::empty(Handle(99), 0, session);
        if service.queue.push(message) == Ok(Push::Ready) {
            self.scheduler.ready(service.clone());
        }
    }

    /// Ends `service` from outside, as `KILL` does.
    fn kill(&self, service: &Arc<Service>) {
        if service.mark_dead() && service.queue.schedule() {
            self.scheduler.ready(service.clone());
        }
    }

    /// Waits (generously bounded) until the events satisfy `done`, and returns them.
    fn wait_for(&self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events.lock().unwrap().clone();
            if done(&events) || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Host for TestHost {
    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn network_assist(&self) -> bool {
        false
    }

    fn profile(&self) -> bool {
        false
    }

    fn enter(&self, _worker: usize, _source: Handle, _dest: Handle) {}

    fn leave(&self, _worker: usize) {}

    fn log(&self, _source: Handle, _text: &str) {}

    fn fault(&self, service: &Service, _fault: &Fault, _what: &str) {
        service.mark_dead();
        self.record(Event::Fault(service.handle()));
    }

    fn finalize(&self, service: &Arc<Service>) {
        if service.mark_finalized() {
            // A behaviour that panicked poisoned the lock; the slot is emptied all the same.
            let mut slot = service.instance();
            drop(slot.take());
            drop(slot);
            service.queue.close();
            self.record(Event::Finalized(service.handle()));
        }
    }

    fn fail(&self, why: &str) {
        panic!("the test host failed: {why}");
    }

    fn start_deferred(&self, service: &Arc<Service>) {
        service.take_work(Bits::START);
        self.install(service);
        self.record(Event::Started(service.handle()));
    }

    fn upgrade(&self, service: &Arc<Service>) {
        service.take_work(Bits::UPGRADE);
        self.record(Event::Upgraded(service.handle()));
    }

    fn admit(&self, _behavior: &mut dyn Behavior, _message: &Message, _: Option<u64>) -> bool {
        true
    }

    fn record_message(&self, _service: &Service, _message: &Message) {}

    fn around_dispatch<R>(&self, dispatch: impl FnOnce() -> R) -> R {
        dispatch()
    }
}

/// Runs `workers` workers on `host` while `body` runs, then stops them.
fn with_workers(host: &TestHost, workers: usize, body: impl FnOnce()) {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers)
            .map(|index| scope.spawn(move || run_worker(host, index)))
            .collect();
        body();
        host.scheduler.stop();
        for thread in threads {
            thread
                .join()
                .expect("a worker panicked outside any service");
        }
    });
}

fn node_tenant() -> Arc<Tenant> {
    let config = crate::config::NodeConfig::from_source("t", "").unwrap();
    crate::tenant::tenants_from_specs(config.tenants)
        .node()
        .clone()
}

/// The events of one service.
fn of(events: &[Event], handle: u32) -> Vec<Event> {
    let handle = Handle(handle);
    events
        .iter()
        .filter(|event| match event {
            Event::Dispatched(h, _) | Event::Signal(h, _) => *h == handle,
            Event::Started(h) | Event::Upgraded(h) | Event::Fault(h) | Event::Finalized(h) => {
                *h == handle
            }
        })
        .cloned()
        .collect()
}

#[test]
fn each_service_gets_its_messages_once_and_in_order_across_two_workers() {
    let tenant = node_tenant();
    let host = TestHost::new(2);
    with_workers(&host, 2, || {
        let services: Vec<_> = (1..=3).map(|h| host.launched(&tenant, h)).collect();
        for session in 100..300 {
            for service in &services {
                host.send(service, session);
            }
        }
        host.wait_for(|events| events.len() == 600);
    });
    let events = host.events.lock().unwrap().clone();
    for handle in 1..=3 {
        let expected: Vec<_> = (100..300)
            .map(|session| Event::Dispatched(Handle(handle), session))
            .collect();
        assert_eq!(of(&events, handle), expected, "service {handle}");
    }
}

#[test]
fn a_deferred_init_runs_before_the_messages_that_waited_for_it() {
    let tenant = node_tenant();
    let host = TestHost::new(1);
    with_workers(&host, 1, || {
        let service = host.held(&tenant, 1);
        // Sent during the hold: they wait, however long the init takes to come.
        host.send(&service, 1);
        host.send(&service, 2);
        assert!(!service.ask(Bits::START), "a new queue is held");
        host.scheduler.ready(service);
        host.wait_for(|events| events.len() == 3);
    });
    let h = Handle(1);
    assert_eq!(
        *host.events.lock().unwrap(),
        [
            Event::Started(h),
            Event::Dispatched(h, 1),
            Event::Dispatched(h, 2)
        ]
    );
}

#[test]
fn signals_and_upgrades_come_between_messages_never_inside_one() {
    let tenant = node_tenant();
    let host = TestHost::new(1);
    let h = Handle(1);
    with_workers(&host, 1, || {
        let service = host.launched(&tenant, 1);
        // Message 7 asks for an upgrade of its own service while it runs.
        host.send(&service, 7);
        host.send(&service, 8);
        host.wait_for(|events| events.len() == 3);
        // A signal to an idle service schedules it.
        if service.ask_signal(5) {
            host.scheduler.ready(service.clone());
        }
        host.wait_for(|events| events.len() == 4);
    });
    assert_eq!(
        *host.events.lock().unwrap(),
        [
            Event::Dispatched(h, 7),
            Event::Upgraded(h),
            Event::Dispatched(h, 8),
            Event::Signal(h, 5),
        ]
    );
}

#[test]
fn a_fault_or_a_panic_ends_only_its_own_service_and_a_kill_finalizes_once() {
    let tenant = node_tenant();
    let host = TestHost::new(1);
    let done = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Finalized(_)))
            .count()
    };
    with_workers(&host, 1, || {
        let faulty = host.launched(&tenant, 1);
        let panicky = host.launched(&tenant, 2);
        let calm = host.launched(&tenant, 3);
        for session in [12, 13, 14] {
            host.send(&faulty, session);
        }
        for session in [65, 66, 67] {
            host.send(&panicky, session);
        }
        host.send(&calm, 1);
        host.wait_for(|events| done(events) == 2 && events.len() >= 9);
        host.send(&calm, 2);
        host.kill(&calm);
        host.kill(&calm);
        host.wait_for(|events| done(events) == 3);
        // Sends to an ended service are refused by its closed queue.
        assert!(calm.queue.push(Message::empty(Handle(99), 0, 3)).is_err());
    });
    let events = host.events.lock().unwrap().clone();
    let (f, p) = (Handle(1), Handle(2));
    assert_eq!(
        of(&events, 1),
        [
            Event::Dispatched(f, 12),
            Event::Dispatched(f, 13),
            Event::Fault(f),
            Event::Finalized(f)
        ]
    );
    assert_eq!(
        of(&events, 2),
        [
            Event::Dispatched(p, 65),
            Event::Dispatched(p, 66),
            Event::Fault(p),
            Event::Finalized(p)
        ]
    );
    let calm = of(&events, 3);
    assert_eq!(calm.first(), Some(&Event::Dispatched(Handle(3), 1)));
    assert_eq!(calm.last(), Some(&Event::Finalized(Handle(3))));
    assert_eq!(done(&calm), 1, "finalized more than once: {calm:?}");
}
