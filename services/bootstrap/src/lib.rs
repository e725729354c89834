//! `bootstrap`: the first service after the logger (skynet's `service/bootstrap.lua`).
//!
//! Launches the launcher and names it `.launcher`; then `.cslave`: in a harbor network (the
//! config names a `master`, which the node joined before bootstrap) the native `cslave`,
//! else `cdummy`, and a single node sets `standalone = "true"` as skynet does; on a
//! standalone node `DATACENTER` (datacenterd); `.service` (service_mgr); then starts the
//! `start` service (default `main`) through the launcher, logs the outcome, and exits.

use skywasm_guest::{self as sky};

sky::service!(start);

fn start(_args: &str) -> sky::Result<()> {
    let launcher = sky::launch("launcher", "")?;
    sky::name(".launcher", launcher)?;
    let network = sky::getenv("master").is_some();
    if network {
        let slave = sky::launch("cslave", "")?;
        sky::name(".cslave", slave)?;
    } else if sky::getenv("standalone").is_none() {
        sky::setenv("standalone", "true")?;
    }
    sky::fork(async move {
        if !network {
            match sky::newservice("snlua", &["cdummy"]).await {
                Ok(slave) => {
                    if let Err(e) = sky::name(".cslave", slave) {
                        sky::log!("naming .cslave failed: {e}");
                    }
                }
                Err(e) => sky::log!("cdummy failed to launch: {e}"),
            }
        }
        if sky::getenv("standalone").is_some() {
            match sky::newservice("snlua", &["datacenterd"]).await {
                Ok(datacenter) => {
                    if let Err(e) = sky::name("DATACENTER", datacenter) {
                        sky::log!("naming DATACENTER failed: {e}");
                    }
                }
                Err(e) => sky::log!("datacenterd failed to launch: {e}"),
            }
        }
        if let Err(e) = sky::newservice("snlua", &["service_mgr"]).await {
            sky::log!("service_mgr failed to launch: {e}");
        }
        let start = sky::getenv("start").unwrap_or_else(|| "main".to_string());
        let mut words = start.split_whitespace();
        let module = words.next().unwrap_or("main").to_string();
        let args: Vec<&str> = words.collect();
        if let Err(e) = sky::newservice(&module, &args).await {
            sky::log!("start service `{start}` failed to launch: {e}");
        }
        sky::exit();
    });
    Ok(())
}
