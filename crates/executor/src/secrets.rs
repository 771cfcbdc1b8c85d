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

/// Fills the runtime placeholders of a served file in one pass: the server
/// URL, the run token, the agent credential and, when `secrets` are given,
/// every secret. What is filled in is not looked at again; text that only
/// looks like a placeholder stays as it is.
pub(crate) fn fill(content: &[u8], with: &Fill) -> Result<Vec<u8>, String> {
    const LEAD: &[u8] = b"@@kiln:";
    let mut out = Vec::with_capacity(content.len() + 256);
    let mut rest = content;
    while let Some(at) = rest.windows(LEAD.len()).position(|w| w == LEAD) {
        out.extend_from_slice(&rest[..at]);
        let tail = &rest[at..];
        let fixed = [(SERVER, with.server), (TOKEN, with.token), (AGENT_TOKEN, with.agent)];
        if let Some((placeholder, value)) = fixed.iter().find(|(p, _)| tail.starts_with(p.as_bytes())) {
            out.extend_from_slice(value.as_bytes());
            rest = &tail[placeholder.len()..];
        } else if let Some(named) = tail.strip_prefix(SECRET.as_bytes()) {
            let end = named
                .windows(SECRET_SUFFIX.len())
                .position(|w| w == SECRET_SUFFIX.as_bytes())
                .ok_or("unterminated secret placeholder")?;
            let name = String::from_utf8_lossy(&named[..end]);
            let value = match with.secrets {
                Some(s) => s.get(&name)?,
                None => return Err(format!("secret `{name}` is only served with a run token")),
            };
            out.extend_from_slice(value.as_bytes());
            rest = &named[end + SECRET_SUFFIX.len()..];
        } else {
            out.extend_from_slice(LEAD);
            rest = &tail[LEAD.len()..];
        }
    }
    out.extend_from_slice(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn every_placeholder_is_filled_once_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret @@kiln:token@@\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secrets = Secrets::open(Some(dir.path())).unwrap();
        let with = Fill {
            server: "http://10.0.0.2:8080",
            token: "t0k",
            agent: "ag3nt",
            secrets: Some(&secrets),
        };
        let text = "url=@@kiln:server@@/install/@@kiln:token@@/ks.cfg agent=@@kiln:agent-token@@ pw=@@kiln:secret:pw@@ keep=@@kiln:other@@ @@kiln:";
        let filled = String::from_utf8(fill(text.as_bytes(), &with).unwrap()).unwrap();
        assert_eq!(
            filled,
            "url=http://10.0.0.2:8080/install/t0k/ks.cfg agent=ag3nt pw=s3cret @@kiln:token@@ keep=@@kiln:other@@ @@kiln:",
            "a secret's value is not filled in again"
        );
        assert!(fill(b"@@kiln:secret:pw", &with).unwrap_err().contains("unterminated"));
        let boot = Fill { secrets: None, ..with };
        assert!(fill(b"@@kiln:secret:pw@@", &boot)
            .unwrap_err()
            .contains("only served with a run token"));
    }
}
