//! skywasm: a skynet-style actor host in which every service is a WebAssembly sandbox.
//!
//! A node is one process full of services. Each service has a 32-bit address, a mailbox and
//! one wasm instance (or, for a few built-ins such as the logger, native code); worker threads
//! take ready mailboxes from a global queue and deliver one message at a time; services talk
//! by `send` and `call` through the host ABI (`docs/abi.md`).
//!
//! # The public API
//! - [`Node`] starts a node from a [`config::NodeConfig`] and stops it; [`NodeHandle`]
//!   (from [`Node::handle`]) launches, kills, signals and upgrades services, looks them up
//!   and reads what they and the tenants use.
//! - [`client::Client`]: an outside thread's own address, to send, call and be called.
//! - [`service`]: what a native service implements ([`service::Behavior`]) and uses
//!   ([`service::ServiceCore`]), for [`NodeHandle::add_native`] and
//!   [`NodeHandle::launch_with`]; [`lifecycle`]: why a launch failed, upgrade requests.
//! - The pure cores [`handle`], [`mq`] and [`timer`] (benchmarked on their own).
//!
//! Everything else is the crate's own (`docs/architecture.md` has the picture).
//!
//! # Layout
//! One concern per module, named after skynet's own files:
//!
//! | module | concern | skynet |
//! | --- | --- | --- |
//! | `config` | the Lua config file, the env | `skynet_main.c`, `skynet_env.c` |
//! | `handle` | addresses and names | `skynet_handle.c` |
//! | `mq` | service queues and the global queue | `skynet_mq.c` |
//! | `timer` | the timer wheel (pure) | `skynet_timer.c` |
//! | `clock` | node time, the timer thread | `skynet_timer.c` |
//! | `scheduler` | workers, weights, sleep/wake | `skynet_start.c`, `skynet_server.c` |
//! | `monitor` | endless-loop watch, wasm epoch | `skynet_monitor.c` |
//! | `service` | a service, its core (send/call) | `skynet_server.c` |
//! | `command` | the skynet command set | `skynet_server.c` `cmd_funcs` |
//! | `router` | addresses, names, where a message goes | `skynet_handle.c`, `skynet_server.c` (`skynet_send`) |
//! | `node` | bring-up, threads, shutdown; `NodeHandle` | `skynet_start.c` |
//! | `shared` | the state every thread shares, the env, host log lines | `skynet_server.c`, `skynet_env.c` |
//! | `lifecycle` | launch, init, end, signal, upgrade, finalize; the work word | `skynet_server.c` |
//! | `module` | engine, compiled modules, natives | `skynet_module.c` |
//! | `wasm` | a wasm service instance, WASI | `service_snlua.c` (the host side) |
//! | `abi` | the host functions guests import | `lua-skynet.c` |
//! | `log` | the logger service, message logs | `service_logger.c`, `skynet_log.c` |
//! | `socket` | TCP sockets on tokio, events to owners | `socket_server.c`, `skynet_socket.c` |
//! | `cluster` | nodes calling each other in skynet's cluster format | `lua-cluster.c`, `clusterd.lua` |
//! | `harbor` | nodes sharing one address space, master and slaves | `cmaster.lua`, `cslave.lua`, `service_harbor.c` |
//! | `client` | outside threads sending and calling | — |
//! | `tenant` | tenants: limits, capabilities, quotas | — |
//! | `metrics` | what operators watch: readings, the Prometheus endpoint | — |
//! | `held` | values services share, alive while held | — |
//! | `stm` | skynet.stm's objects, held once by the host | `lua-stm.c` |
//! | `share` | skynet.sharetable's tables, held once by the host | `lua-sharetable.c` |
//!
//! `mq`, `handle` and `timer` depend on neither wasmtime nor an async runtime; which module
//! may import which is in docs/architecture.md ("Layers"), checked by a unit test.
//!
//! # Example
//! ```no_run
//! use skywasm::{config::NodeConfig, Node};
//! let config = NodeConfig::load(std::path::Path::new("examples/config"))?;
//! let node = Node::start(config)?;
//! node.wait(); // until a service calls ABORT
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod abi;
pub(crate) mod builtin;
pub mod client;
pub(crate) mod clock;
pub(crate) mod cluster;
pub(crate) mod command;
pub mod config;
pub mod handle;
pub(crate) mod harbor;
pub(crate) mod held;
#[cfg(test)]
mod layering;
pub mod lifecycle;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod module;
pub(crate) mod monitor;
pub mod mq;
pub mod node;
pub(crate) mod preinit;
pub(crate) mod router;
pub(crate) mod scheduler;
pub mod service;
pub(crate) mod share;
pub(crate) mod shared;
pub(crate) mod socket;
pub(crate) mod source;
pub(crate) mod stm;
mod sync;
pub(crate) mod tenant;
pub mod timer;
pub(crate) mod wasm;

pub use node::{Node, NodeHandle};
pub use skywasm_abi as abi_constants;
pub use skywasm_abi::Handle;
