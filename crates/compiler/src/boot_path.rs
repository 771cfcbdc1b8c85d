//! `kiln boot-path MAC`: what one machine will get when it boots, for each
//! firmware architecture — what the site's DHCP servers hand it, the iPXE
//! build it loads next (with its SHA-256), then the menu, and each step's
//! script, install file and artifacts from the rendered plan. The first
//! question operators ask when a boot fails. A consumer of the render, like
//! `explain`.

use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::Repo;
use crate::render::site::{dhcp, dhcp_settings, ipxe};
use crate::render::{Context, Options};
use crate::resolve::Model;
use kiln_plan::{Mac, PlannedArtifact};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootPath {
    pub site: String,
    pub machine: String,
    pub mac: String,
    /// `eth0` for its first interface, `eth1` for the next...
    pub interface: String,
    pub network: String,
    pub ip: String,
    pub host_name: String,
    /// What the DHCP servers (all of them alike) hand each kind of client.
    pub dhcp: Vec<DhcpAnswer>,
    /// The same over DHCPv6 (option 59), on a network with an IPv6 side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dhcp6: Vec<DhcpAnswer>,
    /// What iPXE then asks the executor.
    pub chain: String,
    pub steps: Vec<StepPath>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpAnswer {
    pub client: String,
    /// Option 93 values.
    pub arches: Vec<u16>,
    /// `tftp`, `http` or `none`.
    pub via: &'static str,
    /// What it loads: a path in the TFTP root or a URL.
    pub loads: Option<String>,
    /// For TFTP: the server (`next-server`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPath {
    pub step: String,
    pub boot_script: String,
    pub install_file: Option<String>,
    pub artifacts: Vec<PlannedArtifact>,
}

fn input_error(message: String) -> Diagnostics {
    Diagnostics::from(Diagnostic::command_line("kiln boot-path", message))
}

pub fn boot_path(repo: &Repo, model: &Model, options: &Options, mac: &str) -> Result<BootPath, Diagnostics> {
    let wanted = Mac::parse(mac).ok_or_else(|| input_error(format!("`{mac}` is not a MAC address")))?;
    let found = model.sites.iter().find_map(|site| {
        site.machines.iter().find_map(|m| {
            m.interfaces
                .iter()
                .position(|i| Mac::parse(&i.mac) == Some(wanted))
                .map(|index| (site, m, index))
        })
    });
    let (site, machine, index) =
        found.ok_or_else(|| input_error(format!("no machine of any site has an interface with MAC {wanted}")))?;
    let cx = Context::new(repo, &options.overrides, options.limits)?;
    let settings = dhcp_settings(&cx, site)?;
    let outputs = crate::render::render_with(&cx, model, &[site.name().to_string()], &crate::progress::Silent)?;
    let planned = outputs
        .iter()
        .flat_map(|o| &o.machines)
        .find(|m| m.name == machine.name())
        .ok_or_else(|| input_error(format!("{} is not in the rendered plan", machine.name())))?;
    let iface = &machine.interfaces[index];
    let served = ipxe::served(site, &settings);
    let tftp = dhcp::tftp_server(site, &settings);
    let mut answers = Vec::new();
    for firmware in ipxe::Firmware::ALL {
        let build = served.iter().find(|s| s.build.firmware == firmware);
        answers.push(DhcpAnswer {
            client: format!("{} PXE", firmware.describe()),
            arches: firmware.pxe_arches().to_vec(),
            via: if build.is_some() { "tftp" } else { "none" },
            loads: build.map(|s| s.build.path.clone()),
            server: build.and(tftp.clone()),
            sha256: build.map(|s| s.build.sha256.clone()),
        });
        if let Some(arch) = firmware.http_arch() {
            let url = build.and_then(|s| s.http_url.clone());
            answers.push(DhcpAnswer {
                client: format!("{} HTTP boot", firmware.describe()),
                arches: vec![arch],
                via: if url.is_some() { "http" } else { "none" },
                sha256: url.as_ref().and(build.map(|s| s.build.sha256.clone())),
                loads: url,
                server: None,
            });
        }
    }
    answers.push(ipxe_answer(site));
    let mut dhcp6 = Vec::new();
    if site.networks[iface.network].v6.is_some() {
        dhcp6.push(ipxe_answer(site));
        for rule in dhcp::boot6(site, &served, &settings) {
            let kind = if rule.http { "HTTP boot" } else { "PXE" };
            dhcp6.push(DhcpAnswer {
                client: format!("{} {kind}", rule.firmware.describe()),
                arches: rule.arches,
                via: if rule.http { "http" } else { "tftp" },
                loads: Some(rule.url),
                server: None,
                sha256: Some(rule.sha256),
            });
        }
    }
    Ok(BootPath {
        site: site.name().into(),
        machine: machine.name().into(),
        mac: wanted.to_string(),
        interface: format!("eth{index}"),
        network: site.networks[iface.network].name.to_string(),
        ip: iface
            .addresses()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        host_name: match index {
            0 => machine.name().to_string(),
            i => format!("{}-eth{i}", machine.name()),
        },
        dhcp: answers,
        dhcp6,
        chain: format!(
            "{}/boot/ipxe?mac={}",
            site.boot_server.trim_end_matches('/'),
            wanted.to_string().replace(':', "-")
        ),
        steps: planned
            .steps
            .iter()
            .map(|s| StepPath {
                step: s.name.to_string(),
                boot_script: s.boot_script.clone(),
                install_file: s.install_file.clone(),
                artifacts: s.artifacts.clone(),
            })
            .collect(),
    })
}

/// What iPXE (user class `iPXE`) is handed, over either family: the menu.
fn ipxe_answer(site: &crate::resolve::site::SiteModel) -> DhcpAnswer {
    DhcpAnswer {
        client: "iPXE (user class iPXE)".into(),
        arches: Vec::new(),
        via: "http",
        loads: Some(dhcp::menu_url(site)),
        server: None,
        sha256: None,
    }
}

pub fn to_text(p: &BootPath) -> String {
    let mut out = format!(
        "{} of site {}: {} {} on network {}, address {}, host name {}\n\n",
        p.machine, p.site, p.interface, p.mac, p.network, p.ip, p.host_name
    );
    out.push_str("DHCP (dnsmasq, Kea and ISC dhcpd answer alike):\n");
    answers(&mut out, &p.dhcp);
    if !p.dhcp6.is_empty() {
        out.push_str("DHCPv6, option 59 (other architectures get no boot file):\n");
        answers(&mut out, &p.dhcp6);
    }
    out.push_str(&format!(
        "\niPXE then runs the menu, which asks {}\nand the executor answers with the script of the machine's next step:\n",
        p.chain
    ));
    for (i, s) in p.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}: {}", i + 1, s.step, s.boot_script));
        if let Some(f) = &s.install_file {
            out.push_str(&format!(" -> {f}"));
        }
        out.push('\n');
        for a in &s.artifacts {
            out.push_str(&format!("     {}  sha256 {}\n", a.path, a.sha256));
        }
    }
    out.push_str("  once installed (or for an unknown MAC): a script that boots the local disk\n");
    out
}

/// One line per kind of client: what it is handed.
fn answers(out: &mut String, answers: &[DhcpAnswer]) {
    let width = answers.iter().map(|a| a.client.len() + 12).max().unwrap_or(0);
    for a in answers {
        let arches: Vec<String> = a.arches.iter().map(u16::to_string).collect();
        let who = match arches.is_empty() {
            true => a.client.clone(),
            false => format!("{} (arch {})", a.client, arches.join(", ")),
        };
        let what = match (a.via, &a.loads) {
            ("tftp", Some(path)) => format!(
                "TFTP {path}{}",
                a.server.as_ref().map(|s| format!(" from {s}")).unwrap_or_default()
            ),
            (_, Some(url)) => url.clone(),
            _ => "no boot file: the site has no build for it".into(),
        };
        let sha = a.sha256.as_ref().map(|s| format!("  sha256 {s}")).unwrap_or_default();
        out.push_str(&format!("  {who:<width$}  {what}{sha}\n"));
    }
}
