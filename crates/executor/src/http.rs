//! The executor's HTTP endpoints (SPEC §6; `docs/openapi.yaml`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::StreamExt;

use super::agents::{self, Bearer};
use super::guard::BLOCK;
use super::listener::{Peer, Scheme};
use super::machines::{self, Boot, Events};
use super::metrics::{Counter, Gauge};
use super::operators::Role;
use super::plan::{step, ActivePlan};
use super::{artifacts, backup, clock, diag, history, log, secrets, store, Activation, App};
use kiln_plan::{
    placeholder, AgentAnswer, DiscoveredList, ErrorAnswer, FactsList, Mac, MachineList, MachineState, PlanActionDone,
    PlanActionPending, ReportAnswer, ReprovisionDone, ReprovisionPending,
};

/// The OpenAPI document of these endpoints.
pub(crate) const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Surface {
    /// Boot, agents, health: what machines on the provisioning network use.
    Boot,
    /// Those and the operator API.
    All,
}

/// Bytes any request body other than a facts report may have.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn router(app: Arc<App>, surface: Surface) -> Router {
    // The report handlers read their bodies themselves, within their own limit.
    let facts_limit = DefaultBodyLimit::disable();
    let mut router = Router::new()
        .route("/menu.ipxe", get(menu))
        .route("/boot/ipxe", get(boot))
        .route("/install/{token}/{file}", get(install))
        .route("/artifacts/{*path}", get(artifact))
        .route("/v1/agents/facts", post(facts).layer(facts_limit))
        .route("/v1/agents/checkin", post(checkin).layer(facts_limit))
        .route("/v1/agents/script", get(agent_script))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }));
    // The provisioning network learns whether a plan is active, not why.
    router = match surface {
        Surface::Boot => router.route("/readyz", get(readyz_boot)),
        Surface::All => router.route("/readyz", get(readyz)),
    };
    if surface == Surface::All {
        router = router
            .route("/v1/machines", get(machines_list))
            .route("/v1/machines/{name}", get(machine_get))
            .route("/v1/machines/{name}/reprovision", post(reprovision))
            .route("/v1/facts", get(facts_list))
            .route("/v1/discovered", get(discovered_list))
            .route("/v1/audit", get(audit))
            .route("/v1/events", get(events))
            .route("/v1/plans", get(plans_list))
            .route("/v1/plans/rollback", post(plan_rollback))
            .route("/v1/plans/unpin", post(plan_unpin))
            .route("/v1/plans/{digest}/pin", post(plan_pin))
            .route("/v1/backup", get(backup_download))
            .route("/v1/diag", get(diag_download))
            .route("/metrics", get(metrics))
            .route(
                "/openapi.yaml",
                get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
            );
        router = super::ui::routes(router);
    }
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), guard_auth))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Refuses (429) an address that keeps failing to authenticate, and counts
/// each failure (every 401) against it; see `guard.rs`.
async fn guard_auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(ip) = request.extensions().get::<Peer>().map(|p| p.0.ip()) else {
        return next.run(request).await;
    };
    if let Some(wait) = app.auth_guard.refused(ip, clock::now()) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications from this address; try again later",
        )
        .into_response();
        if let Ok(value) = header::HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED && app.auth_guard.failed(ip, clock::now()) {
        let max = app.auth_guard.max_failures;
        log(&format!(
            "{ip}: more than {max} failed authentications in a minute; refused for {BLOCK} s"
        ));
        let digest = app.current_plan().map(|p| p.digest.clone()).unwrap_or_default();
        let detail = json!({"address": ip.to_string(), "failures": max + 1, "refusedForSeconds": BLOCK});
        let _ = app
            .store
            .write(move |t| store::audit(t, "executor", "authentication failures", None, detail, &digest))
            .await;
    }
    response
}

/// Counts and logs every request by its route (never its path: paths
/// carry tokens).
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)".to_string(), |m| m.as_str().to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16();
    app.metrics.count(&route, code);
    if route != "/metrics" && route != "/healthz" {
        log(&format!("{method} {route} {code} {} ms", started.elapsed().as_millis()));
    }
    response
}

/// An error answer: a status and a sentence, as `{"error": ...}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorAnswer { error: self.1 })).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn error(code: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(code, message.into())
}

fn active_plan(app: &App) -> Result<Arc<ActivePlan>, ApiError> {
    app.current_plan().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no verified plan is active; see /readyz",
        )
    })
}

fn internal(e: String) -> ApiError {
    log(&format!("state store: {e}"));
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the state store failed; see the executor's log",
    )
}

/// Commits `change` and publishes the events it made.
async fn commit<T: Send + 'static>(
    app: &App,
    change: impl FnOnce(&rusqlite::Connection, &mut Events) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let (value, events) = app
        .store
        .write(move |t| {
            let mut events = Vec::new();
            let value = change(t, &mut events)?;
            Ok((value, events))
        })
        .await
        .map_err(internal)?;
    app.publish(events);
    Ok(value)
}

fn plain(body: Vec<u8>, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The URL machines reach this executor at: `--public-url`, or the scheme
/// and Host they asked by.
fn server_url(app: &App, scheme: Scheme, headers: &HeaderMap) -> String {
    if let Some(url) = &app.opts.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let scheme = scheme.0;
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '@']) => format!("{scheme}://{host}"),
        _ => format!("{scheme}://{}", app.opts.listen),
    }
}

/// A served file with its placeholders filled.
fn filled(content: &[u8], with: &secrets::Fill) -> Result<Vec<u8>, ApiError> {
    secrets::fill(content, with).map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))
}

/// A boot script's placeholders: the server and the token, nothing secret.
fn boot_fill<'a>(server: &'a str, token: &'a str) -> secrets::Fill<'a> {
    secrets::Fill {
        server,
        token,
        agent: "",
        secrets: None,
    }
}

async fn menu(State(app): State<Arc<App>>, Extension(scheme): Extension<Scheme>, headers: HeaderMap) -> Answer {
    let plan = active_plan(&app)?;
    let file = plan
        .file("boot/menu.ipxe")
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "the plan has no menu"))?;
    Ok(plain(
        filled(file, &boot_fill(&server_url(&app, scheme, &headers), ""))?,
        "text/plain; charset=utf-8",
    ))
}

#[derive(Deserialize)]
struct BootQuery {
    mac: Option<String>,
}

/// The script that boots the local disk. One text for every reason (an
/// unknown MAC, an installed machine, ...), so the answer tells a client
/// on the provisioning network nothing about which machines exist; the
/// reason goes to the log.
fn local_disk(reason: &str) -> Response {
    log(&format!("boot: local disk ({reason})"));
    let script = "#!ipxe\n# kiln: boot from the local disk\nsanboot --no-describe --drive 0x80 || exit\n";
    plain(script.as_bytes().to_vec(), "text/plain; charset=utf-8")
}

async fn boot(
    State(app): State<Arc<App>>,
    Extension(scheme): Extension<Scheme>,
    headers: HeaderMap,
    query: Result<Query<BootQuery>, QueryRejection>,
) -> Answer {
    let plan = active_plan(&app)?;
    let mac = query
        .ok()
        .and_then(|Query(q)| q.mac)
        .as_deref()
        .and_then(Mac::parse)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "`mac` must be a MAC address"))?;
    let server = server_url(&app, scheme, &headers);
    let Some(machine) = plan.machine_by_mac(&mac) else {
        return unknown(&app, &plan, mac, &server).await;
    };
    // The plan goes to the state store by reference count, not by copy.
    let (timing, shared) = (app.opts.timing, plan.clone());
    let answer = commit(&app, move |t, events| {
        let planned = shared
            .machine_by_mac(&mac)
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        machines::boot(t, planned, timing, &shared.digest, events)
    })
    .await?;
    match answer {
        Boot::Installed => Ok(local_disk(&format!(
            "{} generation {} is installed",
            machine.name, machine.generation
        ))),
        Boot::Fetched => Ok(local_disk(&format!(
            "{} generation {} fetched its install file; reprovision it to install again",
            machine.name, machine.generation
        ))),
        Boot::Step { step: name, token } => {
            let script = step(machine, name)
                .and_then(|s| plan.file(&s.boot_script))
                .ok_or_else(|| error(StatusCode::NOT_FOUND, "the plan has no script for this step"))?;
            Ok(plain(
                filled(script, &boot_fill(&server, &token))?,
                "text/plain; charset=utf-8",
            ))
        }
    }
}

/// A MAC the plan does not know: recorded as discovered, and given the
/// discovery step with a discovery token when the site has one, else the
/// local-disk script.
async fn unknown(app: &App, plan: &ActivePlan, mac: Mac, server: &str) -> Answer {
    let digest = plan.digest.clone();
    let discovery = plan
        .plan
        .discovery
        .as_ref()
        .and_then(|d| plan.file(&d.boot_script))
        .cloned();
    let (timing, discovering) = (app.opts.timing, discovery.is_some());
    let token = commit(app, move |t, events| {
        machines::discovered(t, mac, &digest, events)?;
        discovering.then(|| agents::discovery_token(t, mac, timing)).transpose()
    })
    .await?;
    match (discovery, token) {
        (Some(script), Some(token)) => {
            log(&format!("boot: {mac} is unknown; serving the discovery script"));
            Ok(plain(
                filled(&script, &boot_fill(server, &token))?,
                "text/plain; charset=utf-8",
            ))
        }
        _ => Ok(local_disk("unknown machine, recorded as discovered")),
    }
}

/// The live run (or discovery) of a token; every dead or unknown token
/// gets 401.
async fn authorize(app: &App, token: &str) -> Result<Bearer, ApiError> {
    let token = token.to_string();
    app.store
        .write(move |t| {
            Ok(match machines::live_run(t, &token)? {
                Some(run) => Some(Bearer::Run(run)),
                None => agents::discovery_mac(t, &token)?.map(Bearer::Discovery),
            })
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "the token is unknown, expired, or its run has ended",
            )
        })
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("xml") => "application/xml",
        Some("yaml") | Some("yml") => "application/yaml",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

async fn install(
    State(app): State<Arc<App>>,
    Extension(scheme): Extension<Scheme>,
    headers: HeaderMap,
    Path((token, file)): Path<(String, String)>,
) -> Answer {
    let plan = active_plan(&app)?;
    let same_name = |path: &&str| path.rsplit('/').next() == Some(file.as_str());
    let server = server_url(&app, scheme, &headers);
    let run = match authorize(&app, &token).await? {
        Bearer::Run(run) => run,
        Bearer::Discovery(_) => {
            let script = plan
                .plan
                .discovery
                .as_ref()
                .map(|d| d.install_file.as_str())
                .filter(same_name)
                .and_then(|p| plan.file(p))
                .ok_or_else(|| error(StatusCode::NOT_FOUND, "discovery serves no such file"))?;
            return Ok(plain(filled(script, &boot_fill(&server, &token))?, content_type(&file)));
        }
    };
    let content = plan
        .machine(&run.machine)
        .and_then(|m| step(m, run.step))
        .and_then(|s| s.install_file.as_deref())
        .filter(same_name)
        .and_then(|p| plan.file(p))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "this run serves no such file"))?;
    // An install file that sets up the machine's agent gets a new agent
    // credential; the one before stops working.
    let agent = content
        .windows(placeholder::AGENT_TOKEN.len())
        .any(|w| w == placeholder::AGENT_TOKEN.as_bytes())
        .then(machines::mint_token);
    let with = secrets::Fill {
        server: &server,
        token: &token,
        agent: agent.as_deref().unwrap_or_default(),
        secrets: Some(&app.secrets),
    };
    let body = filled(content, &with).inspect_err(|e| {
        log(&format!("cannot serve the install file of {}: {}", run.machine, e.1));
    })?;
    let digest = plan.digest.clone();
    commit(&app, move |t, events| {
        if let Some(agent) = &agent {
            agents::mint_agent(t, &run.machine, agent)?;
        }
        machines::install_fetched(t, &run, &digest, events)
    })
    .await?;
    Ok(plain(body, content_type(&file)))
}

async fn artifact(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap, Path(path): Path<String>) -> Answer {
    let plan = active_plan(&app)?;
    // A slash or backslash smuggled in encoded never names an artifact.
    let raw = uri.path().to_ascii_lowercase();
    if raw.contains("%2f") || raw.contains("%5c") {
        return Err(error(StatusCode::NOT_FOUND, "no such artifact"));
    }
    let dir = app.opts.artifacts_dir.as_deref();
    Ok(artifacts::serve(&app.artifacts, dir, &path, plan.artifacts.get(&path), &headers).await)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Time a client has to send a facts report's body, once its headers are in.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The token is checked before the body is read, and the body must arrive
/// within `BODY_TIMEOUT` and fit `--max-facts-kib`: a client without a
/// live token cannot make the executor hold a slow body.
async fn facts(State(app): State<Arc<App>>, request: Request) -> Answer {
    let plan = active_plan(&app)?;
    let token = bearer(request.headers())
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "a bearer run token is required"))?
        .to_string();
    let who = authorize(&app, &token).await?;
    let snapshot = snapshot(&app, request).await?;
    let digest = plan.digest.clone();
    let run = match who {
        Bearer::Run(run) => run,
        Bearer::Discovery(mac) => {
            commit(&app, move |t, events| {
                agents::discovered_facts(t, mac, &snapshot, &digest, events)
            })
            .await?;
            return Ok(Json(json!({"mac": mac, "discovered": true})).into_response());
        }
    };
    let (run_id, machine) = (run.id, run.machine.clone());
    let state = commit(&app, move |t, events| {
        machines::report(t, &run, &snapshot, &digest, events)
    })
    .await?;
    Ok(Json(ReportAnswer {
        machine,
        run: run_id,
        state,
    })
    .into_response())
}

/// The machine whose agent credential `headers` carry; 401 otherwise.
fn agent(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let token =
        bearer(headers).ok_or_else(|| error(StatusCode::UNAUTHORIZED, "a bearer agent credential is required"))?;
    app.store
        .read(|c| agents::agent_machine(c, token))
        .map_err(internal)?
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "the agent credential is unknown or was revoked (reprovisioned or reinstalled)",
            )
        })
}

/// `GET /v1/agents/script`: the agent of a machine's blueprint, for its
/// installer to put in place.
async fn agent_script(State(app): State<Arc<App>>, Extension(scheme): Extension<Scheme>, headers: HeaderMap) -> Answer {
    let plan = active_plan(&app)?;
    let machine = agent(&app, &headers)?;
    let script = plan
        .machine(&machine)
        .and_then(|m| m.agent.as_ref())
        .and_then(|a| plan.file(&a.script))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "this machine's plan has no agent"))?;
    Ok(plain(
        filled(script, &boot_fill(&server_url(&app, scheme, &headers), ""))?,
        "text/plain; charset=utf-8",
    ))
}

/// `POST /v1/agents/checkin`: an installed machine's agent reports its
/// facts with its agent credential.
async fn checkin(State(app): State<Arc<App>>, request: Request) -> Answer {
    let plan = active_plan(&app)?;
    let machine = agent(&app, request.headers())?;
    let snapshot = snapshot(&app, request).await?;
    let who = machine.clone();
    commit(&app, move |t, events| agents::checkin(t, &who, &snapshot, events)).await?;
    let next = plan
        .machine(&machine)
        .and_then(|m| m.agent.as_ref())
        .map(|a| a.interval_seconds)
        .unwrap_or(900);
    Ok(Json(AgentAnswer {
        machine,
        next_in_seconds: next,
    })
    .into_response())
}

/// A report's `snapshot`, read within `BODY_TIMEOUT` and `--max-facts-kib`.
async fn snapshot(app: &App, request: Request) -> Result<Value, ApiError> {
    let limit = app.opts.connections.max_facts_bytes;
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(request.into_body(), limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a facts report may have at most {} KiB (--max-facts-kib)", limit / 1024),
            ))
        }
        Err(_) => return Err(error(StatusCode::REQUEST_TIMEOUT, "the report's body came too slowly")),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v["snapshot"].is_object() => Ok(v["snapshot"].clone()),
        _ => Err(error(StatusCode::BAD_REQUEST, "the body must be {\"snapshot\": {...}}")),
    }
}

/// Operator endpoints need an operator's bearer token (401 otherwise) of a
/// role that may do what is asked (403 otherwise). Returns the audit actor
/// naming the operator: `operator:<name>`.
fn operator(app: &App, headers: &HeaderMap, needs: Role) -> Result<String, ApiError> {
    let operators = app.operators();
    if operators.is_empty() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "the operator API is off: start with --operators or --operator-token-file",
        ));
    }
    let given = bearer(headers).unwrap_or_default();
    let who = operators
        .authenticate(given)
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "a valid operator bearer token is required"))?;
    if who.role < needs {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!(
                "{} is {} {}; this needs the {} role",
                who.name,
                if who.role == Role::Admin { "an" } else { "a" },
                who.role.as_str(),
                needs.as_str()
            ),
        ));
    }
    Ok(format!("operator:{}", who.name))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn machines_list(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    let plan = active_plan(&app)?;
    let statuses = app.store.read(|c| machines::statuses(c, None)).map_err(internal)?;
    let at = clock::now();
    let list = plan
        .plan
        .machines
        .iter()
        .map(|m| machines::machine_summary(m, statuses.get(&m.name), at))
        .collect();
    let answer = MachineList {
        site: plan.plan.name.clone(),
        plan_digest: plan.digest.clone(),
        machines: list,
    };
    Ok(Json(answer).into_response())
}

async fn machine_get(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    let plan = active_plan(&app)?;
    let m = plan
        .machine(&name)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such machine in the plan"))?;
    let mut detail = app.store.read(|c| machines::machine_detail(c, m)).map_err(internal)?;
    // A machine's facts are for operators; a viewer sees that there are some.
    if operator(&app, &headers, Role::Operator).is_err() {
        if let Some(facts) = detail.get_mut("lastFacts").filter(|f| !f.is_null()) {
            *facts = json!({"at": facts["at"], "snapshot": {}, "hidden": "facts need the operator role"});
        }
    }
    Ok(Json(detail).into_response())
}

/// `GET /v1/facts`: every machine's latest facts, for `kiln drift`.
async fn facts_list(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Operator)?;
    let plan = active_plan(&app)?;
    let list = app
        .store
        .read(|c| machines::latest_facts(c, &plan.plan))
        .map_err(internal)?;
    Ok(Json(FactsList {
        site: plan.plan.name.clone(),
        plan_digest: plan.digest.clone(),
        machines: list,
    })
    .into_response())
}

/// `GET /v1/discovered`: the MACs that booted without being in the plan,
/// with what their discovery script reported, for `kiln adopt`.
async fn discovered_list(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Operator)?;
    let plan = active_plan(&app)?;
    let list = app.store.read(agents::discovered).map_err(internal)?;
    // A MAC adopted since (now in the plan) is no longer unknown.
    let machines = list
        .into_iter()
        .filter(|d| plan.machine_by_mac(&d.mac).is_none())
        .collect();
    Ok(Json(DiscoveredList {
        site: plan.plan.name.clone(),
        machines,
    })
    .into_response())
}

/// `{}` asks for a confirmation token; `{"confirm": "..."}` uses one.
#[derive(Deserialize, Default)]
struct Confirm {
    #[serde(default, deserialize_with = "present_string")]
    confirm: Option<String>,
}

/// A field that may be absent but, when present, must be a string (not null).
fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Seconds a confirmation token lives.
const CONFIRM_SECONDS: u64 = 60;

/// The two steps of a destructive action: the first call (body `{}` or
/// none) gets a confirmation token for `action` valid for 60 s; the second
/// call, with it, goes ahead (`Ok(None)`).
fn two_step(app: &App, action: &str, body: &[u8]) -> Result<Option<String>, ApiError> {
    let bad_body = || error(StatusCode::BAD_REQUEST, "the body must be {} or {\"confirm\": \"...\"}");
    let confirm = match body.is_empty() {
        true => Confirm::default(),
        false => match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => serde_json::from_value::<Confirm>(v).map_err(|_| bad_body())?,
            _ => return Err(bad_body()),
        },
    };
    let now = clock::now();
    let Some(given) = confirm.confirm else {
        let token = machines::mint_token();
        if let Ok(mut c) = app.confirmations.lock() {
            c.retain(|_, (_, expires)| *expires > now);
            c.insert(action.to_string(), (token.clone(), now + CONFIRM_SECONDS as i64));
        }
        return Ok(Some(token));
    };
    let valid = app
        .confirmations
        .lock()
        .ok()
        .and_then(|mut c| c.remove(action))
        .is_some_and(|(token, expires)| expires > now && constant_time_eq(token.as_bytes(), given.as_bytes()));
    if !valid {
        return Err(error(
            StatusCode::CONFLICT,
            "the confirmation token is wrong or expired; start again",
        ));
    }
    Ok(None)
}

const CONFIRM_NEXT: &str = "POST again with {\"confirm\": \"<token>\"} within 60 seconds";

/// Two steps: the first call returns a confirmation token valid for 60 s,
/// the second call, with it, reprovisions.
async fn reprovision(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let actor = operator(&app, &headers, Role::Operator)?;
    let plan = active_plan(&app)?;
    if plan.machine(&name).is_none() {
        return Err(error(StatusCode::NOT_FOUND, "no such machine in the plan"));
    }
    if let Some(token) = two_step(&app, &format!("reprovision {name}"), &body)? {
        let body = ReprovisionPending {
            machine: name,
            confirm: token,
            expires_in_seconds: CONFIRM_SECONDS,
            next: CONFIRM_NEXT.into(),
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let (digest, machine) = (plan.digest.clone(), name.clone());
    commit(&app, move |t, events| {
        machines::reprovision(t, &machine, &actor, &digest, events)
    })
    .await?;
    Ok(Json(ReprovisionDone {
        machine: name,
        state: MachineState::New,
    })
    .into_response())
}

/// The plans the executor keeps.
async fn plans_list(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    let active = app.current_plan().map(|p| p.digest.clone());
    let list = app
        .store
        .read(|c| history::list(c, active.as_deref()))
        .map_err(internal)?;
    Ok(Json(list).into_response())
}

fn plan_pending(action: String, token: String) -> Response {
    let body = PlanActionPending {
        action,
        confirm: token,
        expires_in_seconds: CONFIRM_SECONDS,
        next: CONFIRM_NEXT.into(),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Activates the kept plan `digest` as `how` (pinned), or pins it when it
/// is already in force; answers with both digests.
async fn switch_plan(app: &App, digest: String, actor: String, how: Activation) -> Answer {
    let _activating = app.activation.lock().await;
    let previous = app.current_plan().map(|p| p.digest.clone());
    if previous.as_deref() == Some(digest.as_str()) {
        let (d, prev) = (digest.clone(), previous.clone().unwrap_or_default());
        app.store
            .write(move |t| {
                history::set_pin(t, Some(&d))?;
                store::audit(
                    t,
                    &actor,
                    how.action(),
                    None,
                    json!({"previous": prev, "pinned": true}),
                    &d,
                )
            })
            .await
            .map_err(internal)?;
        log(&format!("{}: {digest} (already active)", how.action()));
    } else {
        let plan = app
            .store
            .read(|c| Ok(history::load(c, &digest)))
            .map_err(internal)?
            .map_err(|reason| {
                error(
                    StatusCode::CONFLICT,
                    format!("plan {digest} cannot be served: {reason}"),
                )
            })?;
        app.activate(Arc::new(plan), &actor, how).await.map_err(internal)?;
    }
    Ok(Json(PlanActionDone {
        active: digest,
        previous,
        pinned: true,
    })
    .into_response())
}

/// Pins a kept plan (activating it when another is in force): a new
/// `plan.json` then waits until it is unpinned. Two steps.
async fn plan_pin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let actor = operator(&app, &headers, Role::Admin)?;
    let kept = app.store.read(|c| history::contains(c, &digest)).map_err(internal)?;
    if !kept {
        return Err(error(
            StatusCode::NOT_FOUND,
            "no such plan in the history; see GET /v1/plans",
        ));
    }
    let action = format!("pin plan {digest}");
    if let Some(token) = two_step(&app, &action, &body)? {
        return Ok(plan_pending(action, token));
    }
    switch_plan(&app, digest, actor, Activation::Pin).await
}

/// Goes back to the plan activated before the one in force, and pins it.
/// Two steps.
async fn plan_rollback(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Answer {
    let actor = operator(&app, &headers, Role::Admin)?;
    let active = active_plan(&app)?.digest.clone();
    let previous = app
        .store
        .read(|c| history::previous(c, &active))
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::CONFLICT, "the history holds no plan before the active one"))?;
    // The confirmation is for this rollback only: if the plan in force
    // changes in between, it no longer matches.
    let action = format!("roll back from plan {active} to plan {previous}");
    if let Some(token) = two_step(&app, &action, &body)? {
        return Ok(plan_pending(action, token));
    }
    switch_plan(&app, previous, actor, Activation::Rollback).await
}

/// Unpins: the executor follows `plan.json` again from its next check.
async fn plan_unpin(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let actor = operator(&app, &headers, Role::Admin)?;
    let _activating = app.activation.lock().await;
    let active = app.current_plan().map(|p| p.digest.clone()).unwrap_or_default();
    let digest = active.clone();
    app.store
        .write(move |t| {
            history::set_pin(t, None)?;
            store::audit(t, &actor, "plan unpinned", None, json!({}), &digest)
        })
        .await
        .map_err(internal)?;
    log(&format!("plan unpinned: {active}; following plan.json again"));
    Ok(Json(PlanActionDone {
        active,
        previous: None,
        pinned: false,
    })
    .into_response())
}

/// A consistent copy of the state database, taken while serving.
async fn backup_download(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let actor = operator(&app, &headers, Role::Admin)?;
    let dir = app.opts.state_dir.clone();
    let bytes = tokio::task::spawn_blocking(move || backup::snapshot(&dir))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    audited_download(&app, actor, "backup", bytes, "application/vnd.sqlite3").await
}

/// Audits what an admin took (`action`, its size) and hands it over.
async fn audited_download(
    app: &App,
    actor: String,
    action: &'static str,
    bytes: Vec<u8>,
    content_type: &'static str,
) -> Answer {
    let (digest, size) = (app.current_digest(), bytes.len());
    app.store
        .write(move |t| store::audit(t, &actor, action, None, json!({"bytes": size}), &digest))
        .await
        .map_err(internal)?;
    Ok(plain(bytes, content_type))
}

/// The diagnostics bundle (`.tar.gz`), secrets and tokens redacted.
async fn diag_download(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let actor = operator(&app, &headers, Role::Admin)?;
    let readyz = readiness(&app, app.current_plan().as_deref());
    let metrics = metrics_text(&app);
    let bundle = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || diag::live_bundle(&app, readyz, metrics))
            .await
            .map_err(|e| internal(e.to_string()))?
            .map_err(internal)?
    };
    audited_download(&app, actor, "diagnostics bundle", bundle, "application/gzip").await
}

#[derive(Deserialize)]
struct AuditQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

async fn audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    let Ok(Query(q)) = query else {
        return Err(error(StatusCode::BAD_REQUEST, "`since` and `limit` must be integers"));
    };
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) || q.since.is_some_and(|s| s < 0) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "`since` must be at least 0 and `limit` between 1 and 10000",
        ));
    }
    let records = app
        .store
        .read(|c| store::audit_log(c, q.since.unwrap_or(0), None, limit))
        .map_err(internal)?;
    Ok(Json(json!({"records": records})).into_response())
}

async fn events(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    // Each stream holds a slot until its client goes away.
    let Ok(slot) = app.event_streams.clone().try_acquire_owned() else {
        let mut refused = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams are open (--max-event-streams); try again later",
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
        return Ok(refused);
    };
    // The stream ends at the first event after its operator's token stops
    // being valid (removed from the operators file).
    let (token, watcher) = (bearer(&headers).unwrap_or_default().to_string(), app.clone());
    let stream = tokio_stream::wrappers::BroadcastStream::new(app.store.events.subscribe())
        .filter_map(|e| e.ok())
        .take_while(move |_| watcher.operators().authenticate(&token).is_some())
        .map(move |e| {
            let _held = &slot;
            Ok::<_, Infallible>(
                Event::default()
                    .event(e["type"].as_str().unwrap_or("event"))
                    .data(e.to_string()),
            )
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

pub(crate) fn readiness(app: &App, plan: Option<&ActivePlan>) -> Value {
    let r = app.readiness.lock();
    let (activations, refusals, last, held_back) = r
        .map(|r| (r.activations, r.refusals, r.last_refusal.clone(), r.held_back.clone()))
        .unwrap_or_default();
    let pinned = app.store.read(history::pinned).ok().flatten();
    json!({
        "ready": plan.is_some(),
        "plan": plan.map(|p| json!({
            "site": p.plan.name,
            "digest": p.digest,
            "machines": p.plan.machines.len(),
            "pinned": pinned.as_deref() == Some(p.digest.as_str()),
        })),
        "heldBack": held_back,
        "activations": activations,
        "refusals": refusals,
        "lastRefusal": last.map(|(at, reason)| json!({"at": clock::rfc3339(at), "reason": reason})),
    })
}

async fn readyz_boot(State(app): State<Arc<App>>) -> Response {
    let ready = app.current_plan().is_some();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready}))).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let plan = app.current_plan();
    let body = readiness(&app, plan.as_deref());
    let code = if plan.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    operator(&app, &headers, Role::Viewer)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&app),
    )
        .into_response())
}

/// The Prometheus exposition of the executor's counters and gauges.
pub(crate) fn metrics_text(app: &App) -> String {
    let ready = readiness(app, app.current_plan().as_deref());
    let by_state = |sql: &str| -> Vec<(String, i64)> {
        let query = |c: &rusqlite::Connection| {
            c.prepare(sql)?
                .query_map([], |r| {
                    Ok((format!("{{state=\"{}\"}}", r.get::<_, String>(0)?), r.get(1)?))
                })?
                .collect()
        };
        app.store.read(query).unwrap_or_default()
    };
    let (activations, refusals) = (
        ready["activations"].as_u64().unwrap_or(0),
        ready["refusals"].as_u64().unwrap_or(0),
    );
    app.metrics.render(
        &[
            Counter(
                "kiln_plan_activations_total",
                "Plans verified and activated.",
                activations,
            ),
            Counter(
                "kiln_plan_refusals_total",
                "Plans refused because they did not verify.",
                refusals,
            ),
        ],
        &[
            Gauge(
                "kiln_plan_generation",
                "Plans activated since start (0: none yet).",
                vec![(String::new(), activations as i64)],
            ),
            Gauge(
                "kiln_machines",
                "Machines by state.",
                by_state("SELECT state, COUNT(*) FROM machines GROUP BY state ORDER BY state"),
            ),
            Gauge(
                "kiln_runs",
                "Runs by state.",
                by_state("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state"),
            ),
        ],
    )
}
