//! `kiln render` (write out/) and `kiln validate` (render in memory only).

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

use super::failure::{exit, plural, Failure};
use super::session::{Session, TextOrJson, ValueArgs};
use kiln_compiler::progress::step;

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
    let compiled = session.compile_changed(args.names, &args.values)?;
    let (outputs, fresh) = (&compiled.rendered, &compiled.fresh);
    let count = plural(outputs.len() + fresh.len(), "output", "outputs");
    // One kiln writes out/ at a time; another waits.
    let _lock = kiln_compiler::emit::lock(out_dir, || {
        let _ = writeln!(stderr, "waiting for another kiln writing {}", out_dir.display());
    })?;
    let report = step(progress, "write", None, || {
        kiln_compiler::emit::write(out_dir, outputs, fresh, all)
    })?;
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
