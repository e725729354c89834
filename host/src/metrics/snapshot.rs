//! One reading of a node, from the host alone: the node's figures, every tenant's usage
//! against its limits, the services worth naming, and the other nodes it talks to. The
//! endpoint and the console's `top`, `tenants` and `stat` read the node through it.
//!
//! A reading walks every service once (its mailbox length and byte count read under its
//! queue's lock), so it costs in proportion to the services (0.65 ms at 10,000, rendered:
//! BENCHMARKS.md), and is taken only when someone looks (the endpoint serves one reading
//! for a second).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use skywasm_abi::Handle;

use crate::monitor::EPOCH_PERIOD;
use crate::service::Service;
use crate::shared::NodeShared;
use crate::tenant::{FaultCause, Kind as _, RefusalKind, Tenant};

/// How far back "recent" busy time reaches when services are ranked by it.
pub const RECENT: Duration = Duration::from_secs(10);

/// Seconds in `ns` nanoseconds of sampled busy time.
pub fn busy_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// What the node as a whole is doing.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    /// Worker threads.
    pub workers: usize,
    /// Workers inside a message now.
    pub workers_busy: usize,
    /// Workers asleep, waiting for work.
    pub workers_sleeping: usize,
    /// Busy time per worker so far, in nanoseconds (the last: the network thread's assist).
    pub worker_busy: Vec<u64>,
    /// Ready service queues waiting for a worker in the global queue.
    pub ready_queues: usize,
    /// Live services.
    pub services: usize,
    /// Timeouts pending in the timer wheel.
    pub timers: usize,
    /// Messages waiting for the logger.
    pub logger_backlog: usize,
    /// Log lines dropped because the logger's backlog was full.
    pub log_dropped: u64,
    /// Open sockets.
    pub sockets: usize,
    /// Bytes all sockets read and wrote so far.
    pub socket_bytes: (u64, u64),
    /// Wasm modules compiled and held.
    pub modules: usize,
    /// Compiles started so far.
    pub compiles: u64,
    /// Upgrades so far, by outcome label.
    pub upgrades: Vec<(&'static str, u64)>,
    /// Seconds since the node started.
    pub uptime: f64,
}

/// What one tenant uses, against its limits (`None`: no limit).
#[derive(Debug, Clone, Default)]
pub struct TenantFigures {
    /// Its name.
    pub name: String,
    /// Whether it is trusted.
    pub trusted: bool,
    /// Live services, and the most it may have.
    pub services: (u64, u64),
    /// Messages delivered to its services so far.
    pub received: u64,
    /// Messages its services sent so far.
    pub sent: u64,
    /// Messages waiting in its mailboxes.
    pub queued: u64,
    /// Bytes waiting in its mailboxes, and its `tenant_mailbox_bytes`.
    pub queued_bytes: (u64, Option<u64>),
    /// The longest mailbox of its services, and the per-service `mailbox` limit.
    pub longest_mailbox: (u64, Option<u64>),
    /// The most bytes waiting in one of its mailboxes, and `mailbox_bytes`.
    pub fullest_mailbox_bytes: (u64, u64),
    /// Busy time of its services so far, in seconds (sampled).
    pub busy_seconds: f64,
    /// Linear memory of its services, and its `tenant_memory`.
    pub memory: (u64, Option<u64>),
    /// The most memory one of its services may have (`memory`).
    pub service_memory_limit: u64,
    /// Open sockets, and `max_sockets`.
    pub sockets: (u64, u64),
    /// Timeouts pending, and `timers`.
    pub timers: (u64, Option<u64>),
    /// Refusals so far, by kind.
    pub refusals: Vec<(&'static str, u64)>,
    /// Faults so far, by cause.
    pub faults: Vec<(&'static str, u64)>,
}

/// One service, as the per-service series and `top` show it.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    /// Its address.
    pub handle: Handle,
    /// Its tenant's name.
    pub tenant: String,
    /// Its module and argument string.
    pub module: String,
    /// Its arguments.
    pub args: String,
    /// Messages waiting in its mailbox, and their bytes.
    pub queue: (u64, u64),
    /// Messages delivered to it so far.
    pub received: u64,
    /// Messages it sent so far.
    pub sent: u64,
    /// Its busy time so far, in seconds (sampled).
    pub busy_seconds: f64,
    /// Its share of one worker over the last [`RECENT`] (sampled), 0 to 1.
    pub busy_share: f64,
    /// Linear memory at the last reading, in bytes.
    pub memory: u64,
}

/// A peer of the cluster, as the node sees it.
#[derive(Debug, Clone)]
pub struct PeerFigures {
    /// Its name in the node table.
    pub name: String,
    /// `connected`, `connecting`, `idle`, `failed` or `closed` (the first word of its
    /// state), or `down` when the node table says so.
    pub state: String,
    /// Calls waiting for their replies.
    pub in_flight: u64,
    /// Bytes written to it and read from it.
    pub bytes: (u64, u64),
    /// Its calls' latencies, once it was called.
    pub latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// A node of the harbor network, as this node sees it.
#[derive(Debug, Clone)]
pub struct HarborPeerFigures {
    /// Its harbor id.
    pub id: u8,
    /// `up`, `down` or `waiting` (not linked yet, messages waiting).
    pub state: &'static str,
    /// Calls to its services waiting for their answers.
    pub in_flight: u64,
    /// Bytes of the frames written to it and read from it.
    pub bytes: (u64, u64),
    /// Its calls' latencies, once one was answered.
    pub latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// A reading of the whole node.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The node's figures.
    pub node: NodeFigures,
    /// Every tenant, the node's own first.
    pub tenants: Vec<TenantFigures>,
    /// The services worth naming: the `top` busiest over the last [`RECENT`] and the `top`
    /// with the longest mailboxes (each ranked, then merged, busiest first).
    pub services: Vec<ServiceFigures>,
    /// The cluster's peers.
    pub cluster: Vec<PeerFigures>,
    /// The harbor's peers, when the node is in a harbor network.
    pub harbor: Option<Vec<HarborPeerFigures>>,
}

/// What [`rank`] orders services by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Busy time over the last [`RECENT`].
    Busy,
    /// Mailbox length.
    Queue,
    /// Linear memory.
    Memory,
}

impl Rank {
    /// `cpu`, `queue` or `memory`.
    pub fn parse(text: &str) -> Option<Rank> {
        match text {
            "cpu" | "busy" => Some(Rank::Busy),
            "queue" | "mqlen" => Some(Rank::Queue),
            "memory" | "mem" => Some(Rank::Memory),
            _ => None,
        }
    }
}

/// Takes a reading of `node`, naming at most `top` services per ranking.
pub fn take(node: &NodeShared, top: usize) -> Snapshot {
    // What ended services left is read before the live ones are listed: a service that
    // ends in between is then counted in neither (a dip the exposition's clamp hides), never
    // in both.
    let ended = ended_counts(node);
    let services = node.router.list();
    let (recent, covered) = node.metrics.recent_busy(RECENT);
    let tenants = tenant_figures(node, &services, &ended);
    let mut named = rank(&services, &recent, covered, Rank::Busy, top, None);
    for figures in rank(&services, &recent, covered, Rank::Queue, top, None) {
        if !named.iter().any(|s| s.handle == figures.handle) {
            named.push(figures);
        }
    }
    let mut latencies = node.cluster.latencies();
    Snapshot {
        node: node_figures(node, services.len()),
        tenants,
        services: named,
        // The nodes of the table only: a name a service called that the table does not
        // know is the guest's choice, and would make series without bound.
        cluster: node
            .cluster
            .status()
            .into_iter()
            .filter(|peer| peer.address != "unknown")
            .map(|peer| PeerFigures {
                state: if peer.address == "down" {
                    "down".to_string()
                } else {
                    let state = peer.state.split([':', ' ']).next().unwrap_or("");
                    state.to_string()
                },
                in_flight: peer.in_flight as u64,
                bytes: (peer.sent, peer.received),
                latency: latencies
                    .iter()
                    .position(|(name, _)| *name == peer.name)
                    .map(|at| latencies.swap_remove(at).1),
                name: peer.name,
            })
            .collect(),
        harbor: node.harbor.as_ref().map(|harbor| {
            harbor
                .traffic()
                .into_iter()
                .map(|traffic| HarborPeerFigures {
                    id: traffic.id,
                    state: match traffic.state {
                        crate::harbor::PeerState::Up => "up",
                        crate::harbor::PeerState::Down => "down",
                        crate::harbor::PeerState::Waiting(_) => "waiting",
                    },
                    in_flight: traffic.in_flight as u64,
                    bytes: traffic.bytes,
                    latency: traffic.latency,
                })
                .collect()
        }),
    }
}

/// The node's own figures.
fn node_figures(node: &NodeShared, services: usize) -> NodeFigures {
    let workers = node.config.thread;
    let logger = node.logger();
    NodeFigures {
        workers,
        workers_busy: (0..workers)
            .filter(|w| node.monitor.running(*w).is_some())
            .count(),
        workers_sleeping: node.scheduler.sleeping(),
        worker_busy: node.metrics.worker_busy(),
        ready_queues: node.scheduler.ready_len(),
        services,
        timers: node.clock.pending(),
        logger_backlog: node.router.service(logger).map_or(0, |s| s.queue_len()),
        log_dropped: node.log_dropped.load(Ordering::Relaxed),
        sockets: node.sockets.len(),
        socket_bytes: node.sockets.bytes(),
        modules: node.modules.loaded(),
        compiles: node.modules.compiles(),
        upgrades: node
            .metrics
            .upgrades
            .counts()
            .map(|(outcome, n)| (outcome.label(), n))
            .collect(),
        // Node time is in skynet's centiseconds.
        uptime: node.clock.now() as f64 / 100.0,
    }
}

/// Messages received and sent by each tenant's ended services, by tenant.
fn ended_counts(node: &NodeShared) -> Vec<(u64, u64)> {
    node.tenants
        .iter()
        .map(|tenant| {
            let activity = &tenant.activity;
            (
                activity.ended_received.load(Ordering::Relaxed),
                activity.ended_sent.load(Ordering::Relaxed),
            )
        })
        .collect()
}

/// Every tenant's figures, its live services' counts added to what its ended ones left
/// (`ended`, by tenant).
fn tenant_figures(
    node: &NodeShared,
    services: &[(Handle, Arc<Service>)],
    ended: &[(u64, u64)],
) -> Vec<TenantFigures> {
    let mut figures: Vec<TenantFigures> = node.tenants.iter().map(|t| limits_of(t)).collect();
    for (_, service) in services {
        let Some(tenant) = figures.get_mut(service.tenant().index) else {
            continue;
        };
        let stats = &service.stats;
        tenant.received += stats.messages.load(Ordering::Relaxed);
        tenant.sent += stats.sent.load(Ordering::Relaxed);
        let (len, bytes) = service.queue.occupancy();
        let (len, bytes) = (len as u64, bytes as u64);
        tenant.queued += len;
        tenant.queued_bytes.0 += bytes;
        tenant.longest_mailbox.0 = tenant.longest_mailbox.0.max(len);
        tenant.fullest_mailbox_bytes.0 = tenant.fullest_mailbox_bytes.0.max(bytes);
        tenant.timers.0 += u64::from(service.pending_timers());
    }
    for ((tenant, figures), (received, sent)) in node.tenants.iter().zip(&mut figures).zip(ended) {
        let activity = &tenant.activity;
        figures.received += received;
        figures.sent += sent;
        let sockets_refused = tenant.sockets.refused();
        figures.refusals = activity
            .refusals
            .counts()
            .map(|(kind, n)| {
                let n = if kind == RefusalKind::Sockets {
                    n + sockets_refused
                } else {
                    n
                };
                (kind.label(), n)
            })
            .collect();
        figures.faults = activity
            .faults
            .counts()
            .map(|(cause, n): (FaultCause, u64)| (cause.label(), n))
            .collect();
    }
    figures
}

/// A tenant's usage read from the tenant itself, with its limits.
fn limits_of(tenant: &Tenant) -> TenantFigures {
    let limits = &tenant.spec.limits;
    let capped_usize = |n: usize| (n != usize::MAX).then_some(n as u64);
    TenantFigures {
        name: tenant.name().to_string(),
        trusted: tenant.is_trusted(),
        services: (
            u64::from(tenant.services.load(Ordering::Acquire)),
            u64::from(limits.services),
        ),
        queued_bytes: (0, capped_usize(limits.tenant_mailbox_bytes)),
        longest_mailbox: (0, capped_usize(limits.mailbox)),
        fullest_mailbox_bytes: (0, limits.mailbox_bytes as u64),
        busy_seconds: busy_seconds(tenant.activity.busy_ns.load(Ordering::Relaxed)),
        memory: (
            tenant.memory.load(Ordering::Relaxed),
            (limits.tenant_memory != u64::MAX).then_some(limits.tenant_memory),
        ),
        service_memory_limit: limits.memory,
        sockets: (
            u64::from(tenant.sockets.open()),
            u64::from(tenant.sockets.limit()),
        ),
        timers: (
            0,
            (limits.timers != u32::MAX).then_some(u64::from(limits.timers)),
        ),
        ..TenantFigures::default()
    }
}

/// The `top` services of `services` by `by`, highest first, leaving out those with
/// nothing to rank by (no recent busy time, an empty mailbox); `only`: of that tenant.
pub fn rank(
    services: &[(Handle, Arc<Service>)],
    recent: &HashMap<Handle, u64>,
    covered: Duration,
    by: Rank,
    top: usize,
    only: Option<&Arc<Tenant>>,
) -> Vec<ServiceFigures> {
    if top == 0 {
        return Vec::new();
    }
    let key = |service: &Service| -> u64 {
        match by {
            Rank::Busy => recent.get(&service.handle()).copied().unwrap_or(0),
            Rank::Queue => service.queue_len() as u64,
            Rank::Memory => service.stats.memory.load(Ordering::Relaxed),
        }
    };
    let mut keyed: Vec<(u64, &Arc<Service>)> = match by {
        // Only the services seen busy lately can rank.
        Rank::Busy => services
            .iter()
            .filter(|(handle, _)| recent.contains_key(handle))
            .map(|(_, s)| (key(s), s))
            .collect(),
        _ => services.iter().map(|(_, s)| (key(s), s)).collect(),
    };
    keyed.retain(|(k, s)| *k > 0 && only.is_none_or(|t| Arc::ptr_eq(s.tenant(), t)));
    if keyed.len() > top {
        keyed.select_nth_unstable_by(top - 1, |a, b| b.0.cmp(&a.0));
        keyed.truncate(top);
    }
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.handle().0.cmp(&b.1.handle().0)));
    let window = covered.as_secs_f64().max(EPOCH_PERIOD.as_secs_f64());
    keyed
        .into_iter()
        .map(|(_, service)| {
            let stats = &service.stats;
            let recent_ns = recent.get(&service.handle()).copied().unwrap_or(0);
            ServiceFigures {
                handle: service.handle(),
                tenant: service.tenant().name().to_string(),
                module: service.module().to_string(),
                args: service.args().to_string(),
                queue: {
                    let (len, bytes) = service.queue.occupancy();
                    (len as u64, bytes as u64)
                },
                received: stats.messages.load(Ordering::Relaxed),
                sent: stats.sent.load(Ordering::Relaxed),
                busy_seconds: busy_seconds(stats.busy_ns.load(Ordering::Relaxed)),
                busy_share: (busy_seconds(recent_ns) / window).min(1.0),
                memory: stats.memory.load(Ordering::Relaxed),
            }
        })
        .collect()
}
