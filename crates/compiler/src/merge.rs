//! Stage 3, merge: layered template values with provenance (SPEC §3).
//!
//! Layers are applied in order, later wins: maps merge deeply, lists and
//! scalars replace, an explicit `null` removes a key. When asked, the merge
//! records for every path each layer that touched it, so `kiln explain` can
//! show where a value came from.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::yaml::{Document, Pos};

/// One layer of values and where it was written.
#[derive(Clone, Debug)]
pub struct Layer {
    /// What the layer is: `built-in`, `provider`, `site`, `cluster`, ...
    pub name: String,
    pub file: String,
    /// The values mapping, positions relative to `file`.
    pub doc: Document,
}

/// Where a layer set (or removed) a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    pub layer: String,
    pub file: String,
    pub pos: Pos,
    /// The value the layer set; `null` for a removal.
    pub value: Value,
}

/// Every contribution to each dotted value path, in layer order.
pub type Provenance = BTreeMap<String, Vec<Contribution>>;

/// Merges `layers` in order.
pub fn merge(layers: &[Layer]) -> Map<String, Value> {
    let mut merged = Map::new();
    for layer in layers {
        if let Value::Object(map) = &layer.doc.value {
            merge_map(&mut merged, map, layer, "", &mut None);
        }
    }
    merged
}

/// Merges `layers` in order and records who set what.
pub fn merge_with_provenance(layers: &[Layer]) -> (Map<String, Value>, Provenance) {
    let mut merged = Map::new();
    let mut provenance = Some(Provenance::new());
    for layer in layers {
        if let Value::Object(map) = &layer.doc.value {
            merge_map(&mut merged, map, layer, "", &mut provenance);
        }
    }
    (merged, provenance.unwrap_or_default())
}

fn merge_map(
    target: &mut Map<String, Value>,
    source: &Map<String, Value>,
    layer: &Layer,
    pointer: &str,
    provenance: &mut Option<Provenance>,
) {
    for (key, value) in source {
        let pointer = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(map) => {
                let slot = target.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(inner) = slot {
                    merge_map(inner, map, layer, &pointer, provenance);
                }
                if !map.is_empty() {
                    continue;
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
        if let Some(provenance) = provenance {
            provenance.entry(dotted(&pointer)).or_default().push(Contribution {
                layer: layer.name.clone(),
                file: layer.file.clone(),
                pos: layer.doc.locate(&pointer, false),
                value: value.clone(),
            });
        }
    }
}

fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Sets `path` (dotted) to `value` in a values mapping, creating maps on
/// the way; this is how `--set key.path=value` becomes a layer.
pub fn set_path(target: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut current = target;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let slot = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        current = slot.as_object_mut().expect("made an object above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    fn layer(name: &str, text: &str) -> Layer {
        Layer {
            name: name.into(),
            file: format!("{name}.yaml"),
            doc: parse_documents(text).unwrap().remove(0),
        }
    }

    #[test]
    fn deep_merge_replace_lists_and_null_removes() {
        let layers = [
            layer("a", "x: {y: 1, z: 2, list: [1, 2]}\nkeep: true\n"),
            layer("b", "x:\n  y: 3\n  z: null\n  list: [9]\n"),
        ];
        let (merged, prov) = merge_with_provenance(&layers);
        assert_eq!(
            Value::Object(merged.clone()),
            serde_json::json!({"x": {"y": 3, "list": [9]}, "keep": true})
        );
        assert_eq!(merge(&layers), merged);
        let y: Vec<(&str, u32)> = prov["x.y"].iter().map(|c| (c.layer.as_str(), c.pos.line)).collect();
        assert_eq!(y, [("a", 1), ("b", 2)]);
        assert!(prov["x.z"][1].value.is_null());
    }
}
