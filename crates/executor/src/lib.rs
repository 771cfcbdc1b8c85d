//! `kiln serve`: the site executor. It consumes one rendered site plan
//! (`out/<site>/`) and never renders: this module and its children use the
//! plan types (`kiln_plan`) and nothing of the compiler.
//!
//! It serves boot files to PXE-booting machines, hands out per-run tokens,
//! takes install reports, and keeps every machine's state and an audit log
//! in SQLite (`store`). `plan` verifies and activates plans, `machines`
//! holds the state machine, `http` the endpoints.

mod agents;
mod artifacts;
mod backup;
mod clock;
mod diag;
mod guard;
mod history;
mod http;
mod listener;
mod machines;
mod metrics;
mod operators;
mod plan;
mod secrets;
mod store;
mod tls;
mod ui;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

pub use backup::{backup, restore, BackupKey, Restored};
pub use diag::offline_bundle;
pub use listener::ConnectionLimits;
pub use machines::Timing;
pub use operators::{add_operator, Role};
use plan::ActivePlan;
use store::Store;
pub use tls::TlsFiles;

/// How the executor runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `out/<site>/`.
    pub plan_dir: PathBuf,
    pub state_dir: PathBuf,
    pub artifacts_dir: Option<PathBuf>,
    /// Every endpoint: boot, agents and the operator API (HTTPS with `tls`).
    pub listen: SocketAddr,
    /// Boot and agent endpoints only, over plain HTTP (firmware and iPXE
    /// builds without the site CA boot here).
    pub boot_listen: Option<SocketAddr>,
    pub tls: Option<TlsFiles>,
    /// Serve the operator API over plain HTTP on a non-loopback address.
    pub insecure_operator_api: bool,
    pub secrets_dir: Option<PathBuf>,
    /// One admin's token (the operator named `admin`).
    pub operator_token_file: Option<PathBuf>,
    /// Operators, their roles and their tokens' SHA-256.
    pub operators_file: Option<PathBuf>,
    /// The URL machines reach the executor at; default: the Host they asked.
    pub public_url: Option<String>,
    pub timing: Timing,
    /// How often `plan.json` is checked for a change.
    pub poll: Duration,
    /// How many verified plans the history keeps (pinned ones besides).
    pub plan_history: usize,
    /// How much of the executor one client may hold.
    pub connections: ConnectionLimits,
}

impl Options {
    /// The effective settings, for the diagnostics bundle (paths and
    /// numbers; never a token or a secret).
    fn describe(&self) -> serde_json::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        serde_json::json!({
            "plan": self.plan_dir.display().to_string(),
            "state": self.state_dir.display().to_string(),
            "artifacts": path(&self.artifacts_dir),
            "listen": self.listen.to_string(),
            "bootListen": self.boot_listen.map(|a| a.to_string()),
            "tlsCert": self.tls.as_ref().map(|t| t.cert.display().to_string()),
            "tlsKey": self.tls.as_ref().map(|t| t.key.display().to_string()),
            "insecureOperatorApi": self.insecure_operator_api,
            "secrets": path(&self.secrets_dir),
            "operatorTokenFile": path(&self.operator_token_file),
            "operators": path(&self.operators_file),
            "publicUrl": self.public_url,
            "runTimeoutSeconds": self.timing.run_timeout,
            "tokenTtlSeconds": self.timing.token_ttl,
            "pollMs": self.poll.as_millis() as u64,
            "planHistory": self.plan_history,
            "maxConnections": self.connections.max_connections,
            "maxConnectionsPerAddress": self.connections.max_connections_per_address,
            "headerTimeoutSeconds": self.connections.header_timeout.as_secs(),
            "maxAuthFailures": self.connections.max_auth_failures,
            "maxFactsBytes": self.connections.max_facts_bytes,
            "maxEventStreams": self.connections.max_event_streams,
        })
    }
}

/// Why the plan in force is what it is.
#[derive(Default)]
struct Readiness {
    activations: u64,
    refusals: u64,
    last_refusal: Option<(i64, String)>,
    /// The plan on disk a pinned plan holds back (audited once).
    held_back: Option<String>,
    /// The last refused candidate and why (audited once).
    refused: Option<(Option<String>, String)>,
}

/// Everything the endpoints share.
pub struct App {
    opts: Options,
    plan: RwLock<Option<Arc<ActivePlan>>>,
    store: Store,
    secrets: secrets::Secrets,
    operators: RwLock<Arc<operators::Operators>>,
    metrics: metrics::Metrics,
    readiness: Mutex<Readiness>,
    /// Two-step confirmations: action → (token, expiry).
    confirmations: Mutex<HashMap<String, (String, i64)>>,
    artifacts: artifacts::Verified,
    auth_guard: guard::AuthGuard,
    /// Open `/v1/events` streams.
    event_streams: Arc<tokio::sync::Semaphore>,
    /// Held by whatever changes the plan in force (the watcher, pin,
    /// rollback, unpin), so their checks and changes never interleave.
    activation: tokio::sync::Mutex<()>,
}

/// The executor's recent log lines, for the diagnostics bundle.
static RECENT_LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
const RECENT_LOG_LINES: usize = 2000;

fn log(message: &str) {
    let mut line = format!("{} kiln-serve: {message}\n", clock::rfc3339(clock::now()));
    // One write per line (`eprintln!` makes two), so lines from several
    // threads never interleave and a busy executor makes half the calls.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    line.pop();
    if let Ok(mut recent) = RECENT_LOG.lock() {
        if recent.len() == RECENT_LOG_LINES {
            recent.pop_front();
        }
        recent.push_back(line);
    }
}

/// How a plan came to be activated, for the audit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    /// `plan.json` under `--plan` changed (or the executor started).
    FromDisk,
    /// The pinned plan, from the history, at start.
    PinnedAtStart,
    /// An admin pinned a kept plan.
    Pin,
    /// An admin rolled back to the plan before.
    Rollback,
}

impl Activation {
    fn action(self) -> &'static str {
        match self {
            Activation::FromDisk | Activation::PinnedAtStart => "plan activated",
            Activation::Pin => "plan pinned",
            Activation::Rollback => "plan rolled back",
        }
    }

    /// Whether the plan is pinned once activated.
    fn pins(self) -> bool {
        self != Activation::FromDisk
    }
}

impl App {
    fn current_plan(&self) -> Option<Arc<ActivePlan>> {
        self.plan.read().ok().and_then(|p| p.clone())
    }

    fn current_digest(&self) -> String {
        self.current_plan().map(|p| p.digest.clone()).unwrap_or_default()
    }

    fn operators(&self) -> Arc<operators::Operators> {
        self.operators.read().map(|o| o.clone()).unwrap_or_default()
    }

    /// Reads `plan.json`; when it differs from the plan in force, verifies
    /// it and activates it, unless a pinned plan is in force (then the new
    /// one is held back, audited once). A plan that does not verify is
    /// refused and the one in force keeps serving.
    async fn refresh_plan(&self) {
        let _activating = self.activation.lock().await;
        let in_force = self.current_digest();
        let path = self.opts.plan_dir.join(kiln_plan::PLAN_FILE);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) => return self.refuse(&format!("{}: {e}", path.display()), &in_force, None).await,
        };
        let on_disk = kiln_plan::sha256_hex(&bytes);
        if on_disk == in_force {
            return;
        }
        // A pinned plan holds back any other, even one it could not serve
        // at start (then nothing is served, and /readyz says why).
        if let Some(pinned) = self.store.read(history::pinned).ok().flatten() {
            return self.hold_back(&on_disk, &pinned).await;
        }
        let dir = self.opts.plan_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            ActivePlan::verify(bytes, |f| std::fs::read(dir.join(&f.path)).map_err(|e| e.to_string()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match loaded {
            Ok(new) => {
                if let Err(e) = self.activate(Arc::new(new), "executor", Activation::FromDisk).await {
                    self.refuse(&format!("cannot record the plan: {e}"), &in_force, Some(&on_disk))
                        .await;
                }
            }
            Err(reason) => self.refuse(&reason, &in_force, Some(&on_disk)).await,
        }
    }

    /// Makes `new` the plan in force: the machines follow it, the history
    /// records it, and the activation is audited with both digests.
    async fn activate(&self, new: Arc<ActivePlan>, actor: &str, how: Activation) -> Result<(), String> {
        let previous = self.current_digest();
        let (plan, keep, actor_name) = (new.clone(), self.opts.plan_history, actor.to_string());
        let prev = previous.clone();
        let events = self
            .store
            .write(move |t| {
                let mut events = Vec::new();
                machines::sync_plan(t, &plan.plan, &plan.digest, &mut events)?;
                if how.pins() {
                    history::record(t, &plan, keep)?;
                    history::set_pin(t, Some(&plan.digest))?;
                } else {
                    history::set_pin(t, None)?;
                    history::record(t, &plan, keep)?;
                }
                let detail = serde_json::json!({
                    "site": plan.plan.name,
                    "machines": plan.plan.machines.len(),
                    "files": plan.plan.files.len(),
                    "previous": (!prev.is_empty()).then_some(&prev),
                    "pinned": how.pins(),
                });
                store::audit(t, &actor_name, how.action(), None, detail, &plan.digest)?;
                Ok(events)
            })
            .await?;
        log(&format!(
            "{}: {} of site {} (previous: {}){}",
            how.action(),
            new.digest,
            new.plan.name,
            if previous.is_empty() { "none" } else { &previous },
            if how.pins() { ", pinned" } else { "" }
        ));
        if let Ok(mut slot) = self.plan.write() {
            *slot = Some(new);
        }
        if let Ok(mut r) = self.readiness.lock() {
            r.activations += 1;
            r.held_back = None;
            r.refused = None;
        }
        self.publish(events);
        Ok(())
    }

    /// A pinned plan is in force: the new `plan.json` waits, audited once.
    async fn hold_back(&self, on_disk: &str, pinned: &str) {
        let first = self
            .readiness
            .lock()
            .map(|mut r| r.held_back.replace(on_disk.to_string()).as_deref() != Some(on_disk))
            .unwrap_or(false);
        if !first {
            return;
        }
        log(&format!(
            "plan {on_disk} on disk is not activated: plan {pinned} is pinned (unpin it to follow plan.json again)"
        ));
        let detail = serde_json::json!({"onDisk": on_disk, "pinned": pinned});
        let digest = pinned.to_string();
        let _ = self
            .store
            .write(move |t| store::audit(t, "executor", "plan held back", None, detail, &digest))
            .await;
    }

    /// Records a refusal (once per distinct reason) and keeps the plan in
    /// force.
    async fn refuse(&self, reason: &str, in_force: &str, candidate: Option<&str>) {
        let this = (candidate.map(str::to_string), reason.to_string());
        let repeated = self
            .readiness
            .lock()
            .map(|mut r| r.refused.replace(this.clone()) == Some(this))
            .unwrap_or(false);
        if repeated {
            return;
        }
        log(&format!(
            "refused plan: {reason}; keeping plan {}",
            if in_force.is_empty() { "(none)" } else { in_force }
        ));
        if let Ok(mut r) = self.readiness.lock() {
            r.refusals += 1;
            r.last_refusal = Some((clock::now(), reason.to_string()));
        }
        let detail = serde_json::json!({"reason": reason, "refused": candidate});
        let digest = in_force.to_string();
        let _ = self
            .store
            .write(move |t| store::audit(t, "executor", "plan refused", None, detail, &digest))
            .await;
    }

    fn publish(&self, events: machines::Events) {
        for e in events {
            let _ = self.store.events.send(e);
        }
    }
}

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
    #[error("state database {}: {reason}; restore it from a backup (kiln serve restore) or move it away to start with an empty state", path.display())]
    CorruptState { path: PathBuf, reason: String },
    #[error("state database {}: schema version {found} was written by a newer kiln (this one knows up to {known}); run that kiln, or restore a backup taken with this one", path.display())]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("state directory {}: another kiln serve (or a restore) is using it", .0.display())]
    StateInUse(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("operators file {}: {reason}", path.display())]
    Operators { path: PathBuf, reason: String },
    #[error("TLS: {}: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
    #[error("refusing to serve the operator API on {0} over plain HTTP: give --tls-cert and --tls-key, listen on a loopback address, or pass --insecure-operator-api (tokens would cross the network in clear)")]
    InsecureOperatorApi(SocketAddr),
    #[error("{}: {reason}", path.display())]
    Backup { path: PathBuf, reason: String },
}

impl Error {
    fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs the executor until SIGINT or SIGTERM.
pub async fn run(opts: Options) -> Result<(), Error> {
    // Taken first, so a SIGHUP during a slow start reloads rather than kills.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let secrets = secrets::Secrets::open(opts.secrets_dir.as_deref())?;
    let sources = operators::Sources {
        file: opts.operators_file.clone(),
        token_file: opts.operator_token_file.clone(),
    };
    let operators = sources.load()?;
    let tls = opts.tls.clone().map(tls::Tls::load).transpose()?.map(Arc::new);
    // Whether operators are configured, not whether any is listed yet: an
    // operators file filled in later is reread while the executor runs.
    let operator_api = opts.operators_file.is_some() || opts.operator_token_file.is_some();
    if tls.is_none() && operator_api && !opts.listen.ip().is_loopback() {
        if !opts.insecure_operator_api {
            return Err(Error::InsecureOperatorApi(opts.listen));
        }
        log(&format!(
            "WARNING: the operator API is served on {} over plain HTTP (--insecure-operator-api): tokens cross the network in clear",
            opts.listen
        ));
    }
    let store = Store::open(&opts.state_dir)?;
    let app = Arc::new(App {
        artifacts: artifacts::Verified::default(),
        opts: opts.clone(),
        plan: RwLock::new(None),
        store,
        secrets,
        operators: RwLock::new(Arc::new(operators)),
        metrics: metrics::Metrics::default(),
        readiness: Mutex::new(Readiness::default()),
        confirmations: Mutex::new(HashMap::new()),
        auth_guard: guard::AuthGuard::new(opts.connections.max_auth_failures),
        event_streams: Arc::new(tokio::sync::Semaphore::new(opts.connections.max_event_streams)),
        activation: tokio::sync::Mutex::new(()),
    });
    activate_pinned(&app).await;
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
            let digest = sweeper.current_digest();
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
    tokio::spawn(reload_on_change(app.clone(), sources, tls.clone(), hup));

    let stop = tokio_util::sync::CancellationToken::new();
    let mut servers = tokio::task::JoinSet::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let main = bind(opts.listen, scheme).await?;
    servers.spawn(listener::serve(
        main,
        http::router(app.clone(), http::Surface::All),
        opts.connections,
        tls,
        stop.clone().cancelled_owned(),
    ));
    if let Some(addr) = opts.boot_listen {
        let boot = bind(addr, "http").await?;
        servers.spawn(listener::serve(
            boot,
            http::router(app.clone(), http::Surface::Boot),
            opts.connections,
            None,
            stop.clone().cancelled_owned(),
        ));
    }
    shutdown_signal().await;
    stop.cancel();
    while servers.join_next().await.is_some() {}
    Ok(())
}

async fn bind(addr: SocketAddr, scheme: &str) -> Result<tokio::net::TcpListener, Error> {
    let listen = |source| Error::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    log(&format!(
        "listening on {scheme}://{}",
        listener.local_addr().map_err(listen)?
    ));
    Ok(listener)
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
}

/// At start, a pinned plan is served from the history, whatever is on disk.
async fn activate_pinned(app: &App) {
    let Ok(Some(digest)) = app.store.read(history::pinned) else {
        return;
    };
    match app.store.read(|c| Ok(history::load(c, &digest))) {
        Ok(Ok(plan)) => {
            if let Err(e) = app
                .activate(Arc::new(plan), "executor", Activation::PinnedAtStart)
                .await
            {
                app.refuse(&format!("cannot record the plan: {e}"), "", Some(&digest))
                    .await;
            }
        }
        Ok(Err(reason)) | Err(reason) => {
            app.refuse(&format!("pinned plan {digest}: {reason}"), "", Some(&digest))
                .await;
        }
    }
}

/// Reloads the TLS certificate and the operators on SIGHUP and whenever
/// their files change; a reload that fails keeps what is in force.
async fn reload_on_change(
    app: Arc<App>,
    sources: operators::Sources,
    tls: Option<Arc<tls::Tls>>,
    mut hup: Option<tokio::signal::unix::Signal>,
) {
    let mut paths = sources.paths();
    if let Some(tls) = &tls {
        paths.extend([tls.files.cert.clone(), tls.files.key.clone()]);
    }
    let stamp = |paths: &[PathBuf]| -> Vec<Option<SystemTime>> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut seen = stamp(&paths);
    loop {
        let asked = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
        };
        let now = stamp(&paths);
        if !asked && now == seen {
            continue;
        }
        seen = now;
        match sources.load() {
            Ok(fresh) => {
                log(&format!("operators reloaded: {} known", fresh.len()));
                if let Ok(mut slot) = app.operators.write() {
                    *slot = Arc::new(fresh);
                }
            }
            Err(e) => log(&format!("operators not reloaded, the previous ones stay: {e}")),
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => log("TLS certificate reloaded"),
                Err(e) => log(&format!("TLS certificate not reloaded, the previous one stays: {e}")),
            }
        }
    }
}
