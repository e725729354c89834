//! The `load_source` host function: a Lua service script or module, found by the host along
//! the node's search paths (see [`crate::source`]), so snlua never opens host files itself.
//!
//! `load_source(kind, name_ptr, name_len, out_ptr, out_cap) -> i32`: on success writes up to
//! `out_cap` bytes of the answer (pattern, NUL, path, NUL, bytes) and returns its full length;
//! a guest whose buffer was too small repeats the call with a larger one. Failures:
//! `NOT_FOUND` (no file on any path of the pattern list; the guest can name them, it reads
//! the list with `GETENV`), `INVALID_ARGUMENT` (unknown kind, a name
//! that is not UTF-8 or could leave the search path), `DENIED` (a service script an
//! untrusted tenant may not launch: it reads its own and those of its `launch` list; a snax
//! file of a tenant that may not launch snaxd; a data file outside the service's
//! `lua_data_path`, or any for an untrusted tenant granted none), `TOO_LARGE` (a data file
//! over `lua_data_max` or the service's memory limit).

use skywasm_abi::{error, import, source as kind, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{check, read_str, write_answer};
use crate::source::{self, DataRefused, Kind, Missing};
use crate::wasm::WasmState;

/// Whether `core`'s service may read the service script `name`: any for a trusted
/// tenant; for an untrusted one, its own script (the first word of its arguments) and the
/// scripts its tenant may launch, not every file on `luaservice`.
fn may_read_script(core: &crate::service::ServiceCore, name: &str) -> bool {
    let tenant = core.service().tenant();
    if tenant.is_trusted() {
        return true;
    }
    let args = core.service().args();
    args.split_whitespace().next() == Some(name) || tenant.spec.may_launch("snlua", name)
}

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::LOAD_SOURCE,
        |mut caller: Caller<'_, WasmState>,
         which: u32,
         name_ptr: u32,
         name_len: u32,
         out_ptr: u32,
         out_cap: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::LOAD_SOURCE;
            check(&mut caller, NAME, out_ptr, out_cap)?;
            let Some(name) = read_str(&mut caller, NAME, name_ptr, name_len)? else {
                return Ok(error::INVALID_ARGUMENT);
            };
            let state = caller.data();
            let node = &state.core.node;
            let setting =
                |key: &str, default: &str| node.getenv(key).unwrap_or_else(|| default.to_string());
            let found = match which {
                kind::SERVICE => {
                    if !may_read_script(&state.core, &name) {
                        return Ok(crate::command::deny(
                            &state.core,
                            NAME,
                            &name,
                            "the tenant may not launch that script",
                        )
                        .code());
                    }
                    let found = source::find(
                        Kind::Service,
                        &name,
                        &setting("luaservice", source::DEFAULT_SERVICE_PATH),
                    );
                    if let Ok(found) = &found {
                        let dir = source::service_dir(&found.pattern, &name);
                        caller.data_mut().service_dir = dir.map(String::into_boxed_str);
                    }
                    found
                }
                kind::MODULE => source::find(
                    Kind::Module,
                    &name,
                    &source::module_path(
                        state.service_dir.as_deref(),
                        &setting("lua_path", source::DEFAULT_MODULE_PATH),
                    ),
                ),
                kind::SNAX => {
                    let core = &state.core;
                    if !core.service().tenant().is_trusted()
                        && !core.service().tenant().spec.may_launch("snlua", "snaxd")
                    {
                        return Ok(crate::command::deny(
                            core,
                            NAME,
                            &name,
                            "the tenant may not launch snaxd",
                        )
                        .code());
                    }
                    let found = source::find(
                        Kind::Service,
                        &name,
                        &setting("snax", source::DEFAULT_SERVICE_PATH),
                    );
                    // snaxd running this file takes the file's directory as its own, as
                    // skynet's snaxd puts it before package.path.
                    let args = core.service().args();
                    let mut words = args.split_whitespace();
                    let runs_it = words.next() == Some("snaxd") && words.next() == Some(&*name);
                    if let (true, Ok(found)) = (runs_it, &found) {
                        let dir = source::snax_dir(&found.pattern, &name);
                        caller.data_mut().service_dir = dir.map(String::into_boxed_str);
                    }
                    found
                }
                kind::DATA => {
                    let core = &state.core;
                    let tenant = core.service().tenant();
                    let dirs = match &tenant.spec.lua_data_path {
                        Some(dirs) => dirs.clone(),
                        None if tenant.is_trusted() => node
                            .getenv("lua_data_path")
                            .map(|path| {
                                path.split(';')
                                    .map(str::trim)
                                    .filter(|d| !d.is_empty())
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        None => {
                            return Ok(crate::command::deny(
                                core,
                                NAME,
                                &name,
                                "the tenant was granted no lua_data_path",
                            )
                            .code())
                        }
                    };
                    // The bytes land in the service's memory: never more than it may hold.
                    let max = node.config.lua_data_max.min(tenant.spec.limits.memory);
                    match source::read_data(&name, &dirs, max) {
                        Ok(found) => Ok(found),
                        Err(DataRefused::NotFound) => return Ok(error::NOT_FOUND),
                        Err(DataRefused::Outside) => return Ok(error::DENIED),
                        Err(DataRefused::NotAFile) => return Ok(error::INVALID_ARGUMENT),
                        Err(DataRefused::TooLarge) => return Ok(error::TOO_LARGE),
                    }
                }
                kind::PRELOAD => match node.getenv("preload") {
                    Some(path) => source::read_file(&path),
                    None => return Ok(error::NOT_FOUND),
                },
                kind::FILE => {
                    if !state.core.capabilities.files {
                        return Ok(error::DENIED);
                    }
                    source::read_file(&name)
                }
                _ => return Ok(error::INVALID_ARGUMENT),
            };
            match found {
                Ok(found) => write_answer(&mut caller, NAME, out_ptr, out_cap, &found.encode()),
                Err(Missing::BadName) => Ok(error::INVALID_ARGUMENT),
                Err(Missing::NotFound(_)) => Ok(error::NOT_FOUND),
            }
        },
    )?;
    Ok(())
}
