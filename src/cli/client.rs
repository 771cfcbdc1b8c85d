//! A client of a running executor's operator API (`kiln status`, `kiln
//! diag`): HTTPS verified against `--ca` (or the Mozilla roots), the
//! operator's bearer token, and the executor's error sentences.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_plan::ErrorAnswer;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::failure::Failure;

/// Where the executor is and how to prove who we are.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The executor's URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// File holding the operator bearer token (default: $KILN_OPERATOR_TOKEN).
    #[arg(long = "operator-token-file", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the executor's certificate (default:
    /// the Mozilla roots).
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// A connection to the operator API.
pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
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

fn roots(ca: &Path) -> Result<RootCerts, Failure> {
    let bad = |why: String| Failure::Runtime(format!("{}: {why}", ca.display()));
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

impl Client {
    pub(super) fn new(args: &ServerArgs) -> Result<Client, Failure> {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &args.ca {
            tls = tls.root_certs(roots(ca)?);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(Client {
            base: args.server.trim_end_matches('/').to_string(),
            token: operator_token(args.operator_token_file.as_deref())?,
            agent,
        })
    }

    /// GETs `path`; the body of a 200 answer, or the executor's reason.
    pub(super) fn get(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| Failure::Runtime(format!("{url}: {e}")))?;
        let code = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| Failure::Runtime(format!("{url}: {e}")))?;
        if code != 200 {
            let why =
                serde_json::from_slice::<ErrorAnswer>(&body).map_or_else(|_| "request failed".to_string(), |a| a.error);
            return Err(Failure::Runtime(format!("{url}: HTTP {code}: {why}")));
        }
        Ok(body)
    }

    /// GETs `path` and reads the JSON answer as `T`.
    pub(super) fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let body = self.get(path)?;
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Runtime(format!("{}{path}: not the answer kiln expects: {e}", self.base)))
    }
}
