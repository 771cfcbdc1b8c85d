//! `kiln explain`: where the values behind a rendered file came from.

use std::io::Write;

use serde::Serialize;

use super::failure::{exit, Failure};
use super::session::{Session, TextOrJson, ValueArgs};
use kiln_compiler::diag::Diagnostics;
use kiln_compiler::load::Repo;
use kiln_compiler::render::Options;
use kiln_compiler::resolve::Model;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The site or cluster.
    pub name: String,
    /// A file of out/NAME/, e.g. addons/cilium/helmrelease.yaml.
    pub path: String,
    /// A dotted values key (cilium.version) or a path in the rendered YAML.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
    #[command(flatten)]
    pub values: ValueArgs,
}

#[derive(Debug, clap::Args)]
pub struct BootPathArgs {
    /// The MAC of one of the machine's interfaces, in any spelling.
    pub mac: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
    #[command(flatten)]
    pub values: ValueArgs,
}

/// Loads and resolves the repository, then runs `f` on it with the
/// command's value layers; both commands render in memory from there.
pub(super) fn with_model<T>(
    session: &Session,
    values: &ValueArgs,
    f: impl FnOnce(&Repo, &Model, &Options) -> Result<T, Diagnostics>,
) -> Result<T, Failure> {
    let overrides = values.layers()?;
    let (repo, mut diags) = kiln_compiler::load::load(&session.repo, &session.out_dir);
    let (model, resolve_diags) = kiln_compiler::resolve::resolve(&repo);
    diags.extend(resolve_diags);
    diags.finish(())?;
    let options = Options {
        only: Vec::new(),
        overrides,
        limits: session.limits,
        previous: None,
    };
    Ok(f(&repo, &model, &options)?)
}

/// Prints `text`, or `value` as JSON.
fn print(
    format: TextOrJson,
    text: impl FnOnce() -> String,
    value: &impl Serialize,
    stdout: &mut dyn Write,
) -> Result<i32, Failure> {
    match format {
        TextOrJson::Text => write!(stdout, "{}", text())?,
        TextOrJson::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(value).expect("answers serialize")
        )?,
    }
    Ok(exit::OK)
}

/// `kiln boot-path`: what one machine gets when it boots.
pub(super) fn boot_path(session: &Session, args: BootPathArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let path = with_model(session, &args.values, |repo, model, options| {
        kiln_compiler::boot_path::boot_path(repo, model, options, &args.mac)
    })?;
    print(args.format, || kiln_compiler::boot_path::to_text(&path), &path, stdout)
}

pub(super) fn explain(session: &Session, args: ExplainArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let e = with_model(session, &args.values, |repo, model, options| {
        kiln_compiler::explain::explain(repo, model, options, &args.name, &args.path, args.key.as_deref())
    })?;
    print(args.format, || kiln_compiler::explain::to_text(&e), &e, stdout)
}
