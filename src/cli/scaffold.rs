//! `kiln new` and `kiln init`: documents and repositories written from
//! what kiln knows, so a new user starts from something that renders.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cli::{exit, Failure, NewCommand};
use kiln_compiler::diag::{Diagnostic, Diagnostics};
use kiln_compiler::load::kinds::API_VERSION;
use kiln_compiler::yaml::{to_yaml, Pos};

include!(concat!(env!("OUT_DIR"), "/starter.rs"));

fn usage_error(message: String) -> Failure {
    Failure::Input(Diagnostics::from(Diagnostic::new(
        "<command line>",
        Pos { line: 1, col: 1 },
        message,
    )))
}

fn document(kind: &str, name: &str, spec: Map<String, Value>) -> String {
    to_yaml(&json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
}

fn write_new(repo: &Path, rel: &str, text: &str, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let path = repo.join(rel);
    if path.exists() {
        return Err(usage_error(format!("{rel} already exists; kiln new never overwrites")));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, text)?;
    writeln!(stdout, "wrote {rel}")?;
    Ok(exit::OK)
}

pub fn new(repo: &Path, what: NewCommand, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let (rel, text) = match what {
        NewCommand::Site { name, domain } => {
            check_name(&name)?;
            let mut spec = Map::new();
            if let Some(domain) = domain {
                spec.insert("domain".into(), domain.into());
            }
            spec.insert("values".into(), json!({}));
            (format!("sites/{name}/site.yaml"), document("Site", &name, spec))
        }
        NewCommand::Machine {
            name,
            site,
            blueprint,
            mac,
            network,
            ip,
            commission,
        } => {
            check_name(&name)?;
            let site_file = repo.join(format!("sites/{site}/site.yaml"));
            let site_text = std::fs::read_to_string(&site_file)
                .map_err(|_| usage_error(format!("no site `{site}` (sites/{site}/site.yaml)")))?;
            if !repo.join(format!("blueprints/{blueprint}/blueprint.yaml")).is_file() {
                return Err(usage_error(format!(
                    "unknown blueprint `{blueprint}` (no blueprints/{blueprint}/)"
                )));
            }
            let mac =
                kiln_plan::normalize_mac(&mac).ok_or_else(|| usage_error(format!("`{mac}` is not a MAC address")))?;
            let network = match network {
                Some(n) => n,
                None => {
                    first_network(&site_text).ok_or_else(|| usage_error(format!("site `{site}` has no networks")))?
                }
            };
            let mut interface = Map::new();
            interface.insert("mac".into(), mac.into());
            interface.insert("network".into(), network.into());
            if let Some(ip) = ip {
                interface.insert("ip".into(), ip.into());
            }
            let mut spec = Map::new();
            spec.insert("blueprint".into(), blueprint.into());
            spec.insert("interfaces".into(), json!([interface]));
            if commission {
                spec.insert("commission".into(), true.into());
            }
            spec.insert("values".into(), json!({}));
            (
                format!("sites/{site}/machines/{name}.yaml"),
                document("Machine", &name, spec),
            )
        }
        NewCommand::Cluster {
            name,
            site,
            provider,
            region,
            workers,
            cpu,
            memory,
            kubernetes_version,
            recipes,
        } => {
            check_name(&name)?;
            if !repo.join(format!("sites/{site}/site.yaml")).is_file() {
                return Err(usage_error(format!(
                    "no site `{site}` (sites/{site}/site.yaml); create it with `kiln new site {site}`"
                )));
            }
            if !repo.join(format!("clusters/{provider}/values.example.yaml")).is_file() {
                return Err(usage_error(format!(
                    "unknown provider `{provider}` (no clusters/{provider}/)"
                )));
            }
            let mut spec = Map::new();
            spec.insert("provider".into(), provider.into());
            if let Some(region) = region {
                spec.insert("region".into(), region.into());
            }
            spec.insert(
                "kubernetesVersion".into(),
                kubernetes_version
                    .unwrap_or_else(|| kiln_compiler::render::cluster::DEFAULT_KUBERNETES_VERSION.into())
                    .into(),
            );
            spec.insert(
                "talosVersion".into(),
                kiln_compiler::render::cluster::DEFAULT_TALOS_VERSION.into(),
            );
            spec.insert("controlPlane".into(), json!({"replicas": 3, "cpu": 4, "memory": "8Gi"}));
            spec.insert(
                "workers".into(),
                json!({"replicas": workers.unwrap_or(3), "cpu": cpu.unwrap_or(4), "memory": memory.unwrap_or_else(|| "16Gi".into())}),
            );
            spec.insert("recipes".into(), json!(recipes));
            spec.insert("values".into(), json!({}));
            (
                format!("sites/{site}/clusters/{name}.yaml"),
                document("Cluster", &name, spec),
            )
        }
    };
    write_new(repo, &rel, &text, stdout)
}

/// The name of a site document's first network.
fn first_network(site_text: &str) -> Option<String> {
    let doc = kiln_compiler::yaml::parse_documents(site_text)
        .ok()?
        .into_iter()
        .next()?;
    doc.value["spec"]["networks"][0]["name"].as_str().map(str::to_string)
}

fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(usage_error(format!("`{name}` is not a lowercase DNS label")))
    }
}

/// Writes the starter repository into `dir`, which must be empty or absent.
pub fn init(dir: &Path, stdout: &mut dyn Write) -> Result<i32, Failure> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(usage_error(format!(
            "{} is not empty; kiln init only writes into a new directory",
            dir.display()
        )));
    }
    for (rel, bytes) in STARTER_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    writeln!(
        stdout,
        "wrote a starter repository to {} ({} files); next: kiln -C {} render",
        dir.display(),
        STARTER_FILES.len(),
        dir.display()
    )?;
    Ok(exit::OK)
}
