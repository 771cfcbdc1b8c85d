//! The fleet page (`/ui`) in a real browser: Debian's headless Chromium
//! driven over the W3C WebDriver protocol (`chromedriver`, a small client
//! here over ureq) against a running `kiln serve`. The page must show the
//! machines with a viewer's token, follow a boot without a reload, render
//! 10,000 machines within a second, and pass axe-core (npm) with no serious
//! or critical violation. `.ci/deps` installs chromium, chromium-driver and
//! axe-core. Screenshots go to `target/ui-screenshots/` (and, with
//! `KILN_UPDATE_DOCS_IMAGES=1`, to `docs/images/`).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One browser at a time: the machine has two cores, and the 10,000
/// machine test measures time.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---------------------------------------------------------------- WebDriver

/// A headless Chromium session, ended (and its driver killed) when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is needed (Debian chromium and chromium-driver); .ci/deps installs them"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            agent,
            _profile: profile,
        };
        let started = Instant::now();
        while browser.agent.get(format!("{}/status", browser.base)).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--window-size=1280,860",
            "--force-device-scale-factor=1",
            format!("--user-data-dir={}", browser._profile.path().display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer = browser.raw("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser.command("POST", "/timeouts", Some(json!({"script": 60000})));
        browser
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(&body.unwrap_or(json!({}))).unwrap()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("WebDriver answered {text}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {value}");
        value["value"].clone()
    }

    /// A command of this session; its `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap().to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.command("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.command("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Runs `script` (a function body) in the page; what it returns.
    fn js(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    fn js_async(&self, script: &str) -> Value {
        self.command("POST", "/execute/async", Some(json!({"script": script, "args": []})))
    }

    /// Polls `expression` in the page until it is truthy; its value.
    fn wait(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        let script = format!("try {{ return ({expression}); }} catch (e) {{ return null; }}");
        loop {
            let value = self.js(&script);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what} ({expression});\npage text:\n{}",
                self.js("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn text(&self, css: &str) -> String {
        let script = format!("const e = document.querySelector({css:?}); return e ? e.textContent : null;");
        self.js(&script).as_str().unwrap_or_default().to_string()
    }

    fn resize(&self, width: u32, height: u32) {
        self.command("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Saves a PNG of the window.
    fn screenshot(&self, to: &Path) {
        let png = base64(self.command("GET", "/screenshot", None).as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }

    /// Opens the page and gives it `token`.
    fn sign_in(&self, url: &str, token: &str) {
        self.goto(&format!("{url}/ui"));
        self.wait("the token form", "!document.getElementById('login').hidden", secs(10));
        self.type_into("#token", token);
        self.click("#token-form button[type=submit]");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Standard base64, as WebDriver sends screenshots.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

// ---------------------------------------------------------------- executor

/// Adds operator `name` with `role` to the operators file `ops`; their token.
fn add_operator(ops: &Path, name: &str, role: &str) -> String {
    let run = kiln(
        Path::new("."),
        &[
            "serve",
            "add-operator",
            name,
            "--role",
            role,
            "--operators",
            ops.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.trim().to_string()
}

/// The token and file name of the install URL in a served boot script.
fn install_path(script: &str) -> String {
    let at = script
        .find("/install/")
        .unwrap_or_else(|| panic!("no install URL in {script}"));
    let rest = &script[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

fn token_of(install_path: &str) -> &str {
    install_path.trim_start_matches("/install/").split('/').next().unwrap()
}

/// What a machine does as it boots, up to `until`: its boot script, then
/// its install file (`installing`), then its report (`installed`, or
/// `failed` with a reason).
fn boot(url: &str, mac: &str, until: &str) {
    let script = http(url, "GET", &format!("/boot/ipxe?mac={mac}"), &[], b"");
    assert_eq!(script.status, 200, "{}", script.text());
    if until == "booting" {
        return;
    }
    let path = install_path(&script.text());
    let fetched = http(url, "GET", &path, &[], b"");
    assert_eq!(fetched.status, 200, "{path}: {}", fetched.text());
    if until == "installing" {
        return;
    }
    let snapshot = match until {
        "failed" => r#"{"failed": "no disk of 100 GiB or more", "disks": [{"name": "sda", "gib": 64}]}"#,
        _ => r#"{"postinstall_done": true, "hostname": "installed", "cpus": 8, "memory_gib": 32}"#,
    };
    let auth = format!("Bearer {}", token_of(&path));
    let report = http(
        url,
        "POST",
        "/v1/agents/facts",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        format!("{{\"snapshot\": {snapshot}}}").as_bytes(),
    );
    assert_eq!(report.status, 200, "{}", report.text());
}

/// The tiny site served over plain HTTP on loopback (the operator API is
/// allowed there without TLS), with an operators file holding `vera`, a
/// viewer; the server and her token.
fn tiny_fleet(repo: &Path) -> (Server, String) {
    executor_files(repo, b"kernel", b"initrd", "secret", "unused-operator-token-0123456789");
    let ops = repo.join("operators.yaml");
    let vera = add_operator(&ops, "vera", "viewer");
    let secrets = repo.join("secrets");
    let server = serve_tiny(
        repo,
        &[
            "--operators",
            ops.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
        ],
    );
    (server, vera)
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from);
    dir.join("ui-screenshots")
}

/// `axe.min.js` as `.ci/deps` installs it.
fn axe_source() -> String {
    let path = repo_root().join("target/ui-deps/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; .ci/deps installs axe-core from npm", path.display()))
}

/// Runs axe-core on the page as it is; the serious and critical violations.
fn axe(browser: &Browser) -> Vec<String> {
    browser.js(&format!("{}\n;return true;", axe_source()));
    let answer = browser.js_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, {resultTypes: ['violations']})
           .then(r => done(JSON.stringify(r.violations)))
           .catch(e => done(JSON.stringify({error: String(e)})));",
    );
    let violations: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
    assert!(violations.get("error").is_none(), "axe failed: {violations}");
    violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .take(5)
                .map(|n| format!("    {} — {}", n["target"], n["failureSummary"]))
                .collect();
            format!("{} ({}): {}\n{}", v["id"], v["impact"], v["help"], nodes.join("\n"))
        })
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn the_page_is_served_with_its_policy_on_the_operator_listener_only() {
    let repo = tiny_site(b"kernel", b"initrd");
    let r = repo.path();
    let log = r.join("serve.log");
    let (plan, state) = (r.join("out/t"), r.join("state"));
    let server = Server::start(
        &[
            "--plan",
            plan.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--boot-listen",
            "127.0.0.1:0",
        ],
        &log,
    );
    let mut boot_url = String::new();
    let started = Instant::now();
    while boot_url.is_empty() {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(u) = text.lines().filter_map(|l| l.split("listening on ").nth(1)).nth(1) {
            boot_url = u.trim().to_string();
        }
        assert!(started.elapsed() < secs(10), "no boot listener:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(boot_url, server.url);
    for path in ["/ui", "/ui/", "/ui/app.js", "/ui/app.css"] {
        assert_eq!(
            http(&boot_url, "GET", path, &[], b"").status,
            404,
            "{path} on the boot listener"
        );
    }
    let page = http(&server.url, "GET", "/ui", &[], b"");
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = &page.headers["content-security-policy"];
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    // The page holds no data: no machine, no plan digest.
    let text = page.text();
    assert!(text.contains("<html lang=\"en\">") && !text.contains("m1") && !text.contains("52:54:00"));
    let etag = page.headers["etag"].clone();
    let again = http(&server.url, "GET", "/ui", &[("If-None-Match", &etag)], b"");
    assert_eq!((again.status, again.body.len()), (304, 0));
    let script = http(&server.url, "GET", "/ui/app.js", &[], b"");
    assert_eq!(script.headers["content-type"], "text/javascript; charset=utf-8");
    assert!(script.headers.contains_key("content-security-policy"));
    assert_ne!(script.headers["etag"], etag);
}

#[test]
fn the_fleet_page_follows_boots_without_a_reload() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let repo = tiny_site(b"kernel", b"initrd");
    let (server, vera) = tiny_fleet(repo.path());
    let browser = Browser::start();

    // A wrong token: a clear refusal, and the form again.
    browser.sign_in(&server.url, "not-a-token-of-anyone-0123456789");
    let refusal = browser.wait(
        "the refusal",
        "!document.getElementById('login').hidden && document.getElementById('error').textContent",
        secs(10),
    );
    assert!(refusal.as_str().unwrap().contains("refused"), "{refusal}");

    browser.type_into("#token", &vera);
    browser.click("#token-form button[type=submit]");
    browser.wait(
        "two machines, both new",
        "document.getElementById('count-total').textContent === '2' && document.querySelector('[data-count=new] .n').textContent === '2'",
        secs(10),
    );
    assert_eq!(browser.text("#site"), "t");
    assert_eq!(
        browser.js("return [...document.querySelectorAll('#rows tr[data-machine]')].map(r => r.dataset.machine)"),
        json!(["m1", "m2"])
    );
    // The token is in the tab's session storage, never in the URL.
    assert_eq!(
        browser.js("return sessionStorage.getItem('kiln.operatorToken')"),
        json!(vera)
    );
    assert!(!browser.js("return location.href").as_str().unwrap().contains(&vera));
    browser.wait(
        "the event stream",
        "document.getElementById('live').textContent === 'Live'",
        secs(10),
    );
    browser.js("window.kilnTestMarker = 'no reload'; return true;");

    boot(&server.url, "52:54:00:00:00:01", "installed");
    boot(&server.url, "52:54:00:00:00:02", "booting");
    boot(&server.url, "52:54:00:00:00:99", "booting");
    browser.wait(
        "m1 installed and m2 commissioning",
        "document.querySelector('tr[data-machine=m1] td.state').textContent === 'installed' \
         && document.querySelector('tr[data-machine=m2] td.state').textContent === 'commissioning' \
         && document.querySelector('[data-count=installed] .n').textContent === '1' \
         && document.querySelector('[data-count=commissioning] .n').textContent === '1' \
         && document.querySelector('[data-count=new] .n').textContent === '0'",
        secs(10),
    );
    let timeline = browser.wait(
        "the timeline",
        "document.querySelectorAll('#timeline li').length >= 5 && [...document.querySelectorAll('#timeline li')].map(l => l.textContent)",
        secs(10),
    );
    let lines: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("m1: installing → installed")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("unknown MAC 52:54:00:00:00:99")),
        "{lines:?}"
    );
    // Newest first: m1's install was done before the unknown MAC booted.
    let installed = lines.iter().position(|l| l.contains("→ installed")).unwrap();
    let unknown = lines.iter().position(|l| l.contains("unknown MAC")).unwrap();
    assert!(unknown < installed, "{lines:?}");
    assert_ne!(browser.text("tr[data-machine=m1] td:nth-child(7)"), "—", "last seen");
    assert_eq!(browser.js("return window.kilnTestMarker"), json!("no reload"));

    // Filters.
    browser.type_into("#f-name", "m2");
    browser.wait(
        "the name filter",
        "document.querySelectorAll('#rows tr[data-machine]').length === 1",
        secs(5),
    );
    browser.js(
        "const f = document.getElementById('f-name'); f.value = ''; f.dispatchEvent(new Event('input')); return true;",
    );
    browser.click("[data-count=installed]");
    browser.wait(
        "the state filter",
        "[...document.querySelectorAll('#rows tr[data-machine]')].map(r => r.dataset.machine).join() === 'm1'",
        secs(5),
    );

    // A machine's detail: its files, runs and trail; its facts are for operators.
    browser.click("button[data-name=m1]");
    let detail = browser.wait(
        "m1's detail",
        "document.getElementById('detail-body').textContent.includes('succeeded') && document.getElementById('detail-body').textContent",
        secs(10),
    );
    let detail = detail.as_str().unwrap();
    for expected in [
        "install: boot/machines/m1.ipxe",
        "install: install/m1/install.sh",
        "machine:m1",
        "facts need the operator role",
    ] {
        assert!(detail.contains(expected), "{expected} not in the detail: {detail}");
    }
    let shot = screenshots().join("fleet.png");
    browser.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // A boot while the detail is open updates it too.
    boot(&server.url, "52:54:00:00:00:02", "failed");
    browser.wait(
        "m2 failed",
        "document.querySelector('[data-count=failed] .n').textContent === '1'",
        secs(10),
    );
    assert_eq!(browser.js("return window.kilnTestMarker"), json!("no reload"));
}

#[test]
fn ten_thousand_machines_render_within_a_second() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let repo = tiny_site(b"kernel", b"initrd");
    let r = repo.path();
    const N: usize = 10_000;
    write(
        r,
        "sites/t/site.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata: {name: t}\nspec:\n  domain: t.example.net\n  bootServer: http://10.1.0.1:8080\n  networks:\n    - {name: net, cidr: 10.1.0.0/16, gateway: 10.1.0.1, dns: [10.1.0.2], pool: {start: 10.1.0.10, end: 10.1.255.250}}\n",
    );
    let docs: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {{name: n{i:05}}}\nspec:\n  blueprint: tiny\n  interfaces: [{{mac: \"52:54:01:{:02x}:{:02x}:{:02x}\", network: net}}]\n",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    write(r, "sites/t/machines/m.yaml", &docs.join("---\n"));
    let rendered = kiln(r, &["render"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    let (server, vera) = tiny_fleet(r);
    let browser = Browser::start();

    browser.sign_in(&server.url, &vera);
    let ms = browser.wait(
        "the first rows",
        "document.documentElement.dataset.renderedMs",
        secs(30),
    );
    let ms: f64 = ms.as_str().unwrap().parse().unwrap();
    assert_eq!(browser.text("#count-total"), "10,000");
    assert_eq!(browser.text("[data-count=new] .n"), "10,000");
    assert_eq!(browser.text("#rows tr[data-machine] th"), "n00000");
    println!("10,000 machines: first rows {ms} ms after the token was given");
    assert!(ms <= 1000.0, "the first rows took {ms} ms");
    // Only what is on screen is in the DOM.
    let rows = browser.js("return document.querySelectorAll('#rows tr[data-machine]').length");
    assert!(rows.as_u64().unwrap() < 100, "{rows} rows in the DOM");

    // Scrolled to the bottom, the last machine is on screen.
    browser.js("const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight; return true;");
    browser.wait(
        "the last machine on screen",
        "(() => { const r = document.querySelector('tr[data-machine=n09999]'); if (!r) return false; \
           const s = document.getElementById('scroller').getBoundingClientRect(), b = r.getBoundingClientRect(); \
           return b.top >= s.top && b.bottom <= s.bottom + 1; })()",
        secs(5),
    );

    browser.screenshot(&screenshots().join("fleet-10000-bottom.png"));

    // A boot storm while the page is open: applied in batches, one frame each.
    browser.wait(
        "the event stream",
        "document.getElementById('live').textContent === 'Live'",
        secs(10),
    );
    browser.js("window.kilnTestMarker = 'no reload'; return true;");
    for i in 0..300usize {
        let mac = format!("52:54:01:{:02x}:{:02x}:{:02x}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        boot(&server.url, &mac, "booting");
    }
    browser.wait(
        "300 machines booting",
        "document.querySelector('[data-count=booting] .n').textContent === '300' \
         && document.querySelector('[data-count=new] .n').textContent === '9,700'",
        secs(20),
    );
    assert_eq!(
        browser.js("return document.querySelectorAll('#timeline li').length"),
        json!(200)
    );
    assert_eq!(browser.js("return window.kilnTestMarker"), json!("no reload"));
}

#[test]
fn the_fleet_page_has_no_serious_accessibility_violation() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let repo = tiny_site(b"kernel", b"initrd");
    let (server, vera) = tiny_fleet(repo.path());
    let browser = Browser::start();
    browser.goto(&format!("{}/ui", server.url));
    browser.wait("the token form", "!document.getElementById('login').hidden", secs(10));
    browser.screenshot(&screenshots().join("login.png"));
    let mut found = axe(&browser);

    browser.type_into("#token", &vera);
    browser.click("#token-form button[type=submit]");
    browser.wait(
        "the event stream",
        "document.getElementById('live').textContent === 'Live'",
        secs(10),
    );
    boot(&server.url, "52:54:00:00:00:01", "installed");
    boot(&server.url, "52:54:00:00:00:02", "failed");
    browser.wait(
        "the timeline",
        "document.querySelectorAll('#timeline li').length >= 4",
        secs(10),
    );
    browser.click("button[data-name=m1]");
    browser.wait(
        "m1's detail",
        "document.getElementById('detail-body').textContent.includes('succeeded')",
        secs(10),
    );
    found.extend(axe(&browser));
    assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));

    // The checker does see what it is meant to: an unlabelled field in
    // grey on white.
    browser.js("const i = document.createElement('input'); i.id = 'kiln-test-bad'; \
         document.getElementById('machines-h').after(i); \
         const p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#eee'; \
         document.getElementById('machines-h').after(p); return true;");
    let seeded = axe(&browser).join("\n");
    assert!(
        seeded.contains("label") && seeded.contains("color-contrast"),
        "{seeded}"
    );
}

/// The screenshots of docs/executor.md, against the example lab site with
/// machines in several states (written to docs/images/ with
/// `KILN_UPDATE_DOCS_IMAGES=1`).
#[test]
fn the_docs_screenshots_show_the_example_lab() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_tree(&repo_root().join("out/lab"), &d.join("lab"), false);
    let plan: Value = serde_json::from_slice(&std::fs::read(d.join("lab/plan.json")).unwrap()).unwrap();
    // Every secret the lab's install files name, with a made-up value.
    let mut names = std::collections::BTreeSet::new();
    for file in walkdir::WalkDir::new(d.join("lab/install"))
        .into_iter()
        .filter_map(Result::ok)
    {
        if file.file_type().is_file() {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            for part in text.split("@@kiln:secret:").skip(1) {
                names.insert(part.split("@@").next().unwrap().to_string());
            }
        }
    }
    for name in &names {
        write(d, &format!("secrets/{name}"), "made-up-for-the-screenshot");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("secrets"), std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in &names {
        std::fs::set_permissions(d.join("secrets").join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ops = d.join("operators.yaml");
    let olga = add_operator(&ops, "olga", "operator");
    let (lab, state, secrets) = (d.join("lab"), d.join("state"), d.join("secrets"));
    let server = Server::start(
        &[
            "--plan",
            lab.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
            "--operators",
            ops.to_str().unwrap(),
        ],
        &d.join("serve.log"),
    );
    let mac = |name: &str| -> String {
        plan["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the lab"))["mac"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let browser = Browser::start();
    browser.sign_in(&server.url, &olga);
    browser.wait(
        "the event stream",
        "document.getElementById('live').textContent === 'Live'",
        secs(10),
    );
    for (name, until) in [
        ("node-01", "installed"),
        ("node-03", "failed"),
        ("talos-cp-01", "installing"),
        ("win-01", "booting"),
        ("talos-w-01", "installed"),
        ("node-02", "booting"),
    ] {
        boot(&server.url, &mac(name), until);
    }
    browser.wait(
        "the states",
        "document.querySelector('[data-count=installed] .n').textContent === '2' \
         && document.querySelector('[data-count=commissioning] .n').textContent === '1' \
         && document.querySelector('[data-count=failed] .n').textContent === '1'",
        secs(10),
    );
    // Where the executor reports steps, the rows follow them.
    let auth = format!("Bearer {olga}");
    let list = http(&server.url, "GET", "/v1/machines", &[("Authorization", &auth)], b"");
    if list.json()["machines"][0].get("step").is_some() {
        browser.wait(
            "talos-cp-01's step",
            "document.querySelector('tr[data-machine=talos-cp-01] td:nth-child(3)').textContent === 'install' \
             && document.querySelector('tr[data-machine=node-01] td:nth-child(3)').textContent === '—'",
            secs(5),
        );
    }
    let out = screenshots();
    browser.screenshot(&out.join("lab-fleet.png"));
    browser.resize(1280, 1000);
    browser.click("button[data-name=node-01]");
    browser.wait(
        "node-01's facts",
        "document.getElementById('detail-body').textContent.includes('postinstall_done')",
        secs(10),
    );
    browser.screenshot(&out.join("lab-detail.png"));
    let found = axe(&browser);
    assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));
    if std::env::var_os("KILN_UPDATE_DOCS_IMAGES").is_some() {
        for (from, to) in [
            ("lab-fleet.png", "fleet-page.png"),
            ("lab-detail.png", "fleet-page-detail.png"),
        ] {
            let png = std::fs::read(out.join(from)).unwrap();
            assert!(png.len() < 200 * 1024, "{from} is {} bytes", png.len());
            std::fs::create_dir_all(repo_root().join("docs/images")).unwrap();
            std::fs::write(repo_root().join("docs/images").join(to), png).unwrap();
        }
    }
}
