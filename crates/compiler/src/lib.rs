//! The kiln compiler: a pipeline of stages, each in its own module.
//!
//! `load` (YAML with positions, schemas) → `resolve` (references, IPAM) →
//! `merge` (layered values with provenance) → `render` (templates) →
//! `emit` (plan + atomic write). `diff` and `explain` are built on the same
//! stages. The types it hands to the executor live in the `kiln-plan` crate.

pub mod boot_path;
pub mod diag;
pub mod diff;
pub mod emit;
pub mod explain;
pub mod layout;
pub mod load;
pub mod merge;
pub mod progress;
pub mod render;
pub mod resolve;
pub mod yaml;

#[cfg(test)]
mod fuzz;

use std::path::Path;

use progress::{step, Progress};

/// Loads the repository at `root` (with the IPAM locks under `out_dir`),
/// resolves and renders it in memory. Every problem of the load and resolve
/// stages is reported together.
pub fn compile(
    root: &Path,
    out_dir: &Path,
    options: &render::Options,
    progress: &dyn Progress,
) -> Result<Vec<emit::Output>, diag::Diagnostics> {
    let (repo, diags) = step(progress, "load", None, || Ok::<_, ()>(load::load(root, out_dir)))
        .expect("load reports problems as diagnostics");
    compile_repo(&repo, diags, options, progress)
}

/// Resolves and renders an already loaded repository.
pub fn compile_repo(
    repo: &load::Repo,
    mut diags: diag::Diagnostics,
    options: &render::Options,
    progress: &dyn Progress,
) -> Result<Vec<emit::Output>, diag::Diagnostics> {
    let model = step(progress, "resolve", None, || {
        let (model, resolve_diags) = resolve::resolve(repo);
        diags.extend(resolve_diags);
        std::mem::take(&mut diags).finish(model)
    })?;
    render::render(repo, &model, options, progress)
}
