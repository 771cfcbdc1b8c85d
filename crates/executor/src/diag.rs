//! The diagnostics bundle: what a support engineer needs, as a `.tar.gz`
//! with a `MANIFEST.json` (every file's size and SHA-256, how many values
//! were redacted). Built live (`GET /v1/diag`, `kiln diag`) or offline from
//! a state directory (`kiln serve diag`).
//!
//! Nothing secret leaves: values under a key matching
//! `(?i)(key|token|secret|password)`, the value of every secret in the
//! secret store, and every word that is a run token or an operator token
//! (recognised by its SHA-256, since the executor keeps only hashes) are
//! replaced with `***`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use super::clock::{now, rfc3339};
use super::operators::Operators;
use super::store::{audit_log, schema_version, DB_FILE};
use super::{history, secrets, App, Error, RECENT_LOG};
use kiln_plan::sha256_hex;

const REDACTED: &str = "***";
/// Audit records in a bundle: the most recent ones.
const AUDIT_RECORDS: i64 = 10_000;
/// Secret values shorter than this are not searched for (they would match
/// everywhere); secrets should be longer anyway.
const MIN_SECRET: usize = 4;

/// Replaces secrets and tokens, counting each replacement.
struct Redactor {
    literals: Vec<String>,
    run_tokens: HashSet<String>,
    operators: Arc<Operators>,
    count: usize,
}

fn sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["key", "token", "secret", "password"].iter().any(|w| key.contains(w))
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '=' | '~')
}

impl Redactor {
    /// `token_file`: the single admin token's file, whose token may hold
    /// characters that split words, so it is searched for as written.
    fn new(
        c: &Connection,
        secrets: &secrets::Secrets,
        operators: Arc<Operators>,
        token_file: Option<&Path>,
    ) -> rusqlite::Result<Redactor> {
        let run_tokens = c
            .prepare("SELECT hash FROM tokens")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut literals: Vec<String> = secrets.values().into_iter().filter(|v| v.len() >= MIN_SECRET).collect();
        if let Some(token) = token_file.and_then(|f| std::fs::read_to_string(f).ok()) {
            literals.push(token.trim().to_string());
        }
        // Longest first, so a secret containing another goes whole.
        literals.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Ok(Redactor {
            literals,
            run_tokens,
            operators,
            count: 0,
        })
    }

    fn text(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.literals {
            let n = out.matches(secret.as_str()).count();
            if n > 0 {
                self.count += n;
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        let out = self.assignments(&out);
        // Words that hash to a token the executor knows.
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(start) = rest.find(token_char) {
            result.push_str(&rest[..start]);
            let word_len = rest[start..].find(|c| !token_char(c)).unwrap_or(rest.len() - start);
            let word = &rest[start..start + word_len];
            if word.len() >= 16 && self.is_token(word) {
                self.count += 1;
                result.push_str(REDACTED);
            } else {
                result.push_str(word);
            }
            rest = &rest[start + word_len..];
        }
        result.push_str(rest);
        result
    }

    /// `password=...`, `API_KEY: ...` and the like inside a text: the value
    /// after a sensitive name and `=` or `:`, up to a space, quote or
    /// separator.
    fn assignments(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(['=', ':']) {
            let (before, after) = rest.split_at(at);
            let name_start = before
                .char_indices()
                .rev()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let mut value_start = after[1..].len() - after[1..].trim_start_matches(' ').len() + 1;
            // A quoted value runs to its closing quote.
            let quote = after[value_start..].chars().next().filter(|c| *c == '"' || *c == '\'');
            value_start += quote.map_or(0, char::len_utf8);
            let value_len = after[value_start..]
                .find(|c: char| match quote {
                    Some(q) => c == q,
                    None => c.is_whitespace() || "\"',;&".contains(c),
                })
                .unwrap_or(after.len() - value_start);
            out.push_str(before);
            if sensitive_key(&before[name_start..])
                && value_len > 0
                && &after[value_start..value_start + value_len] != REDACTED
            {
                self.count += 1;
                out.push_str(&after[..value_start]);
                out.push_str(REDACTED);
                rest = &after[value_start + value_len..];
            } else {
                out.push_str(&after[..1]);
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        out
    }

    fn is_token(&self, word: &str) -> bool {
        self.run_tokens.contains(&sha256_hex(word.as_bytes())) || self.operators.knows_token(word)
    }

    fn json(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if sensitive_key(k) && !v.is_null() && *v != Value::String(REDACTED.into()) {
                        self.count += 1;
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.json(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::String(s) => *s = self.text(s),
            _ => {}
        }
    }
}

/// Files of a bundle, in order.
struct Bundle {
    files: Vec<(String, Vec<u8>)>,
    missing: Vec<&'static str>,
}

impl Bundle {
    fn json(&mut self, r: &mut Redactor, name: &str, mut value: Value) {
        r.json(&mut value);
        let mut text = serde_json::to_vec_pretty(&value).expect("JSON prints");
        text.push(b'\n');
        self.files.push((name.into(), text));
    }

    fn text(&mut self, r: &mut Redactor, name: &str, text: &str) {
        self.files.push((name.into(), r.text(text).into_bytes()));
    }

    /// What the state database says: plans, machines, audit.
    fn state(&mut self, r: &mut Redactor, c: &Connection, active: Option<&str>) -> rusqlite::Result<()> {
        let plans = history::list(c, active)?;
        let active = active
            .map(str::to_string)
            .or_else(|| plans.plans.first().map(|p| p.digest.clone()));
        if let Some(digest) = &active {
            let raw: Option<Vec<u8>> = c
                .query_row("SELECT plan_json FROM plans WHERE digest = ?1", [digest], |row| {
                    row.get(0)
                })
                .ok();
            match raw.and_then(|raw| serde_json::from_slice::<Value>(&raw).ok()) {
                Some(plan) => self.json(r, "plan.json", plan),
                None => self.missing.push("plan.json"),
            }
        }
        self.json(r, "plans.json", serde_json::to_value(&plans).unwrap_or(Value::Null));
        let machines: Vec<Value> = c
            .prepare(
                "SELECT name, mac, generation, state, installed_generation, last_seen, updated_at,
                        (SELECT snapshot FROM facts f WHERE f.machine = m.name ORDER BY f.id DESC LIMIT 1)
                 FROM machines m ORDER BY name",
            )?
            .query_map([], |row| {
                let facts: Option<String> = row.get(7)?;
                Ok(json!({
                    "name": row.get::<_, String>(0)?,
                    "mac": row.get::<_, String>(1)?,
                    "generation": row.get::<_, i64>(2)?,
                    "state": row.get::<_, String>(3)?,
                    "installedGeneration": row.get::<_, Option<i64>>(4)?,
                    "lastSeen": row.get::<_, Option<i64>>(5)?.map(rfc3339),
                    "updatedAt": rfc3339(row.get(6)?),
                    "lastFacts": facts.and_then(|f| serde_json::from_str::<Value>(&f).ok()),
                }))
            })?
            .collect::<rusqlite::Result<_>>()?;
        self.json(r, "machines.json", Value::Array(machines));
        let newest: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |row| row.get(0))?;
        let records = audit_log(c, (newest - AUDIT_RECORDS).max(0), None, AUDIT_RECORDS)?;
        self.json(r, "audit.json", Value::Array(records));
        Ok(())
    }

    fn version(&mut self, r: &mut Redactor, c: &Connection) -> rusqlite::Result<()> {
        let info = json!({
            "kiln": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "stateSchemaVersion": schema_version(c)?,
            "createdAt": rfc3339(now()),
        });
        self.json(r, "version.json", info);
        Ok(())
    }

    /// The `.tar.gz`, `MANIFEST.json` first.
    fn finish(self, redacted: usize) -> Result<Vec<u8>, String> {
        let manifest = json!({
            "kiln": env!("CARGO_PKG_VERSION"),
            "createdAt": rfc3339(now()),
            "redacted": redacted,
            "missing": self.missing,
            "files": self.files.iter().map(|(name, bytes)| json!({
                "path": name, "size": bytes.len(), "sha256": sha256_hex(bytes),
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec_pretty(&manifest).expect("JSON prints");
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let stamp = now().max(0) as u64;
        for (name, bytes) in std::iter::once(("MANIFEST.json".to_string(), manifest)).chain(self.files) {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(stamp);
            header.set_cksum();
            tar.append_data(&mut header, format!("kiln-diag/{name}"), bytes.as_slice())
                .map_err(|e| e.to_string())?;
        }
        tar.into_inner().and_then(|gz| gz.finish()).map_err(|e| e.to_string())
    }
}

/// A connection of its own, so a bundle never holds the API's reader.
fn connect(state_dir: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        state_dir.join(DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

/// The bundle of a running executor (blocking: run it off the runtime).
pub(crate) fn live_bundle(app: &App, readyz: Value, metrics: String) -> Result<Vec<u8>, String> {
    let active = app.current_plan().map(|p| p.digest.clone());
    let mut bundle = Bundle {
        files: Vec::new(),
        missing: Vec::new(),
    };
    let redacted = (|| -> rusqlite::Result<usize> {
        let c = &connect(&app.opts.state_dir)?;
        let mut r = Redactor::new(
            c,
            &app.secrets,
            app.operators(),
            app.opts.operator_token_file.as_deref(),
        )?;
        bundle.version(&mut r, c)?;
        bundle.json(&mut r, "flags.json", app.opts.describe());
        bundle.json(&mut r, "readyz.json", readyz);
        bundle.text(&mut r, "metrics.txt", &metrics);
        bundle.state(&mut r, c, active.as_deref())?;
        let log: Vec<String> = RECENT_LOG
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        bundle.text(&mut r, "executor.log", &(log.join("\n") + "\n"));
        Ok(r.count)
    })()
    .map_err(|e| e.to_string())?;
    bundle.finish(redacted)
}

/// `kiln serve diag`: the bundle of a state directory, with no executor
/// running (no live readiness, metrics or log). `secrets` and `operators`
/// name what to redact besides keys and run tokens.
pub fn offline_bundle(
    state_dir: &Path,
    secrets_dir: Option<&Path>,
    operators_file: Option<&Path>,
    token_file: Option<&Path>,
) -> Result<Vec<u8>, Error> {
    let path = state_dir.join(DB_FILE);
    let sql = |e: rusqlite::Error| Error::State {
        path: path.clone(),
        source: e,
    };
    let c = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let secrets = secrets::Secrets::open(secrets_dir)?;
    let operators = Arc::new(Operators::load(operators_file, token_file)?);
    let mut bundle = Bundle {
        files: Vec::new(),
        missing: vec!["readyz.json", "metrics.txt", "executor.log"],
    };
    let mut r = Redactor::new(&c, &secrets, operators, token_file).map_err(sql)?;
    bundle.version(&mut r, &c).map_err(sql)?;
    bundle.json(
        &mut r,
        "flags.json",
        json!({"offline": true, "state": state_dir.display().to_string()}),
    );
    bundle.state(&mut r, &c, None).map_err(sql)?;
    let count = r.count;
    bundle.finish(count).map_err(|reason| Error::Backup {
        path: state_dir.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(literals: &[&str]) -> Redactor {
        Redactor {
            literals: literals.iter().map(|s| s.to_string()).collect(),
            run_tokens: HashSet::new(),
            operators: Arc::new(Operators::default()),
            count: 0,
        }
    }

    #[test]
    fn values_after_sensitive_names_are_redacted_in_text() {
        let mut r = redactor(&["s3cr3t-value"]);
        let text = "rootpw=hunter2 DB_PASSWORD: x1, api-key=abc&next=1 url http://host:8080/a token:\"q\" note s3cr3t-value ünïcode=ok";
        let out = r.text(text);
        assert_eq!(
            out,
            "rootpw=hunter2 DB_PASSWORD: ***, api-key=***&next=1 url http://host:8080/a token:\"***\" note *** ünïcode=ok"
        );
        assert_eq!(r.count, 4);
    }
}
