//! The layers point one way (see `src/lib.rs`; renderers sit on the commands
//! whose outcomes they render): a module imports only from
//! the layers below it. A reader checks the same with grep, e.g.
//! `grep -rn "crate::\(ops\|check\|render\)" src/compare src/format`.
//! This test reads every source file and fails on an upward import.

use std::path::{Path, PathBuf};

/// Each layer, bottom first, and the top-level modules in it.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["error", "numeric"]),
    ("format", &["format"]),
    ("comparer", &["compare"]),
    ("catalog", &["ops"]),
    ("commands", &["check", "diff", "replay", "select", "progress"]),
    ("renderers", &["render"]),
    ("gate", &["golden"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
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

/// The top-level modules a file names as `crate::NAME`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(own) = layer_of(&top) else { continue }; // lib.rs, main.rs, cli/
        let text = std::fs::read_to_string(f).unwrap();
        for name in crate_paths(&text) {
            if let Some(theirs) = layer_of(&name) {
                if theirs > own {
                    violations.push(format!("{} ({}) imports crate::{name} ({})", rel.display(), LAYERS[own].0, LAYERS[theirs].0));
                }
            }
        }
    }
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}

#[test]
fn the_comparer_knows_no_report_operation_or_flag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/compare");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["crate::format::report", "crate::ops", "clap", "crate::check"] {
            assert!(!text.contains(banned), "{} mentions {banned}", f.display());
        }
    }
}

#[test]
fn the_library_parses_no_flags_and_never_exits() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if rel == "main.rs" || rel.starts_with("cli") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            assert!(!code.contains("process::exit"), "{rel}: {line}");
            // clap only as an optional derive on the library's own enums.
            if code.contains("clap") {
                assert!(code.contains("cfg_attr(feature = \"cli\""), "{rel}: {line}");
            }
        }
    }
}
