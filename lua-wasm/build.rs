//! Builds the Lua 5.4 that snlua links: the sources shipped in the `lua-src` crate, patched
//! with `patches/*.patch` (yields from Lua code return instead of throwing), compiled
//!
//! for `wasm32-wasip1` with clang, setjmp/longjmp lowered to wasm exceptions
//! (`-mllvm -wasm-enable-sjlj`), and the runtime for that in `csrc/setjmp.c`. For any other
//! target (the workspace's host-side lints) the crate is empty and nothing is built.
//!
//! Lua's own sources stay out of this repository: only the patch is ours.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `lua-src` release whose `lua-5.4.9/` directory we build (pinned in Cargo.toml).
const LUA_SRC_VERSION: &str = "551.0.2";
const LUA_DIR: &str = "lua-5.4.9";
/// Lua's standalone programs, not part of the library.
const NOT_LIBRARY: &[&str] = &["lua.c", "luac.c", "onelua.c"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let target = env("TARGET");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=patches");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=SKYWASM_CLANG");
    if target != "wasm32-wasip1" {
        return;
    }

    let pristine = find_lua_sources(&manifest_dir);
    let source = out_dir.join("lua");
    copy_patched(&pristine, &manifest_dir.join("patches"), &source);

    let mut build = cc::Build::new();
    build
        .include(&source)
        .warnings(false)
        .flag_if_supported("-fno-common")
        .define("LUA_COMPAT_5_3", None)
        // A fixed string-hash seed: the state is built once and snapshotted (host
        // pre-initialization), and a fixed seed keeps the snapshot, and so its compiled
        // form in the node's cache, identical from run to run.
        .define("luai_makeseed(L)", Some("0x5eed5eedu"))
        .opt_level(3);
    configure_wasm(&mut build, &manifest_dir);
    build.file(manifest_dir.join("csrc/setjmp.c"));
    build.file(manifest_dir.join("csrc/reseed.c"));
    for entry in std::fs::read_dir(&source).expect("patched sources were just written") {
        let path = entry.expect("readable directory").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".c") && !NOT_LIBRARY.contains(&name) {
            build.file(&path);
        }
    }
    build.compile("lua54");
    println!("cargo:include={}", source.display());
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}

/// The `lua-5.4.9/` directory of the `lua-src` crate (a build-dependency, so cargo has
/// unpacked it before this script runs): in cargo's registry, else through `cargo metadata`
/// (vendored or otherwise relocated sources).
fn find_lua_sources(manifest_dir: &Path) -> PathBuf {
    let dir = find_in_registry().unwrap_or_else(|| find_with_metadata(manifest_dir));
    println!("cargo:rerun-if-changed={}", dir.display());
    dir
}

/// `$CARGO_HOME/registry/src/<index>/lua-src-<version>/lua-5.4.9`, if it is there.
fn find_in_registry() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    let crate_dir = format!("lua-src-{LUA_SRC_VERSION}");
    std::fs::read_dir(cargo_home.join("registry/src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|index| index.path().join(&crate_dir).join(LUA_DIR))
        .find(|dir| dir.join("lua.h").is_file())
}

/// The same directory as `cargo metadata` reports it. Offline: a build script must not
/// download, and `cargo metadata` wants every package of the lock file, including ones for
/// other platforms that cargo never fetched for this build, hence the registry path first.
fn find_with_metadata(manifest_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo metadata: {e}"));
    if !output.status.success() {
        panic!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    let lua_src = packages
        .iter()
        .find(|p| p["name"] == "lua-src" && p["version"] == LUA_SRC_VERSION)
        .unwrap_or_else(|| panic!("lua-src {LUA_SRC_VERSION} is not in the dependency graph"));
    let manifest = lua_src["manifest_path"].as_str().expect("a manifest path");
    Path::new(manifest)
        .parent()
        .expect("a manifest lives in its crate")
        .join(LUA_DIR)
}

/// Copies Lua's sources to `to`, applying `patches/<file>.patch` to `<file>`.
fn copy_patched(from: &Path, patches: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("OUT_DIR is writable");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.expect("readable directory").path();
        let name = path.file_name().expect("a file name").to_owned();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let patch_path = patches.join(format!("{}.patch", name.to_string_lossy()));
        let text = match std::fs::read_to_string(&patch_path) {
            Ok(patch_text) => {
                let patch = diffy::Patch::from_str(&patch_text)
                    .unwrap_or_else(|e| panic!("{}: {e}", patch_path.display()));
                diffy::apply(&text, &patch)
                    .unwrap_or_else(|e| panic!("{} does not apply: {e}", patch_path.display()))
            }
            Err(_) => text,
        };
        std::fs::write(to.join(&name), text).expect("OUT_DIR is writable");
    }
    // Every patch must have found its file: a renamed source must not silently lose it.
    for entry in std::fs::read_dir(patches).expect("patches/ exists") {
        let name = entry.expect("readable directory").file_name();
        let file = name
            .to_string_lossy()
            .trim_end_matches(".patch")
            .to_string();
        assert!(from.join(&file).exists(), "patch for missing file {file}");
    }
}

/// clang for wasm32-wasip1: Debian's wasi-libc headers (never the build machine's own),
/// our `setjmp.h`, and LLVM's setjmp/longjmp lowering to wasm exception handling.
fn configure_wasm(build: &mut cc::Build, manifest_dir: &Path) {
    let clang = find_clang();
    let resource_dir = Command::new(&clang)
        .arg("-print-resource-dir")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| panic!("cannot run {clang}: {e}"));
    let wasi_headers = Path::new("/usr/include/wasm32-wasi");
    if !wasi_headers.join("stdio.h").exists() {
        panic!(
            "wasi-libc headers are missing in {}; run scripts/setup",
            wasi_headers.display()
        );
    }
    build
        .compiler(&clang)
        .archiver(find_tool(&["llvm-ar-19", "llvm-ar"]))
        .ranlib(find_tool(&["llvm-ranlib-19", "llvm-ranlib"]))
        .flag("-nostdinc")
        .flag("-isystem")
        .flag(manifest_dir.join("csrc/include").to_string_lossy().as_ref())
        .flag("-isystem")
        .flag(format!("{resource_dir}/include"))
        .flag("-isystem")
        .flag(wasi_headers.to_string_lossy().as_ref())
        .flag("-mllvm")
        .flag("-wasm-enable-sjlj")
        .flag("-mllvm")
        .flag("-wasm-enable-eh")
        .define("LUA_USE_POSIX", None)
        // Lua includes <signal.h> for a type only; no signal function is linked.
        .define("_WASI_EMULATED_SIGNAL", None);
}

/// A clang that can target wasm: `$SKYWASM_CLANG`, `clang-19`, or `clang`.
fn find_clang() -> String {
    let candidates = std::env::var("SKYWASM_CLANG")
        .into_iter()
        .chain(["clang-19".to_string(), "clang".to_string()]);
    candidates
        .into_iter()
        .find(|clang| runs(clang))
        .unwrap_or_else(|| panic!("no clang found for the Lua build; run scripts/setup"))
}

fn find_tool(names: &[&str]) -> String {
    names
        .iter()
        .find(|name| runs(name))
        .unwrap_or_else(|| panic!("none of {names:?} found; run scripts/setup"))
        .to_string()
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
