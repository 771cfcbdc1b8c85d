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
pub(super) struct Validators {
    by_kind: HashMap<Kind, (Value, Validator)>,
}

impl Validators {
    pub(super) fn new() -> Validators {
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

    /// Checks one document; every problem is reported, each at its node.
    pub(super) fn check(&self, kind: Kind, file: &str, doc: &Document) -> Result<(), Vec<Diagnostic>> {
        let found = doc.value.get("kind").and_then(Value::as_str);
        if doc.value.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            return Err(vec![Diagnostic::new(
                file,
                doc.locate("/apiVersion", false),
                format!("expected `apiVersion: {API_VERSION}`"),
            )]);
        }
        if found != Some(kind.as_str()) {
            return Err(vec![Diagnostic::new(
                file,
                doc.locate("/kind", false),
                format!("expected a {kind} here, found kind `{}`", found.unwrap_or("(none)")),
            )]);
        }
        let (schema, validator) = &self.by_kind[&kind];
        let all: Vec<ValidationError> = validator.iter_errors(&doc.value).collect();
        let found: Vec<&ValidationError> = all.iter().flat_map(leaves).collect();
        // A missing field that a typo of it explains is not reported twice.
        let meant: Vec<(String, String)> = found
            .iter()
            .filter_map(|e| match e.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let fields = known_fields(schema, e.schema_path().as_str()).unwrap_or_default();
                    Some((e.instance_path().as_str().to_string(), unexpected.clone(), fields))
                }
                _ => None,
            })
            .flat_map(|(at, unexpected, fields)| {
                unexpected
                    .iter()
                    .filter_map(|name| closest(name, &fields).map(|m| (at.clone(), m.to_string())))
                    .collect::<Vec<_>>()
            })
            .collect();
        let explained = |e: &ValidationError| match e.kind() {
            ValidationErrorKind::Required { property } => meant
                .iter()
                .any(|(at, field)| at == e.instance_path().as_str() && property.as_str() == Some(field.as_str())),
            _ => false,
        };
        let mut errors: Vec<Diagnostic> = found
            .into_iter()
            .filter(|e| !explained(e))
            .flat_map(|e| diagnostics(file, doc, schema, e))
            .collect();
        errors.sort();
        errors.dedup();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The errors to report for one validation error. An optional field's
/// schema is "this or null" (`anyOf`): when the value is plainly meant for
/// one branch (every other branch fails only on its type), every problem
/// inside that branch is reported, each at its node.
fn leaves<'e>(error: &'e ValidationError<'e>) -> Vec<&'e ValidationError<'e>> {
    let at = error.instance_path().as_str();
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } = error.kind() {
        let wrong_type = |e: &ValidationError| {
            matches!(e.kind(), ValidationErrorKind::Type { .. }) && e.instance_path().as_str() == at
        };
        let mut meant = context
            .iter()
            .filter(|branch| !(branch.len() == 1 && wrong_type(&branch[0])));
        if let (Some(branch), None) = (meant.next(), meant.next()) {
            return branch.iter().flat_map(leaves).collect();
        }
    }
    vec![error]
}

fn diagnostics(file: &str, doc: &Document, schema: &Value, error: &ValidationError) -> Vec<Diagnostic> {
    let at = error.instance_path().as_str();
    // No branch is plainly meant (see `leaves`): the interesting error is
    // the deepest one inside the branches.
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } = error.kind() {
        let deepest = context
            .iter()
            .flatten()
            .filter(|e| !matches!(e.kind(), ValidationErrorKind::Type { .. }) || e.instance_path().as_str() != at)
            .max_by_key(|e| e.instance_path().as_str().len());
        if let Some(inner) = deepest {
            return diagnostics(file, doc, schema, inner);
        }
    }
    // Each unknown field at its own key, with the field it most likely meant.
    if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
        let fields = known_fields(schema, error.schema_path().as_str()).unwrap_or_default();
        return unexpected
            .iter()
            .map(|name| {
                let message = match closest(name, &fields) {
                    Some(meant) => format!("unknown field `{name}`; did you mean `{meant}`?"),
                    None if fields.is_empty() => format!("unknown field `{name}`"),
                    None => {
                        let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                        format!("unknown field `{name}`, expected one of {}", list.join(", "))
                    }
                };
                Diagnostic::new(file, doc.locate(&format!("{at}/{name}"), true), message)
            })
            .collect();
    }
    let field = || at.rsplit('/').next().unwrap_or_default().to_string();
    let (pointer, key, message) = match error.kind() {
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
        ValidationErrorKind::Type { kind } => {
            // A scalar YAML did not read as the string that was meant
            // (`1.30`, `012`, `0x1F`, `true`): say what was understood.
            let wanted = type_words(kind);
            let hint = match error.instance().as_ref() {
                Value::Number(n) if wanted.contains("a string") => {
                    format!(" (read as the number {n}; quote the value to keep it a string)")
                }
                Value::Bool(b) if wanted.contains("a string") => {
                    format!(" (read as the boolean {b}; quote the value to keep it a string)")
                }
                _ => String::new(),
            };
            (
                at.to_string(),
                false,
                format!(
                    "{} has the wrong type: expected {wanted}, found {}{hint}",
                    field(),
                    json_type(error.instance())
                ),
            )
        }
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
    vec![Diagnostic::new(file, doc.locate(&pointer, key), message)]
}

/// The known field `name` is most likely a typo of: within two edits, and
/// closer than the name is long.
fn closest<'a>(name: &str, fields: &'a [String]) -> Option<&'a str> {
    fields
        .iter()
        .map(|f| (edit_distance(name, f), f))
        .filter(|(d, _)| *d <= 2 && *d < name.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f.as_str())
}

/// Levenshtein distance over characters, with one row of memory.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The fields an object schema allows, for hints.
fn known_fields(schema: &Value, schema_path: &str) -> Option<Vec<String>> {
    let mut object = schema;
    for segment in schema_path.strip_suffix("/additionalProperties")?.split('/').skip(1) {
        object = match (segment, object) {
            ("$ref", _) => schema.pointer(object["$ref"].as_str()?.strip_prefix('#')?)?,
            (_, Value::Array(items)) => items.get(segment.parse::<usize>().ok()?)?,
            (_, other) => other.get(segment)?,
        };
    }
    Some(object["properties"].as_object()?.keys().cloned().collect())
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

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("interfacez", "interfaces"), 1);
        assert_eq!(edit_distance("bluprint", "blueprint"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
