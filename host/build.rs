//! Builds every wasm guest of the workspace (built-in services, snlua, examples, test
//! services) for `wasm32-wasip1` with a nested cargo, into `target/guests`, and compiles the
//! C example with clang. snlua's exception handling is converted to the encoding wasmtime runs
//! (see [`convert_exceptions`]). The built-in services are embedded in the binary
//! (`src/builtin.rs`); the others are found through `wasm_path`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest packages and the module (file) name each produces.
const GUESTS: &[(&str, &str)] = &[
    ("skywasm-service-bootstrap", "bootstrap"),
    ("skywasm-service-launcher", "launcher"),
    ("skywasm-snlua", "snlua_legacy_eh"),
    ("skywasm-example-main", "main"),
    ("skywasm-example-pong", "pong"),
    ("skywasm-test-probe", "probe"),
    ("skywasm-test-bench", "bench"),
];

/// Built-ins embedded in the host binary.
const EMBEDDED: &[&str] = &["bootstrap", "launcher", "snlua"];

const TARGET: &str = "wasm32-wasip1";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    let target_dir = root.join("target").join("guests");
    for dir in [
        "guest-sdk",
        "lua-wasm",
        "services",
        "examples",
        "tests/guests",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    // The guests' memory layout flags.
    println!(
        "cargo:rerun-if-changed={}",
        root.join(".cargo").join("config.toml").display()
    );
    println!("cargo:rerun-if-env-changed=SKYWASM_CLANG");

    build_rust_guests(&root, &target_dir);
    let out_dir = target_dir.join(TARGET).join("release");
    convert_exceptions(
        &out_dir.join("snlua_legacy_eh.wasm"),
        &out_dir.join("snlua.wasm"),
    );
    build_c_example(&root, &out_dir);

    let embed_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for name in EMBEDDED {
        let from = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&from, embed_dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
    println!("cargo:rustc-env=SKYWASM_GUEST_DIR={}", out_dir.display());
}

fn build_rust_guests(root: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        // Guests abort on panic (the host sees a trap and ends that service only), are
        // optimized across crates (the SDK's runtime inlines into each service), and keep
        // function names for trap messages, but no DWARF.
        .args([
            "--config",
            "profile.release.panic=\"abort\"",
            "--config",
            "profile.release.lto=\"fat\"",
            "--config",
            "profile.release.codegen-units=1",
            "--config",
            "profile.release.debug=false",
            "--config",
            "profile.release.strip=\"debuginfo\"",
        ]);
    for (package, _) in GUESTS {
        command.args(["-p", package]);
    }
    // Flags and wrappers meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the wasm guests: {e}"));
    if !status.success() {
        panic!(
            "building the wasm guests failed; is the target installed? \
             (`rustup target add {TARGET}`, or run scripts/setup)"
        );
    }
}

/// LLVM 19 emits wasm exception handling in the legacy encoding (`try`/`catch`), which
/// wasmtime does not run; binaryen's `wasm-opt` rewrites it to the standard one (`exnref`,
/// `try_table`) and optimizes. Only redone when the input changed.
fn convert_exceptions(input: &Path, output: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(output).is_some() && modified(output) >= modified(input) {
        return;
    }
    let status = Command::new("wasm-opt")
        .args([
            "--enable-exception-handling",
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-reference-types",
            "--enable-multivalue",
            "--translate-to-exnref",
            "-O3",
            // Keep the name section: profiles (`wasm_profiler`) and trap backtraces then
            // name Lua's C functions instead of `function[289]`.
            "--debuginfo",
        ])
        .arg(input)
        .arg("-o")
        .arg(output)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run wasm-opt (binaryen 119 or later; run scripts/setup): {e}")
        });
    if !status.success() {
        panic!("wasm-opt failed on {}", input.display());
    }
}

/// A clang that can target wasm: `$SKYWASM_CLANG`, `clang-19`, or `clang`.
fn find_clang() -> Option<String> {
    let candidates = std::env::var("SKYWASM_CLANG")
        .into_iter()
        .chain(["clang-19".to_string(), "clang".to_string()]);
    candidates.into_iter().find(|clang| {
        Command::new(clang)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn build_c_example(root: &Path, out_dir: &Path) {
    let source = root.join("examples/echo-c/echo.c");
    let output = out_dir.join("echo_c.wasm");
    let Some(clang) = find_clang() else {
        println!(
            "cargo:warning=no clang found: the C example (echo_c) is not built; run scripts/setup"
        );
        return;
    };
    let status = Command::new(&clang)
        .args([
            "--target=wasm32",
            "-O2",
            "-nostdlib",
            "-Wall",
            "-Werror",
            "-Wl,--no-entry",
            "-Wl,--export=skywasm_init",
            "-Wl,--export=skywasm_dispatch",
            "-Wl,--export=skywasm_alloc",
            "-Wl,-z,stack-size=16384",
        ])
        .arg("-I")
        .arg(root.join("guest-sdk/include"))
        .arg("-o")
        .arg(&output)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang}: {e}"));
    if !status.success() {
        panic!("compiling {} with {clang} failed", source.display());
    }
}
