//! The executor's state: SQLite in WAL mode under `--state`.
//!
//! Every change goes through one writer thread that owns the write
//! connection. Concurrent requests' changes are committed together (group
//! commit: one transaction, one fsync) and each request gets its answer
//! only after that commit, so nothing acknowledged is ever lost, and a boot
//! storm costs one fsync per batch rather than per machine. Each job runs
//! in its own savepoint, so one failing job does not undo the others.
//! Reads for the operator API use their own connection.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};
use tokio::sync::{broadcast, oneshot};

use super::clock::{now, rfc3339};
use kiln_plan::MachineState;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS machines (
    name TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL,
    installed_generation INTEGER,
    commissioned_generation INTEGER,
    fetched_generation INTEGER,
    last_seen INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    machine TEXT NOT NULL,
    generation INTEGER NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    started_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX IF NOT EXISTS runs_active ON runs (state, deadline);
CREATE INDEX IF NOT EXISTS runs_step ON runs (machine, generation, step, state);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    machine TEXT NOT NULL,
    at INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_machine ON facts (machine);
CREATE TABLE IF NOT EXISTS discovered (
    mac TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    boots INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS discovery_tokens (
    hash TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS discovered_facts (
    mac TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    machine TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    minted_at INTEGER NOT NULL,
    last_seen INTEGER,
    snapshot TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    machine TEXT,
    detail TEXT NOT NULL,
    plan_digest TEXT
);
CREATE INDEX IF NOT EXISTS audit_machine ON audit (machine);
CREATE TABLE IF NOT EXISTS plans (
    digest TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    plan_json BLOB NOT NULL,
    activated_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS plan_members (
    digest TEXT NOT NULL,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (digest, path)
);
CREATE INDEX IF NOT EXISTS plan_members_hash ON plan_members (hash);
CREATE TABLE IF NOT EXISTS plan_files (
    hash TEXT PRIMARY KEY,
    content BLOB NOT NULL
);
";

/// The state database's schema version (`PRAGMA user_version`): 0 before
/// versions were recorded, 1 added `machines.fetched_generation`, 2 the
/// plan history (`plans`, `plan_members`, `plan_files`), 3 discovery
/// (`discovery_tokens`, `discovered_facts`) and agents (`agents`).
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The state database's file name under `--state`.
pub(crate) const DB_FILE: &str = "kiln.db";

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before its reply leaves.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Up to 64 MiB of pages in memory (the default is 2 MiB): a fleet's
    // rows, runs and tokens stay cached instead of being read again from
    // the file on every boot.
    conn.pragma_update(None, "cache_size", -65536)?;
    Ok(conn)
}

/// A change to run in the writer's transaction. It returns what to send
/// once the transaction has committed (or failed to).
type Job = Box<dyn FnOnce(&mut Transaction) -> Box<dyn FnOnce(Result<(), String>) + Send> + Send>;

/// Handle to the state database.
pub(crate) struct Store {
    /// Held while the executor runs: one executor per state directory, and
    /// no restore under a running one.
    _lock: std::fs::File,
    jobs: mpsc::Sender<Job>,
    reader: Mutex<Connection>,
    pub events: broadcast::Sender<Value>,
}

/// Most jobs committed in one transaction.
const BATCH: usize = 512;

impl Store {
    pub(crate) fn open(dir: &Path) -> Result<Store, crate::Error> {
        create_private_dir(dir)?;
        let lock = lock_state(dir)?;
        let path = dir.join(DB_FILE);
        let fail = |source: rusqlite::Error| crate::Error::State {
            path: path.clone(),
            source,
        };
        check_existing(&path)?;
        let mut writer = open(&path).map_err(fail)?;
        check_version(&writer, &path)?;
        writer.execute_batch(SCHEMA).map_err(fail)?;
        migrate(&writer).map_err(fail)?;
        let reader = open(&path).map_err(fail)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let (events, _) = broadcast::channel(4096);
        std::thread::Builder::new()
            .name("kiln-store".into())
            .spawn(move || write_loop(&mut writer, rx))
            .map_err(|source| crate::Error::io(dir, source))?;
        Ok(Store {
            _lock: lock,
            jobs,
            reader: Mutex::new(reader),
            events,
        })
    }

    /// Runs `change` in the writer's transaction; resolves after commit.
    pub(crate) async fn write<T, F>(&self, change: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |t: &mut Transaction| {
            let result = match t.savepoint() {
                // A job that panics is undone and answered with an error;
                // the writer thread, and every later change, go on.
                Ok(mut sp) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(&sp))) {
                    Ok(Ok(v)) => sp.commit().map(|_| v).map_err(|e| e.to_string()),
                    Ok(Err(e)) => {
                        let _ = sp.rollback();
                        Err(e.to_string())
                    }
                    Err(_) => {
                        let _ = sp.rollback();
                        Err("a state change failed unexpectedly and was undone".to_string())
                    }
                },
                Err(e) => Err(e.to_string()),
            };
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(committed.and(result));
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| "the state store has stopped".to_string())?;
        rx.await.map_err(|_| "the state store has stopped".to_string())?
    }

    /// Runs a read-only query on the reader connection.
    pub(crate) fn read<T>(&self, query: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let conn = self.reader.lock().map_err(|_| "state reader poisoned".to_string())?;
        query(&conn).map_err(|e| e.to_string())
    }
}

/// Makes the state directory, readable by the executor's user alone (facts
/// and the audit log are nobody else's business), when it is not there.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), crate::Error> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(source) => Err(crate::Error::io(dir, source)),
    }
}

/// Takes the state directory's lock (`kiln.lock`), or says who holds it.
pub(crate) fn lock_state(dir: &Path) -> Result<std::fs::File, crate::Error> {
    let path = dir.join("kiln.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| crate::Error::io(&path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::Error::StateInUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(crate::Error::io(&path, source)),
    }
}

/// A state database that exists must be a whole SQLite database: a file
/// that is truncated or overwritten is refused, never replaced by an empty
/// database (the machines' states and the audit log would be lost).
fn check_existing(path: &Path) -> Result<(), crate::Error> {
    let corrupt = |reason: String| crate::Error::CorruptState {
        path: path.to_path_buf(),
        reason,
    };
    let mut head = [0u8; 100];
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(crate::Error::io(path, source)),
        Ok(mut file) => {
            use std::io::Read;
            let len = file.metadata().map_err(|source| crate::Error::io(path, source))?.len();
            if len < head.len() as u64 || file.read_exact(&mut head).is_err() {
                return Err(corrupt(format!("{len} bytes: too short to be a SQLite database")));
            }
        }
    }
    if !head.starts_with(b"SQLite format 3\0") {
        return Err(corrupt("it is not a SQLite database".into()));
    }
    let conn = open(path).map_err(|e| corrupt(e.to_string()))?;
    let verdict = integrity(&conn, "quick_check").map_err(|e| corrupt(e.to_string()))?;
    if verdict != "ok" {
        return Err(corrupt(verdict));
    }
    Ok(())
}

/// `PRAGMA integrity_check` (or `quick_check`): "ok", or the first problems.
pub(crate) fn integrity(conn: &Connection, pragma: &str) -> rusqlite::Result<String> {
    let lines: Vec<String> = conn
        .prepare(&format!("PRAGMA {pragma}(5)"))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(lines.join("; "))
}

/// Refuses a database written by a newer kiln: its schema may mean things
/// this binary does not know.
fn check_version(conn: &Connection, path: &Path) -> Result<(), crate::Error> {
    let found = schema_version(conn).map_err(|source| crate::Error::State {
        path: path.to_path_buf(),
        source,
    })?;
    if found > SCHEMA_VERSION {
        return Err(crate::Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Brings a state database made by an older kiln up to this schema (the
/// tables it lacks were made by `SCHEMA`), then records the version.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if schema_version(conn)? < 1 {
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('machines')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !columns.iter().any(|c| c == "fetched_generation") {
            conn.execute_batch("ALTER TABLE machines ADD COLUMN fetched_generation INTEGER")?;
        }
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

fn write_loop(conn: &mut Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let outcome = match conn.transaction() {
            Ok(mut t) => {
                for job in batch {
                    replies.push(job(&mut t));
                }
                t.commit().map_err(|e| e.to_string())
            }
            Err(e) => {
                // Could not even begin: fail every job of the batch.
                let message = e.to_string();
                for _ in batch {
                    replies.push(Box::new(|_| {}));
                }
                Err(message)
            }
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

/// Runs a statement, compiled once per connection and then reused: the
/// same few statements run for every request.
pub(crate) fn exec<P: rusqlite::Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Queries one row with a cached statement.
pub(crate) fn row<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// Appends an audit record.
pub(crate) fn audit(
    t: &Connection,
    actor: &str,
    action: &str,
    machine: Option<&str>,
    detail: Value,
    plan_digest: &str,
) -> rusqlite::Result<()> {
    exec(
        t,
        "INSERT INTO audit (at, actor, action, machine, detail, plan_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![now(), actor, action, machine, detail.to_string(), plan_digest],
    )?;
    Ok(())
}

/// The audit log, oldest first, after record `since`.
pub(crate) fn audit_log(
    conn: &Connection,
    since: i64,
    machine: Option<&str>,
    limit: i64,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare(
        "SELECT id, at, actor, action, machine, detail, plan_digest FROM audit
         WHERE id > ?1 AND (?2 IS NULL OR machine = ?2) ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(rusqlite::params![since, machine, limit], |r| {
        let detail: String = r.get(5)?;
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "at": rfc3339(r.get(1)?),
            "actor": r.get::<_, String>(2)?,
            "action": r.get::<_, String>(3)?,
            "machine": r.get::<_, Option<String>>(4)?,
            "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null),
            "planDigest": r.get::<_, Option<String>>(6)?,
        }))
    })?;
    rows.collect()
}

/// A machine's row, if the executor has seen it.
#[derive(Clone, Debug)]
pub(crate) struct MachineRow {
    pub generation: i64,
    pub state: MachineState,
    pub installed_generation: Option<i64>,
    pub commissioned_generation: Option<i64>,
    /// The generation whose install file the machine has fetched.
    pub fetched_generation: Option<i64>,
}

/// The columns of a `MachineRow`, in `machine_row_of`'s order.
macro_rules! machine_columns {
    () => {
        "generation, state, installed_generation, commissioned_generation, fetched_generation"
    };
}

fn machine_row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<MachineRow> {
    Ok(MachineRow {
        generation: r.get(0)?,
        state: r.get(1)?,
        installed_generation: r.get(2)?,
        commissioned_generation: r.get(3)?,
        fetched_generation: r.get(4)?,
    })
}

pub(crate) fn machine_row(conn: &Connection, name: &str) -> rusqlite::Result<Option<MachineRow>> {
    row(
        conn,
        concat!("SELECT ", machine_columns!(), " FROM machines WHERE name = ?1"),
        [name],
        machine_row_of,
    )
    .optional()
}

/// Records that a machine was seen at `at`, and returns its row (one
/// statement: a boot storm's writer runs it for every boot).
pub(crate) fn machine_seen(conn: &Connection, name: &str, at: i64) -> rusqlite::Result<Option<MachineRow>> {
    row(
        conn,
        concat!(
            "UPDATE machines SET last_seen = ?2 WHERE name = ?1 RETURNING ",
            machine_columns!()
        ),
        rusqlite::params![name, at],
        machine_row_of,
    )
    .optional()
}

#[cfg(test)]
mod panic_tests {
    use super::Store;

    /// A state database made before `fetched_generation` existed opens, and
    /// keeps its machines.
    #[test]
    fn an_older_state_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let old = rusqlite::Connection::open(dir.path().join("kiln.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE machines (name TEXT PRIMARY KEY, mac TEXT NOT NULL, generation INTEGER NOT NULL,
             state TEXT NOT NULL, installed_generation INTEGER, commissioned_generation INTEGER,
             last_seen INTEGER, updated_at INTEGER NOT NULL);
             INSERT INTO machines VALUES ('m1', '52:54:00:00:00:01', 1, 'installed', 1, NULL, NULL, 0);",
        )
        .unwrap();
        drop(old);
        let store = Store::open(dir.path()).unwrap();
        let row = store.read(|c| super::machine_row(c, "m1")).unwrap().unwrap();
        assert_eq!(row.installed_generation, Some(1));
        assert_eq!(row.fetched_generation, None);
    }

    /// A job that panics is undone and answered with an error; the writer
    /// thread goes on taking changes.
    #[test]
    fn the_writer_survives_a_panicking_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let failed = rt.block_on(store.write(|c| -> rusqlite::Result<()> {
            c.execute("INSERT INTO discovered VALUES ('aa', 1, 1, 1)", [])?;
            panic!("a bug in a state change")
        }));
        assert!(failed.is_err());
        let added = rt.block_on(store.write(|c| c.execute("INSERT INTO discovered VALUES ('bb', 1, 1, 1)", [])));
        assert_eq!(added, Ok(1));
        let macs: Vec<String> = store
            .read(|c| {
                c.prepare("SELECT mac FROM discovered")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .unwrap();
        assert_eq!(macs, ["bb"], "the panicking job's change was undone");
    }
}
