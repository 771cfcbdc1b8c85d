//! The template engine: every template of the repository compiled once per
//! run, rendered many times, in parallel.
//!
//! `.j2` files are minijinja templates with strict undefined; `.yaml` files
//! under `clusters/` use clusterctl-style `${VAR}` substitution (see
//! `envsubst`). Templates see only the context they are given: no
//! environment, clock or randomness.

use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::yaml::Pos;

/// All templates of a repository, compiled.
pub struct Engine {
    env: Environment<'static>,
}

impl Engine {
    /// Compiles every `.j2` file in `files`; all syntax errors are reported.
    pub fn new(files: &Sources) -> Result<Engine, Diagnostics> {
        let mut env = Environment::new();
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
        diags.finish(Engine { env })
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
        let mut text = template.render(context.clone()).map_err(|e| fail(&e))?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
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
        (Engine::new(&files).unwrap(), files)
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
