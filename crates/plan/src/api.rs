//! The operator API's answers that clients (`kiln status`) read.

use serde::{Deserialize, Serialize};

use crate::{Mac, MachineState};

/// `GET /v1/machines`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineList {
    /// The site of the active plan.
    pub site: String,
    pub plan_digest: String,
    pub machines: Vec<MachineSummary>,
}

/// A machine of the active plan and where it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSummary {
    pub name: String,
    pub mac: Mac,
    pub ip: String,
    pub blueprint: String,
    pub generation: u32,
    pub state: MachineState,
    /// RFC 3339; absent until the machine first boots.
    pub last_seen: Option<String>,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}
