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

use serde_json::{json, Value};

use super::ipxe::{self, Served};
use crate::load::kinds::DhcpServer;
use crate::render::settings::Dhcp;
use crate::resolve::net::Family;
use crate::resolve::site::{SiteModel, Subnet};

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
    Some(dhcp.tftp_server.clone())
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .or_else(|| site.boot_server_ip.filter(IpAddr::is_ipv4).map(|ip| ip.to_string()))
}

/// The files of one server: `(path, text)`.
pub(super) fn render(server: DhcpServer, site: &SiteModel, dhcp: &Dhcp) -> Vec<(String, String)> {
    let served = ipxe::served(site, dhcp);
    let boot = Boot {
        menu_url: menu_url(site),
        support: ipxe::support(&served),
        builds: served,
        tftp_explicit: !dhcp.tftp_server.is_empty() && !dhcp.tftp_server.contains(':'),
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
        DhcpServer::Dnsmasq => files.push(("dhcp/dnsmasq.conf".into(), dnsmasq(site, &boot, &reservations, dhcp))),
        DhcpServer::Kea => {
            if has_v4 {
                files.push(("dhcp/kea-dhcp4.json".into(), kea(site, &boot, &reservations, dhcp)));
            }
            if has_v6 {
                files.push(("dhcp/kea-dhcp6.json".into(), kea6(site, &boot, &reservations, dhcp)));
            }
        }
        DhcpServer::Isc => {
            if has_v4 {
                files.push(("dhcp/dhcpd.conf".into(), isc(site, &boot, &reservations)));
            }
            if has_v6 {
                files.push(("dhcp/dhcpd6.conf".into(), isc6(site, &boot, &reservations, dhcp)));
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

fn dnsmasq(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
    let mut out = header("#", site);
    let tftp_root = &dhcp.tftp_root;
    let next = match (&boot.tftp_server, boot.tftp_explicit) {
        (Some(ip), true) => format!(",,{ip}"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "# DHCP and TFTP only: DNS is served from the rendered zones.\n\
         port=0\n\
         dhcp-authoritative\n\
         log-dhcp\n\
         enable-tftp\n\
         tftp-root={tftp_root}\n\
         domain={domain}\n\
         \n\
         # Who is asking: iPXE, or a firmware by architecture (option 93),\n\
         # over UEFI HTTP boot or PXE.\n\
         {support}\
         dhcp-userclass=set:ipxe,iPXE\n\
         dhcp-match=set:ipxe,175\n\
         dhcp-vendorclass=set:efi-http,HTTPClient\n",
        domain = site.domain,
        support = boot.support,
    ));
    for served in &boot.builds {
        let f = served.build.firmware;
        for arch in f.pxe_arches() {
            out.push_str(&format!("dhcp-match=set:{},option:client-arch,{arch}\n", f.tag()));
        }
        if let (Some(arch), Some(_)) = (f.http_arch(), &served.http_url) {
            out.push_str(&format!("dhcp-match=set:{}-http,option:client-arch,{arch}\n", f.tag()));
        }
    }
    out.push_str(&format!(
        "\ndhcp-boot=tag:ipxe,{menu}\ndhcp-option-force=tag:efi-http,tag:!ipxe,60,HTTPClient\n",
        menu = boot.menu_url
    ));
    for served in &boot.builds {
        let tag = served.build.firmware.tag();
        if let Some(url) = &served.http_url {
            out.push_str(&format!("dhcp-boot=tag:{tag}-http,tag:efi-http,tag:!ipxe,{url}\n"));
        }
        out.push_str(&format!(
            "dhcp-boot=tag:{tag},tag:!efi-http,tag:!ipxe,{}{next}\n",
            served.build.path
        ));
    }
    for (_, name, n) in subnets(site, Family::V4) {
        out.push_str(&format!("\n# Network {name} ({})\n", n.net));
        if let Some(relay) = n.relay {
            out.push_str(&format!(
                "# Reached through the DHCP relay at {relay}: dnsmasq picks this range by the\n# relay's address (giaddr) in the requests it forwards.\n"
            ));
        }
        match n.dhcp_range {
            Some(r) => out.push_str(&format!(
                "dhcp-range=set:{name},{},{},{},{}\n",
                r.start,
                r.end,
                n.net.netmask(),
                boot.lease_time
            )),
            None => out.push_str(&format!(
                "dhcp-range=set:{name},{},static,{}\n",
                n.net.addr,
                n.net.netmask()
            )),
        }
        if let Some(gw) = n.gateway {
            out.push_str(&format!("dhcp-option=tag:{name},option:router,{gw}\n"));
        }
        if !n.dns.is_empty() {
            out.push_str(&format!(
                "dhcp-option=tag:{name},option:dns-server,{}\n",
                joined(&n.dns, ",")
            ));
        }
    }
    if subnets(site, Family::V6).next().is_some() {
        out.push_str(&format!(
            "\n# DHCPv6: the boot file is a URL (option 59), by client architecture\n\
             # (option 61; iPXE by its user class). The default route comes from the\n\
             # routers' advertisements, not from DHCPv6.\n\
             dhcp-option=tag:ipxe,option6:bootfile-url,{}\n",
            boot.menu_url
        ));
        for rule in boot6(site, &boot.builds, dhcp) {
            for arch in &rule.arches {
                out.push_str(&format!(
                    "dhcp-match=set:{},option6:61,{:02x}:{:02x}\n",
                    rule.tag,
                    arch >> 8,
                    arch & 0xff
                ));
            }
            out.push_str(&format!(
                "dhcp-option=tag:{},tag:!ipxe,option6:bootfile-url,{}\n",
                rule.tag, rule.url
            ));
        }
    }
    for (_, name, n) in subnets(site, Family::V6) {
        out.push_str(&format!("\n# Network {name}, IPv6 ({})\n", n.net));
        if let Some(relay) = n.relay {
            out.push_str(&format!(
                "# Reached through the DHCPv6 relay at {relay}: dnsmasq picks this range by the\n# link-address of the requests it forwards.\n"
            ));
        }
        match n.dhcp_range {
            Some(r) => out.push_str(&format!(
                "dhcp-range=set:{name},{},{},{},{}\n",
                r.start, r.end, n.net.prefix, boot.lease_time
            )),
            None => out.push_str(&format!(
                "dhcp-range=set:{name},{},static,{}\n",
                n.net.addr, n.net.prefix
            )),
        }
        if !n.dns.is_empty() {
            let dns: Vec<String> = n.dns.iter().map(|d| format!("[{d}]")).collect();
            out.push_str(&format!(
                "dhcp-option=tag:{name},option6:dns-server,{}\n",
                dns.join(",")
            ));
        }
    }
    out.push_str("\n# Machines: addresses reserved by MAC.\n");
    for r in reservations {
        let v4 = r.ip.map(|ip| format!("{ip},")).unwrap_or_default();
        let v6 = r.ip6.map(|ip| format!("[{ip}],")).unwrap_or_default();
        out.push_str(&format!("dhcp-host={},{v4}{v6}{},infinite\n", r.mac, r.host));
    }
    out
}

fn kea(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
    let tftp = boot.tftp_server.clone().unwrap_or_default();
    let not_ipxe = "not member('ipxe')";
    let subnets: Vec<Value> = subnets(site, Family::V4)
        .map(|(i, _, n)| {
            let mut options = vec![json!({"name": "domain-name", "data": site.domain})];
            if let Some(gw) = n.gateway {
                options.push(json!({"name": "routers", "data": gw.to_string()}));
            }
            if !n.dns.is_empty() {
                options.push(json!({"name": "domain-name-servers", "data": joined(&n.dns, ", ")}));
            }
            let hosts: Vec<Value> = reservations
                .iter()
                .filter(|r| r.network == i)
                .filter_map(|r| Some(json!({"hw-address": r.mac, "ip-address": r.ip?.to_string(), "hostname": r.host})))
                .collect();
            kea_subnet(i, n, options, hosts)
        })
        .collect();
    let arch = |a: &u16| format!("option[93].hex == 0x{a:04x}");
    let mut classes = vec![
        json!({
            "name": "ipxe",
            "test": "substring(option[77].hex,0,4) == 'iPXE'",
            "boot-file-name": boot.menu_url,
        }),
        json!({
            "name": "efi-http",
            "test": format!("{not_ipxe} and substring(option[60].hex,0,10) == 'HTTPClient'"),
            "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
        }),
    ];
    for served in &boot.builds {
        let f = served.build.firmware;
        if let (Some(a), Some(url)) = (f.http_arch(), &served.http_url) {
            classes.push(json!({
                "name": format!("{}-http", f.tag()),
                "test": format!("member('efi-http') and {}", arch(&a)),
                "boot-file-name": url,
            }));
        }
        let arches: Vec<String> = f.pxe_arches().iter().map(arch).collect();
        classes.push(json!({
            "name": f.tag(),
            "test": format!("{not_ipxe} and not member('efi-http') and ({})", arches.join(" or ")),
            "next-server": tftp,
            "boot-file-name": served.build.path,
        }));
    }
    let config = json!({
        "Dhcp4": {
            "interfaces-config": {"interfaces": dhcp.interfaces},
            "lease-database": {"type": "memfile", "persist": true, "name": dhcp.kea_lease_file, "lfc-interval": 3600},
            "valid-lifetime": boot.lease_time,
            "authoritative": true,
            "client-classes": classes,
            "subnet4": subnets,
        }
    });
    let mut text = serde_json::to_string_pretty(&config).expect("configs serialize");
    text.push('\n');
    text
}

fn isc(site: &SiteModel, boot: &Boot, reservations: &[Reservation]) -> String {
    let mut out = header("#", site);
    let next = boot
        .tftp_server
        .as_ref()
        .map(|ip| format!("  next-server {ip};\n"))
        .unwrap_or_default();
    out.push_str(&format!(
        "authoritative;\n\
         default-lease-time {lease};\n\
         max-lease-time {lease};\n\
         option domain-name \"{domain}\";\n\
         option client-arch code 93 = unsigned integer 16;\n\
         \n\
         # Who is asking: iPXE, or a firmware by architecture (option 93),\n\
         # over UEFI HTTP boot or PXE.\n\
         {support}\
         if exists user-class and option user-class = \"iPXE\" {{\n\
         \x20 filename \"{menu}\";\n\
         }} elsif substring (option vendor-class-identifier, 0, 10) = \"HTTPClient\" {{\n\
         \x20 option vendor-class-identifier \"HTTPClient\";\n",
        lease = boot.lease_time,
        domain = site.domain,
        menu = boot.menu_url,
        support = boot.support,
    ));
    let arch = |a: &u16| format!("option client-arch = {:02x}:{:02x}", a >> 8, a & 0xff);
    let http: Vec<(String, &str)> = boot
        .builds
        .iter()
        .filter_map(|s| Some((arch(&s.build.firmware.http_arch()?), s.http_url.as_deref()?)))
        .collect();
    for (i, (test, url)) in http.iter().enumerate() {
        let keyword = if i == 0 { "if" } else { "} elsif" };
        out.push_str(&format!("  {keyword} {test} {{\n    filename \"{url}\";\n"));
    }
    if !http.is_empty() {
        out.push_str("  }\n");
    }
    for served in &boot.builds {
        let tests: Vec<String> = served.build.firmware.pxe_arches().iter().map(arch).collect();
        out.push_str(&format!(
            "}} elsif {} {{\n{next}  filename \"{}\";\n",
            tests.join(" or "),
            served.build.path
        ));
    }
    out.push_str("}\n");
    for (_, name, n) in subnets(site, Family::V4) {
        out.push_str(&format!("\n# Network {name}\n"));
        if let Some(relay) = n.relay {
            out.push_str(&format!(
                "# Reached through the DHCP relay at {relay}: dhcpd picks this subnet by the\n# relay's address (giaddr) in the requests it forwards.\n"
            ));
        }
        out.push_str(&format!("subnet {} netmask {} {{\n", n.net.addr, n.net.netmask()));
        if let Some(r) = n.dhcp_range {
            out.push_str(&format!("  range {} {};\n", r.start, r.end));
        }
        if let Some(gw) = n.gateway {
            out.push_str(&format!("  option routers {gw};\n"));
        }
        if !n.dns.is_empty() {
            out.push_str(&format!("  option domain-name-servers {};\n", joined(&n.dns, ", ")));
        }
        out.push_str("}\n");
    }
    out.push_str("\n# Machines: addresses reserved by MAC.\n");
    for r in reservations {
        if let Some(ip) = r.ip {
            out.push_str(&format!(
                "host {host} {{\n  hardware ethernet {mac};\n  fixed-address {ip};\n  option host-name \"{host}\";\n}}\n",
                host = r.host,
                mac = r.mac,
            ));
        }
    }
    out
}

/// A Kea subnet (either family), selected by its relay's address when it
/// is behind one.
fn kea_subnet(i: usize, n: &Subnet, options: Vec<Value>, hosts: Vec<Value>) -> Value {
    let pools: Vec<Value> = n
        .dhcp_range
        .iter()
        .map(|r| json!({"pool": format!("{} - {}", r.start, r.end)}))
        .collect();
    let mut subnet = json!({
        "id": i + 1,
        "subnet": n.net.to_string(),
        "pools": pools,
        "option-data": options,
        "reservations": hosts,
    });
    if let Some(relay) = n.relay {
        subnet["relay"] = json!({"ip-addresses": [relay.to_string()]});
    }
    subnet
}

fn kea6(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
    let subnets: Vec<Value> = subnets(site, Family::V6)
        .map(|(i, _, n)| {
            let mut options = vec![json!({"name": "domain-search", "data": site.domain})];
            if !n.dns.is_empty() {
                options.push(json!({"name": "dns-servers", "data": joined(&n.dns, ", ")}));
            }
            let hosts: Vec<Value> = reservations
                .iter()
                .filter(|r| r.network == i)
                .filter_map(|r| {
                    Some(json!({"hw-address": r.mac, "ip-addresses": [r.ip6?.to_string()], "hostname": r.host}))
                })
                .collect();
            let mut subnet = kea_subnet(i, n, options, hosts);
            // A DHCPv6 request that was not relayed comes from a link-local
            // address: Kea picks its subnet by the interface it arrived on.
            if let (None, Some(interface)) = (n.relay, &n.interface) {
                subnet["interface"] = json!(interface);
            }
            subnet
        })
        .collect();
    let mut classes = vec![json!({
        "name": "ipxe",
        "test": "substring(option[15].hex,2,4) == 'iPXE'",
        "option-data": [{"name": "bootfile-url", "data": boot.menu_url}],
    })];
    for rule in boot6(site, &boot.builds, dhcp) {
        let arches: Vec<String> = rule
            .arches
            .iter()
            .map(|a| format!("option[61].hex == 0x{a:04x}"))
            .collect();
        classes.push(json!({
            "name": rule.tag,
            "test": format!("not member('ipxe') and ({})", arches.join(" or ")),
            "option-data": [{"name": "bootfile-url", "data": rule.url}],
        }));
    }
    let mut config = json!({
        "Dhcp6": {
            "interfaces-config": {"interfaces": kea6_interfaces(site, dhcp)},
            "lease-database": {"type": "memfile", "persist": true, "name": dhcp.kea_lease_file6, "lfc-interval": 3600},
            "preferred-lifetime": boot.lease_time,
            "valid-lifetime": boot.lease_time,
            // A reservation names a MAC: Kea finds a client's in its DUID,
            // its link-local address or its relay's RFC 6939 option.
            "host-reservation-identifiers": ["hw-address", "duid"],
            "mac-sources": ["any"],
            "client-classes": classes,
            "subnet6": subnets,
        }
    });
    // Where Kea keeps its DHCPv6 server identifier (DUID), when not in its
    // default /var/lib/kea (the StateDirectory of Debian's unit).
    if !dhcp.kea_data_directory.is_empty() {
        config["Dhcp6"]["data-directory"] = json!(dhcp.kea_data_directory);
    }
    let mut text = serde_json::to_string_pretty(&config).expect("configs serialize");
    text.push('\n');
    text
}

/// Where kea-dhcp6 listens: `values.dhcp.interfaces6`, or the interface of
/// every directly attached IPv6 network. Relays forward to a unicast
/// address, which Kea only receives on when told (`iface/address`): the
/// boot server's IPv6 address, on the network that holds it.
fn kea6_interfaces(site: &SiteModel, dhcp: &Dhcp) -> Vec<String> {
    if !dhcp.interfaces6.is_empty() {
        return dhcp.interfaces6.clone();
    }
    let relayed = subnets(site, Family::V6).any(|(_, _, n)| n.relay.is_some());
    let mut interfaces: Vec<String> = Vec::new();
    for (_, _, n) in subnets(site, Family::V6) {
        let Some(interface) = &n.interface else {
            continue;
        };
        let unicast = site.boot_server_ip.filter(|ip| relayed && n.net.contains(*ip));
        let entry = match unicast {
            Some(ip) => format!("{interface}/{ip}"),
            None => interface.clone(),
        };
        if !interfaces.contains(&entry) {
            interfaces.push(entry);
        }
    }
    if interfaces.is_empty() {
        dhcp.interfaces.clone()
    } else {
        interfaces
    }
}

fn isc6(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
    let mut out = header("#", site);
    out.push_str(&format!(
        "default-lease-time {lease};\n\
         preferred-lifetime {lease};\n\
         option dhcp6.domain-search \"{domain}\";\n\
         # iPXE's user class (option 15), which dhcpd does not name.\n\
         option dhcp6.user-class code 15 = string;\n\
         \n\
         # The boot file is a URL (option 59), by client architecture (option 61).\n\
         if exists dhcp6.user-class and substring(option dhcp6.user-class, 2, 4) = \"iPXE\" {{\n\
         \x20 option dhcp6.bootfile-url \"{menu}\";\n",
        lease = boot.lease_time,
        domain = site.domain,
        menu = boot.menu_url,
    ));
    for rule in boot6(site, &boot.builds, dhcp) {
        let tests: Vec<String> = rule
            .arches
            .iter()
            .map(|a| format!("option dhcp6.client-arch-type = {:02x}:{:02x}", a >> 8, a & 0xff))
            .collect();
        out.push_str(&format!(
            "}} elsif {} {{\n  option dhcp6.bootfile-url \"{}\";\n",
            tests.join(" or "),
            rule.url
        ));
    }
    out.push_str("}\n");
    for (_, name, n) in subnets(site, Family::V6) {
        out.push_str(&format!("\n# Network {name}, IPv6\n"));
        if let Some(relay) = n.relay {
            out.push_str(&format!(
                "# Reached through the DHCPv6 relay at {relay}: dhcpd picks this subnet by the\n# link-address of the requests it forwards.\n"
            ));
        }
        out.push_str(&format!("subnet6 {} {{\n", n.net));
        if let Some(r) = n.dhcp_range {
            out.push_str(&format!("  range6 {} {};\n", r.start, r.end));
        }
        if !n.dns.is_empty() {
            out.push_str(&format!("  option dhcp6.name-servers {};\n", joined(&n.dns, ", ")));
        }
        out.push_str("}\n");
    }
    out.push_str("\n# Machines: addresses reserved by MAC (dhcpd finds it in the client's DUID).\n");
    for r in reservations {
        if let Some(ip) = r.ip6 {
            out.push_str(&format!(
                "host {host}-v6 {{\n  hardware ethernet {mac};\n  fixed-address6 {ip};\n}}\n",
                host = r.host,
                mac = r.mac,
            ));
        }
    }
    out
}
