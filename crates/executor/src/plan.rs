//! The plan in force: `plan.json` of one rendered site and every file it
//! lists, read and verified (size and SHA-256) before it is activated.
//! A plan that does not verify is refused and the previous one keeps
//! serving.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_plan::{sha256_hex, Mac, OutputKind, Plan, PlannedFile, PlannedMachine, StepName, WorkflowStep, PLAN_FILE};

/// A verified plan, held in memory.
pub(crate) struct ActivePlan {
    /// SHA-256 of `plan.json`: names the plan in audit records.
    pub digest: String,
    /// `plan.json` as read.
    pub raw: Arc<[u8]>,
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
    #[cfg(test)]
    pub(crate) fn load(dir: &std::path::Path) -> Result<ActivePlan, String> {
        let bytes =
            std::fs::read(dir.join(PLAN_FILE)).map_err(|e| format!("{}: {e}", dir.join(PLAN_FILE).display()))?;
        ActivePlan::verify(bytes, |f| std::fs::read(dir.join(&f.path)).map_err(|e| e.to_string()))
    }

    /// Checks `plan.json` and every file it lists, as `read` gives them
    /// (from `--plan`, or from the plan history).
    pub(crate) fn verify(
        bytes: Vec<u8>,
        mut read: impl FnMut(&PlannedFile) -> Result<Vec<u8>, String>,
    ) -> Result<ActivePlan, String> {
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| format!("{PLAN_FILE} is not a kiln plan: {e}"))?;
        if plan.kind != OutputKind::Site {
            return Err(format!(
                "{} is a {:?} plan; the executor serves site plans",
                plan.name, plan.kind
            ));
        }
        let mut files = HashMap::new();
        for f in &plan.files {
            // A plan names files inside its own directory, by relative path.
            let inside = std::path::Path::new(&f.path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside || f.path.is_empty() {
                return Err(format!("{}: a plan's files must lie inside its directory", f.path));
            }
            let content = read(f).map_err(|e| format!("{}: {e}", f.path))?;
            if content.len() as u64 != f.size {
                return Err(format!("{}: {} bytes, the plan says {}", f.path, content.len(), f.size));
            }
            if sha256_hex(&content) != f.sha256 {
                return Err(format!("{}: SHA-256 differs from the plan", f.path));
            }
            files.insert(f.path.clone(), Arc::from(content));
        }
        // A machine is known by any of its NICs' MACs: it may boot from any.
        let by_mac = plan
            .machines
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                std::iter::once(m.mac)
                    .chain(m.other_macs.iter().copied())
                    .map(move |mac| (mac, i))
            })
            .collect();
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
            .chain(&plan.boot_artifacts)
            .map(|a| (a.path.clone(), a.sha256.clone()))
            .collect();
        Ok(ActivePlan {
            digest: sha256_hex(&bytes),
            raw: Arc::from(bytes),
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

/// The plan loader is fed whatever is in `--plan` (a tampered or truncated
/// plan.json, files that are not what it says): it never panics, and loads
/// only a plan whose every file matches. Property-based; `KILN_FUZZ_CASES`
/// sets the number of inputs (`make fuzz`).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::ActivePlan;

    /// A tampered plan cannot make the executor read (and hash) a file
    /// outside its directory.
    #[test]
    fn a_plan_path_outside_the_plan_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plan_dir = dir.path().join("out");
        std::fs::create_dir_all(&plan_dir).unwrap();
        std::fs::write(dir.path().join("outside.txt"), "a").unwrap();
        let plan = r#"{"name":"t","kind":"site","inputsDigest":"0","files":[{"path":"../outside.txt","size":1,"sha256":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}]}"#;
        std::fs::write(plan_dir.join("plan.json"), plan).unwrap();
        let err = ActivePlan::load(&plan_dir)
            .err()
            .expect("a plan reaching outside loads");
        assert!(err.contains("inside its directory"), "{err}");
    }

    #[test]
    fn the_plan_loader_never_panics() {
        let cases = std::env::var("KILN_FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(500);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let good = r#"{"name":"t","kind":"site","inputsDigest":"0","files":[{"path":"a.txt","size":1,"sha256":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}],"machines":[{"name":"m","mac":"52:54:00:00:00:01","ip":"10.0.0.1","blueprint":"b","generation":1,"steps":[{"name":"install","bootScript":"a.txt"}]}]}"#;
        let mutated = (
            0..good.len(),
            0..good.len(),
            any::<u8>(),
            "[a-z0-9/.\\\"{}\\[\\]:,-]{0,8}",
        )
            .prop_map(move |(at, cut, byte, insert)| {
                let mut b = good.as_bytes().to_vec();
                b[at] = byte;
                let (head, tail) = b.split_at(cut.min(b.len()));
                [head, insert.as_bytes(), tail].concat()
            });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        runner
            .run(&mutated, |plan| {
                std::fs::write(dir.path().join("plan.json"), &plan).unwrap();
                if let Ok(loaded) = ActivePlan::load(dir.path()) {
                    // Loaded means every file it lists was there, inside the
                    // plan's directory, and matched.
                    for f in &loaded.plan.files {
                        prop_assert!(loaded.file(&f.path).is_some());
                        prop_assert!(!f.path.contains("..") && !f.path.starts_with('/'), "{}", f.path);
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
