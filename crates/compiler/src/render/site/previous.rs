//! What a previous render of a site left in `out/<site>/`, reused machine
//! by machine: a machine whose inputs digest is the one its plan entry
//! records gets its files back from disk, each checked against the SHA-256
//! the plan lists, instead of rendering them again. Only a plan that
//! vouches for itself (not edited by hand) is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_plan::{sha256_hex, Plan, PlannedFile, PlannedMachine, PLAN_FILE};

pub(super) struct Previous {
    dir: PathBuf,
    machines: HashMap<String, PlannedMachine>,
    files: HashMap<String, PlannedFile>,
}

impl Previous {
    pub(super) fn read(out_dir: &Path, site: &str) -> Option<Previous> {
        let dir = out_dir.join(site);
        let bytes = std::fs::read(dir.join(PLAN_FILE)).ok()?;
        Plan::vouches(&bytes).then_some(())?;
        let plan: Plan = serde_json::from_slice(&bytes).ok()?;
        (plan.name == site).then_some(())?;
        Some(Previous {
            dir,
            machines: plan.machines.into_iter().map(|m| (m.name.clone(), m)).collect(),
            files: plan.files.into_iter().map(|f| (f.path.clone(), f)).collect(),
        })
    }

    /// The plan entry of machine `name`, if it was rendered from inputs
    /// with `digest`.
    pub(super) fn machine(&self, name: &str, digest: &str) -> Option<&PlannedMachine> {
        self.machines.get(name).filter(|m| m.inputs_digest == digest)
    }

    /// A file of the previous render, if it is still as its plan lists it.
    pub(super) fn file(&self, path: &str) -> Option<Vec<u8>> {
        let listed = self.files.get(path)?;
        let bytes = std::fs::read(self.dir.join(path)).ok()?;
        (bytes.len() as u64 == listed.size && sha256_hex(&bytes) == listed.sha256).then_some(bytes)
    }
}
