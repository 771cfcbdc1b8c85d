//! dnsmasq's config: one file for both families (`dhcp/dnsmasq.conf`),
//! with its TFTP server for PXE clients.
use super::{boot6, header, joined, relay_comment, subnets, Boot, Reservation};
use crate::render::settings::Dhcp;
use crate::resolve::net::Family;
use crate::resolve::site::SiteModel;

pub(super) fn config(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
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
        out.push_str(&relay_comment(n, "dnsmasq picks this range"));
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
        out.push_str(&relay_comment(n, "dnsmasq picks this range"));
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
