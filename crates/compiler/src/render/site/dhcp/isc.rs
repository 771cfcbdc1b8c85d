//! ISC dhcpd's configs: `dhcp/dhcpd.conf` and, for IPv6 networks,
//! `dhcp/dhcpd6.conf` (`dhcpd -6`).
use super::{boot6, header, joined, relay_comment, subnets, Boot, Reservation};
use crate::render::settings::Dhcp;
use crate::resolve::net::Family;
use crate::resolve::site::SiteModel;

pub(super) fn config4(site: &SiteModel, boot: &Boot, reservations: &[Reservation]) -> String {
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
        out.push_str(&relay_comment(n, "dhcpd picks this subnet"));
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

pub(super) fn config6(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
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
        out.push_str(&relay_comment(n, "dhcpd picks this subnet"));
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
