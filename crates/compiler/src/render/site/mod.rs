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

use super::{settings, Context};
use crate::diag::{Diagnostic, Diagnostics};
use crate::emit::Output;
use crate::layout::{self, Origin, ValuesOf};
use crate::load::kinds::{Blueprint, DhcpServer};
use crate::load::Input;
use crate::merge::merge;
use crate::resolve::ipam::{IpamLock, ZoneSerial};
use crate::resolve::site::{MachineModel, SiteModel};
use kiln_plan::{OutputKind, PlannedAgent, PlannedArtifact, PlannedMachine, StepName, WorkflowStep};

use kiln_plan::placeholder::{AGENT_TOKEN, SERVER, TOKEN};

/// What every machine of a site shares: the values of each blueprint
/// merged with the site's (for machines without values of their own),
/// converted for the template engine once.
struct Shared<'a> {
    cx: &'a Context<'a>,
    site: &'a SiteModel<'a>,
    values: BTreeMap<&'a str, minijinja::Value>,
    agents: BTreeMap<&'a str, Result<settings::Agent, String>>,
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
    let mut machines = Vec::new();
    for (r, m) in results.into_iter().zip(&site.machines) {
        match r {
            Ok(rendered) => {
                for (path, bytes, origin) in rendered.files {
                    if let Some(first) = origins.insert(path.clone(), origin) {
                        diags.push(m.input.error(
                            "",
                            false,
                            format!("renders `{path}`, which {} already renders", describe(&first)),
                        ));
                    }
                    files.insert(path, bytes);
                }
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
        name: site.name().to_string(),
        discovery,
        kind: OutputKind::Site,
        inputs_digest: cx.digest_for_site(site),
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
        sha256: BTreeMap::new(),
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

struct MachineFiles {
    files: Vec<(String, Vec<u8>, Origin)>,
    planned: PlannedMachine,
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

/// Renders a machine's workflow.
fn machine(shared: &Shared, m: &MachineModel) -> Result<MachineFiles, Diagnostics> {
    let name = m.name();
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    let mut steps = Vec::new();
    for (step, blueprint) in workflow(m) {
        let boot_script = layout::boot_script(name, step);
        match step_files(shared, m, step, blueprint, &boot_script) {
            Ok((step_files, install_file)) => {
                files.extend(step_files);
                steps.push(WorkflowStep {
                    name: step,
                    boot_script,
                    install_file,
                    artifacts: planned_artifacts(blueprint),
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

type StepFiles = (Vec<(String, Vec<u8>, Origin)>, Option<String>);

/// The boot script and install file of one step of a machine's workflow.
fn step_files(
    shared: &Shared,
    m: &MachineModel,
    step: StepName,
    blueprint: &Input<Blueprint>,
    boot_script: &str,
) -> Result<StepFiles, Diagnostics> {
    let (cx, site) = (shared.cx, shared.site);
    let name = m.name();
    let bp_dir = format!("blueprints/{}/", blueprint.object.name());
    let templates = &blueprint.object.spec.templates;
    let install = templates
        .install
        .as_ref()
        .map(|t| (format!("{bp_dir}{t}"), install_file_name(t)));
    let context = machine_context(site, m, blueprint, install.as_ref().map(|(_, f)| f.as_str()));
    let context = minijinja::context! { values => shared.values(m, blueprint), ..context.into_jinja() };
    let served_as = install.as_ref().map(|(_, f)| f.clone());
    let subject = format!("machine {name} of site {}", site.name());
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    let mut render = |template: String, field: &str, dest: String| match render_template(
        cx, blueprint, field, &template, &context, &subject,
    ) {
        Ok(text) => {
            diags.extend(served::problems(&served::Rendered {
                site,
                blueprint,
                template: &template,
                template_text: cx.repo.files.get(&template).map(|t| &**t),
                field,
                text: &text,
                install_file: served_as.as_deref(),
            }));
            files.push((dest, text.into_bytes(), step_origin(name, step, blueprint, template)))
        }
        Err(d) => diags.push(d),
    };
    render(format!("{bp_dir}{}", templates.ipxe), "ipxe", boot_script.to_string());
    let install_file = install.map(|(template, file)| {
        let dest = layout::install_file(name, step, &file);
        render(template, "install", dest.clone());
        dest
    });
    diags.finish((files, install_file))
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
