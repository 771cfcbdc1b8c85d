//! `kiln new` and `kiln init`: documents and repositories written from
//! what kiln knows, so a new user starts from something that renders.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::failure::{exit, Failure};
use kiln_compiler::load::kinds::API_VERSION;
use kiln_compiler::render::settings::{self, ClusterDefaults, Pool};
use kiln_compiler::resolve::net::{parse_ip, IpNet};
use kiln_compiler::yaml::to_yaml;

include!(concat!(env!("OUT_DIR"), "/starter.rs"));

fn usage_error(message: String) -> Failure {
    Failure::usage("kiln new", message)
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Directory to create (must be empty or absent).
    #[arg(default_value = ".")]
    pub dir: std::path::PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum NewCommand {
    /// A Site (sites/NAME/site.yaml).
    Site {
        name: String,
        #[arg(long)]
        domain: Option<String>,
        /// The URL machines reach the executor at, e.g. http://10.20.0.2:8080.
        #[arg(long = "boot-server", value_name = "URL")]
        boot_server: Option<String>,
        /// A network: NAME=CIDR, optionally `,pool=START-END` (IPAM) and
        /// `,dhcp=START-END` (dynamic leases); both are derived when left out.
        #[arg(long = "network", value_name = "NAME=CIDR[,pool=A-B][,dhcp=A-B]")]
        networks: Vec<String>,
        /// A mirror or share installers fetch from (URL or \\server\share\ prefix).
        #[arg(long = "install-source", value_name = "URL")]
        install_sources: Vec<String>,
    },
    /// A Machine (sites/SITE/machines/NAME.yaml).
    Machine {
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        blueprint: String,
        /// MAC of the interface it PXE-boots from.
        #[arg(long)]
        mac: String,
        /// The site network of that interface (default: the site's first).
        #[arg(long)]
        network: Option<String>,
        /// A fixed address (default: IPAM allocates one).
        #[arg(long)]
        ip: Option<String>,
        /// Run hardware checks before the install.
        #[arg(long)]
        commission: bool,
    },
    /// A Cluster (sites/SITE/clusters/NAME.yaml).
    Cluster {
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        region: Option<String>,
        /// Worker replicas.
        #[arg(long)]
        workers: Option<u32>,
        /// CPUs per worker.
        #[arg(long)]
        cpu: Option<u32>,
        /// Memory per worker, e.g. 16Gi.
        #[arg(long)]
        memory: Option<String>,
        /// Kubernetes version, e.g. v1.35.2.
        #[arg(long = "k8s")]
        kubernetes_version: Option<String>,
        /// Recipes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        recipes: Vec<String>,
    },
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

pub(super) fn new(repo: &Path, what: NewCommand, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let (rel, text) = match what {
        NewCommand::Site {
            name,
            domain,
            boot_server,
            networks,
            install_sources,
        } => {
            check_name(&name)?;
            let mut spec = Map::new();
            if let Some(domain) = domain {
                spec.insert("domain".into(), domain.into());
            }
            if let Some(url) = boot_server {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(usage_error(format!(
                        "--boot-server `{url}` is not an http:// or https:// URL"
                    )));
                }
                spec.insert("bootServer".into(), url.into());
            }
            if !networks.is_empty() {
                let networks: Result<Vec<Value>, Failure> = networks.iter().map(|n| network(n)).collect();
                spec.insert("networks".into(), Value::Array(networks?));
            }
            if !install_sources.is_empty() {
                spec.insert("installSources".into(), json!(install_sources));
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
            let mac = kiln_plan::Mac::parse(&mac)
                .ok_or_else(|| usage_error(format!("`{mac}` is not a MAC address")))?
                .to_string();
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
            let defaults: ClusterDefaults = settings::builtin("clusterDefaults");
            let pool = |p: &Pool| json!({"replicas": p.replicas, "cpu": p.cpu, "memory": p.memory});
            spec.insert(
                "kubernetesVersion".into(),
                kubernetes_version.unwrap_or(defaults.kubernetes_version).into(),
            );
            spec.insert("talosVersion".into(), defaults.talos_version.into());
            spec.insert("controlPlane".into(), pool(&defaults.control_plane));
            let mut workers_pool = pool(&defaults.workers);
            if let Some(n) = workers {
                workers_pool["replicas"] = n.into();
            }
            if let Some(n) = cpu {
                workers_pool["cpu"] = n.into();
            }
            if let Some(m) = memory {
                workers_pool["memory"] = m.into();
            }
            spec.insert("workers".into(), workers_pool);
            // The image must carry what the recipes need; say so up front.
            for recipe in &recipes {
                check_name(recipe)?;
            }
            let extensions = recipe_extensions(repo, &recipes);
            spec.insert("recipes".into(), json!(recipes));
            let values = if extensions.is_empty() {
                json!({})
            } else {
                json!({"talos": {"extensions": extensions}})
            };
            spec.insert("values".into(), values);
            (
                format!("sites/{site}/clusters/{name}.yaml"),
                document("Cluster", &name, spec),
            )
        }
    };
    write_new(repo, &rel, &text, stdout)
}

/// A site network from `NAME=CIDR[,pool=A-B][,dhcp=A-B]`. Left out, the
/// gateway is the first address, the IPAM pool the lower half of the rest
/// (from the tenth address) and the DHCP range the upper half.
fn network(arg: &str) -> Result<Value, Failure> {
    let bad = |why: String| Failure::usage(&format!("--network {arg}"), why);
    let mut parts = arg.split(',');
    let (name, cidr) = parts
        .next()
        .and_then(|p| p.split_once('='))
        .ok_or_else(|| bad("expected NAME=CIDR, e.g. `prov=10.20.0.0/24`".into()))?;
    check_name(name)?;
    let net = IpNet::parse(cidr).map_err(bad)?;
    let (IpAddr::V4(first), IpAddr::V4(last)) = (net.addr, net.last()) else {
        return Err(bad(format!(
            "{cidr} is an IPv6 network: scaffold an IPv4 one and add `ipv6: {{cidr: {cidr}}}` to it in site.yaml (docs/sites.md, IPv6)"
        )));
    };
    let (first, last) = (u32::from(first), u32::from(last));
    if last - first < 16 {
        return Err(bad(format!(
            "{cidr} is too small for a gateway, a pool and a DHCP range"
        )));
    }
    let half = first + (last - first) / 2;
    let ip = |n: u32| std::net::Ipv4Addr::from(n).to_string();
    let mut pool = json!({"start": ip(first + 10), "end": ip(half)});
    let mut dhcp = json!({"start": ip(half + 1), "end": ip(last - 1)});
    for part in parts {
        let (key, range) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("`{part}` is not pool=START-END or dhcp=START-END")))?;
        let (start, end) = range
            .split_once('-')
            .ok_or_else(|| bad(format!("`{range}` is not START-END")))?;
        let (start, end) = (parse_ip(start).map_err(bad)?, parse_ip(end).map_err(bad)?);
        let range = json!({"start": start.to_string(), "end": end.to_string()});
        match key {
            "pool" => pool = range,
            "dhcp" => dhcp = range,
            other => return Err(bad(format!("unknown `{other}`; expected pool or dhcp"))),
        }
    }
    Ok(json!({
        "name": name,
        "cidr": net.to_string(),
        "gateway": ip(first + 1),
        "pool": pool,
        "dhcpRange": dhcp,
    }))
}

/// The Talos extensions `recipes` need (their `spec.requires`), in order.
fn recipe_extensions(repo: &Path, recipes: &[String]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for recipe in recipes {
        let text = std::fs::read_to_string(repo.join(format!("recipes/{recipe}/recipe.yaml"))).unwrap_or_default();
        let Ok(docs) = kiln_compiler::yaml::parse_documents(&text) else {
            continue;
        };
        for doc in docs {
            for e in doc.value["spec"]["requires"]["talos"]["extensions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(e) = e.as_str().filter(|e| !all.iter().any(|a| a == e)) {
                    all.push(e.to_string());
                }
            }
        }
    }
    all
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
pub(super) fn init(dir: &Path, stdout: &mut dyn Write) -> Result<i32, Failure> {
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
