//! What every command that reads the repository shares: where the
//! repository and its output are, how progress is reported, and the
//! command line's values layers.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::failure::Failure;
use kiln_compiler::diag::{Diagnostic, Diagnostics};
use kiln_compiler::emit::Output;
use kiln_compiler::load::values::{read_values_file, values_document};
use kiln_compiler::merge::{set_path, Layer};
use kiln_compiler::progress::Progress;
use kiln_compiler::render::templates::Limits;
use kiln_compiler::render::Options;
use kiln_compiler::yaml::{parse_documents, Document};
use kiln_compiler::Compiled;

pub(super) struct Session<'a> {
    pub repo: PathBuf,
    pub out_dir: PathBuf,
    pub progress: &'a dyn Progress,
    /// How much work templates may do (`--max-file-mib`, ...).
    pub limits: Limits,
}

impl Session<'_> {
    /// What a render of `names` (every output when empty) renders with.
    pub(super) fn options(&self, names: Vec<String>, values: &ValueArgs) -> Result<Options, Failure> {
        Ok(Options {
            only: names,
            overrides: values.layers()?,
            limits: self.limits,
            previous: None,
        })
    }

    /// Loads and resolves, and renders the selected outputs whose `out/`
    /// is not already up to date.
    pub(super) fn compile_changed(&self, options: &Options) -> Result<Compiled, Failure> {
        Ok(kiln_compiler::compile_changed(
            &self.repo,
            &self.out_dir,
            options,
            self.progress,
        )?)
    }

    /// Loads, resolves and renders the selected outputs in memory.
    pub(super) fn compile(&self, names: Vec<String>, values: &ValueArgs) -> Result<Vec<Output>, Failure> {
        Ok(kiln_compiler::compile(
            &self.repo,
            &self.out_dir,
            &self.options(names, values)?,
            self.progress,
        )?)
    }
}

/// Where output goes: `--out` as given, or `<repo>/out`, which must not
/// lead out of the repository (a committed `out` symlink would otherwise
/// make kiln write, and read locks, wherever it points).
pub(super) fn out_dir(repo: &Path, explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(out) = explicit {
        return Ok(out.to_path_buf());
    }
    let out = repo.join("out");
    let leaves = std::fs::symlink_metadata(&out).is_ok_and(|m| m.is_symlink())
        && match (repo.canonicalize(), out.canonicalize()) {
            (Ok(root), Ok(real)) => !real.starts_with(root),
            _ => true,
        };
    if leaves {
        return Err(Failure::usage(
            "out",
            "is a symlink out of the repository; kiln writes there only when --out names it",
        ));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, clap::Args, Default)]
pub struct ValueArgs {
    /// Set a value on the command line (highest layer), e.g. `workers.replicas=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Merge a values file (highest layer, below --set).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
}

impl ValueArgs {
    /// The command line's values layers: `-f` files in order, then `--set`.
    pub fn layers(&self) -> Result<Vec<Layer>, Failure> {
        let mut layers = Vec::new();
        let mut diags = Diagnostics::default();
        for path in &self.values {
            let file = path.display().to_string();
            let text = read_values_file(path).map_err(|e| Failure::usage(&format!("-f {file}"), e))?;
            match values_document(&file, &text) {
                Ok(doc) => layers.push(Layer {
                    name: "values file".into(),
                    file,
                    doc,
                }),
                Err(d) => diags.push(d),
            }
        }
        for item in &self.set {
            let Some((key, raw)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                diags.push(Diagnostic::command_line(
                    format!("--set {item}"),
                    "expected KEY=VALUE, e.g. `workers.replicas=5`",
                ));
                continue;
            };
            let value = parse_documents(raw)
                .ok()
                .and_then(|mut d| (d.len() == 1).then(|| d.remove(0).value))
                .unwrap_or_else(|| Value::String(raw.to_string()));
            let mut map = Map::new();
            set_path(&mut map, key, value);
            layers.push(Layer {
                name: "--set".into(),
                file: format!("--set {item}"),
                doc: Document::from_value(Value::Object(map)),
            });
        }
        diags.finish(layers).map_err(Failure::Input)
    }
}
