//! `kiln status`: the machines of a running executor, by state. A client of
//! the operator API; exits 3 when any machine is `failed`.

use std::io::Write;

use kiln_plan::{MachineList, MachineState, PlanHistory};

use super::client::{Client, ServerArgs};
use super::failure::{exit, Failure};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

pub(super) fn run(args: StatusArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    status(&Client::new(&args.server)?, args.format == TableOrJson::Json, stdout)
}

pub(super) fn status(client: &Client, json: bool, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let list: MachineList = client.get_json("/v1/machines")?;
    let plans: PlanHistory = client.get_json("/v1/plans")?;
    if json {
        // The machine list as before, and the plans beside it.
        let mut answer = serde_json::to_value(&list).expect("JSON prints");
        answer["plans"] = serde_json::to_value(&plans).expect("JSON prints");
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&answer).expect("JSON prints")
        )?;
    } else {
        let rows: Vec<[String; 6]> = list
            .machines
            .iter()
            .map(|m| {
                [
                    m.name.clone(),
                    if m.stale {
                        format!("{} (stale)", m.state)
                    } else {
                        m.state.to_string()
                    },
                    m.generation.to_string(),
                    m.ip.clone(),
                    m.mac.to_string(),
                    m.last_seen.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let headers = ["NAME", "STATE", "GEN", "IP", "MAC", "LAST SEEN"];
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 6]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        writeln!(stdout, "{}", line(headers))?;
        for r in &rows {
            writeln!(stdout, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]))?;
        }
        let mut counts = std::collections::BTreeMap::new();
        for m in &list.machines {
            *counts.entry(m.state.as_str()).or_insert(0) += 1;
        }
        let mut summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let stale = list.machines.iter().filter(|m| m.stale).count();
        if stale > 0 {
            summary.push(format!("{stale} stale (no agent report for three intervals)"));
        }
        writeln!(
            stdout,
            "\n{} machines of site {}: {}",
            list.machines.len(),
            list.site,
            summary.join(", ")
        )?;
        let pinned = plans.pinned.as_deref() == Some(list.plan_digest.as_str());
        writeln!(
            stdout,
            "plan {}{}; {} plans kept",
            list.plan_digest,
            if pinned {
                " (pinned: a new plan.json waits until it is unpinned)"
            } else {
                ""
            },
            plans.plans.len()
        )?;
    }
    let failed = list.machines.iter().any(|m| m.state == MachineState::Failed);
    Ok(if failed { exit::DEGRADED } else { exit::OK })
}
