//! Renders one Cluster into `out/<cluster>/`: CAPI + Talos resources from
//! `clusters/templates/` and `clusters/<provider>/`, the Cilium and Envoy
//! Gateway addons, a Flux Kustomization per recipe, then `spec.patches`.
//!
//! Layout (SPEC §4): `cluster/<kind>-<name>.yaml`, `addons/<addon>/<kind>.yaml`,
//! `recipes/<bundle>.yaml`, a `kustomization.yaml` in every directory.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::settings::{self, ClusterDefaults, Pool};
use super::{envsubst, kustomization, patch, Context};
use crate::diag::{Diagnostic, Diagnostics};
use crate::emit::Output;
use crate::layout::{Origin, ValuesOf};
use crate::load::kinds::{Cluster, NodePool};
use crate::load::Input;
use crate::resolve::cluster::ClusterModel;
use crate::resolve::net::{parse_ip, IpRange};
use crate::yaml::{parse_values, to_yaml, Pos};
use kiln_plan::OutputKind;

/// Template directories of a cluster, in render order, and where their
/// resources land.
fn template_dirs(provider: &str) -> [(String, &'static str); 6] {
    [
        ("clusters/templates/".to_string(), "cluster"),
        (format!("clusters/{provider}/"), "cluster"),
        ("clusters/cilium/".to_string(), "addons/cilium"),
        ("clusters/gateway/".to_string(), "addons/gateway"),
        ("clusters/flux-operator/".to_string(), "addons/flux-operator"),
        ("clusters/flux/".to_string(), "addons/flux"),
    ]
}

/// The directories of a cluster's output, in the order the top-level
/// kustomization lists them.
const OUTPUT_DIRS: [&str; 6] = [
    "cluster",
    "addons/cilium",
    "addons/gateway",
    "addons/flux-operator",
    "addons/flux",
    "recipes",
];

/// Whether a file in a template directory is a template.
fn is_template(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.ends_with(".yaml.j2") || (name.ends_with(".yaml") && name != "values.example.yaml")
}

/// The files a cluster's output depends on besides its own document.
pub(crate) fn template_files<'a>(cx: &Context<'a>, provider: &str) -> Vec<(&'a str, &'a str)> {
    let mut files = Vec::new();
    for (dir, _) in template_dirs(provider) {
        for (path, text) in cx.repo.files_under(&dir) {
            if !path[dir.len()..].contains('/') {
                files.push((path, text.as_ref()));
            }
        }
    }
    files
}

/// A bad `values.capi`, pointed at the line of the top layer that set
/// `capi.apiVersion` (else `capi`): a site's or cluster's values, a `-f`
/// file or `--set`; the same for every cluster of a site, so it is reported
/// once.
fn capi_error(cx: &Context, model: &ClusterModel, e: serde_json::Error) -> Diagnostics {
    let message = format!(
        "values.capi: {e} (`v1beta2` for Cluster API v1.11 and later, `v1beta1` for older management clusters)"
    );
    let layers = cx.cluster_layers(model);
    let set = |pointer: &str| {
        layers
            .iter()
            .rev()
            .find(|l| l.name != "built-in" && l.doc.value.pointer(pointer).is_some())
    };
    match set("/capi/apiVersion").or_else(|| set("/capi")) {
        Some(l) => Diagnostic::new(&l.file, l.doc.locate("/capi/apiVersion", false), message).into(),
        None => model.input.error("/spec", true, message).into(),
    }
}

/// A rendered Kubernetes resource and the directory it lands in.
struct Resource {
    dir: &'static str,
    value: Value,
    /// The template that produced it.
    source: String,
}

pub(crate) fn render(cx: &Context, model: &ClusterModel) -> Result<Output, Diagnostics> {
    let input = model.input;
    let cluster = &input.object;
    let name = cluster.name();
    let spec = &cluster.spec;
    let subject = format!("cluster {name}");
    let values = cx.cluster_values(model);
    let setting_error = |e: String| Diagnostics::from(input.error("/spec", true, e));
    let defaults: ClusterDefaults = settings::read(&values, "clusterDefaults").map_err(setting_error)?;
    let capi: settings::Capi = serde_json::from_value(values.get("capi").cloned().unwrap_or(Value::Null))
        .map_err(|e| capi_error(cx, model, e))?;
    let requirements = requirements(model, &values)?;
    vip_outside_pool(model, &values)?;
    let pool = |p: &Option<NodePool>, default: &Pool| {
        let p = p.as_ref();
        json!({
            "replicas": p.and_then(|p| p.replicas).unwrap_or(default.replicas),
            "cpu": p.and_then(|p| p.cpu).unwrap_or(default.cpu),
            "memory": p.and_then(|p| p.memory.as_ref()).map_or(default.memory.as_str(), |m| m.as_str()),
        })
    };
    let info = json!({
        "name": name,
        "namespace": name,
        "provider": spec.provider.as_str(),
        "region": spec.region,
        "kubernetesVersion": spec.kubernetes_version.as_ref().unwrap_or(&defaults.kubernetes_version),
        "talosVersion": spec.talos_version.as_ref().unwrap_or(&defaults.talos_version),
        "controlPlane": pool(&spec.control_plane, &defaults.control_plane),
        "workers": pool(&spec.workers, &defaults.workers),
        "recipes": spec.recipes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "capiVersion": capi.api_version.as_str(),
        "requirements": requirements,
    });
    let context = json!({"cluster": info, "site": {"name": input.site_dir()}, "values": values});

    let mut diags = Diagnostics::default();
    let mut resources = Vec::new();
    let vars = clusterctl_vars(&context);
    let jinja_context = super::templates::context(&context);
    for (dir, dest) in template_dirs(spec.provider.as_str()) {
        for (path, text) in cx.repo.files_under(&dir) {
            if path[dir.len()..].contains('/') || !is_template(path) {
                continue;
            }
            let rendered = if path.ends_with(".j2") {
                cx.engine.render(path, &jinja_context, &subject, &cx.repo.files)
            } else {
                envsubst::substitute(text, &vars)
                    .map_err(|(pos, msg)| Diagnostic::new(path, pos, format!("{msg} (rendering {subject})")))
            };
            match rendered.and_then(|text| parse_resources(path, &text, &subject)) {
                Ok(values) => resources.extend(values.into_iter().map(|value| Resource {
                    dir: dest,
                    value,
                    source: path.to_string(),
                })),
                Err(d) => diags.push(d),
            }
        }
    }
    resources.extend(recipe_kustomizations(model, &values));

    for (i, p) in spec.patches.iter().enumerate() {
        let at = format!("/spec/patches/{i}");
        let mut matched = 0;
        for r in resources.iter_mut().filter(|r| patch::targets(p, &r.value)) {
            matched += 1;
            if let Some(merge) = &p.patch {
                patch::merge(&mut r.value, merge);
            }
            if let Some(ops) = &p.ops {
                if let Err((j, e)) = patch::apply_ops(&mut r.value, ops) {
                    diags.push(input.error(
                        &format!("{at}/ops/{j}"),
                        false,
                        format!("{e} in {}", describe(&r.value)),
                    ));
                }
            }
        }
        if matched == 0 {
            let target = match &p.target.name {
                Some(n) => format!("{}/{n}", p.target.kind),
                None => p.target.kind.clone(),
            };
            diags.push(input.error(
                &format!("{at}/target"),
                false,
                format!("patch target {target} matches no rendered resource"),
            ));
        }
    }

    let (files, origins) = layout(input, resources, &mut diags);
    diags.finish(Output {
        files,
        origins,
        ..Output::empty(name, OutputKind::Cluster, cx.digest_for_cluster(model))
    })
}

/// A control plane VIP (`values.controlPlaneVIP`) the provider's own
/// address pool (`values.proxmox.network.addresses`) also hands out would
/// one day be given to a VM: refused.
fn vip_outside_pool(model: &ClusterModel, values: &Map<String, Value>) -> Result<(), Diagnostics> {
    let Some(vip) = values["controlPlaneVIP"].as_str().and_then(|v| parse_ip(v).ok()) else {
        return Ok(());
    };
    let pools = values["proxmox"]["network"]["addresses"]
        .as_array()
        .into_iter()
        .flatten();
    for pool in pools.filter_map(Value::as_str) {
        let inside = IpRange::parse_any(pool).is_some_and(|r| r.contains(vip));
        if inside {
            return Err(Diagnostics::from(model.input.error(
                "/spec/values",
                true,
                format!(
                    "values.controlPlaneVIP: {vip} is inside the address pool {pool} (values.proxmox.network.addresses) \
                     VMs are given addresses from; choose a VIP outside it"
                ),
            )));
        }
    }
    Ok(())
}

/// What the cluster's recipes need of its Talos machines: the kubelet
/// mounts to render, once each. A Talos extension a recipe needs that the
/// cluster's image does not declare (`values.talos.extensions`) is an error
/// at the recipe's entry in the cluster.
fn requirements(model: &ClusterModel, values: &Map<String, Value>) -> Result<Value, Diagnostics> {
    let declared: Vec<&str> = values["talos"]["extensions"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut diags = Diagnostics::default();
    let mut mounts: Vec<&str> = Vec::new();
    let mut patches: Vec<Value> = Vec::new();
    for (i, recipe) in model.recipes.iter().enumerate() {
        let talos = &recipe.object.spec.requires.talos;
        for extension in talos.extensions.iter().filter(|e| !declared.contains(&e.as_str())) {
            diags.push(model.input.error(
                &format!("/spec/recipes/{i}"),
                false,
                format!(
                    "recipe `{}` needs the Talos extension {extension}, which this cluster's image does not \
                     declare; build the image with it (Talos Image Factory) and list it in values.talos.extensions",
                    recipe.object.name()
                ),
            ));
        }
        for patch in super::recipe_needs::config_patches(recipe, &mut diags) {
            if !patches.contains(&patch) {
                patches.push(patch);
            }
        }
        for mount in &talos.kubelet_mounts {
            if !mounts.contains(&mount.as_str()) {
                mounts.push(mount);
            }
        }
    }
    let mounts: Vec<Value> = mounts
        .into_iter()
        .map(|m| json!({"destination": m, "type": "bind", "source": m, "options": ["bind", "rshared", "rw"]}))
        .collect();
    super::recipe_needs::conflicting_patches(model, &patches, &mut diags);
    diags.finish(json!({"kubeletMounts": mounts, "configPatches": patches}))
}

fn describe(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["kind"].as_str().unwrap_or("?"),
        resource["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Parses a template's output into resources; each must be a mapping with
/// `kind` and `metadata.name`.
pub(crate) fn parse_resources(template: &str, text: &str, subject: &str) -> Result<Vec<Value>, Diagnostic> {
    let docs = parse_values(text).map_err(|e| {
        Diagnostic::new(
            template,
            Pos { line: 1, col: 1 },
            format!(
                "rendered invalid YAML at output line {}, column {}: {} (rendering {subject})",
                e.pos.line, e.pos.col, e.message
            ),
        )
    })?;
    let mut resources = Vec::new();
    for doc in docs {
        if doc.value.is_null() {
            continue;
        }
        let ok = doc.value["kind"].is_string() && doc.value["metadata"]["name"].is_string();
        if !ok {
            return Err(Diagnostic::new(
                template,
                Pos { line: 1, col: 1 },
                format!(
                    "rendered a document at output line {} without `kind` and `metadata.name` (rendering {subject})",
                    doc.pos.line
                ),
            ));
        }
        resources.push(doc.value);
    }
    Ok(resources)
}

/// Variables for clusterctl-style templates.
fn clusterctl_vars(context: &Value) -> BTreeMap<String, String> {
    let c = &context["cluster"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mib = |v: &Value| {
        super::templates::quantity_mib(v.as_str().unwrap_or_default())
            .unwrap_or(0)
            .to_string()
    };
    let mut vars = BTreeMap::new();
    if let Some(values) = context["values"].as_object() {
        envsubst::flatten_values(values, &mut vars);
    }
    for (k, v) in [
        ("CLUSTER_NAME", text(&c["name"])),
        ("NAMESPACE", text(&c["namespace"])),
        ("KUBERNETES_VERSION", text(&c["kubernetesVersion"])),
        ("TALOS_VERSION", text(&c["talosVersion"])),
        ("REGION", text(&c["region"])),
        ("CONTROL_PLANE_MACHINE_COUNT", text(&c["controlPlane"]["replicas"])),
        ("WORKER_MACHINE_COUNT", text(&c["workers"]["replicas"])),
        ("CONTROL_PLANE_CPU", text(&c["controlPlane"]["cpu"])),
        ("CONTROL_PLANE_MEMORY_MIB", mib(&c["controlPlane"]["memory"])),
        ("WORKER_CPU", text(&c["workers"]["cpu"])),
        ("WORKER_MEMORY_MIB", mib(&c["workers"]["memory"])),
        ("SITE_NAME", text(&context["site"]["name"])),
    ] {
        vars.insert(k.to_string(), v);
    }
    vars
}

/// The Flux Kustomization that gates recipes on the addons they need in the
/// workload cluster (Cilium, Flux), under `recipes/`.
const ADDONS_GATE: &str = "_addons-ready";

/// The addon HelmReleases the gate waits for, by name suffix.
const GATED_ADDONS: [&str; 2] = ["cilium", "flux"];

/// A Flux Kustomization per recipe (applied into the workload cluster
/// through its kubeconfig Secret), plus the gate that makes the first
/// recipes wait until the Cilium HelmRelease is ready.
fn recipe_kustomizations(model: &ClusterModel, values: &Map<String, Value>) -> Vec<Resource> {
    let cluster = model.name();
    let flux = &values["flux"];
    let base = |name: &str, path: String| {
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": format!("{cluster}-{name}"), "namespace": cluster},
            "spec": {
                "interval": flux["interval"],
                "path": path,
                "prune": true,
                "sourceRef": flux["sourceRef"],
            }
        })
    };
    let mut gate = base(
        "addons-ready",
        format!(
            "{}/{cluster}/recipes/{ADDONS_GATE}",
            flux["outPath"].as_str().unwrap_or_default()
        ),
    );
    gate["spec"]["healthChecks"] = GATED_ADDONS
        .iter()
        .map(|addon| {
            json!({
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "name": format!("{cluster}-{addon}"),
                "namespace": cluster,
            })
        })
        .collect();
    gate["spec"]["timeout"] = json!("10m");
    let mut resources = vec![Resource {
        dir: "recipes",
        value: gate,
        source: "kiln".into(),
    }];
    for r in &model.recipes {
        let recipe = r.object.name();
        let mut k = base(recipe, format!("./recipes/{recipe}"));
        let deps = &r.object.spec.depends_on;
        let depends_on: Vec<Value> = if deps.is_empty() {
            vec![json!({"name": format!("{cluster}-addons-ready")})]
        } else {
            deps.iter().map(|d| json!({"name": format!("{cluster}-{d}")})).collect()
        };
        k["spec"]["dependsOn"] = Value::Array(depends_on);
        k["spec"]["kubeConfig"] = json!({"secretRef": {"name": format!("{cluster}-kubeconfig")}});
        k["spec"]["wait"] = json!(true);
        resources.push(Resource {
            dir: "recipes",
            value: k,
            source: "kiln".into(),
        });
    }
    resources
}

/// Places resources in files and adds the kustomization.yaml files; also
/// returns where each file came from.
fn layout(
    input: &Input<Cluster>,
    resources: Vec<Resource>,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Origin>) {
    let cluster = input.object.name();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for r in resources {
        let kind = r.value["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = r.value["metadata"]["name"].as_str().unwrap_or_default();
        let file = match r.dir {
            "cluster" => format!("cluster/{kind}-{name}.yaml"),
            "recipes" if name == format!("{cluster}-addons-ready") => {
                format!("recipes/{ADDONS_GATE}.yaml")
            }
            "recipes" => format!(
                "recipes/{}.yaml",
                name.strip_prefix(&format!("{cluster}-")).unwrap_or(name)
            ),
            addon => format!("{addon}/{kind}.yaml"),
        };
        if let Some(first) = sources.insert(file.clone(), r.source.clone()) {
            diags.push(Diagnostic::new(
                &r.source,
                Pos { line: 1, col: 1 },
                format!(
                    "renders {} into `{file}`, which {first} already renders (rendering cluster {cluster})",
                    describe(&r.value)
                ),
            ));
            continue;
        }
        files.insert(file, to_yaml(&r.value).into_bytes());
    }
    files.insert(format!("recipes/{ADDONS_GATE}/kustomization.yaml"), kustomization(&[]));
    for dir in OUTPUT_DIRS {
        let prefix = format!("{dir}/");
        let entries: Vec<String> = files
            .keys()
            .filter_map(|f| f.strip_prefix(&prefix))
            .filter(|f| !f.contains('/'))
            .map(str::to_string)
            .collect();
        if !entries.is_empty() {
            files.insert(format!("{dir}/kustomization.yaml"), kustomization(&entries));
        }
    }
    let top: Vec<String> = OUTPUT_DIRS
        .iter()
        .filter(|d| files.contains_key(&format!("{d}/kustomization.yaml")))
        .map(|d| d.to_string())
        .collect();
    files.insert("kustomization.yaml".into(), kustomization(&top));
    let origins = files
        .keys()
        .map(|file| {
            let template = sources.get(file).filter(|s| s.as_str() != "kiln").cloned();
            let origin = Origin {
                template,
                values: ValuesOf::Cluster,
            };
            (file.clone(), origin)
        })
        .collect();
    (files, origins)
}
