//! DHCP server configs for a site: dnsmasq, Kea and ISC dhcpd, each
//! handing out the same thing. iPXE clients (user class `iPXE`, option 175)
//! get the HTTP URL of the site menu; every other client gets the iPXE
//! build of its firmware architecture (option 93): UEFI HTTP-boot clients
//! its HTTP URL, PXE clients its path over TFTP, and an architecture the
//! site has no build for nothing (see `ipxe.rs`). Every machine's address
//! is reserved by MAC with its host name; unknown machines lease from
//! `dhcpRange`.

use serde_json::{json, Value};

use super::ipxe::{self, Served};
use crate::load::kinds::DhcpServer;
use crate::render::settings::Dhcp;
use crate::resolve::site::SiteModel;

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

/// A reserved address: host name, MAC, IP.
struct Reservation {
    host: String,
    mac: String,
    ip: String,
    network: usize,
}

/// The URL iPXE clients are handed.
pub(crate) fn menu_url(site: &SiteModel) -> String {
    format!("{}/menu.ipxe", site.boot_server.trim_end_matches('/'))
}

/// The TFTP server PXE clients are sent to (`next-server`).
pub(crate) fn tftp_server(site: &SiteModel, dhcp: &Dhcp) -> Option<String> {
    Some(dhcp.tftp_server.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| site.boot_server_ip.map(|ip| ip.to_string()))
}

pub(super) fn render(server: DhcpServer, site: &SiteModel, dhcp: &Dhcp) -> (String, String) {
    let served = ipxe::served(site, dhcp);
    let boot = Boot {
        menu_url: menu_url(site),
        support: ipxe::support(&served),
        builds: served,
        tftp_explicit: !dhcp.tftp_server.is_empty(),
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
                ip: iface.ip.to_string(),
                network: iface.network,
            })
        })
        .collect();
    match server {
        DhcpServer::Dnsmasq => ("dhcp/dnsmasq.conf".into(), dnsmasq(site, &boot, &reservations, dhcp)),
        DhcpServer::Kea => ("dhcp/kea-dhcp4.json".into(), kea(site, &boot, &reservations, dhcp)),
        DhcpServer::Isc => ("dhcp/dhcpd.conf".into(), isc(site, &boot, &reservations)),
    }
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
    for n in &site.networks {
        out.push_str(&format!("\n# Network {} ({})\n", n.name, n.net));
        if let Some(relay) = n.relay {
            out.push_str(&format!(
                "# Reached through the DHCP relay at {relay}: dnsmasq picks this range by the\n# relay's address (giaddr) in the requests it forwards.\n"
            ));
        }
        match n.dhcp_range {
            Some(r) => out.push_str(&format!(
                "dhcp-range=set:{},{},{},{},{}\n",
                n.name,
                r.start,
                r.end,
                n.net.netmask(),
                boot.lease_time
            )),
            None => out.push_str(&format!(
                "dhcp-range=set:{},{},static,{}\n",
                n.name,
                n.net.addr,
                n.net.netmask()
            )),
        }
        if let Some(gw) = n.gateway {
            out.push_str(&format!("dhcp-option=tag:{},option:router,{gw}\n", n.name));
        }
        if !n.dns.is_empty() {
            let dns: Vec<String> = n.dns.iter().map(|d| d.to_string()).collect();
            out.push_str(&format!(
                "dhcp-option=tag:{},option:dns-server,{}\n",
                n.name,
                dns.join(",")
            ));
        }
    }
    out.push_str("\n# Machines: addresses reserved by MAC.\n");
    for r in reservations {
        out.push_str(&format!("dhcp-host={},{},{},infinite\n", r.mac, r.ip, r.host));
    }
    out
}

fn kea(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
    let tftp = boot.tftp_server.clone().unwrap_or_default();
    let not_ipxe = "not member('ipxe')";
    let subnets: Vec<Value> = site
        .networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut options = vec![json!({"name": "domain-name", "data": site.domain})];
            if let Some(gw) = n.gateway {
                options.push(json!({"name": "routers", "data": gw.to_string()}));
            }
            if !n.dns.is_empty() {
                let dns: Vec<String> = n.dns.iter().map(|d| d.to_string()).collect();
                options.push(json!({"name": "domain-name-servers", "data": dns.join(", ")}));
            }
            let pools: Vec<Value> = n
                .dhcp_range
                .iter()
                .map(|r| json!({"pool": format!("{} - {}", r.start, r.end)}))
                .collect();
            let hosts: Vec<Value> = reservations
                .iter()
                .filter(|r| r.network == i)
                .map(|r| json!({"hw-address": r.mac, "ip-address": r.ip, "hostname": r.host}))
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
    for n in &site.networks {
        out.push_str(&format!("\n# Network {}\n", n.name));
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
            let dns: Vec<String> = n.dns.iter().map(|d| d.to_string()).collect();
            out.push_str(&format!("  option domain-name-servers {};\n", dns.join(", ")));
        }
        out.push_str("}\n");
    }
    out.push_str("\n# Machines: addresses reserved by MAC.\n");
    for r in reservations {
        out.push_str(&format!(
            "host {host} {{\n  hardware ethernet {mac};\n  fixed-address {ip};\n  option host-name \"{host}\";\n}}\n",
            host = r.host,
            mac = r.mac,
            ip = r.ip
        ));
    }
    out
}
