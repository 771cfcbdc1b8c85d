//! The four ways to show a diff: `unified` (for terminals), `markdown`
//! (for a pull-request comment), `json` (for tools; `docs/diff.schema.json`)
//! and `stat` (one line per file).

use std::fmt::Write;

use serde_json::Value;

use super::{Diff, FileDiff, ResourceDiff};

/// How a diff is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Unified,
    Markdown,
    Json,
    Stat,
}

/// Longest markdown section per output, and in all: a GitHub comment holds
/// 65,536 characters.
const SECTION_LIMIT: usize = 12_000;
const MARKDOWN_LIMIT: usize = 60_000;

pub fn render(diff: &Diff, format: Format, color: bool) -> String {
    match format {
        Format::Unified => unified(diff, color),
        Format::Markdown => markdown(diff),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(diff).expect("diffs serialize");
            text.push('\n');
            text
        }
        Format::Stat => stat(diff),
    }
}

fn short(value: &Option<Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            let text = v.to_string();
            if text.len() > 80 {
                format!(
                    "{}…",
                    &text[..text.char_indices().nth(77).map_or(text.len(), |(i, _)| i)]
                )
            } else {
                text
            }
        }
    }
}

/// `spec.replicas: 3 → 5`, `+ spec.x: v`, `- spec.y: v`.
fn change_line(c: &super::PathChange) -> String {
    match (&c.old, &c.new) {
        (None, new) => format!("+ {}: {}", c.path, short(new)),
        (old, None) => format!("- {}: {}", c.path, short(old)),
        (old, new) => format!("{}: {} → {}", c.path, short(old), short(new)),
    }
}

fn resource_heading(r: &ResourceDiff) -> String {
    match r.status {
        "changed" => r.id.clone(),
        status => format!("{} ({status})", r.id),
    }
}

fn file_heading(f: &FileDiff) -> String {
    match (&f.from, f.status) {
        (Some(from), _) => format!("{from} → {}", f.path),
        (None, status) => format!("{} ({status})", f.path),
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn diff_line(&self, line: &str) -> String {
        if line.starts_with("+++") || line.starts_with("---") {
            self.wrap("1", line)
        } else if line.starts_with('+') {
            self.wrap("32", line)
        } else if line.starts_with('-') {
            self.wrap("31", line)
        } else if line.starts_with("@@") {
            self.wrap("36", line)
        } else {
            line.to_string()
        }
    }
}

fn unified(diff: &Diff, color: bool) -> String {
    let paint = Paint(color);
    let mut out = String::new();
    if diff.is_empty() {
        let _ = writeln!(
            out,
            "no differences in rendered output between {} and {}",
            diff.base, diff.head
        );
        return out;
    }
    for o in &diff.outputs {
        let _ = writeln!(
            out,
            "{}",
            paint.wrap(
                "1;34",
                &format!("== out/{}/ ({}, {} files)", o.name, o.status, o.files.len())
            )
        );
        for f in &o.files {
            let _ = writeln!(out, "{}", paint.wrap("1", &format!("-- {}", file_heading(f))));
            for r in &f.resources {
                let _ = writeln!(out, "   {}", resource_heading(r));
                for c in &r.changes {
                    let _ = writeln!(out, "     {}", change_line(c));
                }
            }
            for line in f.unified.lines() {
                let _ = writeln!(out, "{}", paint.diff_line(line));
            }
        }
    }
    out
}

fn counts(o: &super::OutputDiff) -> (usize, usize, usize) {
    let n = |s: &str| o.files.iter().filter(|f| f.status == s).count();
    (n("added"), n("removed"), n("modified") + n("renamed"))
}

fn markdown(diff: &Diff) -> String {
    let mut out = format!("### kiln diff: `{}` → `{}`\n\n", diff.base, diff.head);
    if diff.is_empty() {
        out.push_str("No differences in rendered output.\n");
        return out;
    }
    out.push_str("| output | status | files added | removed | changed |\n|---|---|---:|---:|---:|\n");
    for o in &diff.outputs {
        let (a, r, c) = counts(o);
        let _ = writeln!(out, "| `{}` | {} | {a} | {r} | {c} |", o.name, o.status);
    }
    out.push('\n');
    let mut omitted = Vec::new();
    for o in &diff.outputs {
        let mut section = String::new();
        let mut cut_files = 0;
        for f in &o.files {
            let mut part = match &f.from {
                Some(from) => format!("**`{from}`** → **`{}`** (renamed)\n\n", f.path),
                None => format!("**`{}`** ({})\n\n", f.path, f.status),
            };
            for r in &f.resources {
                for c in &r.changes {
                    let _ = writeln!(part, "- `{}`: `{}`", resource_heading(r), change_line(c));
                }
                if r.changes.is_empty() {
                    let _ = writeln!(part, "- `{}`", resource_heading(r));
                }
            }
            if !f.resources.is_empty() {
                part.push('\n');
            }
            if !f.unified.is_empty() {
                let _ = write!(part, "```diff\n{}```\n", f.unified);
            }
            part.push('\n');
            if section.len() + part.len() > SECTION_LIMIT {
                cut_files += 1;
                continue;
            }
            section.push_str(&part);
        }
        if cut_files > 0 {
            let _ = writeln!(
                section,
                "_{cut_files} more file(s) not shown here: run `kiln diff` for the full diff._\n"
            );
        }
        let block = format!(
            "<details><summary><code>out/{}/</code>: {} file(s) {}</summary>\n\n{section}</details>\n\n",
            o.name,
            o.files.len(),
            o.status
        );
        if out.len() + block.len() > MARKDOWN_LIMIT {
            omitted.push(o.name.as_str());
        } else {
            out.push_str(&block);
        }
    }
    if !omitted.is_empty() {
        let _ = writeln!(
            out,
            "_Details of {} output(s) left out to fit a comment ({}): run `kiln diff` for them._",
            omitted.len(),
            omitted.join(", ")
        );
    }
    out
}

fn stat(diff: &Diff) -> String {
    let mut out = String::new();
    let rows: Vec<(String, &FileDiff)> = diff
        .outputs
        .iter()
        .flat_map(|o| o.files.iter().map(move |f| (format!("{}/{}", o.name, f.path), f)))
        .collect();
    let width = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let (mut ins, mut del) = (0, 0);
    for (path, f) in &rows {
        ins += f.insertions;
        del += f.deletions;
        let bar = format!(
            "{}{}",
            "+".repeat(f.insertions.min(40)),
            "-".repeat(f.deletions.min(40))
        );
        let _ = writeln!(out, " {path:<width$} | {:>5} {bar}", f.insertions + f.deletions);
    }
    let _ = writeln!(
        out,
        " {} files changed in {} outputs, {ins} insertions(+), {del} deletions(-)",
        rows.len(),
        diff.outputs.len()
    );
    out
}
