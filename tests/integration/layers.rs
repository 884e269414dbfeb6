//! The shape of `src/`, checked: the DNS64 core (`src/dns64/`) imports
//! nothing else from the crate, the configuration imports only the core
//! and leaf modules, and no two components import each other in a ring.
//!
//! A component is a module two levels down (`answering::cache`,
//! `edge::server`, `ops::config`); a module's children (`edge::server::tls`)
//! belong to it. Imports are the `crate::…` paths in the code (comments and
//! unit tests left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module path of a file (`src/edge/server/mod.rs` → `edge::server`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The first `depth` segments of a module path.
fn component(path: &str, depth: usize) -> String {
    path.split("::").take(depth).collect::<Vec<_>>().join("::")
}

/// The code of a file without comments and without its unit tests.
fn code_of(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::a::b` paths a piece of code names, `use crate::{a::b, c}`
/// groups included (one level of nesting).
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim().trim_start_matches('{');
                if !item.is_empty() {
                    paths.push(path_prefix(item));
                }
            }
        } else {
            paths.push(path_prefix(rest));
        }
    }
    paths
}

fn path_prefix(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect::<String>()
        .trim_end_matches(':')
        .to_string()
}

/// component → the components it imports.
fn import_graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for file in rust_files(&src) {
        let module = module_of(&src, &file);
        if module == "lib" || module == "main" || module.starts_with("cli") {
            continue;
        }
        modules.insert(module, code_of(&std::fs::read_to_string(&file).unwrap()));
    }
    let known: BTreeSet<String> = modules.keys().map(|m| component(m, depth)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        let from = component(module, depth);
        let edges = graph.entry(from.clone()).or_default();
        for path in crate_paths(code) {
            let to = component(&path, depth);
            if to != from && known.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// The components that can reach themselves (Tarjan's strongly connected
/// components of more than one member).
fn rings(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        let graph = state.graph;
        for target in graph.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.stack.contains(&target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut ring = Vec::new();
            while let Some(member) = state.stack.pop() {
                ring.push(member.to_string());
                if member == node {
                    break;
                }
            }
            if ring.len() > 1 {
                ring.sort();
                state.found.push(ring);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[test]
fn no_two_components_import_each_other_in_a_ring() {
    let graph = import_graph(2);
    assert!(graph.contains_key("edge::server"), "the walk found src/");
    assert_eq!(rings(&graph), Vec::<Vec<String>>::new(), "{graph:#?}");
}

#[test]
fn the_checker_sees_a_ring() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(rings(&graph), vec![vec!["a".to_string(), "b".to_string()]]);
    assert_eq!(
        crate_paths(
            "use crate::{dns64::answer::Answer, ops::config};\nx(crate::edge::server::start)"
        ),
        [
            "dns64::answer::Answer",
            "ops::config",
            "edge::server::start"
        ]
    );
}

#[test]
fn the_dns64_core_imports_nothing_else_from_the_crate() {
    let graph = import_graph(1);
    assert_eq!(graph["dns64"], BTreeSet::new());
}

#[test]
fn the_configuration_imports_only_the_core_and_leaf_modules() {
    let graph = import_graph(2);
    let config = &graph["ops::config"];
    for imported in config {
        let leaf = graph.get(imported).is_none_or(BTreeSet::is_empty);
        assert!(
            imported.starts_with("dns64") || leaf,
            "ops::config imports {imported}, which imports {:?}",
            graph.get(imported)
        );
    }
}
