//! DHCP server configs for a site: dnsmasq, Kea and ISC dhcpd, each
//! handing out the same thing. iPXE clients (user class `iPXE`, option 175)
//! get the HTTP URL of the site menu; every other client gets the iPXE
//! build of its firmware architecture (option 93): UEFI HTTP-boot clients
//! its HTTP URL, PXE clients its path over TFTP, and an architecture the
//! site has no build for nothing (see `ipxe.rs`). Every machine's address
//! is reserved by MAC with its host name; unknown machines lease from
//! `dhcpRange`.
//!
//! IPv6 networks get the same over DHCPv6 (RFC 5970): dnsmasq serves both
//! families from one config, Kea and dhcpd from a second one
//! (`kea-dhcp6.json`, `dhcpd6.conf`). DHCPv6 has no next-server, so the
//! boot file is always a URL (option 59), chosen by the client
//! architecture (option 61) or iPXE's user class (option 15).

use std::net::IpAddr;

use super::ipxe::{self, Served};
use crate::diag::Diagnostics;
use crate::load::kinds::DhcpServer;
use crate::render::settings::Dhcp;
use crate::resolve::net::Family;
use crate::resolve::networks::Subnet;
use crate::resolve::site::SiteModel;

mod dnsmasq;
mod isc;
mod kea;

/// What every DHCP config needs, worked out once.
struct Boot {
    menu_url: String,
    builds: Vec<Served>,
    /// "Boots ...; not ..." for the configs' comments.
    support: String,
    /// TFTP server for Kea and dhcpd, and for dnsmasq when set explicitly.
    tftp_server: Option<String>,
    tftp_explicit: bool,
    lease_time: u64,
}

/// A reserved interface: host name, MAC, its addresses.
struct Reservation {
    host: String,
    mac: String,
    ip: Option<IpAddr>,
    ip6: Option<IpAddr>,
    network: usize,
}

/// What a DHCPv6 client of some architectures is handed in option 59.
pub(crate) struct Boot6 {
    /// The class (tag) of its clients.
    pub tag: String,
    pub firmware: ipxe::Firmware,
    /// UEFI HTTP boot, rather than PXE over TFTP.
    pub http: bool,
    pub arches: Vec<u16>,
    pub url: String,
    pub sha256: String,
}

/// The DHCPv6 boot files, by architecture: each build's HTTP boot URL, and
/// for PXE its path as a `tftp://` URL when the site has an IPv6 TFTP
/// server (`values.dhcp.tftpServer6`, or the boot server's address).
pub(crate) fn boot6(site: &SiteModel, builds: &[Served], dhcp: &Dhcp) -> Vec<Boot6> {
    let tftp6 = [dhcp.tftp_server6.parse::<IpAddr>().ok(), site.boot_server_ip]
        .into_iter()
        .flatten()
        .find(|ip| ip.is_ipv6());
    let mut rules = Vec::new();
    for served in builds {
        let f = served.build.firmware;
        let sha256 = served.build.sha256.clone();
        if let (Some(arch), Some(url)) = (f.http_arch(), &served.http_url) {
            rules.push(Boot6 {
                tag: format!("{}-http-v6", f.tag()),
                firmware: f,
                http: true,
                arches: vec![arch],
                url: url.clone(),
                sha256: sha256.clone(),
            });
        }
        // Legacy BIOS has no DHCPv6 PXE.
        if let (Some(tftp), false) = (tftp6, f.pxe_arches() == [0]) {
            rules.push(Boot6 {
                tag: format!("{}-v6", f.tag()),
                firmware: f,
                http: false,
                arches: f.pxe_arches().to_vec(),
                url: format!("tftp://[{tftp}]/{}", served.build.path),
                sha256,
            });
        }
    }
    rules
}

/// The subnets of one family, with their network's index and name.
fn subnets<'a>(site: &'a SiteModel, family: Family) -> impl Iterator<Item = (usize, &'a str, &'a Subnet)> + 'a {
    site.networks
        .iter()
        .enumerate()
        .filter_map(move |(i, n)| n.subnet(family).map(|s| (i, n.name.as_str(), s)))
}

/// For a network behind a relay, comment lines saying how the server
/// (`picks`: "dnsmasq picks this range") finds its requests.
fn relay_comment(n: &Subnet, picks: &str) -> String {
    match (n.relay, n.net.family()) {
        (None, _) => String::new(),
        (Some(relay), Family::V4) => format!(
            "# Reached through the DHCP relay at {relay}: {picks} by the\n# relay's address (giaddr) in the requests it forwards.\n"
        ),
        (Some(relay), Family::V6) => format!(
            "# Reached through the DHCPv6 relay at {relay}: {picks} by the\n# link-address of the requests it forwards.\n"
        ),
    }
}

fn joined(addresses: &[IpAddr], separator: &str) -> String {
    addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

/// The URL iPXE clients are handed.
pub(crate) fn menu_url(site: &SiteModel) -> String {
    format!("{}/menu.ipxe", site.boot_server.trim_end_matches('/'))
}

/// The TFTP server IPv4 PXE clients are sent to (`next-server`): the
/// setting, or the boot server's address when it is an IPv4 one.
pub(crate) fn tftp_server(site: &SiteModel, dhcp: &Dhcp) -> Option<String> {
    tftp_setting(dhcp)
        .map(str::to_string)
        .or_else(|| site.boot_server_ip.filter(IpAddr::is_ipv4).map(|ip| ip.to_string()))
}

/// `values.dhcp.tftpServer`, when set to an IPv4 server.
fn tftp_setting(dhcp: &Dhcp) -> Option<&str> {
    Some(dhcp.tftp_server.as_str()).filter(|s| !s.is_empty() && !s.contains(':'))
}

/// A DHCPv6 relay forwards to a unicast address, and kea-dhcp6 receives on
/// one only when told (`kea::interfaces6`): a relayed IPv6 network, with
/// no `values.dhcp.interfaces6` and no network with `ipv6.interface`
/// holding the boot server's IPv6 address, would never be answered.
pub(super) fn kea_relay_problem(site: &SiteModel, dhcp: &Dhcp) -> Option<Diagnostics> {
    if !dhcp.interfaces6.is_empty() {
        return None;
    }
    let unicast = site.networks.iter().any(|n| {
        n.v6.as_ref()
            .is_some_and(|s| s.interface.is_some() && site.boot_server_ip.is_some_and(|ip| s.net.contains(ip)))
    });
    let (i, n) = site
        .networks
        .iter()
        .enumerate()
        .find(|(_, n)| n.v6.as_ref().is_some_and(|s| s.relay.is_some()))?;
    (!unicast).then(|| {
        Diagnostics::from(site.input.error(
            &format!("/spec/networks/{i}/ipv6/relay"),
            false,
            format!(
                "network `{}` is reached through a DHCPv6 relay, and Kea takes relayed requests only on a unicast address it listens on: \
                 kiln uses the boot server's IPv6 address, on the network that holds it, and no network with `ipv6.interface` holds one; \
                 declare the server's own network (`ipv6: {{cidr: ..., interface: ...}}`) and name the executor by that address, \
                 or set `values.dhcp.interfaces6` (e.g. [\"eth0/2001:db8::2\"])",
                n.name
            ),
        ))
    })
}

/// The files of one server: `(path, text)`.
pub(super) fn render(server: DhcpServer, site: &SiteModel, dhcp: &Dhcp) -> Vec<(String, String)> {
    let served = ipxe::served(site, dhcp);
    let boot = Boot {
        menu_url: menu_url(site),
        support: ipxe::support(&served),
        builds: served,
        tftp_explicit: tftp_setting(dhcp).is_some(),
        tftp_server: tftp_server(site, dhcp),
        lease_time: dhcp.lease_time,
    };
    let reservations: Vec<Reservation> = site
        .machines
        .iter()
        .flat_map(|m| {
            m.interfaces.iter().enumerate().map(move |(i, iface)| Reservation {
                host: if i == 0 {
                    m.name().to_string()
                } else {
                    format!("{}-eth{i}", m.name())
                },
                mac: iface.mac.clone(),
                ip: iface.ip,
                ip6: iface.ip6,
                network: iface.network,
            })
        })
        .collect();
    let has_v6 = subnets(site, Family::V6).next().is_some();
    // A site without networks still gets its (empty) IPv4 configs.
    let has_v4 = subnets(site, Family::V4).next().is_some() || !has_v6;
    let mut files = Vec::new();
    match server {
        DhcpServer::Dnsmasq => files.push((
            "dhcp/dnsmasq.conf".into(),
            dnsmasq::config(site, &boot, &reservations, dhcp),
        )),
        DhcpServer::Kea => {
            if has_v4 {
                files.push((
                    "dhcp/kea-dhcp4.json".into(),
                    kea::config4(site, &boot, &reservations, dhcp),
                ));
            }
            if has_v6 {
                files.push((
                    "dhcp/kea-dhcp6.json".into(),
                    kea::config6(site, &boot, &reservations, dhcp),
                ));
            }
        }
        DhcpServer::Isc => {
            if has_v4 {
                files.push(("dhcp/dhcpd.conf".into(), isc::config4(site, &boot, &reservations)));
            }
            if has_v6 {
                files.push((
                    "dhcp/dhcpd6.conf".into(),
                    isc::config6(site, &boot, &reservations, dhcp),
                ));
            }
        }
    }
    files
}

fn header(comment: &str, site: &SiteModel) -> String {
    format!(
        "{comment} DHCP for site {name}, rendered by kiln from sites/{name}/.\n\
         {comment} Do not edit: change the inputs and run `kiln render`.\n",
        name = site.name()
    )
}
