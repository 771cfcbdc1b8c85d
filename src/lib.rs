//! kiln: a render-only GitOps plan compiler.
//!
//! The compiler is a pipeline of stages, each in its own module:
//! `load` (YAML with positions, schemas) → `resolve` (references) →
//! `merge` (layered values with provenance) → `render` (templates) →
//! `emit` (plan + atomic write). `plan` holds the types the compiler hands
//! to the executor. `cli` turns command lines into calls of these stages.

pub mod cli;
pub mod diag;
pub mod emit;
pub mod load;
pub mod merge;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod scaffold;
pub mod yaml;

use std::path::Path;

/// Loads, resolves and renders the repository at `root` in memory: every
/// problem of the load and resolve stages is reported together.
pub fn compile(
    root: &Path,
    options: &render::Options,
) -> Result<(load::Repo, Vec<emit::Output>), diag::Diagnostics> {
    let (repo, mut diags) = load::load(root);
    diags.extend(resolve::check(&repo));
    diags.finish(())?;
    let outputs = render::render(&repo, options)?;
    Ok((repo, outputs))
}
