//! DNS zones for a site: the forward zone of its `domain` and the reverse
//! zones of its networks. Reverse zones sit on octet boundaries: a /16 gets
//! one `b.a.in-addr.arpa` zone, a /20 gets the /24 zones that hold records,
//! a /26 the /24 that contains it. The SOA serial comes from the IPAM lock
//! and only moves when a zone's records change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::render::settings::Dns;
use crate::resolve::net::Ipv4Net;
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
pub(super) fn zones(site: &SiteModel, dns: &Dns, nameserver_ip: Option<Ipv4Addr>) -> Vec<Zone> {
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
    let mut hosts: Vec<(String, Ipv4Addr)> = Vec::new();
    for m in &site.machines {
        for (i, iface) in m.interfaces.iter().enumerate() {
            let host = if i == 0 {
                m.name().to_string()
            } else {
                format!("{}-eth{i}", m.name())
            };
            hosts.push((host, iface.ip));
        }
    }
    if let Some(ip) = site.boot_server_ip {
        hosts.push(("boot".into(), ip));
    }
    let ns_ip = nameserver_ip
        .or_else(|| site.networks.first().and_then(|n| n.dns.first().copied()))
        .or(site.boot_server_ip);
    if let Some(ip) = ns_ip {
        hosts.push((ns_host, ip));
    }

    let mut forward: Vec<Record> = hosts.iter().map(|(h, ip)| (h.clone(), "A", ip.to_string())).collect();
    forward.sort();
    forward.dedup();
    let mut zones = vec![zone(domain, &soa, &forward)];

    // Reverse records by zone, in address order.
    let mut reverse: BTreeMap<(u32, u8), BTreeMap<Ipv4Addr, Record>> = BTreeMap::new();
    for (host, ip) in &hosts {
        let Some(net) = site.networks.iter().find(|n| n.net.contains(*ip)) else {
            continue;
        };
        let bits = zone_prefix(&net.net);
        let block = u32::from(*ip) & (u32::MAX << (32 - bits));
        let octets = ip.octets();
        let owner: Vec<String> = octets[(bits / 8) as usize..].iter().rev().map(u8::to_string).collect();
        reverse
            .entry((block, bits))
            .or_default()
            .entry(*ip)
            .or_insert_with(|| (owner.join("."), "PTR", format!("{host}.{domain}.")));
    }
    for ((block, bits), records) in reverse {
        let records: Vec<_> = records.into_values().collect();
        let octets = Ipv4Addr::from(block).octets();
        let labels: Vec<String> = octets[..(bits / 8) as usize].iter().rev().map(u8::to_string).collect();
        zones.push(zone(&format!("{}.in-addr.arpa", labels.join(".")), &soa, &records));
    }
    zones
}

/// Reverse zones sit on the octet boundary at or below the network's
/// prefix, and are at most a /24.
fn zone_prefix(net: &Ipv4Net) -> u8 {
    (net.prefix.div_ceil(8) * 8).clamp(8, 24)
}
