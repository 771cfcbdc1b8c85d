//! Stage 5, emit: seal each rendered output with its `plan.json` and write
//! it to `out/<name>/` atomically, or compare it with what is there.
//!
//! An output whose directory the stat cache vouches for (exactly as the
//! last full render left it, see `stat::untouched_outputs`) is *patched*:
//! its `plan.json` says what is on disk, so the files whose SHA-256
//! changed are found without reading one, written beside their targets,
//! flushed, and renamed over them one by one, `plan.json` last; files no
//! longer rendered are removed after. Any other output is staged next to
//! its target as a complete tree (unchanged files are hard links to the
//! current ones, so they are never rewritten), flushed, and swapped in
//! with one `renameat2(RENAME_EXCHANGE)`.
//!
//! Either way every file is whole, and a render that fails before its
//! renames leaves every `out/<name>/` as it was; one killed during a
//! patch's renames leaves new files beside an old `plan.json` — which
//! `render --check` reports and the next render, finding the stat cache
//! gone (the caller removes it before writing), repairs. A killed render
//! may leave a `.kiln-staging-*` directory, removed by the next run.

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
    /// Each file's SHA-256 as `plan.json` lists it (filled by `seal`).
    pub sha256: BTreeMap<String, String>,
    /// Files reused from the last render, not rendered again: on disk as
    /// listed (only a render given `render::Previous` has any, and only
    /// `write` can take them: it patches the output around them).
    pub kept: BTreeMap<String, PlannedFile>,
    /// For a site rendered with `render::Previous`: each machine's key,
    /// for the next render to compare.
    pub machine_keys: BTreeMap<String, String>,
    /// How many machines were reused rather than rendered.
    pub machines_reused: usize,
}

impl Output {
    /// An output named `name` with nothing in it yet.
    pub fn empty(name: &str, kind: OutputKind, inputs_digest: String) -> Output {
        Output {
            name: name.to_string(),
            kind,
            inputs_digest,
            files: BTreeMap::new(),
            origins: BTreeMap::new(),
            machines: Vec::new(),
            boot_artifacts: Vec::new(),
            discovery: None,
            sha256: BTreeMap::new(),
            kept: BTreeMap::new(),
            machine_keys: BTreeMap::new(),
            machines_reused: 0,
        }
    }

    /// The plan of the output's files (all but `plan.json` itself).
    pub fn plan(&self) -> Plan {
        Plan {
            name: self.name.clone(),
            kind: self.kind,
            inputs_digest: self.inputs_digest.clone(),
            files: {
                let mut files: Vec<PlannedFile> = self
                    .files
                    .par_iter()
                    .filter(|(path, _)| path.as_str() != PLAN_FILE)
                    .map(|(path, bytes)| PlannedFile {
                        path: path.clone(),
                        size: bytes.len() as u64,
                        sha256: sha256_hex(bytes),
                    })
                    .collect();
                if !self.kept.is_empty() {
                    files.extend(self.kept.values().cloned());
                    files.sort_by(|a, b| a.path.cmp(&b.path));
                }
                files
            },
            machines: self.machines.clone(),
            boot_artifacts: self.boot_artifacts.clone(),
            discovery: self.discovery.clone(),
            plan_digest: String::new(),
        }
    }

    /// Adds `plan.json`, listing every other file with its SHA-256.
    pub fn seal(mut self) -> Output {
        let plan = self.plan();
        self.sha256 = plan.files.iter().map(|f| (f.path.clone(), f.sha256.clone())).collect();
        self.files.insert(PLAN_FILE.to_string(), plan.to_bytes());
        self
    }
}

/// The part of a plan that says what is on disk (the rest of the file is
/// skipped, not built: a site's machines are most of it).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    inputs_digest: String,
    files: Vec<PlannedFile>,
}

impl Listed {
    /// The plan of `out_dir/<name>/`, as written (its bytes) and listed.
    fn read(out_dir: &Path, name: &str) -> Option<(Vec<u8>, Listed)> {
        let bytes = fs::read(out_dir.join(name).join(PLAN_FILE)).ok()?;
        let listed: Listed = serde_json::from_slice(&bytes).ok()?;
        (listed.name == name).then_some((bytes, listed))
    }
}

/// The files `out_dir/<name>/plan.json` lists, by path.
pub fn listed_files(out_dir: &Path, name: &str) -> Option<BTreeMap<String, PlannedFile>> {
    let (_, plan) = Listed::read(out_dir, name)?;
    Some(plan.files.into_iter().map(|f| (f.path.clone(), f)).collect())
}

/// Whether `out_dir/<name>/` is exactly what a render from inputs with
/// `digest` writes, so a render may skip it: its `plan.json` names that
/// digest and vouches for itself (`Plan::vouches`: not edited by hand), and
/// every file it lists is there with its size and SHA-256, and no other
/// file. A hand-edited, missing or extra file means render.
pub fn vouched(out_dir: &Path, name: &str, digest: &str) -> bool {
    let dir = out_dir.join(name);
    let Some((bytes, plan)) = Listed::read(out_dir, name) else {
        return false;
    };
    if plan.inputs_digest != digest || !Plan::vouches(&bytes) {
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
    /// Outputs whose whole tree was swapped in or removed.
    pub trees: Vec<String>,
    /// Files (`<output>/<path>`) a patch wrote or removed.
    pub paths: Vec<String>,
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
/// there (see `vouched`); `untouched` are outputs whose directory is as
/// the last full render left it (see `stat::untouched_outputs`), patched
/// instead of swapped. With `prune`, output directories that hold a
/// `plan.json` but are neither rendered nor kept are removed.
pub fn write(
    out_dir: &Path,
    outputs: &[Output],
    kept: &[String],
    prune: bool,
    untouched: &BTreeSet<String>,
) -> Result<WriteReport, EmitError> {
    write_io(out_dir, outputs, kept, prune, untouched).map_err(|source| EmitError::Write {
        out_dir: out_dir.to_path_buf(),
        source,
    })
}

/// How a staged output goes in.
enum Change {
    /// The staging directory is the whole new tree: swap it in.
    Swap,
    /// The staging directory holds the changed files: rename them in.
    Patch(Changes),
}

/// What differs between an output and what is on disk, by its plan.
#[derive(Debug, Default)]
struct Changes {
    /// New or changed files, `plan.json` last.
    changed: Vec<String>,
    /// Files no longer rendered.
    removed: Vec<String>,
}

fn write_io(
    out_dir: &Path,
    outputs: &[Output],
    kept: &[String],
    prune: bool,
    untouched: &BTreeSet<String>,
) -> io::Result<WriteReport> {
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
            let staging = out_dir.join(format!("{STAGING_PREFIX}{}", output.name));
            let by_plan = untouched
                .contains(&output.name)
                .then(|| changes_by_plan(out_dir, output))
                .flatten();
            // Staged files are written before the output is listed, and
            // listed before an error is returned: a failure removes them.
            let (change, written) = match by_plan {
                Some(changes) if changes.changed.is_empty() => {
                    report.unchanged.push(output.name.clone());
                    continue;
                }
                Some(changes) => {
                    let written = write_files(&staging, files, &changes.changed, budget.as_ref());
                    (Change::Patch(changes), written)
                }
                None if !output.kept.is_empty() => {
                    // Files were reused because the directory was untouched;
                    // it is not any more.
                    return Err(io::Error::other(format!(
                        "{} changed while kiln was rendering it; render again",
                        target.display()
                    )));
                }
                None => {
                    let stale: BTreeSet<String> = stale_files(&target, files)?.into_iter().collect();
                    if stale.is_empty() {
                        report.unchanged.push(output.name.clone());
                        continue;
                    }
                    (Change::Swap, stage(&staging, &target, files, &stale, budget.as_ref()))
                }
            };
            staged.push((staging, target, output.name.clone(), change));
            written?;
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

    for (staging, target, name, change) in staged {
        match change {
            Change::Patch(changes) => {
                let touched = changes.changed.iter().chain(&changes.removed);
                report.paths.extend(touched.map(|path| format!("{name}/{path}")));
                patch(&staging, &target, &changes)?
            }
            Change::Swap if target.exists() => {
                report.trees.push(name.clone());
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &staging,
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::RenameFlags::EXCHANGE,
                )?;
                fs::remove_dir_all(&staging)?;
            }
            Change::Swap => {
                report.trees.push(name.clone());
                fs::rename(&staging, &target)?
            }
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
                report.trees.push(name.clone());
                report.removed.push(name);
            }
        }
    }
    Ok(report)
}

/// What differs between `output` and the directory its plan describes
/// (trusted: the directory is untouched since kiln wrote it), found from
/// the SHA-256es alone; `None` when the plan cannot be read.
fn changes_by_plan(out_dir: &Path, output: &Output) -> Option<Changes> {
    let (bytes, listed) = Listed::read(out_dir, &output.name)?;
    let new_plan = output.files.get(PLAN_FILE)?;
    // An output that was not sealed has no hashes to compare.
    (output.sha256.len() + 1 == output.files.len() + output.kept.len()).then_some(())?;
    let old: BTreeMap<&str, &str> = listed
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    let mut changed: Vec<String> = output
        .sha256
        .iter()
        .filter(|(path, sha)| old.get(path.as_str()) != Some(&sha.as_str()))
        .map(|(path, _)| path.clone())
        .collect();
    if *new_plan != bytes {
        changed.push(PLAN_FILE.to_string());
    }
    let removed = old
        .keys()
        .filter(|path| !output.sha256.contains_key(**path))
        .map(|path| path.to_string())
        .collect();
    Some(Changes { changed, removed })
}

/// Moves a patch's staged files over their targets (`plan.json` last,
/// after the files no longer rendered are gone, with any directory they
/// leave empty).
fn patch(staging: &Path, target: &Path, changes: &Changes) -> io::Result<()> {
    let (plan, files): (Vec<&String>, Vec<&String>) = changes.changed.iter().partition(|p| *p == PLAN_FILE);
    files.par_iter().try_for_each(|path| {
        let dest = target.join(path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(staging.join(path), dest)
    })?;
    for path in &changes.removed {
        let gone = target.join(path);
        match fs::remove_file(&gone) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Empty directories go too, as a fresh render would not make them.
        for dir in gone.ancestors().skip(1).take_while(|d| *d != target) {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    for path in plan {
        fs::rename(staging.join(path), target.join(path))?;
    }
    fs::remove_dir_all(staging)
}

/// Fails once the test hook's file budget is spent.
fn spend(budget: Option<&std::sync::atomic::AtomicUsize>) -> io::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    match budget.map(|b| b.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1))) {
        Some(Err(_)) => Err(io::Error::other("injected failure (KILN_TEST_FAIL_AFTER_FILES)")),
        _ => Ok(()),
    }
}

/// Makes the directories under `base` that `paths` are in.
fn make_parents<'p>(base: &Path, paths: impl Iterator<Item = &'p String>) -> io::Result<()> {
    let dirs: BTreeSet<&Path> = paths.filter_map(|p| Path::new(p).parent()).collect();
    for dir in dirs {
        fs::create_dir_all(base.join(dir))?;
    }
    Ok(())
}

/// Writes `paths` of `files` under `staging`.
fn write_files(
    staging: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    paths: &[String],
    budget: Option<&std::sync::atomic::AtomicUsize>,
) -> io::Result<()> {
    make_parents(staging, paths.iter())?;
    paths.par_iter().try_for_each(|path| {
        spend(budget)?;
        let bytes = files
            .get(path)
            .ok_or_else(|| io::Error::other(format!("{path} was reused but differs from its plan")))?;
        fs::write(staging.join(path), bytes)
    })
}

fn stage(
    staging: &Path,
    target: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    stale: &BTreeSet<String>,
    budget: Option<&std::sync::atomic::AtomicUsize>,
) -> io::Result<()> {
    fs::create_dir_all(staging)?;
    make_parents(staging, files.keys())?;
    files.par_iter().try_for_each(|(path, bytes)| {
        spend(budget)?;
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
    if !dir.is_dir() {
        // Nothing there yet: every file is new, none needs reading.
        return Ok(files.keys().cloned().collect());
    }
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
