//! `probe`: a service the black-box tests drive over the `"lua"` protocol to exercise the
//! host: echo, calls, timers, names, env, launching, exits, traps and deliberate ABI misuse.
//! Over `"text"` it echoes, records `"<n>"` messages per sender, and forwards
//! `"forward <handle>"` requests unchanged to that handle.
//!
//! Init arguments: `trap` traps in init, `fail` returns an error, `exit` exits during init,
//! `spin` loops forever in init, `name <.name>` registers a name, `version <tag>` sets what
//! `version` answers (default `v1`), `refuse_state` fails a start given an upgrade's state.
//!
//! Upgrades: the `count` counter (and `ballast n` bytes) survive them (`sky::upgrade::keep`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use skywasm_guest::{self as sky, ptype, Handle, Request, Responder, Table, Value};

sky::service!(start);

/// What survives an upgrade.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Kept {
    count: i64,
    /// Bytes kept only to make the state big (`ballast n`), for the upgrade benchmark.
    ballast: Vec<u8>,
}

impl sky::upgrade::Upgradable for Kept {
    const VERSION: u32 = 1;
}

thread_local! {
    static HELD: RefCell<Vec<Responder>> = const { RefCell::new(Vec::new()) };
    static KEPT: Rc<RefCell<Kept>> = Rc::new(RefCell::new(Kept::default()));
    static VERSION: RefCell<String> = RefCell::new("v1".into());
    static SEEN: RefCell<Vec<(u32, i64)>> = const { RefCell::new(Vec::new()) };
}

/// The raw imports, for calls the SDK would never make. Same declarations as the SDK's.
mod raw {
    #[link(wasm_import_module = "skywasm")]
    extern "C" {
        pub fn send(dest: u32, ptype: u32, session: i32, ptr: *const u8, len: usize) -> i32;
        pub fn command(
            cmd: *const u8,
            cmd_len: usize,
            param: *const u8,
            param_len: usize,
            out: *mut u8,
            out_cap: usize,
        ) -> i32;
        pub fn log(ptr: *const u8, len: usize);
        pub fn send_name(
            name: *const u8,
            name_len: usize,
            ptype: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
    }
}

fn start(args: &str) -> sky::Result<()> {
    let mut words = args.split_whitespace();
    match words.next() {
        Some("trap") => std::process::abort(),
        Some("fail") => return Err(sky::Error::Other("asked to fail".into())),
        Some("exit") => sky::exit(),
        #[allow(clippy::empty_loop)]
        Some("spin") => loop {},
        Some("name") => sky::register(words.next().unwrap_or(".probe"))?,
        Some("version") => {
            VERSION.with(|v| *v.borrow_mut() = words.next().unwrap_or("v1").to_string())
        }
        _ => {}
    }
    if let Some(kept) = sky::upgrade::restored::<Kept>()? {
        if args.contains("refuse_state") {
            return Err(sky::Error::Other("this code refuses the old state".into()));
        }
        KEPT.with(|k| *k.borrow_mut() = kept);
    }
    sky::upgrade::keep(KEPT.with(Rc::clone));
    sky::dispatch(ptype::LUA, |request: Request| async move {
        handle(request).await;
    });
    sky::dispatch(ptype::TEXT, |request: Request| async move {
        // Proxy: "forward <handle>" goes on unchanged to that handle, which answers.
        let forward_to = request
            .text()
            .strip_prefix("forward ")
            .and_then(|d| d.parse().ok());
        if let Some(dest) = forward_to {
            let _ = request.forward(Handle(dest));
            return;
        }
        // Order probe: "<n>" one-way messages are recorded per source.
        if let Ok(n) = request.text().parse::<i64>() {
            SEEN.with(|s| s.borrow_mut().push((request.source().0, n)));
        }
        let _ = request.ret(request.data());
    });
    Ok(())
}

fn arg_str(values: &[Value], i: usize) -> &str {
    values.get(i).and_then(Value::as_str).unwrap_or("")
}

fn arg_int(values: &[Value], i: usize) -> i64 {
    values.get(i).and_then(Value::as_integer).unwrap_or(0)
}

fn address(values: &[Value], i: usize) -> String {
    match values.get(i) {
        Some(Value::Integer(h)) => Handle(*h as u32).to_string(),
        Some(v) => v.as_str().unwrap_or("").to_string(),
        None => String::new(),
    }
}

fn code_of(result: sky::Result<()>) -> Value {
    Value::Integer(match result {
        Ok(()) => 0,
        Err(e) => e.code().unwrap_or(-100) as i64,
    })
}

async fn handle(request: Request) {
    let values = request.values().unwrap_or_default();
    let reply: Vec<Value> = match arg_str(&values, 0) {
        "echo" => values[1..].to_vec(),
        "count" => vec![Value::Integer(KEPT.with(|k| {
            let mut kept = k.borrow_mut();
            kept.count += 1;
            kept.count
        }))],
        "version" => vec![Value::from(VERSION.with(|v| v.borrow().clone()))],
        "upgrade" => {
            let (target, name) = (address(&values, 1), arg_str(&values, 2));
            match sky::upgrade::upgrade(&target, name, arg_str(&values, 3)).await {
                Ok(sky::upgrade::Upgraded::Restored { version, bytes }) => vec![
                    Value::from("restored"),
                    Value::Integer(i64::from(version)),
                    Value::Integer(bytes as i64),
                ],
                Ok(sky::upgrade::Upgraded::Fresh(why)) => {
                    vec![Value::from("fresh"), Value::from(why)]
                }
                Err(e) => vec![Value::from("error"), Value::from(e.to_string())],
            }
        }
        "cluster_call" => {
            let remote = match values.get(2) {
                Some(Value::Integer(h)) => sky::cluster::Remote::Handle(Handle(*h as u32)),
                _ => sky::cluster::Remote::Name(arg_str(&values, 2)),
            };
            match sky::cluster::call(arg_str(&values, 1), remote, &values[3..]).await {
                Ok(mut reply) => {
                    reply.insert(0, Value::from("ok"));
                    reply
                }
                Err(e) => vec![Value::from("error"), Value::from(e.to_string())],
            }
        }
        "cluster_reload" => {
            let at = arg_str(&values, 2);
            let address = (!at.is_empty()).then_some(at);
            vec![code_of(
                sky::cluster::reload(&[(arg_str(&values, 1), address)]).await,
            )]
        }
        "cluster_query" => {
            match sky::cluster::query(arg_str(&values, 1), arg_str(&values, 2)).await {
                Ok(handle) => vec![Value::Integer(i64::from(handle.0))],
                Err(e) => vec![Value::from("error"), Value::from(e.to_string())],
            }
        }
        "ballast" => {
            let size = arg_int(&values, 1).max(0) as usize;
            KEPT.with(|k| k.borrow_mut().ballast = vec![7; size]);
            vec![Value::Integer(size as i64)]
        }
        "trap" => std::process::abort(),
        "spin" => {
            let _ = request.ret_values(&[]);
            #[allow(clippy::empty_loop)]
            loop {}
        }
        "busy" => {
            let until = sky::hpc() + arg_int(&values, 1) as u64 * 1_000_000;
            while sky::hpc() < until {}
            vec![]
        }
        "recurse" => vec![Value::Integer(recurse(arg_int(&values, 1)))],
        "alloc_bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        "call" => {
            let target = address(&values, 1);
            match sky::call_values(target.as_str(), &values[2..]).await {
                Ok(mut reply) => {
                    reply.insert(0, Value::from("ok"));
                    reply
                }
                Err(e) => vec![Value::from("error"), Value::from(e.to_string())],
            }
        }
        "call_text" => {
            let target = address(&values, 1);
            match sky::call(target.as_str(), ptype::TEXT, arg_str(&values, 2).as_bytes()).await {
                Ok(reply) => vec![Value::from("ok"), Value::from(reply)],
                Err(e) => vec![Value::from("error"), Value::from(e.to_string())],
            }
        }
        "send" => {
            let target = address(&values, 1);
            vec![code_of(sky::send_values(target.as_str(), &values[2..]))]
        }
        "send_big" => {
            let body = vec![7u8; arg_int(&values, 1).max(0) as usize];
            let target = address(&values, 2);
            vec![code_of(sky::send(target.as_str(), ptype::TEXT, &body))]
        }
        "send_text" => {
            let target = address(&values, 1);
            let count = arg_int(&values, 2);
            let mut result = Ok(());
            for n in 0..count {
                result = result.and(sky::send(
                    target.as_str(),
                    ptype::TEXT,
                    n.to_string().as_bytes(),
                ));
            }
            vec![code_of(result)]
        }
        "seen" => SEEN.with(|s| {
            let mut table = Table::new();
            for (source, n) in s.borrow().iter() {
                let mut pair = Table::new();
                pair.push(Value::Integer(*source as i64));
                pair.push(Value::Integer(*n));
                table.push(Value::Table(pair));
            }
            vec![Value::Table(table)]
        }),
        "sleep" => {
            let before = sky::now() as i64;
            let result = sky::sleep(arg_int(&values, 1) as u32).await;
            vec![code_of(result), Value::Integer(sky::now() as i64 - before)]
        }
        "timer_order" => timer_order(arg_int(&values, 1), arg_int(&values, 2) as u32).await,
        "hold" => {
            HELD.with(|h| h.borrow_mut().push(request.responder()));
            return;
        }
        "exit" => {
            sky::exit();
            return request.ignore();
        }
        "launch" => match sky::launch(arg_str(&values, 1), arg_str(&values, 2)) {
            Ok(h) => vec![Value::Integer(h.0 as i64)],
            Err(e) => vec![Value::Nil, Value::Integer(e.code().unwrap_or(-100) as i64)],
        },
        "newservice" => match sky::newservice(arg_str(&values, 1), &[arg_str(&values, 2)]).await {
            Ok(h) => vec![Value::Integer(h.0 as i64)],
            Err(e) => vec![Value::Nil, Value::from(e.to_string())],
        },
        "command" => match sky::command(arg_str(&values, 1), arg_str(&values, 2)) {
            Ok(text) => vec![Value::from(text)],
            Err(e) => vec![Value::Nil, Value::Integer(e.code().unwrap_or(-100) as i64)],
        },
        "tcp_echo" => match tcp_echo() {
            Ok(port) => vec![Value::Integer(i64::from(port))],
            Err(e) => vec![Value::Nil, Value::from(e.to_string())],
        },
        "udp_echo" => match udp_echo() {
            Ok(port) => vec![Value::Integer(i64::from(port))],
            Err(e) => vec![Value::Nil, Value::from(e.to_string())],
        },
        "connect" => match sky::socket::connect("127.0.0.1", arg_int(&values, 1) as u16).await {
            Ok(stream) => {
                let _ = stream.write(arg_str(&values, 2).as_bytes());
                let mut buf = vec![0u8; arg_str(&values, 2).len()];
                let read = stream.read_exact(&mut buf).await;
                stream.close();
                match read {
                    Ok(()) => vec![Value::from(String::from_utf8_lossy(&buf).into_owned())],
                    Err(e) => vec![Value::Nil, Value::from(e.to_string())],
                }
            }
            Err(e) => vec![Value::Nil, Value::from(e.to_string())],
        },
        "now" => vec![Value::Integer(sky::now() as i64)],
        "self" => vec![Value::Integer(sky::self_handle().0 as i64)],
        "print" => {
            println!("{}", arg_str(&values, 1));
            vec![]
        }
        "log_lines" => {
            for n in 0..arg_int(&values, 1) {
                sky::log!("{} {n}", arg_str(&values, 2));
            }
            vec![]
        }
        "abi" => vec![Value::Integer(abuse(arg_str(&values, 1)) as i64)],
        "heap" => heap_from_c(),
        other => vec![Value::from("unknown"), Value::from(other)],
    };
    let _ = request.ret_values(&reply);
}

/// Uses the C allocation functions as C code linked into a Rust service sees them (the
/// SDK defines them) and reports: usable size of a 100-byte block, whether an overflowing
/// `calloc` failed and the errno it left, `posix_memalign` with alignment 3 and 4096 (return
/// codes) and whether the second is aligned, whether `aligned_alloc(3, ..)` failed and
/// `aligned_alloc(4096, ..)` is aligned, whether `realloc` to 100,000 bytes kept the
/// contents, by how many 64 KiB pages a 1 MiB block grew the memory, and whether a 1 GiB
/// block failed (rather than trapped) with ENOMEM.
#[cfg(target_family = "wasm")]
fn heap_from_c() -> Vec<Value> {
    use core::ffi::c_void;
    extern "C" {
        fn malloc(size: usize) -> *mut c_void;
        fn calloc(count: usize, size: usize) -> *mut c_void;
        fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        fn free(ptr: *mut c_void);
        fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
        fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
        fn malloc_usable_size(ptr: *mut c_void) -> usize;
        static mut errno: i32;
    }
    let errno_now = || {
        // SAFETY: wasi-libc's errno, a plain global on this one-threaded target.
        unsafe { *std::ptr::addr_of!(errno) }
    };
    let pages = || core::arch::wasm32::memory_size(0) as i64;
    // The compiler knows what these functions mean and may drop an allocation whose pointer
    // is only compared with null: sizes and pointers go through black_box.
    let opaque = std::hint::black_box::<usize>;
    let seen = std::hint::black_box::<*mut c_void>;
    // SAFETY: every pointer is used within the size it was allocated with, and freed once.
    unsafe {
        let block = seen(malloc(opaque(100))).cast::<u8>();
        let usable = malloc_usable_size(block.cast());
        block.write_bytes(7, usable);
        let overflow = seen(calloc(opaque(usize::MAX / 2), opaque(3)));
        let overflow_errno = errno_now();
        let mut out = std::ptr::null_mut();
        let bad_align = posix_memalign(&mut out, opaque(3), opaque(10));
        let good_align = posix_memalign(&mut out, opaque(4096), opaque(10));
        let posix_aligned = seen(out) as usize % 4096 == 0;
        free(out);
        let aligned_bad = seen(aligned_alloc(opaque(3), opaque(10)));
        let aligned = seen(aligned_alloc(opaque(4096), opaque(100)));
        let aligned_ok = !aligned.is_null() && aligned as usize % 4096 == 0;
        free(aligned);
        let grown = seen(realloc(block.cast(), opaque(100_000))).cast::<u8>();
        let kept = std::slice::from_raw_parts(grown, usable)
            .iter()
            .all(|b| *b == 7);
        free(grown.cast());
        let before = pages();
        let big = seen(malloc(opaque(1 << 20)));
        let grew = pages() - before;
        free(big);
        let huge = seen(malloc(opaque(1 << 30)));
        let huge_errno = errno_now();
        vec![
            Value::Integer(usable as i64),
            Value::Boolean(overflow.is_null()),
            Value::Integer(overflow_errno as i64),
            Value::Integer(bad_align as i64),
            Value::Integer(good_align as i64),
            Value::Boolean(posix_aligned),
            Value::Boolean(aligned_bad.is_null()),
            Value::Boolean(aligned_ok),
            Value::Boolean(kept),
            Value::Integer(grew),
            Value::Boolean(huge.is_null()),
            Value::Integer(huge_errno as i64),
        ]
    }
}

/// The probe runs as wasm only; its native build (for the workspace's lints) has no heap of
/// its own to report on.
#[cfg(not(target_family = "wasm"))]
fn heap_from_c() -> Vec<Value> {
    vec![Value::from("wasm only")]
}

fn recurse(depth: i64) -> i64 {
    if depth <= 0 {
        return 0;
    }
    let local = [depth; 64];
    recurse(depth - 1) + std::hint::black_box(local)[3] % 2
}

/// Arms `n` timers with the same delay and returns the order they fired in.
async fn timer_order(n: i64, delay: u32) -> Vec<Value> {
    let fired = Rc::new(RefCell::new(Vec::new()));
    let done = Rc::new(Cell::new(0));
    for i in 0..n {
        let (fired, done) = (fired.clone(), done.clone());
        // Each timer is armed inside `sleep` when the task is first polled; fork polls tasks
        // in the order they were forked.
        sky::fork(async move {
            let _ = sky::sleep(delay).await;
            fired.borrow_mut().push(Value::Integer(i));
            done.set(done.get() + 1);
        });
    }
    while done.get() < n {
        let _ = sky::sleep(delay + 1).await;
    }
    let order = fired.borrow().clone();
    vec![Value::Table(Table::from_array(order))]
}

/// Deliberate ABI misuse. Traps end the service; the others return the host's code.
fn abuse(what: &str) -> i32 {
    let text = b"x";
    let mut out = [0u8; 8];
    // SAFETY: none — these calls hand the host invalid pointers on purpose; the host checks
    // every range and traps or refuses without touching memory it does not own.
    unsafe {
        match what {
            "send_oob" => raw::send(
                sky::self_handle().0,
                0,
                0,
                0xffff_fff0usize as *const u8,
                64,
            ),
            "send_huge_len" => raw::send(sky::self_handle().0, 0, 0, 16 as *const u8, 0xffff_fffe),
            "send_bad_ptype" => raw::send(sky::self_handle().0, 300, 0, text.as_ptr(), 1),
            "send_zero" => raw::send(0, 0, 0, text.as_ptr(), 1),
            "send_unknown" => raw::send(0x00ff_fff0, 0, 0, text.as_ptr(), 1),
            "send_name_unknown" => {
                let name = b".nobody";
                raw::send_name(name.as_ptr(), name.len(), 0, 0, text.as_ptr(), 1)
            }
            "send_name_bad_utf8" => {
                let name = [0xffu8, 0xfe];
                raw::send_name(name.as_ptr(), name.len(), 0, 0, text.as_ptr(), 1)
            }
            "unknown_command" => {
                let cmd = b"NOPE";
                raw::command(
                    cmd.as_ptr(),
                    cmd.len(),
                    text.as_ptr(),
                    0,
                    out.as_mut_ptr(),
                    out.len(),
                )
            }
            "command_out_oob" => {
                let cmd = b"REG";
                raw::command(
                    cmd.as_ptr(),
                    cmd.len(),
                    text.as_ptr(),
                    0,
                    0xffff_fff0usize as *mut u8,
                    64,
                )
            }
            "log_oob" => {
                raw::log(0xffff_ff00usize as *const u8, 0x1000);
                0
            }
            _ => -1000,
        }
    }
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(0)
}

/// A TCP echo server on a free port of 127.0.0.1 (the SDK's sockets): each connection in
/// its own task, its bytes sent back until the peer closes.
fn tcp_echo() -> sky::Result<u16> {
    let listener = sky::socket::listen("127.0.0.1", 0)?;
    let port = port_of(&listener.local_addr()?);
    sky::fork(async move {
        while let Ok((stream, _peer)) = listener.accept().await {
            sky::fork(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write(&buf[..n]).is_err() {
                        break;
                    }
                }
                stream.close();
            });
        }
    });
    Ok(port)
}

/// A UDP echo server on a free port of 127.0.0.1: every datagram goes back to its sender.
fn udp_echo() -> sky::Result<u16> {
    let socket = sky::socket::UdpSocket::bind("127.0.0.1", 0)?;
    let port = port_of(&socket.local_addr()?);
    sky::fork(async move {
        while let Ok((data, from)) = socket.recv_from().await {
            let _ = socket.send_to(&from, &data);
        }
    });
    Ok(port)
}
