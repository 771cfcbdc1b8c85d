//! Stage 2, resolve: references between inputs. Every name a document
//! uses must exist, outputs must not clash, recipes must not depend on
//! themselves; and each bare-metal site becomes a `SiteModel` with every
//! machine's addresses assigned (`site`, `networks`, `ipam`), and each cluster a
//! `ClusterModel` holding what it refers to (`cluster`).

pub(crate) mod cluster;
pub(crate) mod ipam;
pub mod net;
pub(crate) mod networks;
pub(crate) mod site;

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::Diagnostics;
use crate::load::Repo;

/// Template directories under `clusters/` that are not providers.
pub const SHARED_CLUSTER_DIRS: &[&str] = &["templates", "cilium", "gateway", "flux-operator", "flux"];

/// Providers: the directories under `clusters/` other than the shared ones.
pub fn providers(repo: &Repo) -> BTreeSet<&str> {
    repo.files_under("clusters/")
        .filter_map(|(path, _)| {
            let mut parts = path.split('/').skip(1);
            let dir = parts.next()?;
            parts.next()?;
            (!SHARED_CLUSTER_DIRS.contains(&dir)).then_some(dir)
        })
        .collect()
}

/// Everything render needs, resolved.
pub struct Model<'a> {
    pub sites: Vec<site::SiteModel<'a>>,
    pub clusters: Vec<cluster::ClusterModel<'a>>,
}

/// Checks every reference and builds the model; every problem is reported.
pub fn resolve(repo: &Repo) -> (Model<'_>, Diagnostics) {
    let mut diags = check(repo);
    let (sites, site_diags) = site::sites(repo);
    let (clusters, cluster_diags) = cluster::clusters(repo);
    diags.extend(site_diags);
    diags.extend(cluster_diags);
    (Model { sites, clusters }, diags)
}

fn check(repo: &Repo) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let sites: BTreeMap<&str, &str> = repo.sites.iter().map(|s| (s.object.name(), s.file.as_str())).collect();
    let recipes: BTreeMap<&str, _> = repo.recipes.iter().map(|r| (r.object.name(), r)).collect();
    let providers = providers(repo);
    let list = |names: &mut dyn Iterator<Item = &str>| names.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");

    let mut clusters: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &repo.clusters {
        let name = c.object.name();
        if let Some(site_file) = sites.get(name) {
            diags.push(c.error(
                "/metadata/name",
                false,
                format!(
                    "cluster `{name}` has the same name as the site in {site_file}: both would render to out/{name}/"
                ),
            ));
        }
        if let Some(first) = clusters.insert(name, &c.file) {
            diags.push(c.error(
                "/metadata/name",
                false,
                format!("cluster `{name}` is already defined in {first}"),
            ));
        }
        if !sites.contains_key(c.site_dir()) {
            diags.push(c.error(
                "/metadata/name",
                false,
                format!(
                    "cluster `{name}` is under sites/{0}/, which has no site.yaml",
                    c.site_dir()
                ),
            ));
        }
        let provider = c.object.spec.provider.as_str();
        if !providers.contains(provider) {
            diags.push(c.error(
                "/spec/provider",
                false,
                format!(
                    "unknown provider `{provider}`, expected one of {}",
                    list(&mut providers.iter().copied())
                ),
            ));
        }
        for (i, recipe) in c.object.spec.recipes.iter().enumerate() {
            let at = format!("/spec/recipes/{i}");
            let Some(r) = recipes.get(recipe.as_str()) else {
                let known = list(&mut recipes.keys().copied());
                diags.push(c.error(
                    &at,
                    false,
                    format!("unknown recipe `{recipe}`, expected one of {known}"),
                ));
                continue;
            };
            for dep in &r.object.spec.depends_on {
                if !c.object.spec.recipes.contains(dep) && recipes.contains_key(dep.as_str()) {
                    let message = format!("recipe `{recipe}` depends on `{dep}`, which this cluster does not include");
                    diags.push(c.error(&at, false, message));
                }
            }
        }
    }

    for r in &repo.recipes {
        for (i, dep) in r.object.spec.depends_on.iter().enumerate() {
            if !recipes.contains_key(dep.as_str()) {
                diags.push(r.error(
                    &format!("/spec/dependsOn/{i}"),
                    false,
                    format!(
                        "unknown recipe `{dep}`, expected one of {}",
                        list(&mut recipes.keys().copied())
                    ),
                ));
            }
        }
        if depends_on_itself(r.object.name(), &recipes) {
            diags.push(r.error(
                "/spec/dependsOn",
                false,
                format!("recipe `{}` depends on itself", r.object.name()),
            ));
        }
    }
    diags
}

fn depends_on_itself(start: &str, recipes: &BTreeMap<&str, &crate::load::Input<crate::load::kinds::Recipe>>) -> bool {
    let mut stack: Vec<&str> = vec![start];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        for dep in recipes
            .get(name)
            .map(|r| r.object.spec.depends_on.as_slice())
            .unwrap_or_default()
        {
            if dep.as_str() == start {
                return true;
            }
            if seen.insert(dep.as_str()) {
                stack.push(dep.as_str());
            }
        }
    }
    false
}
