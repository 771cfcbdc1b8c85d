//! `kiln diff`: what a change does to the rendered output, between git
//! revisions (or a revision and the working tree).

use std::io::Write;

use super::failure::{exit, Failure};
use super::session::{Session, ValueArgs};
use kiln_compiler::diag::Diagnostics;
use kiln_compiler::diff::Format;
use kiln_compiler::emit::Output;
use kiln_compiler::progress::step;
use kiln_compiler::render::Options;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The revision to compare against.
    #[arg(long, default_value = "HEAD")]
    pub base: String,
    /// The revision to compare (default: the working tree).
    #[arg(long)]
    pub head: Option<String>,
    #[arg(long, value_enum, default_value = "unified")]
    pub format: DiffFormat,
    /// Exit 1 when there are differences.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Unified,
    Markdown,
    Json,
    Stat,
}

impl From<DiffFormat> for Format {
    fn from(f: DiffFormat) -> Self {
        match f {
            DiffFormat::Unified => Self::Unified,
            DiffFormat::Markdown => Self::Markdown,
            DiffFormat::Json => Self::Json,
            DiffFormat::Stat => Self::Stat,
        }
    }
}

/// Renders `rev` of the repository in memory.
fn render_revision(session: &Session, rev: &str) -> Result<Vec<Output>, Failure> {
    let source =
        kiln_compiler::diff::git::read_revision(&session.repo, rev).map_err(|e| Failure::Runtime(e.to_string()))?;
    let (repo, diags) = kiln_compiler::load::load_from(&source);
    let options = Options {
        limits: session.limits,
        ..Options::default()
    };
    kiln_compiler::compile_repo(&repo, diags, &options, session.progress).map_err(|d| {
        let labelled =
            d.0.into_iter()
                .map(|mut x| {
                    x.message = format!("{} (in {rev})", x.message);
                    x
                })
                .collect();
        Failure::InputIn(Diagnostics(labelled), repo.files.clone())
    })
}

pub(super) fn diff(
    session: &Session,
    args: DiffArgs,
    stdout: &mut dyn Write,
    is_terminal: bool,
) -> Result<i32, Failure> {
    let base = args.base.as_str();
    let base_outputs = step(session.progress, "render", Some(base), || {
        render_revision(session, base)
    })?;
    let (head_label, head_outputs) = match args.head.as_deref() {
        Some(rev) => (
            rev.to_string(),
            step(session.progress, "render", Some(rev), || render_revision(session, rev))?,
        ),
        None => (
            "working tree".to_string(),
            session.compile(Vec::new(), &ValueArgs::default())?,
        ),
    };
    let diff = step(session.progress, "diff", None, || {
        Ok::<_, Failure>(kiln_compiler::diff::compare(
            base,
            &base_outputs,
            &head_label,
            &head_outputs,
        ))
    })?;
    let format = Format::from(args.format);
    let color = format == Format::Unified && is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    write!(stdout, "{}", kiln_compiler::diff::render(&diff, format, color))?;
    Ok(if args.exit_code && !diff.is_empty() {
        exit::DIFFERENCES
    } else {
        exit::OK
    })
}
