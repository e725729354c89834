//! WASI preview 1 (`wasi_snapshot_preview1`) for guests: every import a `wasm32-wasip1`
//! program may link, each decided on its own (the table in docs/abi.md §8).
//!
//! A service has no files, no sockets, no arguments and no environment: stdin reads as
//! empty, stdout and stderr become log lines from the service (one per `\n`), the clocks
//! and `random_get` are the host's, and everything that would reach a file system or a
//! socket answers an honest errno at once. Nothing here blocks a worker past the running
//! call's CPU limit: `poll_oneoff` waits only for clock deadlines that fit in what is left
//! of that limit — in slices, so `KILL`, `SIGNAL 0` and node stop end the wait within one
//! epoch period — and the wait is charged to the call like guest code is; a longer wait is
//! refused with `ENOTSUP` and a log line (a service sleeps with the `timeout` command, as
//! in skynet). `sched_yield` returns at once.
//!
//! These functions run on any thread a guest runs on — workers, and the network thread
//! that assists them — and use no async runtime (wasmtime-wasi's synchronous preview 1
//! drives each call through a tokio `block_on`, which panics on the network thread).
//!
//! Guest pointers are checked: a range outside the guest's memory answers `EFAULT`.

use std::time::{Instant, SystemTime};

use wasmtime::{Caller, Extern, FuncType, Linker, Memory, Val, ValType};

use super::budget::{Budget, Exhausted};

mod poll;

/// The import module name.
pub(crate) const MODULE: &str = "wasi_snapshot_preview1";

/// WASI's errno values (the subset answered here).
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOSYS: i32 = 52;
    pub const NOTDIR: i32 = 54;
    pub const NOTSUP: i32 = 58;
    pub const SPIPE: i32 = 70;
}

/// Longest partial line kept before it is logged anyway.
const MAX_LINE: usize = 16 << 10;

/// Most bytes one `fd_write` takes (a short write: the guest's libc writes the rest with
/// the next call, so a huge write is guest work the CPU limit sees, not one long host call).
const MAX_WRITE: usize = 64 << 10;

/// Most buffers one `fd_write` takes (`EINVAL` beyond, as POSIX `writev` past `IOV_MAX`).
const MAX_IOVECS: u32 = 1024;

/// Bytes `random_get` fills between two checks for an interruption.
const RANDOM_CHUNK: usize = 1 << 20;

/// What the WASI functions need from a Store's data.
pub(crate) trait WasiHost: Send + 'static {
    /// The guest's standard streams.
    fn stdio(&mut self) -> &mut Stdio;

    /// Where the guest's exported memory is cached once found.
    fn memory_slot(&mut self) -> &mut Option<Memory>;

    /// Handles a complete line (or a partial one past [`MAX_LINE`]) written to stdout or
    /// stderr.
    fn output_line(&mut self, line: &[u8]);

    /// The error to trap with when the running call must stop now (`KILL`, `SIGNAL 0`,
    /// node stop), if it must.
    fn interruption(&self) -> Option<wasmtime::Error>;

    /// The error to trap with when the running call ran out of its CPU budget.
    fn out_of_budget(&self, exhausted: Exhausted) -> wasmtime::Error;

    /// Reports a refused request (a wait past the CPU limit) to the operator.
    fn refused(&mut self, what: &str);
}

/// A guest's stdin, stdout and stderr: which are closed, and the partial output line.
#[derive(Debug, Default)]
pub(crate) struct Stdio {
    closed: [bool; 3],
    pending: Vec<u8>,
}

impl Stdio {
    fn is_open(&self, fd: u32) -> bool {
        (fd as usize) < self.closed.len() && !self.closed[fd as usize]
    }

    /// Appends written bytes; calls `emit` for every complete line and for a partial line
    /// that grew past [`MAX_LINE`].
    fn write(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            emit(&self.pending[start..start + end]);
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            emit(&line);
        }
    }

    /// The partial line not yet emitted (when the service ends).
    pub(crate) fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// The functions that only answer an errno, with nothing to read or write: name,
/// parameter types (`I` i32, `L` i64), which parameter is a descriptor (if any), and the
/// errno for an open standard stream there (any other descriptor answers `EBADF`: a guest
/// has no files, directories or WASI sockets).
const ERRNO_ONLY: &[(&str, &str, Option<usize>, i32)] = &[
    ("args_get", "II", None, errno::SUCCESS),
    ("environ_get", "II", None, errno::SUCCESS),
    // Nothing is preopened: wasi-libc stops looking for directories at the first EBADF.
    ("fd_prestat_get", "II", None, errno::BADF),
    ("fd_prestat_dir_name", "III", None, errno::BADF),
    // Standard streams are neither files nor directories.
    ("fd_seek", "ILII", Some(0), errno::SPIPE),
    ("fd_tell", "II", Some(0), errno::SPIPE),
    ("fd_pread", "IIILI", Some(0), errno::SPIPE),
    ("fd_pwrite", "IIILI", Some(0), errno::SPIPE),
    ("fd_advise", "ILLI", Some(0), errno::SPIPE),
    ("fd_datasync", "I", Some(0), errno::INVAL),
    ("fd_sync", "I", Some(0), errno::INVAL),
    ("fd_filestat_set_size", "IL", Some(0), errno::INVAL),
    ("fd_allocate", "ILL", Some(0), errno::NOTSUP),
    ("fd_fdstat_set_flags", "II", Some(0), errno::NOTSUP),
    ("fd_fdstat_set_rights", "ILL", Some(0), errno::NOTSUP),
    ("fd_filestat_set_times", "ILLI", Some(0), errno::NOTSUP),
    ("fd_renumber", "II", Some(0), errno::NOTSUP),
    ("fd_readdir", "IIILI", Some(0), errno::NOTDIR),
    ("path_create_directory", "III", Some(0), errno::NOTDIR),
    ("path_filestat_get", "IIIII", Some(0), errno::NOTDIR),
    ("path_filestat_set_times", "IIIILLI", Some(0), errno::NOTDIR),
    ("path_link", "IIIIIII", Some(0), errno::NOTDIR),
    ("path_open", "IIIIILLII", Some(0), errno::NOTDIR),
    ("path_readlink", "IIIIII", Some(0), errno::NOTDIR),
    ("path_remove_directory", "III", Some(0), errno::NOTDIR),
    ("path_rename", "IIIIII", Some(0), errno::NOTDIR),
    ("path_symlink", "IIIII", Some(2), errno::NOTDIR),
    ("path_unlink_file", "III", Some(0), errno::NOTDIR),
    // Sockets are the host's socket imports.
    ("sock_accept", "III", Some(0), errno::NOTSUP),
    ("sock_recv", "IIIIII", Some(0), errno::NOTSUP),
    ("sock_send", "IIIII", Some(0), errno::NOTSUP),
    ("sock_shutdown", "II", Some(0), errno::NOTSUP),
    ("proc_raise", "I", None, errno::NOSYS),
    // Yielding the thread would help no other service: the guest returns to the
    // scheduler when its message is done.
    ("sched_yield", "", None, errno::SUCCESS),
];

/// Registers every preview 1 function for stores whose data is a `T`.
///
/// # Errors
/// Only if a name is registered twice (a bug).
pub(crate) fn add_to_linker<T: WasiHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "args_sizes_get", sizes_get::<T>)?;
    linker.func_wrap(MODULE, "environ_sizes_get", sizes_get::<T>)?;
    linker.func_wrap(MODULE, "clock_res_get", clock_res_get::<T>)?;
    linker.func_wrap(MODULE, "clock_time_get", clock_time_get::<T>)?;
    linker.func_wrap(MODULE, "fd_write", fd_write::<T>)?;
    linker.func_wrap(MODULE, "fd_read", fd_read::<T>)?;
    linker.func_wrap(MODULE, "fd_close", fd_close::<T>)?;
    linker.func_wrap(MODULE, "fd_fdstat_get", fd_fdstat_get::<T>)?;
    linker.func_wrap(MODULE, "fd_filestat_get", fd_filestat_get::<T>)?;
    linker.func_wrap(MODULE, "poll_oneoff", poll::poll_oneoff::<T>)?;
    linker.func_wrap(MODULE, "random_get", random_get::<T>)?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, T>, code: u32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "exited with code {code} (proc_exit)"
            )))
        },
    )?;
    let engine = linker.engine().clone();
    for &(name, params, fd_at, stdio_errno) in ERRNO_ONLY {
        let params = params.chars().map(|p| match p {
            'L' => ValType::I64,
            _ => ValType::I32,
        });
        let ty = FuncType::new(&engine, params, [ValType::I32]);
        linker.func_new(MODULE, name, ty, move |mut caller, args, results| {
            let answer = match fd_at.and_then(|at| args.get(at)).and_then(Val::i32) {
                Some(fd) if !caller.data_mut().stdio().is_open(fd as u32) => errno::BADF,
                _ => stdio_errno,
            };
            results[0] = Val::I32(answer);
            Ok(())
        })?;
    }
    Ok(())
}

/// The guest's memory and the store's data, borrowed together.
fn guest<'a, T: WasiHost>(caller: &'a mut Caller<'_, T>) -> Option<(&'a mut [u8], &'a mut T)> {
    let memory = match *caller.data_mut().memory_slot() {
        Some(memory) => memory,
        None => {
            let memory = caller
                .get_export(skywasm_abi::export::MEMORY)
                .and_then(Extern::into_memory)?;
            *caller.data_mut().memory_slot() = Some(memory);
            memory
        }
    };
    Some(memory.data_and_store_mut(caller))
}

/// `[ptr, ptr + len)` of `memory`, if it lies inside.
fn range(memory: &[u8], ptr: u32, len: usize) -> Option<std::ops::Range<usize>> {
    crate::abi::memory::checked_range(memory.len(), ptr, len)
}

fn put_u32(memory: &mut [u8], ptr: u32, value: u32) -> Result<(), i32> {
    let at = range(memory, ptr, 4).ok_or(errno::FAULT)?;
    memory[at].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn put_u64(memory: &mut [u8], ptr: u32, value: u64) -> Result<(), i32> {
    let at = range(memory, ptr, 8).ok_or(errno::FAULT)?;
    memory[at].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn get_u32(memory: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(memory.get(at..at + 4)?.try_into().ok()?))
}

fn get_u64(memory: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(memory.get(at..at + 8)?.try_into().ok()?))
}

/// An errno from a result whose error is one.
fn answer(result: Result<(), i32>) -> i32 {
    result.err().unwrap_or(errno::SUCCESS)
}

/// `args_sizes_get` / `environ_sizes_get`: no arguments, no environment.
fn sizes_get<T: WasiHost>(mut caller: Caller<'_, T>, count: u32, bytes: u32) -> i32 {
    let Some((memory, _)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    answer(put_u32(memory, count, 0).and_then(|()| put_u32(memory, bytes, 0)))
}

/// The clock ids of preview 1.
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// Nanoseconds on clock `id`: realtime since the Unix epoch, monotonic since a fixed origin.
fn now_ns(id: u32) -> Result<u64, i32> {
    match id {
        CLOCK_REALTIME => Ok(SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))),
        CLOCK_MONOTONIC => {
            static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            let origin = *ORIGIN.get_or_init(Instant::now);
            Ok(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
        }
        // The process and thread CPU clocks would measure the host, not the guest.
        _ => Err(errno::INVAL),
    }
}

fn clock_res_get<T: WasiHost>(mut caller: Caller<'_, T>, id: u32, out: u32) -> i32 {
    if let Err(errno) = now_ns(id) {
        return errno;
    }
    let Some((memory, _)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    answer(put_u64(memory, out, 1))
}

fn clock_time_get<T: WasiHost>(
    mut caller: Caller<'_, T>,
    id: u32,
    _precision: u64,
    out: u32,
) -> i32 {
    let now = match now_ns(id) {
        Ok(now) => now,
        Err(errno) => return errno,
    };
    let Some((memory, _)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    answer(put_u64(memory, out, now))
}

/// Writes to stdout or stderr (at most [`MAX_WRITE`] bytes per call: a short write).
fn fd_write<T: WasiHost>(
    mut caller: Caller<'_, T>,
    fd: u32,
    iovs: u32,
    count: u32,
    out: u32,
) -> i32 {
    let Some((memory, state)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    if fd == 0 || !state.stdio().is_open(fd) {
        return errno::BADF;
    }
    if count > MAX_IOVECS {
        return errno::INVAL;
    }
    let Some(list) = range(memory, iovs, (count as usize).saturating_mul(8)) else {
        return errno::FAULT;
    };
    let mut taken = Vec::new();
    for entry in memory[list].chunks_exact(8) {
        let (Some(ptr), Some(len)) = (get_u32(entry, 0), get_u32(entry, 4)) else {
            return errno::FAULT;
        };
        let Some(bytes) = range(memory, ptr, len as usize) else {
            return errno::FAULT;
        };
        let room = MAX_WRITE - taken.len();
        taken.extend_from_slice(&memory[bytes][..(len as usize).min(room)]);
        if taken.len() == MAX_WRITE {
            break;
        }
    }
    let mut lines = Vec::new();
    state
        .stdio()
        .write(&taken, |line| lines.push(line.to_vec()));
    for line in lines {
        state.output_line(&line);
    }
    answer(put_u32(memory, out, taken.len() as u32))
}

/// Reads from stdin: always at its end. Any other descriptor is not open for reading.
fn fd_read<T: WasiHost>(
    mut caller: Caller<'_, T>,
    fd: u32,
    _iovs: u32,
    _count: u32,
    out: u32,
) -> i32 {
    let Some((memory, state)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    if fd != 0 || !state.stdio().is_open(fd) {
        return errno::BADF;
    }
    answer(put_u32(memory, out, 0))
}

fn fd_close<T: WasiHost>(mut caller: Caller<'_, T>, fd: u32) -> i32 {
    let stdio = caller.data_mut().stdio();
    if !stdio.is_open(fd) {
        return errno::BADF;
    }
    stdio.closed[fd as usize] = true;
    errno::SUCCESS
}

/// Rights of stdin and of stdout/stderr (`fd_read` or `fd_write`, plus `poll_fd_readwrite`).
const RIGHTS_READ: u64 = (1 << 1) | (1 << 27);
const RIGHTS_WRITE: u64 = (1 << 6) | (1 << 27);

fn fd_fdstat_get<T: WasiHost>(mut caller: Caller<'_, T>, fd: u32, out: u32) -> i32 {
    let Some((memory, state)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    match stdio_record(memory, state.stdio(), fd, out, 24) {
        Ok(stat) => {
            // filetype 0 (unknown: not a terminal, not a file), no flags.
            let rights = if fd == 0 { RIGHTS_READ } else { RIGHTS_WRITE };
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            errno::SUCCESS
        }
        Err(errno) => errno,
    }
}

fn fd_filestat_get<T: WasiHost>(mut caller: Caller<'_, T>, fd: u32, out: u32) -> i32 {
    let Some((memory, state)) = guest(&mut caller) else {
        return errno::FAULT;
    };
    // Every field zero: an unknown file type of no size.
    answer(stdio_record(memory, state.stdio(), fd, out, 64).map(|_| ()))
}

/// The `size` bytes at `out`, zeroed, for a record about standard stream `fd`: `EBADF`
/// when it is not open, `EFAULT` when the record does not fit in memory.
fn stdio_record<'a>(
    memory: &'a mut [u8],
    stdio: &Stdio,
    fd: u32,
    out: u32,
    size: usize,
) -> Result<&'a mut [u8], i32> {
    if !stdio.is_open(fd) {
        return Err(errno::BADF);
    }
    let at = range(memory, out, size).ok_or(errno::FAULT)?;
    let record = &mut memory[at];
    record.fill(0);
    Ok(record)
}

/// Fills the buffer from the host's random source, in chunks between which an interruption
/// is honoured; the time it took is charged to the running call.
fn random_get<T: WasiHost>(mut caller: Caller<'_, T>, ptr: u32, len: u32) -> wasmtime::Result<i32> {
    let started = Instant::now();
    let Some((memory, state)) = guest(&mut caller) else {
        return Ok(errno::FAULT);
    };
    let Some(at) = range(memory, ptr, len as usize) else {
        return Ok(errno::FAULT);
    };
    let mut charged = started;
    for chunk in memory[at].chunks_mut(RANDOM_CHUNK) {
        if let Some(interrupted) = state.interruption() {
            return Err(interrupted);
        }
        if getrandom::fill(chunk).is_err() {
            return Ok(errno::NOSYS);
        }
        let now = Instant::now();
        Budget::charge(now - charged).map_err(|exhausted| state.out_of_budget(exhausted))?;
        charged = now;
    }
    Ok(errno::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_and_long_partial_lines_are_flushed() {
        let mut stdio = Stdio::default();
        let mut lines: Vec<String> = Vec::new();
        let mut emit = |line: &[u8]| lines.push(String::from_utf8_lossy(line).into_owned());
        stdio.write(b"one\ntwo", &mut emit);
        stdio.write(b" more\n\nthree", &mut emit);
        assert_eq!(lines, ["one", "two more", ""]);
        assert_eq!(stdio.take_rest(), b"three");
        let mut long = 0;
        stdio.write(&vec![b'x'; MAX_LINE + 1], |line| long = line.len());
        assert_eq!(long, MAX_LINE + 1);
        assert!(stdio.take_rest().is_empty());
    }
}
