//! DNS zones for a site: the forward zone of its `domain` (A and AAAA
//! records) and the reverse zones of its networks. IPv4 reverse zones sit
//! on octet boundaries: a /16 gets one `b.a.in-addr.arpa` zone, a /20 gets
//! the /24 zones that hold records, a /26 the /24 that contains it. IPv6
//! reverse zones sit on nibble boundaries in `ip6.arpa`: a /64 gets one
//! zone of 16 nibbles. The SOA serial comes from the IPAM lock and only
//! moves when a zone's records change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::render::settings::Dns;
use crate::resolve::net::{Family, IpNet};
use crate::resolve::site::SiteModel;
use kiln_plan::sha256_hex;

/// A zone's name and content, without its serial yet.
pub(super) struct Zone {
    pub name: String,
    /// Zone text with `{serial}` where the serial goes.
    template: String,
    /// SHA-256 of the zone without its serial.
    pub digest: String,
}

const SERIAL_SLOT: &str = "{serial}";

impl Zone {
    pub(super) fn text(&self, serial: u32) -> String {
        self.template.replace(SERIAL_SLOT, &serial.to_string())
    }
}

/// A resource record: owner, type, data.
type Record = (String, &'static str, String);

struct Soa {
    ttl: u64,
    ns: String,
    hostmaster: String,
    timers: String,
}

fn zone(name: &str, soa: &Soa, records: &[Record]) -> Zone {
    let mut text = format!(
        "; Zone {name}, rendered by kiln. Do not edit: change the inputs and run `kiln render`.\n\
         $ORIGIN {name}.\n\
         $TTL {ttl}\n\
         @\tIN\tSOA\t{ns} {hostmaster} ({SERIAL_SLOT} {timers})\n\
         @\tIN\tNS\t{ns}\n",
        ttl = soa.ttl,
        ns = soa.ns,
        hostmaster = soa.hostmaster,
        timers = soa.timers,
    );
    for (owner, kind, data) in records {
        text.push_str(&format!("{owner}\tIN\t{kind}\t{data}\n"));
    }
    Zone {
        name: name.to_string(),
        digest: sha256_hex(text.as_bytes()),
        template: text,
    }
}

/// The forward zone and every reverse zone of a site.
pub(super) fn zones(site: &SiteModel, dns: &Dns, nameserver_ip: Option<IpAddr>) -> Vec<Zone> {
    let domain = site.domain.trim_end_matches('.');
    let ns_host = dns.nameserver.clone();
    let soa = Soa {
        ttl: dns.ttl.into(),
        ns: format!("{ns_host}.{domain}."),
        hostmaster: format!("{}.{domain}.", dns.hostmaster),
        timers: format!("{} {} {} {}", dns.refresh, dns.retry, dns.expire, dns.negative_ttl),
    };

    // Names in the forward zone, in the order they claim reverse entries:
    // machines first, then the boot server and the name server.
    let mut hosts: Vec<(String, IpAddr)> = Vec::new();
    for m in &site.machines {
        for (i, iface) in m.interfaces.iter().enumerate() {
            let host = if i == 0 {
                m.name().to_string()
            } else {
                format!("{}-eth{i}", m.name())
            };
            hosts.extend(iface.addresses().map(|ip| (host.clone(), ip)));
        }
    }
    if let Some(ip) = site.boot_server_ip {
        hosts.push(("boot".into(), ip));
    }
    let ns_ip = nameserver_ip
        .or_else(|| {
            let first = site.networks.first()?;
            first.subnets().find_map(|s| s.dns.first().copied())
        })
        .or(site.boot_server_ip);
    if let Some(ip) = ns_ip {
        hosts.push((ns_host, ip));
    }

    let kind = |ip: &IpAddr| if ip.is_ipv4() { "A" } else { "AAAA" };
    let mut forward: Vec<Record> = hosts
        .iter()
        .map(|(h, ip)| (h.clone(), kind(ip), ip.to_string()))
        .collect();
    forward.sort();
    forward.dedup();
    let mut zones = vec![zone(domain, &soa, &forward)];

    // Reverse records by zone (its labels), in address order.
    let mut reverse: BTreeMap<(Family, Vec<String>), BTreeMap<IpAddr, Record>> = BTreeMap::new();
    for (host, ip) in &hosts {
        let Some(net) = site
            .networks
            .iter()
            .flat_map(|n| n.subnets())
            .find(|s| s.net.contains(*ip))
        else {
            continue;
        };
        let (labels, unit) = reverse_labels(*ip);
        let zone_units = usize::from(zone_prefix(&net.net) / unit);
        // Labels run from the least significant unit.
        let owner = labels[..labels.len() - zone_units].join(".");
        let zone_labels = labels[labels.len() - zone_units..].to_vec();
        reverse
            .entry((Family::of(*ip), zone_labels))
            .or_default()
            .entry(*ip)
            .or_insert_with(|| (owner, "PTR", format!("{host}.{domain}.")));
    }
    for ((family, labels), records) in reverse {
        let records: Vec<_> = records.into_values().collect();
        let suffix = match family {
            Family::V4 => "in-addr.arpa",
            Family::V6 => "ip6.arpa",
        };
        zones.push(zone(&format!("{}.{suffix}", labels.join(".")), &soa, &records));
    }
    zones
}

/// An address's reverse-DNS labels, least significant first (octets for
/// IPv4, nibbles for IPv6), and the bits each label holds.
fn reverse_labels(ip: IpAddr) -> (Vec<String>, u8) {
    match ip {
        IpAddr::V4(a) => (a.octets().iter().rev().map(u8::to_string).collect(), 8),
        IpAddr::V6(a) => {
            let nibbles = a.octets().iter().flat_map(|b| [b >> 4, b & 0xf]).collect::<Vec<u8>>();
            (nibbles.iter().rev().map(|n| format!("{n:x}")).collect(), 4)
        }
    }
}

/// Reverse zones sit on the label boundary at or below the network's
/// prefix: an IPv4 zone is at most a /24, an IPv6 zone at most a /124.
fn zone_prefix(net: &IpNet) -> u8 {
    match net.family() {
        Family::V4 => (net.prefix.div_ceil(8) * 8).clamp(8, 24),
        Family::V6 => (net.prefix.div_ceil(4) * 4).clamp(4, 124),
    }
}
