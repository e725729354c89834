//! A [`Snapshot`] in the Prometheus text format (0.0.4), written by `prometheus-client`:
//! every metric the node exports is named here, with its help text (docs/operations.md
//! lists them with what to watch).
//!
//! Cardinality is bounded by the node's shape, never by its traffic: node series, a fixed
//! set per tenant (tenants come from the config), per peer (the cluster's node table, the
//! harbor's 255 ids), and per service only for the `metrics_top` busiest and the
//! `metrics_top` longest mailboxes — 100,000 services make no more series than 10.

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::snapshot::{busy_seconds, Snapshot};
use crate::shared::NodeShared;

/// The largest response the endpoint sends; a bigger one (a node table of thousands of
/// peers) is refused with an error rather than built without bound.
pub const MAX_RESPONSE: usize = 8 << 20;

/// Longest label value taken from a service's module and arguments.
const MAX_LABEL: usize = 64;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// The node's metrics in the Prometheus text format.
///
/// # Errors
/// When the text would be larger than [`MAX_RESPONSE`].
pub fn render(node: &NodeShared) -> Result<String, String> {
    let mut snapshot = super::snapshot::take(node, node.config.metrics_top);
    // A service's counts move to its tenant when it ends: never show the moment between.
    for tenant in &mut snapshot.tenants {
        let key = |what: &str| format!("{what}/{}", tenant.name);
        tenant.received = node.metrics.monotonic(&key("received"), tenant.received);
        tenant.sent = node.metrics.monotonic(&key("sent"), tenant.sent);
    }
    let (read, written) = snapshot.node.socket_bytes;
    snapshot.node.socket_bytes = (
        node.metrics.monotonic("socket read", read),
        node.metrics.monotonic("socket written", written),
    );
    let mut registry = Registry::default();
    let timings = &node.scheduler.timings;
    registry.register(
        "skywasm_schedule_delay_seconds",
        "Time a ready service waited in the global queue for a worker (one in 61 sampled)",
        timings.schedule_delay.clone(),
    );
    registry.register(
        "skywasm_dispatch_seconds",
        "Time one message's dispatch took (one in 61 sampled)",
        timings.dispatch.clone(),
    );
    registry.register_collector(Box::new(Exposition(snapshot)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|_| "the metrics could not be written".to_string())?;
    if text.len() > MAX_RESPONSE {
        return Err(format!(
            "the metrics take {} bytes, over the {MAX_RESPONSE} the endpoint sends",
            text.len()
        ));
    }
    Ok(text)
}

/// The collector writing one snapshot.
#[derive(Debug)]
struct Exposition(Snapshot);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let out = &mut encoder;
        node_series(out, &self.0)?;
        tenant_series(out, &self.0)?;
        service_series(out, &self.0)?;
        peer_series(out, &self.0)
    }
}

/// One gauge family: a series per row (no labels: a single series).
fn gauges<T: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, T)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        if labels.is_empty() {
            metric.encode_gauge(&value)?;
        } else {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
    }
    Ok(())
}

/// One counter family (the format adds `_total` to the name).
fn counters<T: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, T)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        if labels.is_empty() {
            metric.encode_counter::<NoLabelSet, _, f64>(&value, None)?;
        } else {
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None)?;
        }
    }
    Ok(())
}

/// A single unlabelled value.
fn one<T>(value: T) -> [(Labels, T); 1] {
    [(Vec::new(), value)]
}

fn node_series(out: &mut DescriptorEncoder, snapshot: &Snapshot) -> Result<(), Error> {
    let node = &snapshot.node;
    gauges(
        out,
        "skywasm_uptime_seconds",
        "Seconds since the node started",
        one(node.uptime),
    )?;
    gauges(out, "skywasm_workers", "Worker threads", one(node.workers))?;
    gauges(
        out,
        "skywasm_workers_busy",
        "Workers inside a message now",
        one(node.workers_busy),
    )?;
    gauges(
        out,
        "skywasm_workers_sleeping",
        "Workers asleep, waiting for work",
        one(node.workers_sleeping),
    )?;
    let last = node.worker_busy.len().saturating_sub(1);
    counters(
        out,
        "skywasm_worker_busy_seconds",
        "Time each worker spent in messages (sampled every 10 ms; `assist`: the network thread)",
        node.worker_busy.iter().enumerate().map(|(i, ns)| {
            let worker = if i == last {
                "assist".to_string()
            } else {
                i.to_string()
            };
            (vec![("worker", worker)], busy_seconds(*ns))
        }),
    )?;
    gauges(
        out,
        "skywasm_ready_queues",
        "Ready service queues waiting in the global queue for a worker",
        one(node.ready_queues),
    )?;
    gauges(out, "skywasm_services", "Live services", one(node.services))?;
    gauges(
        out,
        "skywasm_timers",
        "Timeouts pending in the timer wheel",
        one(node.timers),
    )?;
    gauges(
        out,
        "skywasm_logger_backlog_messages",
        "Log lines waiting for the logger service",
        one(node.logger_backlog),
    )?;
    counters(
        out,
        "skywasm_log_dropped",
        "Log lines dropped because the logger's backlog (log_backlog) was full",
        one(node.log_dropped),
    )?;
    gauges(out, "skywasm_sockets", "Open sockets", one(node.sockets))?;
    counters(
        out,
        "skywasm_socket_read_bytes",
        "Bytes read by the node's sockets",
        one(node.socket_bytes.0),
    )?;
    counters(
        out,
        "skywasm_socket_written_bytes",
        "Bytes written by the node's sockets",
        one(node.socket_bytes.1),
    )?;
    gauges(
        out,
        "skywasm_modules_loaded",
        "Wasm modules compiled and held in the module cache",
        one(node.modules),
    )?;
    counters(
        out,
        "skywasm_module_compiles",
        "Module compiles started (once per change of a module's bytes)",
        one(node.compiles),
    )?;
    counters(
        out,
        "skywasm_upgrades",
        "Hot upgrades by outcome: restored (state handed over), fresh, failed (old code runs on)",
        node.upgrades
            .iter()
            .map(|(outcome, n)| (vec![("outcome", outcome.to_string())], *n)),
    )
}

fn tenant_series(out: &mut DescriptorEncoder, snapshot: &Snapshot) -> Result<(), Error> {
    let tenants = &snapshot.tenants;
    let by_tenant = |name: &str| vec![("tenant", name.to_string())];
    macro_rules! per_tenant {
        ($kind:ident, $name:expr, $help:expr, |$t:ident| $value:expr) => {
            $kind(
                out,
                $name,
                $help,
                tenants.iter().map(|$t| (by_tenant(&$t.name), $value)),
            )?
        };
    }
    macro_rules! per_tenant_limit {
        ($name:expr, $help:expr, |$t:ident| $value:expr) => {
            gauges(
                out,
                $name,
                $help,
                tenants
                    .iter()
                    .filter_map(|$t| $value.map(|v| (by_tenant(&$t.name), v))),
            )?
        };
    }
    per_tenant!(
        gauges,
        "skywasm_tenant_trusted",
        "1 for a trusted tenant",
        |t| u64::from(t.trusted)
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_services",
        "Live services of the tenant",
        |t| t.services.0
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_services_limit",
        "The most live services the tenant may have (services)",
        |t| t.services.1
    );
    per_tenant!(
        counters,
        "skywasm_tenant_messages_received",
        "Messages delivered to the tenant's services",
        |t| t.received
    );
    per_tenant!(
        counters,
        "skywasm_tenant_messages_sent",
        "Messages the tenant's services sent that were taken",
        |t| t.sent
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_queued_messages",
        "Messages waiting in the tenant's mailboxes",
        |t| t.queued
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_queued_bytes",
        "Bytes of the messages waiting in the tenant's mailboxes (bodies and 32 bytes each)",
        |t| t.queued_bytes.0
    );
    per_tenant_limit!(
        "skywasm_tenant_queued_bytes_limit",
        "The most bytes the tenant's mailboxes may hold together (tenant_mailbox_bytes)",
        |t| t.queued_bytes.1
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_mailbox_longest_messages",
        "Messages waiting in the tenant's longest mailbox",
        |t| t.longest_mailbox.0
    );
    per_tenant_limit!(
        "skywasm_tenant_mailbox_limit_messages",
        "The most messages one of the tenant's mailboxes may hold (mailbox)",
        |t| t.longest_mailbox.1
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_mailbox_fullest_bytes",
        "Bytes waiting in the tenant's fullest mailbox",
        |t| t.fullest_mailbox_bytes.0
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_mailbox_limit_bytes",
        "The most bytes one of the tenant's mailboxes may hold (mailbox_bytes)",
        |t| t.fullest_mailbox_bytes.1
    );
    per_tenant!(
        counters,
        "skywasm_tenant_busy_seconds",
        "Time workers spent in the tenant's messages (sampled every 10 ms)",
        |t| t.busy_seconds
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_memory_bytes",
        "Linear memory of the tenant's services",
        |t| t.memory.0
    );
    per_tenant_limit!(
        "skywasm_tenant_memory_limit_bytes",
        "The most linear memory the tenant's services may have together (tenant_memory)",
        |t| t.memory.1
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_service_memory_limit_bytes",
        "The most linear memory one of the tenant's services may have (memory)",
        |t| t.service_memory_limit
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_sockets",
        "Open sockets of the tenant",
        |t| t.sockets.0
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_sockets_limit",
        "The most sockets the tenant may have open (max_sockets)",
        |t| t.sockets.1
    );
    per_tenant!(
        gauges,
        "skywasm_tenant_timers",
        "Timeouts of the tenant's services pending",
        |t| t.timers.0
    );
    per_tenant_limit!(
        "skywasm_tenant_timers_limit",
        "The most timeouts the tenant may have pending (timers)",
        |t| t.timers.1
    );
    counters(
        out,
        "skywasm_tenant_refusals",
        "What the tenant's services asked for and were refused, by kind of limit or rule",
        tenants.iter().flat_map(|t| {
            t.refusals.iter().map(|(kind, n)| {
                (
                    vec![("tenant", t.name.clone()), ("kind", kind.to_string())],
                    *n,
                )
            })
        }),
    )?;
    counters(
        out,
        "skywasm_tenant_faults",
        "Services of the tenant ended by a fault, by cause",
        tenants.iter().flat_map(|t| {
            t.faults.iter().map(|(cause, n)| {
                (
                    vec![("tenant", t.name.clone()), ("cause", cause.to_string())],
                    *n,
                )
            })
        }),
    )
}

fn service_series(out: &mut DescriptorEncoder, snapshot: &Snapshot) -> Result<(), Error> {
    let services = &snapshot.services;
    let labels = |s: &super::snapshot::ServiceFigures| {
        let module = match s.args.split_whitespace().next() {
            Some(first) => format!("{} {first}", s.module),
            None => s.module.clone(),
        };
        vec![
            ("service", format!(":{:08x}", s.handle.0)),
            ("tenant", s.tenant.clone()),
            ("module", crate::log::prefix(&module, MAX_LABEL).to_string()),
        ]
    };
    macro_rules! per_service {
        ($kind:ident, $name:expr, $help:expr, |$s:ident| $value:expr) => {
            $kind(
                out,
                $name,
                $help,
                services.iter().map(|$s| (labels($s), $value)),
            )?
        };
    }
    per_service!(gauges, "skywasm_service_busy_share", "Share of one worker the service took over the last 10 s (sampled; the busiest and longest-queued services only)", |s| s.busy_share);
    per_service!(
        counters,
        "skywasm_service_busy_seconds",
        "Time workers spent in the service's messages (sampled)",
        |s| s.busy_seconds
    );
    per_service!(
        gauges,
        "skywasm_service_queue_messages",
        "Messages waiting in the service's mailbox",
        |s| s.queue.0
    );
    per_service!(
        gauges,
        "skywasm_service_queue_bytes",
        "Bytes waiting in the service's mailbox",
        |s| s.queue.1
    );
    per_service!(
        counters,
        "skywasm_service_messages_received",
        "Messages delivered to the service",
        |s| s.received
    );
    per_service!(
        counters,
        "skywasm_service_messages_sent",
        "Messages the service sent that were taken",
        |s| s.sent
    );
    per_service!(
        gauges,
        "skywasm_service_memory_bytes",
        "The service's linear memory at the last reading",
        |s| s.memory
    );
    Ok(())
}

fn peer_series(out: &mut DescriptorEncoder, snapshot: &Snapshot) -> Result<(), Error> {
    let peers = &snapshot.cluster;
    let by_peer = |name: &str| vec![("peer", name.to_string())];
    gauges(
        out,
        "skywasm_cluster_peer_connected",
        "1 while the cluster connection to the peer is up, with its state",
        peers.iter().map(|p| {
            (
                vec![("peer", p.name.clone()), ("state", p.state.clone())],
                u64::from(p.state == "connected"),
            )
        }),
    )?;
    gauges(
        out,
        "skywasm_cluster_calls_in_flight",
        "Cluster calls to the peer waiting for their replies",
        peers.iter().map(|p| (by_peer(&p.name), p.in_flight)),
    )?;
    counters(
        out,
        "skywasm_cluster_sent_bytes",
        "Bytes written to the peer",
        peers.iter().map(|p| (by_peer(&p.name), p.bytes.0)),
    )?;
    counters(
        out,
        "skywasm_cluster_received_bytes",
        "Bytes read from the peer",
        peers.iter().map(|p| (by_peer(&p.name), p.bytes.1)),
    )?;
    let mut latency = out.encode_descriptor(
        "skywasm_cluster_call_seconds",
        "Time from a cluster call's request written to its reply read",
        None,
        MetricType::Histogram,
    )?;
    for peer in peers {
        if let Some(histogram) = &peer.latency {
            histogram.encode(latency.encode_family(&by_peer(&peer.name))?)?;
        }
    }
    // Described even outside a harbor network, so dashboards find the families.
    let harbor = || snapshot.harbor.iter().flatten();
    let by_id = |id: u8| vec![("peer", id.to_string())];
    gauges(
        out,
        "skywasm_harbor_peer_up",
        "1 while the harbor link to the node is up, with its state",
        harbor().map(|p| {
            (
                vec![("peer", p.id.to_string()), ("state", p.state.to_string())],
                u64::from(p.state == "up"),
            )
        }),
    )?;
    gauges(
        out,
        "skywasm_harbor_calls_in_flight",
        "Calls to the harbor node's services waiting for their answers",
        harbor().map(|p| (by_id(p.id), p.in_flight)),
    )?;
    counters(
        out,
        "skywasm_harbor_sent_bytes",
        "Bytes of the frames written to the harbor node",
        harbor().map(|p| (by_id(p.id), p.bytes.0)),
    )?;
    counters(
        out,
        "skywasm_harbor_received_bytes",
        "Bytes of the frames read from the harbor node",
        harbor().map(|p| (by_id(p.id), p.bytes.1)),
    )?;
    let mut latency = out.encode_descriptor(
        "skywasm_harbor_call_seconds",
        "Time from a call to a harbor node's service leaving to its answer arriving",
        None,
        MetricType::Histogram,
    )?;
    for peer in harbor() {
        if let Some(histogram) = &peer.latency {
            histogram.encode(latency.encode_family(&by_id(peer.id))?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{NodeFigures, ServiceFigures, TenantFigures};
    use skywasm_abi::Handle;

    fn text_of(snapshot: Snapshot) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(snapshot)));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_snapshot_is_written_as_prometheus_text_with_escaped_labels() {
        let snapshot = Snapshot {
            node: NodeFigures {
                workers: 2,
                worker_busy: vec![1_000_000_000, 0, 50_000_000],
                upgrades: vec![("restored", 1), ("failed", 0)],
                ..NodeFigures::default()
            },
            tenants: vec![TenantFigures {
                name: "game".into(),
                services: (3, 1000),
                memory: (4096, Some(1 << 30)),
                refusals: vec![("mailbox_full", 7)],
                ..TenantFigures::default()
            }],
            services: vec![ServiceFigures {
                handle: Handle(0x0100_000a),
                tenant: "game".into(),
                module: "snlua".into(),
                args: "agent \"quoted\"\n x".into(),
                queue: (12, 400),
                received: 99,
                sent: 1,
                busy_seconds: 1.5,
                busy_share: 0.25,
                memory: 1 << 20,
            }],
            cluster: Vec::new(),
            harbor: None,
        };
        let text = text_of(snapshot);
        for line in [
            "skywasm_workers 2",
            "skywasm_worker_busy_seconds_total{worker=\"0\"} 1.0",
            "skywasm_worker_busy_seconds_total{worker=\"assist\"} 0.05",
            "skywasm_upgrades_total{outcome=\"restored\"} 1",
            "skywasm_tenant_services{tenant=\"game\"} 3",
            "skywasm_tenant_memory_limit_bytes{tenant=\"game\"} 1073741824",
            "skywasm_tenant_refusals_total{tenant=\"game\",kind=\"mailbox_full\"} 7",
            "skywasm_service_queue_messages{service=\":0100000a\",tenant=\"game\",module=\"snlua agent\"} 12",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // A limit the tenant does not have is no series at all.
        assert!(!text.contains("skywasm_tenant_timers_limit{"), "{text}");
        assert!(!text.contains("skywasm_harbor_peer_up{"), "{text}");
    }
}
