//! The secret store: one file per secret under `--secrets DIR`, readable by
//! the executor's user only. Values are read when a file that needs them is
//! served, never logged, audited or returned anywhere else.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub(crate) struct Secrets {
    dir: Option<PathBuf>,
}

/// A group or world permission bit makes a secret readable by others.
pub(crate) fn private(path: &Path) -> Result<(), crate::Error> {
    let mode = std::fs::metadata(path)
        .map_err(|source| crate::Error::io(path, source))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(crate::Error::NotPrivate {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

impl Secrets {
    /// Checks the directory and every file in it.
    pub(crate) fn open(dir: Option<&Path>) -> Result<Secrets, crate::Error> {
        if let Some(dir) = dir {
            private(dir)?;
            for entry in std::fs::read_dir(dir).map_err(|source| crate::Error::io(dir, source))? {
                private(&entry.map_err(|source| crate::Error::io(dir, source))?.path())?;
            }
        }
        Ok(Secrets {
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// Every secret's value, for redaction (the diagnostics bundle).
    pub(crate) fn values(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| self.get(n).ok()))
            .collect()
    }

    fn get(&self, name: &str) -> Result<String, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        let dir = self
            .dir
            .as_ref()
            .filter(|_| valid)
            .ok_or_else(|| format!("secret `{name}` is not in the secret store"))?;
        let path = dir.join(name);
        private(&path).map_err(|_| format!("secret `{name}` is missing or not private"))?;
        let value =
            std::fs::read_to_string(&path).map_err(|_| format!("secret `{name}` is not in the secret store"))?;
        Ok(value.strip_suffix('\n').unwrap_or(&value).to_string())
    }
}

use kiln_plan::placeholder::{AGENT_TOKEN, SECRET_PREFIX as SECRET, SECRET_SUFFIX, SERVER, TOKEN};

/// What a served file's runtime placeholders are filled with.
pub(crate) struct Fill<'a> {
    pub server: &'a str,
    /// The run (or discovery) token.
    pub token: &'a str,
    /// The machine's new agent credential (install files only).
    pub agent: &'a str,
    /// Every secret (install files only).
    pub secrets: Option<&'a Secrets>,
}

/// Fills the runtime placeholders of a served file: the server URL, the
/// run token, the agent credential and, when `secrets` are given, every
/// secret.
pub(crate) fn fill(content: &[u8], with: &Fill) -> Result<Vec<u8>, String> {
    let (server, token, secrets) = (with.server, with.token, with.secrets);
    let text = String::from_utf8_lossy(content);
    let mut out = text
        .replace(SERVER, server)
        .replace(TOKEN, token)
        .replace(AGENT_TOKEN, with.agent);
    let mut from = 0;
    while let Some(found) = out[from..].find(SECRET) {
        let start = from + found;
        let rest = &out[start + SECRET.len()..];
        let end = rest.find(SECRET_SUFFIX).ok_or("unterminated secret placeholder")?;
        let name = rest[..end].to_string();
        let value = match secrets {
            Some(s) => s.get(&name)?,
            None => return Err(format!("secret `{name}` is only served with a run token")),
        };
        out.replace_range(start..start + SECRET.len() + end + SECRET_SUFFIX.len(), &value);
        from = start + value.len();
    }
    Ok(out.into_bytes())
}
