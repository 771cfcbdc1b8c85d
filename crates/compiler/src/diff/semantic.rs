//! Semantic comparison of YAML files: documents are matched by identity
//! (apiVersion, kind, namespace, name for Kubernetes resources; position
//! otherwise) and compared as data, so key order and formatting never
//! count. Lists of named objects are matched by `name`.

use serde::Serialize;
use serde_json::Value;

use crate::yaml::parse_values;

/// One changed value: its path, and what it was and became (absent when
/// added or removed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// A document of a YAML file that was added, removed or changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceDiff {
    /// `Kind/name`, or `document N` for YAML that is not a resource.
    pub id: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    pub changes: Vec<PathChange>,
}

fn identity(doc: &Value, index: usize) -> String {
    match (doc["kind"].as_str(), doc["metadata"]["name"].as_str()) {
        (Some(kind), Some(name)) => format!("{kind}/{name}"),
        (Some(kind), None) => kind.to_string(),
        _ => format!("document {}", index + 1),
    }
}

fn documents(text: &str) -> Option<Vec<(String, Value)>> {
    let docs = parse_values(text).ok()?;
    Some(
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| (identity(&d.value, i), d.value))
            .collect(),
    )
}

/// The documents of a YAML file that was added or removed as a whole.
pub(super) fn yaml_documents(text: &str, status: &'static str) -> Vec<ResourceDiff> {
    documents(text)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| ResourceDiff {
            id,
            status,
            changes: Vec::new(),
        })
        .collect()
}

/// The semantic differences between two YAML texts; `None` when either is
/// not YAML (then only a text diff applies).
pub(super) fn yaml_diff(old: &str, new: &str) -> Option<Vec<ResourceDiff>> {
    let (old, new) = (documents(old)?, documents(new)?);
    let mut out = Vec::new();
    for (id, before) in &old {
        match new.iter().find(|(n, _)| n == id) {
            Some((_, after)) => {
                let mut changes = Vec::new();
                compare("", before, after, &mut changes);
                if !changes.is_empty() {
                    out.push(ResourceDiff {
                        id: id.clone(),
                        status: "changed",
                        changes,
                    });
                }
            }
            None => out.push(ResourceDiff {
                id: id.clone(),
                status: "removed",
                changes: Vec::new(),
            }),
        }
    }
    for (id, _) in new.iter().filter(|(id, _)| !old.iter().any(|(o, _)| o == id)) {
        out.push(ResourceDiff {
            id: id.clone(),
            status: "added",
            changes: Vec::new(),
        });
    }
    Some(out)
}

/// Compares JSON documents, ignoring `skip` top-level keys (taken out in
/// place: a plan is megabytes).
pub(super) fn json_diff(mut old: Value, mut new: Value, skip: &[&str]) -> Vec<PathChange> {
    for v in [&mut old, &mut new] {
        if let Value::Object(map) = v {
            for key in skip {
                map.remove(*key);
            }
        }
    }
    let mut changes = Vec::new();
    compare("", &old, &new, &mut changes);
    changes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

fn compare(path: &str, old: &Value, new: &Value, out: &mut Vec<PathChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => compare(&join(path, k), va, vb, out),
                    None => out.push(PathChange {
                        path: join(path, k),
                        old: Some(va.clone()),
                        new: None,
                    }),
                }
            }
            for (k, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(PathChange {
                    path: join(path, k),
                    old: None,
                    new: Some(vb.clone()),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) if named(a) && named(b) => {
            // Items are matched by name through an index: a plan's 10,000
            // machines compare in linear time.
            fn key(v: &Value) -> &str {
                v["name"].as_str().unwrap_or_default()
            }
            let old_names: std::collections::HashSet<&str> = a.iter().map(key).collect();
            let new_by_name: std::collections::HashMap<&str, &Value> = b.iter().map(|v| (key(v), v)).collect();
            for va in a {
                let at = format!("{path}[name={}]", key(va));
                match new_by_name.get(key(va)) {
                    Some(vb) if va == *vb => {}
                    Some(vb) => compare(&at, va, vb, out),
                    None => out.push(PathChange {
                        path: at,
                        old: Some(va.clone()),
                        new: None,
                    }),
                }
            }
            for vb in b.iter().filter(|vb| !old_names.contains(key(vb))) {
                out.push(PathChange {
                    path: format!("{path}[name={}]", key(vb)),
                    old: None,
                    new: Some(vb.clone()),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let at = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => compare(&at, va, vb, out),
                    (va, vb) => out.push(PathChange {
                        path: at,
                        old: va.cloned(),
                        new: vb.cloned(),
                    }),
                }
            }
        }
        (a, b) if a != b => out.push(PathChange {
            path: path.to_string(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_formatting_do_not_count() {
        let a = "kind: A\nmetadata: {name: x}\nspec: {replicas: 3, image: i}\n";
        let b = "kind: A\nmetadata:\n  name: x\nspec:\n  image: i\n  replicas: 3\n";
        assert_eq!(yaml_diff(a, b), Some(vec![]));
    }

    #[test]
    fn names_changed_paths() {
        let a =
            "kind: MachineDeployment\nmetadata: {name: w}\nspec: {replicas: 3, containers: [{name: c, image: v1}]}\n";
        let b =
            "kind: MachineDeployment\nmetadata: {name: w}\nspec: {replicas: 5, containers: [{name: c, image: v2}]}\n";
        let d = yaml_diff(a, b).unwrap();
        let paths: Vec<&str> = d[0].changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(d[0].id, "MachineDeployment/w");
        assert_eq!(paths, ["spec.replicas", "spec.containers[name=c].image"]);
    }
}
