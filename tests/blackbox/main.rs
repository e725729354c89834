//! Black-box tests: real nodes started from config files, real wasm services, and the real
//! `skywasm` binary. One test binary with a module per topic.

mod support;

mod abi;
mod bounds;
mod cli;
mod cluster;
mod console;
mod guests;
mod harbor;
mod harbor_interop;
mod hostile;
mod launcher;
mod lifecycle;
mod lua;
mod messaging;
mod metrics;
mod mongo_peer;
mod names_env;
mod network;
mod protocols;
mod redis_cluster;
mod servers;
mod skynet_libs;
mod skynet_tests;
mod telemetry;
mod tenants;
mod timers;
mod upgrade;
