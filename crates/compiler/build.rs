//! Fingerprints the code that decides what kiln renders (this crate and
//! the plan crate, sources and built-in values) as `KILN_SOURCE_DIGEST`:
//! part of every inputs digest, so out/ rendered by other code is never
//! taken for fresh, even between two builds of one version.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut hasher = Sha256::new();
    for dir in [root.join("src"), root.join("../plan/src")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let files = walkdir::WalkDir::new(&dir)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(walkdir::DirEntry::into_path);
        for file in files {
            let rel = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().into_owned();
            let bytes = std::fs::read(&file).expect("source files are readable");
            for part in [rel.as_bytes(), &bytes] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
    }
    println!("cargo:rustc-env=KILN_SOURCE_DIGEST={:x}", hasher.finalize());
}
