//! A site's networks as written, checked: each network's IPv4 side (its
//! own fields) and IPv6 side (`ipv6:`), every address in its place, no
//! two networks overlapping.

use std::net::IpAddr;

use crate::diag::Diagnostics;
use crate::load::kinds::{AddressRange, DhcpServer, Relay, Site};
use crate::load::Input;

use super::net::{parse_ip, Family, IpNet, IpRange};

/// One address family of a network, parsed.
#[derive(Clone, Debug)]
pub struct Subnet {
    pub net: IpNet,
    pub gateway: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub pool: Option<IpRange>,
    pub dhcp_range: Option<IpRange>,
    /// The DHCP relay agent's address on this network, for a routed one.
    pub relay: Option<IpAddr>,
    /// The DHCP server's interface on it (IPv6 side only; Kea needs it).
    pub interface: Option<String>,
}

/// A network of a site: IPv4, IPv6 or both.
#[derive(Clone, Debug)]
pub struct NetworkModel {
    pub name: String,
    pub vlan: Option<u16>,
    pub v4: Option<Subnet>,
    pub v6: Option<Subnet>,
}

impl NetworkModel {
    pub fn subnet(&self, family: Family) -> Option<&Subnet> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    /// Its subnets, IPv4 first.
    pub fn subnets(&self) -> impl Iterator<Item = &Subnet> {
        self.v4.iter().chain(&self.v6)
    }
}

/// Parses the address at `pointer`; `fits` says whether it may stand there
/// (inside the network, say). Reports why not.
fn address(
    site: &Input<Site>,
    pointer: &str,
    text: &str,
    net: &IpNet,
    fits: impl Fn(IpAddr) -> bool,
    diags: &mut Diagnostics,
) -> Option<IpAddr> {
    let problem = match parse_ip(text) {
        Ok(ip) if fits(ip) => return Some(ip),
        Ok(ip) if Family::of(ip) != net.family() => {
            format!(
                "{ip} is an {} address, on the {} network {net}",
                Family::of(ip).name(),
                net.family().name()
            )
        }
        Ok(ip) => format!("{ip} is outside the network {net}"),
        Err(e) => e,
    };
    diags.push(site.error(pointer, false, problem));
    None
}

fn range(site: &Input<Site>, at: &str, r: &AddressRange, net: &IpNet, diags: &mut Diagnostics) -> Option<IpRange> {
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

/// One family's fields of a network as written, `at` its pointer.
struct SubnetFields<'a> {
    at: String,
    cidr: &'a str,
    gateway: Option<&'a str>,
    dns: &'a [String],
    pool: Option<&'a AddressRange>,
    dhcp_range: Option<&'a AddressRange>,
    relay: Option<&'a Relay>,
    interface: Option<&'a str>,
}

fn subnet(site: &Input<Site>, f: SubnetFields, family: Family, diags: &mut Diagnostics) -> Option<Subnet> {
    let at = &f.at;
    let net = match IpNet::parse(f.cidr) {
        Ok(net) if net.family() == family => net,
        Ok(net) => {
            let hint = match family {
                Family::V4 => "put it under `ipv6: {cidr: ...}`",
                Family::V6 => "put it in the network's own `cidr`",
            };
            diags.push(site.error(
                &format!("{at}/cidr"),
                false,
                format!("{net} is an {} network: {hint}", net.family().name()),
            ));
            return None;
        }
        Err(e) => {
            diags.push(site.error(&format!("{at}/cidr"), false, e));
            return None;
        }
    };
    let host = |ip: IpAddr| net.is_host(ip);
    let gateway = f
        .gateway
        .and_then(|g| address(site, &format!("{at}/gateway"), g, &net, host, diags));
    let relay = f
        .relay
        .and_then(|r| address(site, &format!("{at}/relay/address"), &r.address, &net, host, diags));
    let dns = f
        .dns
        .iter()
        .enumerate()
        .filter_map(|(j, d)| {
            let same_family = |ip: IpAddr| Family::of(ip) == family;
            address(site, &format!("{at}/dns/{j}"), d, &net, same_family, diags)
        })
        .collect();
    let pool = f.pool.and_then(|r| range(site, &format!("{at}/pool"), r, &net, diags));
    let dhcp_range = f
        .dhcp_range
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
    Some(Subnet {
        net,
        gateway,
        dns,
        pool,
        dhcp_range,
        relay,
        interface: f.interface.map(str::to_string),
    })
}

pub(super) fn networks(site: &Input<Site>, diags: &mut Diagnostics) -> Vec<NetworkModel> {
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
        if n.cidr.is_none() && n.ipv6.is_none() {
            diags.push(site.error(
                &at,
                false,
                format!(
                    "network `{}` has no address: give it `cidr` (IPv4), `ipv6: {{cidr: ...}}`, or both",
                    n.name
                ),
            ));
            continue;
        }
        let v4 = n.cidr.as_deref().map(|cidr| SubnetFields {
            at: at.clone(),
            cidr,
            gateway: n.gateway.as_deref(),
            dns: &n.dns,
            pool: n.pool.as_ref(),
            dhcp_range: n.dhcp_range.as_ref(),
            relay: n.relay.as_ref(),
            interface: None,
        });
        let v6 = n.ipv6.as_ref().map(|v6| SubnetFields {
            at: format!("{at}/ipv6"),
            cidr: &v6.cidr,
            gateway: v6.gateway.as_deref(),
            dns: &v6.dns,
            pool: v6.pool.as_ref(),
            dhcp_range: v6.dhcp_range.as_ref(),
            relay: v6.relay.as_ref(),
            interface: v6.interface.as_deref(),
        });
        if n.cidr.is_none() {
            let stray = [
                ("gateway", n.gateway.is_some()),
                ("dns", !n.dns.is_empty()),
                ("pool", n.pool.is_some()),
                ("dhcpRange", n.dhcp_range.is_some()),
                ("relay", n.relay.is_some()),
            ];
            if let Some((field, _)) = stray.iter().find(|(_, set)| *set) {
                diags.push(site.error(
                    &format!("{at}/{field}"),
                    false,
                    format!(
                        "network `{}` has no IPv4 `cidr`, so `{field}` belongs under `ipv6:`",
                        n.name
                    ),
                ));
                continue;
            }
        }
        let v4 = v4.map(|f| subnet(site, f, Family::V4, diags));
        let v6 = v6.map(|f| subnet(site, f, Family::V6, diags));
        let kea = site
            .object
            .spec
            .dhcp
            .as_ref()
            .is_some_and(|d| d.servers.contains(&DhcpServer::Kea));
        if let Some(Some(s)) = &v6 {
            if kea && s.relay.is_none() && s.interface.is_none() {
                diags.push(site.error(
                    &format!("{at}/ipv6"),
                    false,
                    format!(
                        "network `{}` is served by Kea over DHCPv6 directly, and Kea picks a DHCPv6 subnet by the interface a request arrives on: set `ipv6.interface` to the DHCP server's interface on it (or `ipv6.relay` for a routed one)",
                        n.name
                    ),
                ));
                continue;
            }
        }
        // A side that was written but is wrong has been reported.
        if matches!(v4, Some(None)) || matches!(v6, Some(None)) {
            continue;
        }
        let network = NetworkModel {
            name: n.name.to_string(),
            vlan: n.vlan,
            v4: v4.flatten(),
            v6: v6.flatten(),
        };
        let overlap = network.subnets().find_map(|s| {
            let other = out
                .iter()
                .find_map(|o| o.subnets().find(|t| t.net.overlaps(&s.net)).map(|t| (o, t)));
            other.map(|(o, t)| (s, o, t))
        });
        if let Some((s, o, t)) = overlap {
            let pointer = match s.net.family() {
                Family::V4 => format!("{at}/cidr"),
                Family::V6 => format!("{at}/ipv6/cidr"),
            };
            diags.push(site.error(
                &pointer,
                false,
                format!("network {} overlaps network `{}` ({})", s.net, o.name, t.net),
            ));
            continue;
        }
        out.push(network);
    }
    out
}
