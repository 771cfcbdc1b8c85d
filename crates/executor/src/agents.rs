//! Credentials that outlive a run: the discovery token an unknown MAC gets
//! with its discovery script, and the agent credential an installed OS
//! keeps. Both are 256 random bits, stored only as SHA-256.
//!
//! * A discovery token lives as long as a run token (`--token-ttl`) and
//!   lets its MAC fetch the discovery script and report its hardware once
//!   or more; the facts wait for `kiln adopt`.
//! * An agent credential is minted each time a machine's install file is
//!   served (the last one served is the one that works) and revoked by a
//!   reprovision. With it the installed OS reports facts
//!   (`POST /v1/agents/checkin`) for as long as it runs.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::clock::{now, rfc3339};
use super::machines::{mint_token, Events, LiveRun, Timing};
use super::store::{audit, exec, row as query_row};
use kiln_plan::{sha256_hex, DiscoveredMachine, Facts, Mac};

/// Whom a bearer token of a machine belongs to.
pub(crate) enum Bearer {
    /// A live run.
    Run(LiveRun),
    /// An unknown MAC running the discovery script.
    Discovery(Mac),
}

/// Mints a discovery token for `mac`.
pub(crate) fn discovery_token(t: &Connection, mac: Mac, timing: Timing) -> rusqlite::Result<String> {
    let token = mint_token();
    exec(
        t,
        "INSERT INTO discovery_tokens (hash, mac, expires_at) VALUES (?1, ?2, ?3)",
        params![sha256_hex(token.as_bytes()), mac, now() + timing.token_ttl],
    )?;
    exec(t, "DELETE FROM discovery_tokens WHERE expires_at <= ?1", [now()])?;
    Ok(token)
}

/// The MAC a live discovery token was given to.
pub(crate) fn discovery_mac(t: &Connection, token: &str) -> rusqlite::Result<Option<Mac>> {
    query_row(
        t,
        "SELECT mac FROM discovery_tokens WHERE hash = ?1 AND expires_at > ?2",
        params![sha256_hex(token.as_bytes()), now()],
        |r| r.get(0),
    )
    .optional()
}

/// Keeps what a discovery script reported (the last report wins).
pub(crate) fn discovered_facts(
    t: &Connection,
    mac: Mac,
    snapshot: &Value,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<()> {
    exec(
        t,
        "INSERT INTO discovered_facts (mac, at, snapshot) VALUES (?1, ?2, ?3)
         ON CONFLICT (mac) DO UPDATE SET at = excluded.at, snapshot = excluded.snapshot",
        params![mac, now(), snapshot.to_string()],
    )?;
    audit(t, "executor", "discovered facts", None, json!({"mac": mac}), digest)?;
    events.push(json!({"type": "discovered", "mac": mac, "facts": true, "at": rfc3339(now())}));
    Ok(())
}

/// Every MAC that booted without being in the plan, with its facts.
pub(crate) fn discovered(conn: &Connection) -> rusqlite::Result<Vec<DiscoveredMachine>> {
    conn.prepare_cached(
        "SELECT d.mac, d.first_seen, d.last_seen, d.boots, f.at, f.snapshot
         FROM discovered d LEFT JOIN discovered_facts f ON f.mac = d.mac ORDER BY d.first_seen, d.mac",
    )?
    .query_map([], |r| {
        Ok(DiscoveredMachine {
            mac: r.get(0)?,
            first_seen: rfc3339(r.get(1)?),
            last_seen: rfc3339(r.get(2)?),
            boots: r.get::<_, i64>(3)?.max(0) as u64,
            facts_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
            facts: r
                .get::<_, Option<String>>(5)?
                .and_then(|s| serde_json::from_str::<Facts>(&s).ok()),
        })
    })?
    .collect()
}

/// Mints a machine's agent credential, replacing the one before.
pub(crate) fn mint_agent(t: &Connection, machine: &str, token: &str) -> rusqlite::Result<()> {
    exec(
        t,
        "INSERT INTO agents (machine, hash, minted_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (machine) DO UPDATE SET hash = excluded.hash, minted_at = excluded.minted_at",
        params![machine, sha256_hex(token.as_bytes()), now()],
    )
    .map(drop)
}

/// Revokes a machine's agent credential (a reprovision).
pub(crate) fn revoke_agent(t: &Connection, machine: &str) -> rusqlite::Result<()> {
    exec(t, "DELETE FROM agents WHERE machine = ?1", [machine]).map(drop)
}

/// The machine an agent credential belongs to.
pub(crate) fn agent_machine(t: &Connection, token: &str) -> rusqlite::Result<Option<String>> {
    query_row(
        t,
        "SELECT machine FROM agents WHERE hash = ?1",
        [sha256_hex(token.as_bytes())],
        |r| r.get(0),
    )
    .optional()
}

/// Keeps an agent's report: its facts (the last report wins) and when.
pub(crate) fn checkin(t: &Connection, machine: &str, snapshot: &Value, events: &mut Events) -> rusqlite::Result<()> {
    exec(
        t,
        "UPDATE agents SET last_seen = ?2, snapshot = ?3 WHERE machine = ?1",
        params![machine, now(), snapshot.to_string()],
    )?;
    events.push(json!({"type": "agent", "machine": machine, "at": rfc3339(now())}));
    Ok(())
}
