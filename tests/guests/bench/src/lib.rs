//! `bench`: the services the benchmarks run. The first argument picks the role:
//!
//! * `echo` — answers every TEXT or LUA request with an empty reply (the callee).
//! * `pinger` — on `("run", target, n)` makes `n` sequential TEXT calls to `target`, then
//!   answers with the elapsed nanoseconds.
//! * `sender` — on `("flood", target, n)` sends `n` one-way TEXT messages to `target`.
//! * `sink` — counts TEXT messages; `("expect", n)` is answered once `n` have arrived.
//! * `spawner` — on `("spawn", n[, module, args])` launches `n` services (default `bench
//!   idle`) with the LAUNCH command and answers with the elapsed nanoseconds and the
//!   handles' range.
//! * `idle` — does nothing but answer requests (memory per idle service).

use std::cell::{Cell, RefCell};

use skywasm_guest::{self as sky, ptype, Handle, Request, Responder, Value};

sky::service!(start);

thread_local! {
    static RECEIVED: Cell<i64> = const { Cell::new(0) };
    static EXPECT: RefCell<Option<(i64, Responder)>> = const { RefCell::new(None) };
}

fn start(args: &str) -> sky::Result<()> {
    match args.split_whitespace().next().unwrap_or("idle") {
        "echo" | "idle" => {
            sky::dispatch(ptype::TEXT, |r: Request| async move {
                let _ = r.ret(&[]);
            });
            sky::dispatch(ptype::LUA, |r: Request| async move {
                let _ = r.ret(&[]);
            });
        }
        "pinger" => sky::dispatch(ptype::LUA, |r: Request| async move { pinger(r).await }),
        "sender" => sky::dispatch(ptype::LUA, |r: Request| async move { sender(r) }),
        "sink" => {
            sky::dispatch(ptype::TEXT, |_r: Request| async move {
                let n = RECEIVED.with(|c| {
                    c.set(c.get() + 1);
                    c.get()
                });
                check_expectation(n);
            });
            sky::dispatch(ptype::LUA, |r: Request| async move {
                let values = r.values().unwrap_or_default();
                let n = values.get(1).and_then(Value::as_integer).unwrap_or(0);
                EXPECT.with(|e| *e.borrow_mut() = Some((n, r.responder())));
                check_expectation(RECEIVED.with(Cell::get));
            });
        }
        "spawner" => sky::dispatch(ptype::LUA, |r: Request| async move { spawner(r) }),
        other => return Err(sky::Error::Other(format!("unknown bench role {other}"))),
    }
    Ok(())
}

fn check_expectation(received: i64) {
    let done = EXPECT.with(|e| {
        let ready = matches!(&*e.borrow(), Some((n, _)) if received >= *n);
        if ready {
            e.borrow_mut().take()
        } else {
            None
        }
    });
    if let Some((_, responder)) = done {
        RECEIVED.with(|c| c.set(0));
        let _ = responder.ret(&[]);
    }
}

fn target_and_count(values: &[Value]) -> (Handle, i64) {
    let target = Handle(values.get(1).and_then(Value::as_integer).unwrap_or(0) as u32);
    let n = values.get(2).and_then(Value::as_integer).unwrap_or(0);
    (target, n)
}

async fn pinger(request: Request) {
    let values = request.values().unwrap_or_default();
    let (target, n) = target_and_count(&values);
    let started = sky::hpc();
    for _ in 0..n {
        if sky::call(target, ptype::TEXT, &[]).await.is_err() {
            return request.fail();
        }
    }
    let elapsed = sky::hpc() - started;
    let _ = request.ret_values(&[Value::Integer(elapsed as i64)]);
}

fn sender(request: Request) {
    let values = request.values().unwrap_or_default();
    let (target, n) = target_and_count(&values);
    for _ in 0..n {
        if sky::send(target, ptype::TEXT, &[]).is_err() {
            return request.fail();
        }
    }
    let _ = request.ret(&[]);
}

fn spawner(request: Request) {
    let values = request.values().unwrap_or_default();
    let n = values.get(1).and_then(Value::as_integer).unwrap_or(0);
    let module = values.get(2).and_then(Value::as_str).unwrap_or("bench");
    let args = values.get(3).and_then(Value::as_str).unwrap_or("idle");
    let started = sky::hpc();
    let mut first = 0u32;
    let mut last = 0u32;
    for i in 0..n {
        match sky::launch(module, args) {
            Ok(h) => {
                if i == 0 {
                    first = h.0;
                }
                last = h.0;
            }
            Err(e) => {
                sky::log!("spawn {i} failed: {e}");
                return request.fail();
            }
        }
    }
    let elapsed = sky::hpc() - started;
    let _ = request.ret_values(&[
        Value::Integer(elapsed as i64),
        Value::Integer(first as i64),
        Value::Integer(last as i64),
    ]);
}
