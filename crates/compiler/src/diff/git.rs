//! Reads a kiln repository as of a git revision, without checking it out:
//! the inputs and the IPAM locks under `out/`, straight from the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::load::source::{InMemory, OUTSIDE};

/// Why a revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{}: not in a git repository ({})", path.display(), source.message())]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error("kiln diff needs a repository with a working tree")]
    Bare,
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the repository is outside its git working tree")]
    OutsideWorkTree,
    #[error("unknown revision `{rev}`: {}", source.message())]
    UnknownRevision { rev: String, source: git2::Error },
    #[error("`{rev}` names no tree: {}", source.message())]
    NoTree { rev: String, source: git2::Error },
    #[error("`{prefix}` does not exist in `{rev}`")]
    MissingPrefix { prefix: String, rev: String },
    #[error("{path} in `{rev}`: {message}")]
    Read { path: String, rev: String, message: String },
}

/// The git repository holding the kiln repository at `root` (which may be
/// a subdirectory of its work tree), and the id of the kiln repository's
/// tree in revision `rev`.
fn open_tree(root: &Path, rev: &str) -> Result<(Repository, git2::Oid), GitError> {
    let repo = Repository::discover(root).map_err(|source| GitError::NotARepository {
        path: root.to_path_buf(),
        source,
    })?;
    let id = {
        let workdir = repo.workdir().ok_or(GitError::Bare)?;
        let canonical = |p: &Path| {
            p.canonicalize().map_err(|source| GitError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let prefix = canonical(root)?
            .strip_prefix(canonical(workdir)?)
            .map_err(|_| GitError::OutsideWorkTree)?
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let object = repo.revparse_single(rev).map_err(|source| GitError::UnknownRevision {
            rev: rev.to_string(),
            source,
        })?;
        let no_tree = |source| GitError::NoTree {
            rev: rev.to_string(),
            source,
        };
        let tree = object.peel_to_tree().map_err(no_tree)?;
        let tree = if prefix.is_empty() {
            tree
        } else {
            let entry = tree.get_path(Path::new(&prefix)).map_err(|_| GitError::MissingPrefix {
                prefix: prefix.clone(),
                rev: rev.to_string(),
            })?;
            entry.to_object(&repo).and_then(|o| o.peel_to_tree()).map_err(no_tree)?
        };
        tree.id()
    };
    Ok((repo, id))
}

/// The files kiln reads from the kiln repository at `root` in revision `rev`.
pub fn read_revision(root: &Path, rev: &str) -> Result<InMemory, GitError> {
    let (repo, id) = open_tree(root, rev)?;
    let tree = repo.find_tree(id).map_err(|source| GitError::NoTree {
        rev: rev.to_string(),
        source,
    })?;
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        if !wanted(&path) {
            return TreeWalkResult::Ok;
        }
        match repo.find_blob(entry.id()) {
            // A committed symlink: its blob is the link's target.
            Ok(blob) if entry.filemode() == SYMLINK => {
                links.insert(path, String::from_utf8_lossy(blob.content()).into_owned());
                TreeWalkResult::Ok
            }
            Ok(blob) => {
                files.insert(path, blob.content().to_vec());
                TreeWalkResult::Ok
            }
            Err(e) => {
                failure = Some((path, e.message().to_string()));
                TreeWalkResult::Abort
            }
        }
    })
    .map_err(|e| {
        let (path, message) = failure
            .take()
            .unwrap_or_else(|| (String::new(), e.message().to_string()));
        GitError::Read {
            path,
            rev: rev.to_string(),
            message,
        }
    })?;
    // As in the working tree: a link that stays inside the repository reads
    // its target; one that leaves it (or names nothing) is refused.
    let mut refused = BTreeMap::new();
    for (path, target) in links {
        let why = match resolve_link(&path, &target) {
            None => OUTSIDE.to_string(),
            Some(t) => match files.get(&t).cloned() {
                Some(content) => {
                    files.insert(path, content);
                    continue;
                }
                None => format!("is a symlink to `{t}`, which kiln does not read in this revision"),
            },
        };
        refused.insert(path, why);
    }
    Ok(InMemory {
        label: rev.to_string(),
        files,
        refused,
    })
}

/// Regular files at `paths` (relative to the kiln repository at `root`) in
/// revision `rev`: `None` for a path that is missing there or is not a
/// regular file.
pub fn read_paths(root: &Path, rev: &str, paths: &[String]) -> Result<BTreeMap<String, Option<Vec<u8>>>, GitError> {
    let (repo, id) = open_tree(root, rev)?;
    let tree = repo.find_tree(id).map_err(|source| GitError::NoTree {
        rev: rev.to_string(),
        source,
    })?;
    let found = paths
        .iter()
        .map(|path| {
            let blob = tree
                .get_path(Path::new(path))
                .ok()
                .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != SYMLINK)
                .and_then(|e| repo.find_blob(e.id()).ok())
                .map(|b| b.content().to_vec());
            (path.clone(), blob)
        })
        .collect();
    Ok(found)
}

/// Git's file mode of a symbolic link.
const SYMLINK: i32 = 0o120000;

/// The repository path a link at `link` to `target` names, if it stays
/// inside the repository.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

/// Inputs, and the IPAM locks (also inputs: they keep addresses stable).
fn wanted(path: &str) -> bool {
    let top = path.split('/').next().unwrap_or_default();
    matches!(top, "sites" | "blueprints" | "recipes" | "clusters")
        || (path.starts_with("out/") && path.ends_with(crate::layout::LOCK_FILE) && path.matches('/').count() == 2)
}
