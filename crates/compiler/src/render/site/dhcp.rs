//! DHCP server configs for a site: dnsmasq, Kea and ISC dhcpd, each
//! handing out the same thing. iPXE clients (user class `iPXE`, option 175)
//! get the HTTP URL of the site menu; UEFI HTTP-boot clients the HTTP URL
//! of `ipxe.efi`; UEFI PXE clients `ipxe.efi` and legacy BIOS clients
//! `undionly.kpxe` over TFTP. Every machine's address is reserved by MAC
//! with its host name; unknown machines lease from `dhcpRange`.

use serde_json::{json, Value};

use crate::load::kinds::DhcpServer;
use crate::render::settings::Dhcp;
use crate::resolve::site::SiteModel;

/// What every DHCP config needs, worked out once.
struct Boot {
    menu_url: String,
    http_boot_url: String,
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

pub(super) fn render(server: DhcpServer, site: &SiteModel, dhcp: &Dhcp) -> (String, String) {
    let set = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let explicit_tftp = set(&dhcp.tftp_server);
    let boot = Boot {
        menu_url: format!("{}/menu.ipxe", site.boot_server.trim_end_matches('/')),
        http_boot_url: set(&dhcp.http_boot_url)
            .unwrap_or_else(|| format!("{}/artifacts/ipxe/ipxe.efi", site.boot_server.trim_end_matches('/'))),
        tftp_explicit: explicit_tftp.is_some(),
        tftp_server: explicit_tftp.or_else(|| site.boot_server_ip.map(|ip| ip.to_string())),
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
         # Who is asking: iPXE, UEFI HTTP boot, UEFI PXE or legacy BIOS PXE.\n\
         dhcp-userclass=set:ipxe,iPXE\n\
         dhcp-match=set:ipxe,175\n\
         dhcp-vendorclass=set:efi-http,HTTPClient\n\
         dhcp-match=set:efi-x64,option:client-arch,7\n\
         dhcp-match=set:efi-x64,option:client-arch,9\n\
         \n\
         dhcp-boot=tag:ipxe,{menu}\n\
         dhcp-option-force=tag:efi-http,tag:!ipxe,60,HTTPClient\n\
         dhcp-boot=tag:efi-http,tag:!ipxe,{http}\n\
         dhcp-boot=tag:efi-x64,tag:!efi-http,tag:!ipxe,ipxe.efi{next}\n\
         dhcp-boot=tag:!efi-x64,tag:!efi-http,tag:!ipxe,undionly.kpxe{next}\n",
        domain = site.domain,
        menu = boot.menu_url,
        http = boot.http_boot_url,
    ));
    for n in &site.networks {
        out.push_str(&format!("\n# Network {} ({})\n", n.name, n.net));
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
            json!({
                "id": i + 1,
                "subnet": n.net.to_string(),
                "pools": pools,
                "option-data": options,
                "reservations": hosts,
            })
        })
        .collect();
    let config = json!({
        "Dhcp4": {
            "interfaces-config": {"interfaces": dhcp.interfaces},
            "lease-database": {"type": "memfile", "persist": true, "name": dhcp.kea_lease_file, "lfc-interval": 3600},
            "valid-lifetime": boot.lease_time,
            "authoritative": true,
            "client-classes": [
                {
                    "name": "ipxe",
                    "test": "substring(option[77].hex,0,4) == 'iPXE'",
                    "boot-file-name": boot.menu_url,
                },
                {
                    "name": "efi-http",
                    "test": format!("{not_ipxe} and substring(option[60].hex,0,10) == 'HTTPClient'"),
                    "boot-file-name": boot.http_boot_url,
                    "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
                },
                {
                    "name": "efi-x64",
                    "test": format!("{not_ipxe} and not member('efi-http') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)"),
                    "next-server": tftp,
                    "boot-file-name": "ipxe.efi",
                },
                {
                    "name": "bios",
                    "test": format!("{not_ipxe} and not member('efi-http') and option[93].hex == 0x0000"),
                    "next-server": tftp,
                    "boot-file-name": "undionly.kpxe",
                },
            ],
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
         # Who is asking: iPXE, UEFI HTTP boot, UEFI PXE or legacy BIOS PXE.\n\
         if exists user-class and option user-class = \"iPXE\" {{\n\
         \x20 filename \"{menu}\";\n\
         }} elsif substring (option vendor-class-identifier, 0, 10) = \"HTTPClient\" {{\n\
         \x20 option vendor-class-identifier \"HTTPClient\";\n\
         \x20 filename \"{http}\";\n\
         }} elsif option client-arch = 00:07 or option client-arch = 00:09 {{\n\
         {next}\x20 filename \"ipxe.efi\";\n\
         }} else {{\n\
         {next}\x20 filename \"undionly.kpxe\";\n\
         }}\n",
        lease = boot.lease_time,
        domain = site.domain,
        menu = boot.menu_url,
        http = boot.http_boot_url,
    ));
    for n in &site.networks {
        out.push_str(&format!(
            "\n# Network {}\nsubnet {} netmask {} {{\n",
            n.name,
            n.net.addr,
            n.net.netmask()
        ));
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
