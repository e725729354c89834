//! `.launcher`: launches services for `newservice` and keeps the list of them (skynet's
//! `service/launcher.lua`, speaking the same `"lua"` protocol).
//!
//! Commands: `LAUNCH module args...` (answers with the new address once the service has
//! started: at once for wasm modules, whose init is their start; after `LAUNCHOK` for
//! `snlua` services), `LOGLAUNCH` (the same with `LOGON`), `LAUNCHOK`/`ERROR` (a Lua service
//! reports its start), `REMOVE address kill` (a service exited; the host sends it for every
//! exit), `LIST`, `STAT`, `MEM`, `GC`, `KILL address`, `QUERY session`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use skywasm_guest::{self as sky, ptype, Handle, Request, Responder, Table, Value};

sky::service!(start);

/// Modules whose start runs after their init and confirms with `LAUNCHOK`.
const CONFIRMING_MODULES: &[&str] = &["snlua"];

#[derive(Default)]
struct Launcher {
    /// Every service launched through us that has not exited: address → "module args".
    services: BTreeMap<Handle, String>,
    /// Launches waiting for `LAUNCHOK`: the answer to the `LAUNCH` request.
    waiting: HashMap<Handle, Responder>,
    /// Session of the `LAUNCH` request of each waiting launch (for `QUERY`).
    launch_session: HashMap<Handle, i32>,
}

thread_local! {
    static STATE: RefCell<Launcher> = RefCell::new(Launcher::default());
}

fn start(_args: &str) -> sky::Result<()> {
    sky::dispatch(ptype::LUA, |request: Request| async move {
        handle(request).await;
    });
    // Historical text protocol of C services: "" = LAUNCHOK, "ERROR" = ERROR.
    sky::dispatch(ptype::TEXT, |request: Request| async move {
        match request.text().as_ref() {
            "" => confirmed(request.source(), true),
            "ERROR" => confirmed(request.source(), false),
            other => sky::log!("Invalid text command {other}"),
        }
        request.ignore();
    });
    Ok(())
}

fn address_text(handle: Handle) -> Value {
    Value::from(handle.to_string())
}

fn handle_arg(value: Option<&Value>) -> Option<Handle> {
    match value? {
        Value::String(_) => Handle::parse(value?.as_str()?),
        other => other.as_integer().map(|h| Handle(h as u32)),
    }
}

/// True when `source` belongs to a trusted tenant (`TENANT` answers "name trusted").
fn trusted(source: Handle) -> bool {
    source.is_none()
        || sky::command("TENANT", &source.to_string()).is_ok_and(|text| text.ends_with(" trusted"))
}

/// Lua's `tostring` for the values `table.concat` accepts.
fn lua_text(value: &Value) -> String {
    match value {
        Value::Integer(i) => i.to_string(),
        Value::Real(r) if r.fract() == 0.0 && r.is_finite() => format!("{r:.1}"),
        Value::Real(r) => r.to_string(),
        other => other.as_str().map(str::to_string).unwrap_or_default(),
    }
}

async fn handle(request: Request) {
    let values = match request.values() {
        Ok(values) => values,
        Err(e) => {
            sky::log!("bad request from {}: {e}", request.source());
            request.fail();
            return;
        }
    };
    let command = values
        .first()
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    let args = &values[values.len().min(1)..];
    // Managing other services is for the node's own tenant: an untrusted requester may only
    // launch (into its own tenant) and confirm its own start.
    let managing = !matches!(command.as_str(), "LAUNCH" | "LAUNCHOK" | "ERROR" | "REMOVE");
    if managing && !trusted(request.source()) {
        sky::log!(
            "{command} from {} refused: its tenant is untrusted",
            request.source()
        );
        return request.fail();
    }
    if command == "REMOVE"
        && handle_arg(args.first()) != Some(request.source())
        && !trusted(request.source())
    {
        return request.ignore();
    }
    let reply = match command.as_str() {
        "LAUNCH" => return launch(request, args, false),
        "LOGLAUNCH" => return launch(request, args, true),
        "LAUNCHOK" => {
            confirmed(request.source(), true);
            return request.ignore();
        }
        "ERROR" => {
            confirmed(request.source(), false);
            return request.ignore();
        }
        "REMOVE" => {
            if let Some(handle) = handle_arg(args.first()) {
                STATE.with(|s| s.borrow_mut().services.remove(&handle));
                confirmed(handle, false);
            }
            return request.ignore();
        }
        "LIST" => {
            let mut list = Table::new();
            STATE.with(|s| {
                for (handle, name) in &s.borrow().services {
                    list.insert(address_text(*handle), Value::from(name.as_str()));
                }
            });
            Value::Table(list)
        }
        "STAT" => Value::Table(
            ask_each("STAT", |values, _| {
                values.into_iter().next().unwrap_or(Value::Nil)
            })
            .await,
        ),
        "MEM" => Value::Table(mem().await),
        "GC" => {
            for handle in live_services() {
                let _ = sky::send_values(handle, &[Value::from("GC")]);
            }
            Value::Table(mem().await)
        }
        "KILL" => {
            let Some(handle) = handle_arg(args.first()) else {
                return request.fail();
            };
            let _ = sky::kill(handle);
            let name = STATE.with(|s| s.borrow_mut().services.remove(&handle));
            let mut result = Table::new();
            result.insert(
                address_text(handle),
                Value::from(name.unwrap_or_else(|| "nil".into())),
            );
            Value::Table(result)
        }
        "QUERY" => {
            let session = args.first().and_then(Value::as_integer).unwrap_or(0) as i32;
            STATE.with(|s| {
                s.borrow()
                    .launch_session
                    .iter()
                    .find(|(_, s)| **s == session)
                    .map(|(h, _)| Value::Integer(h.0 as i64))
                    .unwrap_or(Value::Nil)
            })
        }
        _ => Value::Table(Table::from_array(vec![Value::from("Unknown command")])),
    };
    let _ = request.ret_values(&[reply]);
}

fn live_services() -> Vec<Handle> {
    STATE.with(|s| s.borrow().services.keys().copied().collect())
}

/// Asks every service a debug command; a service that cannot answer gets an error text.
async fn ask_each(command: &str, shape: impl Fn(Vec<Value>, &str) -> Value) -> Table {
    let mut result = Table::new();
    for handle in live_services() {
        let name = STATE
            .with(|s| s.borrow().services.get(&handle).cloned())
            .unwrap_or_default();
        let body = match sky::pack::pack(&[Value::from(command)]) {
            Ok(body) => body,
            Err(_) => continue,
        };
        let answer = match sky::call(handle, ptype::DEBUG, &body).await {
            Ok(reply) => shape(sky::pack::unpack(&reply).unwrap_or_default(), &name),
            Err(e) => Value::from(format!("error: {e}")),
        };
        result.insert(address_text(handle), answer);
    }
    result
}

async fn mem() -> Table {
    ask_each("MEM", |values, name| {
        let kb = values.first().and_then(Value::as_real).unwrap_or(0.0);
        Value::from(format!("{kb:.2} Kb ({name})"))
    })
    .await
}

fn launch(request: Request, args: &[Value], log: bool) {
    let Some(module) = args.first().and_then(Value::as_str) else {
        return request.fail();
    };
    let param = args[1..].iter().map(lua_text).collect::<Vec<_>>().join(" ");
    let responder = request.responder();
    // On behalf of the requester: the new service joins the requester's tenant, under its
    // launch rules.
    let on_behalf = format!("{} {module} {param}", request.source());
    let handle = match sky::command("LAUNCHAS", &on_behalf)
        .ok()
        .and_then(|text| Handle::parse(&text))
    {
        Some(handle) => handle,
        None => return responder.fail(),
    };
    if log {
        let _ = sky::command("LOGON", &handle.to_string());
    }
    let shown = listed(module, &param);
    STATE.with(|s| s.borrow_mut().services.insert(handle, shown));
    if CONFIRMING_MODULES.contains(&module) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.launch_session.insert(handle, request.session());
            s.waiting.insert(handle, responder);
        });
    } else {
        let _ = responder.ret_values(&[Value::Integer(handle.0 as i64)]);
    }
}

/// Most bytes of a launched service's arguments kept for `LIST`: the list holds every
/// live service launched here, so what it keeps of each is bounded.
const LISTED_ARGS: usize = 256;

/// What `LIST` shows of a service: `module args`, the arguments cut at [`LISTED_ARGS`].
fn listed(module: &str, param: &str) -> String {
    if param.len() <= LISTED_ARGS {
        return format!("{module} {param}");
    }
    let mut end = LISTED_ARGS;
    while !param.is_char_boundary(end) {
        end -= 1;
    }
    format!("{module} {}...({} bytes)", &param[..end], param.len())
}

/// A launched service confirmed its start (or failed, or exited before confirming).
fn confirmed(handle: Handle, ok: bool) {
    let responder = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.launch_session.remove(&handle);
        if !ok {
            s.services.remove(&handle);
        }
        s.waiting.remove(&handle)
    });
    if let Some(responder) = responder {
        if ok {
            let _ = responder.ret_values(&[Value::Integer(handle.0 as i64)]);
        } else {
            responder.fail();
        }
    }
}
