//! The layers point one way (see `src/lib.rs`; renderers sit on the commands
//! whose outcomes they render): a module imports only from the layers below
//! it, and a command never from a sibling command. A reader checks the same
//! with grep, e.g. `grep -rn "crate::\(ops\|check\|render\)" src/compare src/format`.
//! This test reads every source file — `crate::x::…` paths and grouped
//! imports (`use crate::{a::…, b}`) alike — and fails on an upward or
//! sideways import, and on a top-level module no layer lists.

use std::path::{Path, PathBuf};

/// Each layer, bottom first; whether its modules may import each other; and
/// the top-level modules in it.
const LAYERS: &[(&str, bool, &[&str])] = &[
    ("base", true, &["error", "numeric"]),
    ("format", true, &["format"]),
    ("comparer", true, &["compare"]),
    ("catalog", true, &["ops"]),
    // What every command shares: selections (tensors, layers, stages) and the progress bar.
    ("shared", false, &["select", "progress"]),
    // Runs of the catalog over files: a report replayed, a plan resolved.
    ("runs", false, &["replay", "plan"]),
    ("commands", false, &["check", "diff", "apply", "inspect"]),
    // The golden gate runs check, diff and apply over the shipped cases.
    ("gate", true, &["golden"]),
    // Every command's outcome, the gate's included, in each output format.
    ("renderers", true, &["render"]),
];

/// Files of the crate root that are no layer's: the binary, the library's
/// index, the command line.
const OUTSIDE: &[&str] = &["lib", "main", "cli"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, _, mods)| mods.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a text names after `crate::`: `crate::NAME…` and
/// every first segment of a group, `crate::{NAME::…, OTHER, …}` (nested
/// braces skipped). Comments are read too: a doc link upward is a smell.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push(ident(group[start..j].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(ident(group[start..j].trim_start()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|n| !n.is_empty() && n != "self");
    found
}

/// Every import that breaks the layering, one line each.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(own) = layer_of(&top) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        for name in crate_paths(&text) {
            let Some(theirs) = layer_of(&name) else { continue };
            if theirs > own {
                violations.push(format!("{} ({}) imports crate::{name} ({}): upward", rel.display(), LAYERS[own].0, LAYERS[theirs].0));
            } else if theirs == own && name != top && !LAYERS[own].1 {
                violations.push(format!("{} ({}) imports crate::{name}: a sibling in its own layer", rel.display(), LAYERS[own].0));
            }
        }
    }
    violations
}

#[test]
fn no_module_imports_from_a_layer_above_it_or_a_sibling_command() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let v = violations(&src);
    assert!(v.is_empty(), "imports against the layers:\n{}", v.join("\n"));
}

#[test]
fn every_top_level_module_is_in_a_layer_and_in_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if OUTSIDE.contains(&name.as_str()) || (p.is_file() && p.extension().is_none_or(|x| x != "rs")) {
            continue;
        }
        assert!(layer_of(&name).is_some(), "src/{name} is in no layer of tests/layers.rs");
        assert!(lib.contains(&format!("pub mod {name};")), "lib.rs does not declare {name}");
        assert!(lib.contains(&format!("[`{name}`]")), "lib.rs's layer list does not name [`{name}`]");
    }
}

/// The test can fail: a sideways import and a grouped upward import, each
/// planted in a copy of the tree, are both caught.
#[test]
fn a_planted_sideways_or_grouped_import_is_caught() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (file, planted, expect) in [
        ("apply/mod.rs", "use crate::diff::pairing::NameMap;\n", "a sibling in its own layer"),
        ("format/dtype.rs", "use crate::{error::Result, ops::find};\n", "imports crate::ops (catalog): upward"),
        ("compare/gate.rs", "use crate::{format::{dtype::DType, tensor::Tensor}, check::CheckOptions};\n", "imports crate::check (commands): upward"),
    ] {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&src, copy.path());
        let target = copy.path().join(file);
        let text = std::fs::read_to_string(&target).unwrap();
        std::fs::write(&target, format!("{planted}{text}")).unwrap();
        let v = violations(copy.path());
        assert!(v.iter().any(|l| l.contains(expect)), "{file}: planted {planted:?}, found {v:?}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
