//! The plan in force: `plan.json` of one rendered site and every file it
//! lists, read and verified (size and SHA-256) before it is activated.
//! A plan that does not verify is refused and the previous one keeps
//! serving.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use kiln_plan::{sha256_hex, Mac, OutputKind, Plan, PlannedMachine, StepName, WorkflowStep, PLAN_FILE};

/// A verified plan, held in memory.
pub(crate) struct ActivePlan {
    /// SHA-256 of `plan.json`: names the plan in audit records.
    pub digest: String,
    pub plan: Plan,
    files: HashMap<String, Arc<[u8]>>,
    by_mac: HashMap<Mac, usize>,
    by_name: HashMap<String, usize>,
    /// Artifact path → the SHA-256 it must have.
    pub artifacts: HashMap<String, String>,
}

impl ActivePlan {
    /// Reads `dir/plan.json` and every file it lists; refuses the plan when
    /// any file is missing or differs from the plan.
    pub(crate) fn load(dir: &Path) -> Result<ActivePlan, String> {
        let bytes =
            std::fs::read(dir.join(PLAN_FILE)).map_err(|e| format!("{}: {e}", dir.join(PLAN_FILE).display()))?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| format!("{PLAN_FILE} is not a kiln plan: {e}"))?;
        if plan.kind != OutputKind::Site {
            return Err(format!(
                "{} is a {:?} plan; the executor serves site plans",
                plan.name, plan.kind
            ));
        }
        let mut files = HashMap::new();
        for f in &plan.files {
            let content = std::fs::read(dir.join(&f.path)).map_err(|e| format!("{}: {e}", f.path))?;
            if content.len() as u64 != f.size {
                return Err(format!("{}: {} bytes, the plan says {}", f.path, content.len(), f.size));
            }
            if sha256_hex(&content) != f.sha256 {
                return Err(format!("{}: SHA-256 differs from the plan", f.path));
            }
            files.insert(f.path.clone(), Arc::from(content));
        }
        let by_mac = plan.machines.iter().enumerate().map(|(i, m)| (m.mac, i)).collect();
        let by_name = plan
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let artifacts = plan
            .machines
            .iter()
            .flat_map(|m| m.steps.iter().flat_map(|s| s.artifacts.iter()))
            .map(|a| (a.path.clone(), a.sha256.clone()))
            .collect();
        Ok(ActivePlan {
            digest: sha256_hex(&bytes),
            plan,
            files,
            by_mac,
            by_name,
            artifacts,
        })
    }

    pub(crate) fn machine_by_mac(&self, mac: &Mac) -> Option<&PlannedMachine> {
        self.by_mac.get(mac).map(|i| &self.plan.machines[*i])
    }

    pub(crate) fn machine(&self, name: &str) -> Option<&PlannedMachine> {
        self.by_name.get(name).map(|i| &self.plan.machines[*i])
    }

    pub(crate) fn file(&self, path: &str) -> Option<&Arc<[u8]>> {
        self.files.get(path)
    }
}

/// A machine's step by name.
pub(crate) fn step(machine: &PlannedMachine, name: StepName) -> Option<&WorkflowStep> {
    machine.steps.iter().find(|s| s.name == name)
}
