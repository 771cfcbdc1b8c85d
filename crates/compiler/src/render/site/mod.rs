//! Renders one bare-metal site into `out/<site>/`: the iPXE menu, each
//! machine's boot scripts and install files from its blueprint, DHCP
//! configs, DNS zones, the IPAM lock and the machines of the plan.

mod addresses;
pub(crate) mod dhcp;
mod dns;
pub(crate) mod ipxe;
mod once;
mod served;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rayon::prelude::*;
use serde_json::{json, Map, Value};

use super::{settings, Context, PreviousOutput};
use crate::diag::{Diagnostic, Diagnostics};
use crate::emit::Output;
use crate::layout::{self, Origin, ValuesOf};
use crate::load::kinds::{Blueprint, DhcpServer};
use crate::load::Input;
use crate::merge::merge;
use crate::resolve::ipam::{IpamLock, ZoneSerial};
use crate::resolve::site::{MachineModel, SiteModel};
use kiln_plan::{OutputKind, PlannedAgent, PlannedArtifact, PlannedFile, PlannedMachine, StepName, WorkflowStep};
use sha2::{Digest, Sha256};

use kiln_plan::placeholder::{AGENT_TOKEN, SERVER, TOKEN};

/// What every machine of a site shares: the values of each blueprint
/// merged with the site's (for machines without values of their own),
/// converted for the template engine once.
struct Shared<'a> {
    cx: &'a Context<'a>,
    site: &'a SiteModel<'a>,
    values: BTreeMap<&'a str, minijinja::Value>,
    agents: BTreeMap<&'a str, Result<settings::Agent, String>>,
    /// When the render keeps machine keys.
    keys: Option<Keys<'a>>,
}

/// What a render that keeps machine keys needs for them.
struct Keys<'a> {
    /// The part of a machine's key its workflow decides, by the workflow's
    /// blueprints' names.
    workflows: BTreeMap<Vec<&'a str>, String>,
    /// What the last render left of this site.
    previous: Option<&'a PreviousOutput>,
}

impl Shared<'_> {
    /// The agent settings of a machine's installed OS.
    fn agent(&self, m: &MachineModel) -> Result<settings::Agent, String> {
        match self.agents.get(m.blueprint.object.name()) {
            Some(shared) if m.input.object.spec.values.is_empty() => shared.clone(),
            _ => settings::read(
                &merge(&self.cx.machine_layers(self.site.input, Some(m.input), m.blueprint)),
                "agent",
            ),
        }
    }

    fn values(&self, m: &MachineModel, blueprint: &Input<Blueprint>) -> minijinja::Value {
        match self.values.get(blueprint.object.name()) {
            Some(shared) if m.input.object.spec.values.is_empty() => shared.clone(),
            _ => Value::Object(merge(&self.cx.machine_layers(
                self.site.input,
                Some(m.input),
                blueprint,
            )))
            .into_jinja(),
        }
    }
}

trait IntoJinja {
    fn into_jinja(self) -> minijinja::Value;
}

impl IntoJinja for Value {
    fn into_jinja(self) -> minijinja::Value {
        super::templates::context(&self)
    }
}

pub(crate) fn render(cx: &Context, site: &SiteModel) -> Result<Output, Diagnostics> {
    let values = cx.site_values(site.input);
    let blueprints: BTreeMap<&str, &Input<Blueprint>> = site
        .machines
        .iter()
        .flat_map(|m| m.commission.into_iter().chain([m.blueprint]))
        .map(|b| (b.object.name(), b))
        .collect();
    let merged: BTreeMap<&str, Map<String, Value>> = blueprints
        .into_iter()
        .map(|(name, b)| (name, merge(&cx.machine_layers(site.input, None, b))))
        .collect();
    let mut conflicts: Vec<(String, String)> = addresses::conflicts(site, &values);
    for (name, values) in &merged {
        conflicts.extend(addresses::conflicts(site, values));
        if site.machines.iter().any(|m| m.blueprint.object.name() == *name) {
            conflicts.extend(sources::problems(site, values));
        }
    }
    conflicts.sort();
    conflicts.dedup();
    let conflicts: Diagnostics = Diagnostics(
        conflicts
            .into_iter()
            .map(|(path, message)| site.input.error(&format!("/spec/values/{path}"), false, message))
            .collect(),
    );
    conflicts.finish(())?;
    let shared = Shared {
        cx,
        site,
        keys: cx.previous.map(|previous| Keys {
            workflows: workflow_digests(cx, site),
            previous: previous.outputs.get(site.name()),
        }),
        agents: merged
            .iter()
            .map(|(name, values)| (*name, settings::read(values, "agent")))
            .collect(),
        values: merged
            .into_iter()
            .map(|(name, values)| (name, Value::Object(values).into_jinja()))
            .collect(),
    };
    let (results, infrastructure) = rayon::join(
        || {
            site.machines
                .par_iter()
                .map(|m| machine(&shared, m))
                .collect::<Vec<_>>()
        },
        || infrastructure(site, &values),
    );
    let mut diags = Diagnostics::default();
    let infrastructure = infrastructure.unwrap_or_else(|d| {
        diags.extend(d);
        BTreeMap::new()
    });
    let mut origins: BTreeMap<String, Origin> = infrastructure.keys().map(|p| (p.clone(), Origin::site())).collect();
    let mut files = infrastructure;
    let mut kept = BTreeMap::new();
    let mut machines = Vec::new();
    let mut machine_keys = BTreeMap::new();
    let mut machines_reused = 0;
    for (r, m) in results.into_iter().zip(&site.machines) {
        match r {
            Ok(rendered) => {
                for (path, content, origin) in rendered.files {
                    if let Some(first) = origins.insert(path.clone(), origin) {
                        diags.push(m.input.error(
                            "",
                            false,
                            format!("renders `{path}`, which {} already renders", describe(&first)),
                        ));
                    }
                    match content {
                        Content::Rendered(bytes) => files.insert(path, bytes).map(|_| ()),
                        Content::Kept(file) => kept.insert(path, file).map(|_| ()),
                    };
                }
                machines_reused += usize::from(rendered.reused);
                machine_keys.extend(rendered.key.map(|key| (m.name().to_string(), key)));
                machines.push(rendered.planned);
            }
            Err(d) => diags.extend(d),
        }
    }
    // Rendered once: the discovery step, and each agent some machine runs.
    let discovery = once::discovery(cx, site).unwrap_or_else(|d| {
        diags.extend(d);
        None
    });
    let with_agents: BTreeSet<&str> = machines
        .iter()
        .filter(|m| m.agent.is_some())
        .map(|m| m.blueprint.as_str())
        .collect();
    let agents: BTreeMap<&str, &Input<Blueprint>> = site
        .machines
        .iter()
        .map(|m| (m.blueprint.object.name(), m.blueprint))
        .filter(|(name, _)| with_agents.contains(name))
        .collect();
    let mut once_files = Vec::new();
    for blueprint in agents.values() {
        match once::agent(cx, site, blueprint) {
            Ok(rendered) => once_files.extend(rendered),
            Err(d) => diags.extend(d),
        }
    }
    let discovery = discovery.map(|(rendered, step)| {
        once_files.extend(rendered);
        step
    });
    for (path, bytes, origin) in once_files {
        origins.insert(path.clone(), origin);
        files.insert(path, bytes);
    }
    diags.finish(())?;
    Ok(Output {
        discovery,
        files,
        origins,
        machines,
        boot_artifacts: ipxe::builds(site)
            .into_iter()
            .map(|b| PlannedArtifact {
                path: b.path,
                sha256: b.sha256,
            })
            .collect(),
        kept,
        machine_keys,
        machines_reused,
        ..Output::empty(site.name(), OutputKind::Site, cx.digest_for_site(site))
    })
}

/// A value by dotted path (`talos.endpoint`).
fn lookup<'a>(values: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = values.get(parts.next()?)?;
    parts.try_fold(first, |v, part| v.get(part))
}

/// What rendered a file, for an error about two renders of one path.
fn describe(origin: &Origin) -> String {
    match (&origin.values, &origin.template) {
        (ValuesOf::Machine { machine, step, .. }, Some(t)) => format!("{t} (step {step} of machine {machine})"),
        (_, Some(t)) => t.clone(),
        (_, None) => "the site".into(),
    }
}

/// The DHCP settings of a site (its values over the built-in ones).
pub(crate) fn dhcp_settings(cx: &Context, site: &SiteModel) -> Result<settings::Dhcp, Diagnostics> {
    settings::read(&cx.site_values(site.input), "dhcp")
        .map_err(|e: String| Diagnostics::from(site.input.error("/spec/values", true, e)))
}

/// The site's own files: boot menu, DHCP configs, DNS zones and the IPAM
/// lock (which records the zones' serials).
fn infrastructure(site: &SiteModel, values: &Map<String, Value>) -> Result<BTreeMap<String, Vec<u8>>, Diagnostics> {
    let setting_error = |e: String| Diagnostics::from(site.input.error("/spec/values", true, e));
    let dhcp_settings: settings::Dhcp = settings::read(values, "dhcp").map_err(setting_error)?;
    let dns_settings: settings::Dns = settings::read(values, "dns").map_err(setting_error)?;
    let nameserver_ip = dns_settings.nameserver_ip().map_err(setting_error)?;
    let servers = site
        .input
        .object
        .spec
        .dhcp
        .as_ref()
        .map_or(vec![DhcpServer::Dnsmasq], |d| d.servers.clone());
    if servers.contains(&DhcpServer::Kea) {
        dhcp::kea_relay_problem(site, &dhcp_settings).map_or(Ok(()), Err)?;
    }
    let (dhcp, zones) = rayon::join(
        || {
            servers
                .par_iter()
                .map(|s| dhcp::render(*s, site, &dhcp_settings))
                .collect::<Vec<_>>()
        },
        || dns::zones(site, &dns_settings, nameserver_ip),
    );
    let mut files: BTreeMap<String, Vec<u8>> = dhcp
        .into_iter()
        .flatten()
        .map(|(path, text)| (path, text.into_bytes()))
        .collect();
    files.insert(layout::MENU.into(), menu(site).into_bytes());
    files.insert(
        layout::TFTP_LIST.into(),
        ipxe::tftp_list(&ipxe::builds(site)).into_bytes(),
    );
    let mut lock = IpamLock {
        allocations: site.allocations.clone(),
        zones: BTreeMap::new(),
    };
    for zone in zones {
        let serial = site.lock.serial_for(&zone.name, &zone.digest);
        files.insert(layout::zone(&zone.name), zone.text(serial).into_bytes());
        lock.zones.insert(
            zone.name.clone(),
            ZoneSerial {
                serial,
                digest: zone.digest.clone(),
            },
        );
    }
    files.insert(layout::LOCK_FILE.into(), lock.to_yaml().into_bytes());
    Ok(files)
}

/// The site menu: every machine chains to the executor, which answers
/// with that machine's script (or a local-disk boot).
fn menu(site: &SiteModel) -> String {
    format!(
        "#!ipxe\n\
         # kiln boot menu for site {name}: ask the executor what this machine boots.\n\
         # The MAC is the booting NIC's (netX: the one iPXE opened last, not\n\
         # net0, the first it found), sent as 52-54-00-12-34-56 (iPXE would\n\
         # percent-encode colons).\n\
         # When the machine's script returns (its disk is to boot), leave iPXE\n\
         # so the firmware boots the next device.\n\
         :start\n\
         chain --autofree {SERVER}/boot/ipxe?mac=${{netX/mac:hexhyp}} || goto retry\n\
         exit\n\
         :retry\n\
         echo kiln: boot server {SERVER} unreachable, retrying in 10 s\n\
         sleep 10\n\
         goto start\n",
        name = site.name()
    )
}

/// A file of a machine: rendered now, or reused as the last render left it.
enum Content {
    Rendered(Vec<u8>),
    Kept(PlannedFile),
}

struct MachineFiles {
    files: Vec<(String, Content, Origin)>,
    planned: PlannedMachine,
    /// The machine's key, when the render keeps them.
    key: Option<String>,
    /// Whether its files were reused.
    reused: bool,
}

/// A machine's workflow: commissioning when asked, then install, each
/// step with its blueprint.
fn workflow<'a>(m: &MachineModel<'a>) -> Vec<(StepName, &'a Input<Blueprint>)> {
    m.commission
        .map(|c| (StepName::Commission, c))
        .into_iter()
        .chain([(StepName::Install, m.blueprint)])
        .collect()
}

/// The key of every machine of a site (see `machine_key`), without
/// rendering: for a site whose output is already up to date.
pub(crate) fn machine_keys(cx: &Context, site: &SiteModel) -> BTreeMap<String, String> {
    let common = workflow_digests(cx, site);
    site.machines
        .par_iter()
        .map(|m| {
            let key = machine_key(&common[&workflow_names(m)], m, &step_plans(site, m));
            (m.name().to_string(), key)
        })
        .collect()
}

/// For each workflow of the site's machines (by its blueprints' names),
/// the part of a machine's key it decides.
fn workflow_digests<'a>(cx: &Context, site: &SiteModel<'a>) -> BTreeMap<Vec<&'a str>, String> {
    let workflows: BTreeSet<Vec<&str>> = site.machines.iter().map(workflow_names).collect();
    workflows
        .into_iter()
        .map(|names| {
            let digest = cx.digest_for_workflow(site, names.iter().copied());
            (names, format!("{digest} {:?}", cx.engine.limits))
        })
        .collect()
}

/// The names of the blueprints of a machine's workflow.
fn workflow_names<'a>(m: &MachineModel<'a>) -> Vec<&'a str> {
    workflow(m).iter().map(|(_, b)| b.object.name()).collect()
}

/// Where a step's file came from: `template` (a file of the step's
/// blueprint) rendered with the machine's values.
fn step_origin(name: &str, step: StepName, blueprint: &Input<Blueprint>, template: String) -> Origin {
    Origin {
        template: Some(template),
        values: ValuesOf::Machine {
            machine: name.into(),
            step,
            blueprint: blueprint.object.name().into(),
        },
    }
}

/// One step of a machine's workflow before anything is rendered: its
/// files (template → path) and the context its templates see.
struct StepPlan<'a> {
    step: StepName,
    blueprint: &'a Input<Blueprint>,
    /// The boot script's template and path.
    boot: (String, String),
    /// The install template, its path, and the name it is served as.
    install: Option<(String, String, String)>,
    context: Value,
}

impl StepPlan<'_> {
    /// Each file: (template, blueprint field, path).
    fn files(&self) -> impl Iterator<Item = (&str, &'static str, &str)> {
        [(self.boot.0.as_str(), "ipxe", self.boot.1.as_str())]
            .into_iter()
            .chain(
                self.install
                    .iter()
                    .map(|(t, path, _)| (t.as_str(), "install", path.as_str())),
            )
    }
}

fn step_plans<'a>(site: &SiteModel, m: &MachineModel<'a>) -> Vec<StepPlan<'a>> {
    let name = m.name();
    workflow(m)
        .into_iter()
        .map(|(step, blueprint)| {
            let bp_dir = format!("blueprints/{}/", blueprint.object.name());
            let templates = &blueprint.object.spec.templates;
            let install = templates.install.as_ref().map(|t| {
                let file = install_file_name(t);
                (format!("{bp_dir}{t}"), layout::install_file(name, step, &file), file)
            });
            let context = machine_context(site, m, blueprint, install.as_ref().map(|(.., f)| f.as_str()));
            StepPlan {
                step,
                blueprint,
                boot: (format!("{bp_dir}{}", templates.ipxe), layout::boot_script(name, step)),
                install,
                context,
            }
        })
        .collect()
}

/// What decides a machine's files, as one digest: what every machine of
/// its site with its workflow shares (`common`: the site's document, the
/// workflow's blueprints' files and the templates they name, the built-in
/// and command-line values, kiln, the limits), its own document, and each
/// step's paths and template context (its resolved addresses and networks
/// among them).
fn machine_key(common: &str, m: &MachineModel, plans: &[StepPlan]) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(common.as_bytes());
    part(&serde_json::to_vec(&m.input.doc.value).unwrap_or_default());
    for plan in plans {
        part(plan.step.as_str().as_bytes());
        for (template, field, path) in plan.files() {
            part(format!("{template} {field} {path}").as_bytes());
        }
        part(&serde_json::to_vec(&plan.context).unwrap_or_default());
    }
    kiln_plan::hex(&hasher.finalize())
}

/// Renders a machine's workflow, or reuses its files when its key is the
/// one the last render recorded for it.
fn machine(shared: &Shared, m: &MachineModel) -> Result<MachineFiles, Diagnostics> {
    let name = m.name();
    let plans = step_plans(shared.site, m);
    let key = shared
        .keys
        .as_ref()
        .map(|keys| machine_key(&keys.workflows[&workflow_names(m)], m, &plans));
    let previous = shared.keys.as_ref().and_then(|keys| keys.previous);
    let kept: Option<&PreviousOutput> = previous.filter(|p| {
        key.is_some()
            && p.keys.get(name) == key.as_ref()
            && plans
                .iter()
                .all(|plan| plan.files().all(|(.., path)| p.files.contains_key(path)))
    });
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    let mut steps = Vec::new();
    for plan in &plans {
        let rendered = match kept {
            Some(previous) => Ok(plan
                .files()
                .map(|(template, _, path)| {
                    let origin = step_origin(name, plan.step, plan.blueprint, template.to_string());
                    (path.to_string(), Content::Kept(previous.files[path].clone()), origin)
                })
                .collect()),
            None => step_files(shared, m, plan),
        };
        match rendered {
            Ok(step_files) => {
                files.extend(step_files);
                steps.push(WorkflowStep {
                    name: plan.step,
                    boot_script: plan.boot.1.clone(),
                    install_file: plan.install.as_ref().map(|(_, path, _)| path.clone()),
                    artifacts: planned_artifacts(plan.blueprint),
                });
            }
            Err(d) => diags.extend(d),
        }
    }
    let primary = &m.interfaces[0];
    let agent = shared
        .agent(m)
        .map_err(|e| Diagnostics::from(m.input.error("/spec/values", true, e)))?;
    diags.finish(MachineFiles {
        files,
        key,
        reused: kept.is_some(),
        planned: PlannedMachine {
            name: name.into(),
            mac: kiln_plan::Mac::parse(&primary.mac).ok_or_else(|| {
                Diagnostics::from(m.input.error("/spec/interfaces/0/mac", false, "not a MAC address"))
            })?,
            other_macs: m.interfaces[1..]
                .iter()
                .filter_map(|i| kiln_plan::Mac::parse(&i.mac))
                .collect(),
            ip: primary.addresses().next().map(|ip| ip.to_string()).unwrap_or_default(),
            blueprint: m.blueprint.object.name().into(),
            generation: m.input.object.spec.generation,
            steps,
            labels: m.input.object.metadata.labels.clone(),
            agent: agent
                .interval_seconds()
                .zip(once::agent_path(m.blueprint))
                .map(|(interval_seconds, script)| PlannedAgent {
                    script,
                    interval_seconds,
                }),
        },
    })
}

/// Renders the boot script and install file of one step of a machine's
/// workflow.
fn step_files(
    shared: &Shared,
    m: &MachineModel,
    plan: &StepPlan,
) -> Result<Vec<(String, Content, Origin)>, Diagnostics> {
    let (cx, site) = (shared.cx, shared.site);
    let name = m.name();
    let blueprint = plan.blueprint;
    let context =
        minijinja::context! { values => shared.values(m, blueprint), ..super::templates::context(&plan.context) };
    let served_as = plan.install.as_ref().map(|(.., f)| f.as_str());
    let subject = format!("machine {name} of site {}", site.name());
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    for (template, field, path) in plan.files() {
        match render_template(cx, blueprint, field, template, &context, &subject) {
            Ok(text) => {
                diags.extend(served::problems(&served::Rendered {
                    site,
                    blueprint,
                    template,
                    template_text: cx.repo.files.get(template).map(|t| &**t),
                    field,
                    text: &text,
                    install_file: served_as,
                }));
                let origin = step_origin(name, plan.step, blueprint, template.to_string());
                files.push((path.to_string(), Content::Rendered(text.into_bytes()), origin));
            }
            Err(d) => diags.push(d),
        }
    }
    diags.finish(files)
}

/// Renders `template`, the file a blueprint's `field` names, for `subject`;
/// a template that is not there is an error at that field.
fn render_template(
    cx: &Context,
    blueprint: &Input<Blueprint>,
    field: &str,
    template: &str,
    context: &minijinja::Value,
    subject: &str,
) -> Result<String, Diagnostic> {
    if cx.repo.files.get(template).is_none() {
        return Err(blueprint.error(
            &format!("/spec/templates/{field}"),
            false,
            format!("template {template} does not exist"),
        ));
    }
    cx.engine.render(template, context, subject, &cx.repo.files)
}

/// The name an install template's output is served under: the template's
/// file name minus `.j2`.
pub(crate) fn install_file_name(template: &str) -> String {
    let file = template.rsplit('/').next().unwrap_or(template);
    file.strip_suffix(".j2").unwrap_or(file).to_string()
}

/// A blueprint's artifacts as the plan lists them.
fn planned_artifacts(blueprint: &Input<Blueprint>) -> Vec<PlannedArtifact> {
    blueprint
        .object
        .spec
        .artifacts
        .values()
        .map(|a| PlannedArtifact {
            path: a.path.clone(),
            sha256: a.sha256.to_string(),
        })
        .collect()
}

/// A blueprint's artifacts as templates see them: path, SHA-256 and URL.
fn artifacts_context(blueprint: &Input<Blueprint>) -> Map<String, Value> {
    blueprint
        .object
        .spec
        .artifacts
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                json!({"path": a.path, "sha256": a.sha256.as_str(), "url": format!("{SERVER}/artifacts/{}", a.path)}),
            )
        })
        .collect()
}

fn machine_context(
    site: &SiteModel,
    m: &MachineModel,
    blueprint: &Input<Blueprint>,
    install_file: Option<&str>,
) -> Value {
    let spec = &m.input.object.spec;
    let interfaces: Vec<Value> = m
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            let net = &site.networks[iface.network];
            let text = |ip: Option<IpAddr>| ip.map(|ip| ip.to_string());
            let all = |ips: &[IpAddr]| ips.iter().map(|d| d.to_string()).collect::<Vec<_>>();
            let (v4, v6) = (net.v4.as_ref(), net.v6.as_ref());
            json!({
                "name": format!("eth{i}"),
                "mac": iface.mac,
                "network": net.name,
                "ip": text(iface.ip),
                "prefix": v4.map(|s| s.net.prefix),
                "netmask": text(v4.map(|s| s.net.netmask())),
                "gateway": text(v4.and_then(|s| s.gateway)),
                "dns": all(v4.map_or(&[], |s| &s.dns)),
                "ip6": text(iface.ip6),
                "prefix6": v6.map(|s| s.net.prefix),
                "gateway6": text(v6.and_then(|s| s.gateway)),
                "dns6": all(v6.map_or(&[], |s| &s.dns)),
                "vlan": net.vlan,
            })
        })
        .collect();
    let primary = &interfaces[0];
    let artifacts = artifacts_context(blueprint);
    json!({
        "machine": {
            "name": m.name(),
            "hostname": m.name(),
            "fqdn": format!("{}.{}", m.name(), site.domain),
            "mac": primary["mac"],
            "ip": primary["ip"],
            "prefix": primary["prefix"],
            "interfaces": interfaces,
            "serial": spec.serial,
            "generation": spec.generation,
            "labels": m.input.object.metadata.labels,
            "commission": spec.commission,
        },
        "site": {"name": site.name(), "domain": site.domain, "bootServer": site.boot_server},
        "blueprint": {
            "name": blueprint.object.name(),
            "os": blueprint.object.spec.os,
            "version": blueprint.object.spec.version,
            "artifacts": artifacts,
        },
        "install_url": install_file.map(|f| format!("{SERVER}/install/{TOKEN}/{f}")),
        "report_url": format!("{SERVER}/v1/agents/facts"),
        "token": TOKEN,
        "server": SERVER,
        "checkin_url": format!("{SERVER}/v1/agents/checkin"),
        "agent_url": format!("{SERVER}/v1/agents/script"),
        "agent_token": AGENT_TOKEN,
    })
}
