//! `kiln status`: the machines of a running executor, by state. A client of
//! the operator API; exits 3 when any machine is `failed`.

use std::io::Write;
use std::path::Path;

use kiln_plan::{ErrorAnswer, MachineList, MachineState};

use super::failure::{exit, Failure};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// File holding the operator bearer token (default: $KILN_OPERATOR_TOKEN).
    #[arg(long = "operator-token-file", value_name = "FILE")]
    pub operator_token_file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

pub(super) fn run(args: StatusArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    status(
        &args.server,
        args.operator_token_file.as_deref(),
        args.format == TableOrJson::Json,
        stdout,
    )
}

fn operator_token(file: Option<&Path>) -> Result<Option<String>, Failure> {
    match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
            Ok(Some(text.trim().to_string()))
        }
        None => Ok(std::env::var("KILN_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty())),
    }
}

/// GETs `url` with the operator token and reads the JSON answer as `T`.
fn get_json<T: serde::de::DeserializeOwned>(url: &str, token: Option<&str>) -> Result<T, Failure> {
    let mut request = ureq::get(url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .call()
        .map_err(|e| Failure::Runtime(format!("{url}: {e}")))?;
    let code = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Failure::Runtime(format!("{url}: {e}")))?;
    if code != 200 {
        let why = serde_json::from_str::<ErrorAnswer>(&text).map_or_else(|_| "request failed".to_string(), |a| a.error);
        return Err(Failure::Runtime(format!("{url}: HTTP {code}: {why}")));
    }
    serde_json::from_str(&text).map_err(|e| Failure::Runtime(format!("{url}: not the answer kiln expects: {e}")))
}

pub(super) fn status(
    server: &str,
    token_file: Option<&Path>,
    json: bool,
    stdout: &mut dyn Write,
) -> Result<i32, Failure> {
    let token = operator_token(token_file)?;
    let list: MachineList = get_json(
        &format!("{}/v1/machines", server.trim_end_matches('/')),
        token.as_deref(),
    )?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&list).expect("JSON prints"))?;
    } else {
        let rows: Vec<[String; 6]> = list
            .machines
            .iter()
            .map(|m| {
                [
                    m.name.clone(),
                    m.state.to_string(),
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
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        writeln!(
            stdout,
            "\n{} machines of site {}: {}",
            list.machines.len(),
            list.site,
            summary.join(", ")
        )?;
    }
    let failed = list.machines.iter().any(|m| m.state == MachineState::Failed);
    Ok(if failed { exit::DEGRADED } else { exit::OK })
}
