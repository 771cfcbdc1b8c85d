//! Stage 4, render: every selected output rendered in memory, in parallel,
//! from templates compiled once. Nothing is written here (see `emit`).

pub(crate) mod cluster;
pub(crate) mod envsubst;
pub(crate) mod patch;
mod recipe_needs;
pub mod settings;
pub(crate) mod site;
pub mod templates;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};
use crate::emit::Output;
use crate::load::kinds::{Blueprint, Machine, Site};
use crate::load::{Input, Repo};
use crate::merge::{merge, Layer};
use crate::progress::{step, Progress};
use crate::resolve::cluster::ClusterModel;
use crate::resolve::site::SiteModel;
use crate::resolve::Model;
use crate::yaml::{parse_documents, to_yaml};
use templates::Engine;

/// kiln's built-in values, the lowest layer.
pub const BUILTIN_VALUES: &str = include_str!("builtin-values.yaml");
const BUILTIN_FILE: &str = "<built-in values>";

/// What a run renders, and the command line's values layer.
#[derive(Debug, Default)]
pub struct Options {
    /// Output names to render; all when empty.
    pub only: Vec<String>,
    /// `-f` files and `--set` values, in order.
    pub overrides: Vec<Layer>,
    /// How much work the templates may do.
    pub limits: templates::Limits,
    /// What the last full render left that this one may reuse; `None`
    /// renders every machine and computes no machine keys.
    pub previous: Option<Previous>,
}

/// What a full render may reuse of the last one: for each output whose
/// directory is exactly as that render left it (the stat cache says so),
/// the key of each of its machines then and the files its plan lists. A
/// machine whose key is the same is not rendered again: its files are
/// taken as listed.
#[derive(Debug, Default)]
pub struct Previous {
    pub outputs: BTreeMap<String, PreviousOutput>,
}

#[derive(Debug, Default)]
pub struct PreviousOutput {
    /// Machine name → key (see `site::machine_key`).
    pub keys: BTreeMap<String, String>,
    /// Path → the file as `plan.json` lists it.
    pub files: BTreeMap<String, kiln_plan::PlannedFile>,
}

/// Shared, read-only state of a render: the repository, compiled templates
/// and the fixed value layers.
pub struct Context<'a> {
    pub repo: &'a Repo,
    pub engine: Engine,
    overrides: &'a [Layer],
    builtin: Layer,
    /// Which templates each template names (see `Context::new`).
    references: References<'a>,
    /// What this render may reuse (see `Options::previous`).
    pub previous: Option<&'a Previous>,
}

/// What templates name other templates (`include`, `import`, `from`,
/// `extends`).
enum References<'a> {
    /// Each template's names, every one a string literal.
    Named(BTreeMap<&'a str, Vec<&'a str>>),
    /// Some template names another by an expression: any template may be
    /// used by any output.
    Any(Vec<(&'a str, &'a str)>),
}

impl<'a> Context<'a> {
    pub fn new(repo: &'a Repo, overrides: &'a [Layer], limits: templates::Limits) -> Result<Context<'a>, Diagnostics> {
        let engine = Engine::new(&repo.files, limits)?;
        let builtin = Layer {
            name: "built-in".into(),
            file: BUILTIN_FILE.into(),
            doc: parse_documents(BUILTIN_VALUES)
                .expect("built-in values parse")
                .remove(0),
        };
        // A template may name another: each output's digest covers the
        // templates its templates name, transitively; when a template names
        // one by an expression (unknowable without rendering), every
        // template.
        let templates: Vec<(&'a str, &'a str)> = repo
            .files
            .iter()
            .filter(|(path, _)| path.ends_with(".j2"))
            .map(|(path, text)| (path, text.as_ref()))
            .collect();
        let named: Option<BTreeMap<&'a str, Vec<&'a str>>> = templates
            .iter()
            .map(|(path, text)| Some((*path, named_templates(text)?)))
            .collect();
        let references = match named {
            Some(named) => References::Named(named),
            None => References::Any(templates),
        };
        Ok(Context {
            repo,
            engine,
            overrides,
            builtin,
            references,
            previous: None,
        })
    }

    /// The same context, reusing what `previous` holds.
    pub fn reusing(self, previous: Option<&'a Previous>) -> Context<'a> {
        Context { previous, ..self }
    }

    /// The value layers of a cluster, lowest first (SPEC §3).
    pub fn cluster_layers(&self, cluster: &ClusterModel) -> Vec<Layer> {
        self.layers([
            cluster.provider_values.as_ref().map(|v| Layer {
                name: "provider".into(),
                file: v.file.clone(),
                doc: v.doc.clone(),
            }),
            section_layer("site", cluster.site),
            section_layer("cluster", cluster.input),
        ])
    }

    /// kiln's built-ins, then `middle` (lowest first), then the command line.
    fn layers(&self, middle: impl IntoIterator<Item = Option<Layer>>) -> Vec<Layer> {
        let mut layers = vec![self.builtin.clone()];
        layers.extend(middle.into_iter().flatten());
        layers.extend(self.overrides.iter().cloned());
        layers
    }

    pub fn cluster_values(&self, cluster: &ClusterModel) -> Map<String, Value> {
        merge(&self.cluster_layers(cluster))
    }

    /// The value layers of a site's own files (DHCP, DNS).
    pub fn site_layers(&self, site: &Input<Site>) -> Vec<Layer> {
        self.layers([section_layer("site", site)])
    }

    pub fn site_values(&self, site: &Input<Site>) -> Map<String, Value> {
        merge(&self.site_layers(site))
    }

    /// The value layers of a machine rendered with `blueprint` (SPEC §3);
    /// without a machine, the layers every machine of the site shares.
    pub fn machine_layers(
        &self,
        site: &Input<Site>,
        machine: Option<&Input<Machine>>,
        blueprint: &Input<Blueprint>,
    ) -> Vec<Layer> {
        self.layers([
            section_layer("blueprint", blueprint),
            section_layer("site", site),
            machine.and_then(|m| section_layer("machine", m)),
        ])
    }

    /// SHA-256 over everything a site's output was made from: its inputs
    /// and its blueprints' files.
    pub fn digest_for_site(&self, site: &SiteModel) -> String {
        let mut blueprints = std::collections::BTreeSet::new();
        for m in &site.machines {
            blueprints.extend(m.commission.iter().chain([&m.blueprint]).map(|b| b.object.name()));
        }
        blueprints.extend(site.discovery.map(|b| b.object.name()));
        let machines = site.machines.iter().map(|m| m.input.file.as_str());
        self.site_digest(site, machines, blueprints)
    }

    /// The digest of what the machines of a site with the workflow
    /// `blueprints` share: the site's own document, those blueprints' files
    /// and the templates they name, the built-in and command-line values,
    /// and kiln (not the machines' own documents).
    pub(crate) fn digest_for_workflow<'b>(
        &self,
        site: &SiteModel,
        blueprints: impl IntoIterator<Item = &'b str>,
    ) -> String {
        self.site_digest(site, std::iter::empty(), blueprints)
    }

    fn site_digest<'b>(
        &self,
        site: &SiteModel,
        machine_files: impl Iterator<Item = &'b str>,
        blueprints: impl IntoIterator<Item = &'b str>,
    ) -> String {
        let mut parts: Vec<(&str, &str)> = vec![(site.input.file.as_str(), self.text(&site.input.file))];
        parts.extend(machine_files.map(|file| (file, self.text(file))));
        for name in blueprints {
            parts.extend(
                self.repo
                    .files_under(&format!("blueprints/{name}/"))
                    .map(|(p, t)| (p, t.as_ref())),
            );
        }
        // The IPAM lock is left out: it is also an output, and hashing it
        // would make every render after the first differ from it.
        self.add_named_templates(&mut parts);
        self.digest(parts)
    }

    /// SHA-256 over the paths and contents of everything a cluster's
    /// output was made from.
    pub fn digest_for_cluster(&self, cluster: &ClusterModel) -> String {
        let (input, site) = (cluster.input, cluster.site);
        let mut parts: Vec<(&str, &str)> = vec![(input.file.as_str(), self.text(&input.file))];
        parts.push((&site.file, self.text(&site.file)));
        parts.extend(cluster::template_files(self, cluster.provider()));
        for r in &cluster.recipes {
            parts.push((&r.file, self.text(&r.file)));
        }
        self.add_named_templates(&mut parts);
        self.digest(parts)
    }

    /// Adds the templates that the templates among `parts` name, transitively.
    fn add_named_templates(&self, parts: &mut Vec<(&'a str, &'a str)>) {
        match &self.references {
            References::Any(all) => parts.extend(all.iter().copied()),
            References::Named(named) => {
                let mut todo: Vec<&str> = parts.iter().map(|(p, _)| *p).filter(|p| p.ends_with(".j2")).collect();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(template) = todo.pop() {
                    for name in named.get(template).into_iter().flatten() {
                        if seen.insert(*name) {
                            parts.push((name, self.text(name)));
                            todo.push(name);
                        }
                    }
                }
            }
        }
    }

    fn text(&self, file: &str) -> &'a str {
        self.repo.files.get(file).map(|t| t.as_ref()).unwrap_or_default()
    }

    /// Hashes input parts plus the built-in and command-line layers.
    fn digest(&self, parts: Vec<(&str, &str)>) -> String {
        let overrides: Vec<(String, String)> = self
            .overrides
            .iter()
            .map(|l| (l.file.clone(), serde_json::to_string(&l.doc.value).unwrap_or_default()))
            .collect();
        let mut all: BTreeMap<&str, &str> = parts.into_iter().collect();
        all.insert(BUILTIN_FILE, BUILTIN_VALUES);
        // kiln itself: other code may render the same inputs otherwise.
        all.insert(KILN_VERSION_KEY, KILN_VERSION);
        all.extend(overrides.iter().map(|(f, v)| (f.as_str(), v.as_str())));
        let mut hasher = Sha256::new();
        for (path, text) in all {
            for bytes in [path.as_bytes(), text.as_bytes()] {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(bytes);
            }
        }
        kiln_plan::hex(&hasher.finalize())
    }
}

/// The `spec.values` of an input as a layer.
fn section_layer<T>(name: &str, input: &Input<T>) -> Option<Layer> {
    input.doc.section("/spec/values").map(|doc| Layer {
        name: name.into(),
        file: input.file.clone(),
        doc,
    })
}

/// Renders the selected outputs of `repo`; every problem is reported.
pub fn render(
    repo: &Repo,
    model: &Model,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Output>, Diagnostics> {
    let cx = Context::new(repo, &options.overrides, options.limits)?;
    render_with(&cx, model, &options.only, progress)
}

/// Whether a template names another: `{% include %}`, `{% import %}`,
/// `{% from %}` or `{% extends %}`.
/// The templates `text` names (`{% include "name" %}`, `import`, `from`,
/// `extends`); `None` when it names one by an expression.
fn named_templates(text: &str) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("{%") {
        let tag = text[at + 2..].trim_start_matches(['-', '+']).trim_start();
        let Some(rest) = ["include", "import", "from", "extends"].iter().find_map(|k| {
            tag.strip_prefix(k)
                .filter(|rest| rest.starts_with(|c: char| c.is_whitespace()))
        }) else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let end = rest[1..].find(quote)?;
        let after = rest[end + 2..].trim_start();
        // A literal joined to more (`"a" ~ x`, `"a" if c else b`) is an expression.
        if !["%}", "-%}", "+%}", "ignore", "with", "without", "as", "import"]
            .iter()
            .any(|t| after.starts_with(t))
        {
            return None;
        }
        names.push(&rest[1..=end]);
    }
    Some(names)
}

/// Stands in the inputs digest for the version of kiln (no input path can
/// be spelled so).
const KILN_VERSION_KEY: &str = "<kiln version>";

/// kiln's version and the fingerprint of the code that renders (build.rs).
pub(crate) const KILN_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("KILN_SOURCE_DIGEST"));

/// What each output is rendered from, by output name, without rendering:
/// its inputs digest, and for a site the IPAM lock it reads. Outputs with
/// equal keys render to equal files.
pub fn input_keys(cx: &Context, model: &Model) -> BTreeMap<String, String> {
    let clusters = model
        .clusters
        .iter()
        .map(|c| (c.name().to_string(), cx.digest_for_cluster(c)));
    let sites = model.sites.iter().map(|s| {
        let lock = cx
            .repo
            .lock(s.name())
            .map_or(String::new(), |(_, text)| kiln_plan::sha256_hex(text.as_bytes()));
        (s.name().to_string(), format!("{} lock:{lock}", cx.digest_for_site(s)))
    });
    clusters.chain(sites).collect()
}

/// The key of each machine of site `name` (what decides its files, see
/// `site::machine_key`), without rendering; `None` for no such site.
pub fn machine_keys(cx: &Context, model: &Model, name: &str) -> Option<BTreeMap<String, String>> {
    let site = model.sites.iter().find(|s| s.name() == name)?;
    Some(site::machine_keys(cx, site))
}

/// The inputs digest part of an output's key (see `input_keys`): what its
/// `plan.json` records.
pub fn digest_of(key: &str) -> &str {
    key.split(" lock:").next().unwrap_or(key)
}

/// Renders the outputs named in `only` (all when empty) with an existing
/// context, so a caller that needs the context too compiles templates once.
pub fn render_with(
    cx: &Context,
    model: &Model,
    only: &[String],
    progress: &dyn Progress,
) -> Result<Vec<Output>, Diagnostics> {
    let repo = cx.repo;
    let names = repo.output_names();
    let mut diags = Diagnostics::default();
    for name in only {
        if !names.contains_key(name.as_str()) {
            let known: Vec<&str> = names.keys().copied().collect();
            diags.push(Diagnostic::command_line(
                "command line",
                format!("no site or cluster is named `{name}` (known: {})", known.join(", ")),
            ));
        }
    }
    let selected = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    let results: Vec<Result<Output, Diagnostics>> = model
        .clusters
        .par_iter()
        .filter(|c| selected(c.name()))
        .map(|c| {
            step(progress, "render", Some(c.name()), || {
                cluster::render(cx, c).map(Output::seal)
            })
        })
        .collect();
    let site_results: Vec<Result<Output, Diagnostics>> = model
        .sites
        .par_iter()
        .filter(|s| selected(s.name()))
        .map(|s| {
            step(progress, "render", Some(s.name()), || {
                site::render(cx, s).map(Output::seal)
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for r in results.into_iter().chain(site_results) {
        match r {
            Ok(o) => outputs.push(o),
            Err(d) => diags.extend(d),
        }
    }
    outputs.sort_by(|a, b| a.name.cmp(&b.name));
    diags.finish(outputs)
}

/// A `kustomization.yaml` listing `resources`.
pub fn kustomization(resources: &[String]) -> Vec<u8> {
    to_yaml(&json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }))
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::named_templates as named;

    #[test]
    fn templates_that_name_others() {
        assert_eq!(named("a {% include 'x.j2' %}"), Some(vec!["x.j2"]));
        assert_eq!(named("{%- import \"m.j2\" as m %}"), Some(vec!["m.j2"]));
        assert_eq!(
            named("{%+ from 'm.j2' import f %}{% extends 'b.j2' %}"),
            Some(vec!["m.j2", "b.j2"])
        );
        assert_eq!(named("{% include 'x.j2' ignore missing -%}"), Some(vec!["x.j2"]));
        assert_eq!(
            named("{% if included %}{% for x in imports %}{% endfor %}{% endif %}{{ 'include' }}"),
            Some(vec![])
        );
        // Named by an expression: any template.
        assert_eq!(named("{% include name %}"), None);
        assert_eq!(named("{% include 'a/' ~ name %}"), None);
    }
}
