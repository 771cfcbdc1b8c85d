//! IP address management: stable allocations recorded in
//! `out/<site>/ipam.lock.yaml` and read back on every render.
//!
//! An allocation belongs to an interface (its MAC on a network), so a
//! renamed machine keeps its addresses. Addresses in the lock stay where
//! they are; new interfaces take the lowest free address of their
//! network's pool, in machine-name order; a removed machine's addresses are
//! released. The lock also records each DNS zone's SOA serial and a digest
//! of the zone's content, so a serial only moves when the zone changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{parse_values, to_yaml, Pos};

use super::net::{Family, IpNet, IpRange};

/// The contents of `ipam.lock.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamLock {
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// Zone name → its serial and the digest of the content it was given for.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneSerial>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub network: String,
    /// IPv4 or IPv6: an interface of a dual-stack network has one of each.
    pub ip: IpAddr,
    pub mac: String,
    pub machine: String,
    /// Set by the machine's own `ip:` rather than taken from the pool.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSerial {
    pub serial: u32,
    pub digest: String,
}

impl IpamLock {
    pub fn parse(file: &str, text: &str) -> Result<IpamLock, Diagnostic> {
        let mut docs = parse_values(text).map_err(|e| Diagnostic::new(file, e.pos, e.message))?;
        if docs.is_empty() {
            return Ok(IpamLock::default());
        }
        let doc = docs.remove(0);
        serde_json::from_value(doc.value).map_err(|e| {
            Diagnostic::new(
                file,
                Pos { line: 1, col: 1 },
                format!("not a kiln IPAM lock ({e}); restore it from git"),
            )
        })
    }

    pub fn to_yaml(&self) -> String {
        let mut text = String::from(
            "# Written by kiln: the address of every interface of this site and the\n\
             # serial of every DNS zone. Read back on each render so that addresses\n\
             # never move; commit it with the rest of out/.\n",
        );
        text.push_str(&to_yaml(&serde_json::to_value(self).expect("locks serialize")));
        text
    }

    /// The serial for a zone whose content (without the serial) hashes to
    /// `digest`: unchanged content keeps its serial, changed content gets
    /// the next one. Serials never go down.
    pub fn serial_for(&self, zone: &str, digest: &str) -> u32 {
        match self.zones.get(zone) {
            Some(z) if z.digest == digest => z.serial,
            Some(z) => z.serial.saturating_add(1),
            None => 1,
        }
    }
}

/// One address family of a network of a site as IPAM sees it.
pub(crate) struct Pool<'a> {
    pub name: &'a str,
    pub net: IpNet,
    pub pool: Option<IpRange>,
    /// Addresses never handed out from the pool (gateway, DNS, boot server).
    pub reserved: BTreeSet<IpAddr>,
    /// Where the pool is written, for "exhausted" errors.
    pub at: Diagnostic,
}

/// An interface asking for an address.
pub(crate) struct Request<'a> {
    pub machine: &'a str,
    pub mac: &'a str,
    pub network: &'a str,
    pub family: Family,
    pub fixed: Option<IpAddr>,
    /// Where the interface is written, for errors.
    pub at: Diagnostic,
}

/// Gives every request an address: its fixed one, the one in the lock, or
/// the lowest free one in its pool. Returns the new allocations, sorted.
pub(crate) fn allocate(pools: &[Pool], requests: &[Request], lock: &IpamLock) -> Result<Vec<Allocation>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let locked: BTreeMap<(&str, &str, Family), IpAddr> = lock
        .allocations
        .iter()
        .map(|a| ((a.network.as_str(), a.mac.as_str(), Family::of(a.ip)), a.ip))
        .collect();
    let pool_of = |name: &str, family: Family| pools.iter().find(|p| p.name == name && p.net.family() == family);

    let mut taken: BTreeMap<(&str, IpAddr), &Request> = BTreeMap::new();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    // Fixed addresses first, then those the lock holds, so that neither
    // ever moves for a new machine.
    for pass in [true, false] {
        for r in requests.iter().filter(|r| r.fixed.is_some() == pass) {
            let Some(pool) = pool_of(r.network, r.family) else {
                continue;
            };
            let ip = match r.fixed {
                Some(ip) => ip,
                None => match locked.get(&(r.network, r.mac, r.family)) {
                    Some(ip) if pool.net.is_host(*ip) => *ip,
                    _ => {
                        pending.push(r);
                        continue;
                    }
                },
            };
            if let Some(other) = taken.get(&(r.network, ip)) {
                let mut d = r.at.clone();
                d.message = format!(
                    "duplicate IP {ip}: also assigned to machine `{}` ({}:{})",
                    other.machine, other.at.file, other.at.pos.line
                );
                diags.push(d);
                continue;
            }
            taken.insert((r.network, ip), r);
            out.push(Allocation {
                network: r.network.into(),
                ip,
                mac: r.mac.into(),
                machine: r.machine.into(),
                fixed: r.fixed.is_some(),
            });
        }
    }

    let mut wanted: BTreeMap<(&str, Family), Vec<&Request>> = BTreeMap::new();
    for r in pending {
        wanted.entry((r.network, r.family)).or_default().push(r);
    }
    for ((network, family), requests) in wanted {
        let pool = pool_of(network, family).expect("requests name known networks");
        let Some(range) = pool.pool else {
            for r in requests {
                let mut d = r.at.clone();
                d.message = format!(
                    "interface on network `{network}` has no `{field}` and the network has no {side}`pool` to allocate from",
                    field = if family == Family::V4 { "ip" } else { "ip6" },
                    side = if family == Family::V4 { "" } else { "`ipv6` " },
                );
                diags.push(d);
            }
            continue;
        };
        // Lazily: an IPv6 pool may be vast. Fewer found than wanted means
        // the whole pool was walked, so `free` is all there is.
        let free: Vec<IpAddr> = range
            .addresses()
            .filter(|ip| pool.net.is_host(*ip) && !pool.reserved.contains(ip) && !taken.contains_key(&(network, *ip)))
            .take(requests.len())
            .collect();
        if free.len() < requests.len() {
            let available = free.len();
            let mut d = pool.at.clone();
            d.message = format!(
                "pool {range} of network `{network}` is exhausted: {} new addresses wanted, {available} free",
                requests.len()
            );
            diags.push(d);
            continue;
        }
        for (r, ip) in requests.into_iter().zip(free) {
            out.push(Allocation {
                network: network.into(),
                ip,
                mac: r.mac.into(),
                machine: r.machine.into(),
                fixed: false,
            });
        }
    }
    out.sort();
    diags.finish(out)
}
