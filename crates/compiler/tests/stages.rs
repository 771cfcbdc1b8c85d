//! The stages of the compiler depend only on earlier ones (ARCHITECTURE.md):
//! load → resolve → merge → render → emit, with `layout`, `diag`, `yaml` and
//! `progress` below them all and `diff` and `explain` above. Cargo enforces
//! the boundaries between crates; inside this crate, this test does.

use std::path::Path;

/// Each module and the modules of this crate it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("yaml", &[]),
    ("layout", &[]),
    ("progress", &[]),
    ("diag", &["yaml"]),
    ("load", &["diag", "yaml", "layout"]),
    ("resolve", &["diag", "yaml", "layout", "load"]),
    ("merge", &["diag", "yaml"]),
    (
        "render",
        &["diag", "yaml", "layout", "progress", "load", "resolve", "merge", "emit"],
    ),
    ("emit", &["diag", "yaml", "layout"]),
    (
        "diff",
        &[
            "diag", "yaml", "layout", "progress", "load", "resolve", "merge", "render", "emit",
        ],
    ),
    (
        "boot_path",
        &[
            "diag", "yaml", "layout", "progress", "load", "resolve", "merge", "render", "emit",
        ],
    ),
    (
        "drift",
        &[
            "diag", "yaml", "layout", "progress", "load", "resolve", "merge", "render", "emit",
        ],
    ),
    ("stat", &["diag", "yaml", "layout", "progress", "load", "render"]),
    (
        "explain",
        &[
            "diag", "yaml", "layout", "progress", "load", "resolve", "merge", "render", "emit",
        ],
    ),
];

fn sources(path: &Path, out: &mut Vec<(String, String)>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push((path.display().to_string(), std::fs::read_to_string(path).unwrap()));
    }
}

#[test]
fn each_stage_uses_only_earlier_stages() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        sources(&src.join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "no source for module {module}");
        for (file, text) in files {
            for (n, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    let used: String = rest[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if used != *module && !allowed.contains(&used.as_str()) {
                        wrong.push(format!("{file}:{}: {module} uses crate::{used}", n + 1));
                    }
                    rest = &rest[i + 7..];
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
