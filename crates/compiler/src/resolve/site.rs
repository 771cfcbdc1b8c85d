//! The site model: a Site's machines' references resolved and every
//! interface given an address by IPAM, on the networks `networks.rs`
//! checked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::diag::Diagnostics;
use crate::load::kinds::{Blueprint, Machine, Site};
use crate::load::{Input, Repo};

use super::ipam::{self, Allocation, IpamLock, Pool, Request};
use super::net::{parse_ip, Family};
use super::networks::networks;
use super::networks::NetworkModel;

/// A machine's interface with its address.
#[derive(Clone, Debug)]
pub struct InterfaceModel {
    pub mac: String,
    /// Index into the site's networks.
    pub network: usize,
    /// Its IPv4 address, on a network with an IPv4 side.
    pub ip: Option<IpAddr>,
    /// Its IPv6 address, on a network with an IPv6 side.
    pub ip6: Option<IpAddr>,
}

impl InterfaceModel {
    pub fn address(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.ip,
            Family::V6 => self.ip6,
        }
    }

    /// Its addresses, IPv4 first.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        self.ip.into_iter().chain(self.ip6)
    }
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
    pub boot_server_ip: Option<IpAddr>,
    pub networks: Vec<NetworkModel>,
    /// Sorted by name.
    pub machines: Vec<MachineModel<'a>>,
    /// The lock as read (its zone serials are the previous ones).
    pub lock: IpamLock,
    pub allocations: Vec<Allocation>,
    /// The discovery blueprint, when the site has discovery on.
    pub discovery: Option<&'a Input<Blueprint>>,
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
    let discovery = spec.discovery.as_ref().filter(|d| d.enabled).and_then(|d| {
        let name = d.blueprint.as_ref().map_or("discovery", |b| b.as_str());
        let found = blueprints.get(name).copied();
        if found.is_none() {
            let at = if d.blueprint.is_some() {
                "/spec/discovery/blueprint"
            } else {
                "/spec/discovery"
            };
            let known: Vec<&str> = blueprints.keys().copied().collect();
            diags.push(site.error(
                at,
                false,
                format!(
                    "discovery boots blueprint `{name}`, which does not exist; expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        found
    });
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
            let fixed4 = fixed_address(m, &at, iface.ip.as_deref(), network, Family::V4, &mut diags);
            let fixed6 = fixed_address(m, &at, iface.ip6.as_deref(), network, Family::V6, &mut diags);
            let (Ok(fixed4), Ok(fixed6)) = (fixed4, fixed6) else {
                continue;
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
            for (family, fixed) in [(Family::V4, fixed4), (Family::V6, fixed6)] {
                if network.subnet(family).is_some() {
                    let at = match (fixed, family) {
                        (None, _) => at.clone(),
                        (Some(_), Family::V4) => format!("{at}/ip"),
                        (Some(_), Family::V6) => format!("{at}/ip6"),
                    };
                    requests.push((mname, mac.clone(), net_index, family, fixed, m.error(&at, false, "")));
                }
            }
            interfaces.push(InterfaceModel {
                mac,
                network: net_index,
                ip: None,
                ip6: None,
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
        .flat_map(|(i, n)| {
            let v4 = n.v4.as_ref().map(|s| (s, format!("/spec/networks/{i}/pool")));
            let v6 = n.v6.as_ref().map(|s| (s, format!("/spec/networks/{i}/ipv6/pool")));
            v4.into_iter().chain(v6).map(move |(s, at)| (n, s, at))
        })
        .map(|(n, s, at)| Pool {
            name: &n.name,
            net: s.net,
            pool: s.pool,
            reserved: s
                .gateway
                .into_iter()
                .chain(s.relay)
                .chain(s.dns.iter().copied())
                .chain(boot_server_ip)
                .collect(),
            at: site.error(&at, false, ""),
        })
        .collect();
    let reqs: Vec<Request> = requests
        .iter()
        .map(|(machine, mac, net, family, fixed, at)| Request {
            machine,
            mac,
            network: &networks[*net].name,
            family: *family,
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
    let assigned: BTreeMap<(&str, &str, Family), IpAddr> = allocations
        .iter()
        .map(|a| ((a.network.as_str(), a.mac.as_str(), Family::of(a.ip)), a.ip))
        .collect();
    for model in &mut models {
        for iface in &mut model.interfaces {
            let key = |family| (networks[iface.network].name.as_str(), iface.mac.as_str(), family);
            iface.ip = assigned.get(&key(Family::V4)).copied();
            iface.ip6 = assigned.get(&key(Family::V6)).copied();
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
        discovery,
    })
}

/// The host part of the boot server URL.
fn boot_server_host(url: &str) -> Result<&str, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("bootServer `{url}` must be an http:// or https:// URL"));
    }
    super::net::url_host(url).ok_or_else(|| format!("bootServer `{url}` names no host"))
}

/// An interface's fixed address of one family (`ip` or `ip6`), checked
/// against its network; `Err` when it was reported.
fn fixed_address(
    m: &Input<Machine>,
    at: &str,
    text: Option<&str>,
    network: &NetworkModel,
    family: Family,
    diags: &mut Diagnostics,
) -> Result<Option<IpAddr>, ()> {
    let (field, other) = match family {
        Family::V4 => ("ip", "ip6"),
        Family::V6 => ("ip6", "ip"),
    };
    let Some(text) = text else {
        return Ok(None);
    };
    let problem = match parse_ip(text) {
        Err(e) => e,
        Ok(ip) if Family::of(ip) != family => {
            format!("{ip} is an {} address: write it as `{other}`", Family::of(ip).name())
        }
        Ok(ip) => match network.subnet(family) {
            None if family == Family::V6 => format!(
                "network `{}` has no IPv6 side: give it `ipv6: {{cidr: ...}}` in site.yaml, or drop `ip6`",
                network.name
            ),
            None => format!("network `{}` is IPv6-only: drop `ip`, or give `ip6`", network.name),
            Some(s) if !s.net.is_host(ip) => format!("IP {ip} is outside network `{}` ({})", network.name, s.net),
            Some(s) => match s.dhcp_range.filter(|r| r.contains(ip)) {
                Some(range) => format!("IP {ip} is inside the dhcpRange {range} of network `{}`", network.name),
                None => return Ok(Some(ip)),
            },
        },
    };
    diags.push(m.error(&format!("{at}/{field}"), false, problem));
    Err(())
}
