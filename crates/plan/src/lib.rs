//! The contract between the kiln compiler and the site executor: the
//! rendered plan (`plan.json`), the workflow steps and machine states, the
//! runtime placeholders rendered files hold for the executor to fill, and
//! the operator API's answers. These types are the only thing the compiler
//! and the executor share.

mod api;
mod mac;
mod workflow;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use api::{
    AgentAnswer, Cpu, DiscoveredList, DiscoveredMachine, Disk, ErrorAnswer, Facts, FactsList, MachineFacts,
    MachineList, MachineSummary, Nic, PlanActionDone, PlanActionPending, PlanHistory, PlanRecord, ReportAnswer,
    ReprovisionDone, ReprovisionPending,
};
pub use mac::Mac;
pub use workflow::{MachineState, RunOutcome, StepName, UnknownName};

/// Runtime placeholders: rendered files hold them, the executor fills them
/// per request (SPEC §3).
pub mod placeholder {
    /// The boot server's URL as the machine reached it.
    pub const SERVER: &str = "@@kiln:server@@";
    /// The run's token.
    pub const TOKEN: &str = "@@kiln:token@@";
    /// A machine's agent credential: minted when its install file is
    /// served, so the installed OS can keep reporting facts
    /// (`POST /v1/agents/checkin`). Only in install files.
    pub const AGENT_TOKEN: &str = "@@kiln:agent-token@@";
    /// `@@kiln:secret:NAME@@`: a secret from the executor's store.
    pub const SECRET_PREFIX: &str = "@@kiln:secret:";
    pub const SECRET_SUFFIX: &str = "@@";

    /// The placeholder of secret `name`.
    pub fn secret(name: &str) -> String {
        format!("{SECRET_PREFIX}{name}{SECRET_SUFFIX}")
    }
}

/// `out/<name>/plan.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub name: String,
    pub kind: OutputKind,
    /// SHA-256 over the paths and contents of the inputs that produced the
    /// output (never a commit or a time, so committed output stays fresh).
    pub inputs_digest: String,
    /// Every other file of the output, by path.
    pub files: Vec<PlannedFile>,
    /// For a site: every machine and its provisioning workflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<PlannedMachine>,
    /// For a site: the iPXE builds its DHCP servers hand out, served and
    /// verified like every artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_artifacts: Vec<PlannedArtifact>,
    /// SHA-256 of this plan as written with this field empty: a plan
    /// edited by hand no longer vouches for its output (`Plan::vouches`).
    /// What an unknown MAC boots when the site has discovery on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryStep>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plan_digest: String,
}

/// How `planDigest` ends a `plan.json`: its last field.
const DIGEST_FIELD: &str = ",\n  \"planDigest\": \"";
const END: &str = "\"\n}\n";

impl Plan {
    /// The plan as `plan.json` holds it: pretty JSON, a final newline, and
    /// last `planDigest`, the SHA-256 of the rest (the file as it would be
    /// without that field).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut unsealed = self.clone();
        unsealed.plan_digest.clear();
        let mut bytes = serde_json::to_vec_pretty(&unsealed).expect("plans serialize");
        let digest = sha256_hex(&[bytes.as_slice(), b"\n"].concat());
        // Serialized with the field, the plan would read the same up to
        // its closing brace, then `,\n  "planDigest": "..."\n}`.
        bytes.truncate(bytes.len() - 2);
        bytes.extend_from_slice(format!("{DIGEST_FIELD}{digest}{END}").as_bytes());
        bytes
    }

    /// Whether `bytes` are exactly a `plan.json` kiln wrote: its
    /// `planDigest` is the SHA-256 of the rest, so a plan edited by hand no
    /// longer vouches for its output.
    pub fn vouches(bytes: &[u8]) -> bool {
        let Some(body) = bytes.strip_suffix(END.as_bytes()) else {
            return false;
        };
        let Some(at) = body.len().checked_sub(64 + DIGEST_FIELD.len()) else {
            return false;
        };
        let (rest, field) = body.split_at(at);
        let Some(digest) = field.strip_prefix(DIGEST_FIELD.as_bytes()) else {
            return false;
        };
        sha256_hex(&[rest, b"\n}\n"].concat()).as_bytes() == digest
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Cluster,
    Site,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMachine {
    pub name: String,
    /// The MAC of its first interface.
    pub mac: Mac,
    /// The MACs of its other interfaces: it may boot from any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_macs: Vec<Mac>,
    pub ip: String,
    pub blueprint: String,
    pub generation: u32,
    pub steps: Vec<WorkflowStep>,
    /// The Machine's `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The agent its installed OS runs, when its blueprint has one and
    /// `values.agent.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<PlannedAgent>,
}

/// An installed machine's agent: its script in the plan (one per blueprint
/// of a site) and how often it reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAgent {
    pub script: String,
    pub interval_seconds: u32,
}

/// The discovery step: the boot script an unknown MAC gets and the script
/// it then fetches, which reports the machine's hardware (`Facts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryStep {
    pub boot_script: String,
    pub install_file: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PlannedArtifact>,
}

/// One step of a machine's workflow and the files it serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    pub name: StepName,
    pub boot_script: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_file: Option<String>,
    /// Artifact paths under the executor's `--artifacts` directory, with
    /// the SHA-256 each must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PlannedArtifact>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedArtifact {
    pub path: String,
    pub sha256: String,
}

pub const PLAN_FILE: &str = "plan.json";

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod plan_digest_tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            name: "lab".into(),
            kind: OutputKind::Site,
            inputs_digest: "0".repeat(64),
            files: vec![PlannedFile {
                path: "boot/menu.ipxe".into(),
                size: 3,
                sha256: "1".repeat(64),
            }],
            machines: Vec::new(),
            boot_artifacts: Vec::new(),
            discovery: None,
            plan_digest: String::new(),
        }
    }

    #[test]
    fn a_plan_vouches_for_itself_until_edited() {
        let bytes = plan().to_bytes();
        assert!(Plan::vouches(&bytes));
        // The field is what serde writes for it, last.
        let read: Plan = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read.plan_digest.len(), 64);
        assert_eq!(serde_json::to_vec_pretty(&read).unwrap(), bytes[..bytes.len() - 1]);
        let text = String::from_utf8(bytes).unwrap();
        for edited in [
            text.replace("boot/menu.ipxe", "boot/menu.ipxf"),
            text.replace("\"size\": 3", "\"size\": 4"),
            text.replace("  \"name\"", "\"name\""),
            text.replace("\n}\n", "\n}"),
        ] {
            assert!(!Plan::vouches(edited.as_bytes()), "{edited}");
        }
        assert!(!Plan::vouches(b"{}\n"));
    }
}
