//! Validates input documents against their kind's JSON Schema and turns
//! schema errors into diagnostics that point at the offending node.

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::kinds::{Kind, API_VERSION, PATTERNS};
use crate::diag::Diagnostic;
use crate::yaml::Document;

/// One compiled validator per kind, built once per run.
pub struct Validators {
    by_kind: HashMap<Kind, (Value, Validator)>,
}

impl Validators {
    pub fn new() -> Validators {
        let by_kind = Kind::ALL
            .into_iter()
            .map(|kind| {
                let schema = kind.schema();
                let validator = jsonschema::validator_for(&schema).expect("kiln's own schemas compile");
                (kind, (schema, validator))
            })
            .collect();
        Validators { by_kind }
    }

    /// Checks one document; the first problem found is reported (the rest
    /// are usually consequences of it).
    pub fn check(&self, kind: Kind, file: &str, doc: &Document) -> Result<(), Diagnostic> {
        let found = doc.value.get("kind").and_then(Value::as_str);
        if doc.value.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            return Err(Diagnostic::new(
                file,
                doc.locate("/apiVersion", false),
                format!("expected `apiVersion: {API_VERSION}`"),
            ));
        }
        if found != Some(kind.as_str()) {
            return Err(Diagnostic::new(
                file,
                doc.locate("/kind", false),
                format!("expected a {kind} here, found kind `{}`", found.unwrap_or("(none)")),
            ));
        }
        let (schema, validator) = &self.by_kind[&kind];
        let mut errors: Vec<Diagnostic> = validator
            .iter_errors(&doc.value)
            .map(|e| diagnostic(file, doc, schema, &e))
            .collect();
        errors.sort();
        match errors.into_iter().next() {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }
}

fn diagnostic(file: &str, doc: &Document, schema: &Value, error: &ValidationError) -> Diagnostic {
    let at = error.instance_path().as_str();
    // An optional field's schema is "this or null": the interesting error
    // is the deepest one inside the branches.
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } = error.kind() {
        let deepest = context
            .iter()
            .flatten()
            .filter(|e| !matches!(e.kind(), ValidationErrorKind::Type { .. }) || e.instance_path().as_str() != at)
            .max_by_key(|e| e.instance_path().as_str().len());
        if let Some(inner) = deepest {
            return diagnostic(file, doc, schema, inner);
        }
    }
    let field = || at.rsplit('/').next().unwrap_or_default().to_string();
    let (pointer, key, message) = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = &unexpected[0];
            let expected = known_fields(schema, error.schema_path().as_str());
            let message = match expected {
                Some(list) => format!("unknown field `{name}`, expected one of {list}"),
                None => format!("unknown field `{name}`"),
            };
            (format!("{at}/{name}"), true, message)
        }
        ValidationErrorKind::Required { property } => (
            at.to_string(),
            false,
            format!("missing field `{}`", property.as_str().unwrap_or_default()),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            let expected = PATTERNS.iter().find(|(p, _)| p == pattern).map_or_else(
                || format!("a string matching `{pattern}`"),
                |(_, words)| words.to_string(),
            );
            (
                at.to_string(),
                false,
                format!("{} `{}` is not {expected}", field(), scalar(error.instance())),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| format!("`{}`", scalar(o)))
                .collect();
            (
                at.to_string(),
                false,
                format!(
                    "{} `{}` is not one of {}",
                    field(),
                    scalar(error.instance()),
                    options.join(", ")
                ),
            )
        }
        ValidationErrorKind::Type { kind } => (
            at.to_string(),
            false,
            format!(
                "{} has the wrong type: expected {}, found {}",
                field(),
                type_words(kind),
                json_type(error.instance())
            ),
        ),
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::OneOfMultipleValid { .. }
            if at.contains("/patches/") =>
        {
            (
                at.to_string(),
                false,
                "a patch needs exactly one of `patch` or `ops`".to_string(),
            )
        }
        _ => (
            at.to_string(),
            false,
            format!("{}: {error}", if at.is_empty() { "document" } else { at }),
        ),
    };
    Diagnostic::new(file, doc.locate(&pointer, key), message)
}

/// The fields an object schema allows, for "expected one of" hints.
fn known_fields(schema: &Value, schema_path: &str) -> Option<String> {
    let mut object = schema;
    for segment in schema_path.strip_suffix("/additionalProperties")?.split('/').skip(1) {
        object = match (segment, object) {
            ("$ref", _) => schema.pointer(object["$ref"].as_str()?.strip_prefix('#')?)?,
            (_, Value::Array(items)) => items.get(segment.parse::<usize>().ok()?)?,
            (_, other) => other.get(segment)?,
        };
    }
    let names: Vec<String> = object["properties"]
        .as_object()?
        .keys()
        .map(|k| format!("`{k}`"))
        .collect();
    Some(names.join(", "))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_words(kind: &jsonschema::error::TypeKind) -> String {
    let types: Vec<String> = match kind {
        jsonschema::error::TypeKind::Single(t) => vec![t.to_string()],
        jsonschema::error::TypeKind::Multiple(set) => set.into_iter().map(|t| t.to_string()).collect(),
    };
    let words: Vec<&str> = types
        .iter()
        .filter(|t| *t != "null")
        .map(|t| match t.as_str() {
            "integer" => "an integer",
            "number" => "a number",
            "string" => "a string",
            "boolean" => "a boolean",
            "array" => "a list",
            _ => "a mapping",
        })
        .collect();
    words.join(" or ")
}
