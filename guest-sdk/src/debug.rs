//! The `"debug"` protocol (PTYPE 9) every SDK service answers, as skynet's Lua services do,
//! so consoles and the launcher can inspect Rust services: `PING`, `STAT`, `MEM`, `GC`,
//! `TASK`, `INFO`, `SUPPORT`, `LINK`, `EXIT`.

use std::cell::RefCell;

use skywasm_abi::ptype;
use skywasm_pack::{Table, Value};

use crate::request::{Request, Responder};
use crate::runtime;

type InfoFunc = Box<dyn Fn() -> Vec<Value>>;

thread_local! {
    static INFO: RefCell<Option<InfoFunc>> = const { RefCell::new(None) };
    static LINKS: RefCell<Vec<Responder>> = const { RefCell::new(Vec::new()) };
}

/// Sets the answer of the debug `INFO` command (skynet's `info_func`).
pub fn info_func(f: impl Fn() -> Vec<Value> + 'static) {
    INFO.with(|info| *info.borrow_mut() = Some(Box::new(f)));
}

pub(crate) fn install() {
    crate::dispatch(ptype::DEBUG, |request: Request| async move {
        handle(request);
    });
}

fn stat_number(what: &str) -> Value {
    crate::stat(what)
        .ok()
        .and_then(|s| {
            s.parse::<i64>()
                .map(Value::Integer)
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(Value::Real))
        })
        .unwrap_or(Value::Integer(0))
}

fn memory_bytes() -> usize {
    #[cfg(target_family = "wasm")]
    {
        core::arch::wasm32::memory_size(0) * 65536
    }
    #[cfg(not(target_family = "wasm"))]
    {
        0
    }
}

fn handle(request: Request) {
    let Ok(values) = request.values() else {
        request.fail();
        return;
    };
    let command = values
        .first()
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    let _ = match command.as_str() {
        "PING" => request.ret(&[]),
        "STAT" => {
            let mut table = Table::new();
            table.insert("task", Value::Integer(runtime::suspended_tasks() as i64));
            table.insert("mqlen", stat_number("mqlen"));
            table.insert("cpu", stat_number("cpu"));
            table.insert("message", stat_number("message"));
            request.ret_values(&[Value::Table(table)])
        }
        "MEM" => {
            let bytes = memory_bytes();
            request.ret_values(&[
                Value::Real(bytes as f64 / 1024.0),
                Value::Integer(bytes as i64),
            ])
        }
        "GC" => request.ret(&[]),
        "TASK" => request.ret_values(&[Value::Integer(runtime::suspended_tasks() as i64)]),
        "INFO" => {
            let info = INFO.with(|info| info.borrow().as_ref().map(|f| f()));
            request.ret_values(&info.unwrap_or_default())
        }
        "SUPPORT" => {
            let name = values.get(1).and_then(Value::as_str).unwrap_or("");
            let supported = (0..=ptype::TRACE)
                .find(|id| ptype::name(*id) == Some(name))
                .is_some_and(runtime::has_handler);
            request.ret_values(&[Value::Boolean(supported)])
        }
        "LINK" => {
            // Never answered: the caller learns that this service exited when its call fails.
            LINKS.with(|links| links.borrow_mut().push(request.responder()));
            Ok(())
        }
        "EXIT" => {
            let _ = request.ret(&[]);
            crate::exit();
            Ok(())
        }
        _ => {
            crate::log(&format!("unknown debug command {command:?}"));
            request.fail();
            Ok(())
        }
    };
}
