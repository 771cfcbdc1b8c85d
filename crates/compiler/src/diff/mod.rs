//! `kiln diff`: what a change does to the *rendered* fleet. Both revisions
//! are rendered in memory and their outputs compared, grouped by output
//! and, for YAML, by resource. A consumer of rendered output, not a stage.

mod format;
pub mod git;
mod semantic;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::emit::Output;
pub use format::{render, Format};
use kiln_plan::{Plan, PlannedMachine, PLAN_FILE};
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
            let files = compare_files(Side(old), Side(new));
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

/// One side's output (none when the output is only on the other side):
/// its files' contents, and those known only by hash (its `kept` files,
/// identical to the other side's).
#[derive(Clone, Copy)]
struct Side<'a>(Option<&'a Output>);

impl<'a> Side<'a> {
    fn paths(self) -> BTreeSet<&'a String> {
        self.0
            .into_iter()
            .flat_map(|o| o.files.keys().chain(o.kept.keys()))
            .collect()
    }

    fn content(self, path: &str) -> Option<&'a [u8]> {
        self.0?.files.get(path).map(Vec::as_slice)
    }

    fn sha256(self, path: &str) -> Option<&'a str> {
        self.0?.sha256.get(path).map(String::as_str)
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
        match (old.content(path), new.content(path)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) if path.as_str() == PLAN_FILE => {
                files.extend(old.0.zip(new.0).and_then(|(a, b)| plan_diff(a, b)))
            }
            (Some(a), Some(b)) => files.extend(modified(path, a, b)),
            _ => {}
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
/// Built from the outputs' typed plans, not by parsing `plan.json`: only
/// the machines that differ become JSON to compare.
fn plan_diff(old: &Output, new: &Output) -> Option<FileDiff> {
    let (a, b) = differing_machines(&old.machines, &new.machines);
    let value = |o: &Output, machines: Vec<PlannedMachine>| {
        serde_json::to_value(Plan {
            name: o.name.clone(),
            kind: o.kind,
            inputs_digest: String::new(),
            files: Vec::new(),
            machines,
            boot_artifacts: o.boot_artifacts.clone(),
            discovery: o.discovery.clone(),
            plan_digest: String::new(),
        })
    };
    let (pa, pb) = (value(old, a).ok()?, value(new, b).ok()?);
    let changes = semantic::json_diff(pa, pb, &[]);
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

/// The machines of each side that the other side does not have as they
/// are (in their order). The JSON comparison matches machines by name and
/// reports nothing for equal ones, so leaving those out changes nothing —
/// except that a list must not become empty when it was not (an empty list
/// is compared by position): then one equal machine stays on both sides.
fn differing_machines(old: &[PlannedMachine], new: &[PlannedMachine]) -> (Vec<PlannedMachine>, Vec<PlannedMachine>) {
    let by_name = |ms: &[PlannedMachine]| -> BTreeMap<String, usize> {
        ms.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect()
    };
    let (old_at, new_at) = (by_name(old), by_name(new));
    let same = |m: &PlannedMachine, other: &[PlannedMachine], at: &BTreeMap<String, usize>| {
        at.get(&m.name).is_some_and(|i| other[*i] == *m)
    };
    let keep = |ms: &[PlannedMachine], other: &[PlannedMachine], at: &BTreeMap<String, usize>, stay: Option<&str>| {
        ms.iter()
            .filter(|m| !same(m, other, at) || Some(m.name.as_str()) == stay)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (a, b) = (keep(old, new, &new_at, None), keep(new, old, &old_at, None));
    if (a.is_empty() && !old.is_empty()) || (b.is_empty() && !new.is_empty()) {
        if let Some(stay) = old.iter().find(|m| same(m, new, &new_at)).map(|m| m.name.as_str()) {
            return (keep(old, new, &new_at, Some(stay)), keep(new, old, &old_at, Some(stay)));
        }
    }
    (a, b)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, ip: &str) -> PlannedMachine {
        serde_json::from_value(serde_json::json!({
            "name": name, "mac": "02:00:00:00:00:01", "ip": ip,
            "blueprint": "rhel9", "generation": 1, "steps": [],
        }))
        .unwrap()
    }

    fn site(machines: Vec<PlannedMachine>) -> Output {
        Output {
            machines,
            ..Output::empty("lab", kiln_plan::OutputKind::Site, String::new())
        }
    }

    fn paths(old: Vec<PlannedMachine>, new: Vec<PlannedMachine>) -> Vec<String> {
        plan_diff(&site(old), &site(new)).map_or_else(Vec::new, |d| {
            d.resources[0].changes.iter().map(|c| c.path.clone()).collect()
        })
    }

    /// Equal machines are left out of the comparison, and what is left is
    /// still matched by name, even when every other machine is equal.
    #[test]
    fn plans_are_compared_by_machine_name() {
        let (a, b, c) = (
            machine("a", "10.0.0.1"),
            machine("b", "10.0.0.2"),
            machine("c", "10.0.0.3"),
        );
        assert!(paths(vec![a.clone(), b.clone()], vec![a.clone(), b.clone()]).is_empty());
        assert_eq!(
            paths(vec![a.clone(), b.clone()], vec![a.clone(), b.clone(), c.clone()]),
            ["machines[name=c]"]
        );
        assert_eq!(
            paths(vec![a.clone(), b.clone(), c.clone()], vec![a.clone(), c.clone()]),
            ["machines[name=b]"]
        );
        let moved = machine("b", "10.0.0.9");
        assert_eq!(
            paths(vec![a.clone(), b.clone()], vec![a.clone(), moved]),
            ["machines[name=b].ip"]
        );
        assert_eq!(paths(vec![a.clone()], Vec::new()), ["machines"]);
        assert_eq!(paths(Vec::new(), vec![c]), ["machines"]);
    }
}
