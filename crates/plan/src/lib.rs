//! The contract between the kiln compiler and the site executor: the
//! rendered plan (`plan.json`), the workflow steps and machine states, the
//! runtime placeholders rendered files hold for the executor to fill, and
//! the operator API's answers. These types are the only thing the compiler
//! and the executor share.

mod api;
mod mac;
mod workflow;

use serde::{Deserialize, Serialize};

pub use api::{
    ErrorAnswer, MachineList, MachineSummary, PlanActionDone, PlanActionPending, PlanHistory, PlanRecord, ReportAnswer,
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plan_digest: String,
}

impl Plan {
    /// The plan as `plan.json` holds it: pretty JSON, a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("plans serialize");
        bytes.push(b'\n');
        bytes
    }

    /// The plan with its `planDigest` set.
    pub fn sealed(mut self) -> Plan {
        self.plan_digest.clear();
        self.plan_digest = sha256_hex(&self.to_bytes());
        self
    }

    /// Whether `bytes`, this plan as read, are exactly what kiln wrote:
    /// formatted as kiln formats it, with a `planDigest` that matches.
    pub fn vouches(&self, bytes: &[u8]) -> bool {
        !self.plan_digest.is_empty() && self.clone().sealed() == *self && self.to_bytes() == bytes
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
    /// SHA-256 over everything its files were rendered from (the compiler
    /// reuses them while it is unchanged; the executor ignores it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub inputs_digest: String,
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
