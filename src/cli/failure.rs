//! How a command fails, and how each failure is shown and mapped to an exit
//! code (SPEC §5).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use kiln_compiler::diag::{Diagnostic, Diagnostics, Sources};

/// Exit codes (SPEC §5).
pub mod exit {
    pub const OK: i32 = 0;
    pub const DIFFERENCES: i32 = 1;
    pub const INVALID_INPUT: i32 = 2;
    pub const DEGRADED: i32 = 3;
    pub const RUNTIME: i32 = 4;
}

/// Why a command failed.
pub enum Failure {
    Input(Diagnostics),
    /// Input errors in files that are not on disk (a git revision).
    InputIn(Diagnostics, Sources),
    Runtime(String),
    /// Whoever read our output stopped reading (`kiln schema | head`): end
    /// quietly, as other Unix tools do.
    ClosedOutput,
}

impl Failure {
    /// A problem with a command-line argument, which has no line or column.
    pub fn usage(what: &str, message: impl Into<String>) -> Failure {
        Failure::Input(Diagnostics::from(Diagnostic::command_line(what, message)))
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::Input(d)
    }
}

impl From<kiln_compiler::emit::EmitError> for Failure {
    fn from(e: kiln_compiler::emit::EmitError) -> Failure {
        Failure::Runtime(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::ClosedOutput
        } else {
            Failure::Runtime(e.to_string())
        }
    }
}

/// Shows a command's result and returns its exit code. Input errors are
/// JSON on stdout when the command was asked for JSON.
pub(super) fn report(
    result: Result<i32, Failure>,
    repo: &Path,
    json_errors: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    match result {
        Ok(code) => code,
        Err(Failure::ClosedOutput) => exit::OK,
        Err(Failure::Input(diags)) if json_errors => {
            let errors: Vec<Value> = diags
                .0
                .iter()
                .map(|d| json!({"file": d.file, "line": d.pos.line, "column": d.pos.col, "message": d.message}))
                .collect();
            let _ = writeln!(stdout, "{}", json!({"ok": false, "errors": errors}));
            exit::INVALID_INPUT
        }
        Err(Failure::Input(diags)) => {
            let text = diags.render(|file| read_source(repo, file));
            let _ = write!(stderr, "{text}");
            let _ = writeln!(stderr, "{}; nothing was written", errors(diags.0.len()));
            exit::INVALID_INPUT
        }
        Err(Failure::InputIn(diags, sources)) => {
            let text = diags.render(|file| sources.get(file).cloned());
            let _ = write!(stderr, "{text}");
            let _ = writeln!(stderr, "{}", errors(diags.0.len()));
            exit::INVALID_INPUT
        }
        Err(Failure::Runtime(message)) => {
            let _ = writeln!(stderr, "error: {message}");
            exit::RUNTIME
        }
    }
}

fn errors(n: usize) -> String {
    plural(n, "error", "errors")
}

/// `1 output`, `2 outputs`.
pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A repository file's text, for showing an error's line. Only a regular
/// file that really lies inside the repository is read: an error about a
/// symlink to `/proc/self/environ` must not print the CI job's environment.
fn read_source(repo: &Path, file: &str) -> Option<Arc<str>> {
    let root = repo.canonicalize().ok()?;
    let path = repo.join(file).canonicalize().ok()?;
    if !path.starts_with(&root) || !std::fs::metadata(&path).ok()?.is_file() {
        return None;
    }
    std::fs::read_to_string(path).ok().map(Arc::from)
}
