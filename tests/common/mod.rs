//! Helpers shared by the integration tests: a copy of the example repo in a
//! temporary directory and a way to run the real `kiln` binary on it.
#![allow(unreachable_pub)] // shared by every test crate, each using a part
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const INPUT_DIRS: &[&str] = &["sites", "clusters", "recipes", "blueprints"];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/schemas`, the upstream schemas rendered manifests must pass.
pub fn schemas_dir() -> PathBuf {
    repo_root().join("../shared/schemas")
}

/// The result of one `kiln` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn kiln(dir: &Path, args: &[&str]) -> Run {
    kiln_env(dir, args, &[])
}

pub fn kiln_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.arg("-C").arg(dir).args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("kiln runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A copy of the example repository's inputs (and out/, when asked).
pub fn example_copy(with_out: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut dirs: Vec<&str> = INPUT_DIRS.to_vec();
    if with_out {
        dirs.push("out");
    }
    for d in dirs {
        copy_tree(&repo_root().join(d), &dir.path().join(d), false);
    }
    dir
}

/// Copies a tree; with `reverse`, files are created in reverse name order
/// (so directory order on disk differs from the source's).
pub fn copy_tree(from: &Path, to: &Path, reverse: bool) {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(from)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    files.sort();
    if reverse {
        files.reverse();
    }
    for file in files {
        let dest = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap();
    }
}

/// Every file under `dir`, by relative path, with its bytes; kiln's own
/// stat cache (`out/.kiln.cache`) is left out: it records inode numbers and
/// times, never content.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != kiln_compiler::stat::FILE)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Replaces `from` with `to` in a file; panics when `from` is absent, so a
/// test cannot silently edit nothing.
pub fn edit(dir: &Path, rel: &str, from: &str, to: &str) {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} does not contain {from:?}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Runs `kiln render` on a copy of the example broken by `prepare`; checks
/// it exits 2 and leaves out/ exactly as it was, and returns its stderr.
pub fn render_fails(prepare: impl FnOnce(&Path)) -> String {
    let repo = example_copy(true);
    let before = tree(&repo.path().join("out"));
    prepare(repo.path());
    let run = kiln(repo.path(), &["render"]);
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(tree(&repo.path().join("out")), before, "out/ changed on an input error");
    run.stderr
}

/// A tiny bare-metal site for executor tests: site `t`, blueprint `tiny`
/// (kernel + initrd artifacts, an install script that reports with its
/// token, and a secret), blueprint `commission`, and machines `m1`
/// (52:54:00:00:00:01) and `m2` (52:54:00:00:00:02, commissioned first).
/// Returns the repository; `kiln render` has written `out/t/`.
pub fn tiny_site(kernel: &[u8], initrd: &[u8]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    let sha = kiln_plan::sha256_hex;
    write(
        r,
        "sites/t/site.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata: {name: t}\nspec:\n  domain: t.example.net\n  bootServer: http://10.0.2.2:8080\n  networks:\n    - {name: net, cidr: 10.0.2.0/24, gateway: 10.0.2.2, dns: [10.0.2.3], pool: {start: 10.0.2.100, end: 10.0.2.200}}\n",
    );
    write(
        r,
        "sites/t/machines/m.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: m1}\nspec:\n  blueprint: tiny\n  interfaces: [{mac: \"52:54:00:00:00:01\", network: net}]\n---\napiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: m2}\nspec:\n  blueprint: tiny\n  commission: true\n  interfaces: [{mac: \"52:54:00:00:00:02\", network: net}]\n",
    );
    for (bp, install) in [("tiny", "install.sh"), ("commission", "check.sh")] {
        write(
            r,
            &format!("blueprints/{bp}/blueprint.yaml"),
            &format!(
                "apiVersion: kiln/v1alpha1\nkind: Blueprint\nmetadata: {{name: {bp}}}\nspec:\n  os: generic\n  version: \"1\"\n  artifacts:\n    kernel: {{path: tiny/vmlinuz, sha256: {}}}\n    initrd: {{path: tiny/initrd.img, sha256: {}}}\n  templates: {{ipxe: templates/boot.ipxe.j2, install: templates/{install}.j2}}\n",
                sha(kernel),
                sha(initrd)
            ),
        );
        write(
            r,
            &format!("blueprints/{bp}/templates/boot.ipxe.j2"),
            // `--name` and `initrd=`: a UEFI kernel's EFI stub finds its initrd by name.
            "#!ipxe\n# {{ blueprint.name }} of {{ machine.name }}\n{% set nic = machine.interfaces[0] %}kernel --name vmlinuz {{ blueprint.artifacts.kernel.url }} initrd=initrd.img console=ttyS0 kiln.install={{ install_url }}{% if not nic.ip %} kiln.ip6={{ nic.ip6 }}/{{ nic.prefix6 }} kiln.mac={{ nic.mac }}{% endif %}\ninitrd --name initrd.img {{ blueprint.artifacts.initrd.url }}\nboot\n",
        );
    }
    write(
        r,
        "blueprints/tiny/templates/install.sh.j2",
        "#!/bin/sh\n# install {{ machine.name }}; demo password: {{ secret(\"demo-password\") }}\ntimeout 30 wget -q -O - --header \"Authorization: Bearer {{ token }}\" --header \"Content-Type: application/json\" --post-data '{\"snapshot\": {\"postinstall_done\": true, \"hostname\": \"{{ machine.name }}\"}}' {{ report_url }}\n",
    );
    write(
        r,
        "blueprints/commission/templates/check.sh.j2",
        "#!/bin/sh\n# commission {{ machine.name }}\ntimeout 30 wget -q -O - --header \"Authorization: Bearer {{ token }}\" --post-data '{\"snapshot\": {\"hardware_ok\": true}}' {{ report_url }}\n",
    );
    let run = kiln(r, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    repo
}

/// How every QEMU test runs its VM: software emulation, 512 MiB, no
/// display, and exit instead of rebooting (the guest powers off when done).
pub const QEMU_TCG: [&str; 7] = [
    "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-m",
    "512",
    "-nographic",
    "-no-reboot",
];

/// The tiny Linux guest of the QEMU tests (`tests/qemu/build-guest.sh`,
/// built once under `target/`): its kernel and initrd.
pub fn qemu_guest() -> (Vec<u8>, Vec<u8>) {
    let guest = repo_root().join("target/qemu-guest");
    let build = Command::new("bash")
        .arg(repo_root().join("tests/qemu/build-guest.sh"))
        .arg(&guest)
        .status()
        .unwrap();
    assert!(build.success(), "building the guest failed");
    (
        std::fs::read(guest.join("vmlinuz")).unwrap(),
        std::fs::read(guest.join("initrd.img")).unwrap(),
    )
}

/// What `kiln serve` needs beside a tiny site's plan: the artifacts under
/// `art/`, a private secret store holding `demo-password` = `secret`, and
/// a private `operator-token` file.
pub fn executor_files(r: &Path, kernel: &[u8], initrd: &[u8], secret: &str, operator_token: &str) {
    std::fs::create_dir_all(r.join("art/tiny")).unwrap();
    std::fs::write(r.join("art/tiny/vmlinuz"), kernel).unwrap();
    std::fs::write(r.join("art/tiny/initrd.img"), initrd).unwrap();
    write(r, "secrets/demo-password", secret);
    write(r, "operator-token", operator_token);
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [
        ("secrets", 0o700),
        ("secrets/demo-password", 0o600),
        ("operator-token", 0o600),
    ] {
        std::fs::set_permissions(r.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A running `kiln serve`, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `kiln serve ARGS --listen 127.0.0.1:0` and waits (at most
    /// 20 s) until it listens; `url` is its first listener's (http:// or
    /// https://).
    pub fn start(args: &[&str], log: &Path) -> Server {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(file)
            .spawn()
            .unwrap();
        // Owned by the server from here on: dropping it (also on panic) kills it.
        let mut server = Server {
            child,
            url: String::new(),
            log: log.to_path_buf(),
        };
        let started = std::time::Instant::now();
        let before = std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("listening on")
            .count();
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text.lines().filter(|l| l.contains("listening on ")).nth(before) {
                server.url = line.split("listening on ").nth(1).unwrap().trim().to_string();
                return server;
            }
            assert!(started.elapsed().as_secs() < 20, "kiln serve did not start:\n{text}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer: status, headers (lowercase names), body.
pub struct Http {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Http {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
}

/// Sends a request as written (no path normalisation) and reads the answer.
pub fn http(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Http {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        body = dechunk(&body);
    }
    Http { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// Runs `git ARGS` in `dir` as a fixed author; the test fails if git does.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "kiln")
        .env("GIT_AUTHOR_EMAIL", "kiln@example.net")
        .env("GIT_COMMITTER_NAME", "kiln")
        .env("GIT_COMMITTER_EMAIL", "kiln@example.net")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `kiln serve` on the rendered site `out/t` of `repo` (as
/// `tiny_site` makes it), with its state under `repo/state` and `extra`
/// flags.
pub fn serve_tiny(repo: &Path, extra: &[&str]) -> Server {
    let (plan, state) = (repo.join("out/t"), repo.join("state"));
    let mut args = vec!["--plan", plan.to_str().unwrap(), "--state", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args, &repo.join("serve.log"))
}

/// Sets the example's Proxmox cluster to CAPMOX v1alpha1, the setting for
/// management clusters with CAPMOX before v0.8.
pub fn proxmox_at_v1alpha1(repo: &Path) {
    edit(
        repo,
        "sites/lab/clusters/edge-proxmox.yaml",
        "  values:\n",
        "  values:\n    infrastructureApiVersion: infrastructure.cluster.x-k8s.io/v1alpha1\n",
    );
}

/// Runs `ip ARGS` (iproute2); the test fails if it does.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's ip is needed");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `kiln serve` with `paths` (flag, path under `r`) and `extra`
/// flags, logging to `r/serve.log`.
pub fn serve_with(r: &Path, paths: &[(&str, &str)], extra: &[&str]) -> Server {
    let mut args: Vec<String> = paths
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), r.join(path).display().to_string()])
        .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args, &r.join("serve.log"))
}

/// Waits up to 20 s for `done`, failing with `what` when it never is.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
