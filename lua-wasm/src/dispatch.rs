//! Delivering a message to Lua, and skynet.lua's per-message core in Rust.
//!
//! skynet.lua hands the host each message through a callback, `skynet.dispatch_message`,
//! which in Lua looks up the protocol, takes a pooled coroutine, records the request's
//! session and source, unpacks, resumes, and then looks at how the coroutine stopped: that
//! is dozens of interpreted table operations and two protected calls per message, and in
//! wasm the interpreter is the cost (issue 24). When the callback installed is skynet.lua's
//! own `dispatch_message`, the common cases run here instead, against the very same Lua
//! tables skynet.lua keeps (handed over once with `skynet.core.dispatch_core`):
//!
//! * a response for a session whose coroutine waits, untraced: resume it;
//! * a request of a protocol with a `dispatch` function and no trace flag, from a source
//!   that announced no trace tag: a pooled coroutine runs the function with the unpacked
//!   message;
//!
//! and a coroutine that yields `"SUSPEND"` (it waits) or `"END"` (its job is done: it is
//! pooled), with nothing woken and nothing failed, ends the message. Everything else —
//! unknown sessions and protocols, `"BREAK"`, tracing, errors, other yields, woken
//! coroutines, forks — is passed to skynet.lua's own functions, so the semantics stay the
//! ones written there.
//!
//! Measured (issue 24): what pays is removing layers of interpreted calls and protected
//! calls; the same table operations done through the C API instead of by the interpreter
//! cost about the same in wasm (moving `skynet.call`'s send-and-yield here gained nothing
//! and was left out).

use std::cell::Cell;
use std::ffi::{c_int, CStr};

use mlua_sys as ffi;
use skywasm_abi::{ptype, sys};

thread_local! {
    /// Registry reference of the Lua function `callback` installed (LUA_NOREF: none).
    static CALLBACK: Cell<c_int> = const { Cell::new(ffi::LUA_NOREF) };
    /// Whether the callback keeps the messages it gets (skynet's forward mode).
    static FORWARD: Cell<bool> = const { Cell::new(false) };
    /// Whether the callback is skynet.lua's `dispatch_message`, whose work [`message`] does.
    static NATIVE: Cell<bool> = const { Cell::new(false) };
    /// Registry references of what skynet.lua handed over (LUA_NOREF: nothing yet).
    static CORE: Cell<Core> = const { Cell::new(Core::NONE) };
}

/// Registry references of the functions [`dispatch`] and [`callback`] use.
#[derive(Clone, Copy)]
struct Core {
    /// skynet.lua's `dispatch_message`.
    dispatch: c_int,
    /// skynet.lua's `finish_message`.
    finish: c_int,
    /// [`message`], closed over every [`Slot`].
    message: c_int,
}

impl Core {
    const NONE: Core = Core {
        dispatch: ffi::LUA_NOREF,
        finish: ffi::LUA_NOREF,
        message: ffi::LUA_NOREF,
    };

    /// Registry references, for unreferencing.
    fn references(self) -> [c_int; 3] {
        [self.dispatch, self.finish, self.message]
    }
}

/// Pushes the registry value `reference`.
///
/// # Safety
/// `l` valid, with room for one value.
unsafe fn push_reference(l: *mut ffi::lua_State, reference: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(reference));
    }
}

/// What skynet.lua hands over, by the field name it uses in `dispatch_core`'s table:
/// [`message`]'s upvalues, in this order.
#[derive(Clone, Copy)]
enum Slot {
    /// session → the coroutine waiting for its response.
    SessionCoroutine,
    /// coroutine → the session of the request it handles.
    CoroutineSession,
    /// coroutine → the source of the request it handles.
    CoroutineAddress,
    /// coroutine → its trace tag.
    CoroutineTag,
    /// Finished coroutines, ready for a next function.
    Pool,
    /// pooled coroutine → the function its next first resume runs.
    Job,
    /// Tokens of coroutines `skynet.wakeup` woke.
    WakeupQueue,
    /// Sessions whose calls failed.
    ErrorQueue,
    /// Coroutines `skynet.fork` started (`h`..`t`).
    ForkQueue,
    /// source → the trace tag it announced for its next request.
    TraceSource,
    /// Protocol classes by name and id.
    Proto,
    /// `dispatch_message`: the callback whose work this module does.
    Dispatch,
    /// `raw_dispatch_message(type, msg, sz, session, source)`: one message, in Lua.
    Raw,
    /// `suspend(co, ok, ...)`: what to do with the results of a resume.
    Suspend,
    /// `co_create(f)`: a coroutine for `f` when the pool is empty.
    CoCreate,
    /// `set_running(co)`, whose only upvalue is skynet.lua's `running_thread`.
    SetRunning,
    /// `dispatch_wakeup()`: resumes woken coroutines, then failed calls.
    Wakeup,
    /// `finish_message(ok, err)`: runs the forks, then raises `err` if not `ok`.
    Finish,
}

/// Field names [`message`] reads, interned once as its upvalues after the [`Slot`]s
/// (`lua_getfield` interns its key on every call).
#[derive(Clone, Copy)]
enum Key {
    /// A protocol class's `dispatch`.
    Dispatch,
    /// A protocol class's `trace`.
    Trace,
    /// A protocol class's `unpack`.
    Unpack,
    /// `fork_queue.h`.
    Head,
    /// `fork_queue.t`.
    Tail,
}

impl Key {
    const ALL: [&'static CStr; 5] = [c"dispatch", c"trace", c"unpack", c"h", c"t"];

    /// Pushes the field of the table at `table` (which has no metatable) named by this key.
    ///
    /// # Safety
    /// Inside [`message`], with room for one value.
    unsafe fn get(self, l: *mut ffi::lua_State, table: c_int) -> c_int {
        // SAFETY: the caller's contract.
        unsafe {
            let table = ffi::lua_absindex(l, table);
            ffi::lua_pushvalue(
                l,
                ffi::lua_upvalueindex(Slot::COUNT as c_int + 1 + self as c_int),
            );
            ffi::lua_rawget(l, table)
        }
    }
}

impl Slot {
    const COUNT: usize = 18;
    const ALL: [(Slot, &'static CStr, c_int); Self::COUNT] = [
        (
            Slot::SessionCoroutine,
            c"session_id_coroutine",
            ffi::LUA_TTABLE,
        ),
        (
            Slot::CoroutineSession,
            c"session_coroutine_id",
            ffi::LUA_TTABLE,
        ),
        (
            Slot::CoroutineAddress,
            c"session_coroutine_address",
            ffi::LUA_TTABLE,
        ),
        (
            Slot::CoroutineTag,
            c"session_coroutine_tracetag",
            ffi::LUA_TTABLE,
        ),
        (Slot::Pool, c"coroutine_pool", ffi::LUA_TTABLE),
        (Slot::Job, c"coroutine_job", ffi::LUA_TTABLE),
        (Slot::WakeupQueue, c"wakeup_queue", ffi::LUA_TTABLE),
        (Slot::ErrorQueue, c"error_queue", ffi::LUA_TTABLE),
        (Slot::ForkQueue, c"fork_queue", ffi::LUA_TTABLE),
        (Slot::TraceSource, c"trace_source", ffi::LUA_TTABLE),
        (Slot::Proto, c"proto", ffi::LUA_TTABLE),
        (Slot::Dispatch, c"dispatch_message", ffi::LUA_TFUNCTION),
        (Slot::Raw, c"raw_dispatch_message", ffi::LUA_TFUNCTION),
        (Slot::Suspend, c"suspend", ffi::LUA_TFUNCTION),
        (Slot::CoCreate, c"co_create", ffi::LUA_TFUNCTION),
        (Slot::SetRunning, c"set_running", ffi::LUA_TFUNCTION),
        (Slot::Wakeup, c"dispatch_wakeup", ffi::LUA_TFUNCTION),
        (Slot::Finish, c"finish_message", ffi::LUA_TFUNCTION),
    ];

    /// [`Slot::ALL`] lists the slots in their order (the upvalues' order).
    const ORDERED: () = {
        let mut i = 0;
        while i < Self::COUNT {
            assert!(Self::ALL[i].0 as usize == i);
            i += 1;
        }
    };

    /// The pseudo-index of this slot's value, valid inside [`message`] (its upvalue).
    const fn at(self) -> c_int {
        ffi::lua_upvalueindex(self as c_int + 1)
    }

    /// Pushes this slot's value, inside [`message`].
    ///
    /// # Safety
    /// Inside [`message`], with room for one value.
    unsafe fn push(self, l: *mut ffi::lua_State) {
        // SAFETY: the caller's contract.
        unsafe { ffi::lua_pushvalue(l, self.at()) }
    }
}

/// `dispatch_core(t)`: skynet.lua hands over its per-message state and functions (the
/// fields of [`Slot::ALL`]), once, when it loads.
pub(crate) unsafe extern "C-unwind" fn dispatch_core(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let () = Slot::ORDERED;
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::luaL_checkstack(
            l,
            (Slot::COUNT + Key::ALL.len()) as c_int + 4,
            std::ptr::null(),
        );
        ffi::lua_settop(l, 1);
        for (_, name, kind) in Slot::ALL {
            if ffi::lua_getfield(l, 1, name.as_ptr()) != kind {
                ffi::luaL_error(
                    l,
                    c"dispatch_core: field '%s' is missing or of the wrong type".as_ptr(),
                    name.as_ptr(),
                );
            }
        }
        // `set_running` must assign skynet.lua's `running_thread` and nothing else.
        let name = ffi::lua_getupvalue(l, 2 + Slot::SetRunning as c_int, 1);
        if name.is_null() || CStr::from_ptr(name) != c"running_thread" {
            ffi::luaL_error(
                l,
                c"dispatch_core: set_running's first upvalue must be running_thread".as_ptr(),
            );
        }
        ffi::lua_pop(l, 1);
        ffi::lua_pushvalue(l, 2 + Slot::Dispatch as c_int);
        let dispatch = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        ffi::lua_pushvalue(l, 2 + Slot::Finish as c_int);
        let finish = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        for key in Key::ALL {
            ffi::lua_pushstring(l, key.as_ptr());
        }
        ffi::lua_pushcclosure(l, message, (Slot::COUNT + Key::ALL.len()) as c_int);
        let message = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        let previous = CORE.with(|core| {
            core.replace(Core {
                dispatch,
                finish,
                message,
            })
        });
        for reference in previous.references() {
            ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, reference);
        }
    }
    0
}

/// `callback(f, forward)`: `f(type, msg, sz, session, source)` gets every message. With
/// `forward`, `f` owns each message (it must send or `trash` it).
pub(crate) unsafe extern "C-unwind" fn callback(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        let forward = ffi::lua_toboolean(l, 2) != 0;
        ffi::lua_settop(l, 1);
        push_reference(l, CORE.with(Cell::get).dispatch);
        let native = !forward && ffi::lua_rawequal(l, 1, 2) != 0;
        ffi::lua_settop(l, 1);
        let old = CALLBACK.with(Cell::get);
        ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, old);
        let reference = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        CALLBACK.with(|c| c.set(reference));
        FORWARD.with(|f| f.set(forward));
        NATIVE.with(|n| n.set(native));
    }
    0
}

/// Delivers one message to the Lua callback. Without one, a request is answered with an
/// error so its caller does not wait forever. Errors from the callback are logged, as
/// skynet's snlua does.
///
/// # Safety
/// `l` is the service's state, not running; `msg` came from `alloc_message` with `len`
/// bytes filled (or is null with `len` 0).
pub(crate) unsafe fn dispatch(
    l: *mut ffi::lua_State,
    ty: u32,
    session: i32,
    source: u32,
    msg: *mut u8,
    len: u32,
) {
    let reference = CALLBACK.with(Cell::get);
    if reference == ffi::LUA_NOREF {
        if session != 0 && ty != ptype::RESPONSE && ty != ptype::ERROR {
            sys::send(source, ptype::ERROR, session, &[]);
        }
        // SAFETY: the buffer is ours and unused.
        unsafe { crate::core::free_message(msg) };
        return;
    }
    // SAFETY: a valid state with an empty stack between messages.
    unsafe {
        ffi::lua_settop(l, 0);
        let status = if NATIVE.with(Cell::get) {
            // skynet.lua's dispatch_message, done here: its errors are handed, as its own
            // pcall would hand them, to `finish_message`, which runs the forks (when there
            // are any) and raises them again under the traceback handler.
            push_reference(l, CORE.with(Cell::get).message);
            push_message(l, ty, msg, len, session, source);
            let status = ffi::lua_pcall(l, 5, 1, 0);
            let failed = status != ffi::LUA_OK;
            if failed || ffi::lua_toboolean(l, -1) != 0 {
                ffi::lua_pushcfunction(l, crate::state::traceback);
                ffi::lua_insert(l, 1);
                push_reference(l, CORE.with(Cell::get).finish);
                ffi::lua_insert(l, 2);
                ffi::lua_pushboolean(l, c_int::from(!failed));
                ffi::lua_insert(l, 3);
                ffi::lua_pcall(l, 2, 0, 1)
            } else {
                ffi::LUA_OK
            }
        } else {
            ffi::lua_pushcfunction(l, crate::state::traceback);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(reference));
            push_message(l, ty, msg, len, session, source);
            ffi::lua_pcall(l, 5, 0, 1)
        };
        if status != ffi::LUA_OK {
            let mut text_len = 0usize;
            let text = ffi::lua_tolstring(l, -1, &mut text_len);
            let text: &[u8] = if text.is_null() {
                b"(error object is not a string)"
            } else {
                std::slice::from_raw_parts(text.cast::<u8>(), text_len)
            };
            let line = format!(
                "lua call [{source:x} to :{:x} : {session} msgsz = {len}] error : {}",
                sys::self_handle(),
                String::from_utf8_lossy(text)
            );
            sys::log(line.as_bytes());
        }
        ffi::lua_settop(l, 0);
        if !FORWARD.with(Cell::get) {
            crate::core::free_message(msg);
        }
    }
}

/// Pushes a message as the callback's arguments: `type, msg, sz, session, source`.
///
/// # Safety
/// `l` valid, with room for five values.
unsafe fn push_message(
    l: *mut ffi::lua_State,
    ty: u32,
    msg: *mut u8,
    len: u32,
    session: i32,
    source: u32,
) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(ty));
        ffi::lua_pushlightuserdata(l, msg.cast());
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(len));
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(session));
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(source));
    }
}

/// `message(type, msg, sz, session, source)`, run protected: skynet.lua's
/// `raw_dispatch_message` for the common cases (see the module's comment), the Lua function
/// itself for the rest. Returns whether forks wait to run.
unsafe extern "C-unwind" fn message(l: *mut ffi::lua_State) -> c_int {
    const TYPE: c_int = 1;
    const MSG: c_int = 2;
    const SIZE: c_int = 3;
    const SESSION: c_int = 4;
    const SOURCE: c_int = 5;
    // SAFETY: called through lua_pcall with the five arguments `dispatch` pushed.
    unsafe {
        ffi::luaL_checkstack(l, 16, std::ptr::null());
        let ty = ffi::lua_tointeger(l, TYPE);
        let session = ffi::lua_tointeger(l, SESSION);
        let handled = if ty == ffi::lua_Integer::from(ptype::RESPONSE) {
            response(l, session, MSG, SIZE)
        } else {
            request(l, ty, session, SOURCE, MSG, SIZE)
        };
        if !handled {
            ffi::lua_settop(l, SOURCE);
            Slot::Raw.push(l);
            ffi::lua_insert(l, TYPE);
            ffi::lua_call(l, 5, 0);
        }
        ffi::lua_settop(l, 0);
        ffi::lua_pushboolean(l, c_int::from(forks_wait(l)));
    }
    1
}

/// A response: resumes the coroutine waiting for `session` with `true, msg, sz, session`.
/// False (nothing done) unless that is a coroutine nobody traces.
///
/// # Safety
/// Inside [`message`], whose stack holds the message at `msg` and `msg + 1`.
unsafe fn response(
    l: *mut ffi::lua_State,
    session: ffi::lua_Integer,
    msg: c_int,
    size: c_int,
) -> bool {
    // SAFETY: the caller's contract; every value is looked up raw, as skynet.lua's tables
    // have no metatables.
    unsafe {
        let top = ffi::lua_gettop(l);
        let waiting = Slot::SessionCoroutine.at();
        if ffi::lua_rawgeti(l, waiting, session) != ffi::LUA_TTHREAD || traced(l, -1) {
            ffi::lua_settop(l, top);
            return false;
        }
        let co = top + 1;
        ffi::lua_pushnil(l);
        ffi::lua_rawseti(l, waiting, session);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_pushvalue(l, msg);
        ffi::lua_pushvalue(l, size);
        ffi::lua_pushinteger(l, session);
        resume(l, co, 4);
        ffi::lua_settop(l, top);
        true
    }
}

/// A request: a pooled coroutine runs the protocol's `dispatch` with
/// `session, source, unpack(msg, sz)`. False (nothing done) unless the protocol has a
/// `dispatch` and neither it nor the source asks for tracing.
///
/// # Safety
/// As [`response`], with the source at `source`.
unsafe fn request(
    l: *mut ffi::lua_State,
    ty: ffi::lua_Integer,
    session: ffi::lua_Integer,
    source: c_int,
    msg: c_int,
    size: c_int,
) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        let top = ffi::lua_gettop(l);
        if ffi::lua_rawgeti(l, Slot::Proto.at(), ty) != ffi::LUA_TTABLE {
            ffi::lua_settop(l, top);
            return false;
        }
        let class = top + 1;
        let f = top + 2;
        // A class with a metatable might answer `dispatch` or `trace` through it: skynet.lua
        // reads those.
        if ffi::lua_getmetatable(l, class) != 0 {
            ffi::lua_settop(l, top);
            return false;
        }
        let plain = Key::Dispatch.get(l, class) != ffi::LUA_TNIL
            && ffi::lua_toboolean(l, f) != 0
            && Key::Trace.get(l, class) == ffi::LUA_TNIL
            && ffi::lua_rawgeti(l, Slot::TraceSource.at(), ffi::lua_tointeger(l, source))
                == ffi::LUA_TNIL;
        if !plain {
            ffi::lua_settop(l, top);
            return false;
        }
        ffi::lua_settop(l, f);
        let co = f + 1;
        take_coroutine(l, f);
        for (slot, value) in [
            (Slot::CoroutineSession, session),
            (Slot::CoroutineAddress, ffi::lua_tointeger(l, source)),
        ] {
            ffi::lua_pushvalue(l, co);
            ffi::lua_pushinteger(l, value);
            ffi::lua_rawset(l, slot.at());
        }
        ffi::lua_pushinteger(l, session);
        ffi::lua_pushvalue(l, source);
        let before = ffi::lua_gettop(l);
        Key::Unpack.get(l, class);
        let values = if ffi::lua_tocfunction(l, -1)
            .is_some_and(|f| std::ptr::fn_addr_eq(f, crate::core::unpack as ffi::lua_CFunction))
        {
            // skynet.unpack itself (the "lua" protocol's): called directly.
            ffi::lua_pop(l, 1);
            let (body, _) = crate::core::message_arg(l, msg);
            crate::pack::unpack_values(l, body)
        } else {
            ffi::lua_pushvalue(l, msg);
            ffi::lua_pushvalue(l, size);
            ffi::lua_call(l, 2, ffi::LUA_MULTRET);
            ffi::lua_gettop(l) - before
        };
        resume(l, co, 2 + values);
        ffi::lua_settop(l, top);
        true
    }
}

/// Pushes a coroutine that runs `f` (at `f`) on its next first resume: a pooled one, as
/// skynet.lua's `co_create` takes, or a new one from `co_create` when the pool is empty.
///
/// # Safety
/// Inside [`message`].
unsafe fn take_coroutine(l: *mut ffi::lua_State, f: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        let pool = Slot::Pool.at();
        let top = ffi::lua_gettop(l);
        let n = ffi::lua_rawlen(l, pool) as ffi::lua_Integer;
        if n > 0 && ffi::lua_rawgeti(l, pool, n) == ffi::LUA_TTHREAD {
            ffi::lua_pushnil(l);
            ffi::lua_rawseti(l, pool, n);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_pushvalue(l, f);
            ffi::lua_rawset(l, Slot::Job.at());
        } else {
            ffi::lua_settop(l, top);
            Slot::CoCreate.push(l);
            ffi::lua_pushvalue(l, f);
            ffi::lua_call(l, 1, 1);
        }
    }
}

/// Whether the coroutine at `index` has a trace tag (or tracing forced off).
///
/// # Safety
/// Inside [`message`].
unsafe fn traced(l: *mut ffi::lua_State, index: c_int) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushvalue(l, index);
        let tagged = ffi::lua_rawget(l, Slot::CoroutineTag.at()) != ffi::LUA_TNIL;
        ffi::lua_pop(l, 1);
        tagged
    }
}

/// Resumes the coroutine at `co` with the `args` values on top of the stack, as skynet.lua's
/// `suspend(co, coroutine_resume(co, ...))`: a plain `"SUSPEND"`, or an `"END"` that
/// [`finish_job`] can finish, with nothing woken or failed ends here; every other outcome
/// goes to skynet.lua's `suspend` (or `dispatch_wakeup`).
///
/// # Safety
/// Inside [`message`]; `co` holds a coroutine.
unsafe fn resume(l: *mut ffi::lua_State, co: c_int, args: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        let thread = ffi::lua_tothread(l, co);
        // skynet.lua's coroutine_resume records the coroutine that runs.
        ffi::lua_pushvalue(l, co);
        ffi::lua_setupvalue(l, Slot::SetRunning.at(), 1);
        // What coroutine.resume checks before resuming.
        let status = ffi::lua_status(thread);
        let resumable =
            status == ffi::LUA_YIELD || (status == ffi::LUA_OK && ffi::lua_gettop(thread) > 0);
        if !resumable || ffi::lua_checkstack(thread, args) == 0 {
            ffi::lua_pop(l, args);
            let why = if resumable {
                c"too many arguments to resume"
            } else {
                c"cannot resume dead coroutine"
            };
            to_suspend(l, co, false, |l| {
                ffi::lua_pushstring(l, why.as_ptr());
                1
            });
            return;
        }
        ffi::lua_xmove(l, thread, args);
        let mut results = 0;
        crate::profile::enter(l, co);
        let status = ffi::lua_resume(thread, l, args, &mut results);
        crate::profile::leave(l, co);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            to_suspend(l, co, false, |l| {
                ffi::lua_xmove(thread, l, 1);
                1
            });
            return;
        }
        if ffi::lua_checkstack(l, results + 4) == 0 {
            ffi::lua_pop(thread, results);
            to_suspend(l, co, false, |l| {
                ffi::lua_pushstring(l, c"too many results to resume".as_ptr());
                1
            });
            return;
        }
        if status == ffi::LUA_YIELD {
            let command = yielded(thread, results);
            let plain = match command {
                Yielded::Suspend => true,
                Yielded::End => finish_job(l, co),
                Yielded::Other => false,
            };
            if plain {
                ffi::lua_pop(thread, results);
                if queued(l, Slot::WakeupQueue) || queued(l, Slot::ErrorQueue) {
                    Slot::Wakeup.push(l);
                    ffi::lua_call(l, 0, 0);
                }
                return;
            }
        }
        to_suspend(l, co, true, |l| {
            ffi::lua_xmove(thread, l, results);
            results
        });
    }
}

/// Calls skynet.lua's `suspend(co, ok, ...)` with what `push` pushes (returning how many).
///
/// # Safety
/// Inside [`message`].
unsafe fn to_suspend(
    l: *mut ffi::lua_State,
    co: c_int,
    ok: bool,
    push: impl FnOnce(*mut ffi::lua_State) -> c_int,
) {
    // SAFETY: the caller's contract.
    unsafe {
        Slot::Suspend.push(l);
        ffi::lua_pushvalue(l, co);
        ffi::lua_pushboolean(l, c_int::from(ok));
        let n = push(l);
        ffi::lua_call(l, 2 + n, 0);
    }
}

/// What a coroutine yielded, as far as this module handles it.
enum Yielded {
    /// `"SUSPEND"`: it waits (a call, a sleep).
    Suspend,
    /// `"END", f`: a pooled coroutine finished its job `f`.
    End,
    /// Anything else, for skynet.lua's `suspend`.
    Other,
}

/// Reads the `results` values a coroutine yielded (left on its stack).
///
/// # Safety
/// `thread` valid, with at least `results` values.
unsafe fn yielded(thread: *mut ffi::lua_State, results: c_int) -> Yielded {
    // SAFETY: the caller's contract.
    unsafe {
        if !(1..=2).contains(&results) || ffi::lua_type(thread, -results) != ffi::LUA_TSTRING {
            return Yielded::Other;
        }
        let mut len = 0usize;
        let text = ffi::lua_tolstring(thread, -results, &mut len);
        match (std::slice::from_raw_parts(text.cast::<u8>(), len), results) {
            (b"SUSPEND", 1) => Yielded::Suspend,
            (b"END", 2) => Yielded::End,
            _ => Yielded::Other,
        }
    }
}

/// skynet.lua's `finish_job` for the coroutine at `co`, when there is neither a trace to end
/// nor an unanswered request to warn of: forgets its request and pools it. False (nothing
/// done) otherwise.
///
/// # Safety
/// Inside [`message`]; `co` holds a coroutine.
unsafe fn finish_job(l: *mut ffi::lua_State, co: c_int) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        if traced(l, co) {
            return false;
        }
        let top = ffi::lua_gettop(l);
        let sessions = Slot::CoroutineSession.at();
        ffi::lua_pushvalue(l, co);
        let answered = match ffi::lua_rawget(l, sessions) {
            ffi::LUA_TNIL => true,
            ffi::LUA_TNUMBER => ffi::lua_tointeger(l, -1) == 0,
            _ => false,
        };
        if !answered {
            ffi::lua_settop(l, top);
            return false;
        }
        let addresses = Slot::CoroutineAddress.at();
        ffi::lua_pushvalue(l, co);
        if ffi::lua_rawget(l, addresses) != ffi::LUA_TNIL {
            for table in [sessions, addresses] {
                ffi::lua_pushvalue(l, co);
                ffi::lua_pushnil(l);
                ffi::lua_rawset(l, table);
            }
        }
        ffi::lua_settop(l, top);
        let n = ffi::lua_rawlen(l, Slot::Pool.at()) as ffi::lua_Integer;
        ffi::lua_pushvalue(l, co);
        ffi::lua_rawseti(l, Slot::Pool.at(), n + 1);
        true
    }
}

/// Whether the queue (`wakeup_queue`, `error_queue`) has a first entry.
///
/// # Safety
/// Inside [`message`].
unsafe fn queued(l: *mut ffi::lua_State, queue: Slot) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        let some = ffi::lua_rawgeti(l, queue.at(), 1) != ffi::LUA_TNIL;
        ffi::lua_pop(l, 1);
        some
    }
}

/// Whether `fork_queue` holds coroutines to run (`h <= t`).
///
/// # Safety
/// Inside [`message`].
unsafe fn forks_wait(l: *mut ffi::lua_State) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        Key::Head.get(l, Slot::ForkQueue.at());
        Key::Tail.get(l, Slot::ForkQueue.at());
        let waiting = ffi::lua_compare(l, -2, -1, ffi::LUA_OPLE) != 0;
        ffi::lua_pop(l, 2);
        waiting
    }
}
