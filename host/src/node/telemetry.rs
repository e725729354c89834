//! Tracing for the `skywasm` binary and embedders: the node's log as one subscriber of the
//! host's `tracing` events ([`LogLayer`]; skynet's line format stays), and the opt-in export
//! of the host's spans to an OpenTelemetry collector over OTLP/HTTP ([`Otlp`], `otlp`).
//!
//! The host's spans: `launch` (a service's launch and init, nested as launches nest),
//! `start` (a deferred init on a worker), `upgrade`, `cluster_call` (a call to another node,
//! from its request written to its reply read), `cluster_serve` (a request from another
//! node, from its arrival to its answer) and `harbor_call` (a call to a service of another
//! harbor node, until its answer). A call traced with `skynet.trace` carries its tag
//! to the other node (skynet's cluster protocol does); both sides make the tag's trace id
//! the parent of their span, so a collector shows the call's spans on every node as one
//! trace. Faults are `fault` events.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use skywasm_abi::Handle;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::NodeHandle;

/// A `tracing` layer that writes the host's events (targets under `skywasm`) at `level` or
/// more severe to a node's log, as host lines: `[:00000000] WARN launch: text key=value`.
/// It may be installed before the node starts; it writes once [`LogLayer::attach`] names
/// the node (earlier events go to the other layers only).
#[derive(Clone)]
pub struct LogLayer {
    node: Arc<OnceLock<NodeHandle>>,
    events: Targets,
}

/// The host's own events and spans (targets under `skywasm`) at `level` or more severe.
fn host_events(level: Level) -> Targets {
    Targets::new().with_target("skywasm", level)
}

impl LogLayer {
    /// A layer for events at `level` or more severe (`tracing_log`).
    pub fn new(level: Level) -> LogLayer {
        LogLayer {
            node: Arc::new(OnceLock::new()),
            events: host_events(level),
        }
    }

    /// What the layer takes, as a per-layer filter (`layer.with_filter(layer.filter())`):
    /// with every layer filtered for itself, a span no layer wants is never built.
    pub fn filter(&self) -> Targets {
        self.events.clone()
    }

    /// From now on, events go to `node`'s log.
    pub fn attach(&self, node: NodeHandle) {
        let _ = self.node.set(node);
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let metadata = event.metadata();
        if !self
            .events
            .would_enable(metadata.target(), metadata.level())
        {
            return;
        }
        let Some(node) = self.node.get() else {
            return;
        };
        let mut line = metadata.level().to_string();
        if let Some(scope) = context.event_scope(event) {
            let names: Vec<&str> = scope.from_root().map(|span| span.name()).collect();
            if !names.is_empty() {
                line.push(' ');
                line.push_str(&names.join(" > "));
                line.push(':');
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.push(' ');
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        // The node cuts host lines past its limit, saying how long they were.
        node.log(Handle::NONE, &line);
    }
}

/// An event's fields as text: its message, then ` key=value` for the others.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push_str(&format!(" {}={value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// The OTLP export of the host's spans while it lives (`otlp`); [`Otlp::shutdown`] sends
/// what is still batched.
pub struct Otlp {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Otlp {
    /// A layer exporting the host's spans (targets under `skywasm`, `info` and more
    /// severe) to the OTLP/HTTP collector at `endpoint` (`http://host:4318`: they are posted
    /// to `/v1/traces`), as `service.name` = `service`; spans are batched and sent by a
    /// thread of the SDK's, so no span waits for the network.
    ///
    /// # Errors
    /// When the exporter cannot be built (a malformed endpoint).
    pub fn layer<S>(endpoint: &str, service: &str) -> Result<(impl Layer<S>, Otlp), String>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(BlockingClient::default())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()
            .map_err(|e| format!("cannot export spans to {endpoint}: {e}"))?;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service.to_string())
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("skywasm"))
            .with_filter(host_events(Level::INFO));
        Ok((layer, Otlp { provider }))
    }

    /// Sends the spans still batched and stops the export.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// The exporter's HTTP client: ureq, blocking, on the SDK's export thread (which runs
/// the export to completion there), so no async runtime is needed for it. Plain HTTP.
#[derive(Debug)]
struct BlockingClient(ureq::Agent);

impl Default for BlockingClient {
    fn default() -> BlockingClient {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        BlockingClient(config.into())
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let request = ureq::http::Request::from_parts(parts, body.to_vec());
        let response = self.0.run(request)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.with_config().limit(1 << 20).read_to_vec()?;
        Ok(opentelemetry_http::Response::from_parts(
            parts,
            opentelemetry_http::Bytes::from(bytes),
        ))
    }
}
