//! `kiln render` (write out/) and `kiln validate` (render in memory only).

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

use super::failure::{exit, plural, Failure};
use super::session::{Session, TextOrJson, ValueArgs};
use kiln_compiler::emit::WriteReport;
use kiln_compiler::progress::step;
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
    let options = session.options(args.names, &args.values)?;
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
            return print_report(&report, started, json, stdout, stderr);
        }
        found => found.map(|f| f.inputs),
    };
    let compiled = session.compile_changed(&options)?;
    let (outputs, fresh) = (&compiled.rendered, &compiled.fresh);
    // One kiln writes out/ at a time; another waits.
    let _lock = kiln_compiler::emit::lock(out_dir, || {
        let _ = writeln!(stderr, "waiting for another kiln writing {}", out_dir.display());
    })?;
    // What is as the last full render left it is patched, not swapped; the
    // record goes first, so a write cut short is never taken for one.
    let untouched = stat::untouched_outputs(out_dir);
    stat::forget(out_dir);
    let report = step(progress, "write", None, || {
        kiln_compiler::emit::write(out_dir, outputs, fresh, all, &untouched)
    })?;
    if let Some(before) = &before {
        let names: Vec<String> = report.written.iter().chain(&report.unchanged).cloned().collect();
        // Only a shortcut: a failure to record costs the next render its speed.
        let _ = stat::record(&session.repo, out_dir, &options, before, &names);
    }
    // The process ends with this command: freeing the rendered fleet
    // (hundreds of MB in small pieces) one by one would only add to it.
    std::mem::forget(compiled);
    print_report(&report, started, json, stdout, stderr)
}

/// What a render wrote and kept, as JSON on stdout or a line on stderr.
fn print_report(
    report: &WriteReport,
    started: Instant,
    json: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, Failure> {
    let count = plural(report.written.len() + report.unchanged.len(), "output", "outputs");
    if json {
        let body = json!({"written": report.written, "unchanged": report.unchanged, "removed": report.removed});
        writeln!(stdout, "{body}")?;
        return Ok(exit::OK);
    }
    let removed = if report.removed.is_empty() {
        String::new()
    } else {
        format!(", removed {}", report.removed.join(", "))
    };
    writeln!(
        stderr,
        "rendered {count} in {} ms: {} written, {} unchanged{removed}",
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
