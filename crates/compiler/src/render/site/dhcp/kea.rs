//! Kea's configs: `dhcp/kea-dhcp4.json` and, for IPv6 networks,
//! `dhcp/kea-dhcp6.json`.
use serde_json::{json, Value};

use super::{boot6, joined, subnets, Boot, Reservation};
use crate::render::settings::Dhcp;
use crate::resolve::net::Family;
use crate::resolve::networks::Subnet;
use crate::resolve::site::SiteModel;

pub(super) fn config4(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
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

pub(super) fn config6(site: &SiteModel, boot: &Boot, reservations: &[Reservation], dhcp: &Dhcp) -> String {
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
            "interfaces-config": {"interfaces": interfaces6(site, dhcp)},
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
fn interfaces6(site: &SiteModel, dhcp: &Dhcp) -> Vec<String> {
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
