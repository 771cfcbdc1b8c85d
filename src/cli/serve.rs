//! `kiln serve`: runs the site executor (the `kiln-executor` crate) on a
//! rendered site plan.

use std::path::PathBuf;

use super::failure::{exit, Failure};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The rendered site: out/<site>.
    #[arg(long = "plan", value_name = "DIR")]
    pub plan: PathBuf,
    /// Where the state (SQLite) lives.
    #[arg(long = "state", value_name = "DIR", default_value = "state")]
    pub state: PathBuf,
    /// Where the artifacts the plan lists are.
    #[arg(long = "artifacts", value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Directory of secret files (one per secret; private to the executor's user).
    #[arg(long = "secrets", value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// File holding the operator API's bearer token.
    #[arg(long = "operator-token-file", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// The URL machines reach the executor at (default: the Host they ask).
    #[arg(long = "public-url", value_name = "URL")]
    pub public_url: Option<String>,
    /// Seconds a run may take before it fails for want of a report.
    #[arg(long = "run-timeout", default_value_t = 3600)]
    pub run_timeout: i64,
    /// Seconds a run token lives.
    #[arg(long = "token-ttl", default_value_t = 3600)]
    pub token_ttl: i64,
    /// Milliseconds between checks of plan.json for a change.
    #[arg(long = "poll-ms", default_value_t = 2000)]
    pub poll_ms: u64,
    /// Connections served at once; more are closed as they arrive.
    #[arg(long = "max-connections", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long = "header-timeout", default_value_t = 10)]
    pub header_timeout: u64,
    /// Failed authentications an address may have in a minute; past that
    /// it gets 429 for a minute.
    #[arg(long = "max-auth-failures", default_value_t = 20)]
    pub max_auth_failures: u32,
}

pub(super) fn serve(args: ServeArgs) -> Result<i32, Failure> {
    let options = kiln_executor::Options {
        plan_dir: args.plan,
        state_dir: args.state,
        artifacts_dir: args.artifacts,
        listen: args.listen,
        secrets_dir: args.secrets,
        operator_token_file: args.operator_token_file,
        public_url: args.public_url,
        timing: kiln_executor::Timing {
            run_timeout: args.run_timeout,
            token_ttl: args.token_ttl,
        },
        poll: std::time::Duration::from_millis(args.poll_ms.max(50)),
        connections: kiln_executor::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            max_auth_failures: args.max_auth_failures,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime
        .block_on(kiln_executor::run(options))
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(exit::OK)
}
