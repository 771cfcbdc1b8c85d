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

use std::collections::BTreeMap;
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

const HEADER: &str = "kiln stat cache 3";
/// The line between the inputs' entries and `out/`'s.
const OUT_MARK: &str = "--- out/";
/// The line before an output's machine keys (`--- keys <output>`), after
/// `out/`'s entries.
const KEYS_MARK: &str = "--- keys ";

/// Output name → machine name → the machine's key (`render::Previous`).
pub type Keys = BTreeMap<String, BTreeMap<String, String>>;

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
    Some(of(base, path, &fs::symlink_metadata(path).ok()?))
}

/// An entry's `lstat` as recorded, `path` relative to `base`.
fn of(base: &Path, path: &Path, m: &fs::Metadata) -> Stat {
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
    Stat {
        path: path.strip_prefix(base).unwrap_or(path).to_string_lossy().into_owned(),
        kind,
        size: m.len(),
        mtime: nanos(m.mtime(), m.mtime_nsec()),
        ctime: nanos(m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
        mode: m.mode(),
    }
}

/// Every entry under `dir` (itself included), `path` relative to `base`,
/// never following a symbolic link, directories in parallel. Names
/// starting with `.kiln` (the lock, this cache, staging directories) are
/// kiln's own and left out. A missing `dir` is an entry of kind `-`.
fn walk(base: &Path, dir: &Path) -> Vec<Stat> {
    walk_from(base, dir, stat(base, dir))
}

/// `walk` of a directory whose own `lstat` is `top` (read from its
/// parent's entry, not by its path).
fn walk_from(base: &Path, dir: &Path, top: Option<Stat>) -> Vec<Stat> {
    let Some(top) = top else {
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
            .map(|e| {
                // Stat'ed relative to the open directory (`fstatat`), not
                // by its whole path; never following a link.
                let path = e.path();
                let stat = e.metadata().ok().map(|m| of(base, &path, &m));
                match stat {
                    Some(s) if s.kind == 'd' => walk_from(base, &path, Some(s)),
                    stat => stat.into_iter().collect(),
                }
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

/// A record as read back: its key, the outputs it names, its entries
/// (inputs, then `out/`) and when it was written.
struct Record {
    key: String,
    names: Vec<String>,
    inputs: String,
    outputs: String,
    keys: Keys,
    written: i128,
}

fn read_record(out_dir: &Path) -> Option<Record> {
    let path = out_dir.join(FILE);
    let text = fs::read_to_string(&path).ok()?;
    let written = fs::symlink_metadata(&path).ok()?;
    let mut lines = text.split_inclusive('\n');
    (lines.next()?.trim_end() == HEADER).then_some(())?;
    let key = lines.next()?.trim_end().strip_prefix("key ")?.to_string();
    let names = lines
        .next()?
        .trim_end()
        .strip_prefix("outputs ")?
        .split(' ')
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    let rest: String = lines.collect();
    let (inputs, rest) = rest.split_once(&format!("{OUT_MARK}\n"))?;
    // The keys follow the last entry line.
    let keys_at = match rest.starts_with(KEYS_MARK) {
        true => Some(0),
        false => rest.find(&format!("\n{KEYS_MARK}")).map(|at| at + 1),
    };
    let (outputs, key_lines) = rest.split_at(keys_at.unwrap_or(rest.len()));
    let mut keys = Keys::new();
    let mut current = None;
    for line in key_lines.lines() {
        match line.strip_prefix(KEYS_MARK) {
            Some(output) => current = Some(keys.entry(output.to_string()).or_default()),
            None => {
                let (machine, key) = line.split_once('\t')?;
                current.as_mut()?.insert(machine.to_string(), key.to_string());
            }
        }
    }
    Some(Record {
        key,
        names,
        inputs: inputs.to_string(),
        outputs: outputs.to_string(),
        keys,
        written: nanos(written.mtime(), written.mtime_nsec()),
    })
}

/// Whether an entry changed so recently that a change within the same
/// clock tick could have kept its times.
fn racy(s: &Stat, written: i128) -> bool {
    s.mtime >= written || s.ctime >= written
}

/// What a render finds before it reads anything.
pub struct Found {
    /// The names of the outputs when nothing changed since the recorded
    /// full render: same key, every input and output entry as recorded,
    /// none of them as new as the record.
    pub unchanged: Option<Vec<String>>,
    /// The inputs' stats, taken before they are read (for `record`).
    pub inputs: Inputs,
}

/// Compares the inputs, then (only when they are as recorded) `out/`, with
/// the record.
pub fn check(root: &Path, out_dir: &Path, options: &Options) -> Found {
    let inputs = inputs(root);
    let unchanged = read_record(out_dir).and_then(|record| {
        let same_inputs = record.key == key(options)
            && inputs.0.iter().map(line).collect::<String>() == record.inputs
            && !inputs.0.iter().any(|s| racy(s, record.written));
        same_inputs.then_some(())?;
        let outputs = outputs(out_dir);
        let same = outputs.iter().map(line).collect::<String>() == record.outputs;
        (same && !outputs.iter().any(|s| racy(s, record.written))).then_some(record.names)
    });
    Found { unchanged, inputs }
}

/// The output an entry of `out/` belongs to: its first path component.
fn output_of(path: &str) -> &str {
    path.split('/').next().unwrap_or_default()
}

/// The outputs whose directory under `out/` is exactly as the last full
/// render left it, with the keys it recorded for their machines: every
/// entry as recorded and none as new as the record, whatever changed
/// among the inputs since. Their `plan.json` says what is on disk without
/// a file being read. (Looked at before rendering, without the lock: a
/// write checks each plan again, see `emit::write`.)
pub fn untouched_outputs(out_dir: &Path) -> Untouched {
    let Some(mut record) = read_record(out_dir) else {
        return Untouched::default();
    };
    let mut now: BTreeMap<&str, (String, bool)> = BTreeMap::new();
    let snapshot = outputs(out_dir);
    for s in &snapshot {
        let entry = now.entry(output_of(&s.path)).or_default();
        entry.0.push_str(&line(s));
        entry.1 |= racy(s, record.written);
    }
    let mut recorded: BTreeMap<&str, String> = BTreeMap::new();
    for l in record.outputs.split_inclusive('\n') {
        let path = l.trim_end().rsplit('\t').next().unwrap_or_default();
        recorded.entry(output_of(path)).or_default().push_str(l);
    }
    let outputs = record
        .names
        .into_iter()
        .filter(|name| {
            let (now, then) = (now.get(name.as_str()), recorded.get(name.as_str()));
            matches!((now, then), (Some((now, false)), Some(then)) if now == then)
        })
        .map(|name| {
            let keys = record.keys.remove(&name).unwrap_or_default();
            (name, keys)
        })
        .collect();
    Untouched {
        outputs,
        snapshot: Some(snapshot),
    }
}

/// What `untouched_outputs` found.
#[derive(Debug, Default)]
pub struct Untouched {
    /// The untouched outputs and their machine keys.
    pub outputs: Keys,
    /// Every entry under `out/` as it was then (when there was a record to
    /// compare with): what `record` starts from.
    snapshot: Option<Vec<Stat>>,
}

/// What a full render did, for its record.
pub struct Done<'a> {
    /// The outputs it wrote or kept.
    pub names: &'a [String],
    /// The machine keys of each output as it now is.
    pub keys: &'a Keys,
    /// Outputs whose tree was replaced or removed (`emit::WriteReport`).
    pub trees: &'a [String],
    /// Paths (`<output>/<path>`) written or removed in place.
    pub paths: &'a [String],
}

/// `out/`'s entries now: `snapshot` with what the write changed stat'ed
/// again (a replaced tree walked again, a patched file and each directory
/// above it up to its output stat'ed again), or a walk of all of it. An
/// entry changed by anyone else since the snapshot keeps its old stat, so
/// the next render sees the change.
fn after_write(out_dir: &Path, snapshot: Option<Vec<Stat>>, done: &Done) -> Vec<Stat> {
    let Some(snapshot) = snapshot else {
        return outputs(out_dir);
    };
    let in_tree = |path: &str| done.trees.iter().any(|t| t == output_of(path));
    let mut again: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for path in done.paths {
        let mut at = path.as_str();
        loop {
            again.insert(at);
            match at.rfind('/') {
                Some(i) => at = &at[..i],
                None => break,
            }
        }
    }
    let mut all: BTreeMap<String, Stat> = snapshot
        .into_iter()
        .filter(|s| !in_tree(&s.path) && !again.contains(s.path.as_str()))
        .map(|s| (s.path.clone(), s))
        .collect();
    for tree in done.trees {
        all.extend(
            walk(out_dir, &out_dir.join(tree))
                .into_iter()
                .filter(|s| s.kind != '-')
                .map(|s| (s.path.clone(), s)),
        );
    }
    for path in again {
        if let Some(s) = stat(out_dir, &out_dir.join(path)) {
            all.insert(s.path.clone(), s);
        }
    }
    all.into_values().collect()
}

/// Records the stats after a full render that wrote or kept `names`, when
/// the inputs are still as they were before the render read them
/// (`before`), with the keys of the machines of each output (those its
/// files are as rendered from). Called with `out/` locked.
pub fn record(
    root: &Path,
    out_dir: &Path,
    options: &Options,
    before: &Inputs,
    untouched: Untouched,
    done: &Done,
) -> io::Result<()> {
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
    let names = done.names;
    let mut text = format!("{HEADER}\nkey {}\noutputs {}\n", key(options), names.join(" "));
    text.extend(after.0.iter().map(line));
    text.push_str(OUT_MARK);
    text.push('\n');
    text.extend(after_write(out_dir, untouched.snapshot, done).iter().map(line));
    for (output, machines) in done.keys.iter().filter(|(name, _)| names.contains(name)) {
        text.push_str(&format!("{KEYS_MARK}{output}\n"));
        text.extend(machines.iter().map(|(machine, key)| format!("{machine}\t{key}\n")));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // As a patch does: a new file renamed over the old one.
        let tmp = dir.join(".kiln-tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, path).unwrap();
    }

    /// The record after a write is what a walk would find for everything
    /// the write changed, and the old stat for what it did not (an edit
    /// by someone else then shows in the next render).
    #[test]
    fn the_record_after_a_write_restats_what_it_changed() {
        let out = tempfile::tempdir().unwrap();
        let out = out.path();
        for rel in ["site/a/x", "site/b/y", "site/plan.json", "other/z", "other/w/v"] {
            put(out, rel, "old");
        }
        let snapshot = outputs(out);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // A patch of `site`: x rewritten, c/new added, b/y and its directory
        // removed, plan.json last; `other` swapped whole.
        put(out, "site/a/x", "new");
        put(out, "site/c/new", "new");
        fs::remove_file(out.join("site/b/y")).unwrap();
        fs::remove_dir(out.join("site/b")).unwrap();
        put(out, "site/plan.json", "new");
        fs::remove_dir_all(out.join("other")).unwrap();
        put(out, "other/z", "new");
        let paths: Vec<String> = ["site/a/x", "site/c/new", "site/b/y", "site/plan.json"]
            .map(String::from)
            .to_vec();
        let done = Done {
            names: &[],
            keys: &Keys::new(),
            trees: &["other".to_string()],
            paths: &paths,
        };
        assert_eq!(after_write(out, Some(snapshot.clone()), &done), outputs(out));
        // An edit the write did not make keeps its old stat.
        put(out, "site/a/x", "by hand");
        let done = Done {
            paths: &[],
            trees: &[],
            ..done
        };
        let now = outputs(out);
        let recorded = after_write(out, Some(now.clone()), &done);
        assert_eq!(recorded, now);
        let old_x = snapshot.iter().find(|s| s.path == "site/a/x").unwrap();
        let kept = after_write(out, Some(snapshot.clone()), &done);
        assert_eq!(kept.iter().find(|s| s.path == "site/a/x"), Some(old_x));
    }
}
