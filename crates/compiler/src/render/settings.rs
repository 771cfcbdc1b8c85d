//! The settings kiln's own code reads from the merged values. Their
//! defaults live in one place, the built-in values file
//! (`builtin-values.yaml`); here they are only typed, so a setting that a
//! layer removed (`null`) or gave the wrong type is an error naming the
//! key, never a silent fallback to a constant.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `values.dhcp`: how a site's DHCP servers are configured.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dhcp {
    pub lease_time: u64,
    pub interfaces: Vec<String>,
    /// kea-dhcp6's interfaces. Empty: those the IPv6 networks name.
    pub interfaces6: Vec<String>,
    /// Kea's memfile lease file (Kea does not create its directory).
    pub kea_lease_file: String,
    /// Kea's DHCPv6 lease file, for sites with IPv6 networks.
    pub kea_lease_file6: String,
    /// Where Kea's DHCPv6 server keeps its DUID. Empty: Kea's default.
    pub kea_data_directory: String,
    pub tftp_root: String,
    /// Empty: the boot server's address, when it is an IPv4 one.
    pub tftp_server: String,
    /// For DHCPv6 PXE clients (`tftp://[addr]/...`). Empty: the boot
    /// server's address, when it is an IPv6 one.
    pub tftp_server6: String,
    /// Empty: `<bootServer>/artifacts/ipxe/ipxe.efi`.
    pub http_boot_url: String,
}

/// `values.dns`: a site's zones.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dns {
    pub ttl: u32,
    pub nameserver: String,
    /// Empty: the first DNS server of the first network.
    pub nameserver_ip: String,
    pub hostmaster: String,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub negative_ttl: u32,
}

impl Dns {
    /// The name server's address, when one is set.
    pub fn nameserver_ip(&self) -> Result<Option<IpAddr>, String> {
        if self.nameserver_ip.is_empty() {
            return Ok(None);
        }
        self.nameserver_ip
            .parse()
            .map(Some)
            .map_err(|_| format!("values.dns.nameserverIp: `{}` is not an IP address", self.nameserver_ip))
    }
}

/// `values.capi`: which Cluster API version the core kinds are rendered at.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Capi {
    pub(crate) api_version: CapiVersion,
}

/// The Cluster API versions kiln renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum CapiVersion {
    /// CAPI v1.11 and later (the storage version since v1.11).
    #[serde(rename = "v1beta2")]
    V1beta2,
    /// Management clusters older than CAPI v1.11; unserved from v1.16.
    #[serde(rename = "v1beta1")]
    V1beta1,
}

impl CapiVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CapiVersion::V1beta2 => "v1beta2",
            CapiVersion::V1beta1 => "v1beta1",
        }
    }
}

/// `values.clusterDefaults`: what a Cluster gets for fields it leaves out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterDefaults {
    pub kubernetes_version: String,
    pub talos_version: String,
    pub control_plane: Pool,
    pub workers: Pool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub replicas: u32,
    pub cpu: u32,
    pub memory: String,
}

/// `values.agent`: the agent an installed OS runs, when its blueprint
/// installs one.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Agent {
    pub enabled: bool,
    /// Minutes between reports.
    pub interval: u32,
}

impl Agent {
    /// Seconds between reports, when an agent is installed.
    pub fn interval_seconds(self) -> Option<u32> {
        self.enabled.then_some(self.interval.saturating_mul(60))
    }
}

/// `values.hardware`: what a machine must at least have (`kiln drift`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hardware {
    pub min_cpus: u32,
    #[serde(rename = "minMemoryMiB")]
    pub min_memory_mib: u64,
    pub min_disks: u32,
    #[serde(rename = "minDiskMiB")]
    pub min_disk_mib: u64,
}

/// Reads `values.<key>` as `T`.
pub fn read<T: DeserializeOwned>(values: &Map<String, Value>, key: &str) -> Result<T, String> {
    let value = values.get(key).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| {
        format!("values.{key}: {e} (kiln's built-in values set every field; a layer removed or changed one)")
    })
}

/// `values.<key>` of kiln's built-in values alone.
pub fn builtin<T: DeserializeOwned>(key: &str) -> T {
    let doc = crate::yaml::parse_documents(super::BUILTIN_VALUES)
        .expect("built-in values parse")
        .remove(0);
    let Value::Object(values) = doc.value else {
        unreachable!("the built-in values are a mapping")
    };
    read(&values, key).expect("the built-in values hold every setting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_values_hold_every_setting() {
        let _: Dhcp = builtin("dhcp");
        let dns: Dns = builtin("dns");
        assert_eq!(dns.nameserver_ip(), Ok(None));
        let c: ClusterDefaults = builtin("clusterDefaults");
        assert!(c.kubernetes_version.starts_with('v') && c.talos_version.starts_with('v'));
        let agent: Agent = builtin("agent");
        assert_eq!(
            agent.interval_seconds(),
            None,
            "no agent unless a blueprint installs one"
        );
        let _: Hardware = builtin("hardware");
    }
}
