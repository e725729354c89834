//! The `skywasm` binary: `skywasm CONFIG` runs a node in the foreground until a service calls
//! ABORT or the process gets SIGINT/SIGTERM. SIGHUP reopens the log file and reloads the
//! cluster's node table (when the cluster is in use and the config names one).
//!
//! Exit status: 0 after a clean stop; 1 when the node could not start or stopped on a fatal
//! host error; 2 when the stop had to abandon services still running after the grace
//! period (`skywasm::node::STOP_GRACE`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use skywasm::config::NodeConfig;
use skywasm::node::{LogLayer, Node, Otlp};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// A skynet-style actor host in which every service is a WebAssembly sandbox.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The node's config file (skynet's format: Lua assignments, `include`, `$ENV`).
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("skywasm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The process's tracing subscriber: stderr (`RUST_LOG`, `warn` by default), the node's log
/// (`tracing_log`) and, with `otlp`, the export of the host's spans.
fn init_tracing(config: &NodeConfig) -> anyhow::Result<(Option<LogLayer>, Option<Otlp>)> {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let log = config.tracing_log.map(LogLayer::new);
    // Each layer filters for itself, so a span no layer wants (every `info` span, with the
    // defaults) is never built.
    let log_filter = log.as_ref().map(LogLayer::filter);
    let (otlp_layer, otlp) = match &config.otlp {
        Some(endpoint) => {
            let (layer, otlp) =
                Otlp::layer(endpoint, &config.otlp_service).map_err(anyhow::Error::msg)?;
            (Some(layer), Some(otlp))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(log.clone().with_filter(log_filter))
        .with(otlp_layer)
        .init();
    Ok((log, otlp))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let config = NodeConfig::load(&cli.config)?;
    let (log, otlp) = init_tracing(&config)?;
    let mut node = Node::start(config)?;
    if let Some(log) = &log {
        log.attach(node.handle());
    }
    let mut signals = Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let shared = node.handle().clone();
    let listener = std::thread::Builder::new()
        .name("skywasm-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => {
                        shared.reopen_log();
                        shared.reload_cluster();
                    }
                    _ => {
                        shared.log(skywasm::Handle::NONE, &format!("signal {signal}: stopping"));
                        shared.request_stop();
                    }
                }
            }
        })?;
    node.wait();
    let report = node.stop();
    handle.close();
    let _ = listener.join();
    if let Some(otlp) = &otlp {
        otlp.shutdown();
    }
    if let Some(why) = &report.failure {
        eprintln!("skywasm: stopped on a fatal error: {why}");
    }
    Ok(report.exit_code())
}
