//! The stat cache: how `kiln render` knows, without reading a file, that
//! nothing changed since its last render — like git's index.
//!
//! After a full render has written (or kept) every output, it records the
//! `lstat` of every entry under the input directories and under `out/`
//! (type, size, mtime, ctime, inode, mode), with a key naming everything
//! else a render depends on (kiln's version and rendering code, `-f`/`--set`,
//! the limits). The next full render first compares: when every entry and
//! the key are the same, nothing can have changed and it stops there.
//!
//! The record is only made when it is true: the inputs are stat'ed before
//! they are read and again once the outputs are written, and nothing is
//! recorded when they differ (an edit during the render). An entry changed
//! within the clock tick the record was written in could keep its times
//! (git's "racy" case): an entry not older than the record counts as
//! changed. `ctime` cannot be set by `touch`, so a hand edit with its mtime
//! put back is still seen. `render --check` never reads the cache: it
//! renders everything.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::render::Options;

/// The cache's file under `out/` (kiln's own, like `.kiln.lock`; not an
/// output).
pub const FILE: &str = ".kiln.cache";

const HEADER: &str = "kiln stat cache 1";

/// One entry's `lstat`, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    path: String,
    kind: char,
    size: u64,
    mtime: i128,
    ctime: i128,
    ino: u64,
    mode: u32,
}

/// The `lstat` of every entry under the input directories (or that one is
/// missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs(Vec<Stat>);

/// What the key covers: kiln's version and code, the command line's value
/// layers, the limits.
fn key(options: &Options) -> String {
    let mut hasher = Sha256::new();
    hasher.update(crate::render::KILN_VERSION.as_bytes());
    hasher.update(format!("{:?}", options.limits).as_bytes());
    for layer in &options.overrides {
        hasher.update(layer.file.as_bytes());
        hasher.update(serde_json::to_string(&layer.doc.value).unwrap_or_default().as_bytes());
    }
    kiln_plan::hex(&hasher.finalize())
}

fn nanos(seconds: i64, nanos: i64) -> i128 {
    i128::from(seconds) * 1_000_000_000 + i128::from(nanos)
}

/// An entry's `lstat`, `path` relative to `base`.
fn stat(base: &Path, path: &Path) -> Option<Stat> {
    let m = fs::symlink_metadata(path).ok()?;
    let t = m.file_type();
    let kind = if t.is_dir() {
        'd'
    } else if t.is_symlink() {
        'l'
    } else if t.is_file() {
        'f'
    } else {
        'o'
    };
    Some(Stat {
        path: path.strip_prefix(base).unwrap_or(path).to_string_lossy().into_owned(),
        kind,
        size: m.len(),
        mtime: nanos(m.mtime(), m.mtime_nsec()),
        ctime: nanos(m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
        mode: m.mode(),
    })
}

/// Every entry under `dir` (itself included), `path` relative to `base`,
/// never following a symbolic link, directories in parallel. Names
/// starting with `.kiln` (the lock, this cache, staging directories) are
/// kiln's own and left out. A missing `dir` is an entry of kind `-`.
fn walk(base: &Path, dir: &Path) -> Vec<Stat> {
    let Some(top) = stat(base, dir) else {
        return vec![Stat {
            path: dir.strip_prefix(base).unwrap_or(dir).to_string_lossy().into_owned(),
            kind: '-',
            size: 0,
            mtime: 0,
            ctime: 0,
            ino: 0,
            mode: 0,
        }];
    };
    let is_dir = top.kind == 'd';
    let mut found = vec![top];
    if is_dir {
        let entries: Vec<fs::DirEntry> = fs::read_dir(dir)
            .map(|r| r.filter_map(|e| e.ok()).collect())
            .unwrap_or_default();
        let below: Vec<Vec<Stat>> = entries
            .par_iter()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".kiln"))
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(base, &e.path()),
                _ => stat(base, &e.path()).into_iter().collect(),
            })
            .collect();
        found.extend(below.into_iter().flatten());
    }
    found
}

/// The inputs' stats now.
pub fn inputs(root: &Path) -> Inputs {
    let dirs: Vec<PathBuf> = crate::load::INPUT_DIRS.iter().map(|d| root.join(d)).collect();
    let mut all: Vec<Stat> = dirs.par_iter().flat_map_iter(|d| walk(root, d)).collect();
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Inputs(all)
}

/// Every entry under `out/`, not `out/` itself: kiln's own files there
/// (the lock, this cache) change its times.
fn outputs(out_dir: &Path) -> Vec<Stat> {
    let mut all = walk(out_dir, out_dir);
    all.retain(|s| !s.path.is_empty());
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all
}

fn line(s: &Stat) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        s.kind, s.size, s.mtime, s.ctime, s.ino, s.mode, s.path
    )
}

/// The names of the outputs when nothing changed since the recorded full
/// render: same key, every input and output entry as recorded, none of
/// them as new as the record.
pub fn unchanged(root: &Path, out_dir: &Path, options: &Options) -> Option<Vec<String>> {
    let path = out_dir.join(FILE);
    let text = fs::read_to_string(&path).ok()?;
    let written = fs::symlink_metadata(&path).ok()?;
    let written = nanos(written.mtime(), written.mtime_nsec());
    let mut lines = text.lines();
    (lines.next()? == HEADER).then_some(())?;
    (lines.next()?.strip_prefix("key ")? == key(options)).then_some(())?;
    let names: Vec<String> = lines
        .next()?
        .strip_prefix("outputs ")?
        .split(' ')
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    let (inputs, outputs) = rayon::join(|| inputs(root), || outputs(out_dir));
    let now: String = inputs.0.iter().chain(&outputs).map(line).collect();
    let recorded: String = lines.map(|l| format!("{l}\n")).collect();
    let racy = inputs
        .0
        .iter()
        .chain(&outputs)
        .any(|s| s.mtime >= written || s.ctime >= written);
    (now == recorded && !racy).then_some(names)
}

/// Records the stats after a full render that wrote or kept `names`, when
/// the inputs are still as they were before the render read them (`before`).
/// Called with `out/` locked.
pub fn record(root: &Path, out_dir: &Path, options: &Options, before: &Inputs, names: &[String]) -> io::Result<()> {
    let path = out_dir.join(FILE);
    let after = inputs(root);
    if &after != before {
        // An input changed while it was being rendered: the outputs may
        // not be what the inputs now render to.
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = format!("{HEADER}\nkey {}\noutputs {}\n", key(options), names.join(" "));
    for s in after.0.iter().chain(&outputs(out_dir)) {
        text.push_str(&line(s));
    }
    let tmp = out_dir.join(format!("{FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    fs::rename(&tmp, &path)
}

/// Forgets the record (a render that failed or was partial).
pub fn forget(out_dir: &Path) {
    let _ = fs::remove_file(out_dir.join(FILE));
}
