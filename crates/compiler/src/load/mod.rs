//! Stage 1, load: find the repository's inputs, read them once, parse YAML
//! with positions and check every document against its kind's schema.
//!
//! The result, `Repo`, holds every input's text (templates included) so that
//! no later stage reads the file system again.

pub mod kinds;
mod schema;
pub(crate) mod source;
pub mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use source::{Entry, Source, Worktree};

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::yaml::{parse_documents, Document, Pos};
use kinds::{Blueprint, Cluster, Kind, Machine, Recipe, Site};

/// One input document: where it came from, its positions and its content.
#[derive(Clone, Debug)]
pub struct Input<T> {
    /// Repository-relative path, `/`-separated.
    pub file: String,
    pub doc: Document,
    pub object: T,
}

impl<T> Input<T> {
    /// A diagnostic pointing at the node at `pointer` (its key when `key`).
    pub fn error(&self, pointer: &str, key: bool, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.doc.locate(pointer, key), message)
    }

    /// The site directory the file lives in (`sites/<site>/...`).
    pub fn site_dir(&self) -> &str {
        self.file.split('/').nth(1).unwrap_or_default()
    }
}

/// Everything read from a kiln repository.
#[derive(Debug, Default)]
pub struct Repo {
    pub sites: Vec<Input<Site>>,
    pub machines: Vec<Input<Machine>>,
    pub blueprints: Vec<Input<Blueprint>>,
    pub clusters: Vec<Input<Cluster>>,
    pub recipes: Vec<Input<Recipe>>,
    /// The text of every file read, by repository-relative path: inputs,
    /// templates, provider values.
    pub files: Sources,
    /// Each site's `ipam.lock.yaml` from the output directory, by site:
    /// the path shown in errors and the text.
    pub locks: BTreeMap<String, (String, Arc<str>)>,
}

/// Directories kiln reads, and the files in them that are inputs.
pub(crate) const INPUT_DIRS: &[&str] = &["sites", "blueprints", "recipes", "clusters"];

/// Reads and checks the repository at `root`. Documents with problems are
/// left out of the returned `Repo` and reported, so that later checks can
/// still run on the rest and a run reports every problem it can.
pub fn load(root: &Path, out_dir: &Path) -> (Repo, Diagnostics) {
    load_from(&Worktree {
        root: root.to_path_buf(),
        out_dir: out_dir.to_path_buf(),
    })
}

/// Reads and checks the repository `source` holds.
pub fn load_from(source: &dyn Source) -> (Repo, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut paths: Vec<String> = Vec::new();
    for entry in INPUT_DIRS.iter().flat_map(|dir| source.list(dir)) {
        match entry {
            Entry::File(rel) if is_read(&rel) => paths.push(rel),
            Entry::File(_) => {}
            // A path has no line to point at.
            Entry::Refused { path, why } => diags.push(Diagnostic::new(path, Pos { line: 0, col: 0 }, why)),
        }
    }
    // Sorted, so that the file system's order never shows in the output.
    paths.sort();
    let read: Vec<(String, Result<Arc<str>, String>)> = paths
        .par_iter()
        .map(|rel| (rel.clone(), source.read(rel).map(Arc::from)))
        .collect();

    let mut repo = Repo::default();
    for (rel, text) in &read {
        match text {
            Ok(text) => repo.files.insert(rel, text.clone()),
            Err(e) => diags.push(Diagnostic::new(rel, Pos { line: 1, col: 1 }, e.clone())),
        }
    }

    let schemas = schema::Validators::new();
    let parsed: Vec<Vec<Parsed>> = read
        .par_iter()
        .filter_map(|(rel, text)| {
            let kind = expected_kind(rel)?;
            let text = text.as_ref().ok()?;
            Some(parse_file(rel, text, kind, &schemas))
        })
        .collect();
    for loaded in parsed.into_iter().flatten() {
        match loaded {
            Ok(l) => {
                if let Err(d) = repo.add(l) {
                    diags.push(d);
                }
            }
            Err(problems) => problems.into_iter().for_each(|d| diags.push(d)),
        }
    }
    repo.locks = repo
        .sites
        .iter()
        .filter_map(|s| {
            let (shown, text) = source.lock(s.object.name())?;
            Some((s.object.name().to_string(), (shown, Arc::from(text))))
        })
        .collect();
    (repo, diags)
}

/// Whether a file under the input directories is something kiln reads:
/// input documents, provider values and templates. Recipe bundles are only
/// referenced by path, never read.
fn is_read(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let yaml = rel.ends_with(".yaml") || rel.ends_with(".yml");
    match parts.as_slice() {
        ["recipes", _, "recipe.yaml"] => true,
        ["recipes", ..] => false,
        ["sites", ..] => yaml,
        ["clusters", .., last] => !last.ends_with(".md"),
        ["blueprints", ..] => true,
        _ => false,
    }
}

/// The kind a document at this path must be, for input documents.
fn expected_kind(rel: &str) -> Option<Kind> {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["sites", _, "site.yaml"] => Some(Kind::Site),
        ["sites", _, "machines", f] if f.ends_with(".yaml") || f.ends_with(".yml") => Some(Kind::Machine),
        ["sites", _, "clusters", f] if f.ends_with(".yaml") || f.ends_with(".yml") => Some(Kind::Cluster),
        ["blueprints", _, "blueprint.yaml"] => Some(Kind::Blueprint),
        ["recipes", _, "recipe.yaml"] => Some(Kind::Recipe),
        _ => None,
    }
}

/// A document that passed its schema, as its kind.
enum Loaded {
    Site(Input<Site>),
    Machine(Input<Machine>),
    Blueprint(Input<Blueprint>),
    Cluster(Input<Cluster>),
    Recipe(Input<Recipe>),
}

/// A document as its kind, or every problem found in it.
type Parsed = Result<Loaded, Vec<Diagnostic>>;

fn parse_file(rel: &str, text: &str, kind: Kind, schemas: &schema::Validators) -> Vec<Parsed> {
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => return vec![Err(vec![Diagnostic::new(rel, e.pos, e.message)])],
    };
    if docs.is_empty() {
        return vec![Err(vec![Diagnostic::new(
            rel,
            Pos { line: 1, col: 1 },
            format!("expected a {kind} document, found an empty file"),
        )])];
    }
    docs.into_iter()
        .map(|doc| {
            schemas.check(kind, rel, &doc)?;
            let loaded = match kind {
                Kind::Site => typed(rel, doc).map(Loaded::Site),
                Kind::Machine => typed(rel, doc).map(Loaded::Machine),
                Kind::Blueprint => typed(rel, doc).map(Loaded::Blueprint),
                Kind::Cluster => typed(rel, doc).map(Loaded::Cluster),
                Kind::Recipe => typed(rel, doc).map(Loaded::Recipe),
            };
            loaded.map_err(|d| vec![d])
        })
        .collect()
}

/// The document as its Rust type (it has passed the schema derived from it).
fn typed<T: DeserializeOwned>(file: &str, doc: Document) -> Result<Input<T>, Diagnostic> {
    match T::deserialize(&doc.value) {
        Ok(object) => Ok(Input {
            file: file.to_string(),
            doc,
            object,
        }),
        Err(e) => Err(Diagnostic::new(file, doc.pos, e.to_string())),
    }
}

/// Sites, blueprints and recipes are named by their directory: it is where
/// their templates and bundles are found.
fn named_by_dir<S: Default>(kind: Kind, input: &Input<kinds::Object<S>>) -> Result<(), Diagnostic> {
    let (name, dir) = (input.object.name(), input.file.split('/').nth(1).unwrap_or_default());
    if name == dir {
        return Ok(());
    }
    Err(input.error(
        "/metadata/name",
        false,
        format!("{kind} `{name}` must be named after its directory `{dir}`"),
    ))
}

impl Repo {
    fn add(&mut self, loaded: Loaded) -> Result<(), Diagnostic> {
        match loaded {
            Loaded::Site(i) => named_by_dir(Kind::Site, &i).map(|_| self.sites.push(i)),
            Loaded::Blueprint(i) => named_by_dir(Kind::Blueprint, &i).map(|_| self.blueprints.push(i)),
            Loaded::Recipe(i) => named_by_dir(Kind::Recipe, &i).map(|_| self.recipes.push(i)),
            Loaded::Machine(i) => {
                self.machines.push(i);
                Ok(())
            }
            Loaded::Cluster(i) => {
                self.clusters.push(i);
                Ok(())
            }
        }
    }

    /// Files whose path starts with `prefix`, in path order.
    pub fn files_under<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (&'a str, &'a Arc<str>)> + 'a {
        self.files.under(prefix)
    }

    /// A site's IPAM lock: the path shown in errors and its text.
    pub fn lock(&self, site: &str) -> Option<(&str, &str)> {
        self.locks.get(site).map(|(file, text)| (file.as_str(), text.as_ref()))
    }

    /// All names of sites and clusters: the outputs this repo renders.
    pub fn output_names(&self) -> BTreeMap<&str, &str> {
        let mut names = BTreeMap::new();
        for s in &self.sites {
            names.insert(s.object.name(), "site");
        }
        for c in &self.clusters {
            names.insert(c.object.name(), "cluster");
        }
        names
    }
}
