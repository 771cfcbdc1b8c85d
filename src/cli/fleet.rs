//! `kiln adopt` and `kiln drift`: the executor observes, git decides. Both
//! read a running executor's operator API and the repository; `adopt`
//! writes Machine documents for discovered hardware (to review and commit),
//! `drift` compares installed machines' facts with what the repository
//! declares. Neither renders nor changes the executor.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::json;

use super::client::{Client, ServerArgs};
use super::explain::with_model;
use super::failure::{exit, Failure};
use super::session::{Session, ValueArgs};
use kiln_compiler::diag::{Diagnostic, Diagnostics};
use kiln_compiler::drift::{self, DriftReport};
use kiln_plan::{DiscoveredList, DiscoveredMachine, Facts, FactsList, Mac};

#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The site to write the machines into (default: the executor's site).
    #[arg(long)]
    pub site: Option<String>,
    /// The blueprint the adopted machines install.
    #[arg(long)]
    pub blueprint: String,
    /// The network of the NIC each machine booted from (default: the
    /// site's first network).
    #[arg(long)]
    pub network: Option<String>,
    /// Machine names: `{serial}`, `{mac}` (12 hex digits), `{vendor}` and
    /// `{product}` are replaced by the machine's; the result is made a valid
    /// name (lowercase letters, digits, `-`). A machine without a serial
    /// is named by its MAC.
    #[arg(long, default_value = "node-{serial}")]
    pub name_template: String,
}

#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: DriftFormat,
    #[command(flatten)]
    pub values: ValueArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Table,
    Json,
    Markdown,
}

/// `kiln drift`: exit 1 when any installed machine drifted.
pub(super) fn drift(session: &Session, args: DriftArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let facts: FactsList = Client::new(&args.server)?.get_json("/v1/facts")?;
    let report: DriftReport = with_model(session, &args.values, |repo, model, options| {
        drift::drift(repo, model, options, &facts)
    })?;
    match args.format {
        DriftFormat::Table => write!(stdout, "{}", drift::to_text(&report))?,
        DriftFormat::Markdown => write!(stdout, "{}", drift::to_markdown(&report))?,
        DriftFormat::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        )?,
    }
    Ok(if report.findings.is_empty() {
        exit::OK
    } else {
        exit::DIFFERENCES
    })
}

/// `kiln adopt`: a Machine document per discovered machine the repository
/// does not have yet. Writes only new files; a second run writes nothing.
pub(super) fn adopt(session: &Session, args: AdoptArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let discovered: DiscoveredList = Client::new(&args.server)?.get_json("/v1/discovered")?;
    let site = args.site.clone().unwrap_or_else(|| discovered.site.clone());
    let (known_macs, mut names, network) = with_model(session, &ValueArgs::default(), |repo, model, _| {
        let problem = |m: String| Diagnostics::from(Diagnostic::command_line("kiln adopt", m));
        let s = model
            .sites
            .iter()
            .find(|s| s.name() == site)
            .ok_or_else(|| problem(format!("the repository has no site `{site}` with networks (--site)")))?;
        if !repo.blueprints.iter().any(|b| b.object.name() == args.blueprint) {
            let known: Vec<&str> = repo.blueprints.iter().map(|b| b.object.name()).collect();
            return Err(problem(format!(
                "no blueprint `{}`, expected one of {}",
                args.blueprint,
                known.join(", ")
            )));
        }
        let network = match &args.network {
            Some(n) if s.networks.iter().any(|net| &net.name == n) => n.clone(),
            Some(n) => {
                let known: Vec<&str> = s.networks.iter().map(|net| net.name.as_str()).collect();
                return Err(problem(format!(
                    "site `{site}` has no network `{n}`, expected one of {}",
                    known.join(", ")
                )));
            }
            None => s.networks.first().map(|n| n.name.clone()).unwrap_or_default(),
        };
        let macs: BTreeSet<Mac> = model
            .sites
            .iter()
            .flat_map(|s| &s.machines)
            .flat_map(|m| &m.interfaces)
            .filter_map(|i| Mac::parse(&i.mac))
            .collect();
        let names: BTreeSet<String> = s.machines.iter().map(|m| m.name().to_string()).collect();
        Ok((macs, names, network))
    })?;
    let dir = session.repo.join("sites").join(&site).join("machines");
    let (mut written, mut waiting, mut known) = (0, 0, 0);
    for d in &discovered.machines {
        if known_macs.contains(&d.mac) {
            known += 1;
            continue;
        }
        let Some(facts) = &d.facts else {
            waiting += 1;
            writeln!(
                stdout,
                "{}: booted, no hardware report yet (is discovery on and its environment served?)",
                d.mac
            )?;
            continue;
        };
        let name = unique(machine_name(&args.name_template, d.mac, facts), d.mac, &names);
        let file = dir.join(format!("{name}.yaml"));
        let shown = file.strip_prefix(&session.repo).unwrap_or(&file).display().to_string();
        if file.exists() {
            writeln!(stdout, "{}: {shown} exists; left as it is", d.mac)?;
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", dir.display())))?;
        std::fs::write(&file, document(&name, &args.blueprint, &network, d, facts))
            .map_err(|e| Failure::Runtime(format!("cannot write {shown}: {e}")))?;
        writeln!(
            stdout,
            "wrote {shown} ({}, serial {})",
            d.mac,
            facts.serial.as_deref().unwrap_or("unknown")
        )?;
        names.insert(name);
        written += 1;
    }
    writeln!(
        stdout,
        "{written} machines adopted into site {site}; {known} discovered MACs are already in the repository, {waiting} have not reported yet{}",
        if written > 0 { ". Review and commit them, then `kiln render`: a machine installs only once its document is merged and rendered" } else { "" }
    )?;
    Ok(exit::OK)
}

/// The template filled in and made a valid machine name.
fn machine_name(template: &str, mac: Mac, facts: &Facts) -> String {
    let hex: String = mac.to_string().replace(':', "");
    let serial = facts.serial.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(&hex);
    let filled = template
        .replace("{serial}", serial)
        .replace("{mac}", &hex)
        .replace("{vendor}", facts.vendor.as_deref().unwrap_or_default())
        .replace("{product}", facts.product.as_deref().unwrap_or_default());
    let mut name = String::new();
    for c in filled.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    name.truncate(63);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        format!("node-{hex}")
    } else {
        name
    }
}

/// `name`, or `name-<last 6 MAC digits>` when another machine has it.
fn unique(name: String, mac: Mac, taken: &BTreeSet<String>) -> String {
    if !taken.contains(&name) {
        return name;
    }
    let hex = mac.to_string().replace(':', "");
    let mut base = name;
    base.truncate(63 - 7);
    format!("{}-{}", base.trim_end_matches('-'), &hex[6..])
}

/// A Machine document for a discovered machine: its booting NIC on
/// `network`, its serial, and a hardware summary in labels.
fn document(name: &str, blueprint: &str, network: &str, d: &DiscoveredMachine, facts: &Facts) -> String {
    let mut labels = BTreeMap::new();
    let mut label = |key: &str, value: String| {
        if !value.is_empty() {
            labels.insert(key.to_string(), value);
        }
    };
    label("discovered", "true".into());
    label("vendor", facts.vendor.clone().unwrap_or_default());
    label("product", facts.product.clone().unwrap_or_default());
    label(
        "cpus",
        facts.cpu.as_ref().map(|c| c.count.to_string()).unwrap_or_default(),
    );
    label(
        "memory-mib",
        facts.memory_mib.map(|m| m.to_string()).unwrap_or_default(),
    );
    let fixed: Vec<_> = facts.disks.iter().filter(|d| !d.removable).collect();
    label("disks", fixed.len().to_string());
    label("disk-mib", fixed.iter().map(|d| d.size_mib).sum::<u64>().to_string());
    let mut spec = json!({"blueprint": blueprint});
    if let Some(serial) = facts.serial.as_deref().filter(|s| !s.trim().is_empty()) {
        spec["serial"] = json!(serial);
    }
    spec["interfaces"] = json!([{"mac": d.mac.to_string(), "network": network}]);
    let doc = json!({
        "apiVersion": "kiln/v1alpha1",
        "kind": "Machine",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    });
    let others: Vec<String> = facts
        .nics
        .iter()
        .filter(|n| Mac::parse(&n.mac) != Some(d.mac))
        .map(|n| format!("{} {}", n.name, n.mac))
        // Reported text goes into a comment: no line break may end it.
        .map(|text| text.chars().filter(|c| !c.is_control()).take(80).collect())
        .collect();
    let mut text = format!(
        "# Adopted by `kiln adopt` from the hardware report of {} (first booted {}).\n\
         # Review it (name, blueprint, network, labels) before merging: the machine\n\
         # installs once this document is merged and rendered.\n",
        d.mac, d.first_seen
    );
    if !others.is_empty() {
        text.push_str(&format!("# Its other NICs: {}.\n", others.join(", ")));
    }
    text.push_str(&kiln_compiler::yaml::to_yaml(&doc));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_fall_back_to_the_mac() {
        let mac = Mac::parse("52:54:00:AB:CD:EF").unwrap();
        let facts = Facts {
            serial: Some("SN 12/34_x".into()),
            ..Facts::default()
        };
        assert_eq!(machine_name("node-{serial}", mac, &facts), "node-sn-12-34-x");
        assert_eq!(
            machine_name("node-{serial}", mac, &Facts::default()),
            "node-525400abcdef"
        );
        let taken = BTreeSet::from(["node-x".to_string()]);
        assert_eq!(unique("node-x".into(), mac, &taken), "node-x-abcdef");
    }

    /// What a discovered machine reports is untrusted: it must not be able
    /// to write YAML of its own into the document.
    #[test]
    fn reported_text_stays_data() {
        let mac = Mac::parse("52:54:00:00:00:01").unwrap();
        let evil = "x\nspec: {blueprint: evil}\n# ";
        let facts = Facts {
            serial: Some(evil.into()),
            vendor: Some(evil.into()),
            nics: vec![kiln_plan::Nic {
                name: evil.into(),
                mac: evil.into(),
                addresses: Vec::new(),
            }],
            ..Facts::default()
        };
        let d = DiscoveredMachine {
            mac,
            first_seen: "2026-11-29T00:00:00Z".into(),
            last_seen: "2026-11-29T00:00:00Z".into(),
            boots: 1,
            facts: Some(facts.clone()),
            facts_at: None,
        };
        let name = machine_name("node-{serial}", mac, &facts);
        let text = document(&name, "rhel9", "prov", &d, &facts);
        let docs = kiln_compiler::yaml::parse_documents(&text).unwrap();
        assert_eq!(docs.len(), 1, "{text}");
        let value = &docs[0].value;
        assert_eq!(value["spec"]["blueprint"], "rhel9", "{text}");
        assert_eq!(value["spec"]["serial"], evil, "{text}");
        assert_eq!(value["metadata"]["labels"]["vendor"], evil, "{text}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
}
