//! Cluster `spec.patches`: kiln's small kustomize-like patch engine, run on
//! the parsed resources before they are written.
//!
//! A merge-style `patch` merges maps deeply, merges lists of named objects
//! by `name` (as kustomize does for containers), replaces other lists and
//! removes keys set to `null`. `ops` are RFC 6902 operations. A patch whose
//! target matches nothing is an error.

use serde_json::{Map, Value};

use crate::load::kinds::{Patch, PatchOp, PatchOpKind};

/// Merges `patch` into `target`.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(t, p),
        (Value::Array(t), Value::Array(p)) if is_named_list(t) && is_named_list(p) => {
            for item in p {
                match t.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = strip_nulls(p),
    }
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else if let Some(existing) = target.get_mut(key) {
            merge(existing, value);
        } else {
            target.insert(key.clone(), strip_nulls(value));
        }
    }
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_named_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

/// Applies RFC 6902 operations in order; the error names the failing one.
pub(crate) fn apply_ops(target: &mut Value, ops: &[PatchOp]) -> Result<(), (usize, String)> {
    for (i, op) in ops.iter().enumerate() {
        apply_op(target, op).map_err(|e| (i, e))?;
    }
    Ok(())
}

fn apply_op(target: &mut Value, op: &PatchOp) -> Result<(), String> {
    let value = || {
        op.value
            .clone()
            .ok_or_else(|| format!("`{:?}` needs a `value`", op.op).to_lowercase())
    };
    let from = || {
        op.from
            .as_deref()
            .ok_or_else(|| "this operation needs a `from`".to_string())
    };
    match op.op {
        PatchOpKind::Add => add(target, &op.path, value()?),
        PatchOpKind::Remove => remove(target, &op.path).map(drop),
        PatchOpKind::Replace => {
            let slot = target
                .pointer_mut(&op.path)
                .ok_or_else(|| format!("path `{}` does not exist", op.path))?;
            *slot = value()?;
            Ok(())
        }
        PatchOpKind::Move => {
            let moved = remove(target, from()?)?;
            add(target, &op.path, moved)
        }
        PatchOpKind::Copy => {
            let copied = target
                .pointer(from()?)
                .cloned()
                .ok_or_else(|| format!("path `{}` does not exist", from().unwrap_or_default()))?;
            add(target, &op.path, copied)
        }
        PatchOpKind::Test => {
            let found = target.pointer(&op.path);
            if found == Some(&value()?) {
                Ok(())
            } else {
                Err(format!(
                    "test failed: `{}` is {}",
                    op.path,
                    found.map_or("absent".into(), Value::to_string)
                ))
            }
        }
    }
}

fn split(path: &str) -> Result<(&str, String), String> {
    let i = path
        .rfind('/')
        .ok_or_else(|| format!("`{path}` is not a JSON pointer"))?;
    Ok((&path[..i], path[i + 1..].replace("~1", "/").replace("~0", "~")))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if last == "-" {
                items.len()
            } else {
                index(&last, items.len() + 1)?
            };
            items.insert(index, value);
            Ok(())
        }
        Some(_) => Err(format!("`{parent}` is not a map or list")),
        None => Err(format!("path `{parent}` does not exist")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let missing = || format!("path `{path}` does not exist");
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(missing),
        Some(Value::Array(items)) => {
            let i = index(&last, items.len())?;
            Ok(items.remove(i))
        }
        _ => Err(missing()),
    }
}

fn index(segment: &str, len: usize) -> Result<usize, String> {
    match segment.parse::<usize>() {
        Ok(i) if i < len => Ok(i),
        _ => Err(format!("list index `{segment}` is out of range")),
    }
}

/// Whether `resource` is one of `patch`'s targets.
pub(crate) fn targets(patch: &Patch, resource: &Value) -> bool {
    resource["kind"].as_str() == Some(patch.target.kind.as_str())
        && patch
            .target
            .name
            .as_deref()
            .is_none_or(|name| resource["metadata"]["name"].as_str() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_named_lists_and_removes_nulls() {
        let mut target =
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}], "keep": 1, "drop": 2}});
        merge(
            &mut target,
            &json!({"spec": {"containers": [{"name": "a", "image": "y"}, {"name": "c"}], "drop": null}}),
        );
        assert_eq!(
            target,
            json!({"spec": {"containers": [{"name": "a", "image": "y"}, {"name": "b"}, {"name": "c"}], "keep": 1}})
        );
    }

    #[test]
    fn rfc6902_operations() {
        let op = |op, path: &str, value: Option<Value>| PatchOp {
            op,
            path: path.into(),
            from: None,
            value,
        };
        let mut target = json!({"a": {"list": [1, 2]}});
        apply_ops(
            &mut target,
            &[
                op(PatchOpKind::Add, "/a/list/-", Some(json!(3))),
                op(PatchOpKind::Replace, "/a/list/0", Some(json!(0))),
                op(PatchOpKind::Remove, "/a/list/1", None),
                op(PatchOpKind::Test, "/a/list", Some(json!([0, 3]))),
            ],
        )
        .unwrap();
        assert_eq!(target, json!({"a": {"list": [0, 3]}}));
        let err = apply_ops(&mut target, &[op(PatchOpKind::Remove, "/nope/x", None)]).unwrap_err();
        assert_eq!(err, (0, "path `/nope/x` does not exist".to_string()));
    }
}
