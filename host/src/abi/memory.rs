//! Checked access to a guest's linear memory. Every pointer and length a guest passes is
//! checked here against the memory's current size; a range outside it is ABI misuse and
//! traps with the function's name and the offending range.

use wasmtime::Caller;

use crate::wasm::WasmState;

/// A trap for a host function called with a bad argument.
pub(crate) fn misuse(function: &str, why: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::msg(format!("skywasm.{function}: {why}"))
}

/// The caller's memory: cached after instantiation, looked up by export name when a host
/// function runs earlier (from the module's start function).
fn memory(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
) -> wasmtime::Result<wasmtime::Memory> {
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
    let memory = caller
        .get_export(skywasm_abi::export::MEMORY)
        .and_then(|e| e.into_memory())
        .ok_or_else(|| misuse(function, "the guest exports no memory"))?;
    caller.data_mut().memory = Some(memory);
    Ok(memory)
}

/// Copies `len` bytes at `ptr` out of the caller's memory.
pub(crate) fn copy_in(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Box<[u8]>> {
    if len == 0 {
        return Ok(Box::default());
    }
    let memory = memory(caller, function)?;
    let data = memory.data(&*caller);
    let range = checked_range(data.len(), ptr, len as usize)
        .ok_or_else(|| out_of_bounds(function, ptr, len, data.len()))?;
    Ok(data[range].into())
}

/// Reads a UTF-8 string argument; `None` if the bytes are not UTF-8.
pub(crate) fn read_str(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Option<String>> {
    let bytes = copy_in(caller, function, ptr, len)?;
    Ok(String::from_utf8(bytes.into_vec()).ok())
}

/// Checks that `[ptr, ptr+len)` lies in the caller's memory without copying.
pub(crate) fn check(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let memory = memory(caller, function)?;
    let size = memory.data_size(&*caller);
    checked_range(size, ptr, len as usize)
        .map(|_| ())
        .ok_or_else(|| out_of_bounds(function, ptr, len, size))
}

/// Answers into the guest's `[out_ptr, out_ptr + out_cap)` (checked with [`check`]): writes
/// what fits of `answer` and returns its full length, so a guest whose buffer was too small
/// can ask again with a larger one.
pub(crate) fn write_answer(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    out_ptr: u32,
    out_cap: u32,
    answer: &[u8],
) -> wasmtime::Result<i32> {
    let written = answer.len().min(out_cap as usize);
    copy_out(caller, function, out_ptr, &answer[..written])?;
    Ok(i32::try_from(answer.len()).unwrap_or(i32::MAX))
}

/// Writes `bytes` at `ptr` (the caller checked the range with [`check`]).
pub(crate) fn copy_out(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    bytes: &[u8],
) -> wasmtime::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let len = bytes.len() as u32;
    let memory = memory(caller, function)?;
    let data = memory.data_mut(&mut *caller);
    let size = data.len();
    let range = checked_range(size, ptr, len as usize)
        .ok_or_else(|| out_of_bounds(function, ptr, len, size))?;
    data[range].copy_from_slice(bytes);
    Ok(())
}

/// `[ptr, ptr + len)` when it lies inside a guest memory of `size` bytes (computed without
/// overflow); the WASI functions use it too.
pub(crate) fn checked_range(size: usize, ptr: u32, len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

fn out_of_bounds(function: &str, ptr: u32, len: u32, size: usize) -> wasmtime::Error {
    misuse(
        function,
        format_args!("range [{ptr:#x}, +{len}) is outside the guest's memory ({size} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::checked_range;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(checked_range(100, 0, 100), Some(0..100));
        assert_eq!(checked_range(100, 99, 1), Some(99..100));
        assert_eq!(checked_range(100, 100, 1), None);
        assert_eq!(checked_range(100, u32::MAX, u32::MAX as usize), None);
        assert_eq!(checked_range(65536, 1, u32::MAX as usize), None);
        assert_eq!(checked_range(16, u32::MAX, usize::MAX), None);
    }
}
