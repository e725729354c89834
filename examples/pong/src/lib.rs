//! `pong`: answers `PING n` (the `"lua"` protocol) with `PONG, n, count` where count is how
//! many pings it has answered. Registers `.pong`.

use std::cell::Cell;

use skywasm_guest::{self as sky, ptype, Request, Value};

sky::service!(start);

thread_local! {
    static ANSWERED: Cell<i64> = const { Cell::new(0) };
}

fn start(_args: &str) -> sky::Result<()> {
    sky::register(".pong")?;
    sky::dispatch(ptype::LUA, |request: Request| async move {
        let values = request.values().unwrap_or_default();
        match values.first().and_then(Value::as_str) {
            Some("PING") => {
                let count = ANSWERED.with(|c| {
                    c.set(c.get() + 1);
                    c.get()
                });
                let n = values.get(1).cloned().unwrap_or(Value::Nil);
                let _ = request.ret_values(&[Value::from("PONG"), n, Value::Integer(count)]);
            }
            _ => request.fail(),
        }
    });
    Ok(())
}
