//! The library's top-level modules form no import circle: each one can be read, changed and
//! tested knowing only the modules below it. This reads `src/` (every `crate::<module>` path,
//! doc links included: a link is a dependency for a reader too) and fails naming a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn top_module(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib").then(|| name.to_string())
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Which top-level modules each one names.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file, src) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(from.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let to: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !to.is_empty() && to != from {
                entry.insert(to);
            }
        }
    }
    graph
}

/// A path from `to` back to `from`, if there is one.
fn path_back(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![(to.to_string(), vec![to.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        if at == from {
            return Some(path);
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        for next in graph.get(&at).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push((next.clone(), p));
        }
    }
    None
}

#[test]
fn the_librarys_modules_form_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&src);
    assert!(
        graph.len() > 10,
        "the walk found the modules: {:?}",
        graph.keys()
    );
    let mut circles = Vec::new();
    for (from, tos) in &graph {
        for to in tos {
            if let Some(back) = path_back(&graph, from, to) {
                circles.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_walk_would_see_a_circle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        path_back(&graph, "a", "b"),
        Some(vec!["b".to_string(), "a".to_string()])
    );
}
