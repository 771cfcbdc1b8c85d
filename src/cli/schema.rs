//! `kiln schema`: the JSON Schema of each input kind.

use std::io::Write;

use serde_json::Value;

use super::failure::{exit, Failure};
use kiln_compiler::load::kinds::Kind;

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Site, Machine, Blueprint, Cluster or Recipe.
    pub kind: Option<String>,
}

pub(super) fn schema(args: SchemaArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let schema = match args.kind.as_deref() {
        Some(name) => match Kind::parse(name) {
            Some(kind) => kind.schema(),
            None => {
                return Err(Failure::usage(
                    "kiln schema",
                    format!("unknown kind `{name}`, expected one of Site, Machine, Blueprint, Cluster, Recipe"),
                ))
            }
        },
        None => Value::Object(Kind::ALL.iter().map(|k| (k.as_str().to_string(), k.schema())).collect()),
    };
    writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(&schema).expect("schemas serialize")
    )?;
    Ok(exit::OK)
}
