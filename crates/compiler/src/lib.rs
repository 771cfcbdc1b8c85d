//! The kiln compiler: a pipeline of stages, each in its own module.
//!
//! `load` (YAML with positions, schemas) → `resolve` (references, IPAM) →
//! `merge` (layered values with provenance) → `render` (templates) →
//! `emit` (plan + atomic write). `diff` and `explain` are built on the same
//! stages. The types it hands to the executor live in the `kiln-plan` crate.

pub mod boot_path;
pub mod diag;
pub mod diff;
pub mod drift;
pub mod emit;
pub mod explain;
pub mod layout;
pub mod load;
pub mod merge;
pub mod progress;
pub mod render;
pub mod resolve;
pub mod stat;
pub mod yaml;

#[cfg(test)]
mod fuzz;

use std::collections::BTreeMap;
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

/// What `compile_changed` found: outputs it rendered, and outputs whose
/// `out/<name>/` is already what a render would write (not rendered).
pub struct Compiled {
    pub rendered: Vec<emit::Output>,
    pub fresh: Vec<String>,
    /// With `Options::previous`: the machine keys of each fresh site the
    /// previous render left none for (worked out without rendering).
    pub fresh_keys: BTreeMap<String, BTreeMap<String, String>>,
}

/// Like `compile`, but an output whose `out/<name>/` its plan vouches for
/// (rendered from inputs with the same digest, by this version of kiln, and
/// untouched since: `emit::vouched`) is not rendered again.
pub fn compile_changed(
    root: &Path,
    out_dir: &Path,
    options: &render::Options,
    progress: &dyn Progress,
) -> Result<Compiled, diag::Diagnostics> {
    let (repo, mut diags) = step(progress, "load", None, || Ok::<_, ()>(load::load(root, out_dir)))
        .expect("load reports problems as diagnostics");
    let model = step(progress, "resolve", None, || {
        let (model, resolve_diags) = resolve::resolve(&repo);
        diags.extend(resolve_diags);
        std::mem::take(&mut diags).finish(model)
    })?;
    let cx = render::Context::new(&repo, &options.overrides, options.limits)?.reusing(options.previous.as_ref());
    let selected = |name: &str| options.only.is_empty() || options.only.iter().any(|n| n == name);
    let fresh: Vec<String> = step(progress, "verify", None, || {
        let keys = render::input_keys(&cx, &model);
        Ok::<_, diag::Diagnostics>(
            keys.iter()
                .filter(|(name, _)| selected(name))
                .filter(|(name, key)| emit::vouched(out_dir, name, render::digest_of(key)))
                .map(|(name, _)| name.clone())
                .collect(),
        )
    })?;
    // Everything asked for that is not fresh (an unknown name included, for
    // its error).
    let wanted: Vec<String> = if options.only.is_empty() {
        repo.output_names().keys().map(|n| n.to_string()).collect()
    } else {
        options.only.clone()
    };
    let rest: Vec<String> = wanted.into_iter().filter(|n| !fresh.contains(n)).collect();
    let rendered = if rest.is_empty() {
        Vec::new()
    } else {
        render::render_with(&cx, &model, &rest, progress)?
    };
    let fresh_keys = match &options.previous {
        Some(previous) => model
            .sites
            .iter()
            .filter(|s| fresh.iter().any(|n| n == s.name()))
            .filter(|s| previous.outputs.get(s.name()).is_none_or(|o| o.keys.is_empty()))
            .map(|s| (s.name().to_string(), render::site::machine_keys(&cx, s)))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(Compiled {
        rendered,
        fresh,
        fresh_keys,
    })
}
