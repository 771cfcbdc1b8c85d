//! Reads a kiln repository as of a git revision, without checking it out:
//! the inputs and the IPAM locks under `out/`, straight from the tree.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::load::source::{InMemory, OUTSIDE};

/// The files kiln reads from the kiln repository at `root` in revision `rev`.
pub fn read_revision(root: &Path, rev: &str) -> Result<InMemory, String> {
    let repo = Repository::discover(root)
        .map_err(|e| format!("{}: not in a git repository ({})", root.display(), e.message()))?;
    let workdir = repo
        .workdir()
        .ok_or("kiln diff needs a repository with a working tree")?;
    let canonical = |p: &Path| p.canonicalize().map_err(|e| format!("{}: {e}", p.display()));
    let prefix = canonical(root)?
        .strip_prefix(canonical(workdir)?)
        .map_err(|_| "the repository is outside its git working tree".to_string())?
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/");
    let object = repo
        .revparse_single(rev)
        .map_err(|e| format!("unknown revision `{rev}`: {}", e.message()))?;
    let tree = object
        .peel_to_tree()
        .map_err(|e| format!("`{rev}` names no tree: {}", e.message()))?;
    let tree = if prefix.is_empty() {
        tree
    } else {
        let entry = tree
            .get_path(Path::new(&prefix))
            .map_err(|_| format!("`{prefix}` does not exist in `{rev}`"))?;
        entry
            .to_object(&repo)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| format!("`{prefix}` in `{rev}`: {}", e.message()))?
    };

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
                failure = Some(format!("{path} in `{rev}`: {}", e.message()));
                TreeWalkResult::Abort
            }
        }
    })
    .map_err(|e| failure.clone().unwrap_or_else(|| e.message().to_string()))?;
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
