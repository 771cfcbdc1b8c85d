//! Values files read outside the documents of a repository: a provider's
//! `values.example.yaml` and `-f` files from the command line.

use std::path::Path;

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

/// Reads a values file named on the command line. It may live anywhere,
/// but must be a regular file: never a device, a FIFO or a kernel file such
/// as `/proc/self/environ`, whose content an error would print.
pub fn read_values_file(path: &Path) -> Result<String, String> {
    let real = path.canonicalize().map_err(|e| e.to_string())?;
    let special = ["/proc", "/sys", "/dev"].iter().any(|p| real.starts_with(p));
    let regular = std::fs::metadata(&real).is_ok_and(|m| m.is_file());
    if special || !regular {
        return Err("is not a regular file; a values file must be one".into());
    }
    std::fs::read_to_string(&real).map_err(|e| e.to_string())
}
