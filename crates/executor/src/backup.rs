//! Backups of the state database, taken while the executor runs (SQLite's
//! online backup: one read transaction, so the copy is consistent and
//! holds everything committed before it began, and writers are not
//! stopped), optionally encrypted with AES-256-GCM; and restores that check
//! a backup before it replaces anything.
//!
//! A backup file is either the SQLite database itself, or `KILNBAK1`, a
//! 12-byte nonce and the AES-256-GCM ciphertext of that database (the magic
//! is authenticated too).

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::clock::{now, rfc3339};
use super::operators::write_private;
use super::store::{create_private_dir, integrity, lock_state, schema_version, DB_FILE, SCHEMA_VERSION};
use super::{secrets, Error};

const MAGIC: &[u8; 8] = b"KILNBAK1";
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A 256-bit backup key, from a private file holding 32 bytes or 64 hex
/// digits (`head -c 32 /dev/urandom > key`, or `openssl rand -hex 32`).
pub struct BackupKey([u8; 32]);

impl BackupKey {
    pub fn read(path: &Path) -> Result<BackupKey, Error> {
        secrets::private(path)?;
        let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
        let text = String::from_utf8_lossy(&bytes);
        let hex = text.trim();
        let mut key = [0u8; 32];
        if bytes.len() == 32 {
            key.copy_from_slice(&bytes);
        } else if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
        } else {
            return Err(fail(path, "a backup key file holds 32 bytes or 64 hex digits"));
        }
        Ok(BackupKey(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.0).expect("a 256-bit key")
    }
}

fn fail(path: &Path, reason: impl Into<String>) -> Error {
    Error::Backup {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What a backup holds.
#[derive(Debug)]
pub struct Restored {
    pub schema_version: i64,
    /// The plan in force when the backup was taken.
    pub plan_digest: Option<String>,
    pub taken_at: Option<String>,
    pub machines: i64,
    pub audit_records: i64,
    /// Where the state it replaced was moved (`--force`).
    pub replaced: Option<PathBuf>,
}

/// Copies the live state database to `dest` (a new SQLite file) and notes
/// when, and under which plan, the copy was taken.
fn copy_to(state_dir: &Path, dest: &Path) -> Result<(), Error> {
    let path = state_dir.join(DB_FILE);
    let sql = |e: rusqlite::Error| fail(&path, e.to_string());
    let source = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(&path, format!("no state database to back up ({e})")))?;
    source.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
    let mut copy = Connection::open(dest).map_err(sql)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy).map_err(sql)?;
        // All pages in one step: one read snapshot, consistent as of its start.
        loop {
            match backup.step(-1).map_err(sql)? {
                rusqlite::backup::StepResult::Done => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
    let plan: Option<String> = copy
        .query_row("SELECT digest FROM plans ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    copy.execute_batch(
        "DROP TABLE IF EXISTS backup_info;
         CREATE TABLE backup_info (taken_at INTEGER NOT NULL, kiln_version TEXT NOT NULL, plan_digest TEXT);",
    )
    .map_err(sql)?;
    copy.execute(
        "INSERT INTO backup_info VALUES (?1, ?2, ?3)",
        rusqlite::params![now(), env!("CARGO_PKG_VERSION"), plan],
    )
    .map_err(sql)?;
    copy.pragma_update(None, "journal_mode", "DELETE").map_err(sql)?;
    Ok(())
}

/// A temporary file next to `path`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn beside(path: &Path, what: &str) -> Scratch {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Scratch(dir.join(format!(".kiln-{what}-{}-{nanos}.db", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// A consistent copy of the live state database, as bytes.
pub(crate) fn snapshot(state_dir: &Path) -> Result<Vec<u8>, Error> {
    let scratch = Scratch::beside(&state_dir.join(DB_FILE), "backup");
    copy_to(state_dir, &scratch.0)?;
    std::fs::read(&scratch.0).map_err(|source| Error::io(&scratch.0, source))
}

/// `kiln serve backup`: writes a consistent copy of the state to `to`
/// (private, whole or not at all), encrypted when a key is given.
pub fn backup(state_dir: &Path, to: &Path, key: Option<&BackupKey>) -> Result<u64, Error> {
    let mut bytes = snapshot(state_dir)?;
    if let Some(key) = key {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        let sealed = key
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &bytes,
                    aad: MAGIC,
                },
            )
            .map_err(|_| fail(to, "encryption failed"))?;
        bytes = [&MAGIC[..], &nonce, &sealed].concat();
    }
    write_private(to, &bytes)?;
    Ok(bytes.len() as u64)
}

/// The database a backup file holds, decrypted.
fn open_backup(from: &Path, key: Option<&BackupKey>) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(from).map_err(|source| Error::io(from, source))?;
    if let Some(sealed) = bytes.strip_prefix(MAGIC) {
        let key = key.ok_or_else(|| fail(from, "the backup is encrypted; give its --key-file"))?;
        if sealed.len() < 12 + 16 {
            return Err(fail(from, "the encrypted backup is truncated"));
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
        return key
            .cipher()
            .decrypt(&nonce.into(), Payload { msg: body, aad: MAGIC })
            .map_err(|_| fail(from, "cannot decrypt: wrong key, or the backup is damaged"));
    }
    if !bytes.starts_with(SQLITE_MAGIC) {
        return Err(fail(
            from,
            "not a kiln backup (neither a SQLite database nor an encrypted backup)",
        ));
    }
    Ok(bytes)
}

/// Checks a copy of a state database: whole, of a schema this kiln knows.
fn check(path: &Path) -> Result<Restored, Error> {
    let sql = |e: rusqlite::Error| fail(path, format!("not a usable state database: {e}"));
    let conn = Connection::open(path).map_err(sql)?;
    let verdict = integrity(&conn, "integrity_check").map_err(sql)?;
    if verdict != "ok" {
        return Err(fail(path, format!("the integrity check failed: {verdict}")));
    }
    let version = schema_version(&conn).map_err(sql)?;
    if version > SCHEMA_VERSION {
        return Err(fail(
            path,
            format!("schema version {version} was written by a newer kiln (this one knows up to {SCHEMA_VERSION})"),
        ));
    }
    let count = |table: &str| -> Result<i64, Error> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(sql)
    };
    let (machines, audit_records) = (count("machines")?, count("audit")?);
    let info: Option<(i64, Option<String>)> = conn
        .query_row("SELECT taken_at, plan_digest FROM backup_info", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .or_else(|_| Ok::<_, Error>(None))?;
    conn.execute_batch("DROP TABLE IF EXISTS backup_info").map_err(sql)?;
    Ok(Restored {
        schema_version: version,
        plan_digest: info.as_ref().and_then(|i| i.1.clone()),
        taken_at: info.map(|i| rfc3339(i.0)),
        machines,
        audit_records,
        replaced: None,
    })
}

/// `kiln serve restore`: checks the backup (decryption, integrity, schema
/// version), then makes it the state, keeping a state it replaces beside
/// it. Refuses a state directory that holds a database unless `force`,
/// and one a running executor holds.
pub fn restore(from: &Path, state_dir: &Path, key: Option<&BackupKey>, force: bool) -> Result<Restored, Error> {
    let bytes = open_backup(from, key)?;
    create_private_dir(state_dir)?;
    let _lock = lock_state(state_dir)?;
    let target = state_dir.join(DB_FILE);
    let exists = std::fs::metadata(&target).is_ok_and(|m| m.len() > 0);
    // A write-ahead log without its database (moved away by hand) would be
    // replayed onto the restored one: it goes aside with the database.
    let leftovers = ["-wal", "-shm", "-journal"]
        .iter()
        .any(|suffix| std::path::Path::new(&format!("{}{suffix}", target.display())).exists());
    if exists && !force {
        return Err(fail(
            &target,
            "a state database is already there; pass --force to replace it (it is kept beside as kiln.db.replaced-<time>)",
        ));
    }
    let scratch = Scratch::beside(&target, "restore");
    write_private(&scratch.0, &bytes)?;
    let mut restored = check(&scratch.0).map_err(|e| match e {
        Error::Backup { reason, .. } => fail(from, reason),
        other => other,
    })?;
    if exists || leftovers {
        let aside = state_dir.join(format!("{DB_FILE}.replaced-{}", now()));
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let old = PathBuf::from(format!("{}{suffix}", target.display()));
            if old.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&old, &to).map_err(|source| Error::io(&old, source))?;
            }
        }
        restored.replaced = Some(aside);
    }
    // Owned like the state directory, so the executor's user (not the root
    // who ran the restore) can open it.
    if let Ok(meta) = std::fs::metadata(state_dir) {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&scratch.0, Some(meta.uid()), Some(meta.gid()))
            .map_err(|source| Error::io(&scratch.0, source))?;
    }
    std::fs::rename(&scratch.0, &target).map_err(|source| Error::io(&target, source))?;
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(restored)
}
