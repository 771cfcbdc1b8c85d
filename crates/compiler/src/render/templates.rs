//! The template engine: every template of the repository compiled once per
//! run, rendered many times, in parallel.
//!
//! `.j2` files are minijinja templates with strict undefined; `.yaml` files
//! under `clusters/` use clusterctl-style `${VAR}` substitution (see
//! `envsubst`). Templates see only the context they are given: no
//! environment, clock or randomness.

use std::sync::atomic::{AtomicU64, Ordering};

use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::yaml::Pos;

/// How much work one render may do: a pull request's templates must not be
/// able to exhaust the machine that renders them (docs/security.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one rendered file may have.
    pub file_bytes: u64,
    /// Bytes all files of a run may have together.
    pub run_bytes: u64,
    /// Template instructions one file's render may execute (minijinja fuel).
    pub fuel: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            file_bytes: 64 << 20,
            run_bytes: 4 << 30,
            fuel: 50_000_000,
        }
    }
}

/// All templates of a repository, compiled.
pub struct Engine {
    env: Environment<'static>,
    pub(crate) limits: Limits,
    /// Bytes rendered so far in this run.
    rendered: AtomicU64,
}

impl Engine {
    /// Compiles every `.j2` file in `files`; all syntax errors are reported.
    pub fn new(files: &Sources, limits: Limits) -> Result<Engine, Diagnostics> {
        let mut env = Environment::new();
        env.set_fuel(Some(limits.fuel));
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(false);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".xml.j2") {
                AutoEscape::Custom("xml".into())
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if matches!(state.auto_escape(), AutoEscape::Custom(name) if name == "xml") && !value.is_safe() {
                let text = if value.is_none() {
                    String::new()
                } else {
                    value.to_string()
                };
                out.write_str(&xml_escape(&text)).map_err(Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("mib", |q: String| quantity_mib(&q).ok_or_else(|| quantity_error(&q)));
        env.add_filter("gib", |q: String| {
            quantity_mib(&q).map(|m| m / 1024).ok_or_else(|| quantity_error(&q))
        });
        env.add_filter("xml", |s: String| minijinja::Value::from_safe_string(xml_escape(&s)));
        env.add_function("secret", |name: String| kiln_plan::placeholder::secret(&name));

        let mut diags = Diagnostics::default();
        for (name, text) in files.iter().filter(|(name, _)| name.ends_with(".j2")) {
            if let Err(e) = env.add_template_owned(name.to_string(), text.to_string()) {
                diags.push(template_diagnostic(name, text, &e, None));
            }
        }
        diags.finish(Engine {
            env,
            limits,
            rendered: AtomicU64::new(0),
        })
    }

    /// Renders the template `name` for `subject` (e.g. `cluster demo`).
    pub fn render(
        &self,
        name: &str,
        context: &minijinja::Value,
        subject: &str,
        files: &Sources,
    ) -> Result<String, Diagnostic> {
        let fail = |e: &Error| {
            let file = e.name().unwrap_or(name);
            let text = files.get(file).map(|t| t.as_ref()).unwrap_or_default();
            template_diagnostic(file, text, e, Some(subject))
        };
        let template = self.env.get_template(name).map_err(|e| fail(&e))?;
        let mut out = Bounded {
            bytes: Vec::new(),
            counted: 0,
            engine: self,
        };
        let rendered = template.render_captured_to(context.clone(), &mut out);
        // The run total is counted in steps: once more at the end, so many
        // small files cannot pass it.
        let over_run = out.count() > self.limits.run_bytes;
        let limit = || Error::new(ErrorKind::InvalidOperation, "output limit");
        rendered
            .and_then(|r| if over_run { Err(limit()) } else { Ok(r) })
            .map_err(|e| {
                let mut d = fail(&e);
                if let Some(limit) = out.exceeded() {
                    d.message = format!("{limit} (rendering {subject})");
                }
                d
            })?;
        let mut text = String::from_utf8(out.bytes).map_err(|_| {
            let mut d = fail(&Error::new(ErrorKind::BadSerialization, "output is not UTF-8"));
            d.pos = Pos { line: 1, col: 1 };
            d
        })?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// A template's output, which stops growing at the per-file and per-run
/// limits (the render then fails at the template line that went over).
struct Bounded<'a> {
    bytes: Vec<u8>,
    /// How much of `bytes` the engine's run total counts already: it is
    /// shared by every thread, so it is added to in steps, not per write.
    counted: usize,
    engine: &'a Engine,
}

/// How much a template's output grows before the run total is updated.
const COUNT_STEP: usize = 64 << 10;

impl Bounded<'_> {
    /// Adds what is not counted yet to the run total; the total now.
    fn count(&mut self) -> u64 {
        let new = (self.bytes.len() - self.counted) as u64;
        self.counted = self.bytes.len();
        self.engine.rendered.fetch_add(new, Ordering::Relaxed) + new
    }

    /// Which limit was exceeded, if one was.
    fn exceeded(&self) -> Option<String> {
        let limits = self.engine.limits;
        if self.bytes.len() as u64 > limits.file_bytes {
            Some(format!(
                "the rendered file exceeds {} MiB (--max-file-mib)",
                limits.file_bytes >> 20
            ))
        } else if self.engine.rendered.load(Ordering::Relaxed) > limits.run_bytes {
            Some(format!(
                "the rendered files exceed {} MiB in all (--max-output-mib)",
                limits.run_bytes >> 20
            ))
        } else {
            None
        }
    }
}

impl std::io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let limits = self.engine.limits;
        self.bytes.extend_from_slice(buf);
        let over_run = self.bytes.len() - self.counted >= COUNT_STEP && self.count() > limits.run_bytes;
        if self.bytes.len() as u64 > limits.file_bytes || over_run {
            return Err(std::io::Error::other("output limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A template context from JSON, converted once and shared by every
/// template rendered with it.
pub fn context(value: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

fn template_diagnostic(file: &str, text: &str, e: &Error, subject: Option<&str>) -> Diagnostic {
    let pos = match (e.range(), e.line()) {
        (Some(range), _) if range.start <= text.len() => offset_pos(text, range.start),
        (_, Some(line)) => Pos {
            line: line as u32,
            col: 1,
        },
        _ => Pos { line: 1, col: 1 },
    };
    // Never `{:#}`: the debug form dumps the template's variables.
    let what = match e.kind() {
        ErrorKind::UndefinedError => "undefined value",
        ErrorKind::SyntaxError => "template syntax error",
        ErrorKind::OutOfFuel => "the template ran too long (more than its fuel, --template-fuel)",
        _ => "template error",
    };
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let subject = subject.map(|s| format!(" (rendering {s})")).unwrap_or_default();
    Diagnostic::new(file, pos, format!("{what}{detail}{subject}"))
}

/// 1-based line and column of a byte offset.
pub fn offset_pos(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    Pos { line, col }
}

fn quantity_error(q: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("`{q}` is not a memory size such as 512Mi or 16Gi"),
    )
}

/// Mebibytes in a Kubernetes-style quantity (`512Mi`, `16Gi`).
pub fn quantity_mib(q: &str) -> Option<u64> {
    if let Some(n) = q.strip_suffix("Gi") {
        n.parse::<u64>().ok().map(|n| n * 1024)
    } else {
        q.strip_suffix("Mi")?.parse().ok()
    }
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn engine(name: &str, text: &str) -> (Engine, Sources) {
        let mut files = Sources::default();
        files.insert(name, Arc::from(text));
        (Engine::new(&files, Limits::default()).unwrap(), files)
    }

    #[test]
    fn strict_undefined_names_template_line_and_subject() {
        let (e, files) = engine("t.yaml.j2", "a: 1\nb: {{ values.missing }}\n");
        let err = e
            .render(
                "t.yaml.j2",
                &context(&serde_json::json!({"values": {}})),
                "cluster demo",
                &files,
            )
            .unwrap_err();
        assert_eq!((err.file.as_str(), err.pos.line, err.pos.col), ("t.yaml.j2", 2, 7));
        assert!(err.message.contains("undefined value"), "{}", err.message);
        assert!(err.message.ends_with("(rendering cluster demo)"), "{}", err.message);
    }

    #[test]
    fn xml_outputs_are_escaped() {
        let (e, files) = engine("a.xml.j2", "<x>{{ v }}</x>");
        let out = e
            .render(
                "a.xml.j2",
                &context(&serde_json::json!({"v": "a<b & 'c'"})),
                "m",
                &files,
            )
            .unwrap();
        assert_eq!(out, "<x>a&lt;b &amp; &apos;c&apos;</x>\n");
    }
}
