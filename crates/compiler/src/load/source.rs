//! Where a repository's files come from: the working tree, or (for
//! `kiln diff`) a git revision already read into memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A read-only view of a kiln repository.
pub trait Source: Sync {
    /// Every file under the top-level directory `dir`, repository-relative
    /// and `/`-separated.
    fn list(&self, dir: &str) -> Vec<String>;
    fn read(&self, path: &str) -> Result<String, String>;
    /// A site's `ipam.lock.yaml`, if any: the path shown in errors, and its text.
    fn lock(&self, site: &str) -> Option<(String, String)>;
}

/// The repository on disk at `root`, with its output under `out_dir`.
pub struct Worktree {
    pub root: PathBuf,
    pub out_dir: PathBuf,
}

impl Source for Worktree {
    fn list(&self, dir: &str) -> Vec<String> {
        walkdir::WalkDir::new(self.root.join(dir))
            .follow_links(true)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&self.root).ok()?;
                Some(rel.to_str()?.replace(std::path::MAIN_SEPARATOR, "/"))
            })
            .collect()
    }

    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.root.join(path)).map_err(|e| format!("cannot read file: {e}"))
    }

    fn lock(&self, site: &str) -> Option<(String, String)> {
        let path = self.out_dir.join(site).join(crate::layout::LOCK_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        Some((shown(&self.root, &path), text))
    }
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned()
}

/// Files held in memory by path (a git tree, read once).
pub struct InMemory {
    /// What to call this source in error messages, e.g. `HEAD`.
    pub label: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Source for InMemory {
    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.files.keys().filter(|p| p.starts_with(&prefix)).cloned().collect()
    }

    fn read(&self, path: &str) -> Result<String, String> {
        let bytes = self
            .files
            .get(path)
            .ok_or_else(|| format!("{path} is not in {}", self.label))?;
        String::from_utf8(bytes.clone()).map_err(|_| format!("{path} is not UTF-8"))
    }

    fn lock(&self, site: &str) -> Option<(String, String)> {
        let path = format!("out/{site}/{}", crate::layout::LOCK_FILE);
        let text = self.read(&path).ok()?;
        Some((path, text))
    }
}
