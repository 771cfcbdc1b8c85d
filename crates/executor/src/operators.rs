//! Who may use the operator API, and for what. An operators file
//! (`--operators FILE`, YAML) lists each operator's name, role and the
//! SHA-256 of their token; the executor never holds a token in clear. The
//! older `--operator-token-file` holds one token, which acts as one admin
//! named `admin`.
//!
//! ```yaml
//! - {name: alice, role: viewer, sha256: 5e88...}
//! - {name: bob, role: admin, sha256: 9f86...}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::secrets::private;
use super::Error;

/// What an operator may do; each role may do everything the ones before it
/// may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads machines, the audit log, events, metrics and plans.
    Viewer,
    /// And reprovisions machines.
    Operator,
    /// And pins or rolls back plans, takes backups and diagnostics bundles.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a role; expected viewer, operator or admin"))
    }
}

/// One entry of the operators file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: Role,
    sha256: String,
}

/// An operator the executor knows.
#[derive(Clone, Debug)]
pub(crate) struct Operator {
    pub name: String,
    pub role: Role,
    hash: [u8; 32],
}

/// Every operator, from the operators file and the single token file.
#[derive(Debug, Default)]
pub(crate) struct Operators {
    list: Vec<Operator>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::Operators {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and checks an operators file (missing: no operators yet).
fn read_entries(path: &Path) -> Result<Vec<Entry>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::io(path, source)),
    };
    not_writable_by_others(path)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<Entry> = serde_saphyr::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    let (mut seen, mut hashes) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for (i, e) in entries.iter().enumerate() {
        let at = format!("entry {} ({})", i + 1, e.name);
        if !valid_name(&e.name) {
            return Err(invalid(
                path,
                format!("{at}: a name is 1-64 of a-z, 0-9, '.', '_', '-'"),
            ));
        }
        if !seen.insert(e.name.clone()) {
            return Err(invalid(path, format!("{at}: the name is listed twice")));
        }
        if !hashes.insert(e.sha256.to_ascii_lowercase()) {
            return Err(invalid(path, format!("{at}: the token is another operator's too")));
        }
        if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                path,
                format!("{at}: sha256 must be the 64 hex digits of the token's SHA-256 (sha256sum)"),
            ));
        }
    }
    Ok(entries)
}

/// The operators file holds only digests, so others may read it (the
/// executor's user must), but nobody else may change who is an operator.
fn not_writable_by_others(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| Error::io(path, source))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(invalid(
            path,
            format!("is writable by group or others (mode {:o}); chmod go-w", mode & 0o777),
        ));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn parse_hex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

impl Operators {
    /// Reads the operators file and the single token file, either optional.
    pub(crate) fn load(file: Option<&Path>, token_file: Option<&Path>) -> Result<Operators, Error> {
        let mut list = Vec::new();
        if let Some(path) = file {
            for e in read_entries(path)? {
                list.push(Operator {
                    hash: parse_hex(&e.sha256.to_ascii_lowercase()),
                    name: e.name,
                    role: e.role,
                });
            }
        }
        if let Some(path) = token_file {
            private(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
            let token = text.trim();
            if token.len() < 16 {
                return Err(Error::ShortOperatorToken(path.to_path_buf()));
            }
            if list.iter().any(|o| o.name == "admin") {
                return Err(invalid(
                    file.unwrap_or(path),
                    "`admin` is the name of the --operator-token-file token; name the operator otherwise",
                ));
            }
            list.push(Operator {
                name: "admin".into(),
                role: Role::Admin,
                hash: digest(token),
            });
        }
        Ok(Operators { list })
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The operator whose token this is. Every entry is compared, in
    /// constant time, whatever matches.
    pub(crate) fn authenticate(&self, token: &str) -> Option<&Operator> {
        let given = digest(token);
        let mut found = None;
        for o in &self.list {
            if constant_time_eq(&o.hash, &given) {
                found = Some(o);
            }
        }
        found
    }

    /// Whether `word` is an operator's token: the diagnostics bundle
    /// redacts such words.
    pub(crate) fn knows_token(&self, word: &str) -> bool {
        let hash = digest(word);
        self.list.iter().any(|o| o.hash == hash)
    }
}

/// The files operators are read from, and when they last changed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sources {
    pub file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

impl Sources {
    pub(crate) fn load(&self) -> Result<Operators, Error> {
        Operators::load(self.file.as_deref(), self.token_file.as_deref())
    }

    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.file.iter().chain(&self.token_file).cloned().collect()
    }
}

/// Adds an operator to the operators file (made, private, if missing) and
/// returns their new token: 256 random bits, shown once and stored only as
/// its SHA-256.
pub fn add_operator(path: &Path, name: &str, role: Role) -> Result<String, Error> {
    let entries = read_entries(path)?;
    if !valid_name(name) {
        return Err(invalid(
            path,
            format!("`{name}`: a name is 1-64 of a-z, 0-9, '.', '_', '-'"),
        ));
    }
    if entries.iter().any(|e| e.name == name) {
        return Err(invalid(
            path,
            format!("`{name}` is already an operator; remove the entry to replace their token"),
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    let token = kiln_plan::hex(&bytes);
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# kiln serve --operators: name, role (viewer, operator, admin) and the SHA-256 of each token.\n".into()
        }
        Err(source) => return Err(Error::io(path, source)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "- {{name: {name}, role: {}, sha256: {}}}\n",
        role.as_str(),
        kiln_plan::sha256_hex(token.as_bytes())
    ));
    write_file(path, text.as_bytes(), 0o644)?;
    Ok(token)
}

/// Writes a file readable by its owner only, whole or not at all.
pub(crate) fn write_private(path: &Path, content: &[u8]) -> Result<(), Error> {
    write_file(path, content, 0o600)
}

/// Writes a file with `mode`, whole or not at all, and durably (the
/// directory entry too).
fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("kiln"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        Error::io(path, source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_operator_authenticates_with_their_role_and_the_file_holds_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("operators.yaml");
        let alice = add_operator(&file, "alice", Role::Viewer).unwrap();
        let bob = add_operator(&file, "bob", Role::Admin).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&alice) && !text.contains(&bob), "{text}");
        let ops = Operators::load(Some(&file), None).unwrap();
        assert_eq!(
            ops.authenticate(&alice).map(|o| (o.name.as_str(), o.role)),
            Some(("alice", Role::Viewer))
        );
        assert_eq!(ops.authenticate(&bob).map(|o| o.role), Some(Role::Admin));
        assert!(ops.authenticate("not-a-token-of-anyone").is_none());
        let again = add_operator(&file, "alice", Role::Admin).unwrap_err().to_string();
        assert!(again.contains("already an operator"), "{again}");
    }

    #[test]
    fn the_operators_file_may_be_read_by_others_but_not_changed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("operators.yaml");
        add_operator(&file, "alice", Role::Viewer).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        let err = Operators::load(Some(&file), None).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }

    #[test]
    fn a_bad_operators_file_is_refused_with_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("operators.yaml");
        write_private(&file, b"- {name: carol, role: root, sha256: abc}\n").unwrap();
        let err = Operators::load(Some(&file), None).unwrap_err().to_string();
        assert!(err.contains("root") && err.contains("operators.yaml"), "{err}");
        write_private(&file, b"- {name: carol, role: viewer, sha256: abc}\n").unwrap();
        let err = Operators::load(Some(&file), None).unwrap_err().to_string();
        assert!(err.contains("entry 1 (carol)") && err.contains("64 hex"), "{err}");
    }
}
