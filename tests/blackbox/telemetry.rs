//! Tracing (docs/operations.md, "Tracing"): the host's events in the node's log
//! (`tracing_log`), and its spans exported over OTLP/HTTP (`otlp`) to a collector the test
//! runs, read with OpenTelemetry's own protobuf types — a traced cluster call's spans on
//! both sides in the trace its `skynet.trace` tag stands for.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use sha2::Digest;

use crate::support::*;

/// The Lua config lines of a node running tests/lua/`start`, with `examples/dashboard` on
/// its `luaservice` path too.
fn lua_node(start: &str, extra: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    format!(
        "bootstrap = \"snlua bootstrap\"\nstart = \"{start}\"\n\
         luaservice = \"{lua}/?.lua;{demo}/?.lua\"\n{extra}",
        lua = root.join("tests/lua").display(),
        demo = root.join("examples/dashboard").display(),
    )
}

#[test]
fn the_nodes_log_shows_the_hosts_events_at_its_level() {
    let node = NodeProcess::start(&lua_node("otlp_trace", "tracing_log = \"info\""));
    let line = node.wait_for("INFO launch: launched");
    assert!(
        line.contains("module=snlua") && line.contains("tenant=node"),
        "{line}"
    );
    node.wait_for("TRACED ");
    node.stop();
    // At the default level (warn) the same launches say nothing more than skynet's lines.
    let quiet = NodeProcess::start(&lua_node("otlp_trace", ""));
    quiet.wait_for("TRACED ");
    let log = std::fs::read_to_string(&quiet.log).unwrap();
    assert!(!log.contains("launched"), "{log}");
    quiet.stop();
}

/// A collector of OTLP/HTTP exports on a loopback port: every request body it was sent.
fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut path = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if path.is_empty() {
                    path = line.clone();
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() && path.starts_with("POST /v1/traces ") {
                kept.lock().unwrap().push(body);
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (address, bodies)
}

#[test]
fn spans_are_exported_over_otlp_and_a_traced_call_is_one_trace_on_both_sides() {
    let (address, bodies) = collector();
    let node = NodeProcess::start(&lua_node(
        "otlp_trace",
        &format!("otlp = \"{address}\"\notlp_service = \"skywasm-test\""),
    ));
    let line = node.wait_for("TRACED ");
    let tag = line
        .split("TRACED ")
        .nth(1)
        .and_then(|rest| rest.rsplit_once(' '))
        .map(|(tag, _)| tag.to_string())
        .expect("the tag is logged");
    // SIGTERM: the node stops and sends what it still batches.
    node.stop();
    let (spans, services) = exported(&bodies);
    assert!(
        services.iter().all(|s| s.contains("skywasm-test")) && !services.is_empty(),
        "{services:?}"
    );
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    assert!(
        named("launch").len() >= 3,
        "launch spans: {:?}",
        names(&spans)
    );
    let call = named("cluster_call");
    let serve = named("cluster_serve");
    assert_eq!(call.len(), 1, "{:?}", names(&spans));
    assert!(!serve.is_empty(), "{:?}", names(&spans));
    let expected = sha2::Sha256::digest(tag.as_bytes())[..16].to_vec();
    assert_eq!(call[0].trace_id, expected, "the call's trace is its tag's");
    assert!(
        serve.iter().any(|s| s.trace_id == expected),
        "the served side is in the same trace: {serve:?} tag {tag:?}"
    );
    assert!(call[0].end_time_unix_nano > call[0].start_time_unix_nano);
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// The spans in every export the collector got, and the `service.name`s they came with.
fn exported(bodies: &Mutex<Vec<Vec<u8>>>) -> (Vec<Span>, Vec<String>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut services = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            for attribute in resource.resource.iter().flat_map(|r| r.attributes.iter()) {
                if attribute.key == "service.name" {
                    services.push(format!("{:?}", attribute.value));
                }
            }
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    (spans, services)
}

/// A call to a service of another harbor node is a `harbor_call` span, with its outcome.
#[test]
fn a_call_to_another_harbor_node_is_a_span_with_its_outcome() {
    let (address, bodies) = collector();
    let master = free_address();
    let first = NodeProcess::start(&lua_node(
        "harbor_otlp master",
        &harbor_lines(1, &master, true),
    ));
    first.wait_for("HARBOR ECHO READY");
    let second = NodeProcess::start(&lua_node(
        "harbor_otlp slave",
        &format!("{}otlp = \"{address}\"", harbor_lines(2, &master, false)),
    ));
    let line = second.wait_for("HARBOR CALLED ");
    assert!(line.contains("HARBOR CALLED PING"), "{line}");
    second.stop();
    first.stop();
    let (spans, _) = exported(&bodies);
    let calls: Vec<&Span> = spans.iter().filter(|s| s.name == "harbor_call").collect();
    assert!(!calls.is_empty(), "{:?}", names(&spans));
    let outcome = |span: &Span| {
        span.attributes
            .iter()
            .find(|a| a.key == "outcome")
            .map(|a| format!("{:?}", a.value))
            .unwrap_or_default()
    };
    assert!(
        calls.iter().any(|s| outcome(s).contains("\"ok\"")),
        "{:?}",
        calls.iter().map(|s| outcome(s)).collect::<Vec<_>>()
    );
}
