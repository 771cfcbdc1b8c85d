//! Values files read outside the documents of a repository: a provider's
//! `values.example.yaml` and `-f` files from the command line.

use serde_json::{Map, Value};

use crate::diag::Diagnostic;
use crate::yaml::{parse_documents, Document, Pos};

/// Parses a values file (provider defaults, `-f`): one mapping.
pub fn values_document(path: &str, text: &str) -> Result<Document, Diagnostic> {
    let mut docs = parse_documents(text).map_err(|e| Diagnostic::new(path, e.pos, e.message))?;
    match docs.len() {
        0 => Ok(Document::from_value(Value::Object(Map::new()))),
        1 if docs[0].value.is_null() => Ok(Document::from_value(Value::Object(Map::new()))),
        1 if docs[0].value.is_object() => Ok(docs.remove(0)),
        _ => Err(Diagnostic::new(
            path,
            Pos { line: 1, col: 1 },
            "expected one mapping of values",
        )),
    }
}

/// A values file as read: its path and its one mapping.
#[derive(Clone, Debug)]
pub struct ValuesFile {
    pub file: String,
    pub doc: Document,
}
