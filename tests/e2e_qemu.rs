//! End to end with a real iPXE client: QEMU (software emulation) PXE-boots
//! its iPXE ROM against `kiln serve` over QEMU's user network. iPXE fetches
//! the menu, chains to the machine's script, loads a Debian kernel and a
//! busybox initrd (`tests/qemu/build-guest.sh`), and the guest runs its
//! install file, which reports `postinstall_done` with its run token. A
//! second boot of the same machine gets the local-disk script.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:00:00:01"; // machine m1 of the tiny site

/// Boots the VM once; returns its console output. Bounded by `limit`.
fn boot_vm(server: &Server, limit: Duration, console: &Path) -> String {
    boot_vm_as(server, MAC, &[], limit, console)
}

/// Boots a VM with NIC `mac` and `extra` QEMU arguments.
fn boot_vm_as(server: &Server, mac: &str, extra: &[&str], limit: Duration, console: &Path) -> String {
    let port = server.url.rsplit(':').next().unwrap();
    let status = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .args(QEMU_TCG)
        .args([
            "-netdev",
            &format!("user,id=n0,bootfile=http://10.0.2.2:{port}/menu.ipxe"),
        ])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={mac}")])
        .args(extra)
        .args(["-boot", "order=n,reboot-timeout=0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(console).unwrap())
        .status()
        .expect("qemu-system-x86_64 is needed (.ci/deps installs qemu-system-x86 and ipxe-qemu)");
    let text = std::fs::read_to_string(console).unwrap_or_default();
    assert!(
        status.code() != Some(124),
        "the VM did not finish within {limit:?}:\n{text}"
    );
    text
}

/// `kiln serve` on the tiny site's plan, its artifacts, secrets and
/// operator token (`executor_files`).
fn serve_e2e(r: &Path) -> Server {
    let paths = [
        ("--plan", "out/t"),
        ("--state", "state"),
        ("--artifacts", "art"),
        ("--secrets", "secrets"),
        ("--operator-token-file", "operator-token"),
    ];
    serve_with(r, &paths, &[])
}

fn op(server: &Server, path: &str) -> serde_json::Value {
    http(
        &server.url,
        "GET",
        path,
        &[("Authorization", "Bearer e2e-operator-token-0123456789")],
        b"",
    )
    .json()
}

#[test]
fn a_real_ipxe_client_installs_and_then_boots_its_disk() {
    let started = Instant::now();
    let (kernel, initrd) = qemu_guest();
    let repo = tiny_site(&kernel, &initrd);
    let r = repo.path();
    executor_files(r, &kernel, &initrd, "e2e-secret", "e2e-operator-token-0123456789");
    let server = serve_e2e(r);

    let first_boot = Instant::now();
    let console = boot_vm(&server, Duration::from_secs(150), &r.join("console-1.log"));
    let install_time = first_boot.elapsed();
    assert!(
        console.contains("KILN-GUEST: install script exit 0"),
        "the guest did not report:\n{console}"
    );
    let machine = op(&server, "/v1/machines/m1");
    assert_eq!(machine["state"], "installed", "{machine}");
    let steps: Vec<String> = machine["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["detail"]["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "run started ",
        "state booting",
        "state installing",
        "run ended ",
        "state installed",
    ] {
        assert!(
            steps.iter().any(|s| s == expected),
            "the audit trail lacks `{expected}`: {steps:?}"
        );
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    for route in [
        "GET /menu.ipxe 200",
        "GET /boot/ipxe 200",
        "GET /artifacts/{*path} 200",
        "GET /install/{token}/{file} 200",
        "POST /v1/agents/facts 200",
    ] {
        assert!(log.contains(route), "the executor never answered `{route}`:\n{log}");
    }

    // The same machine boots again: it gets the local-disk script, and no new run starts.
    let boots_before = log.matches("GET /boot/ipxe 200").count();
    let second_boot = Instant::now();
    boot_vm(&server, Duration::from_secs(90), &r.join("console-2.log"));
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(
        log.matches("GET /boot/ipxe 200").count(),
        boots_before + 1,
        "the second boot asked for its script once"
    );
    let machine = op(&server, "/v1/machines/m1");
    assert_eq!(machine["state"], "installed");
    assert_eq!(
        machine["runs"].as_array().unwrap().len(),
        1,
        "no reinstall on a PXE boot: {machine}"
    );
    eprintln!(
        "e2e timings: install boot {:.1} s, local-disk boot {:.1} s, whole test {:.1} s",
        install_time.as_secs_f64(),
        second_boot.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The whole enrolment loop with a real iPXE client: a machine git does not
/// know boots the discovery step and its real discovery script reports its
/// hardware (the serial QEMU gives it in SMBIOS); `kiln adopt` writes its
/// Machine document; only once that is rendered does the executor install
/// it, and it ends `installed`.
#[test]
fn an_unknown_machine_is_discovered_adopted_rendered_and_installed() {
    let started = Instant::now();
    let (kernel, initrd) = qemu_guest();
    let repo = tiny_site(&kernel, &initrd);
    let r = repo.path();
    // Discovery on, with kiln's own discovery script (and the facts it
    // includes) in the guest's environment (`kiln.install=`).
    edit(
        r,
        "sites/t/site.yaml",
        "spec:\n",
        "spec:\n  discovery: {enabled: true}\n",
    );
    for file in ["discover.sh.j2", "facts.sh.j2"] {
        let text = std::fs::read_to_string(repo_root().join("blueprints/discovery/templates").join(file)).unwrap();
        write(r, &format!("blueprints/discovery/templates/{file}"), &text);
    }
    let sha = kiln_plan::sha256_hex;
    write(
        r,
        "blueprints/discovery/blueprint.yaml",
        &format!(
            "apiVersion: kiln/v1alpha1\nkind: Blueprint\nmetadata: {{name: discovery}}\nspec:\n  os: generic\n  version: \"1\"\n  artifacts:\n    kernel: {{path: tiny/vmlinuz, sha256: {}}}\n    initrd: {{path: tiny/initrd.img, sha256: {}}}\n  templates: {{ipxe: templates/discovery.ipxe.j2, install: templates/discover.sh.j2}}\n  values:\n    discovery: {{reportTimeout: 30, reportRetries: 3, reportRetryDelay: 2, then: none}}\n",
            sha(&kernel),
            sha(&initrd)
        ),
    );
    write(
        r,
        "blueprints/discovery/templates/discovery.ipxe.j2",
        "#!ipxe\n# discovery at {{ site.name }}\nkernel --name vmlinuz {{ blueprint.artifacts.kernel.url }} initrd=initrd.img console=ttyS0 kiln.install={{ install_url }}\ninitrd --name initrd.img {{ blueprint.artifacts.initrd.url }}\nboot\n",
    );
    let rendered = kiln(r, &["render"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    executor_files(r, &kernel, &initrd, "e2e-secret", "e2e-operator-token-0123456789");
    let server = serve_e2e(r);
    let (mac, smbios) = (
        "52:54:00:00:00:77",
        ["-smbios", "type=1,serial=E2E-0077,manufacturer=kiln-lab"],
    );

    // First boot: unknown, so discovery; nothing installs.
    let console = boot_vm_as(
        &server,
        mac,
        &smbios,
        Duration::from_secs(150),
        &r.join("console-1.log"),
    );
    assert!(console.contains("kiln-discovery: reported"), "{console}");
    let discovered = op(&server, "/v1/discovered");
    let facts = &discovered["machines"][0]["facts"];
    assert_eq!(facts["serial"], "E2E-0077", "{discovered}");
    assert_eq!(facts["vendor"], "kiln-lab");
    assert_eq!(facts["nics"][0]["mac"], mac);
    assert!(facts["memory_mib"].as_u64().unwrap() > 256, "{facts}");
    assert!(!op(&server, "/v1/machines").to_string().contains(mac));

    // Adopted into git (once), and rendered.
    let token = r.join("operator-token");
    let adopt = [
        "adopt",
        "--blueprint",
        "tiny",
        "--server",
        &server.url,
        "--operator-token-file",
        token.to_str().unwrap(),
    ];
    let adopted = kiln(r, &adopt);
    assert_eq!(adopted.code, 0, "{}{}", adopted.stdout, adopted.stderr);
    assert!(
        adopted.stdout.contains("wrote sites/t/machines/node-e2e-0077.yaml"),
        "{}",
        adopted.stdout
    );
    assert!(kiln(r, &adopt).stdout.contains("0 machines adopted"));
    let rendered = kiln(r, &["render"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    wait_until("the executor never activated the new plan", || {
        op(&server, "/v1/machines").to_string().contains("node-e2e-0077")
    });

    // Second boot: the same hardware installs as the adopted machine.
    let console = boot_vm_as(
        &server,
        mac,
        &smbios,
        Duration::from_secs(150),
        &r.join("console-2.log"),
    );
    assert!(console.contains("KILN-GUEST: install script exit 0"), "{console}");
    let machine = op(&server, "/v1/machines/node-e2e-0077");
    assert_eq!(machine["state"], "installed", "{machine}");
    assert_eq!(machine["labels"]["vendor"], "kiln-lab");
    eprintln!("e2e enrolment: whole test {:.1} s", started.elapsed().as_secs_f64());
}
