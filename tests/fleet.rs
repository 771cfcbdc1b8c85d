//! Enrolment and drift against a real executor: an unknown MAC boots the
//! discovery step and its real discovery script reports; `kiln adopt`
//! writes the Machine document once; an installed machine's real agent
//! script (sh + curl) reports with its agent credential; `kiln drift`
//! catches a changed MAC and a missing disk; a reprovision revokes the
//! credential. The machine's hardware is a fixture tree the scripts read
//! through `KILN_SYSFS` / `KILN_PROCFS`; everything else is real: the
//! agent runs in a network namespace whose interfaces carry the machine's
//! addresses and reaches the executor over a veth pair.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

const OPERATOR: &str = "fleet-operator-token-0123456789";

/// The example repository, rendered, with what `kiln serve` needs, and the
/// executor serving `out/lab` on loopback.
struct Lab {
    repo: tempfile::TempDir,
    server: Server,
}

impl Lab {
    /// `prepare` edits the copy before it is rendered; `extra` are more
    /// flags for `kiln serve`.
    fn start(prepare: impl FnOnce(&Path), extra: &[&str]) -> Lab {
        let repo = example_copy(true);
        let r = repo.path();
        prepare(r);
        let run = kiln(r, &["render"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        write(r, "secrets/rhel-root-password-hash", "$6$rounds=4096$fleet$x");
        write(r, "operator-token", OPERATOR);
        use std::os::unix::fs::PermissionsExt;
        for (p, mode) in [
            ("secrets", 0o700),
            ("secrets/rhel-root-password-hash", 0o600),
            ("operator-token", 0o600),
        ] {
            std::fs::set_permissions(r.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let paths = [
            ("--plan", "out/lab"),
            ("--state", "state"),
            ("--secrets", "secrets"),
            ("--operator-token-file", "operator-token"),
        ];
        let server = serve_with(r, &paths, extra);
        Lab { repo, server }
    }

    fn r(&self) -> &Path {
        self.repo.path()
    }

    fn get(&self, path: &str) -> Http {
        http(&self.server.url, "GET", path, &[], b"")
    }

    fn operator(&self, method: &str, path: &str, body: &str) -> Http {
        let auth = format!("Bearer {OPERATOR}");
        http(
            &self.server.url,
            method,
            path,
            &[("Authorization", &auth)],
            body.as_bytes(),
        )
    }

    /// `kiln ARGS --server URL --operator-token-file ...` in the repository.
    fn client(&self, args: &[&str]) -> Run {
        let token = self.r().join("operator-token");
        let mut all = args.to_vec();
        all.extend([
            "--server",
            &self.server.url,
            "--operator-token-file",
            token.to_str().unwrap(),
        ]);
        kiln(self.r(), &all)
    }
}

/// The URL of the listener on `address`, once it listens.
fn wait_for_listener(log: &Path, address: &str) -> String {
    for _ in 0..200 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find_map(|l| l.split("listening on ").nth(1).filter(|u| u.contains(address)))
        {
            return url.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no listener on {address}");
}

/// The token in a served script's `/install/<token>/` URL.
fn install_token(script: &str) -> String {
    let at = script.find("/install/").expect("the script names its install URL") + "/install/".len();
    script[at..].split('/').next().unwrap().to_string()
}

/// The text between the line `start` and the line `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no `{start}` in:\n{text}")) + start.len();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

/// A machine's hardware as sysfs and procfs show it: NICs by name and MAC,
/// disks by name and MiB, a serial, 2 CPUs, 4 GiB and a host name.
fn hardware(dir: &Path, nics: &[(&str, &str)], disks: &[(&str, u64)], serial: &str, hostname: &str) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    for (name, mac) in nics {
        write(dir, &format!("sys/class/net/{name}/address"), &format!("{mac}\n"));
        std::fs::create_dir_all(dir.join(format!("sys/class/net/{name}/device"))).unwrap();
    }
    // A loopback-like interface without a device is not a NIC.
    write(dir, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
    for (name, mib) in disks {
        write(dir, &format!("sys/block/{name}/size"), &format!("{}\n", mib * 2048));
        write(dir, &format!("sys/block/{name}/removable"), "0\n");
    }
    write(dir, "sys/block/loop0/size", "2048\n");
    write(dir, "sys/class/dmi/id/product_serial", &format!("{serial}\n"));
    write(dir, "sys/class/dmi/id/sys_vendor", "QEMU\n");
    write(dir, "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n");
    write(
        dir,
        "proc/cpuinfo",
        "processor\t: 0\nmodel name\t: Fleet CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: Fleet CPU @ 2.0GHz\n",
    );
    write(dir, "proc/meminfo", "MemTotal:        4030464 kB\nMemFree:  1 kB\n");
    write(dir, "proc/sys/kernel/hostname", &format!("{hostname}\n"));
    dir.to_path_buf()
}

/// node-01's network as its agent sees it: a namespace where `kfix0` (its
/// prov NIC) has its prov addresses and a link to the executor's side,
/// 10.77.0.1, and `kfix1` (its storage NIC) has its storage address.
struct Machine {
    ns: String,
    executor: String,
}

impl Machine {
    fn new() -> Machine {
        let id = std::process::id() % 100_000;
        let (ns, host) = (format!("kiln-agent-{id}"), format!("kah{id}"));
        ip(&["netns", "add", &ns]);
        let machine = Machine {
            ns,
            executor: "10.77.0.1".into(),
        };
        let ns = machine.ns.as_str();
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", "kfix0", "netns", ns,
        ]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        // The storage NIC: the other end of a second pair, left down.
        ip(&[
            "link",
            "add",
            &format!("kas{id}"),
            "type",
            "veth",
            "peer",
            "name",
            "kfix1",
            "netns",
            ns,
        ]);
        for (dev, address) in [
            ("kfix0", "10.77.0.2/24"),
            ("kfix0", "10.20.1.10/16"),
            ("kfix0", "fd00:20::1:1/64"),
            ("kfix1", "10.30.4.10/22"),
        ] {
            let mut args = vec!["-n", ns, "addr", "add", address, "dev", dev];
            if address.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        }
        for dev in ["lo", "kfix0", "kfix1"] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        machine
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair too.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Runs a served shell script with the fixture as its hardware.
fn run_script(script: &Path, fixture: &Path, env: &[(&str, &Path)]) -> std::process::Output {
    run_script_in(None, script, fixture, env)
}

/// The same in a network namespace, when one is given.
fn run_script_in(ns: Option<&str>, script: &Path, fixture: &Path, env: &[(&str, &Path)]) -> std::process::Output {
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sh"]);
            c
        }
        None => Command::new("sh"),
    };
    command
        .arg(script)
        .env("KILN_SYSFS", fixture.join("sys"))
        .env("KILN_PROCFS", fixture.join("proc"));
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("sh runs")
}

#[test]
fn an_unknown_machine_is_discovered_and_adopted_once_and_installs_only_once_rendered() {
    // The discovery environment must not power off the machine running the test.
    let lab = Lab::start(
        |r| {
            edit(
                r,
                "sites/lab/site.yaml",
                "  values:\n",
                "  values:\n    discovery: {then: none}\n",
            );
        },
        &[],
    );
    let r = lab.r();
    let mac = "52:54:00:77:00:01";

    let boot = lab.get("/boot/ipxe?mac=52-54-00-77-00-01");
    assert_eq!(boot.status, 200);
    let script = boot.text();
    assert!(script.contains("discovery of an unknown machine"), "{script}");
    let token = install_token(&script);
    let served = lab.get(&format!("/install/{token}/discover.sh"));
    assert_eq!(served.status, 200, "{}", served.text());
    let discover = served.text();
    assert!(
        !discover.contains("poweroff") && !discover.contains("reboot"),
        "{discover}"
    );
    assert!(discover.contains(&lab.server.url), "the server URL is filled in");
    // The discovery token opens nothing else.
    assert_eq!(lab.get(&format!("/install/{token}/ks.cfg")).status, 404);

    let script_file = r.join("discover.sh");
    std::fs::write(&script_file, &discover).unwrap();
    let fixture = hardware(
        &r.join("hw"),
        &[("eth0", mac), ("eth1", "52:54:00:77:00:02")],
        &[("vda", 40_960), ("vdb", 8_192)],
        "SN-77 01",
        "localhost",
    );
    let ran = run_script(&script_file, &fixture, &[]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));

    let found = lab.operator("GET", "/v1/discovered", "");
    assert_eq!(found.status, 200);
    let found = found.json();
    let machine = &found["machines"][0];
    assert_eq!(machine["mac"], mac, "{found}");
    assert_eq!(machine["facts"]["serial"], "SN-77 01");
    assert_eq!(machine["facts"]["cpu"]["count"], 2);
    assert_eq!(machine["facts"]["memory_mib"], 3936);
    assert_eq!(
        machine["facts"]["disks"].as_array().unwrap().len(),
        2,
        "loop devices are not disks"
    );
    assert_eq!(
        machine["facts"]["nics"].as_array().unwrap().len(),
        2,
        "only NICs with a device"
    );
    // Not a machine of the plan: nothing installs it.
    let machines = lab.operator("GET", "/v1/machines", "").json();
    assert!(!machines.to_string().contains(mac));
    assert!(lab.get("/boot/ipxe?mac=52-54-00-77-00-01").text().contains("discovery"));

    // Adopt: one reviewable document.
    let adopted = lab.client(&["adopt", "--blueprint", "rhel9"]);
    assert_eq!(adopted.code, 0, "{}{}", adopted.stdout, adopted.stderr);
    assert!(
        adopted.stdout.contains("wrote sites/lab/machines/node-sn-77-01.yaml"),
        "{}",
        adopted.stdout
    );
    assert!(
        adopted.stdout.contains("1 machines adopted into site lab"),
        "{}",
        adopted.stdout
    );
    let doc = std::fs::read_to_string(r.join("sites/lab/machines/node-sn-77-01.yaml")).unwrap();
    let first_seen = machine["firstSeen"].as_str().unwrap();
    insta::assert_snapshot!(doc.replace(first_seen, "<first seen>"), @r#"
    # Adopted by `kiln adopt` from the hardware report of 52:54:00:77:00:01 (first booted <first seen>).
    # Review it (name, blueprint, network, labels) before merging: the machine
    # installs once this document is merged and rendered.
    # Its other NICs: eth1 52:54:00:77:00:02.
    apiVersion: kiln/v1alpha1
    kind: Machine
    metadata:
      name: node-sn-77-01
      labels:
        cpus: "2"
        discovered: "true"
        disk-mib: "49152"
        disks: "2"
        memory-mib: "3936"
        product: Standard PC (Q35 + ICH9, 2009)
        vendor: QEMU
    spec:
      blueprint: rhel9
      serial: SN-77 01
      interfaces:
        - mac: "52:54:00:77:00:01"
          network: prov
    "#);

    // A second run writes nothing.
    let again = lab.client(&["adopt", "--blueprint", "rhel9"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("0 machines adopted into site lab; 1 discovered MACs are already in the repository"),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read_to_string(r.join("sites/lab/machines/node-sn-77-01.yaml")).unwrap(),
        doc
    );

    // Merged and rendered, the machine is in the plan with its labels, and
    // the executor installs it.
    let rendered = kiln(r, &["render"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(r.join("out/lab/plan.json")).unwrap()).unwrap();
    let planned = plan["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "node-sn-77-01")
        .unwrap();
    assert_eq!(planned["labels"]["vendor"], "QEMU");
    wait_until("the executor never activated the new plan", || {
        lab.operator("GET", "/v1/machines", "").text().contains("node-sn-77-01")
    });
    let boot = lab.get("/boot/ipxe?mac=52-54-00-77-00-01").text();
    assert!(
        boot.contains("ks.cfg"),
        "an adopted machine boots its installer: {boot}"
    );
    assert!(lab.operator("GET", "/v1/discovered", "").json()["machines"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn an_agent_reports_and_drift_catches_a_changed_mac_a_missing_disk_and_a_lost_address() {
    let machine = Machine::new();
    // node-01 must have two disks; the executor's boot listener is on the
    // machine's link.
    let boot_listen = format!("{}:0", machine.executor);
    let lab = Lab::start(
        |r| {
            edit(
                r,
                "sites/lab/machines/rack1.yaml",
                "  serial: R1N01\n",
                "  serial: R1N01\n  values: {hardware: {minDisks: 2, minDiskMiB: 10240}}\n",
            );
        },
        &["--boot-listen", &boot_listen],
    );
    let r = lab.r();
    let boot_url = wait_for_listener(&lab.server.log, &machine.executor);

    // node-01 boots, fetches its kickstart over its link and reports its
    // install done.
    let boot = http(&boot_url, "GET", "/boot/ipxe?mac=52-54-00-12-34-01", &[], b"").text();
    let token = install_token(&boot);
    let ks = http(&boot_url, "GET", &format!("/install/{token}/ks.cfg"), &[], b"");
    assert_eq!(ks.status, 200, "{}", ks.text());
    let ks = ks.text();
    let credential = between(&ks, "printf '%s\\n' '", "' > /etc/kiln/agent-credential").to_string();
    assert_eq!(credential.len(), 64, "256 bits, hex: {credential}");
    assert!(!ks.contains("@@kiln:"), "every placeholder is filled");
    let done = http(
        &lab.server.url,
        "POST",
        "/v1/agents/facts",
        &[("Authorization", &format!("Bearer {token}"))],
        br#"{"snapshot": {"postinstall_done": true}}"#,
    );
    assert_eq!(done.json()["state"], "installed");

    // The units the kickstart installs are valid systemd units.
    let units = r.join("units");
    for unit in ["kiln-agent.service", "kiln-agent.timer"] {
        let text = between(
            &ks,
            &format!("cat > /etc/systemd/system/{unit} <<'KILN_UNIT'\n"),
            "KILN_UNIT\n",
        );
        write(
            &units,
            unit,
            &text.replace("/usr/local/libexec/kiln-agent", "/bin/true"),
        );
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("kiln-agent.service"))
        .arg(units.join("kiln-agent.timer"))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        !complaints.contains("kiln-agent"),
        "systemd-analyze verify: {complaints}"
    );

    // The agent, fetched with the credential as %post does, and run as
    // the installed system runs it.
    let script_url = format!("{boot_url}/v1/agents/script");
    assert!(
        ks.contains(&format!("-o /usr/local/libexec/kiln-agent '{script_url}'")),
        "{ks}"
    );
    assert_eq!(http(&boot_url, "GET", "/v1/agents/script", &[], b"").status, 401);
    let wrong = [(
        "Authorization",
        "Bearer 0000000000000000000000000000000000000000000000000000000000000000",
    )];
    assert_eq!(http(&boot_url, "GET", "/v1/agents/script", &wrong, b"").status, 401);
    let bearer = format!("Bearer {credential}");
    let fetched = http(
        &boot_url,
        "GET",
        "/v1/agents/script",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert!(
        fetched
            .text()
            .contains(&format!("CHECKIN_URL='{boot_url}/v1/agents/checkin'")),
        "the agent reports where it was installed from: {}",
        fetched.text()
    );
    let agent = r.join("kiln-agent");
    std::fs::write(&agent, fetched.body).unwrap();
    let credential_file = r.join("agent-credential");
    std::fs::write(&credential_file, format!("{credential}\n")).unwrap();
    let declared = [("kfix0", "52:54:00:12:34:01"), ("kfix1", "52:54:00:aa:34:01")];
    let fixture = hardware(
        &r.join("hw"),
        &declared,
        &[("sda", 40_960), ("sdb", 40_960)],
        "R1N01",
        "node-01.lab.example.net",
    );
    let report = |fixture: &Path| {
        let ran = run_script_in(
            Some(&machine.ns),
            &agent,
            fixture,
            &[("KILN_AGENT_CREDENTIAL", &credential_file)],
        );
        (
            ran.status.success(),
            String::from_utf8_lossy(&ran.stdout).into_owned() + &String::from_utf8_lossy(&ran.stderr),
        )
    };
    let (ok, said) = report(&fixture);
    assert!(ok, "{said}");
    assert!(said.contains("\"machine\":\"node-01\""), "{said}");
    let summary = lab.operator("GET", "/v1/machines/node-01", "").json();
    assert!(summary["agentLastSeen"].is_string(), "{summary}");
    assert_eq!(summary["lastFacts"]["source"], "agent");
    assert_eq!(summary["stale"], false);

    let clean = lab.client(&["drift", "--format", "json"]);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    let clean: serde_json::Value = serde_json::from_str(&clean.stdout).unwrap();
    assert_eq!(clean["checked"], 1, "{clean}");
    assert_eq!(clean["findings"], serde_json::json!([]));
    let facts = lab.operator("GET", "/v1/facts", "").json();
    let node = facts["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "node-01")
        .unwrap();
    assert!(node["facts"]["nics"].to_string().contains("10.20.1.10/16"), "{node}");

    // A NIC swapped, a disk gone and the storage address lost.
    ip(&["-n", &machine.ns, "addr", "del", "10.30.4.10/22", "dev", "kfix1"]);
    let fixture = hardware(
        &r.join("hw"),
        &[("kfix0", "52:54:00:12:34:99"), ("kfix1", "52:54:00:aa:34:01")],
        &[("sda", 40_960)],
        "R1N01",
        "node-01.lab.example.net",
    );
    let (ok, said) = report(&fixture);
    assert!(ok, "{said}");
    let drifted = lab.client(&["drift"]);
    assert_eq!(drifted.code, 1, "{}{}", drifted.stdout, drifted.stderr);
    insta::assert_snapshot!(drifted.stdout, @r"
    MACHINE  DRIFTED  DECLARED                       FOUND
    node-01  mac      52:54:00:12:34:01              52:54:00:12:34:99, 52:54:00:aa:34:01
    node-01  address  10.30.4.10                     10.77.0.2, 10.20.1.10, fd00:20::1:1
    node-01  disks    at least 2 disks of 10240 MiB  sda (40960 MiB)

    site lab: 1 of 1 installed machines drifted (3 findings); 7 not checked (not installed or no facts yet)
    ");
    let markdown = lab.client(&["drift", "--format", "markdown"]);
    assert_eq!(markdown.code, 1);
    assert!(
        markdown
            .stdout
            .contains("| `node-01` | mac | 52:54:00:12:34:01 | 52:54:00:12:34:99, 52:54:00:aa:34:01 |"),
        "{}",
        markdown.stdout
    );

    // A reprovision revokes the credential: the agent is refused.
    let pending = lab.operator("POST", "/v1/machines/node-01/reprovision", "{}").json();
    let confirm = format!("{{\"confirm\": \"{}\"}}", pending["confirm"].as_str().unwrap());
    assert_eq!(
        lab.operator("POST", "/v1/machines/node-01/reprovision", &confirm)
            .status,
        200
    );
    let (ok, said) = report(&fixture);
    assert!(!ok && said.contains("401"), "{said}");
}
