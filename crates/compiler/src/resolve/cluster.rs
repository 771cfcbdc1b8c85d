//! Each cluster with everything it refers to, found once: its site, its
//! provider's values and its recipes. Render reads these and looks nothing
//! up by name again.

use std::collections::BTreeMap;

use crate::diag::Diagnostics;
use crate::load::kinds::{Cluster, Recipe, Site};
use crate::load::values::{values_document, ValuesFile};
use crate::load::{Input, Repo};

pub struct ClusterModel<'a> {
    pub input: &'a Input<Cluster>,
    /// The site the cluster's document lives under.
    pub site: &'a Input<Site>,
    /// `clusters/<provider>/values.example.yaml`, when present.
    pub provider_values: Option<ValuesFile>,
    /// The cluster's recipes, in the order it lists them.
    pub recipes: Vec<&'a Input<Recipe>>,
}

impl ClusterModel<'_> {
    pub fn name(&self) -> &str {
        self.input.object.name()
    }

    pub fn provider(&self) -> &str {
        self.input.object.spec.provider.as_str()
    }
}

/// The model of every cluster whose references resolve; `super::check`
/// reports the others. Problems in provider values files are reported here.
pub(crate) fn clusters(repo: &Repo) -> (Vec<ClusterModel<'_>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut providers: BTreeMap<&str, ValuesFile> = BTreeMap::new();
    for (path, text) in repo.files_under("clusters/") {
        let parts: Vec<&str> = path.split('/').collect();
        if let ["clusters", provider, "values.example.yaml"] = parts.as_slice() {
            match values_document(path, text) {
                Ok(doc) => {
                    let file = path.to_string();
                    providers.insert(provider, ValuesFile { file, doc });
                }
                Err(d) => diags.push(d),
            }
        }
    }
    let sites: BTreeMap<&str, &Input<Site>> = repo.sites.iter().map(|s| (s.object.name(), s)).collect();
    let recipes: BTreeMap<&str, &Input<Recipe>> = repo.recipes.iter().map(|r| (r.object.name(), r)).collect();
    let models = repo
        .clusters
        .iter()
        .filter_map(|input| {
            let spec = &input.object.spec;
            Some(ClusterModel {
                input,
                site: sites.get(input.site_dir()).copied()?,
                provider_values: providers.get(spec.provider.as_str()).cloned(),
                recipes: spec
                    .recipes
                    .iter()
                    .map(|r| recipes.get(r.as_str()).copied())
                    .collect::<Option<Vec<_>>>()?,
            })
        })
        .collect();
    (models, diags)
}
