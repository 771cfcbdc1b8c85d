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
    let port = server.url.rsplit(':').next().unwrap();
    let status = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .args(QEMU_TCG)
        .args([
            "-netdev",
            &format!("user,id=n0,bootfile=http://10.0.2.2:{port}/menu.ipxe"),
        ])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={MAC}")])
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
    let args = [
        ("--plan", r.join("out/t")),
        ("--state", r.join("state")),
        ("--artifacts", r.join("art")),
        ("--secrets", r.join("secrets")),
        ("--operator-token-file", r.join("operator-token")),
    ];
    let args: Vec<String> = args
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.display().to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args, &r.join("serve.log"));

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
