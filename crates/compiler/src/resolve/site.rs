//! The site model: a Site's networks checked, its machines' references
//! resolved and every interface given an address by IPAM.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::diag::Diagnostics;
use crate::load::kinds::{AddressRange, Blueprint, Machine, Site};
use crate::load::{Input, Repo};

use super::ipam::{self, Allocation, IpamLock, Pool, Request};
use super::net::{parse_ip, IpRange, Ipv4Net};

/// A network of a site, parsed.
#[derive(Clone, Debug)]
pub struct NetworkModel {
    pub name: String,
    pub net: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub vlan: Option<u16>,
    pub pool: Option<IpRange>,
    pub dhcp_range: Option<IpRange>,
    /// The DHCP relay agent's address on this network, for a routed one.
    pub relay: Option<Ipv4Addr>,
}

/// A machine's interface with its address.
#[derive(Clone, Debug)]
pub struct InterfaceModel {
    pub mac: String,
    /// Index into the site's networks.
    pub network: usize,
    pub ip: Ipv4Addr,
}

#[derive(Clone, Debug)]
pub struct MachineModel<'a> {
    pub input: &'a Input<Machine>,
    pub blueprint: &'a Input<Blueprint>,
    /// The commissioning blueprint, for machines with `commission: true`.
    pub commission: Option<&'a Input<Blueprint>>,
    pub interfaces: Vec<InterfaceModel>,
}

impl MachineModel<'_> {
    pub fn name(&self) -> &str {
        self.input.object.name()
    }
}

/// A bare-metal site ready to render.
#[derive(Clone, Debug)]
pub struct SiteModel<'a> {
    pub input: &'a Input<Site>,
    pub domain: String,
    pub boot_server: String,
    /// The boot server's address, when its URL names one.
    pub boot_server_ip: Option<Ipv4Addr>,
    pub networks: Vec<NetworkModel>,
    /// Sorted by name.
    pub machines: Vec<MachineModel<'a>>,
    /// The lock as read (its zone serials are the previous ones).
    pub lock: IpamLock,
    pub allocations: Vec<Allocation>,
}

impl SiteModel<'_> {
    pub fn name(&self) -> &str {
        self.input.object.name()
    }
}

/// Builds the model of every site that has networks or machines. Sites
/// that only hold clusters have none.
pub(crate) fn sites(repo: &Repo) -> (Vec<SiteModel<'_>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let blueprints: BTreeMap<&str, &Input<Blueprint>> = repo.blueprints.iter().map(|b| (b.object.name(), b)).collect();
    let site_names: BTreeSet<&str> = repo.sites.iter().map(|s| s.object.name()).collect();

    let mut by_site: BTreeMap<&str, Vec<&Input<Machine>>> = BTreeMap::new();
    for m in &repo.machines {
        if !site_names.contains(m.site_dir()) {
            diags.push(m.error(
                "/metadata/name",
                false,
                format!(
                    "machine `{}` is under sites/{}/, which has no site.yaml",
                    m.object.name(),
                    m.site_dir()
                ),
            ));
            continue;
        }
        by_site.entry(m.site_dir()).or_default().push(m);
    }

    let mut models = Vec::new();
    for site in &repo.sites {
        let machines = by_site.remove(site.object.name()).unwrap_or_default();
        if site.object.spec.networks.is_empty() && machines.is_empty() {
            continue;
        }
        match site_model(repo, site, machines, &blueprints) {
            Ok(model) => models.push(model),
            Err(d) => diags.extend(d),
        }
    }
    (models, diags)
}

fn site_model<'a>(
    repo: &'a Repo,
    site: &'a Input<Site>,
    mut machines: Vec<&'a Input<Machine>>,
    blueprints: &BTreeMap<&str, &'a Input<Blueprint>>,
) -> Result<SiteModel<'a>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spec = &site.object.spec;
    let name = site.object.name();
    let required = |field: &str, value: Option<&String>, diags: &mut Diagnostics| {
        if value.is_none() {
            diags.push(site.error(
                "/spec",
                false,
                format!("site `{name}` has machines or networks, so it needs `spec.{field}`"),
            ));
        }
        value.cloned().unwrap_or_default()
    };
    let domain = required("domain", spec.domain.as_ref(), &mut diags);
    let boot_server = required("bootServer", spec.boot_server.as_ref(), &mut diags);
    let boot_server_ip = match boot_server_host(&boot_server) {
        Ok(host) => host.parse().ok(),
        Err(e) if !boot_server.is_empty() => {
            diags.push(site.error("/spec/bootServer", false, e));
            None
        }
        Err(_) => None,
    };

    let networks = networks(site, &mut diags);
    let network_index: BTreeMap<&str, usize> = networks.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();

    machines.sort_by(|a, b| a.object.name().cmp(b.object.name()).then(a.file.cmp(&b.file)));
    let mut seen: BTreeMap<&str, &Input<Machine>> = BTreeMap::new();
    let mut macs: BTreeMap<String, &str> = BTreeMap::new();
    let commission_name = spec.commission_blueprint.as_ref().map_or("commission", |b| b.as_str());
    let mut models = Vec::new();
    let mut requests = Vec::new();
    for m in &machines {
        let mname = m.object.name();
        if let Some(first) = seen.insert(mname, m) {
            diags.push(m.error(
                "/metadata/name",
                false,
                format!("duplicate machine name `{mname}`: also defined in {}", first.file),
            ));
            continue;
        }
        let bp = m.object.spec.blueprint.as_str();
        let blueprint = blueprints.get(bp).copied();
        if blueprint.is_none() {
            let known: Vec<&str> = blueprints.keys().copied().collect();
            diags.push(m.error(
                "/spec/blueprint",
                false,
                format!("unknown blueprint `{bp}`, expected one of {}", known.join(", ")),
            ));
        }
        let commission = if m.object.spec.commission {
            let found = blueprints.get(commission_name).copied();
            if found.is_none() {
                diags.push(m.error(
                    "/spec/commission",
                    false,
                    format!("machine asks for commissioning, but there is no blueprint `{commission_name}`"),
                ));
            }
            found
        } else {
            None
        };
        let mut interfaces = Vec::new();
        for (i, iface) in m.object.spec.interfaces.iter().enumerate() {
            let at = format!("/spec/interfaces/{i}");
            let Some(&net_index) = network_index.get(iface.network.as_str()) else {
                let known: Vec<&str> = network_index.keys().copied().collect();
                diags.push(m.error(
                    &format!("{at}/network"),
                    false,
                    format!(
                        "unknown network `{}`, expected one of {}",
                        iface.network,
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let network = &networks[net_index];
            let fixed = match iface.ip.as_deref().map(parse_ip) {
                None => None,
                Some(Err(e)) => {
                    diags.push(m.error(&format!("{at}/ip"), false, e));
                    continue;
                }
                Some(Ok(ip)) => {
                    if !network.net.is_host(ip) {
                        diags.push(m.error(
                            &format!("{at}/ip"),
                            false,
                            format!("IP {ip} is outside network `{}` ({})", network.name, network.net),
                        ));
                        continue;
                    }
                    if let Some(range) = network.dhcp_range.filter(|r| r.contains(ip)) {
                        diags.push(m.error(
                            &format!("{at}/ip"),
                            false,
                            format!("IP {ip} is inside the dhcpRange {range} of network `{}`", network.name),
                        ));
                        continue;
                    }
                    Some(ip)
                }
            };
            let mac = kiln_plan::Mac::parse(iface.mac.as_str())
                .map(|m| m.to_string())
                .unwrap_or_default();
            if let Some(first) = macs.insert(mac.clone(), mname) {
                diags.push(m.error(
                    &format!("{at}/mac"),
                    false,
                    format!("duplicate MAC {mac}: also an interface of machine `{first}`"),
                ));
                continue;
            }
            let at = if fixed.is_some() { format!("{at}/ip") } else { at };
            requests.push((mname, mac.clone(), net_index, fixed, m.error(&at, false, "")));
            interfaces.push(InterfaceModel {
                mac,
                network: net_index,
                ip: Ipv4Addr::UNSPECIFIED,
            });
        }
        if let Some(blueprint) = blueprint {
            models.push(MachineModel {
                input: m,
                blueprint,
                commission,
                interfaces,
            });
        }
    }

    let lock = match repo.lock(name).map(|(file, text)| IpamLock::parse(file, text)) {
        None => IpamLock::default(),
        Some(Ok(lock)) => lock,
        Some(Err(d)) => {
            diags.push(d);
            return Err(diags);
        }
    };
    let pools: Vec<Pool> = networks
        .iter()
        .enumerate()
        .map(|(i, n)| Pool {
            name: &n.name,
            net: n.net,
            pool: n.pool,
            reserved: n
                .gateway
                .into_iter()
                .chain(n.relay)
                .chain(n.dns.iter().copied())
                .chain(boot_server_ip)
                .collect(),
            at: site.error(&format!("/spec/networks/{i}/pool"), false, ""),
        })
        .collect();
    let reqs: Vec<Request> = requests
        .iter()
        .map(|(machine, mac, net, fixed, at)| Request {
            machine,
            mac,
            network: &networks[*net].name,
            fixed: *fixed,
            at: at.clone(),
        })
        .collect();
    let allocations = match ipam::allocate(&pools, &reqs, &lock) {
        Ok(a) => a,
        Err(d) => {
            diags.extend(d);
            Vec::new()
        }
    };
    let assigned: BTreeMap<(&str, &str), Ipv4Addr> = allocations
        .iter()
        .map(|a| ((a.network.as_str(), a.mac.as_str()), a.ip))
        .collect();
    for model in &mut models {
        for iface in &mut model.interfaces {
            if let Some(ip) = assigned.get(&(networks[iface.network].name.as_str(), iface.mac.as_str())) {
                iface.ip = *ip;
            }
        }
    }
    diags.finish(SiteModel {
        input: site,
        domain,
        boot_server,
        boot_server_ip,
        networks,
        machines: models,
        lock,
        allocations,
    })
}

/// The host part of the boot server URL.
fn boot_server_host(url: &str) -> Result<&str, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("bootServer `{url}` must be an http:// or https:// URL"));
    }
    super::net::url_host(url).ok_or_else(|| format!("bootServer `{url}` names no host"))
}

/// Parses the address at `pointer`; `fits` says whether it may stand there
/// (inside the network, say). Reports why not.
fn address(
    site: &Input<Site>,
    pointer: &str,
    text: &str,
    net: &Ipv4Net,
    fits: impl Fn(Ipv4Addr) -> bool,
    diags: &mut Diagnostics,
) -> Option<Ipv4Addr> {
    let problem = match parse_ip(text) {
        Ok(ip) if fits(ip) => return Some(ip),
        Ok(ip) => format!("{ip} is outside the network {net}"),
        Err(e) => e,
    };
    diags.push(site.error(pointer, false, problem));
    None
}

fn range(site: &Input<Site>, at: &str, r: &AddressRange, net: &Ipv4Net, diags: &mut Diagnostics) -> Option<IpRange> {
    let start = address(
        site,
        &format!("{at}/start"),
        &r.start,
        net,
        |ip| net.contains(ip),
        diags,
    );
    let end = address(site, &format!("{at}/end"), &r.end, net, |ip| net.contains(ip), diags);
    let (start, end) = (start?, end?);
    if start > end {
        diags.push(site.error(at, false, format!("range starts at {start}, after its end {end}")));
        return None;
    }
    Some(IpRange { start, end })
}

fn networks(site: &Input<Site>, diags: &mut Diagnostics) -> Vec<NetworkModel> {
    let mut out: Vec<NetworkModel> = Vec::new();
    for (i, n) in site.object.spec.networks.iter().enumerate() {
        let at = format!("/spec/networks/{i}");
        if out.iter().any(|o| o.name == n.name.as_str()) {
            diags.push(site.error(
                &format!("{at}/name"),
                false,
                format!("duplicate network name `{}`", n.name),
            ));
            continue;
        }
        let net = match Ipv4Net::parse(&n.cidr) {
            Ok(net) => net,
            Err(e) => {
                diags.push(site.error(&format!("{at}/cidr"), false, e));
                continue;
            }
        };
        if let Some(other) = out.iter().find(|o| o.net.overlaps(&net)) {
            diags.push(site.error(
                &format!("{at}/cidr"),
                false,
                format!("network {net} overlaps network `{}` ({})", other.name, other.net),
            ));
            continue;
        }
        let gateway = n
            .gateway
            .as_deref()
            .and_then(|g| address(site, &format!("{at}/gateway"), g, &net, |ip| net.is_host(ip), diags));
        let relay = n.relay.as_ref().and_then(|r| {
            address(
                site,
                &format!("{at}/relay/address"),
                &r.address,
                &net,
                |ip| net.is_host(ip),
                diags,
            )
        });
        let dns = n
            .dns
            .iter()
            .enumerate()
            .filter_map(|(j, d)| address(site, &format!("{at}/dns/{j}"), d, &net, |_| true, diags))
            .collect();
        let pool = n
            .pool
            .as_ref()
            .and_then(|r| range(site, &format!("{at}/pool"), r, &net, diags));
        let dhcp_range = n
            .dhcp_range
            .as_ref()
            .and_then(|r| range(site, &format!("{at}/dhcpRange"), r, &net, diags));
        if let (Some(p), Some(d)) = (pool, dhcp_range) {
            if p.overlaps(&d) {
                diags.push(site.error(
                    &format!("{at}/dhcpRange"),
                    false,
                    format!("dhcpRange {d} overlaps the IPAM pool {p}"),
                ));
            }
        }
        out.push(NetworkModel {
            name: n.name.to_string(),
            net,
            gateway,
            dns,
            vlan: n.vlan,
            pool,
            dhcp_range,
            relay,
        });
    }
    out
}
