//! `kiln serve`: runs the site executor (the `kiln-executor` crate) on a
//! rendered site plan, and its offline tasks: backup, restore, a
//! diagnostics bundle, adding an operator. `kiln diag` fetches a running
//! executor's diagnostics bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_executor::{BackupKey, Role};

use super::client::{Client, ServerArgs};
use super::failure::{exit, Failure};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub task: Option<ServeTask>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// What `kiln serve` does besides serving.
#[derive(Debug, clap::Subcommand)]
pub enum ServeTask {
    /// Copy the state database consistently, while the executor runs.
    Backup {
        #[arg(long = "state", value_name = "DIR", default_value = "state")]
        state: PathBuf,
        /// The backup file to write (private).
        #[arg(long = "to", value_name = "FILE")]
        to: PathBuf,
        /// Encrypt with AES-256-GCM under this key (32 bytes or 64 hex digits).
        #[arg(long = "key-file", value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Check a backup and make it the state (the executor must be stopped).
    Restore {
        #[arg(long = "from", value_name = "FILE")]
        from: PathBuf,
        #[arg(long = "state", value_name = "DIR", default_value = "state")]
        state: PathBuf,
        /// The key the backup was encrypted with.
        #[arg(long = "key-file", value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Replace a state database that is there (it is kept beside).
        #[arg(long)]
        force: bool,
    },
    /// Build a diagnostics bundle (.tar.gz) from a state directory.
    Diag {
        #[arg(long = "state", value_name = "DIR", default_value = "state")]
        state: PathBuf,
        #[arg(long = "to", value_name = "FILE", default_value = "kiln-diag.tar.gz")]
        to: PathBuf,
        /// The secret store, so its values are redacted.
        #[arg(long = "secrets", value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// The operators file, so operators' tokens are redacted.
        #[arg(long = "operators", value_name = "FILE")]
        operators: Option<PathBuf>,
        #[arg(long = "operator-token-file", value_name = "FILE")]
        operator_token_file: Option<PathBuf>,
    },
    /// Add an operator to the operators file and print their token once.
    AddOperator {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long = "operators", value_name = "FILE")]
        operators: PathBuf,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The rendered site: out/<site>.
    #[arg(long = "plan", value_name = "DIR", required = true)]
    pub plan: Option<PathBuf>,
    /// Where the state (SQLite) lives.
    #[arg(long = "state", value_name = "DIR", default_value = "state")]
    pub state: PathBuf,
    /// Where the artifacts the plan lists are.
    #[arg(long = "artifacts", value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Where every endpoint is served (HTTPS with --tls-cert).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Also serve the boot and agent endpoints (only) over plain HTTP here.
    #[arg(long = "boot-listen", value_name = "ADDR")]
    pub boot_listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain for HTTPS on --listen (reloaded on SIGHUP or change).
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (private to the executor's user).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the operator API over plain HTTP on a non-loopback --listen.
    #[arg(long = "insecure-operator-api")]
    pub insecure_operator_api: bool,
    /// Operators file: name, role and the SHA-256 of each token (YAML).
    #[arg(long = "operators", value_name = "FILE")]
    pub operators: Option<PathBuf>,
    /// Directory of secret files (one per secret; private to the executor's user).
    #[arg(long = "secrets", value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// File holding one admin's bearer token (the operator `admin`).
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
    /// Connections one client address may hold at once.
    #[arg(long = "max-connections-per-address", default_value_t = 512)]
    pub max_connections_per_address: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long = "header-timeout", default_value_t = 10)]
    pub header_timeout: u64,
    /// Failed authentications an address may have in a minute; past that
    /// it gets 429 for a minute.
    #[arg(long = "max-auth-failures", default_value_t = 20)]
    pub max_auth_failures: u32,
    /// Largest facts report, in KiB.
    #[arg(long = "max-facts-kib", default_value_t = 1024)]
    pub max_facts_kib: usize,
    /// `/v1/events` streams open at once.
    #[arg(long = "max-event-streams", default_value_t = 32)]
    pub max_event_streams: usize,
    /// Verified plans kept for pinning and rollback (pinned ones besides).
    #[arg(long = "plan-history", default_value_t = 5)]
    pub plan_history: usize,
}

#[derive(Debug, clap::Args)]
pub struct DiagArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where to write the bundle.
    #[arg(long = "to", value_name = "FILE", default_value = "kiln-diag.tar.gz")]
    pub to: PathBuf,
}

pub(super) fn serve(args: ServeArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    match args.task {
        None => run(args.run),
        Some(task) => offline(task, stdout),
    }
}

fn key(file: Option<&Path>) -> Result<Option<BackupKey>, Failure> {
    file.map(BackupKey::read).transpose().map_err(runtime)
}

fn runtime(e: kiln_executor::Error) -> Failure {
    Failure::Runtime(e.to_string())
}

fn offline(task: ServeTask, stdout: &mut dyn Write) -> Result<i32, Failure> {
    match task {
        ServeTask::Backup { state, to, key_file } => {
            let bytes = kiln_executor::backup(&state, &to, key(key_file.as_deref())?.as_ref()).map_err(runtime)?;
            let how = if key_file.is_some() {
                "encrypted"
            } else {
                "not encrypted"
            };
            writeln!(
                stdout,
                "backed up {} to {} ({bytes} bytes, {how})",
                state.display(),
                to.display()
            )?;
        }
        ServeTask::Restore {
            from,
            state,
            key_file,
            force,
        } => {
            let r =
                kiln_executor::restore(&from, &state, key(key_file.as_deref())?.as_ref(), force).map_err(runtime)?;
            writeln!(
                stdout,
                "restored {} into {}: schema version {}, {} machines, {} audit records, taken {} under plan {}",
                from.display(),
                state.display(),
                r.schema_version,
                r.machines,
                r.audit_records,
                r.taken_at.as_deref().unwrap_or("(unknown)"),
                r.plan_digest.as_deref().unwrap_or("(none)")
            )?;
            if let Some(aside) = r.replaced {
                writeln!(stdout, "the state it replaced is kept as {}", aside.display())?;
            }
        }
        ServeTask::Diag {
            state,
            to,
            secrets,
            operators,
            operator_token_file,
        } => {
            let bundle = kiln_executor::offline_bundle(
                &state,
                secrets.as_deref(),
                operators.as_deref(),
                operator_token_file.as_deref(),
            )
            .map_err(runtime)?;
            write_bundle(&to, &bundle, stdout)?;
        }
        ServeTask::AddOperator { name, role, operators } => {
            let token = kiln_executor::add_operator(&operators, &name, role).map_err(runtime)?;
            writeln!(stdout, "{token}")?;
        }
    }
    Ok(exit::OK)
}

fn write_bundle(to: &Path, bundle: &[u8], stdout: &mut dyn Write) -> Result<(), Failure> {
    std::fs::write(to, bundle).map_err(|e| Failure::Runtime(format!("{}: {e}", to.display())))?;
    writeln!(stdout, "wrote {} ({} bytes)", to.display(), bundle.len())?;
    Ok(())
}

/// `kiln diag`: a running executor's diagnostics bundle (admin).
pub(super) fn diag(args: DiagArgs, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let bundle = Client::new(&args.server)?.get("/v1/diag")?;
    write_bundle(&args.to, &bundle, stdout)?;
    Ok(exit::OK)
}

fn run(args: RunArgs) -> Result<i32, Failure> {
    let options = kiln_executor::Options {
        plan_dir: args.plan.unwrap_or_default(),
        state_dir: args.state,
        artifacts_dir: args.artifacts,
        listen: args.listen,
        boot_listen: args.boot_listen,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| kiln_executor::TlsFiles { cert, key }),
        insecure_operator_api: args.insecure_operator_api,
        secrets_dir: args.secrets,
        operator_token_file: args.operator_token_file,
        operators_file: args.operators,
        public_url: args.public_url,
        timing: kiln_executor::Timing {
            run_timeout: args.run_timeout,
            token_ttl: args.token_ttl,
        },
        poll: std::time::Duration::from_millis(args.poll_ms.max(50)),
        plan_history: args.plan_history.max(1),
        connections: kiln_executor::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            max_connections_per_address: args.max_connections_per_address.max(1),
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            max_auth_failures: args.max_auth_failures,
            max_facts_bytes: args.max_facts_kib.max(1) * 1024,
            max_event_streams: args.max_event_streams.max(1),
        },
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(kiln_executor::run(options)).map_err(runtime)?;
    Ok(exit::OK)
}
