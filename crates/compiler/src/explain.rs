//! `kiln explain NAME PATH [--key KEY]`: where the values behind a rendered
//! file came from, layer by layer. A consumer of the render, not a stage.
//!
//! `KEY` is a dotted values path (`cilium.version`) or, failing that, a
//! path in the rendered YAML file (`spec.chart.spec.version`), which is
//! explained by the values whose merged value equals what was rendered.

use serde::Serialize;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics};
use crate::layout::{Origin, ValuesOf};
use crate::load::Repo;
use crate::merge::{merge_with_provenance, Layer, Provenance};
use crate::render::{Context, Options};
use crate::resolve::Model;
use crate::yaml::parse_values;

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub output: String,
    pub file: String,
    /// What rendered the file: its template and whose values.
    pub origin: Origin,
    /// The value layers of the file, lowest first.
    pub layers: Vec<LayerRef>,
    pub keys: Vec<KeyExplanation>,
    /// Said when the key is not a values key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LayerRef {
    pub layer: String,
    pub file: String,
}

#[derive(Debug, Serialize)]
pub struct KeyExplanation {
    pub key: String,
    /// The merged value; absent when the last layer removed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub contributions: Vec<Step>,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub layer: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// What the layer set; `null` for a removal.
    pub value: Value,
    pub wins: bool,
}

fn input_error(message: String) -> Diagnostics {
    Diagnostics::from(Diagnostic::command_line("kiln explain", message))
}

/// The layers whose merge fed a file, read from the render's record of
/// where the file came from.
fn layers_for(cx: &Context, model: &Model, name: &str, origin: &Origin) -> Vec<Layer> {
    let site = || model.sites.iter().find(|s| s.name() == name);
    match &origin.values {
        ValuesOf::Cluster => model
            .clusters
            .iter()
            .find(|c| c.name() == name)
            .map(|c| cx.cluster_layers(c))
            .unwrap_or_default(),
        ValuesOf::Site => site().map(|s| cx.site_layers(s.input)).unwrap_or_default(),
        ValuesOf::Blueprint { blueprint } => site()
            .and_then(|s| {
                let bp = s
                    .machines
                    .iter()
                    .map(|m| m.blueprint)
                    .chain(s.discovery)
                    .find(|b| b.object.name() == blueprint)?;
                Some(cx.machine_layers(s.input, None, bp))
            })
            .unwrap_or_default(),
        ValuesOf::Machine { machine, blueprint, .. } => site()
            .and_then(|s| {
                let m = s.machines.iter().find(|m| m.name() == machine)?;
                let bp = m
                    .commission
                    .into_iter()
                    .chain([m.blueprint])
                    .find(|b| b.object.name() == blueprint)?;
                Some(cx.machine_layers(s.input, Some(m.input), bp))
            })
            .unwrap_or_default(),
    }
}

fn explain_key(key: &str, provenance: &Provenance, merged: &serde_json::Map<String, Value>) -> Vec<KeyExplanation> {
    provenance
        .iter()
        .filter(|(k, _)| *k == key || k.starts_with(&format!("{key}.")))
        .map(|(k, contributions)| {
            let value = k
                .split('.')
                .try_fold(&Value::Object(merged.clone()), |v, part| v.get(part))
                .cloned();
            let last = contributions.len() - 1;
            KeyExplanation {
                key: k.clone(),
                value,
                contributions: contributions
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Step {
                        layer: c.layer.clone(),
                        file: c.file.clone(),
                        line: c.pos.line,
                        column: c.pos.col,
                        value: c.value.clone(),
                        wins: i == last,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A value in a rendered YAML file, by dotted path (`spec.replicas`,
/// `spec.list.0.name`); the first document that has it.
fn rendered_value(text: &str, key: &str) -> Option<Value> {
    parse_values(text).ok()?.into_iter().find_map(|doc| {
        key.split('.').try_fold(doc.value, |v, part| match v {
            Value::Object(mut map) => map.remove(part),
            Value::Array(mut items) => part
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .map(|i| items.swap_remove(i)),
            _ => None,
        })
    })
}

pub fn explain(
    repo: &Repo,
    model: &Model,
    options: &Options,
    name: &str,
    path: &str,
    key: Option<&str>,
) -> Result<Explanation, Diagnostics> {
    let cx = Context::new(repo, &options.overrides, options.limits)?;
    let outputs = crate::render::render_with(&cx, model, &[name.to_string()], &crate::progress::Silent)?;
    let path = path.trim_start_matches("out/").trim_start_matches(&format!("{name}/"));
    let output = outputs.iter().find(|o| o.name == name);
    let (rendered, origin) = output
        .and_then(|o| Some((o.files.get(path)?, o.origins.get(path)?)))
        .ok_or_else(|| {
            input_error(format!(
                "out/{name}/ has no file `{path}` that kiln renders from values"
            ))
        })?;
    let layers = layers_for(&cx, model, name, origin);
    let (merged, provenance) = merge_with_provenance(&layers);

    let mut note = None;
    let keys = match key {
        None => provenance
            .keys()
            .flat_map(|k| explain_key(k, &provenance, &merged))
            .collect(),
        Some(key) => {
            let direct = explain_key(key, &provenance, &merged);
            if !direct.is_empty() {
                direct
            } else {
                let text = String::from_utf8_lossy(rendered);
                let value = rendered_value(&text, key).ok_or_else(|| {
                    input_error(format!("`{key}` is neither a value nor a path in out/{name}/{path}"))
                })?;
                let matches: Vec<KeyExplanation> = provenance
                    .keys()
                    .flat_map(|k| explain_key(k, &provenance, &merged))
                    .filter(|k| k.value.as_ref() == Some(&value))
                    .collect();
                note = Some(if matches.is_empty() {
                    format!("`{key}` is {value} in the rendered file; no value layer sets it, so it comes from the template")
                } else {
                    format!("`{key}` is {value} in the rendered file: the values below hold it")
                });
                matches
            }
        }
    };
    Ok(Explanation {
        output: name.to_string(),
        file: path.to_string(),
        origin: origin.clone(),
        layers: layers
            .iter()
            .map(|l| LayerRef {
                layer: l.name.clone(),
                file: l.file.clone(),
            })
            .collect(),
        keys,
        note,
    })
}

/// The plain-text form.
pub fn to_text(e: &Explanation) -> String {
    use std::fmt::Write;
    let from = e
        .origin
        .template
        .as_ref()
        .map_or(String::new(), |t| format!(" from {t}"));
    let mut out = format!(
        "out/{}/{} is rendered{from} with these value layers, lowest first:\n",
        e.output, e.file
    );
    for l in &e.layers {
        let _ = writeln!(out, "  {:<12} {}", l.layer, l.file);
    }
    if let Some(note) = &e.note {
        let _ = writeln!(out, "\n{note}");
    }
    for k in &e.keys {
        let value = k.value.as_ref().map_or("(removed)".to_string(), Value::to_string);
        let _ = writeln!(out, "\n{} = {value}", k.key);
        for s in &k.contributions {
            let mark = if s.wins { "→" } else { " " };
            let what = if s.value.is_null() {
                "null (removes it)".to_string()
            } else {
                s.value.to_string()
            };
            let place = if s.line == 0 {
                s.file.clone()
            } else {
                format!("{}:{}:{}", s.file, s.line, s.column)
            };
            let _ = writeln!(
                out,
                "  {mark} {:<12} {place}  {what}{}",
                s.layer,
                if s.wins { "  (wins)" } else { "" }
            );
        }
    }
    out
}
