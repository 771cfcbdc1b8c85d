//! Embeds the starter repository `kiln init` writes: the shipped cluster
//! templates, recipes and blueprints, plus the small example in `starter/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for (dir, strip) in [
        ("clusters", ""),
        ("recipes", ""),
        ("blueprints", ""),
        ("starter", "starter/"),
    ] {
        println!("cargo:rerun-if-changed={dir}");
        let mut files = Vec::new();
        walk(&root.join(dir), &mut files);
        for file in files {
            let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            let rel = rel.strip_prefix(strip).unwrap_or(&rel).to_string();
            entries.push((rel, file));
        }
    }
    entries.sort();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("starter.rs");
    let mut f = fs::File::create(out).unwrap();
    writeln!(f, "const STARTER_FILES: &[(&str, &[u8])] = &[").unwrap();
    for (rel, file) in entries {
        // Relative to the manifest, so a target directory shared between
        // checkouts never points at another checkout's files.
        let from_root = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        writeln!(
            f,
            "    ({rel:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),",
            format!("/{from_root}")
        )
        .unwrap();
    }
    writeln!(f, "];").unwrap();
}
