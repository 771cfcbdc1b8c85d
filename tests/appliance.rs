//! The executor as an appliance (issue 11), end to end against a running
//! `kiln serve`: real TLS with certificates made here (rcgen), operators
//! and roles, request limits, backups taken during a boot storm and
//! restored, corrupt and newer state refused, plan history with pin and
//! rollback, and diagnostics bundles that leak nothing. Operator calls go
//! over HTTPS verified against a site CA made here, boots over the plain
//! HTTP boot listener, as a site runs it.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const ADMIN: &str = "appliance-admin-token-0123456789abcdef";
const SECRET: &str = "planted-secret-value-7f3a9c";

fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A site CA and a server certificate for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn make_pki(name: &str, expired: bool) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} site CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{name} executor"));
    if expired {
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The tiny site with `extra` more machines (s0...), the admin token file,
/// a secret store and a site CA with the executor's certificate.
struct Site {
    repo: tempfile::TempDir,
    ca_pem: String,
}

impl Site {
    fn new(extra: usize) -> Site {
        let repo = tiny_site(b"kernel", b"initrd");
        let r = repo.path();
        if extra > 0 {
            let docs: Vec<String> = (0..extra)
                .map(|i| {
                    format!(
                        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {{name: s{i}}}\nspec:\n  blueprint: tiny\n  interfaces: [{{mac: \"52:54:00:01:00:{i:02x}\", network: net}}]\n"
                    )
                })
                .collect();
            write(r, "sites/t/machines/storm.yaml", &docs.join("---\n"));
            let run = kiln(r, &["render"]);
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        write(r, "admin-token", ADMIN);
        private(&r.join("admin-token"));
        write(r, "secrets/demo-password", &format!("{SECRET}\n"));
        private(&r.join("secrets/demo-password"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("secrets"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let pki = make_pki("lab", false);
        let site = Site {
            repo,
            ca_pem: pki.ca_pem.clone(),
        };
        site.tls(&pki);
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.repo.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }

    fn tls(&self, pki: &Pki) {
        write(self.repo.path(), "tls/ca.pem", &pki.ca_pem);
        write(self.repo.path(), "tls/cert.pem", &pki.cert_pem);
        write(self.repo.path(), "tls/key.pem", &pki.key_pem);
        private(&self.path("tls/key.pem"));
    }

    /// `kiln serve` as a site runs it: the operator API (and everything)
    /// over HTTPS on `--listen`, boots over plain HTTP on `--boot-listen`.
    fn serve(&self, extra: &[&str]) -> Exec {
        self.serve_at("state", extra)
    }

    fn serve_at(&self, state: &str, extra: &[&str]) -> Exec {
        let mut args = vec!["--boot-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let log = self.path("serve.log");
        let before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("listening on http://")
            .count();
        let server = self.start(state, &args, true);
        let boot = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| l.split("listening on ").nth(1))
            .filter(|u| u.starts_with("http://"))
            .nth(before)
            .expect("the boot listener")
            .trim()
            .to_string();
        Exec {
            api: server.url.clone(),
            url: boot,
            agent: https_agent(&self.ca_pem),
            server,
        }
    }

    /// Starts `kiln serve` on the site with `extra` flags (and its TLS
    /// files when `tls`); its first listener's URL is the server's.
    fn start(&self, state: &str, extra: &[&str], tls: bool) -> Server {
        let (state, admin, secrets) = (self.p(state), self.p("admin-token"), self.p("secrets"));
        let mut args = vec![
            "--operator-token-file",
            &admin,
            "--secrets",
            &secrets,
            "--poll-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        let (cert, key) = (self.p("tls/cert.pem"), self.p("tls/key.pem"));
        if tls {
            args.extend(["--tls-cert", cert.as_str(), "--tls-key", key.as_str()]);
        }
        let plan = self.p("out/t");
        let mut all = vec!["--plan", plan.as_str(), "--state", state.as_str()];
        all.extend(args);
        Server::start(&all, &self.path("serve.log"))
    }

    fn serve_tls(&self, extra: &[&str]) -> Server {
        self.start("state", extra, true)
    }
}

/// A running executor: the operator API over HTTPS (`api`, verified
/// against the site CA by `agent`), boots over HTTP (`url`).
struct Exec {
    server: Server,
    url: String,
    api: String,
    agent: ureq::Agent,
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An HTTPS client trusting only `ca_pem`.
fn https_agent(ca_pem: &str) -> ureq::Agent {
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca_pem.as_bytes())
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

fn https_get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("{url}: {e}"));
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
}

/// A streaming response's body as it comes, chunk by chunk; `None` once
/// it has ended.
fn read_stream(resp: ureq::http::Response<ureq::Body>) -> std::sync::mpsc::Receiver<Option<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = resp.into_body().into_reader();
        let mut buf = [0u8; 4096];
        loop {
            let chunk = match reader.read(&mut buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            };
            let end = chunk.is_none();
            if tx.send(chunk).is_err() || end {
                break;
            }
        }
    });
    rx
}

/// The token in a served boot script (from its install URL).
fn token_of(script: &str) -> String {
    let at = script.find("/install/").expect("an install URL in the script") + "/install/".len();
    script[at..].split('/').next().unwrap().to_string()
}

/// An operator's request, over HTTPS.
fn op(s: &Exec, method: &str, path: &str, token: &str, body: &str) -> Http {
    let url = format!("{}{path}", s.api);
    let auth = bearer(token);
    let response = match method {
        "GET" => s.agent.get(&url).header("Authorization", &auth).call(),
        "POST" => s
            .agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.as_bytes()),
        other => panic!("no {other} here"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    Http {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap(),
    }
}

fn report(url: &str, token: &str, snapshot: &str) -> Http {
    http(
        url,
        "POST",
        "/v1/agents/facts",
        &[("Authorization", &bearer(token)), ("Content-Type", "application/json")],
        format!("{{\"snapshot\": {snapshot}}}").as_bytes(),
    )
}

/// A machine's whole install: boot script, install file, report. Returns
/// the run (from the report's answer) and the report's status.
fn install(url: &str, mac: &str) -> (i64, u16) {
    let script = http(url, "GET", &format!("/boot/ipxe?mac={mac}"), &[], b"").text();
    let token = token_of(&script);
    assert_eq!(
        http(url, "GET", &format!("/install/{token}/install.sh"), &[], b"").status,
        200
    );
    let done = report(url, &token, r#"{"postinstall_done": true}"#);
    let run = if done.status == 200 {
        done.json()["run"].as_i64().unwrap()
    } else {
        -1
    };
    (run, done.status)
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn audit(s: &Exec) -> Vec<serde_json::Value> {
    op(s, "GET", "/v1/audit?limit=10000", ADMIN, "").json()["records"]
        .as_array()
        .unwrap()
        .clone()
}

/// A client command (`status`, `diag`) against `server`, trusting the CA
/// in `ca` (a file of the site) and holding the token in `token` (another).
fn kiln_client(site: &Site, command: &str, server: &str, ca: &str, token: &str, extra: &[&str]) -> Run {
    let (ca, token) = (site.p(ca), site.p(token));
    let mut args = vec![
        command,
        "--server",
        server,
        "--ca",
        &ca,
        "--operator-token-file",
        &token,
    ];
    args.extend_from_slice(extra);
    kiln_out(&args)
}

fn kiln_out(args: &[&str]) -> Run {
    kiln(Path::new("."), args)
}

/// Adds operator `name` with `role` to the operators file `ops`; their token.
fn add_operator(ops: &str, name: &str, role: &str) -> String {
    let run = kiln_out(&["serve", "add-operator", name, "--role", role, "--operators", ops]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.trim().to_string()
}

// ---------------------------------------------------------------- TLS

#[test]
fn the_executor_serves_https_that_clients_verify_against_the_site_ca() {
    let site = Site::new(0);
    let pki = make_pki("lab", false);
    site.tls(&pki);
    let s = site.serve_tls(&[]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let agent = https_agent(&pki.ca_pem);
    // Boot scripts name the executor by the scheme they were asked over.
    let (code, script) = https_get(&agent, &format!("{}/boot/ipxe?mac=52-54-00-00-00-01", s.url), None);
    assert_eq!(code, 200);
    assert!(script.contains("https://127.0.0.1:"), "{script}");
    // kiln status speaks HTTPS and verifies the certificate...
    let ok = kiln_client(&site, "status", &s.url, "tls/ca.pem", "admin-token", &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("m1") && ok.stdout.contains("plan "), "{}", ok.stdout);
    // ...and refuses one its CA did not sign.
    let other = make_pki("elsewhere", false);
    write(site.repo.path(), "other-ca.pem", &other.ca_pem);
    let refused = kiln_client(&site, "status", &s.url, "other-ca.pem", "admin-token", &[]);
    assert_eq!(refused.code, 4, "{}", refused.stdout);
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "{}",
        refused.stderr
    );
    // Plain HTTP to the TLS port is not served.
    let plain = std::net::TcpStream::connect(s.url.trim_start_matches("https://")).unwrap();
    let mut plain = plain;
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("\"ok\""));
}

#[test]
fn an_expired_certificate_is_refused_by_kiln_status() {
    let site = Site::new(0);
    let pki = make_pki("lab", true);
    site.tls(&pki);
    let s = site.serve_tls(&[]);
    let run = kiln_client(&site, "status", &s.url, "tls/ca.pem", "admin-token", &[]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.to_lowercase().contains("expired"), "{}", run.stderr);
}

#[test]
fn a_new_certificate_is_taken_on_sighup_while_open_streams_go_on() {
    let site = Site::new(0);
    let old = make_pki("old", false);
    site.tls(&old);
    let s = site.serve_tls(&[]);
    // An event stream opened under the old certificate.
    let agent = https_agent(&old.ca_pem);
    let resp = agent
        .get(&format!("{}/v1/events", s.url))
        .header("Authorization", &bearer(ADMIN))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rx = read_stream(resp);
    // The certificate is replaced and the executor told.
    let new = make_pki("new", false);
    site.tls(&new);
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the reload", Duration::from_secs(10), || {
        std::fs::read_to_string(&s.log)
            .unwrap()
            .contains("TLS certificate reloaded")
    });
    // New connections get the new certificate...
    let (code, _) = https_get(&https_agent(&new.ca_pem), &format!("{}/healthz", s.url), None);
    assert_eq!(code, 200);
    assert!(https_agent(&old.ca_pem)
        .get(&format!("{}/healthz", s.url))
        .call()
        .is_err());
    // ...and the stream opened before still delivers.
    let boot = format!("{}/boot/ipxe?mac=52-54-00-00-00-01", s.url);
    assert_eq!(https_get(&https_agent(&new.ca_pem), &boot, None).0, 200);
    let mut seen = String::new();
    let started = Instant::now();
    while !seen.contains("event: state") && started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(chunk)) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&chunk);
        }
    }
    assert!(seen.contains("event: state"), "the open stream went quiet: {seen}");
}

#[test]
fn the_operator_api_is_not_served_in_clear_beyond_loopback() {
    let site = Site::new(0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--plan", &site.p("out/t"), "--state", &site.p("state")])
        .args(["--operator-token-file", &site.p("admin-token"), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("refusing to serve the operator API on 0.0.0.0:0 over plain HTTP")
            && stderr.contains("--insecure-operator-api"),
        "{stderr}"
    );
    // An operators file that does not exist yet (filled in later, reread
    // while serving) counts as an operator API too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--plan", &site.p("out/t"), "--state", &site.p("state")])
        .args(["--operators", &site.p("later.yaml"), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_boot_listener_serves_boots_over_http_and_nothing_of_the_operator_api() {
    let site = Site::new(0);
    let pki = make_pki("lab", false);
    site.tls(&pki);
    let s = site.serve_tls(&["--boot-listen", "127.0.0.1:0"]);
    let log = std::fs::read_to_string(&s.log).unwrap();
    let boot_url = log
        .lines()
        .filter_map(|l| l.split("listening on ").nth(1))
        .find(|u| u.starts_with("http://"))
        .expect("the boot listener")
        .trim()
        .to_string();
    let script = http(&boot_url, "GET", "/boot/ipxe?mac=52-54-00-00-00-01", &[], b"").text();
    assert!(script.contains(&format!("{boot_url}/install/")), "{script}");
    for path in ["/v1/machines", "/v1/audit", "/v1/diag", "/metrics", "/v1/plans"] {
        let r = http(&boot_url, "GET", path, &[("Authorization", &bearer(ADMIN))], b"");
        assert_eq!(r.status, 404, "{path} on the boot listener");
    }
}

// ---------------------------------------------------------------- roles

#[test]
fn roles_limit_what_each_operator_may_do_and_the_audit_names_them() {
    let site = Site::new(0);
    let ops = site.p("operators.yaml");
    let add = |name: &str, role: &str| add_operator(&ops, name, role);
    let (vera, olga, ada) = (add("vera", "viewer"), add("olga", "operator"), add("ada", "admin"));
    assert_eq!(vera.len(), 64);
    let file = std::fs::read_to_string(&ops).unwrap();
    for token in [&vera, &olga, &ada] {
        assert!(
            !file.contains(token.as_str()),
            "the operators file holds a token in clear"
        );
    }
    let s = site.serve(&["--operators", &ops]);
    // A viewer reads, but a machine's facts are for operators.
    install(&s.url, "52-54-00-00-00-01");
    let seen = op(&s, "GET", "/v1/machines/m1", &vera, "").json();
    assert_eq!(seen["lastFacts"]["snapshot"], serde_json::json!({}), "{seen}");
    let full = op(&s, "GET", "/v1/machines/m1", &olga, "").json();
    assert_eq!(full["lastFacts"]["snapshot"]["postinstall_done"], true, "{full}");
    assert_eq!(op(&s, "GET", "/v1/machines", &vera, "").status, 200);
    assert_eq!(op(&s, "GET", "/metrics", &vera, "").status, 200);
    assert_eq!(op(&s, "GET", "/v1/plans", &vera, "").status, 200);
    // ...and changes nothing.
    let before = audit(&s).len();
    let state_before = op(&s, "GET", "/v1/machines/m1", ADMIN, "").json()["state"].clone();
    let denied = op(&s, "POST", "/v1/machines/m1/reprovision", &vera, "");
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert!(
        denied.text().contains("vera is a viewer; this needs the operator role"),
        "{}",
        denied.text()
    );
    assert_eq!(op(&s, "POST", "/v1/plans/rollback", &olga, "").status, 403);
    assert_eq!(op(&s, "GET", "/v1/diag", &olga, "").status, 403);
    assert_eq!(op(&s, "GET", "/v1/backup", &vera, "").status, 403);
    assert_eq!(audit(&s).len(), before, "a refused request is not an action");
    assert_eq!(
        op(&s, "GET", "/v1/machines/m1", ADMIN, "").json()["state"],
        state_before
    );
    // An operator reprovisions, in two steps, and the audit says who.
    let pending = op(&s, "POST", "/v1/machines/m1/reprovision", &olga, "{}");
    assert_eq!(pending.status, 202);
    let confirm = pending.json()["confirm"].as_str().unwrap().to_string();
    let done = op(
        &s,
        "POST",
        "/v1/machines/m1/reprovision",
        &olga,
        &format!("{{\"confirm\": \"{confirm}\"}}"),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    let records = audit(&s);
    assert!(
        records
            .iter()
            .any(|r| r["actor"] == "operator:olga" && r["action"] == "reprovision"),
        "{records:?}"
    );
    // An admin takes a backup; the single token file is an admin too.
    assert_eq!(op(&s, "GET", "/v1/backup", &ada, "").status, 200);
    assert_eq!(op(&s, "GET", "/v1/backup", ADMIN, "").status, 200);
    assert!(audit(&s)
        .iter()
        .any(|r| r["actor"] == "operator:ada" && r["action"] == "backup"));
    // A wrong token is 401, and no token is ever logged.
    assert_eq!(op(&s, "GET", "/v1/machines", "not-a-token-of-anyone", "").status, 401);
    let log = std::fs::read_to_string(&s.server.log).unwrap();
    for token in [&vera, &olga, &ada] {
        assert!(!log.contains(token.as_str()));
    }
    // An operator added while it runs is known without a restart.
    let late = add("lena", "viewer");
    wait_for("the operators file to be reloaded", Duration::from_secs(10), || {
        std::fs::read_to_string(&s.server.log)
            .unwrap()
            .contains("operators reloaded: 5 known")
    });
    assert_eq!(op(&s, "GET", "/v1/machines", &late, "").status, 200);
}

/// An event stream ends once its operator is removed from the operators
/// file: the next event is not delivered.
#[test]
fn an_event_stream_ends_when_its_operator_is_removed() {
    let site = Site::new(0);
    let ops = site.p("operators.yaml");
    let vic = add_operator(&ops, "vic", "viewer");
    let s = site.serve(&["--operators", &ops]);
    let resp = s
        .agent
        .get(&format!("{}/v1/events", s.api))
        .header("Authorization", &bearer(&vic))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rx = read_stream(resp);
    // vic is removed (the file rewritten without the line).
    let text = std::fs::read_to_string(&ops).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("name: vic"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&ops, kept).unwrap();
    wait_for("the operators file to be reloaded", Duration::from_secs(10), || {
        std::fs::read_to_string(&s.server.log)
            .unwrap()
            .contains("operators reloaded: 1 known")
    });
    assert_eq!(op(&s, "GET", "/v1/machines", &vic, "").status, 401);
    http(&s.url, "GET", "/boot/ipxe?mac=52-54-00-00-00-01", &[], b"");
    let mut seen = String::new();
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(chunk)) => seen.push_str(&chunk),
            Ok(None) => break,
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "the stream stayed open: {seen}"
            ),
        }
    }
    assert!(
        !seen.contains("event: state"),
        "an event reached a removed operator: {seen}"
    );
}

// ---------------------------------------------------------------- limits

#[test]
fn facts_reports_and_event_streams_are_bounded() {
    let site = Site::new(0);
    let s = site.serve(&["--max-event-streams", "2"]);
    let script = http(&s.url, "GET", "/boot/ipxe?mac=52-54-00-00-00-01", &[], b"").text();
    let token = token_of(&script);
    // Without a live token the body is never waited for.
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(
        b"POST /v1/agents/facts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 1000000\r\n\r\n{",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 32];
    let n = slow.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 401"));
    let big = format!("{{\"blob\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
    assert_eq!(report(&s.url, &token, &big).status, 413);
    assert_eq!(report(&s.url, &token, r#"{"postinstall_done": true}"#).status, 200);
    // Two streams open; the third is refused until one closes.
    // An open stream is a response whose body is still being read.
    let open = || {
        s.agent
            .get(&format!("{}/v1/events", s.api))
            .header("Authorization", &bearer(ADMIN))
            .call()
            .unwrap()
    };
    let first = open();
    let second = open();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open();
    assert_eq!(third.status().as_u16(), 503);
    assert!(third.headers().contains_key("retry-after"));
    drop(first);
    wait_for("a stream slot", Duration::from_secs(20), || {
        open().status().as_u16() == 200
    });
}

/// 500 clients each send a byte a second (a slowloris) while 60 machines
/// install at once: every install completes, and the slow clients are cut
/// at the header deadline.
#[test]
fn a_boot_storm_completes_under_a_slowloris() {
    let site = Site::new(60);
    // Attackers and machines all come from 127.0.0.1 here: the per-address
    // cap (tests/shedding.rs) is lifted so the storm is not refused by it.
    let s = site.serve(&["--header-timeout", "3", "--max-connections-per-address", "4096"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let (addr, stop, cut) = (addr.clone(), stop.clone(), cut.clone());
            std::thread::spawn(move || {
                let mut conns: Vec<std::net::TcpStream> = (0..100)
                    .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
                    .collect();
                let request = b"GET /boot/ipxe?mac=52-54-00-00-00-09 HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
                let mut at = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conns.retain_mut(|c| {
                        let alive = c.write_all(&[request[at % request.len()]]).is_ok();
                        if !alive {
                            cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        alive
                    });
                    at += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let storm: Vec<_> = (0..60)
        .map(|i| {
            let url = s.url.clone();
            std::thread::spawn(move || install(&url, &format!("52-54-00-01-00-{i:02x}")).1)
        })
        .collect();
    let codes: Vec<u16> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    // The server cuts them at the 3 s header deadline (a client learns it
    // at its next write or the one after).
    wait_for("the slow clients to be cut off", Duration::from_secs(30), || {
        cut.load(std::sync::atomic::Ordering::Relaxed) >= 450
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.into_iter().for_each(|t| t.join().unwrap());
    let installed = op(&s, "GET", "/v1/machines", ADMIN, "").json()["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "installed")
        .count();
    assert_eq!(installed, 60);
    eprintln!("60 installs under a 500-client slowloris took {took:?}");
}

// ---------------------------------------------------------------- backups

fn sqlite(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn write_key(site: &Site, name: &str, hex: &str) -> String {
    write(site.repo.path(), name, hex);
    private(&site.path(name));
    site.p(name)
}

/// A backup taken while 60 machines install holds every report
/// acknowledged before it began, restores to a database that passes
/// `PRAGMA integrity_check`, and an encrypted one needs its key.
#[test]
fn a_backup_taken_during_a_storm_restores_everything_acknowledged_before_it() {
    let site = Site::new(60);
    let s = site.serve(&[]);
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(Instant, i64)>::new()));
    let storm: Vec<_> = (0..60)
        .map(|i| {
            let (url, acked) = (s.url.clone(), acked.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(15 * i as u64));
                let (run, code) = install(&url, &format!("52-54-00-01-00-{i:02x}"));
                if code == 200 {
                    acked.lock().unwrap().push((Instant::now(), run));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let key = write_key(&site, "backup.key", &"5a".repeat(32));
    let began = Instant::now();
    let run = kiln_out(&[
        "serve",
        "backup",
        "--state",
        &site.p("state"),
        "--to",
        &site.p("backup.kbk"),
        "--key-file",
        &key,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    storm.into_iter().for_each(|t| t.join().unwrap());
    let before: Vec<i64> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, run)| *run)
        .collect();
    assert!(
        !before.is_empty(),
        "some reports were acknowledged before the backup began"
    );
    // The file is encrypted: no SQLite header, no schema. (A string as short
    // as a machine name, "s10", turns up in megabytes of ciphertext by
    // chance now and then.)
    let raw = std::fs::read(site.path("backup.kbk")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with(b"KILNBAK1") && !text.contains("SQLite format 3") && !text.contains("CREATE TABLE"));
    // The wrong key, or none, is refused before anything is touched.
    let wrong = write_key(&site, "wrong.key", &"a5".repeat(32));
    let restored_dir = site.p("restored");
    let from = raw_path(&site);
    for key_args in [vec!["--key-file", wrong.as_str()], vec![]] {
        let mut args = vec!["serve", "restore", "--from", &from, "--state", &restored_dir];
        args.extend(key_args);
        let refused = kiln_out(&args);
        assert_eq!(refused.code, 4, "{}", refused.stdout);
        assert!(!site.path("restored/kiln.db").exists());
    }
    let ok = kiln_out(&[
        "serve",
        "restore",
        "--from",
        &raw_path(&site),
        "--state",
        &restored_dir,
        "--key-file",
        &key,
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("schema version 3") && ok.stdout.contains("under plan "),
        "{}",
        ok.stdout
    );
    let db = sqlite(&site.path("restored/kiln.db"));
    let verdict: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(verdict, "ok");
    // Every acknowledged report is there: its facts, and its run ended.
    for run in &before {
        let (state, facts): (String, i64) = db
            .query_row(
                "SELECT state, (SELECT COUNT(*) FROM facts WHERE run_id = runs.id) FROM runs WHERE id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("run {run}, acknowledged before the backup, is missing from it: {e}"));
        assert_eq!((state.as_str(), facts), ("succeeded", 1), "run {run}");
    }
    drop(db);
    // The restored state serves: an executor started on it knows the
    // installed machines.
    drop(s);
    let again = site.serve_at("restored", &[]);
    let machines = op(&again, "GET", "/v1/machines", ADMIN, "").json();
    let installed = machines["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "installed")
        .count();
    assert!(
        installed >= before.len(),
        "{installed} installed, {} acknowledged before",
        before.len()
    );
}

fn raw_path(site: &Site) -> String {
    site.p("backup.kbk")
}

#[test]
fn a_restore_refuses_a_live_or_occupied_state_unless_forced() {
    let site = Site::new(0);
    let s = site.serve(&[]);
    install(&s.url, "52-54-00-00-00-01");
    let backup = site.p("plain.db");
    let run = kiln_out(&["serve", "backup", "--state", &site.p("state"), "--to", &backup]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::read(&backup).unwrap().starts_with(b"SQLite format 3\0"));
    // While the executor runs, its state is not replaced.
    let busy = kiln_out(&[
        "serve",
        "restore",
        "--from",
        &backup,
        "--state",
        &site.p("state"),
        "--force",
    ]);
    assert_eq!(busy.code, 4);
    assert!(busy.stderr.contains("another kiln serve"), "{}", busy.stderr);
    drop(s);
    let occupied = kiln_out(&["serve", "restore", "--from", &backup, "--state", &site.p("state")]);
    assert_eq!(occupied.code, 4);
    assert!(occupied.stderr.contains("--force"), "{}", occupied.stderr);
    let forced = kiln_out(&[
        "serve",
        "restore",
        "--from",
        &backup,
        "--state",
        &site.p("state"),
        "--force",
    ]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stdout.contains("kept as"), "{}", forced.stdout);
    let kept = std::fs::read_dir(site.path("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("kiln.db.replaced-"));
    assert!(kept, "the replaced state is kept beside");
    // A write-ahead log left without its database is not replayed onto
    // the restored one: it goes aside too.
    std::fs::create_dir_all(site.path("fresh2")).unwrap();
    std::fs::write(site.path("fresh2/kiln.db-wal"), b"stale frames").unwrap();
    let leftover = kiln_out(&["serve", "restore", "--from", &backup, "--state", &site.p("fresh2")]);
    assert_eq!(leftover.code, 0, "{}", leftover.stderr);
    assert!(!site.path("fresh2/kiln.db-wal").exists());
    // Not a backup at all.
    write(site.repo.path(), "junk.db", "hello");
    let junk = kiln_out(&[
        "serve",
        "restore",
        "--from",
        &site.p("junk.db"),
        "--state",
        &site.p("fresh"),
    ]);
    assert_eq!(junk.code, 4);
    assert!(junk.stderr.contains("not a kiln backup"), "{}", junk.stderr);
}

/// A truncated, damaged or newer state database is refused at start with
/// what to do; it is never replaced by an empty one.
#[test]
fn a_corrupt_or_newer_state_database_is_refused() {
    let site = Site::new(0);
    let s = site.serve(&[]);
    install(&s.url, "52-54-00-00-00-01");
    drop(s);
    let db = site.path("state/kiln.db");
    // Everything into the main file, so damage to it is damage to the state.
    sqlite(&db)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let good = std::fs::read(&db).unwrap();
    assert!(good.len() > 8 * 4096, "{} bytes", good.len());
    // Refused means it exits; one still running after 20 s took the file.
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", "--plan", &site.p("out/t"), "--state", &site.p("state")])
            .args(["--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("kiln serve started on a damaged state database");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };
    // Truncated.
    std::fs::write(&db, &good[..50]).unwrap();
    let out = start();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("too short") && stderr.contains("kiln serve restore"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap().len(),
        50,
        "the damaged file is left as it was"
    );
    // Pages overwritten.
    let mut damaged = good.clone();
    let page = 4096;
    for b in damaged[page..].iter_mut() {
        *b = 0xA5;
    }
    std::fs::write(&db, &damaged).unwrap();
    let out = start();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("state database"), "{stderr}");
    // From a newer kiln.
    std::fs::write(&db, &good).unwrap();
    sqlite(&db).pragma_update(None, "user_version", 99).unwrap();
    let out = start();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("schema version 99 was written by a newer kiln (this one knows up to 3)"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- plan history

fn plans(s: &Exec) -> serde_json::Value {
    op(s, "GET", "/v1/plans", ADMIN, "").json()
}

fn active(s: &Exec) -> String {
    plans(s)["active"].as_str().unwrap_or_default().to_string()
}

/// Re-renders the site under a running executor and waits for it to take
/// the new plan: the digests of the first plan and the second.
fn second_plan(site: &Site, s: &Exec) -> (String, String) {
    let a = active(s);
    rerender(site, "u.example.net");
    wait_for("plan B", Duration::from_secs(10), || active(s) != a);
    (a, active(s))
}

/// Changes the site (a new plan digest) and renders it.
fn rerender(site: &Site, domain: &str) {
    let path = site.path("sites/t/site.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed: Vec<String> = text
        .lines()
        .map(|l| match l.starts_with("  domain:") {
            true => format!("  domain: {domain}"),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(&path, changed.join("\n") + "\n").unwrap();
    let run = kiln(site.repo.path(), &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn confirm(s: &Exec, path: &str, token: &str) -> Http {
    let first = op(s, "POST", path, token, "");
    assert_eq!(first.status, 202, "{}", first.text());
    let code = first.json()["confirm"].as_str().unwrap().to_string();
    op(s, "POST", path, token, &format!("{{\"confirm\": \"{code}\"}}"))
}

#[test]
fn a_rollback_pins_the_plan_before_and_a_new_plan_json_waits() {
    let site = Site::new(0);
    let s = site.serve(&[]);
    let (a, b) = second_plan(&site, &s);
    let history = plans(&s);
    assert_eq!(history["plans"].as_array().unwrap().len(), 2, "{history}");
    // Rolled back: A serves again (its files, from the history), pinned.
    let done = confirm(&s, "/v1/plans/rollback", ADMIN);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["active"], a.as_str());
    assert_eq!(done.json()["previous"], b.as_str());
    assert_eq!(active(&s), a);
    assert_eq!(plans(&s)["pinned"], a.as_str());
    let menu = http(&s.url, "GET", "/boot/ipxe?mac=52-54-00-00-00-01", &[], b"");
    assert_eq!(menu.status, 200);
    // A new plan.json does not replace a pinned plan; it is held back, once.
    rerender(&site, "v.example.net");
    wait_for("the new plan to be held back", Duration::from_secs(10), || {
        audit(&s).iter().any(|r| r["action"] == "plan held back")
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(active(&s), a, "the pinned plan stays");
    let held: Vec<_> = audit(&s)
        .into_iter()
        .filter(|r| r["action"] == "plan held back")
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["detail"]["pinned"], a.as_str());
    // kiln status says so.
    let status = kiln_client(&site, "status", &s.api, "tls/ca.pem", "admin-token", &[]);
    assert!(
        status.stdout.contains(&format!("plan {a} (pinned")),
        "{}",
        status.stdout
    );
    // A restart keeps the pinned plan, whatever is on disk.
    drop(s);
    let s = site.serve(&[]);
    assert_eq!(active(&s), a);
    // Unpinned, the executor follows plan.json again.
    assert_eq!(op(&s, "POST", "/v1/plans/unpin", ADMIN, "").status, 200);
    wait_for("plan C", Duration::from_secs(10), || active(&s) != a);
    let c = active(&s);
    assert_ne!(c, b);
    // Every step is audited with both digests.
    let records = audit(&s);
    let rolled = records
        .iter()
        .find(|r| r["action"] == "plan rolled back")
        .expect("a rollback record");
    assert_eq!(rolled["planDigest"], a.as_str());
    assert_eq!(rolled["detail"]["previous"], b.as_str());
    assert_eq!(rolled["actor"], "operator:admin");
    assert!(records.iter().any(|r| r["action"] == "plan unpinned"));
}

/// Going back to a plan that names an older generation of an installed
/// machine does not install it again.
#[test]
fn a_rollback_never_reinstalls_a_machine() {
    let site = Site::new(0);
    let s = site.serve(&[]);
    assert_eq!(install(&s.url, "52-54-00-00-00-01").1, 200);
    let a = active(&s);
    edit(
        site.repo.path(),
        "sites/t/machines/m.yaml",
        "metadata: {name: m1}\nspec:\n",
        "metadata: {name: m1}\nspec:\n  generation: 2\n",
    );
    assert_eq!(kiln(site.repo.path(), &["render"]).code, 0);
    wait_for("plan B", Duration::from_secs(10), || active(&s) != a);
    assert_eq!(install(&s.url, "52-54-00-00-00-01").1, 200, "generation 2 installs");
    let done = confirm(&s, "/v1/plans/rollback", ADMIN);
    assert_eq!(done.status, 200, "{}", done.text());
    let m1 = op(&s, "GET", "/v1/machines/m1", ADMIN, "").json();
    assert_eq!(m1["state"], "installed", "{m1}");
    let script = http(&s.url, "GET", "/boot/ipxe?mac=52-54-00-00-00-01", &[], b"").text();
    assert!(script.contains("sanboot") && !script.contains("/install/"), "{script}");
}

#[test]
fn an_admin_pins_a_kept_plan_and_the_history_is_bounded() {
    let site = Site::new(0);
    let s = site.serve(&["--plan-history", "2"]);
    let a = active(&s);
    for domain in ["b.example.net", "c.example.net", "d.example.net"] {
        let before = active(&s);
        rerender(&site, domain);
        wait_for(domain, Duration::from_secs(10), || active(&s) != before);
    }
    let kept: Vec<String> = plans(&s)["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&a), "the oldest plan was forgotten");
    assert_eq!(op(&s, "POST", &format!("/v1/plans/{a}/pin"), ADMIN, "").status, 404);
    let older = kept[1].clone();
    let done = confirm(&s, &format!("/v1/plans/{older}/pin"), ADMIN);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(active(&s), older);
    // A confirmation is for one action only.
    let first = op(&s, "POST", "/v1/plans/rollback", ADMIN, "");
    let code = first.json()["confirm"].as_str().unwrap().to_string();
    let wrong = op(
        &s,
        "POST",
        &format!("/v1/plans/{}/pin", kept[0]),
        ADMIN,
        &format!("{{\"confirm\": \"{code}\"}}"),
    );
    assert_eq!(wrong.status, 409);
    assert_eq!(active(&s), older);
    // A rollback confirmed after the plan in force changed is refused.
    assert_eq!(op(&s, "POST", "/v1/plans/unpin", ADMIN, "").status, 200);
    let first = op(&s, "POST", "/v1/plans/rollback", ADMIN, "");
    let code = first.json()["confirm"].as_str().unwrap().to_string();
    wait_for("the newest plan again", Duration::from_secs(10), || {
        active(&s) == kept[0]
    });
    let stale = op(
        &s,
        "POST",
        "/v1/plans/rollback",
        ADMIN,
        &format!("{{\"confirm\": \"{code}\"}}"),
    );
    assert_eq!(stale.status, 409, "{}", stale.text());
}

// ---------------------------------------------------------------- diagnostics

/// Unpacks a `.tar.gz` with the system's tar; returns (name, content).
fn unpack(bundle: &Path, into: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(into).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("xzf")
        .arg(bundle)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(ok.success());
    walkdir::WalkDir::new(into)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let name = e.path().strip_prefix(into).unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Secrets and tokens planted everywhere they could leak (facts under
/// telling and innocent keys, the secret store, operator tokens, run
/// tokens) are in no file of the bundle, live or offline; the manifest
/// lists every file with its SHA-256 and counts the redactions.
#[test]
fn a_diagnostics_bundle_holds_what_support_needs_and_no_secret() {
    let site = Site::new(0);
    let ops = site.p("operators.yaml");
    let viewer = add_operator(&ops, "vic", "viewer");
    let pki = make_pki("lab", false);
    site.tls(&pki);
    let s = site.serve_tls(&["--operators", &ops]);
    let agent = https_agent(&pki.ca_pem);
    let post = |path: &str, token: &str, body: String| {
        let mut resp = agent
            .post(&format!("{}{path}", s.url))
            .header("Authorization", &bearer(token))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .unwrap();
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
    };
    let (_, script) = https_get(&agent, &format!("{}/boot/ipxe?mac=52-54-00-00-00-01", s.url), None);
    let run_token = token_of(&script);
    let (_, m2) = https_get(&agent, &format!("{}/boot/ipxe?mac=52-54-00-00-00-02", s.url), None);
    let live_token = token_of(&m2);
    let planted = format!(
        r#"{{"snapshot": {{"hardware_ok": true, "apiKey": "k-{SECRET}", "db_password": "pw-77", "note": "copied {SECRET} here", "comment": "token {live_token} and {viewer}", "admin": "{ADMIN}", "nested": {{"Secret_Value": "s-88"}}}}}}"#
    );
    let (code, answer) = post("/v1/agents/facts", &live_token, planted);
    assert_eq!(code, 200, "{answer}");
    let (code, _) = post(
        "/v1/agents/facts",
        &run_token,
        r#"{"snapshot": {"postinstall_done": true}}"#.into(),
    );
    assert_eq!(code, 200);
    // Fetched by kiln diag over HTTPS as an admin; a viewer may not.
    let bundle = site.p("diag.tar.gz");
    let run = kiln_client(&site, "diag", &s.url, "tls/ca.pem", "admin-token", &["--to", &bundle]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    write(site.repo.path(), "viewer-token", &viewer);
    let nope = site.p("nope.tar.gz");
    let denied = kiln_client(&site, "diag", &s.url, "tls/ca.pem", "viewer-token", &["--to", &nope]);
    assert_eq!(denied.code, 4);
    assert!(denied.stderr.contains("403"), "{}", denied.stderr);
    drop(s);
    let offline = site.p("offline.tar.gz");
    let run = kiln_out(&[
        "serve",
        "diag",
        "--state",
        &site.p("state"),
        "--secrets",
        &site.p("secrets"),
        "--operators",
        &ops,
        "--operator-token-file",
        &site.p("admin-token"),
        "--to",
        &offline,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let leaks = [SECRET, "pw-77", "s-88", &live_token, &run_token, &viewer, ADMIN];
    for (bundle, dir, expected) in [
        (
            bundle,
            "live",
            &[
                "version.json",
                "flags.json",
                "readyz.json",
                "metrics.txt",
                "plan.json",
                "plans.json",
                "machines.json",
                "audit.json",
                "executor.log",
            ][..],
        ),
        (
            offline,
            "offline",
            &[
                "version.json",
                "flags.json",
                "plan.json",
                "plans.json",
                "machines.json",
                "audit.json",
            ][..],
        ),
    ] {
        let files = unpack(Path::new(&bundle), &site.path(dir));
        let names: Vec<&str> = files.iter().map(|(n, _)| n.trim_start_matches("kiln-diag/")).collect();
        for name in expected.iter().chain(&["MANIFEST.json"]) {
            assert!(names.contains(name), "{dir}: {name} is missing from {names:?}");
        }
        for (name, content) in &files {
            let text = String::from_utf8_lossy(content);
            for leak in leaks {
                assert!(!text.contains(leak), "{dir}/{name} leaks {leak}");
            }
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&files.iter().find(|(n, _)| n.ends_with("MANIFEST.json")).unwrap().1).unwrap();
        assert!(manifest["redacted"].as_u64().unwrap() >= 6, "{manifest}");
        for entry in manifest["files"].as_array().unwrap() {
            let path = format!("kiln-diag/{}", entry["path"].as_str().unwrap());
            let content = &files.iter().find(|(n, _)| *n == path).unwrap().1;
            assert_eq!(entry["sha256"], kiln_plan::sha256_hex(content).as_str(), "{path}");
        }
        // What support needs is there: the machines and their states.
        let machines = &files.iter().find(|(n, _)| n.ends_with("machines.json")).unwrap().1;
        let machines: serde_json::Value = serde_json::from_slice(machines).unwrap();
        assert_eq!(machines[0]["name"], "m1");
        assert_eq!(machines[0]["state"], "installed");
    }
}

/// A pinned plan that cannot be served at start (its files damaged in the
/// history) is refused, and still holds back the plan on disk: nothing is
/// served until an admin unpins, and `/readyz` says why.
#[test]
fn a_pin_holds_even_when_the_pinned_plan_cannot_be_served() {
    let site = Site::new(0);
    let s = site.serve(&[]);
    let (a, b) = second_plan(&site, &s);
    assert_eq!(confirm(&s, "/v1/plans/rollback", ADMIN).status, 200);
    drop(s);
    let db = sqlite(&site.path("state/kiln.db"));
    let damaged = db
        .execute(
            "UPDATE plan_files SET content = x'00' WHERE hash IN (SELECT hash FROM plan_members WHERE digest = ?1)",
            [&a],
        )
        .unwrap();
    assert!(damaged > 0);
    drop(db);
    let s = site.serve(&[]);
    let ready = http(&s.url, "GET", "/readyz", &[], b"");
    assert_eq!(
        ready.status,
        503,
        "{}\n{}",
        ready.text(),
        std::fs::read_to_string(&s.server.log).unwrap()
    );
    let detail = op(&s, "GET", "/readyz", ADMIN, "").json();
    assert!(
        detail["lastRefusal"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("pinned plan {a}")),
        "{detail}"
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(active(&s), "", "plan B on disk is held back while A is pinned");
    assert_eq!(op(&s, "POST", "/v1/plans/unpin", ADMIN, "").status, 200);
    wait_for("plan B once unpinned", Duration::from_secs(10), || active(&s) == b);
}
