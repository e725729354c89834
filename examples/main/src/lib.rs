//! The example's `main` service (the config's `start`): launches the Rust `pong` service and
//! the C `echo_c` service through the launcher, calls each of them, shows the launcher's
//! list, and — when the config sets `abort_when_done = true` — stops the node.

use skywasm_guest::{self as sky, ptype, Value};

sky::service!(start);

fn start(_args: &str) -> sky::Result<()> {
    sky::fork(async {
        if let Err(e) = demo().await {
            sky::log!("main: the example failed: {e}");
        }
        if sky::getenv("abort_when_done").as_deref() == Some("true") {
            sky::log!("main: done; abort_when_done = true, so the node stops now");
            sky::abort();
        }
    });
    Ok(())
}

async fn demo() -> sky::Result<()> {
    let pong = sky::newservice("pong", &[]).await?;
    sky::log!("main: launched pong at {pong}");
    for n in 1..=3 {
        let reply = sky::call_values(pong, &[Value::from("PING"), Value::Integer(n)]).await?;
        sky::log!("main: PING {n} -> {}", show(&reply));
    }
    // Calls by name work too; `.pong` was registered by the service itself.
    let reply = sky::call_values(".pong", &[Value::from("PING"), Value::from("by name")]).await?;
    sky::log!("main: PING by name -> {}", show(&reply));

    let echo = sky::newservice("echo_c", &[]).await?;
    sky::log!("main: launched the C service echo_c at {echo}");
    let reply = sky::call(echo, ptype::TEXT, b"hello from rust").await?;
    sky::log!(
        "main: echo_c answered {:?}",
        String::from_utf8_lossy(&reply)
    );

    let list = sky::call_values(".launcher", &[Value::from("LIST")]).await?;
    if let Some(table) = list.first().and_then(Value::as_table) {
        for (address, name) in &table.hash {
            sky::log!(
                "main: running {} {}",
                address.as_str().unwrap_or("?"),
                name.as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

fn show(values: &[Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(_) => format!("{:?}", v.as_str().unwrap_or("")),
            Value::Integer(i) => i.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    parts.join(", ")
}
