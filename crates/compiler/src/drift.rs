//! `kiln drift`: what installed machines report about themselves (their
//! agents' facts, from the executor) against what the repository declares:
//! MACs, serial, host name, addresses and the hardware minimums of their
//! values (`values.hardware`). A consumer of the resolved model, like
//! `explain`; it renders nothing.

use std::net::IpAddr;

use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::Repo;
use crate::merge::merge;
use crate::render::{settings, Context, Options};
use crate::resolve::site::MachineModel;
use crate::resolve::Model;
use kiln_plan::{Facts, FactsList, Mac, MachineState};

/// What drifted, one kind per check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum Drifted {
    /// A declared MAC no NIC has.
    Mac,
    Serial,
    Hostname,
    /// A declared address no NIC has.
    Address,
    Cpus,
    Memory,
    Disks,
    /// Its agent has not reported for three intervals.
    Stale,
}

impl From<Drifted> for &'static str {
    fn from(d: Drifted) -> &'static str {
        d.as_str()
    }
}

impl Drifted {
    /// The word every report (table, JSON, Markdown) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Drifted::Mac => "mac",
            Drifted::Serial => "serial",
            Drifted::Hostname => "hostname",
            Drifted::Address => "address",
            Drifted::Cpus => "cpus",
            Drifted::Memory => "memory",
            Drifted::Disks => "disks",
            Drifted::Stale => "stale",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub machine: String,
    pub what: Drifted,
    pub declared: String,
    pub found: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub site: String,
    /// Installed machines whose facts were compared.
    pub checked: usize,
    /// Machines of the repository the executor has no facts for, or that
    /// are not installed.
    pub unchecked: Vec<String>,
    pub findings: Vec<Finding>,
}

fn input_error(message: String) -> Diagnostics {
    Diagnostics::from(Diagnostic::command_line("kiln drift", message))
}

pub fn drift(repo: &Repo, model: &Model, options: &Options, facts: &FactsList) -> Result<DriftReport, Diagnostics> {
    let site = model.sites.iter().find(|s| s.name() == facts.site).ok_or_else(|| {
        input_error(format!(
            "the executor serves site `{}`, which this repository does not have",
            facts.site
        ))
    })?;
    let cx = Context::new(repo, &options.overrides, options.limits)?;
    let mut report = DriftReport {
        site: facts.site.clone(),
        checked: 0,
        unchecked: Vec::new(),
        findings: Vec::new(),
    };
    for m in &site.machines {
        let reported = facts.machines.iter().find(|f| f.name == m.name());
        let Some((reported, found)) = reported
            .filter(|r| r.state == MachineState::Installed)
            .and_then(|r| Some((r, r.facts.as_ref()?)))
        else {
            report.unchecked.push(m.name().to_string());
            continue;
        };
        let values = merge(&cx.machine_layers(site.input, Some(m.input), m.blueprint));
        let hardware: settings::Hardware = settings::read(&values, "hardware")
            .map_err(|e| Diagnostics::from(m.input.error("/spec/values", true, e)))?;
        report.checked += 1;
        let mut finding = |what, declared: String, found: String| {
            report.findings.push(Finding {
                machine: m.name().to_string(),
                what,
                declared,
                found,
            })
        };
        compare(m, &site.domain, hardware, found, &mut finding);
        if reported.stale {
            let last = reported.agent_last_seen.as_deref().unwrap_or("never");
            finding(
                Drifted::Stale,
                "a report every agent interval".into(),
                format!("last report {last}"),
            );
        }
    }
    report
        .findings
        .sort_by(|a, b| (&a.machine, a.what).cmp(&(&b.machine, b.what)));
    Ok(report)
}

/// Every difference between one machine's declaration and its facts.
fn compare(
    m: &MachineModel,
    domain: &str,
    hardware: settings::Hardware,
    found: &Facts,
    finding: &mut impl FnMut(Drifted, String, String),
) {
    let macs: Vec<Mac> = found.nics.iter().filter_map(|n| Mac::parse(&n.mac)).collect();
    let listed = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    for iface in &m.interfaces {
        if let Some(mac) = Mac::parse(&iface.mac).filter(|mac| !macs.contains(mac)) {
            finding(
                Drifted::Mac,
                mac.to_string(),
                listed(macs.iter().map(Mac::to_string).collect()),
            );
        }
    }
    let spec = &m.input.object.spec;
    if let (Some(declared), Some(reported)) = (&spec.serial, found.serial.as_deref().filter(|s| !s.is_empty())) {
        if declared != reported {
            finding(Drifted::Serial, declared.clone(), reported.into());
        }
    }
    let fqdn = format!("{}.{domain}", m.name());
    if let Some(host) = found.hostname.as_deref().filter(|h| !h.is_empty()) {
        if !host.eq_ignore_ascii_case(m.name()) && !host.eq_ignore_ascii_case(&fqdn) {
            finding(Drifted::Hostname, fqdn, host.into());
        }
    }
    // Discovery and commissioning report no addresses; only an agent's
    // facts are checked for them.
    let addresses: Vec<IpAddr> = found
        .nics
        .iter()
        .flat_map(|n| &n.addresses)
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    if !addresses.is_empty() {
        for ip in m.interfaces.iter().flat_map(|i| i.addresses()) {
            if !addresses.contains(&ip) {
                finding(
                    Drifted::Address,
                    ip.to_string(),
                    listed(addresses.iter().map(IpAddr::to_string).collect()),
                );
            }
        }
    }
    if let Some(cpu) = &found.cpu {
        if cpu.count < hardware.min_cpus {
            finding(
                Drifted::Cpus,
                format!("at least {}", hardware.min_cpus),
                cpu.count.to_string(),
            );
        }
    }
    if let Some(memory) = found.memory_mib.filter(|&mib| mib < hardware.min_memory_mib) {
        finding(
            Drifted::Memory,
            format!("at least {} MiB", hardware.min_memory_mib),
            format!("{memory} MiB"),
        );
    }
    let disks: Vec<String> = found
        .disks
        .iter()
        .filter(|d| !d.removable && d.size_mib >= hardware.min_disk_mib)
        .map(|d| format!("{} ({} MiB)", d.name, d.size_mib))
        .collect();
    if disks.len() < hardware.min_disks as usize {
        finding(
            Drifted::Disks,
            format!("at least {} disks of {} MiB", hardware.min_disks, hardware.min_disk_mib),
            listed(disks),
        );
    }
}

/// The report as text: a table, then a summary line.
pub fn to_text(r: &DriftReport) -> String {
    let mut rows = vec![[
        "MACHINE".to_string(),
        "DRIFTED".into(),
        "DECLARED".into(),
        "FOUND".into(),
    ]];
    rows.extend(r.findings.iter().map(|f| {
        [
            f.machine.clone(),
            f.what.as_str().to_string(),
            f.declared.clone(),
            f.found.clone(),
        ]
    }));
    let mut out = String::new();
    if !r.findings.is_empty() {
        let widths: Vec<usize> = (0..4)
            .map(|i| rows.iter().map(|row| row[i].len()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&summary(r));
    out.push('\n');
    out
}

fn summary(r: &DriftReport) -> String {
    let drifted: std::collections::BTreeSet<&str> = r.findings.iter().map(|f| f.machine.as_str()).collect();
    format!(
        "site {}: {} of {} installed machines drifted ({} findings); {} not checked (not installed or no facts yet)",
        r.site,
        drifted.len(),
        r.checked,
        r.findings.len(),
        r.unchecked.len()
    )
}

/// The report as Markdown, to post as an issue.
pub fn to_markdown(r: &DriftReport) -> String {
    let mut out = format!("## Drift at site `{}`\n\n{}\n", r.site, summary(r));
    if !r.findings.is_empty() {
        out.push_str("\n| machine | drifted | declared | found |\n|---|---|---|---|\n");
        for f in &r.findings {
            let cell = |s: &str| s.replace('|', "\\|");
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                f.machine,
                f.what.as_str(),
                cell(&f.declared),
                cell(&f.found)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Drifted;

    #[test]
    fn json_says_what_the_table_says() {
        let finding = serde_json::to_value(Drifted::Disks).unwrap();
        assert_eq!(finding, "disks");
    }
}
