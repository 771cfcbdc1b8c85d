//! `kiln serve` against a rendered site: the boot flow, runs and tokens,
//! artifacts (Range, ETag, HEAD, no way out), plan activation and refusal,
//! durability across SIGKILL, secrets, the operator API and `kiln status`.

mod common;
use common::*;

use std::path::PathBuf;
use std::time::{Duration, Instant};

const OPERATOR: &str = "operator-token-for-tests-0123456789";
const SECRET: &str = "hunter2-very-secret-value";
const M1: &str = "52%3A54%3A00%3A00%3A00%3A01"; // as iPXE sends it
const M2: &str = "52-54-00-00-00-02";

/// A tiny site, its secrets, artifacts and a state directory.
struct Site {
    repo: tempfile::TempDir,
    kernel: Vec<u8>,
}

impl Site {
    fn new() -> Site {
        let kernel: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let initrd = b"tiny initrd".to_vec();
        let repo = tiny_site(&kernel, &initrd);
        let r = repo.path();
        executor_files(r, &kernel, &initrd, &format!("{SECRET}\n"), OPERATOR);
        Site { repo, kernel }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.repo.path().join(rel)
    }

    fn serve(&self, extra: &[&str]) -> Server {
        let (plan, state, art, secrets, op) = (
            self.path("out/t"),
            self.path("state"),
            self.path("art"),
            self.path("secrets"),
            self.path("operator-token"),
        );
        let mut args: Vec<&str> = vec![
            "--plan",
            plan.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--artifacts",
            art.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
            "--operator-token-file",
            op.to_str().unwrap(),
            "--poll-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        Server::start(&args, &self.path("serve.log"))
    }
}

fn get(s: &Server, path: &str) -> Http {
    http(&s.url, "GET", path, &[], b"")
}

fn op_get(s: &Server, path: &str) -> Http {
    http(
        &s.url,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {OPERATOR}"))],
        b"",
    )
}

fn report(s: &Server, token: &str, snapshot: &str) -> Http {
    let body = format!("{{\"snapshot\": {snapshot}}}");
    http(
        &s.url,
        "POST",
        "/v1/agents/facts",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// The token in a served boot script (from its install URL).
fn token_of(script: &str) -> String {
    let at = script.find("/install/").expect("an install URL in the script") + "/install/".len();
    script[at..].split('/').next().unwrap().to_string()
}

/// Boots a machine and returns the token of its run.
fn boot_token(s: &Server, mac: &str) -> String {
    token_of(&get(s, &format!("/boot/ipxe?mac={mac}")).text())
}

fn state(s: &Server, machine: &str) -> String {
    op_get(s, &format!("/v1/machines/{machine}")).json()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn audit_actions(s: &Server) -> Vec<String> {
    op_get(s, "/v1/audit").json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["detail"]
            )
        })
        .collect()
}

#[test]
fn a_machine_boots_installs_and_then_boots_its_disk() {
    let site = Site::new();
    let s = site.serve(&[]);
    let menu = get(&s, "/menu.ipxe");
    assert_eq!(menu.status, 200);
    assert!(
        menu.text()
            .contains(&format!("{}/boot/ipxe?mac=${{netX/mac:hexhyp}}", s.url)),
        "{}",
        menu.text()
    );

    let script = get(&s, &format!("/boot/ipxe?mac={M1}"));
    assert_eq!(script.status, 200);
    let text = script.text();
    assert!(
        text.starts_with("#!ipxe") && text.contains(&format!("{}/artifacts/tiny/vmlinuz", s.url)),
        "{text}"
    );
    let token = token_of(&text);
    assert!(token.len() >= 32, "at least 128 bits");
    assert_eq!(state(&s, "m1"), "booting");

    let install = get(&s, &format!("/install/{token}/install.sh"));
    assert_eq!(install.status, 200);
    assert!(install.text().contains(SECRET), "secrets are filled in install files");
    assert!(install.text().contains(&format!("Bearer {token}")));
    assert_eq!(state(&s, "m1"), "installing");
    assert_eq!(get(&s, &format!("/install/{token}/other.sh")).status, 404);

    let done = report(&s, &token, r#"{"postinstall_done": true, "hostname": "m1"}"#);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["state"], "installed");
    // The run is over: its token is dead, also for a replay.
    assert_eq!(report(&s, &token, r#"{"postinstall_done": true}"#).status, 401);
    assert_eq!(get(&s, &format!("/install/{token}/install.sh")).status, 401);
    // Booting again never reinstalls.
    let again = get(&s, &format!("/boot/ipxe?mac={M1}")).text();
    assert!(again.contains("sanboot") && !again.contains("/install/"), "{again}");
    assert_eq!(state(&s, "m1"), "installed");

    let detail = op_get(&s, "/v1/machines/m1").json();
    assert_eq!(detail["runs"][0]["state"], "succeeded");
    assert_eq!(detail["lastFacts"]["snapshot"]["hostname"], "m1");
    let timeline: Vec<String> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"]["to"].to_string())
        .collect();
    for expected in ["\"booting\"", "\"installing\"", "\"installed\""] {
        assert!(
            timeline.iter().any(|t| t == expected),
            "timeline lacks {expected}: {timeline:?}"
        );
    }
    assert!(audit_actions(&s).iter().any(|a| a.starts_with("machine:m1 run ended")));
}

#[test]
fn commissioning_comes_first_and_must_pass() {
    let site = Site::new();
    let s = site.serve(&[]);
    let script = get(&s, &format!("/boot/ipxe?mac={M2}")).text();
    assert!(script.contains("# commission of m2"), "{script}");
    assert_eq!(state(&s, "m2"), "commissioning");
    let token = token_of(&script);
    assert_eq!(get(&s, &format!("/install/{token}/check.sh")).status, 200);
    assert_eq!(
        report(&s, &token, r#"{"hardware_ok": true, "cpus": 2}"#).json()["state"],
        "commissioned"
    );
    let script = get(&s, &format!("/boot/ipxe?mac={M2}")).text();
    assert!(
        script.contains("# tiny of m2"),
        "install follows a passed commissioning: {script}"
    );
    assert_eq!(state(&s, "m2"), "booting");
}

#[test]
fn a_failed_hardware_check_fails_the_machine_and_status_says_so() {
    let site = Site::new();
    let s = site.serve(&[]);
    let token = boot_token(&s, M2);
    assert_eq!(
        report(&s, &token, r#"{"hardware_ok": false, "memory_mib": 12}"#).json()["state"],
        "failed"
    );
    let op = site.path("operator-token");
    let run = kiln(
        site.repo.path(),
        &[
            "status",
            "--server",
            &s.url,
            "--operator-token-file",
            op.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("m2") && run.stdout.contains("failed"),
        "{}",
        run.stdout
    );
    let json = kiln(
        site.repo.path(),
        &[
            "status",
            "--server",
            &s.url,
            "--operator-token-file",
            op.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(json.code, 3);
    let body: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(body["machines"].as_array().unwrap().len(), 2);
}

#[test]
fn an_unknown_mac_is_discovered_and_boots_its_disk() {
    let site = Site::new();
    let s = site.serve(&[]);
    let script = get(&s, "/boot/ipxe?mac=5254.00AB.CDEF").text();
    assert!(script.contains("sanboot"), "{script}");
    assert!(audit_actions(&s)
        .iter()
        .any(|a| a.contains("discovered") && a.contains("52:54:00:ab:cd:ef")));
    assert_eq!(get(&s, "/boot/ipxe?mac=nonsense").status, 400);
    assert_eq!(get(&s, "/boot/ipxe").status, 400);
}

#[test]
fn artifacts_range_etag_head_and_no_way_out() {
    let site = Site::new();
    let s = site.serve(&[]);
    let full = get(&s, "/artifacts/tiny/vmlinuz");
    assert_eq!(full.status, 200);
    assert_eq!(full.body, site.kernel);
    let etag = full.headers["etag"].clone();
    assert_eq!(etag, format!("\"{}\"", kiln_plan::sha256_hex(&site.kernel)));
    assert_eq!(full.headers["accept-ranges"], "bytes");

    let part = http(
        &s.url,
        "GET",
        "/artifacts/tiny/vmlinuz",
        &[("Range", "bytes=32768-34815")],
        b"",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, site.kernel[32768..=34815]);
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 32768-34815/{}", site.kernel.len())
    );
    let tail = http(
        &s.url,
        "GET",
        "/artifacts/tiny/vmlinuz",
        &[("Range", "bytes=-512")],
        b"",
    );
    assert_eq!((tail.status, tail.body.len()), (206, 512));
    let beyond = http(
        &s.url,
        "GET",
        "/artifacts/tiny/vmlinuz",
        &[("Range", "bytes=999999-")],
        b"",
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.headers["content-range"],
        format!("bytes */{}", site.kernel.len())
    );
    let cached = http(
        &s.url,
        "GET",
        "/artifacts/tiny/vmlinuz",
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let stale_range = http(
        &s.url,
        "GET",
        "/artifacts/tiny/vmlinuz",
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
        b"",
    );
    assert_eq!(
        (stale_range.status, stale_range.body.len()),
        (200, site.kernel.len()),
        "If-Range that does not match gets the whole file"
    );
    let head = http(&s.url, "HEAD", "/artifacts/tiny/vmlinuz", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], site.kernel.len().to_string());
    assert!(head.body.is_empty());

    for path in [
        "/artifacts/../plan.json",
        "/artifacts/%2e%2e/plan.json",
        "/artifacts/tiny%2Fvmlinuz",
        "/artifacts/..%2Fplan.json",
        "/artifacts/tiny%5cvmlinuz",
        "/artifacts/tiny/../tiny/vmlinuz",
        "/artifacts//etc/passwd",
        "/artifacts/tiny/nope",
    ] {
        let r = get(&s, path);
        assert!(r.status == 404 || r.status == 400, "{path} answered {}", r.status);
        assert_ne!(r.body, site.kernel);
    }
    // A planned artifact that is a symlink out of the artifacts directory
    // is not served, even with the right content.
    let outside = site.path("outside-initrd");
    std::fs::write(&outside, b"tiny initrd").unwrap();
    std::fs::remove_file(site.path("art/tiny/initrd.img")).unwrap();
    std::os::unix::fs::symlink(&outside, site.path("art/tiny/initrd.img")).unwrap();
    assert_eq!(get(&s, "/artifacts/tiny/initrd.img").status, 404);
    // An artifact that no longer matches its SHA-256 is not served.
    let mut changed = site.kernel.clone();
    changed[0] ^= 1;
    std::fs::write(site.path("art/tiny/vmlinuz"), &changed).unwrap();
    assert_eq!(get(&s, "/artifacts/tiny/vmlinuz").status, 503);
}

#[test]
fn tokens_die_with_their_ttl_and_runs_time_out() {
    let site = Site::new();
    let s = site.serve(&["--token-ttl", "1", "--run-timeout", "3"]);
    let token = boot_token(&s, M1);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        get(&s, &format!("/install/{token}/install.sh")).status,
        401,
        "a token past its TTL"
    );
    wait_for("the run to time out", Duration::from_secs(15), || {
        state(&s, "m1") == "failed"
    });
    let detail = op_get(&s, "/v1/machines/m1").json();
    assert!(detail["runs"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("no report within the run timeout"));
    assert!(audit_actions(&s)
        .iter()
        .any(|a| a.starts_with("executor state") && a.contains("failed")));
}

#[test]
fn a_tampered_plan_is_refused_and_the_old_one_keeps_serving() {
    let site = Site::new();
    let s = site.serve(&[]);
    let token = boot_token(&s, M1);
    let file = site.path("out/t/install/m1/install.sh");
    let mut tampered = std::fs::read(&file).unwrap();
    let at = tampered.iter().position(|b| *b == b'#').unwrap();
    tampered[at] = b'X';
    std::fs::write(&file, &tampered).unwrap();
    // plan.json itself must change for the executor to look again.
    let plan = site.path("out/t/plan.json");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push('\n');
    std::fs::write(&plan, text).unwrap();
    wait_for("the refusal", Duration::from_secs(10), || {
        get(&s, "/readyz").json()["refusals"] == 1
    });
    let ready = get(&s, "/readyz");
    assert_eq!(ready.status, 200, "the previous plan is still in force");
    assert!(
        ready.json()["lastRefusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("install/m1/install.sh"),
        "{}",
        ready.text()
    );
    assert!(op_get(&s, "/metrics").text().contains("kiln_plan_refusals_total 1"));
    assert_eq!(get(&s, "/metrics").status, 401, "metrics need a viewer");
    assert!(audit_actions(&s).iter().any(|a| a.contains("plan refused")));
    let served = get(&s, &format!("/install/{token}/install.sh")).text();
    assert!(
        !served.contains("Xinstall") && served.contains("#!/bin/sh"),
        "the old, verified file is served"
    );
}

#[test]
fn a_new_generation_starts_a_new_run() {
    let site = Site::new();
    let s = site.serve(&[]);
    let token = boot_token(&s, M1);
    assert_eq!(report(&s, &token, r#"{"postinstall_done": true}"#).status, 200);
    edit(
        site.repo.path(),
        "sites/t/machines/m.yaml",
        "  blueprint: tiny\n  interfaces: [{mac: \"52:54:00:00:00:01\"",
        "  blueprint: tiny\n  generation: 2\n  interfaces: [{mac: \"52:54:00:00:00:01\"",
    );
    assert_eq!(kiln(site.repo.path(), &["render"]).code, 0);
    wait_for("the new plan", Duration::from_secs(10), || {
        get(&s, "/readyz").json()["activations"] == 2
    });
    assert_eq!(state(&s, "m1"), "new");
    let script = get(&s, &format!("/boot/ipxe?mac={M1}")).text();
    assert!(script.contains("/install/"), "generation 2 installs again: {script}");
}

#[test]
fn reprovisioning_takes_two_steps() {
    let site = Site::new();
    let s = site.serve(&[]);
    let token = boot_token(&s, M1);
    report(&s, &token, r#"{"postinstall_done": true}"#);
    let auth = format!("Bearer {OPERATOR}");
    let first = http(
        &s.url,
        "POST",
        "/v1/machines/m1/reprovision",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(first.status, 202);
    assert_eq!(state(&s, "m1"), "installed", "nothing happens before confirmation");
    let wrong = http(
        &s.url,
        "POST",
        "/v1/machines/m1/reprovision",
        &[("Authorization", &auth)],
        br#"{"confirm": "nope"}"#,
    );
    assert_eq!(wrong.status, 409);
    let first = http(
        &s.url,
        "POST",
        "/v1/machines/m1/reprovision",
        &[("Authorization", &auth)],
        b"",
    );
    let confirm = first.json()["confirm"].as_str().unwrap().to_string();
    let body = format!("{{\"confirm\": \"{confirm}\"}}");
    let done = http(
        &s.url,
        "POST",
        "/v1/machines/m1/reprovision",
        &[("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(state(&s, "m1"), "new");
    assert!(get(&s, &format!("/boot/ipxe?mac={M1}")).text().contains("/install/"));
    assert!(
        audit_actions(&s)
            .iter()
            .any(|a| a.starts_with("operator:admin reprovision")),
        "the audit names the operator"
    );
    assert_eq!(
        http(&s.url, "GET", "/v1/machines", &[("Authorization", "Bearer wrong")], b"").status,
        401
    );
    assert_eq!(get(&s, "/v1/audit").status, 401);
}

#[test]
fn an_acknowledged_report_survives_sigkill() {
    let site = Site::new();
    let mut s = site.serve(&[]);
    let token = boot_token(&s, M1);
    assert_eq!(report(&s, &token, r#"{"postinstall_done": true}"#).status, 200);
    s.kill(); // SIGKILL right after the acknowledgement
    let s = site.serve(&[]);
    assert_eq!(state(&s, "m1"), "installed");
    assert!(get(&s, &format!("/boot/ipxe?mac={M1}")).text().contains("sanboot"));
    assert!(audit_actions(&s)
        .iter()
        .any(|a| a.starts_with("machine:m1 run ended") && a.contains("succeeded")));
}

#[test]
fn secrets_stay_secret_and_must_be_private() {
    let site = Site::new();
    let s = site.serve(&[]);
    let token = boot_token(&s, M1);
    assert!(get(&s, &format!("/install/{token}/install.sh")).text().contains(SECRET));
    report(&s, &token, r#"{"postinstall_done": true}"#);
    for path in ["/v1/machines", "/v1/machines/m1", "/v1/audit", "/metrics", "/readyz"] {
        let body = op_get(&s, path).text();
        assert!(
            !body.contains(SECRET) && !body.contains(&token),
            "{path} leaks a secret or token"
        );
    }
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!log.contains(SECRET) && !log.contains(&token), "the log leaks:\n{log}");
    let db = std::fs::read(site.path("state/kiln.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token),
        "tokens are stored as hashes only"
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.path("secrets/demo-password"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--plan"])
        .arg(site.path("out/t"))
        .arg("--secrets")
        .arg(site.path("secrets"))
        .arg("--state")
        .arg(site.path("state2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accessible by group or others"));
}

#[test]
fn events_stream_state_changes() {
    use std::io::{BufRead, BufReader, Write};
    let site = Site::new();
    let s = site.serve(&[]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OPERATOR}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    std::thread::sleep(Duration::from_millis(200));
    get(&s, &format!("/boot/ipxe?mac={M1}"));
    let started = Instant::now();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("data:") && line.contains("\"booting\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no state event");
    }
}

#[test]
fn the_openapi_document_is_served() {
    let site = Site::new();
    let s = site.serve(&[]);
    let doc = get(&s, "/openapi.yaml");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body, std::fs::read(repo_root().join("docs/openapi.yaml")).unwrap());
    assert_eq!(get(&s, "/healthz").json()["status"], "ok");
}

/// The executor may use the plan crate and nothing of the compiler: Cargo
/// enforces it (the executor's manifest does not name the compiler), and this
/// test keeps the manifest honest (docs/ARCHITECTURE.md).
#[test]
fn the_executor_depends_on_the_plan_crate_only() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "kiln-executor",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let kiln: Vec<&str> = tree.lines().filter(|l| l.starts_with("kiln")).collect();
    assert!(kiln.iter().any(|l| l.starts_with("kiln-plan ")), "{tree}");
    assert!(
        kiln.iter()
            .all(|l| l.starts_with("kiln-executor ") || l.starts_with("kiln-plan ")),
        "the executor depends on {kiln:?}"
    );
}

/// The shipped systemd unit is one systemd accepts.
#[test]
fn the_systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo_root().join("deploy/kiln-serve.service")).unwrap();
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "User=kiln",
        "ReadWritePaths=/var/lib/kiln",
        "StateDirectory=kiln",
        "LoadCredential=tls-key:",
        "LoadCredential=admin-token:",
        "--tls-key ${CREDENTIALS_DIRECTORY}/tls-key.pem",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }
    let unit = unit.replace("/usr/local/bin/kiln", env!("CARGO_BIN_EXE_kiln"));
    let path = dir.path().join("kiln-serve.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (systemd) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains("kiln-serve.service")).collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // Its exposure, as systemd scores it: docs/executor.md states it.
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Overall exposure level for kiln-serve.service: 1.6"),
        "systemd-analyze security: {stdout}"
    );
}

/// A machine of the plan whose state row has gone (a hand-edited or
/// restored database) neither crashes the executor's writer nor stops later
/// state changes: the row is made again and the machine boots.
#[test]
fn a_missing_machine_row_does_not_stop_the_state_store() {
    let site = Site::new();
    let s = site.serve(&[]);
    assert_eq!(state(&s, "m1"), "new");
    let db = rusqlite::Connection::open(site.path("state/kiln.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(db.execute("DELETE FROM machines WHERE name = 'm1'", []).unwrap(), 1);
    drop(db);
    let boot = get(&s, &format!("/boot/ipxe?mac={M1}"));
    assert_eq!(boot.status, 200, "{}", boot.text());
    assert_eq!(state(&s, "m1"), "booting");
    // The store still takes changes: another machine boots and reports.
    let token = boot_token(&s, M2);
    assert_eq!(report(&s, &token, r#"{"hardware_ok": true}"#).status, 200);
    assert_eq!(state(&s, "m2"), "commissioned");
}

/// A machine that fetched its install file and PXE-boots again before it
/// reports (a Talos node without a report pod, Windows rebooting into its
/// second setup phase) boots its disk: it is not installed over again,
/// even once its run has timed out, until an operator asks for it.
#[test]
fn a_machine_that_fetched_its_install_file_is_not_reinstalled() {
    let site = Site::new();
    let s = site.serve(&["--run-timeout", "2"]);
    let token = boot_token(&s, M1);
    assert_eq!(get(&s, &format!("/install/{token}/install.sh")).status, 200);
    assert_eq!(state(&s, "m1"), "installing");
    let again = get(&s, &format!("/boot/ipxe?mac={M1}")).text();
    assert!(again.contains("sanboot") && !again.contains("/install/"), "{again}");
    assert_eq!(state(&s, "m1"), "installing");
    // The run times out for want of a report: still no reinstall.
    wait_for("the run to time out", Duration::from_secs(15), || {
        state(&s, "m1") == "failed"
    });
    let after = get(&s, &format!("/boot/ipxe?mac={M1}")).text();
    assert!(after.contains("sanboot") && !after.contains("/install/"), "{after}");
    // Before the install file is fetched, a repeated boot resumes the run.
    let t2 = boot_token(&s, M2);
    assert!(!t2.is_empty());
    assert!(get(&s, &format!("/boot/ipxe?mac={M2}")).text().contains("/install/"));
}
