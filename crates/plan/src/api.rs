//! The executor's answers that clients read: the operator API's (`kiln
//! status`) and the agents' (an installer's report).

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

/// `POST /v1/agents/facts`: where the report left the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportAnswer {
    pub machine: String,
    pub run: i64,
    pub state: MachineState,
}

/// `POST /v1/machines/{name}/reprovision` without a confirmation: the token
/// to send back, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPending {
    pub machine: String,
    pub confirm: String,
    pub expires_in_seconds: u64,
    pub next: String,
}

/// `POST /v1/machines/{name}/reprovision` with the confirmation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReprovisionDone {
    pub machine: String,
    pub state: MachineState,
}

/// `GET /v1/plans`: the plans the executor keeps, newest activation first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanHistory {
    /// The digest of the plan being served.
    pub active: Option<String>,
    /// The digest of the pinned plan: a new `plan.json` does not replace it.
    pub pinned: Option<String>,
    pub plans: Vec<PlanRecord>,
}

/// One verified plan the executor has served and can serve again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRecord {
    pub digest: String,
    pub site: String,
    /// RFC 3339: when it was last activated.
    pub activated_at: String,
    pub machines: u64,
    pub files: u64,
    pub active: bool,
    pub pinned: bool,
}

/// The first call of a two-step plan action (pin, rollback): the token to
/// send back, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanActionPending {
    /// What the confirmation will do, in words.
    pub action: String,
    pub confirm: String,
    pub expires_in_seconds: u64,
    pub next: String,
}

/// A plan action done: the plan now active, the one before, and whether
/// the active plan is pinned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanActionDone {
    pub active: String,
    pub previous: Option<String>,
    pub pinned: bool,
}
