//! The Prometheus endpoint (`metrics`, docs/operations.md) over real HTTP on loopback, read
//! with a Prometheus text-format parser: counters move with traffic, a tenant at its cap
//! shows it, 10,000 services make no more series than a few, and slow or malformed
//! clients neither hang it nor reach past it; untrusted tenants cannot connect to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value as Metric};
use skywasm::abi_constants::ptype;
use skywasm::service::{Behavior, ServiceCore};
use skywasm_pack::Value;

use crate::support::*;

/// The endpoint's address (the node was started with `metrics = "127.0.0.1:0"`).
fn endpoint(t: &TestNode) -> SocketAddr {
    t.node
        .handle()
        .metrics_address()
        .expect("the endpoint listens")
}

/// `GET /metrics` with a real HTTP client, parsed.
fn scrape(address: SocketAddr) -> Scrape {
    let mut response = ureq::get(&format!("http://{address}/metrics"))
        .call()
        .expect("the endpoint answers");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.body_mut().read_to_string().expect("a text body");
    parse_metrics(&text)
}

/// The value of the series `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series(scrape, name, labels).map(|sample| match &sample.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        Metric::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Metric::Summary(_) => f64::NAN,
    })
}

fn node_value(scrape: &Scrape, name: &str) -> f64 {
    value(scrape, name, &[]).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn counters_move_with_traffic_and_the_node_is_described() {
    let mut t = start("metrics = \"127.0.0.1:0\"");
    let address = endpoint(&t);
    t.wait_log(&format!("metrics: serving http://{address}/metrics"));
    let echo = t.launch("echo", "");
    let before = scrape(address);
    let received = |s: &Scrape| {
        value(
            s,
            "skywasm_tenant_messages_received_total",
            &[("tenant", "node")],
        )
    };
    let sent = |s: &Scrape| {
        value(
            s,
            "skywasm_tenant_messages_sent_total",
            &[("tenant", "node")],
        )
    };
    let (received_before, sent_before) = (received(&before).unwrap(), sent(&before).unwrap());
    let calls = 300;
    for n in 0..calls {
        let body = format!("ping {n}");
        let reply = t
            .client
            .call(echo, ptype::TEXT, body.as_bytes(), WAIT)
            .expect("echo answers");
        assert_eq!(reply, body.as_bytes());
    }
    // The endpoint serves a reading again for a second.
    std::thread::sleep(Duration::from_millis(1100));
    let after = scrape(address);
    assert!(
        received(&after).unwrap() >= received_before + f64::from(calls),
        "{:?} -> {:?}",
        received(&before),
        received(&after)
    );
    assert!(sent(&after).unwrap() >= sent_before + f64::from(calls));
    // One message in 61 is timed: the 600 messages of 300 calls, at least 9 times.
    let timed = |s: &Scrape| match series(s, "skywasm_dispatch_seconds", &[]).map(|x| &x.value) {
        Some(Metric::Histogram(buckets)) => buckets.last().map_or(0.0, |b| b.count),
        other => panic!("not a histogram: {other:?}"),
    };
    assert!(
        timed(&after) >= timed(&before) + 9.0,
        "{} -> {}",
        timed(&before),
        timed(&after)
    );
    assert!(series(&after, "skywasm_schedule_delay_seconds", &[]).is_some());
    assert_eq!(node_value(&after, "skywasm_workers"), 2.0);
    assert!(
        node_value(&after, "skywasm_services") >= 4.0,
        "logger, bootstrap, launcher, echo..."
    );
    assert!(node_value(&after, "skywasm_modules_loaded") >= 1.0);
    assert!(node_value(&after, "skywasm_uptime_seconds") >= 0.0);
    for name in [
        "skywasm_ready_queues",
        "skywasm_timers",
        "skywasm_logger_backlog_messages",
        "skywasm_sockets",
        "skywasm_socket_read_bytes_total",
        "skywasm_workers_sleeping",
    ] {
        node_value(&after, name);
    }
    assert_eq!(
        value(&after, "skywasm_tenant_trusted", &[("tenant", "node")]),
        Some(1.0)
    );
    assert_eq!(
        value(&after, "skywasm_upgrades_total", &[("outcome", "failed")]),
        Some(0.0)
    );
    // Every family has its help text.
    for sample in &after.samples {
        let family = ["_total", "_sum", "_count", "_bucket"]
            .iter()
            .fold(sample.metric.as_str(), |name, suffix| {
                name.trim_end_matches(suffix)
            });
        assert!(
            after.docs.contains_key(&sample.metric) || after.docs.contains_key(family),
            "no HELP for {}",
            sample.metric
        );
    }
}

#[test]
fn a_tenant_at_its_memory_cap_and_a_full_mailbox_show_in_its_series() {
    let t = start_lua(
        r#"metrics = "127.0.0.1:0"
tenants = {
    tight = { trusted = true, tenant_memory = "24M", mailbox = 5 },
}"#,
    );
    let address = endpoint(&t);
    let shared = t.node.handle();
    let hog = shared.launch_in("tight", "snlua", "memory_hog").unwrap();
    let mut client = skywasm::client::Client::new(&shared).unwrap();
    let grow = skywasm_pack::pack(&[s("GROW"), i(64)]).unwrap();
    // 64 MiB do not fit in 24M: the growth is refused (the Lua error may cost the answer).
    let _ = client.call(hog, ptype::LUA, &grow, WAIT);
    // A slow service of the tenant with more waiting than its mailbox takes from services
    // (the host's own pushes are not capped), and a service sending it more.
    let victim = shared.launch_in("tight", "snlua", "bounds_victim").unwrap();
    let slow = skywasm_pack::pack(&[s("SLOW")]).unwrap();
    for _ in 0..20 {
        client.send(victim, ptype::LUA, &slow).unwrap();
    }
    let sender = t.launch("snlua", "bounds_sender");
    let fill = skywasm_pack::pack(&[s("FILL"), h(victim)]).unwrap();
    let took = client.call(sender, ptype::LUA, &fill, WAIT).unwrap();
    let took = skywasm_pack::unpack(&took).unwrap();
    assert!(took[0].as_integer().unwrap() < 20, "{took:?}");
    let scraped = scrape(address);
    let tenant = [("tenant", "tight")];
    let memory = value(&scraped, "skywasm_tenant_memory_bytes", &tenant).unwrap();
    let limit = value(&scraped, "skywasm_tenant_memory_limit_bytes", &tenant).unwrap();
    assert_eq!(limit, f64::from(24u32 << 20));
    assert!(memory > 0.0 && memory <= limit, "{memory} of {limit}");
    let refused = |kind: &str| {
        value(
            &scraped,
            "skywasm_tenant_refusals_total",
            &[("tenant", "tight"), ("kind", kind)],
        )
        .unwrap()
    };
    assert!(refused("memory") >= 1.0, "memory refusals not counted");
    assert!(
        refused("mailbox_full") >= 1.0,
        "mailbox refusals not counted"
    );
    assert_eq!(refused("timers"), 0.0);
    assert_eq!(
        value(&scraped, "skywasm_tenant_mailbox_limit_messages", &tenant),
        Some(5.0)
    );
    assert!(value(&scraped, "skywasm_tenant_mailbox_longest_messages", &tenant).unwrap() >= 1.0);
    let faults: f64 = scraped
        .samples
        .iter()
        .filter(|s| {
            s.metric == "skywasm_tenant_faults_total" && s.labels.get("tenant") == Some("tight")
        })
        .filter_map(|s| match s.value {
            Metric::Counter(v) => Some(v),
            _ => None,
        })
        .sum();
    let live = value(&scraped, "skywasm_tenant_services", &tenant).unwrap();
    assert_eq!(live + faults, 2.0, "{}", t.log_text());
    // The node's own tenant has no such cap: no limit series for it.
    assert!(value(
        &scraped,
        "skywasm_tenant_memory_limit_bytes",
        &[("tenant", "node")]
    )
    .is_none());
}

/// A native service whose every message keeps its worker 20 ms: busy enough to be sampled
/// and to queue what it is sent.
struct Sluggish(ServiceCore);

impl Behavior for Sluggish {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.0
    }

    fn dispatch(&mut self, _message: skywasm::mq::Message) -> Result<(), skywasm::service::Fault> {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
}

/// A native service that does nothing with its messages.
struct Idle(ServiceCore);

impl Behavior for Idle {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.0
    }

    fn dispatch(&mut self, _message: skywasm::mq::Message) -> Result<(), skywasm::service::Fault> {
        Ok(())
    }
}

#[test]
fn ten_thousand_services_make_series_for_the_top_few_only() {
    // Native services: the node tenant's count is `wasm_max_services`; the wasm pool stays
    // as small as every test node's (`wasm_fast_services`), so that the tests running beside
    // this one keep their share of the address space.
    let t = start(
        "metrics = \"127.0.0.1:0\"\nmetrics_top = 5\nthread = 4\n\
         wasm_max_services = 20000\nwasm_fast_services = 200",
    );
    let address = endpoint(&t);
    let shared = t.node.handle();
    shared.add_native("idle", |core, _| Ok(Box::new(Idle(core))));
    shared.add_native("sluggish", |core, _| Ok(Box::new(Sluggish(core))));
    let idle: Vec<_> = (0..10_000)
        .map(|_| shared.launch("idle", "").expect("an idle service"))
        .collect();
    let sluggish: Vec<_> = (0..12)
        .map(|_| shared.launch("sluggish", "").expect("a sluggish service"))
        .collect();
    let client = skywasm::client::Client::new(&shared).unwrap();
    for handle in &idle {
        client.send(*handle, ptype::TEXT, b"hello").unwrap();
    }
    for (n, handle) in sluggish.iter().enumerate() {
        for _ in 0..(5 + n) {
            client.send(*handle, ptype::TEXT, b"work").unwrap();
        }
    }
    // Busy samples come every 10 ms: wait until the monitor has seen the sluggish ones.
    let deadline = Instant::now() + WAIT;
    let scraped = loop {
        let scraped = scrape(address);
        let busy_named = scraped
            .samples
            .iter()
            .filter(|s| s.metric == "skywasm_service_busy_share")
            .filter(|s| matches!(s.value, Metric::Gauge(v) if v > 0.0))
            .count();
        if busy_named >= 3 {
            break scraped;
        }
        assert!(
            Instant::now() < deadline,
            "the monitor never saw the sluggish services busy"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let services: std::collections::BTreeSet<&str> = scraped
        .samples
        .iter()
        .filter_map(|s| s.labels.get("service"))
        .collect();
    assert!(
        !services.is_empty() && services.len() <= 10,
        "{} services named (metrics_top = 5: at most 5 busiest and 5 longest queues)",
        services.len()
    );
    assert!(
        scraped.samples.len() < 400,
        "{} series for 10,000 services",
        scraped.samples.len()
    );
    assert!(node_value(&scraped, "skywasm_services") >= 10_012.0);
    // The sluggish ones are among those named: busy, and with the longest mailboxes.
    let sluggish_named = sluggish
        .iter()
        .filter(|h| services.contains(format!(":{:08x}", h.0).as_str()))
        .count();
    assert!(sluggish_named >= 3, "{services:?}");
}

/// Sends `request` on a fresh connection; what the endpoint answered before closing (or
/// timing out).
fn raw(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_and_malformed_clients_get_nothing_and_hold_nothing() {
    let t = start("metrics = \"127.0.0.1:0\"");
    let address = endpoint(&t);
    // Connections that never finish their request: more than the endpoint serves at once.
    let stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
            stream
        })
        .collect();
    // The endpoint lets them go after its head timeout, and serves again.
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = raw(
            address,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if answer.starts_with("HTTP/1.1 200") {
            assert!(answer.contains("skywasm_services "), "{answer}");
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stalled);
    let close = "Host: x\r\nConnection: close\r\n\r\n";
    let answer = raw(
        address,
        format!("GET /secrets HTTP/1.1\r\n{close}").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let answer = raw(
        address,
        format!("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n{close}abc").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("allow: GET, HEAD"), "{answer}");
    let answer = raw(
        address,
        format!("HEAD /metrics HTTP/1.1\r\n{close}").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.contains("skywasm_services"),
        "a HEAD answer has no body: {answer}"
    );
    // Garbage, and a head past the limit: an error status or a closed connection.
    let answer = raw(address, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let answer = raw(address, huge.as_bytes());
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // And it still serves.
    assert!(node_value(&scrape(address), "skywasm_services") >= 1.0);
}

#[test]
fn an_untrusted_tenant_cannot_connect_to_the_endpoint_even_naming_its_host() {
    let mut t = start_lua(
        r#"metrics = "127.0.0.1:0"
tenants = { named = { sockets = true, connect = { "127.0.0.1:*", "localhost:*" } } }"#,
    );
    let address = endpoint(&t);
    let port = i64::from(address.port());
    let prober = t
        .node
        .handle()
        .launch_in("named", "snlua", "bounds_connect")
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let reply = t.ask(prober, &[s("OPEN"), s(host), i(port)]);
        assert_eq!(reply[0], Value::Boolean(false), "{host}: {reply:?}");
    }
    t.wait_log("the node's metrics endpoint is not for untrusted tenants");
    // The node's own services may (a sidecar exporter, a health check).
    let trusted = t.launch("snlua", "bounds_connect");
    let reply = t.ask(trusted, &[s("OPEN"), s("127.0.0.1"), i(port)]);
    assert_eq!(reply[0], Value::Boolean(true), "{reply:?}");
}

#[test]
fn a_node_whose_metrics_address_is_taken_does_not_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let text = config_text(
        dir.path(),
        &format!("metrics = \"{}\"", taken.local_addr().unwrap()),
    );
    std::fs::write(&path, text).unwrap();
    let config = skywasm::config::NodeConfig::load(&path).unwrap();
    let error = skywasm::Node::start(config)
        .err()
        .expect("the node does not start");
    assert!(
        error
            .to_string()
            .starts_with("cannot serve metrics at 127.0.0.1:"),
        "{error}"
    );
}

/// Every metric the Grafana dashboard's queries name (docs/grafana/skywasm-node.json) is one
/// the node exports: its family is described on `/metrics` (a histogram's `_bucket`,
/// `_sum` and `_count` series included).
#[test]
fn the_dashboard_names_only_metrics_the_node_exports() {
    let t = start("metrics = \"127.0.0.1:0\"");
    let scraped = scrape(endpoint(&t));
    let mut exported: std::collections::BTreeSet<String> = scraped.docs.keys().cloned().collect();
    let text = t.node.handle().metrics_text().unwrap();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" histogram"))
        {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        }
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/skywasm-node.json");
    let source = std::fs::read_to_string(&path).expect("the dashboard is in the repository");
    let dashboard: serde_json::Value = serde_json::from_str(&source).expect("valid JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("a query").to_string());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"].as_str() {
            queries.push(query.to_string());
        }
    }
    assert!(queries.len() > 20, "{} queries", queries.len());
    let mut named = 0;
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("skywasm_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                exported.contains(&name),
                "the dashboard queries `{name}`, which the node does not export ({query})"
            );
            named += 1;
            rest = &rest[at + name.len()..];
        }
    }
    assert!(
        named >= queries.len(),
        "{named} metric names in {} queries",
        queries.len()
    );
}
