//! `kiln render` (write out/) and `kiln validate` (render in memory only).

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

use super::failure::{exit, plural, Failure};
use super::session::{Session, TextOrJson, ValueArgs};
use std::collections::BTreeSet;

use kiln_compiler::emit::WriteReport;
use kiln_compiler::progress::step;
use kiln_compiler::render::{Previous, PreviousOutput};
use kiln_compiler::stat;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Outputs to render (default: all).
    pub names: Vec<String>,
    /// Write nothing; exit 1 listing stale files when out/ differs from a fresh render.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub values: ValueArgs,
    /// Report (and report errors) as JSON on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    pub names: Vec<String>,
    #[command(flatten)]
    pub values: ValueArgs,
    /// Report (and report errors) as JSON on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

pub(super) fn render(
    session: &Session,
    args: RenderArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, Failure> {
    let started = Instant::now();
    let all = args.names.is_empty();
    let json = args.format == TextOrJson::Json;
    let (out_dir, progress) = (&session.out_dir, session.progress);
    if args.check {
        // Everything is rendered and compared: `--check` is what guards a
        // pull request, and a plan's digests are not a signature (a pull
        // request can rewrite a file and every digest that names it).
        let outputs = session.compile(args.names, &args.values)?;
        let count = plural(outputs.len(), "output", "outputs");
        let stale = step(progress, "check", None, || {
            kiln_compiler::emit::check(out_dir, &outputs, &[], all)
        })?;
        if json {
            writeln!(stdout, "{}", json!({"upToDate": stale.is_empty(), "stale": stale}))?;
            return Ok(if stale.is_empty() { exit::OK } else { exit::DIFFERENCES });
        }
        if stale.is_empty() {
            writeln!(stdout, "out/ is up to date ({count})")?;
            return Ok(exit::OK);
        }
        writeln!(stdout, "out/ is stale; these files differ from a fresh render:")?;
        for path in &stale {
            writeln!(stdout, "  {path}")?;
        }
        return Ok(exit::DIFFERENCES);
    }
    let mut options = session.options(args.names, &args.values)?;
    // The inputs as they are before they are read; when nothing changed
    // since the last full render (the stat cache), done.
    let before = match all.then(|| stat::check(&session.repo, out_dir, &options)) {
        Some(stat::Found {
            unchanged: Some(names), ..
        }) => {
            let report = WriteReport {
                unchanged: names,
                ..WriteReport::default()
            };
            return print_report(&report, 0, started, json, stdout, stderr);
        }
        found => found.map(|f| f.inputs),
    };
    // What the last full render left: the machines it rendered that have
    // not changed since are not rendered again.
    let untouched = stat::untouched_outputs(out_dir);
    options.previous = Some(previous(out_dir, &untouched.outputs));
    let compiled = session.compile_changed(&options)?;
    let (outputs, fresh) = (&compiled.rendered, &compiled.fresh);
    // One kiln writes out/ at a time; another waits.
    let _lock = kiln_compiler::emit::lock(out_dir, || {
        let _ = writeln!(stderr, "waiting for another kiln writing {}", out_dir.display());
    })?;
    // What was as the last full render left it is patched, not swapped:
    // only files whose SHA-256 differs from the plan on disk are written,
    // and a reused file that plan no longer lists as it was is an error
    // (another kiln wrote it meanwhile). An edit by anyone else since the
    // look above keeps its old stat in the record, so the next render sees
    // it. The record goes first, so a write cut short is never taken for
    // one.
    let patchable: BTreeSet<String> = untouched.outputs.keys().cloned().collect();
    stat::forget(out_dir);
    let report = step(progress, "write", None, || {
        kiln_compiler::emit::write(out_dir, outputs, fresh, all, &patchable)
    })?;
    if let Some(before) = &before {
        let names: Vec<String> = report.written.iter().chain(&report.unchanged).cloned().collect();
        // The machine keys of each output as it now is: rendered now, or
        // kept as the last render left it.
        let mut keys: stat::Keys = outputs
            .iter()
            .map(|o| (o.name.clone(), o.machine_keys.clone()))
            .collect();
        let kept_keys = untouched
            .outputs
            .iter()
            .filter(|(name, keys)| fresh.contains(name) && !keys.is_empty());
        keys.extend(kept_keys.map(|(name, keys)| (name.clone(), keys.clone())));
        keys.extend(compiled.fresh_keys.clone());
        let done = stat::Done {
            names: &names,
            keys: &keys,
            trees: &report.trees,
            paths: &report.paths,
        };
        // Only a shortcut: a failure to record costs the next render its speed.
        let _ = stat::record(&session.repo, out_dir, &options, before, untouched, &done);
    }
    let reused: usize = outputs.iter().map(|o| o.machines_reused).sum();
    // The process ends with this command: freeing the rendered fleet
    // (hundreds of MB in small pieces) one by one would only add to it.
    std::mem::forget(compiled);
    print_report(&report, reused, started, json, stdout, stderr)
}

/// What the last full render left that this one may reuse: each untouched
/// output's machine keys and the files its plan lists.
fn previous(out_dir: &std::path::Path, untouched: &stat::Keys) -> Previous {
    let outputs = untouched
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .filter_map(|(name, keys)| {
            let files = kiln_compiler::emit::listed_files(out_dir, name)?;
            Some((
                name.clone(),
                PreviousOutput {
                    keys: keys.clone(),
                    files,
                },
            ))
        })
        .collect();
    Previous { outputs }
}

/// What a render wrote and kept, as JSON on stdout or a line on stderr.
fn print_report(
    report: &WriteReport,
    machines_reused: usize,
    started: Instant,
    json: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, Failure> {
    let count = plural(report.written.len() + report.unchanged.len(), "output", "outputs");
    if json {
        let body = json!({
            "written": report.written,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "machinesReused": machines_reused,
        });
        writeln!(stdout, "{body}")?;
        return Ok(exit::OK);
    }
    let removed = if report.removed.is_empty() {
        String::new()
    } else {
        format!(", removed {}", report.removed.join(", "))
    };
    let reused = match machines_reused {
        0 => String::new(),
        n => format!(" ({} reused as rendered before)", plural(n, "machine", "machines")),
    };
    writeln!(
        stderr,
        "rendered {count} in {} ms: {} written, {} unchanged{removed}{reused}",
        started.elapsed().as_millis(),
        report.written.len(),
        report.unchanged.len(),
    )?;
    Ok(exit::OK)
}

pub(super) fn validate(session: &Session, args: ValidateArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let started = Instant::now();
    let outputs = session.compile(args.names, &args.values)?;
    let files: usize = outputs.iter().map(|o| o.files.len()).sum();
    let ms = started.elapsed().as_millis();
    if args.format == TextOrJson::Json {
        let list: Vec<Value> = outputs
            .iter()
            .map(|o| json!({"name": o.name, "kind": o.kind, "files": o.files.len()}))
            .collect();
        writeln!(
            stdout,
            "{}",
            json!({"ok": true, "outputs": list, "elapsedMs": ms as u64})
        )?;
    } else {
        writeln!(
            stdout,
            "ok: {}, {} valid in {ms} ms",
            plural(outputs.len(), "output", "outputs"),
            plural(files, "file", "files")
        )?;
    }
    Ok(exit::OK)
}
