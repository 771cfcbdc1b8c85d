//! `kiln explain`: where the values behind a rendered file came from.

use std::io::Write;

use super::failure::{exit, Failure};
use super::session::{Session, TextOrJson, ValueArgs};
use kiln_compiler::render::Options;

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

/// `kiln boot-path`: what one machine gets when it boots.
pub(super) fn boot_path(session: &Session, args: BootPathArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let overrides = args.values.layers()?;
    let (repo, mut diags) = kiln_compiler::load::load(&session.repo, &session.out_dir);
    let (model, resolve_diags) = kiln_compiler::resolve::resolve(&repo);
    diags.extend(resolve_diags);
    diags.finish(())?;
    let options = Options {
        only: Vec::new(),
        overrides,
        limits: session.limits,
    };
    let path = kiln_compiler::boot_path::boot_path(&repo, &model, &options, &args.mac)?;
    match args.format {
        TextOrJson::Text => write!(stdout, "{}", kiln_compiler::boot_path::to_text(&path))?,
        TextOrJson::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&path).expect("boot paths serialize")
        )?,
    }
    Ok(exit::OK)
}

pub(super) fn explain(session: &Session, args: ExplainArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let overrides = args.values.layers()?;
    let (repo, mut diags) = kiln_compiler::load::load(&session.repo, &session.out_dir);
    let (model, resolve_diags) = kiln_compiler::resolve::resolve(&repo);
    diags.extend(resolve_diags);
    diags.finish(())?;
    let options = Options {
        only: Vec::new(),
        overrides,
        limits: session.limits,
    };
    let e = kiln_compiler::explain::explain(&repo, &model, &options, &args.name, &args.path, args.key.as_deref())?;
    match args.format {
        TextOrJson::Text => write!(stdout, "{}", kiln_compiler::explain::to_text(&e))?,
        TextOrJson::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&e).expect("explanations serialize")
        )?,
    }
    Ok(exit::OK)
}
