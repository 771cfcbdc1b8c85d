//! The executor's answers that clients read: the operator API's (`kiln
//! status`) and the agents' (an installer's report).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::{Mac, MachineState, StepName};

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
    /// The Machine's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The step of its active run, if one is going on.
    #[serde(default)]
    pub step: Option<StepName>,
    /// Its active run.
    #[serde(default)]
    pub run: Option<i64>,
    /// RFC 3339: its last report (of a run or of its agent).
    #[serde(default)]
    pub last_report: Option<String>,
    /// RFC 3339: its installed agent's last report.
    #[serde(default)]
    pub agent_last_seen: Option<String>,
    /// Installed with an agent that has not reported for three of its
    /// intervals.
    #[serde(default)]
    pub stale: bool,
}

/// A machine's hardware and identity as a discovery script, a
/// commissioning script or an installed agent reports it (the `snapshot`
/// of a report). Every field may be missing: a report is read leniently.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    #[serde(default)]
    pub hostname: Option<String>,
    /// DMI product serial.
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub cpu: Option<Cpu>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub nics: Vec<Nic>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default)]
    pub count: u32,
    #[serde(default)]
    pub model: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    #[serde(default)]
    pub size_mib: u64,
    #[serde(default)]
    pub removable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    #[serde(default)]
    pub name: String,
    pub mac: String,
    /// Global addresses, `ADDR/PREFIX` (agents report them; discovery
    /// does not).
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `GET /v1/facts`: every machine's latest facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FactsList {
    pub site: String,
    pub plan_digest: String,
    pub machines: Vec<MachineFacts>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineFacts {
    pub name: String,
    pub state: MachineState,
    /// RFC 3339: when the facts were reported.
    pub at: Option<String>,
    /// `agent` or the step of the run that reported them.
    pub source: Option<String>,
    pub facts: Option<Facts>,
    pub agent_last_seen: Option<String>,
    pub stale: bool,
}

/// `GET /v1/discovered`: MACs that booted without being in the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredList {
    pub site: String,
    pub machines: Vec<DiscoveredMachine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredMachine {
    pub mac: Mac,
    pub first_seen: String,
    pub last_seen: String,
    pub boots: u64,
    /// What its discovery script reported, once it has.
    pub facts: Option<Facts>,
    pub facts_at: Option<String>,
}

/// `POST /v1/agents/checkin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentAnswer {
    pub machine: String,
    pub next_in_seconds: u32,
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
