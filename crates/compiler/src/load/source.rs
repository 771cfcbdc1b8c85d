//! Where a repository's files come from: the working tree, or (for
//! `kiln diff`) a git revision already read into memory.
//!
//! Neither ever reads outside the repository: a symlink that leads out of
//! it (to `/proc/self/environ`, `/etc`, ...) is listed as refused, never
//! followed, so a pull request cannot make kiln read or print the CI
//! machine's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A path found under an input directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file kiln may read, repository-relative and `/`-separated.
    File(String),
    /// A path kiln refuses to read, and why.
    Refused { path: String, why: String },
}

/// Why a symlink that leads out of the repository is not read.
pub(crate) const OUTSIDE: &str = "is a symlink to a path outside the repository; kiln reads nothing outside it";

/// A read-only view of a kiln repository.
pub trait Source: Sync {
    /// Every file under the top-level directory `dir`.
    fn list(&self, dir: &str) -> Vec<Entry>;
    fn read(&self, path: &str) -> Result<String, String>;
    /// A site's `ipam.lock.yaml`, if any: the path shown in errors, and its text.
    fn lock(&self, site: &str) -> Option<(String, String)>;
}

/// The repository on disk at `root`, with its output under `out_dir`.
pub(crate) struct Worktree {
    pub root: PathBuf,
    pub out_dir: PathBuf,
}

impl Worktree {
    /// Where `path` really is, if that is inside the repository.
    fn inside(&self, path: &Path) -> Option<PathBuf> {
        let root = self.root.canonicalize().ok()?;
        let real = path.canonicalize().ok()?;
        real.starts_with(&root).then_some(real)
    }
}

impl Source for Worktree {
    fn list(&self, dir: &str) -> Vec<Entry> {
        let mut refused = Vec::new();
        let rel = |p: &Path| -> Option<String> {
            let rel = p.strip_prefix(&self.root).ok()?;
            Some(rel.to_str()?.replace(std::path::MAIN_SEPARATOR, "/"))
        };
        // Symlinks are followed only while they stay inside the repository
        // (walkdir stops at loops); one that leads out is not entered.
        let mut files: Vec<Entry> = walkdir::WalkDir::new(self.root.join(dir))
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| {
                if !e.path_is_symlink() || self.inside(e.path()).is_some() {
                    return true;
                }
                if let Some(path) = rel(e.path()) {
                    let why = if e.path().exists() {
                        OUTSIDE
                    } else {
                        "is a broken symlink"
                    };
                    refused.push(Entry::Refused {
                        path,
                        why: why.to_string(),
                    });
                }
                false
            })
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| rel(e.path()).map(Entry::File))
            .collect();
        files.extend(refused);
        files
    }

    fn read(&self, path: &str) -> Result<String, String> {
        let full = self.root.join(path);
        let real = self.inside(&full).ok_or_else(|| OUTSIDE.to_string())?;
        let meta = std::fs::metadata(&real).map_err(|e| format!("cannot read file: {e}"))?;
        if !meta.is_file() {
            return Err("is not a regular file".into());
        }
        std::fs::read_to_string(real).map_err(|e| format!("cannot read file: {e}"))
    }

    fn lock(&self, site: &str) -> Option<(String, String)> {
        let path = self.out_dir.join(site).join(crate::layout::LOCK_FILE);
        // The lock is read from wherever out/ is (the CLI refuses an out/
        // that leads out of the repository unless --out names it), but only
        // as a regular file.
        if !std::fs::metadata(&path).ok()?.is_file() || std::fs::symlink_metadata(&path).ok()?.is_symlink() {
            return None;
        }
        // Nor through a link under out/ (`out/lab -> /elsewhere`).
        let out = self.out_dir.canonicalize().ok()?;
        if !path.canonicalize().ok()?.starts_with(out) {
            return None;
        }
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
    /// Paths that are not read, and why (symlinks that leave the tree).
    pub refused: BTreeMap<String, String>,
}

impl Source for InMemory {
    fn list(&self, dir: &str) -> Vec<Entry> {
        let prefix = format!("{dir}/");
        let files = self
            .files
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .map(Entry::File);
        let refused = self
            .refused
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(path, why)| Entry::Refused {
                path: path.clone(),
                why: why.clone(),
            });
        files.chain(refused).collect()
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
