//! `kiln serve`: the site executor. It consumes one rendered site plan
//! (`out/<site>/`) and never renders: this module and its children use the
//! plan types (`kiln_plan`) and nothing of the compiler.
//!
//! It serves boot files to PXE-booting machines, hands out per-run tokens,
//! takes install reports, and keeps every machine's state and an audit log
//! in SQLite (`store`). `plan` verifies and activates plans, `machines`
//! holds the state machine, `http` the endpoints.

mod artifacts;
mod clock;
mod guard;
mod http;
mod listener;
mod machines;
mod metrics;
mod plan;
mod secrets;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use listener::ConnectionLimits;
pub use machines::Timing;
use plan::ActivePlan;
use store::Store;

/// How the executor runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `out/<site>/`.
    pub plan_dir: PathBuf,
    pub state_dir: PathBuf,
    pub artifacts_dir: Option<PathBuf>,
    pub listen: SocketAddr,
    pub secrets_dir: Option<PathBuf>,
    pub operator_token_file: Option<PathBuf>,
    /// The URL machines reach the executor at; default: the Host they asked.
    pub public_url: Option<String>,
    pub timing: Timing,
    /// How often `plan.json` is checked for a change.
    pub poll: Duration,
    /// How much of the executor one client may hold.
    pub connections: ConnectionLimits,
}

/// Why the plan in force is what it is.
#[derive(Default)]
struct Readiness {
    activations: u64,
    refusals: u64,
    last_refusal: Option<(i64, String)>,
}

/// Everything the endpoints share.
pub struct App {
    opts: Options,
    plan: RwLock<Option<Arc<ActivePlan>>>,
    store: Store,
    secrets: secrets::Secrets,
    operator_token: Option<String>,
    metrics: metrics::Metrics,
    readiness: Mutex<Readiness>,
    /// Reprovision confirmations: machine → (token, expiry).
    confirmations: Mutex<HashMap<String, (String, i64)>>,
    artifacts: artifacts::Verified,
    auth_guard: guard::AuthGuard,
}

fn log(message: &str) {
    eprintln!("{} kiln-serve: {message}", clock::rfc3339(clock::now()));
}

impl App {
    fn current_plan(&self) -> Option<Arc<ActivePlan>> {
        self.plan.read().ok().and_then(|p| p.clone())
    }

    /// Reads and verifies the plan; activates it when it verifies and
    /// differs from the one in force, otherwise records the refusal.
    async fn refresh_plan(&self) {
        let dir = self.opts.plan_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || ActivePlan::load(&dir))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let current = self.current_plan();
        let in_force = current.as_ref().map(|p| p.digest.clone()).unwrap_or_default();
        match loaded {
            Ok(new) if new.digest == in_force => {}
            Ok(new) => {
                let new = Arc::new(new);
                let (plan, digest) = (new.plan.clone(), new.digest.clone());
                let result = self
                    .store
                    .write(move |t| {
                        let mut events = Vec::new();
                        machines::sync_plan(t, &plan, &digest, &mut events)?;
                        let detail = serde_json::json!({"site": plan.name, "machines": plan.machines.len(), "files": plan.files.len()});
                        store::audit(t, "executor", "plan activated", None, detail, &digest)?;
                        Ok(events)
                    })
                    .await;
                match result {
                    Ok(events) => {
                        log(&format!("activated plan {} of site {}", new.digest, new.plan.name));
                        if let Ok(mut slot) = self.plan.write() {
                            *slot = Some(new);
                        }
                        if let Ok(mut r) = self.readiness.lock() {
                            r.activations += 1;
                        }
                        self.publish(events);
                    }
                    Err(e) => self.refuse(&format!("cannot record the plan: {e}"), &in_force).await,
                }
            }
            Err(reason) => {
                let repeated = self
                    .readiness
                    .lock()
                    .ok()
                    .and_then(|r| r.last_refusal.clone())
                    .is_some_and(|(_, last)| last == reason);
                if !repeated {
                    self.refuse(&reason, &in_force).await;
                }
            }
        }
    }

    async fn refuse(&self, reason: &str, in_force: &str) {
        log(&format!(
            "refused plan: {reason}; keeping plan {}",
            if in_force.is_empty() { "(none)" } else { in_force }
        ));
        if let Ok(mut r) = self.readiness.lock() {
            r.refusals += 1;
            r.last_refusal = Some((clock::now(), reason.to_string()));
        }
        let (reason, digest) = (reason.to_string(), in_force.to_string());
        let _ = self
            .store
            .write(move |t| {
                store::audit(
                    t,
                    "executor",
                    "plan refused",
                    None,
                    serde_json::json!({"reason": reason}),
                    &digest,
                )
            })
            .await;
    }

    fn publish(&self, events: machines::Events) {
        for e in events {
            let _ = self.store.events.send(e);
        }
    }
}

/// Runs the executor until SIGINT or SIGTERM.
/// Why the executor cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is accessible by group or others (mode {mode:o}); make it private (chmod go-rwx)", path.display())]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("{}: the operator token must be at least 16 characters", .0.display())]
    ShortOperatorToken(PathBuf),
    #[error("state database {}: {source}", path.display())]
    State { path: PathBuf, source: rusqlite::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

impl Error {
    fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub async fn run(opts: Options) -> Result<(), Error> {
    let secrets = secrets::Secrets::open(opts.secrets_dir.as_deref())?;
    let operator_token = match &opts.operator_token_file {
        Some(path) => {
            secrets::private(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err(Error::ShortOperatorToken(path.clone()));
            }
            Some(token)
        }
        None => None,
    };
    let store = Store::open(&opts.state_dir)?;
    let app = Arc::new(App {
        artifacts: artifacts::Verified::default(),
        opts: opts.clone(),
        plan: RwLock::new(None),
        store,
        secrets,
        operator_token,
        metrics: metrics::Metrics::default(),
        readiness: Mutex::new(Readiness::default()),
        confirmations: Mutex::new(HashMap::new()),
        auth_guard: guard::AuthGuard::new(opts.connections.max_auth_failures),
    });
    app.refresh_plan().await;

    let watcher = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(watcher.opts.poll);
        loop {
            tick.tick().await;
            watcher.refresh_plan().await;
        }
    });
    let sweeper = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let digest = sweeper.current_plan().map(|p| p.digest.clone()).unwrap_or_default();
            let timing = sweeper.opts.timing;
            if let Ok(events) = sweeper
                .store
                .write(move |t| {
                    let mut events = Vec::new();
                    machines::sweep(t, timing, &digest, &mut events)?;
                    Ok(events)
                })
                .await
            {
                sweeper.publish(events);
            }
        }
    });

    let listen = |source| Error::Listen {
        addr: opts.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(listen)?;
    log(&format!(
        "listening on http://{}",
        listener.local_addr().map_err(listen)?
    ));
    let limits = opts.connections;
    listener::serve(listener, http::router(app), limits, async {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    })
    .await;
    Ok(())
}
