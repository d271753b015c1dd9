//! The layering rules of ARCHITECTURE.md, checked on the source: each module of `src/`
//! imports only modules of its own layer or below, and no file imports, through any chain,
//! a file that imports it back (no import cycle between modules or between files).
//!
//! Imports are read from the text: every `crate::a::b` and `super::b` path outside
//! comments and `#[cfg(test)]` modules (tests may reach up for fixtures). A folder's
//! `mod.rs` declaring and re-exporting its own files is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may import its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    ("pure", &["error", "codec", "name", "config", "status", "engine", "stages", "protocol"]),
    ("adapters", &["raft", "storage", "rpc", "discovery"]),
    ("runtime", &["runtime"]),
    ("features", &["schema", "backup", "replication", "cluster", "client", "observe"]),
    ("composition", &["node", "testing", "golden"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// `src/a/b.rs` → ["a", "b"]; `src/a/mod.rs` → ["a"]; `src/lib.rs` → [].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file holding module `path`, or of its nearest ancestor that exists.
fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let base: PathBuf = path[..n].iter().collect();
        for candidate in [src.join(&base).with_extension("rs"), src.join(&base).join("mod.rs")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The code of a file without comments and without its `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_test = false;
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let trimmed = line.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            pending_test = true;
            continue;
        }
        if pending_test && trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            skip_depth = Some(1);
            pending_test = false;
            continue;
        }
        pending_test = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Module paths named in `code` (absolute, from the crate root), including the members of
/// one level of braces: `crate::a::{b, c::D}` names `a::b` and `a::c`.
fn imports(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        (code[i..j].to_string(), j)
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", me[..me.len().saturating_sub(1)].to_vec())] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(prefix) {
            let start = from + pos;
            from = start + prefix.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let mut path = base.clone();
            let mut i = from;
            loop {
                let (name, j) = ident(i);
                path.push(name.clone());
                let brace = if name.is_empty() {
                    path.pop();
                    code[j..].starts_with('{').then_some(j + 1)
                } else {
                    code[j..].starts_with("::{").then_some(j + 3)
                };
                if let Some(open) = brace {
                    let close = code[open..].find('}').map(|c| open + c).unwrap_or(code.len());
                    for item in code[open..close].split(',') {
                        let item = item.trim();
                        let first = item.split("::").next().unwrap_or("").trim();
                        if !first.is_empty() && first != "self" {
                            let mut p = path.clone();
                            p.push(first.to_string());
                            out.push(p);
                        }
                    }
                    break;
                }
                if name.is_empty() {
                    break;
                }
                if code[j..].starts_with("::") {
                    i = j + 2;
                } else {
                    break;
                }
            }
            if !path.is_empty() {
                out.push(path);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Items the crate root re-exports (`pub use node::{Node, …}`), by the module they come
/// from: `crate::Node` is an import of `node`.
fn root_reexports(src: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let mut out = BTreeMap::new();
    for stmt in code_of(&text).split(';') {
        let Some(at) = stmt.find("pub use ") else { continue };
        let rest = &stmt[at + "pub use ".len()..];
        let Some((module, items)) = rest.split_once("::") else { continue };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// file → files it imports, for every file of the library (not `bin/`).
fn file_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let reexports = root_reexports(src);
    let mut graph = BTreeMap::new();
    for file in files.into_iter().filter(|f| !f.starts_with(src.join("bin"))) {
        let me = module_path(src, &file);
        let text = std::fs::read_to_string(&file).expect("read file");
        let mut to = BTreeSet::new();
        for mut path in imports(&code_of(&text), &me) {
            if let Some(module) = path.first().and_then(|first| reexports.get(first)) {
                path = vec![module.clone()];
            }
            let Some(target) = resolve(src, &path) else { continue };
            let own_child = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs")
                && target.parent().is_some_and(|p| p.starts_with(file.parent().unwrap_or(src)));
            if target != file && !own_child {
                to.insert(target);
            }
        }
        graph.insert(file, to);
    }
    graph
}

fn top_module(src: &Path, file: &Path) -> String {
    module_path(src, file).first().cloned().unwrap_or_else(|| "lib".into())
}

/// A cycle through `graph`, if there is one.
fn find_cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        n: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        state: &mut BTreeMap<N, u8>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_imports_only_its_layer_or_below() {
    let src = src_dir();
    let mut broken = Vec::new();
    for (file, targets) in file_graph(&src) {
        let from = top_module(&src, &file);
        if from == "lib" {
            continue;
        }
        let Some(from_layer) = layer_of(&from) else {
            broken.push(format!("{}: module `{from}` is in no layer of LAYERS", file.display()));
            continue;
        };
        for target in targets {
            let to = top_module(&src, &target);
            match layer_of(&to) {
                Some(l) if l <= from_layer => {}
                _ => broken.push(format!(
                    "{} ({}) imports {} ({})",
                    file.strip_prefix(&src).unwrap_or(&file).display(),
                    LAYERS[from_layer].0,
                    target.strip_prefix(&src).unwrap_or(&target).display(),
                    layer_of(&to).map(|l| LAYERS[l].0).unwrap_or("no layer"),
                )),
            }
        }
    }
    assert!(broken.is_empty(), "imports against the layering:\n{}", broken.join("\n"));
}

#[test]
fn no_import_cycle_between_modules() {
    let src = src_dir();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in file_graph(&src) {
        let from = top_module(&src, &file);
        let entry = modules.entry(from.clone()).or_default();
        for t in targets {
            let to = top_module(&src, &t);
            if to != from && from != "lib" {
                entry.insert(to);
            }
        }
    }
    assert_eq!(find_cycle(&modules), None, "an import cycle between modules");
}

#[test]
fn no_import_cycle_between_files() {
    let src = src_dir();
    let graph = file_graph(&src);
    let cycle = find_cycle(&graph).map(|c| {
        c.iter().map(|f| f.strip_prefix(&src).unwrap_or(f).display().to_string()).collect::<Vec<_>>().join(" -> ")
    });
    assert_eq!(cycle, None, "an import cycle between files");
}

/// The broker (`broker/`, a crate of the workspace) follows the same rule: no import
/// cycle between its files, nor between its modules.
#[test]
fn no_import_cycle_in_the_broker() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("broker").join("src");
    let graph = file_graph(&src);
    assert!(graph.len() > 5, "the broker's files are read: {:?}", graph.keys().collect::<Vec<_>>());
    let cycle = find_cycle(&graph).map(|c| {
        c.iter().map(|f| f.strip_prefix(&src).unwrap_or(f).display().to_string()).collect::<Vec<_>>().join(" -> ")
    });
    assert_eq!(cycle, None, "an import cycle between the broker's files");
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in &graph {
        let from = top_module(&src, file);
        let entry = modules.entry(from.clone()).or_default();
        for t in targets {
            let to = top_module(&src, t);
            if to != from && from != "lib" {
                entry.insert(to);
            }
        }
    }
    assert_eq!(find_cycle(&modules), None, "an import cycle between the broker's modules");
}

#[test]
fn the_checker_sees_an_import_cycle() {
    let mut g: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    g.insert("a", BTreeSet::from(["b"]));
    g.insert("b", BTreeSet::from(["c"]));
    g.insert("c", BTreeSet::from(["a"]));
    assert_eq!(find_cycle(&g), Some(vec!["a", "b", "c", "a"]));
    g.insert("c", BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    let me = vec!["engine".to_string(), "memory".to_string()];
    let code = code_of("use super::{topic_trie::X, Blob};\nuse crate::schema::topic; // crate::node\n");
    let found = imports(&code, &me);
    let found: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(found.contains(&"engine::topic_trie".to_string()), "{found:?}");
    assert!(found.contains(&"schema::topic".to_string()), "{found:?}");
    assert!(!found.contains(&"node".to_string()), "a comment is no import: {found:?}");
    let reexports = root_reexports(&src_dir());
    assert_eq!(reexports.get("Node").map(String::as_str), Some("node"), "crate::Node is an import of node");
}

/// Every gRPC status a node answers with is made by `rpc/status.rs` from an `Error` (so a
/// caller decodes the variant a local call returns), never built by hand beside it.
#[test]
fn no_status_is_built_outside_the_one_mapping() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let constructors = [
        "Status::new(",
        "Status::with_details(",
        "Status::invalid_argument(",
        "Status::not_found(",
        "Status::already_exists(",
        "Status::permission_denied(",
        "Status::failed_precondition(",
        "Status::aborted(",
        "Status::unavailable(",
        "Status::internal(",
        "Status::unimplemented(",
        "Status::unknown(",
        "Status::cancelled(",
        "Status::deadline_exceeded(",
        "Status::resource_exhausted(",
        "Status::unauthenticated(",
        "Status::out_of_range(",
        "Status::data_loss(",
    ];
    let mut built = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("rpc/status.rs")) {
        let code = code_of(&std::fs::read_to_string(f).expect("read source"));
        for c in constructors.iter().filter(|c| code.contains(*c)) {
            built.push(format!("{}: {c}", f.display()));
        }
    }
    assert!(built.is_empty(), "statuses built by hand outside rpc/status.rs:\n{}", built.join("\n"));
}

/// The fields of `struct Runtime` declared with any visibility (`pub`, `pub(crate)`,
/// `pub(super)`, `pub(in …)`), read from `code`.
fn public_runtime_fields(code: &str) -> Vec<String> {
    let Some(start) = code.find("pub struct Runtime {") else {
        return vec!["<no `pub struct Runtime {` found>".to_string()];
    };
    let mut depth = 0;
    let mut out = Vec::new();
    for line in code[start..].lines() {
        let at_field_level = depth == 1;
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        let trimmed = line.trim();
        if at_field_level && trimmed.starts_with("pub") && trimmed.contains(':') {
            out.push(trimmed.to_string());
        }
        if depth <= 0 && line.contains('}') {
            break;
        }
    }
    out
}

/// The features reach the node's state only through `Runtime`'s methods, and the state a
/// feature owns is its own (ARCHITECTURE.md, "Layering"): no field of `Runtime` is visible
/// outside `runtime/`, so the compiler refuses a feature that reaches into one.
#[test]
fn no_runtime_field_is_visible_outside_the_runtime() {
    let code = code_of(&std::fs::read_to_string(src_dir().join("runtime/mod.rs")).expect("read runtime/mod.rs"));
    let open = public_runtime_fields(&code);
    assert!(open.is_empty(), "fields of Runtime visible outside runtime/ (add a method instead):\n{}", open.join("\n"));
}

#[test]
fn the_checker_sees_a_visible_runtime_field() {
    let planted = "pub struct Runtime {\n    cfg: Validated,\n    pub(crate) db: Db,\n    inner: Mutex<Vec<u8>>,\n}\nimpl Runtime {\n    pub fn x(&self) -> u8 { 0 }\n}\n";
    assert_eq!(public_runtime_fields(planted), vec!["pub(crate) db: Db,".to_string()]);
    assert!(
        public_runtime_fields("pub struct Runtime {\n    a: u8,\n}\npub struct Other {\n    pub b: u8,\n}\n")
            .is_empty()
    );
}

/// Features that reach the node only through a narrow handle the runtime gives them, never
/// through `Runtime` itself: (the feature's folder under `src/`, its handles).
const HANDLED: &[(&str, &[&str])] = &[
    ("replication", &["LogServing", "Following"]),
    ("backup", &["BackupSource"]),
    ("observe", &["Observing", "Observed"]),
    ("schema", &["TablesRoom", "TablesTask"]),
    ("cluster", &["ClusterRoom", "ServiceRoom"]),
];

/// Where `code` names the identifier `word` (not as part of a longer one).
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// The replication feature holds a `LogServing` (core side) or a `Following` (replicant
/// side), made by the composition: the methods on them are all it can do with the node
/// (no write path, no membership change), and it never names `Runtime`.
#[test]
fn handled_features_never_name_the_runtime() {
    let src = src_dir();
    for (feature, handles) in HANDLED {
        let mut files = Vec::new();
        rust_files(&src.join(feature), &mut files);
        assert!(!files.is_empty(), "no files under src/{feature}");
        let mut named = Vec::new();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        for f in &files {
            let code = code_of(&std::fs::read_to_string(f).expect("read source"));
            if names(&code, "Runtime") {
                named.push(f.display().to_string());
            }
            used.extend(handles.iter().copied().filter(|h| names(&code, h)));
        }
        assert!(named.is_empty(), "src/{feature} names Runtime (use its handles {handles:?}):\n{}", named.join("\n"));
        assert_eq!(used.len(), handles.len(), "src/{feature} no longer uses every handle listed for it");
    }
}

#[test]
fn the_checker_sees_a_name_only_as_a_whole_identifier() {
    assert!(names("fn f(rt: &Runtime) {}", "Runtime"));
    assert!(names("use crate::runtime::Runtime;", "Runtime"));
    assert!(!names("fn f(rt: &RuntimeHandle) {}", "Runtime"));
    assert!(!names("let my_Runtime = 1;", "Runtime"));
}
