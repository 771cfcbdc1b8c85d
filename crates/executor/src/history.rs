//! The plan history: the last N verified plans, kept in the state database
//! with every file they serve (stored once per content), so an admin can
//! pin one or roll back to the one before even after `out/` has moved on,
//! and a backup carries them. A pinned plan is never pruned, and a new
//! `plan.json` on disk does not replace it.

use rusqlite::{Connection, OptionalExtension};

use super::clock::{now, rfc3339};
use super::plan::ActivePlan;
use super::store::{exec, row};
use kiln_plan::{PlanHistory, PlanRecord};

/// Records an activation of `plan` (adding it, with its files, when new)
/// and forgets all but the `keep` most recent unpinned plans.
pub(crate) fn record(t: &Connection, plan: &ActivePlan, keep: usize) -> rusqlite::Result<()> {
    let known: bool = row(t, "SELECT COUNT(*) FROM plans WHERE digest = ?1", [&plan.digest], |r| {
        r.get::<_, i64>(0).map(|n| n > 0)
    })?;
    let seq: i64 = row(t, "SELECT COALESCE(MAX(seq), 0) + 1 FROM plans", [], |r| r.get(0))?;
    if known {
        exec(
            t,
            "UPDATE plans SET activated_at = ?2, seq = ?3 WHERE digest = ?1",
            rusqlite::params![plan.digest, now(), seq],
        )?;
    } else {
        exec(
            t,
            "INSERT INTO plans (digest, site, plan_json, activated_at, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![plan.digest, plan.plan.name, &plan.raw[..], now(), seq],
        )?;
        for f in &plan.plan.files {
            if let Some(content) = plan.file(&f.path) {
                exec(
                    t,
                    "INSERT OR IGNORE INTO plan_files (hash, content) VALUES (?1, ?2)",
                    rusqlite::params![f.sha256, &content[..]],
                )?;
            }
            exec(
                t,
                "INSERT OR IGNORE INTO plan_members (digest, path, hash) VALUES (?1, ?2, ?3)",
                rusqlite::params![plan.digest, f.path, f.sha256],
            )?;
        }
    }
    exec(
        t,
        "DELETE FROM plans WHERE pinned = 0 AND digest NOT IN
           (SELECT digest FROM plans ORDER BY seq DESC LIMIT ?1)",
        [keep.max(1) as i64],
    )?;
    exec(
        t,
        "DELETE FROM plan_members WHERE digest NOT IN (SELECT digest FROM plans)",
        [],
    )?;
    exec(
        t,
        "DELETE FROM plan_files WHERE hash NOT IN (SELECT hash FROM plan_members)",
        [],
    )?;
    Ok(())
}

/// A kept plan, read back and verified like one read from disk.
pub(crate) fn load(c: &Connection, digest: &str) -> Result<ActivePlan, String> {
    let bytes: Vec<u8> = row(c, "SELECT plan_json FROM plans WHERE digest = ?1", [digest], |r| {
        r.get(0)
    })
    .optional()
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("plan {digest} is not in the history"))?;
    ActivePlan::verify(bytes, |f| {
        row(
            c,
            "SELECT content FROM plan_files JOIN plan_members USING (hash)
             WHERE plan_members.digest = ?1 AND plan_members.path = ?2",
            [digest, &f.path],
            |r| r.get(0),
        )
        .map_err(|e| format!("not kept in the history ({e})"))
    })
}

/// The pinned plan's digest.
pub(crate) fn pinned(c: &Connection) -> rusqlite::Result<Option<String>> {
    row(c, "SELECT digest FROM plans WHERE pinned = 1", [], |r| r.get(0)).optional()
}

/// Pins `digest` (or nothing).
pub(crate) fn set_pin(t: &Connection, digest: Option<&str>) -> rusqlite::Result<()> {
    exec(t, "UPDATE plans SET pinned = (digest IS ?1)", [digest])?;
    Ok(())
}

/// The most recently activated plan other than `active`: where a rollback
/// goes.
pub(crate) fn previous(c: &Connection, active: &str) -> rusqlite::Result<Option<String>> {
    row(
        c,
        "SELECT digest FROM plans WHERE digest != ?1 ORDER BY seq DESC LIMIT 1",
        [active],
        |r| r.get(0),
    )
    .optional()
}

/// Whether `digest` is kept.
pub(crate) fn contains(c: &Connection, digest: &str) -> rusqlite::Result<bool> {
    row(c, "SELECT COUNT(*) FROM plans WHERE digest = ?1", [digest], |r| {
        r.get::<_, i64>(0).map(|n| n > 0)
    })
}

/// Every kept plan, newest activation first.
pub(crate) fn list(c: &Connection, active: Option<&str>) -> rusqlite::Result<PlanHistory> {
    let mut stmt = c.prepare(
        "SELECT digest, site, activated_at, pinned, plan_json,
                (SELECT COUNT(*) FROM plan_members m WHERE m.digest = plans.digest)
         FROM plans ORDER BY seq DESC",
    )?;
    let plans = stmt
        .query_map([], |r| {
            let digest: String = r.get(0)?;
            let json: Vec<u8> = r.get(4)?;
            let machines = serde_json::from_slice::<kiln_plan::Plan>(&json).map_or(0, |p| p.machines.len() as u64);
            Ok(PlanRecord {
                active: active == Some(digest.as_str()),
                digest,
                site: r.get(1)?,
                activated_at: rfc3339(r.get(2)?),
                pinned: r.get::<_, i64>(3)? == 1,
                machines,
                files: r.get::<_, i64>(5)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(PlanHistory {
        active: active.map(str::to_string),
        pinned: plans.iter().find(|p| p.pinned).map(|p| p.digest.clone()),
        plans,
    })
}
