//! Checks of the import graph that docs/architecture.md describes, read from the sources:
//! `node` is the top (only the public `client` names it), and the lower layer — the pure
//! cores and the subsystems that know no service — imports nothing above it. A change that
//! breaks either fails here, naming the file and the import.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules that import only each other (and std and crates): no service, no node state.
const LOWER: &[&str] = &[
    "sync", "mq", "handle", "timer", "monitor", "clock", "socket", "tenant", "config", "source",
    "held", "stm", "share",
];

/// Modules that may name `crate::node`: the node itself, what the public API builds on it,
/// and this check (whose messages name it).
const NODE_USERS: &[&str] = &["node", "client", "lib", "main", "layering"];

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("host/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file belongs to (`lifecycle/work.rs` → `lifecycle`).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src");
    let first = relative.components().next().expect("a path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The `crate::X` modules a file's code names (comments left out).
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

fn graph() -> Vec<(String, PathBuf, BTreeSet<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    sources(&src)
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("a readable source");
            (top_module(&src, &file), file, imports(&text))
        })
        .collect()
}

#[test]
fn only_the_public_api_names_the_node() {
    for (module, file, imports) in graph() {
        if !NODE_USERS.contains(&module.as_str()) {
            assert!(
                !imports.contains("node"),
                "{} imports crate::node: the node is the top of the graph; use \
                 crate::shared::NodeShared",
                file.display()
            );
        }
    }
}

#[test]
fn the_lower_layer_imports_nothing_above_it() {
    for (module, file, imports) in graph() {
        if !LOWER.contains(&module.as_str()) {
            continue;
        }
        for name in &imports {
            assert!(
                name == &module || LOWER.contains(&name.as_str()),
                "{} (lower layer) imports crate::{name}",
                file.display()
            );
        }
    }
}

#[test]
fn the_check_sees_imports() {
    let found =
        imports("use crate::mq::Message; // crate::node in a comment\nx(crate::sync::lock)");
    assert_eq!(
        found,
        BTreeSet::from(["mq".to_string(), "sync".to_string()])
    );
}
