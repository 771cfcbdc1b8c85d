//! What happens to a machine, as transactions on the state store: runs,
//! tokens, reports and the state they lead to.
//!
//! States per generation: `new` → `booting` (script served) → `installing`
//! (install file fetched) → `installed` | `failed`. A machine with
//! `commission: true` first goes `commissioning` → `commissioned` (its
//! hardware check passed) before it installs. Every change is audited and
//! published as an event.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::clock::{now, rfc3339};
use super::store::{audit, exec, machine_row, machine_seen, row as query_row};
use kiln_plan::{
    sha256_hex, Facts, Mac, MachineFacts, MachineState, MachineSummary, Plan, PlannedMachine, RunOutcome, StepName,
};

/// Days the hash of a dead token is kept (for redaction, never for access).
const DEAD_TOKEN_DAYS: i64 = 30;

/// Timing settings of runs and tokens.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Seconds a run may take before it fails for want of a report.
    pub run_timeout: i64,
    /// Seconds a token lives (at most as long as its run).
    pub token_ttl: i64,
}

/// Changes made by a transaction, to publish once it has committed.
pub(crate) type Events = Vec<Value>;

/// Makes `machine` be in `state`, auditing and publishing the change.
fn set_state(
    t: &Connection,
    machine: &str,
    state: MachineState,
    actor: &str,
    reason: Option<&str>,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<()> {
    let old: Option<MachineState> =
        query_row(t, "SELECT state FROM machines WHERE name = ?1", [machine], |r| r.get(0)).optional()?;
    if old == Some(state) {
        return Ok(());
    }
    exec(
        t,
        "UPDATE machines SET state = ?2, updated_at = ?3 WHERE name = ?1",
        params![machine, state, now()],
    )?;
    let detail = json!({"from": old, "to": state, "reason": reason});
    audit(t, actor, "state", Some(machine), detail.clone(), digest)?;
    events.push(
        json!({"type": "state", "machine": machine, "from": old, "to": state, "reason": reason, "at": rfc3339(now())}),
    );
    Ok(())
}

/// Brings the machines table in line with a newly activated plan: new
/// machines appear as `new`, a bumped generation starts over. A plan that
/// names an older generation (a rollback, a pin) changes nothing: a
/// machine installed at a later generation is never installed again by
/// going back.
pub(crate) fn sync_plan(t: &Connection, plan: &Plan, digest: &str, events: &mut Events) -> rusqlite::Result<()> {
    for m in &plan.machines {
        let generation = i64::from(m.generation);
        match machine_row(t, &m.name)? {
            None => add_machine(t, m, "machine added", digest)?,
            Some(row) if row.generation < generation => {
                exec(
                    t,
                    "UPDATE machines SET generation = ?2, mac = ?3 WHERE name = ?1",
                    params![m.name, generation, m.mac],
                )?;
                end_runs(t, &m.name, "superseded by a new generation", digest, events)?;
                audit(
                    t,
                    "executor",
                    "generation",
                    Some(&m.name),
                    json!({"from": row.generation, "to": generation}),
                    digest,
                )?;
                set_state(
                    t,
                    &m.name,
                    MachineState::New,
                    "executor",
                    Some("new generation"),
                    digest,
                    events,
                )?;
            }
            Some(_) => {
                exec(
                    t,
                    "UPDATE machines SET mac = ?2 WHERE name = ?1",
                    params![m.name, m.mac],
                )?;
            }
        }
    }
    Ok(())
}

/// Adds a machine of the plan to the machines table as `new`.
fn add_machine(t: &Connection, m: &PlannedMachine, action: &str, digest: &str) -> rusqlite::Result<()> {
    let generation = i64::from(m.generation);
    exec(
        t,
        "INSERT INTO machines (name, mac, generation, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![m.name, m.mac, generation, MachineState::New, now()],
    )?;
    audit(
        t,
        "executor",
        action,
        Some(&m.name),
        json!({"mac": m.mac, "generation": generation}),
        digest,
    )
}

/// Ends every active run of a machine as failed.
fn end_runs(t: &Connection, machine: &str, reason: &str, digest: &str, events: &mut Events) -> rusqlite::Result<()> {
    let ids: Vec<i64> = t
        .prepare_cached("SELECT id FROM runs WHERE machine = ?1 AND state = 'active'")?
        .query_map([machine], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        end_run(
            t,
            id,
            machine,
            RunOutcome::Failed,
            Some(reason),
            "executor",
            digest,
            events,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn end_run(
    t: &Connection,
    run: i64,
    machine: &str,
    outcome: RunOutcome,
    reason: Option<&str>,
    actor: &str,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<()> {
    exec(
        t,
        "UPDATE runs SET state = ?2, reason = ?3, ended_at = ?4 WHERE id = ?1",
        params![run, outcome, reason, now()],
    )?;
    // The token dies with its run; its hash stays a while, so a
    // diagnostics bundle still recognises (and redacts) it.
    exec(
        t,
        "UPDATE tokens SET expires_at = MIN(expires_at, ?2) WHERE run_id = ?1",
        params![run, now()],
    )?;
    audit(
        t,
        actor,
        "run ended",
        Some(machine),
        json!({"run": run, "outcome": outcome, "reason": reason}),
        digest,
    )?;
    events.push(json!({"type": "run", "machine": machine, "run": run, "outcome": outcome, "reason": reason, "at": rfc3339(now())}));
    Ok(())
}

/// What `/boot/ipxe` answers.
pub(crate) enum Boot {
    /// Serve this step's script with this token.
    Step { step: StepName, token: String },
    /// Boot from the local disk: the generation is installed.
    Installed,
    /// Boot from the local disk: the install file was fetched and the
    /// machine booted again before it reported (an installer's reboot).
    /// Only an operator's reprovision installs it again.
    Fetched,
}

/// A token: 256 random bits, hex. Only its hash is stored.
pub(crate) fn mint_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    kiln_plan::hex(&bytes)
}

/// A machine PXE-boots: start or resume the run of its next step and mint
/// a token, or send it to its disk when its generation is installed.
pub(crate) fn boot(
    t: &Connection,
    m: &PlannedMachine,
    timing: Timing,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<Boot> {
    let generation = i64::from(m.generation);
    // Activating a plan adds its machines; a row that has gone since (a
    // restored or hand-edited database) is added again, never assumed.
    let row = match machine_seen(t, &m.name, now())? {
        Some(row) => row,
        None => {
            add_machine(t, m, "machine added again (its state row was missing)", digest)?;
            machine_seen(t, &m.name, now())?.ok_or(rusqlite::Error::QueryReturnedNoRows)?
        }
    };
    if row.installed_generation.is_some_and(|g| g >= generation) {
        return Ok(Boot::Installed);
    }
    if row.fetched_generation.is_some_and(|g| g >= generation) {
        return Ok(Boot::Fetched);
    }
    let step = if m.steps.iter().any(|s| s.name == StepName::Commission)
        && row.commissioned_generation.is_none_or(|g| g < generation)
    {
        StepName::Commission
    } else {
        StepName::Install
    };
    let current = now();
    let run: Option<i64> = query_row(
        t,
        "SELECT id FROM runs INDEXED BY runs_step
             WHERE machine = ?1 AND generation = ?2 AND step = ?3 AND state = 'active' AND deadline > ?4",
        params![m.name, generation, step, current],
        |r| r.get(0),
    )
    .optional()?;
    let run = match run {
        Some(id) => id,
        None => {
            exec(t,
                "INSERT INTO runs (machine, generation, step, state, started_at, deadline) VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
                params![m.name, generation, step, current, current + timing.run_timeout],
            )?;
            let id = t.last_insert_rowid();
            audit(
                t,
                "executor",
                "run started",
                Some(&m.name),
                json!({"run": id, "step": step, "generation": generation}),
                digest,
            )?;
            id
        }
    };
    let token = mint_token();
    exec(
        t,
        "INSERT INTO tokens (hash, run_id, expires_at) VALUES (?1, ?2, ?3)",
        params![sha256_hex(token.as_bytes()), run, current + timing.token_ttl],
    )?;
    let state = match step {
        StepName::Commission => MachineState::Commissioning,
        StepName::Install => MachineState::Booting,
    };
    if row.state != state {
        set_state(t, &m.name, state, &format!("machine:{}", m.name), None, digest, events)?;
    }
    Ok(Boot::Step { step, token })
}

/// An unknown MAC asked to boot.
pub(crate) fn discovered(t: &Connection, mac: Mac, digest: &str, events: &mut Events) -> rusqlite::Result<()> {
    let current = now();
    let seen: Option<i64> =
        query_row(t, "SELECT boots FROM discovered WHERE mac = ?1", [mac], |r| r.get(0)).optional()?;
    match seen {
        Some(_) => {
            exec(
                t,
                "UPDATE discovered SET last_seen = ?2, boots = boots + 1 WHERE mac = ?1",
                params![mac, current],
            )?;
        }
        None => {
            exec(
                t,
                "INSERT INTO discovered (mac, first_seen, last_seen, boots) VALUES (?1, ?2, ?2, 1)",
                params![mac, current],
            )?;
            audit(t, "executor", "discovered", None, json!({"mac": mac}), digest)?;
            events.push(json!({"type": "discovered", "mac": mac, "at": rfc3339(current)}));
        }
    }
    Ok(())
}

/// The run a live token belongs to.
pub(crate) struct LiveRun {
    pub id: i64,
    pub machine: String,
    pub step: StepName,
}

pub(crate) fn live_run(t: &Connection, token: &str) -> rusqlite::Result<Option<LiveRun>> {
    let current = now();
    query_row(
        t,
        "SELECT r.id, r.machine, r.step FROM tokens k JOIN runs r ON r.id = k.run_id
         WHERE k.hash = ?1 AND k.expires_at > ?2 AND r.state = 'active' AND r.deadline > ?2",
        params![sha256_hex(token.as_bytes()), current],
        |r| {
            Ok(LiveRun {
                id: r.get(0)?,
                machine: r.get(1)?,
                step: r.get(2)?,
            })
        },
    )
    .optional()
}

/// The machine fetched its install file with a live token.
pub(crate) fn install_fetched(
    t: &Connection,
    run: &LiveRun,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<()> {
    if run.step == StepName::Install {
        exec(
            t,
            "UPDATE machines SET fetched_generation = generation WHERE name = ?1",
            [&run.machine],
        )?;
        set_state(
            t,
            &run.machine,
            MachineState::Installing,
            &format!("machine:{}", run.machine),
            None,
            digest,
            events,
        )?;
    }
    Ok(())
}

/// Stores a report; `postinstall_done`, `hardware_ok` or `failed` end the
/// run. Returns the machine's state afterwards.
pub(crate) fn report(
    t: &Connection,
    run: &LiveRun,
    snapshot: &Value,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<MachineState> {
    let actor = format!("machine:{}", run.machine);
    exec(
        t,
        "INSERT INTO facts (run_id, machine, at, snapshot) VALUES (?1, ?2, ?3, ?4)",
        params![run.id, run.machine, now(), snapshot.to_string()],
    )?;
    let failed = snapshot["failed"].as_str().map(str::to_string);
    let outcome = match (run.step, &failed) {
        (_, Some(reason)) => Some((RunOutcome::Failed, Some(reason.clone()))),
        (StepName::Commission, None) => match snapshot["hardware_ok"].as_bool() {
            Some(true) => Some((RunOutcome::Succeeded, None)),
            Some(false) => Some((RunOutcome::Failed, Some("hardware check failed".to_string()))),
            None => None,
        },
        (StepName::Install, None) => {
            (snapshot["postinstall_done"] == Value::Bool(true)).then_some((RunOutcome::Succeeded, None))
        }
    };
    if let Some((result, reason)) = outcome {
        end_run(
            t,
            run.id,
            &run.machine,
            result,
            reason.as_deref(),
            &actor,
            digest,
            events,
        )?;
        let (column, state) = match (result, run.step) {
            (RunOutcome::Failed, _) => (None, MachineState::Failed),
            (_, StepName::Commission) => (Some("commissioned_generation"), MachineState::Commissioned),
            (_, StepName::Install) => (Some("installed_generation"), MachineState::Installed),
        };
        if let Some(column) = column {
            exec(
                t,
                &format!("UPDATE machines SET {column} = generation WHERE name = ?1"),
                [&run.machine],
            )?;
        }
        set_state(t, &run.machine, state, &actor, reason.as_deref(), digest, events)?;
    }
    query_row(t, "SELECT state FROM machines WHERE name = ?1", [&run.machine], |r| {
        r.get(0)
    })
}

/// Fails every run whose deadline has passed without a report.
pub(crate) fn sweep(t: &Connection, timing: Timing, digest: &str, events: &mut Events) -> rusqlite::Result<()> {
    let expired: Vec<(i64, String)> = t
        .prepare_cached("SELECT id, machine FROM runs WHERE state = 'active' AND deadline <= ?1")?
        .query_map([now()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let reason = format!("no report within the run timeout ({} s)", timing.run_timeout);
    for (id, machine) in expired {
        end_run(
            t,
            id,
            &machine,
            RunOutcome::Failed,
            Some(&reason),
            "executor",
            digest,
            events,
        )?;
        set_state(
            t,
            &machine,
            MachineState::Failed,
            "executor",
            Some(&reason),
            digest,
            events,
        )?;
    }
    exec(
        t,
        "DELETE FROM tokens WHERE expires_at <= ?1",
        [now() - DEAD_TOKEN_DAYS * 86_400],
    )?;
    Ok(())
}

/// An operator asked (and confirmed) to install a machine again.
pub(crate) fn reprovision(
    t: &Connection,
    machine: &str,
    actor: &str,
    digest: &str,
    events: &mut Events,
) -> rusqlite::Result<()> {
    for (id,) in t
        .prepare_cached("SELECT id FROM runs WHERE machine = ?1 AND state = 'active'")?
        .query_map([machine], |r| Ok((r.get::<_, i64>(0)?,)))?
        .collect::<rusqlite::Result<Vec<_>>>()?
    {
        end_run(
            t,
            id,
            machine,
            RunOutcome::Failed,
            Some("reprovisioned by an operator"),
            actor,
            digest,
            events,
        )?;
    }
    exec(
        t,
        "UPDATE machines SET installed_generation = NULL, commissioned_generation = NULL, fetched_generation = NULL WHERE name = ?1",
        [machine],
    )?;
    super::agents::revoke_agent(t, machine)?;
    audit(t, actor, "reprovision", Some(machine), json!({}), digest)?;
    set_state(
        t,
        machine,
        MachineState::New,
        actor,
        Some("reprovisioned"),
        digest,
        events,
    )
}

/// Where a machine is, beyond its plan entry: the state store's view.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    pub state: Option<MachineState>,
    pub last_seen: Option<i64>,
    /// When its state last changed.
    pub updated_at: i64,
    pub agent_seen: Option<i64>,
    pub run: Option<(i64, StepName)>,
    pub last_report: Option<i64>,
}

/// The status of every machine the executor has seen (or of one).
pub(crate) fn statuses(conn: &Connection, only: Option<&str>) -> rusqlite::Result<HashMap<String, Status>> {
    let mut found = HashMap::new();
    let mut statement = conn.prepare_cached(
        "SELECT m.name, m.state, m.last_seen, m.updated_at, a.last_seen, r.id, r.step,
                (SELECT MAX(f.at) FROM facts f WHERE f.machine = m.name)
         FROM machines m
         LEFT JOIN agents a ON a.machine = m.name
         LEFT JOIN runs r ON r.machine = m.name AND r.state = 'active'
         WHERE ?1 IS NULL OR m.name = ?1",
    )?;
    let rows = statement.query_map([only], |r| {
        let agent_seen: Option<i64> = r.get(4)?;
        let reported: Option<i64> = r.get(7)?;
        let run = match (r.get::<_, Option<i64>>(5)?, r.get::<_, Option<StepName>>(6)?) {
            (Some(id), Some(step)) => Some((id, step)),
            _ => None,
        };
        Ok((
            r.get::<_, String>(0)?,
            Status {
                state: Some(r.get(1)?),
                last_seen: r.get(2)?,
                updated_at: r.get(3)?,
                agent_seen,
                run,
                last_report: agent_seen.max(reported),
            },
        ))
    })?;
    for row in rows {
        let (name, status) = row?;
        found.insert(name, status);
    }
    Ok(found)
}

/// An installed machine whose agent has not reported for three intervals
/// (counted from its install when it never has).
pub(crate) fn stale(m: &PlannedMachine, status: &Status, at: i64) -> bool {
    match (m.agent.as_ref().map(|a| a.interval_seconds), status.state) {
        (Some(interval), Some(MachineState::Installed)) => {
            let heard = status.agent_seen.unwrap_or(status.updated_at).max(status.updated_at);
            at - heard > 3 * i64::from(interval)
        }
        _ => false,
    }
}

/// A machine's state, runs and last facts, for the operator API.
pub(crate) fn machine_detail(conn: &Connection, m: &PlannedMachine) -> rusqlite::Result<Value> {
    let status = statuses(conn, Some(&m.name))?.remove(&m.name);
    let runs: Vec<Value> = conn
        .prepare_cached("SELECT id, generation, step, state, reason, started_at, deadline, ended_at FROM runs WHERE machine = ?1 ORDER BY id")?
        .query_map([&m.name], |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "generation": r.get::<_, i64>(1)?,
                "step": r.get::<_, StepName>(2)?,
                "state": r.get::<_, RunOutcome>(3)?,
                "reason": r.get::<_, Option<String>>(4)?,
                "startedAt": rfc3339(r.get(5)?),
                "deadline": rfc3339(r.get(6)?),
                "endedAt": r.get::<_, Option<i64>>(7)?.map(rfc3339),
            }))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let facts: Option<(i64, String)> = query_row(
        conn,
        "SELECT at, snapshot FROM facts WHERE machine = ?1 ORDER BY id DESC LIMIT 1",
        [&m.name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    let agent: Option<(i64, String)> = query_row(
        conn,
        "SELECT last_seen, snapshot FROM agents WHERE machine = ?1 AND last_seen IS NOT NULL",
        [&m.name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    let (facts, source) = match (facts, agent) {
        (Some(run), Some(agent)) if run.0 > agent.0 => (Some(run), "run"),
        (_, Some(agent)) => (Some(agent), "agent"),
        (run, None) => (run, "run"),
    };
    let timeline = super::store::audit_log(conn, 0, Some(&m.name), 1000)?;
    let mut summary = serde_json::to_value(machine_summary(m, status.as_ref(), now())).unwrap_or_default();
    summary["runs"] = Value::Array(runs);
    summary["timeline"] = Value::Array(timeline);
    // What its plan serves it: each step's boot script and install file.
    summary["files"] = m
        .steps
        .iter()
        .map(|s| json!({"step": s.name, "bootScript": s.boot_script, "installFile": s.install_file}))
        .collect();
    summary["lastFacts"] = facts.map_or(
        Value::Null,
        |(at, s)| json!({"at": rfc3339(at), "source": source, "snapshot": serde_json::from_str::<Value>(&s).unwrap_or(Value::Null)}),
    );
    Ok(summary)
}

pub(crate) fn machine_summary(m: &PlannedMachine, status: Option<&Status>, at: i64) -> MachineSummary {
    let none = Status::default();
    let status = status.unwrap_or(&none);
    MachineSummary {
        name: m.name.clone(),
        mac: m.mac,
        ip: m.ip.clone(),
        blueprint: m.blueprint.clone(),
        generation: m.generation,
        state: status.state.unwrap_or(MachineState::New),
        last_seen: status.last_seen.map(rfc3339),
        labels: m.labels.clone(),
        step: status.run.map(|(_, step)| step),
        run: status.run.map(|(id, _)| id),
        last_report: status.last_report.map(rfc3339),
        agent_last_seen: status.agent_seen.map(rfc3339),
        stale: stale(m, status, at),
    }
}

/// Every machine's latest facts: its agent's last report, or the last
/// report of a run when that is newer (a reinstall).
pub(crate) fn latest_facts(conn: &Connection, plan: &Plan) -> rusqlite::Result<Vec<MachineFacts>> {
    let mut latest: HashMap<String, (i64, String, String)> = HashMap::new();
    let mut runs = conn.prepare_cached(
        "SELECT f.machine, f.at, f.snapshot, r.step FROM facts f JOIN runs r ON r.id = f.run_id
         WHERE f.id IN (SELECT MAX(id) FROM facts GROUP BY machine)",
    )?;
    for row in runs.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, StepName>(3)?)))? {
        let (machine, at, snapshot, step): (String, i64, String, StepName) = row?;
        latest.insert(machine, (at, snapshot, step.to_string()));
    }
    let mut agents =
        conn.prepare_cached("SELECT machine, last_seen, snapshot FROM agents WHERE last_seen IS NOT NULL")?;
    for row in agents.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
        let (machine, at, snapshot): (String, i64, String) = row?;
        if latest.get(&machine).is_none_or(|run| run.0 <= at) {
            latest.insert(machine, (at, snapshot, "agent".into()));
        }
    }
    let statuses = statuses(conn, None)?;
    let at = now();
    Ok(plan
        .machines
        .iter()
        .map(|m| {
            let status = statuses.get(&m.name).cloned().unwrap_or_default();
            let facts = latest.remove(&m.name);
            MachineFacts {
                name: m.name.clone(),
                state: status.state.unwrap_or(MachineState::New),
                at: facts.as_ref().map(|f| rfc3339(f.0)),
                facts: facts.as_ref().and_then(|f| serde_json::from_str::<Facts>(&f.1).ok()),
                source: facts.map(|f| f.2),
                agent_last_seen: status.agent_seen.map(rfc3339),
                stale: stale(m, &status, at),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(interval: Option<u32>) -> PlannedMachine {
        PlannedMachine {
            name: "m1".into(),
            mac: Mac::parse("52:54:00:00:00:01").unwrap(),
            other_macs: Vec::new(),
            ip: "10.0.0.10".into(),
            blueprint: "rhel9".into(),
            generation: 1,
            steps: Vec::new(),
            labels: Default::default(),
            agent: interval.map(|interval_seconds| kiln_plan::PlannedAgent {
                script: "agent/rhel9/kiln-agent.sh".into(),
                interval_seconds,
            }),
        }
    }

    #[test]
    fn an_installed_machine_is_stale_after_three_silent_intervals() {
        let installed = |agent_seen| Status {
            state: Some(MachineState::Installed),
            updated_at: 1_000,
            agent_seen,
            ..Status::default()
        };
        let m = planned(Some(900));
        // Counted from the install while the agent has never reported.
        assert!(!stale(&m, &installed(None), 1_000 + 2_700));
        assert!(stale(&m, &installed(None), 1_000 + 2_701));
        // Counted from its last report.
        assert!(!stale(&m, &installed(Some(5_000)), 5_000 + 2_700));
        assert!(stale(&m, &installed(Some(5_000)), 5_000 + 2_701));
        // No agent, or not installed: never stale.
        assert!(!stale(&planned(None), &installed(None), 1_000_000));
        let booting = Status {
            state: Some(MachineState::Booting),
            ..installed(None)
        };
        assert!(!stale(&m, &booting, 1_000_000));
    }
}
