//! The layout of `out/<name>/`: the one owner of every path kiln writes
//! there, and the record of where each file came from.

use serde::Serialize;

use kiln_plan::StepName;

pub use kiln_plan::PLAN_FILE;

/// A site's IPAM lock: its allocations and zone serials. Also an input of
/// the next render.
pub const LOCK_FILE: &str = "ipam.lock.yaml";

/// A site's iPXE menu, which every machine chains to first.
pub const MENU: &str = "boot/menu.ipxe";

/// The TFTP root's layout: each iPXE build's path and SHA-256, in
/// `sha256sum` format.
pub const TFTP_LIST: &str = "boot/tftp.sha256";

/// The boot script of one step of a machine's workflow.
pub fn boot_script(machine: &str, step: StepName) -> String {
    match step {
        StepName::Install => format!("boot/machines/{machine}.ipxe"),
        other => format!("boot/machines/{machine}.{other}.ipxe"),
    }
}

/// The file a step's install template renders to. Each step has its own
/// place, so a commissioning file never shadows the installer's.
pub fn install_file(machine: &str, step: StepName, file: &str) -> String {
    match step {
        StepName::Install => format!("install/{machine}/{file}"),
        other => format!("install/{machine}/{other}/{file}"),
    }
}

/// What a MAC the site does not know boots when discovery is on.
pub const DISCOVERY_BOOT: &str = "boot/discovery.ipxe";

/// The discovery script (a machine name cannot start with `_`).
pub fn discovery_file(file: &str) -> String {
    format!("install/_discovery/{file}")
}

/// A blueprint's agent script (one per site: it names no machine).
pub fn agent_script(blueprint: &str, file: &str) -> String {
    format!("agent/{blueprint}/{file}")
}

/// A DNS zone of a site.
pub fn zone(name: &str) -> String {
    format!("dns/{name}.zone")
}

/// Where a rendered file came from: which values fed it and, when a
/// template rendered it, which. `kiln explain` reads this record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The repository path of the template, when one rendered the file
    /// (kiln writes the others itself: kustomizations, DHCP, DNS, the lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(flatten)]
    pub values: ValuesOf,
}

/// Whose value layers a file was rendered with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "values", rename_all = "camelCase")]
pub enum ValuesOf {
    /// The site's own layers (DHCP, DNS, the boot menu).
    Site,
    /// The cluster's layers.
    Cluster,
    /// The site's layers over a blueprint's: what is rendered once per site
    /// for a blueprint (the discovery step, an agent).
    Blueprint { blueprint: String },
    /// One machine's layers for one step of its workflow.
    Machine {
        machine: String,
        step: StepName,
        blueprint: String,
    },
}

impl Origin {
    pub fn site() -> Origin {
        Origin {
            template: None,
            values: ValuesOf::Site,
        }
    }
}
