//! Diagnostics: errors that point at the input.
//!
//! Every stage reports problems as `Diagnostic`s naming a file, line and
//! column; a run collects all of them before it stops, and they print as
//! `path:line:column: message` followed by the offending line and a marker.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::yaml::Pos;

/// A problem with the input, located in a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Repository-relative path, `/`-separated.
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            pos,
            message: message.into(),
        }
    }

    /// A problem with command-line input, which has no line or column:
    /// `what` names the argument (`--set a=b`, `kiln new site`).
    pub fn command_line(what: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(what, Pos { line: 0, col: 0 }, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.pos.line, self.pos.col, self.message)
    }
}

/// The problems found in one run, in file order.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when nothing was reported.
    pub fn finish<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0.sort();
            self.0.dedup();
            Err(self)
        }
    }

    /// Prints every diagnostic with the line it points at; `source` gives
    /// a file's text.
    pub fn render(&self, source: impl Fn(&str) -> Option<Arc<str>>) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out.push_str(&format!("error: {d}\n"));
            let text = source(&d.file);
            let line = text
                .as_deref()
                .and_then(|t| t.lines().nth(d.pos.line.checked_sub(1)? as usize));
            if let Some(line) = line {
                let gutter = d.pos.line.to_string();
                let marker_col = line.chars().take(d.pos.col.saturating_sub(1) as usize).count();
                out.push_str(&format!(" {gutter} | {line}\n"));
                out.push_str(&format!(
                    " {} | {}^\n",
                    " ".repeat(gutter.len()),
                    " ".repeat(marker_col)
                ));
            }
        }
        out
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

/// The text of every input read in a run, for showing offending lines.
#[derive(Clone, Debug, Default)]
pub struct Sources(BTreeMap<String, Arc<str>>);

impl Sources {
    pub fn insert(&mut self, file: &str, text: Arc<str>) {
        self.0.insert(file.to_string(), text);
    }

    pub fn get(&self, file: &str) -> Option<&Arc<str>> {
        self.0.get(file)
    }

    /// Files whose path starts with `prefix`, in path order.
    pub fn under<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (&'a str, &'a Arc<str>)> + 'a {
        let prefix = prefix.to_string();
        self.0
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}
