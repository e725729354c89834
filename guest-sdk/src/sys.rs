//! The raw host imports (`docs/abi.md`). Outside wasm (unit tests, docs on the build
//! machine) there is no host: these functions then panic with an explanation.

#[cfg(target_family = "wasm")]
mod imports {
    #[link(wasm_import_module = "skywasm")]
    extern "C" {
        pub fn send(dest: u32, ptype: u32, session: i32, ptr: *const u8, len: usize) -> i32;
        pub fn send_name(
            name: *const u8,
            name_len: usize,
            ptype: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn call(dest: u32, ptype: u32, ptr: *const u8, len: usize) -> i32;
        pub fn call_name(
            name: *const u8,
            name_len: usize,
            ptype: u32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn redirect(
            dest: u32,
            source: u32,
            ptype: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn timeout(centiseconds: i32) -> i32;
        pub fn genid() -> i32;
        pub fn self_handle() -> u32;
        pub fn now() -> i64;
        pub fn hpc() -> i64;
        pub fn command(
            cmd: *const u8,
            cmd_len: usize,
            param: *const u8,
            param_len: usize,
            out: *mut u8,
            out_cap: usize,
        ) -> i32;
        pub fn log(ptr: *const u8, len: usize);
    }
}

#[cfg(target_family = "wasm")]
mod safe {
    use super::imports;

    pub fn send(dest: u32, ptype: u32, session: i32, data: &[u8]) -> i32 {
        // SAFETY: the host reads `data.len()` bytes at `data.as_ptr()`, which we own.
        unsafe { imports::send(dest, ptype, session, data.as_ptr(), data.len()) }
    }
    pub fn send_name(name: &str, ptype: u32, session: i32, data: &[u8]) -> i32 {
        // SAFETY: as `send`, for both slices.
        unsafe {
            imports::send_name(
                name.as_ptr(),
                name.len(),
                ptype,
                session,
                data.as_ptr(),
                data.len(),
            )
        }
    }
    pub fn call(dest: u32, ptype: u32, data: &[u8]) -> i32 {
        // SAFETY: as `send`.
        unsafe { imports::call(dest, ptype, data.as_ptr(), data.len()) }
    }
    pub fn call_name(name: &str, ptype: u32, data: &[u8]) -> i32 {
        // SAFETY: as `send`, for both slices.
        unsafe { imports::call_name(name.as_ptr(), name.len(), ptype, data.as_ptr(), data.len()) }
    }
    pub fn redirect(dest: u32, source: u32, ptype: u32, session: i32, data: &[u8]) -> i32 {
        // SAFETY: as `send`.
        unsafe { imports::redirect(dest, source, ptype, session, data.as_ptr(), data.len()) }
    }
    pub fn timeout(centiseconds: i32) -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::timeout(centiseconds) }
    }
    pub fn genid() -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::genid() }
    }
    pub fn self_handle() -> u32 {
        // SAFETY: no pointers.
        unsafe { imports::self_handle() }
    }
    pub fn now() -> i64 {
        // SAFETY: no pointers.
        unsafe { imports::now() }
    }
    pub fn hpc() -> i64 {
        // SAFETY: no pointers.
        unsafe { imports::hpc() }
    }
    pub fn command(cmd: &str, param: &str, out: &mut [u8]) -> i32 {
        // SAFETY: the host reads the two strings and writes at most `out.len()` bytes to `out`.
        unsafe {
            imports::command(
                cmd.as_ptr(),
                cmd.len(),
                param.as_ptr(),
                param.len(),
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }
    pub fn log(text: &[u8]) {
        // SAFETY: the host reads `text`.
        unsafe { imports::log(text.as_ptr(), text.len()) }
    }
}

#[cfg(not(target_family = "wasm"))]
mod safe {
    const NO_HOST: &str =
        "skywasm host functions exist only inside a skywasm node (build for wasm32-wasip1)";
    pub fn send(_: u32, _: u32, _: i32, _: &[u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn send_name(_: &str, _: u32, _: i32, _: &[u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn call(_: u32, _: u32, _: &[u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn call_name(_: &str, _: u32, _: &[u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn redirect(_: u32, _: u32, _: u32, _: i32, _: &[u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn timeout(_: i32) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn genid() -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn self_handle() -> u32 {
        panic!("{NO_HOST}")
    }
    pub fn now() -> i64 {
        panic!("{NO_HOST}")
    }
    pub fn hpc() -> i64 {
        panic!("{NO_HOST}")
    }
    pub fn command(_: &str, _: &str, _: &mut [u8]) -> i32 {
        panic!("{NO_HOST}")
    }
    pub fn log(_: &[u8]) {
        panic!("{NO_HOST}")
    }
}

pub(crate) use safe::*;
