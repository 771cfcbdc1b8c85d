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
    fn by_name(outputs: &[Output]) -> BTreeMap<String, &BTreeMap<String, Vec<u8>>> {
        outputs.iter().map(|o| (o.name.clone(), &o.files)).collect()
    }
    let (base, head) = (by_name(base), by_name(head));
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = base.keys().chain(head.keys()).collect();
    let outputs = names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (base.get(name), head.get(name));
            let status = match (old, new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let files = compare_files(old.copied().unwrap_or(&empty), new.copied().unwrap_or(&empty));
            (!files.is_empty()).then(|| OutputDiff {
                name: name.clone(),
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

fn compare_files(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, Vec<u8>>) -> Vec<FileDiff> {
    let mut files = Vec::new();
    let removed: Vec<&String> = old.keys().filter(|p| !new.contains_key(*p)).collect();
    let mut added: Vec<&String> = new.keys().filter(|p| !old.contains_key(*p)).collect();
    for path in old.keys().filter(|p| new.contains_key(*p)) {
        if let Some(diff) = modified(path, &old[path], &new[path]) {
            files.push(diff);
        }
    }
    // A removed file whose exact content reappears elsewhere was renamed;
    // added files are found by content through an index.
    let mut added_by_content: BTreeMap<&[u8], Vec<&String>> = BTreeMap::new();
    for a in added.iter().rev() {
        added_by_content.entry(new[*a].as_slice()).or_default().push(a);
    }
    for path in removed {
        if let Some(to) = added_by_content.get_mut(old[path].as_slice()).and_then(Vec::pop) {
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
            files.push(whole(path, "removed", &old[path]));
        }
    }
    for path in added {
        files.push(whole(path, "added", &new[path]));
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
    let (pa, pb) = rayon::join(
        || serde_json::from_slice::<Value>(old),
        || serde_json::from_slice::<Value>(new),
    );
    let (pa, pb) = (pa.ok()?, pb.ok()?);
    let changes = semantic::json_diff(pa, pb, &["files", "inputsDigest", "planDigest"]);
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
