//! `kiln diff`: what a change does to the *rendered* fleet. Both revisions
//! are rendered in memory and their outputs compared, grouped by output
//! and, for YAML, by resource. A consumer of rendered output, not a stage.

mod format;
pub mod git;
mod semantic;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::emit::Output;
pub use format::{render, Format};
use kiln_plan::PLAN_FILE;
pub use semantic::{PathChange, ResourceDiff};

/// The differences between two renders.
#[derive(Debug, Serialize)]
pub struct Diff {
    pub base: String,
    pub head: String,
    pub outputs: Vec<OutputDiff>,
}

#[derive(Debug, Serialize)]
pub struct OutputDiff {
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    pub files: Vec<FileDiff>,
}

#[derive(Debug, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `removed`, `modified` or `renamed`.
    pub status: &'static str,
    /// For a renamed file, its old path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Semantic changes of YAML documents, by resource.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceDiff>,
    /// Line-based unified diff (empty for a rename without changes).
    pub unified: String,
    pub insertions: usize,
    pub deletions: usize,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }
}

/// Compares two sets of rendered outputs.
pub fn compare(base_label: &str, base: &[Output], head_label: &str, head: &[Output]) -> Diff {
    fn by_name(outputs: &[Output]) -> BTreeMap<&str, &Output> {
        outputs.iter().map(|o| (o.name.as_str(), o)).collect()
    }
    let (base, head) = (by_name(base), by_name(head));
    let names: BTreeSet<&str> = base.keys().chain(head.keys()).copied().collect();
    let outputs = names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (base.get(name).copied(), head.get(name).copied());
            let status = match (old, new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let files = compare_files(Side::of(old), Side::of(new));
            (!files.is_empty()).then(|| OutputDiff {
                name: name.to_string(),
                status,
                files,
            })
        })
        .collect();
    Diff {
        base: base_label.to_string(),
        head: head_label.to_string(),
        outputs,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One side's files: their contents, and those known only by hash (an
/// output's `kept` files, identical to the other side's).
struct Side<'a> {
    files: Option<&'a BTreeMap<String, Vec<u8>>>,
    kept: Option<&'a BTreeMap<String, kiln_plan::PlannedFile>>,
    sha256: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Side<'a> {
    fn of(output: Option<&'a Output>) -> Side<'a> {
        Side {
            files: output.map(|o| &o.files),
            kept: output.map(|o| &o.kept),
            sha256: output.map(|o| &o.sha256),
        }
    }

    fn paths(&self) -> BTreeSet<&'a String> {
        let files = self.files.into_iter().flat_map(BTreeMap::keys);
        files.chain(self.kept.into_iter().flat_map(BTreeMap::keys)).collect()
    }

    fn content(&self, path: &str) -> Option<&'a [u8]> {
        self.files?.get(path).map(Vec::as_slice)
    }

    fn sha256(&self, path: &str) -> Option<&'a str> {
        self.sha256?.get(path).map(String::as_str)
    }
}

fn compare_files(old: Side, new: Side) -> Vec<FileDiff> {
    let mut files = Vec::new();
    let (old_paths, new_paths) = (old.paths(), new.paths());
    let removed: Vec<&String> = old_paths.difference(&new_paths).copied().collect();
    let mut added: Vec<&String> = new_paths.difference(&old_paths).copied().collect();
    for path in old_paths.intersection(&new_paths) {
        // The same SHA-256 is the same file: never read as text.
        if old.sha256(path).is_some() && old.sha256(path) == new.sha256(path) {
            continue;
        }
        if let (Some(a), Some(b)) = (old.content(path), new.content(path)) {
            files.extend(modified(path, a, b));
        }
    }
    // A removed file whose exact content reappears elsewhere was renamed;
    // added files are found by content through an index.
    let mut added_by_content: BTreeMap<&[u8], Vec<&String>> = BTreeMap::new();
    for a in added.iter().rev() {
        if let Some(content) = new.content(a) {
            added_by_content.entry(content).or_default().push(a);
        }
    }
    for path in removed {
        let Some(content) = old.content(path) else { continue };
        if let Some(to) = added_by_content.get_mut(content).and_then(Vec::pop) {
            added.retain(|a| *a != to);
            files.push(FileDiff {
                path: to.clone(),
                status: "renamed",
                from: Some(path.clone()),
                resources: Vec::new(),
                unified: String::new(),
                insertions: 0,
                deletions: 0,
            });
        } else {
            files.push(whole(path, "removed", content));
        }
    }
    for path in added {
        files.extend(new.content(path).map(|content| whole(path, "added", content)));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn whole(path: &str, status: &'static str, bytes: &[u8]) -> FileDiff {
    let content = text(bytes);
    let (old, new) = if status == "added" {
        ("", content.as_str())
    } else {
        (content.as_str(), "")
    };
    let (unified, insertions, deletions) = unified(path, old, new);
    let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    FileDiff {
        path: path.to_string(),
        status,
        from: None,
        resources: if yaml {
            semantic::yaml_documents(&content, status)
        } else {
            Vec::new()
        },
        unified,
        insertions,
        deletions,
    }
}

/// A changed file, or `None` when the change means nothing: YAML that is
/// equal as data, or a plan whose only changes are derived ones (file
/// digests, the inputs digest), which the other files already show.
fn modified(path: &str, old: &[u8], new: &[u8]) -> Option<FileDiff> {
    if old == new {
        return None;
    }
    if path == PLAN_FILE {
        return plan_diff(old, new);
    }
    let (a, b) = (text(old), text(new));
    let resources = if path.ends_with(".yaml") || path.ends_with(".yml") {
        match semantic::yaml_diff(&a, &b) {
            Some(r) if r.is_empty() => return None,
            Some(r) => r,
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let (unified, insertions, deletions) = unified(path, &a, &b);
    Some(FileDiff {
        path: path.to_string(),
        status: "modified",
        from: None,
        resources,
        unified,
        insertions,
        deletions,
    })
}

/// `plan.json` compared as data, never as text: its machines added,
/// removed or changed (the file list and digests are derived from the other
/// files, which the diff already shows). The counts are of changed values.
fn plan_diff(old: &[u8], new: &[u8]) -> Option<FileDiff> {
    /// A plan without its file list, which is skipped, not built.
    #[derive(serde::Deserialize)]
    struct WithoutFiles {
        #[serde(rename = "files")]
        _files: serde::de::IgnoredAny,
        #[serde(flatten)]
        rest: serde_json::Map<String, Value>,
    }
    let parse = |bytes| serde_json::from_slice::<WithoutFiles>(bytes).map(|p| Value::Object(p.rest));
    let (pa, pb) = rayon::join(|| parse(old), || parse(new));
    let (pa, pb) = (pa.ok()?, pb.ok()?);
    let changes = semantic::json_diff(pa, pb, &["inputsDigest", "planDigest"]);
    if changes.is_empty() {
        return None;
    }
    let insertions = changes.iter().filter(|c| c.new.is_some()).count();
    let deletions = changes.iter().filter(|c| c.old.is_some()).count();
    Some(FileDiff {
        path: PLAN_FILE.to_string(),
        status: "modified",
        from: None,
        resources: vec![ResourceDiff {
            id: "plan".into(),
            status: "changed",
            changes,
        }],
        unified: String::new(),
        insertions,
        deletions,
    })
}

fn unified(path: &str, old: &str, new: &str) -> (String, usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    let (mut ins, mut del) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => ins += 1,
            similar::ChangeTag::Delete => del += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    (text, ins, del)
}
