//! The rendered plan: what the compiler hands to `out/` and what the
//! executor consumes. These types are the only thing the two share.

use serde::{Deserialize, Serialize};

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
    pub mac: String,
    pub ip: String,
    pub blueprint: String,
    pub generation: u32,
    pub steps: Vec<WorkflowStep>,
}

/// One step of a machine's workflow and the files it serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// `commission` or `install`.
    pub name: String,
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

/// A MAC address in lowercase colon form, from any common spelling
/// (`52:54:00:AB:CD:EF`, `52-54-00-ab-cd-ef`, `5254.00ab.cdef`, `525400abcdef`).
pub fn normalize_mac(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some((0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect::<Vec<_>>().join(":"))
}
