//! Addresses a site's values name for things that are not machines (a
//! control plane endpoint, a VIP) must stay out of the ranges kiln and the
//! DHCP servers hand out, or one day a machine is given one of them.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::lookup;
use crate::resolve::net::url_host;
use crate::resolve::site::SiteModel;

/// Reads the address out of a value's text.
type HostOf = fn(&str) -> Option<&str>;

/// Values that hold such an address, as dotted paths, and how to read the
/// address from each.
const ADDRESSES: &[(&str, HostOf)] = &[("talos.endpoint", url_host), ("talos.vip", itself)];

fn itself(text: &str) -> Option<&str> {
    Some(text)
}

/// Every address in `values` that lies in a pool or DHCP range of `site`:
/// the values path (with `/` separators) and the problem.
pub(super) fn conflicts(site: &SiteModel, values: &Map<String, Value>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, host_of) in ADDRESSES {
        let Some(text) = lookup(values, path).and_then(Value::as_str) else {
            continue;
        };
        let Some(ip) = host_of(text).and_then(|h| h.parse::<IpAddr>().ok()) else {
            continue;
        };
        for (n, s) in site.networks.iter().flat_map(|n| n.subnets().map(move |s| (n, s))) {
            let ranges = [("IPAM pool", s.pool.as_ref()), ("dhcpRange", s.dhcp_range.as_ref())];
            for (what, range) in ranges {
                if let Some(range) = range.filter(|r| r.contains(ip)) {
                    found.push((
                        path.replace('.', "/"),
                        format!(
                            "values.{path}: {ip} is inside the {what} {range} of network `{}`; choose an address outside the pool and the DHCP range",
                            n.name
                        ),
                    ));
                }
            }
        }
    }
    found
}
