//! Stage 5, emit: seal each rendered output with its `plan.json` and write
//! it to `out/<name>/` atomically, or compare it with what is there.
//!
//! Each output is staged next to its target as a complete tree (unchanged
//! files are hard links to the current ones, so they are never rewritten),
//! flushed, and swapped in with one `renameat2(RENAME_EXCHANGE)`. A render
//! that fails or is killed leaves every `out/<name>/` as it was; a killed
//! one may leave a `.kiln-staging-*` directory, removed by the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use kiln_plan::{sha256_hex, DiscoveryStep, OutputKind, Plan, PlannedArtifact, PlannedFile, PlannedMachine, PLAN_FILE};

/// One rendered output, in memory.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub kind: OutputKind,
    pub inputs_digest: String,
    /// Path within the output → content; `plan.json` once sealed.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Where each file of `files` came from (`plan.json` has none).
    pub origins: BTreeMap<String, crate::layout::Origin>,
    pub machines: Vec<PlannedMachine>,
    /// For a site: the iPXE builds it serves.
    pub boot_artifacts: Vec<PlannedArtifact>,
    /// For a site with discovery on: what unknown MACs boot.
    pub discovery: Option<DiscoveryStep>,
}

impl Output {
    /// The plan of the output's files (all but `plan.json` itself).
    pub fn plan(&self) -> Plan {
        Plan {
            name: self.name.clone(),
            kind: self.kind,
            inputs_digest: self.inputs_digest.clone(),
            files: self
                .files
                .par_iter()
                .filter(|(path, _)| path.as_str() != PLAN_FILE)
                .map(|(path, bytes)| PlannedFile {
                    path: path.clone(),
                    size: bytes.len() as u64,
                    sha256: sha256_hex(bytes),
                })
                .collect(),
            machines: self.machines.clone(),
            boot_artifacts: self.boot_artifacts.clone(),
            discovery: self.discovery.clone(),
            plan_digest: String::new(),
        }
    }

    /// Adds `plan.json`, listing every other file with its SHA-256.
    pub fn seal(mut self) -> Output {
        let plan = self.plan().to_bytes();
        self.files.insert(PLAN_FILE.to_string(), plan);
        self
    }
}

/// Whether `out_dir/<name>/` is exactly what a render from inputs with
/// `digest` writes, so a render may skip it: its `plan.json` names that
/// digest and vouches for itself (`Plan::vouches`: not edited by hand), and
/// every file it lists is there with its size and SHA-256, and no other
/// file. A hand-edited, missing or extra file means render.
pub fn vouched(out_dir: &Path, name: &str, digest: &str) -> bool {
    let dir = out_dir.join(name);
    let Ok(bytes) = fs::read(dir.join(PLAN_FILE)) else {
        return false;
    };
    let Ok(plan) = serde_json::from_slice::<Plan>(&bytes) else {
        return false;
    };
    if plan.name != name || plan.inputs_digest != digest || !Plan::vouches(&bytes) {
        return false;
    }
    let listed: BTreeMap<&str, &PlannedFile> = plan.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut found = 0;
    for entry in walkdir::WalkDir::new(&dir).min_depth(1) {
        let Ok(entry) = entry else {
            return false;
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(&dir).expect("walked under dir");
        let rel = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        if rel == PLAN_FILE {
            continue;
        }
        if !entry.file_type().is_file() || !listed.contains_key(rel.as_str()) {
            return false;
        }
        found += 1;
    }
    found == listed.len()
        && plan
            .files
            .par_iter()
            .all(|f| fs::read(dir.join(&f.path)).is_ok_and(|b| b.len() as u64 == f.size && sha256_hex(&b) == f.sha256))
}

const STAGING_PREFIX: &str = ".kiln-staging-";

/// What `write` changed.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Outputs whose tree changed.
    pub written: Vec<String>,
    /// Outputs already up to date.
    pub unchanged: Vec<String>,
    /// Outputs removed because nothing renders them any more.
    pub removed: Vec<String>,
}

/// A hook for the atomicity tests: fail after staging this many files.
fn injected_failure_after() -> Option<usize> {
    std::env::var("KILN_TEST_FAIL_AFTER_FILES").ok()?.parse().ok()
}

/// Why `out/` could not be written or compared.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("cannot write {}: {source}", out_dir.display())]
    Write { out_dir: PathBuf, source: io::Error },
    #[error("cannot read {} to compare it: {source}", out_dir.display())]
    Check { out_dir: PathBuf, source: io::Error },
}

/// The lock that serialises kiln processes writing one `out/`.
pub const LOCK: &str = ".kiln.lock";

/// Takes the `out/` lock, waiting for another kiln that holds it
/// (`waiting` is called once first); released when the file is dropped.
pub fn lock(out_dir: &Path, waiting: impl FnOnce()) -> Result<fs::File, EmitError> {
    let fail = |source| EmitError::Write {
        out_dir: out_dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(out_dir).map_err(fail)?;
    // Opened, never truncated: an up-to-date out/ is left exactly as it is.
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out_dir.join(LOCK))
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            waiting();
            file.lock().map_err(fail)?;
            Ok(file)
        }
        Err(fs::TryLockError::Error(e)) => Err(fail(e)),
    }
}

/// Writes `outputs` under `out_dir`; `kept` are outputs already up to date
/// there (see `vouched`). With `prune`, output directories that hold a
/// `plan.json` but are neither rendered nor kept are removed.
pub fn write(out_dir: &Path, outputs: &[Output], kept: &[String], prune: bool) -> Result<WriteReport, EmitError> {
    write_io(out_dir, outputs, kept, prune).map_err(|source| EmitError::Write {
        out_dir: out_dir.to_path_buf(),
        source,
    })
}

fn write_io(out_dir: &Path, outputs: &[Output], kept: &[String], prune: bool) -> io::Result<WriteReport> {
    fs::create_dir_all(out_dir)?;
    remove_leftover_staging(out_dir)?;

    let mut report = WriteReport {
        unchanged: kept.to_vec(),
        ..WriteReport::default()
    };
    let mut staged = Vec::new();
    let budget = injected_failure_after().map(std::sync::atomic::AtomicUsize::new);
    let result = (|| -> io::Result<()> {
        for output in outputs {
            let files = &output.files;
            let target = out_dir.join(&output.name);
            let stale: BTreeSet<String> = stale_files(&target, files)?.into_iter().collect();
            if stale.is_empty() {
                report.unchanged.push(output.name.clone());
                continue;
            }
            let staging = out_dir.join(format!("{STAGING_PREFIX}{}", output.name));
            staged.push((staging.clone(), target.clone(), output.name.clone()));
            stage(&staging, &target, files, &stale, budget.as_ref())?;
        }
        if !staged.is_empty() {
            rustix::fs::syncfs(fs::File::open(out_dir)?)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (staging, ..) in &staged {
            let _ = fs::remove_dir_all(staging);
        }
        return Err(e);
    }

    for (staging, target, name) in staged {
        if target.exists() {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &staging,
                rustix::fs::CWD,
                &target,
                rustix::fs::RenameFlags::EXCHANGE,
            )?;
            fs::remove_dir_all(&staging)?;
        } else {
            fs::rename(&staging, &target)?;
        }
        report.written.push(name);
    }
    report.unchanged.sort();
    if prune {
        let keep: BTreeSet<&str> = outputs
            .iter()
            .map(|o| o.name.as_str())
            .chain(kept.iter().map(String::as_str))
            .collect();
        for name in rendered_outputs(out_dir)? {
            if !keep.contains(name.as_str()) {
                fs::remove_dir_all(out_dir.join(&name))?;
                report.removed.push(name);
            }
        }
    }
    Ok(report)
}

fn stage(
    staging: &Path,
    target: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    stale: &BTreeSet<String>,
    budget: Option<&std::sync::atomic::AtomicUsize>,
) -> io::Result<()> {
    fs::create_dir_all(staging)?;
    let dirs: BTreeSet<PathBuf> = files
        .keys()
        .filter_map(|p| Path::new(p).parent().map(Path::to_path_buf))
        .collect();
    for dir in dirs {
        fs::create_dir_all(staging.join(dir))?;
    }
    files.par_iter().try_for_each(|(path, bytes)| {
        use std::sync::atomic::Ordering::SeqCst;
        if budget.is_some_and(|b| b.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_err()) {
            return Err(io::Error::other("injected failure (KILN_TEST_FAIL_AFTER_FILES)"));
        }
        let (old, new) = (target.join(path), staging.join(path));
        // Unchanged files (already compared by `stale_files`) are linked,
        // never rewritten.
        if !stale.contains(path) && fs::hard_link(&old, &new).is_ok() {
            return Ok(());
        }
        fs::write(&new, bytes)
    })
}

fn remove_leftover_staging(out_dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(out_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Names of the directories under `out_dir` that kiln rendered (they hold
/// a `plan.json`), sorted.
pub fn rendered_outputs(out_dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(out_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().join(PLAN_FILE).is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Paths (relative to `dir`) that differ from `files`: changed, missing,
/// or present but no longer rendered.
pub fn stale_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> io::Result<Vec<String>> {
    let mut stale: Vec<String> = files
        .par_iter()
        .filter(|(path, bytes)| fs::read(dir.join(path)).map_or(true, |current| current != **bytes))
        .map(|(path, _)| path.clone())
        .collect();
    if dir.is_dir() {
        for entry in walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok) {
            if entry.file_type().is_file() {
                let rel = entry.path().strip_prefix(dir).expect("walked under dir");
                let rel = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                if !files.contains_key(&rel) {
                    stale.push(rel);
                }
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Everything under `out_dir` that differs from a fresh render, as
/// `<name>/<path>`; `kept` are outputs already found up to date (see
/// `vouched`). With `all`, outputs nothing renders any more count too.
pub fn check(out_dir: &Path, outputs: &[Output], kept: &[String], all: bool) -> Result<Vec<String>, EmitError> {
    check_io(out_dir, outputs, kept, all).map_err(|source| EmitError::Check {
        out_dir: out_dir.to_path_buf(),
        source,
    })
}

fn check_io(out_dir: &Path, outputs: &[Output], kept: &[String], all: bool) -> io::Result<Vec<String>> {
    let mut stale = Vec::new();
    for output in outputs {
        for path in stale_files(&out_dir.join(&output.name), &output.files)? {
            stale.push(format!("{}/{path}", output.name));
        }
    }
    if all {
        let rendered: BTreeSet<&str> = outputs
            .iter()
            .map(|o| o.name.as_str())
            .chain(kept.iter().map(String::as_str))
            .collect();
        for name in rendered_outputs(out_dir)? {
            if !rendered.contains(name.as_str()) {
                stale.push(format!("{name}/ (no longer rendered)"));
            }
        }
    }
    Ok(stale)
}
