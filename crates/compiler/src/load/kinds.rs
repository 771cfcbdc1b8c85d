//! The five input kinds of SPEC §2 as Rust types, and their JSON Schemas.
//!
//! The types are the single source of truth: `kiln schema KIND` prints the
//! schema derived from them, and the loader validates every document against
//! that schema (pointing each error at its node) before deserializing it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Map, Value};

pub const API_VERSION: &str = "kiln/v1alpha1";

/// Regular expressions used by the schemas, with what a value that fails
/// them should have been; schema errors are reported with these words.
pub const PATTERNS: &[(&str, &str)] = &[
    (
        NAME_PATTERN,
        "a lowercase DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters)",
    ),
    (MAC_PATTERN, "a MAC address"),
    (SHA256_PATTERN, "a SHA-256 digest (64 lowercase hex digits)"),
    (QUANTITY_PATTERN, "a memory size such as 512Mi or 16Gi"),
];

const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const MAC_PATTERN: &str =
    "^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}$|^[0-9A-Fa-f]{12}$";
const SHA256_PATTERN: &str = "^[0-9a-f]{64}$";
const QUANTITY_PATTERN: &str = "^[1-9][0-9]*(Mi|Gi)$";

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $($extra:tt)*) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "pattern": $pattern, $($extra)*})
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A lowercase DNS label naming an object.
    Name, NAME_PATTERN, "maxLength": 63
);
string_newtype!(
    /// A MAC address in any common spelling (normalised by `Mac`).
    MacAddress, MAC_PATTERN,
);
string_newtype!(
    /// A memory size in Mi or Gi.
    Quantity, QUANTITY_PATTERN,
);
string_newtype!(
    /// A lowercase hex SHA-256 digest.
    Sha256, SHA256_PATTERN,
);

/// Free-form template values of one layer.
pub type Values = Map<String, Value>;

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: Name,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Every input document: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<S: Default> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: S,
}

impl<S: Default> Object<S> {
    pub fn name(&self) -> &str {
        self.metadata.name.as_str()
    }
}

pub type Site = Object<SiteSpec>;
pub type Machine = Object<MachineSpec>;
pub type Blueprint = Object<BlueprintSpec>;
pub type Cluster = Object<ClusterSpec>;
pub type Recipe = Object<RecipeSpec>;

/// A place machines and clusters belong to: a datacenter, lab or cloud region.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SiteSpec {
    /// DNS zone for machine records.
    pub domain: Option<String>,
    /// The executor's URL as booting machines reach it.
    pub boot_server: Option<String>,
    #[serde(default)]
    pub networks: Vec<Network>,
    pub dhcp: Option<Dhcp>,
    /// Blueprint that commissions machines with `commission: true`.
    pub commission_blueprint: Option<Name>,
    /// What a MAC the site does not know boots: nothing (the default), or
    /// a discovery environment that reports its hardware, for `kiln adopt`.
    pub discovery: Option<Discovery>,
    /// Where installers fetch what kiln does not serve (install trees,
    /// package mirrors, image shares): URL or UNC prefixes. Every install
    /// source a machine's values name must be under one.
    #[serde(default)]
    pub install_sources: Vec<String>,
    /// The iPXE builds the site's DHCP servers hand to each firmware
    /// architecture, as artifacts (served over TFTP and HTTP). Default:
    /// Debian 12's `ipxe` package, BIOS and x64 UEFI. An architecture
    /// without a build is not booted.
    pub ipxe: Option<IpxeBuilds>,
    /// Site layer of template values.
    #[serde(default)]
    pub values: Values,
}

/// Discovery of unknown machines (docs/executor.md, "Enrolling new
/// hardware").
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Off unless `true`: an unknown MAC boots its local disk.
    #[serde(default)]
    pub enabled: bool,
    /// The blueprint of the discovery environment (default `discovery`).
    pub blueprint: Option<Name>,
}

/// One iPXE build per firmware architecture; each under the executor's
/// artifacts directory (and the same path under the TFTP root).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpxeBuilds {
    /// Legacy BIOS PXE (client architecture 0), e.g. `undionly.kpxe`.
    pub bios: Option<Artifact>,
    /// x86-64 UEFI, PXE (7, 9) and HTTP boot (16), e.g. `snponly.efi`.
    pub x64: Option<Artifact>,
    /// 32-bit x86 UEFI (6, HTTP 15).
    pub ia32: Option<Artifact>,
    /// ARM64 UEFI (11, HTTP 19).
    pub arm64: Option<Artifact>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    pub name: Name,
    /// IPv4 network in CIDR notation; left out for an IPv6-only network.
    pub cidr: Option<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    /// Addresses IPAM hands to machines without a fixed `ip`.
    pub pool: Option<AddressRange>,
    /// Addresses leased dynamically to unknown machines.
    pub dhcp_range: Option<AddressRange>,
    /// The DHCP relay that forwards this network's requests to the site's
    /// DHCP server, for a network the server is not on (a routed site).
    pub relay: Option<Relay>,
    /// The network's IPv6 side: with `cidr`, a dual-stack network; alone,
    /// an IPv6-only one.
    pub ipv6: Option<Ipv6Network>,
}

/// The IPv6 side of a network: the same fields as its IPv4 side.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ipv6Network {
    /// IPv6 network in CIDR notation (a /64 for SLAAC-capable segments).
    pub cidr: String,
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// Addresses IPAM hands to machines without a fixed `ip6`.
    pub pool: Option<AddressRange>,
    /// Addresses leased dynamically (DHCPv6) to unknown machines.
    pub dhcp_range: Option<AddressRange>,
    /// The DHCPv6 relay agent's address on this network (the link-address
    /// of the requests it forwards).
    pub relay: Option<Relay>,
    /// The DHCP server's interface on this network, when it is attached
    /// directly: a DHCPv6 request comes from a link-local address, so Kea
    /// picks the subnet by the interface it arrived on.
    pub interface: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// The relay agent's address on this network (the `giaddr` it puts in
    /// the requests it forwards); inside the network.
    pub address: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    pub servers: Vec<DhcpServer>,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DhcpServer {
    Dnsmasq,
    Kea,
    Isc,
}

/// A physical or virtual machine that boots from the site's executor.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub blueprint: Name,
    #[schemars(length(min = 1))]
    pub interfaces: Vec<Interface>,
    pub serial: Option<String>,
    /// Bump to ask for a reinstall.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub generation: u32,
    /// Run hardware tests before install.
    #[serde(default)]
    pub commission: bool,
    /// Machine layer of template values.
    #[serde(default)]
    pub values: Values,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub mac: MacAddress,
    pub network: Name,
    /// Fixed IPv4 address; IPAM allocates one from the network's pool when
    /// absent.
    pub ip: Option<String>,
    /// Fixed IPv6 address, on a network with `ipv6`; IPAM allocates one
    /// from its IPv6 pool when absent.
    pub ip6: Option<String>,
}

/// An operating system install: boot artifacts and templates.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueprintSpec {
    pub os: Os,
    pub version: String,
    #[serde(default)]
    pub artifacts: BTreeMap<String, Artifact>,
    pub templates: BlueprintTemplates,
    /// Blueprint layer of template values.
    #[serde(default)]
    pub values: Values,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Rhel,
    Windows,
    Talos,
    #[default]
    Generic,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Path under the executor's artifacts directory.
    pub path: String,
    pub sha256: Sha256,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueprintTemplates {
    /// iPXE script template, relative to the blueprint directory.
    pub ipxe: String,
    /// Install file template; the served name is the file name minus `.j2`.
    pub install: Option<String>,
    /// The installed system's agent (with `values.agent.enabled`): rendered
    /// once per site with the site's and the blueprint's values, fetched by
    /// each machine with its agent credential (`/v1/agents/script`).
    pub agent: Option<String>,
}

/// A Kubernetes cluster built with Cluster API and Talos.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Infrastructure provider: a directory under `clusters/`.
    pub provider: Name,
    pub region: Option<String>,
    pub kubernetes_version: Option<String>,
    pub talos_version: Option<String>,
    pub control_plane: Option<NodePool>,
    pub workers: Option<NodePool>,
    #[serde(default)]
    pub recipes: Vec<Name>,
    /// Cluster layer of template values.
    #[serde(default)]
    pub values: Values,
    #[serde(default)]
    pub patches: Vec<Patch>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    #[schemars(range(min = 0))]
    pub replicas: Option<u32>,
    #[schemars(range(min = 1))]
    pub cpu: Option<u32>,
    pub memory: Option<Quantity>,
}

/// An edit of rendered resources: a merge patch or RFC 6902 operations.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["patch"]}, {"required": ["ops"]}]))]
pub struct Patch {
    pub target: PatchTarget,
    /// Merged into each target: maps deeply, lists of named objects by `name`.
    pub patch: Option<Value>,
    /// RFC 6902 operations applied to each target.
    pub ops: Option<Vec<PatchOp>>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTarget {
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: String,
    pub from: Option<String>,
    pub value: Option<Value>,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

/// A Flux bundle under `recipes/<name>/`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecipeSpec {
    #[serde(default)]
    pub depends_on: Vec<Name>,
    /// What the recipe needs of its cluster's machines.
    #[serde(default)]
    pub requires: Requirements,
}

/// What a recipe needs of the machines of every cluster that lists it.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirements {
    #[serde(default)]
    pub talos: TalosRequirements,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TalosRequirements {
    /// Talos system extensions the machine image must carry, e.g.
    /// `siderolabs/iscsi-tools`. The cluster declares what its image has in
    /// `values.talos.extensions`; a missing one is an error.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Host paths bind-mounted into the kubelet (with `rshared`), e.g.
    /// `/var/lib/longhorn`. kiln adds them to the cluster's Talos configs.
    #[serde(default)]
    pub kubelet_mounts: Vec<String>,
    /// Talos machine config patches (RFC 6902 operations: `op` `add`,
    /// `replace` or `remove`, a `path` into the machine config, a `value`),
    /// e.g. a kernel module or a sysctl. kiln adds them to the cluster's
    /// TalosControlPlane and TalosConfigTemplate.
    #[serde(default)]
    pub config_patches: Vec<serde_json::Value>,
}

/// The kinds kiln reads, in the order `kiln schema` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Site,
    Machine,
    Blueprint,
    Cluster,
    Recipe,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Site, Kind::Machine, Kind::Blueprint, Kind::Cluster, Kind::Recipe];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Site => "Site",
            Kind::Machine => "Machine",
            Kind::Blueprint => "Blueprint",
            Kind::Cluster => "Cluster",
            Kind::Recipe => "Recipe",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    /// The JSON Schema of this kind's documents.
    pub fn schema(self) -> Value {
        let mut schema = match self {
            Kind::Site => schemars::schema_for!(Site),
            Kind::Machine => schemars::schema_for!(Machine),
            Kind::Blueprint => schemars::schema_for!(Blueprint),
            Kind::Cluster => schemars::schema_for!(Cluster),
            Kind::Recipe => schemars::schema_for!(Recipe),
        }
        .to_value();
        schema["title"] = Value::from(self.as_str());
        let props = &mut schema["properties"];
        props["apiVersion"] = serde_json::json!({"const": API_VERSION});
        props["kind"] = serde_json::json!({"const": self.as_str()});
        // Sites that only hold clusters, and recipes without dependencies,
        // need no spec; the other kinds do.
        if matches!(self, Kind::Machine | Kind::Blueprint | Kind::Cluster) {
            if let Some(required) = schema["required"].as_array_mut() {
                required.push(Value::from("spec"));
            }
        }
        schema
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
