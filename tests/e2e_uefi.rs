//! End to end with UEFI firmware: QEMU with OVMF (Debian `ovmf`) in a
//! network namespace, on a bridge served by the *rendered* dnsmasq config
//! (DHCP and TFTP) and `kiln serve`. The firmware asks DHCP as x64 UEFI
//! (architecture 7), loads the site's iPXE build over TFTP, iPXE chains to
//! the menu, the machine's script, a Debian kernel and a busybox initrd
//! (`tests/qemu/build-guest.sh`), and the guest reports `postinstall_done`:
//! the machine ends `installed`. The same over IPv6: DHCPv6 hands the
//! firmware a `tftp://[...]` URL and iPXE the menu's `http://[...]` URL.
//!
//! Each VM has two NICs, and the one it boots from is the second the
//! firmware enumerates (like a server whose storage NIC comes first), so
//! the menu must name the booting NIC, not `net0`. (Needs root for
//! `ip netns` and a tap device; CI runs as root.)

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:00:00:01"; // machine m1 of the tiny site
const STORAGE_MAC: &str = "52:54:00:aa:00:01"; // a NIC the plan does not know
const OPERATOR: &str = "uefi-operator-token-0123456789";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const IPXE_DIR: &str = "/usr/lib/ipxe";

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a bridge (10.0.2.2/24 and fd00:2::2/64, the
/// tiny site's boot server over IPv4 and IPv6) and two taps: `tap0` on the bridge, `tap1` on nothing. The
/// processes started in it are killed and it is removed when dropped.
struct Namespace {
    name: String,
    children: Vec<Child>,
}

impl Namespace {
    fn new(tag: &str) -> Namespace {
        let name = format!("kiln-{tag}-{}", std::process::id() % 100_000);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Namespace {
            name,
            children: Vec::new(),
        };
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "br0", "type", "bridge"],
            &["addr", "add", "10.0.2.2/24", "dev", "br0"],
            &["addr", "add", "fd00:2::2/64", "dev", "br0", "nodad"],
            &["link", "set", "br0", "up"],
            &["tuntap", "add", "tap0", "mode", "tap"],
            &["link", "set", "tap0", "master", "br0"],
            &["link", "set", "tap0", "up"],
            &["tuntap", "add", "tap1", "mode", "tap"],
            &["link", "set", "tap1", "up"],
        ] {
            let mut all = vec!["-n", ns.name.as_str()];
            all.extend_from_slice(args);
            run("ip", &all);
        }
        ns
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Starts `program args` in the namespace, its output to `log`.
    fn spawn(&mut self, program: &str, args: &[&str], log: &Path) {
        let file = std::fs::File::create(log).unwrap();
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        self.children.push(child);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // dnsmasq or QEMU children left behind.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The tiny site with its DHCP's TFTP root in the repository, `ipxe` (a
/// `spec.ipxe` block, or none for the default builds), iPXE builds from
/// Debian's `ipxe` package under the artifacts and the TFTP root, rendered.
fn site(ipxe: &str) -> (tempfile::TempDir, PathBuf) {
    site_with(ipxe, |site| site)
}

/// The tiny site made IPv6-only: its executor at fd00:2::2.
fn site6() -> (tempfile::TempDir, PathBuf) {
    site_with("", |site| {
        let (head, _) = site.split_once("  bootServer:").unwrap();
        format!(
            "{head}  bootServer: http://[fd00:2::2]:8080\n  networks:\n    - {{name: net, ipv6: {{cidr: \"fd00:2::/64\", dns: [\"fd00:2::3\"], pool: {{start: \"fd00:2::100\", end: \"fd00:2::200\"}}, dhcpRange: {{start: \"fd00:2::1000\", end: \"fd00:2::1fff\"}}}}}}\n"
        )
    })
}

fn site_with(ipxe: &str, edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let (kernel, initrd) = qemu_guest();
    let repo = tiny_site(&kernel, &initrd);
    let r = repo.path();
    let tftp = r.join("tftp");
    let site = edit(std::fs::read_to_string(r.join("sites/t/site.yaml")).unwrap());
    write(
        r,
        "sites/t/site.yaml",
        &format!("{site}{ipxe}  values:\n    dhcp: {{tftpRoot: {}}}\n", tftp.display()),
    );
    let render = kiln(r, &["render"]);
    assert_eq!(render.code, 0, "{}", render.stderr);
    for dir in [r.join("art/ipxe"), tftp.join("ipxe")] {
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["undionly.kpxe", "snponly.efi", "ipxe.efi"] {
            std::fs::copy(Path::new(IPXE_DIR).join(file), dir.join(file))
                .unwrap_or_else(|e| panic!("{IPXE_DIR}/{file} (Debian ipxe; .ci/deps installs it): {e}"));
        }
    }
    executor_files(r, &kernel, &initrd, "uefi-secret", OPERATOR);
    (repo, tftp)
}

/// What one boot showed.
struct Boot {
    console: String,
    dnsmasq: String,
    serve: String,
    machine: serde_json::Value,
    took: Duration,
}

/// How the firmware boots from the network.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Pxe,
    /// UEFI HTTP boot: OVMF's PXE turned off, so its HTTPv4 boot option
    /// comes first.
    Http,
    /// UEFI PXE over IPv6: OVMF's IPv4 PXE turned off, so its PXEv6 boot
    /// option comes first; dnsmasq also plays the network's router
    /// (`--enable-ra`), whose advertisements iPXE waits for.
    Pxe6,
}

/// Starts dnsmasq (the rendered config) and kiln serve in a namespace and
/// boots the two-NIC UEFI VM once.
fn boot(tag: &str, r: &Path, via: Via) -> Boot {
    let mut ns = Namespace::new(tag);
    let conf = r.join("out/t/dhcp/dnsmasq.conf");
    let mut dnsmasq = vec![
        format!("--conf-file={}", conf.display()),
        "--interface=br0".into(),
        "--bind-interfaces".into(),
        "--no-daemon".into(),
        format!("--dhcp-leasefile={}", r.join("dnsmasq.leases").display()),
        format!("--pid-file={}", r.join("dnsmasq.pid").display()),
    ];
    if via == Via::Pxe6 {
        dnsmasq.push("--enable-ra".into());
    }
    let dnsmasq: Vec<&str> = dnsmasq.iter().map(String::as_str).collect();
    ns.spawn("dnsmasq", &dnsmasq, &r.join("dnsmasq.log"));
    let p = |rel: &str| r.join(rel).display().to_string();
    let kiln_bin = env!("CARGO_BIN_EXE_kiln");
    ns.spawn(
        kiln_bin,
        &[
            "serve",
            "--plan",
            &p("out/t"),
            "--state",
            &p("state"),
            "--artifacts",
            &p("art"),
            "--secrets",
            &p("secrets"),
            "--operator-token-file",
            &p("operator-token"),
            // The operator API on loopback; boots on the provisioning network.
            "--listen",
            "127.0.0.1:8081",
            "--boot-listen",
            if via == Via::Pxe6 {
                "[fd00:2::2]:8080"
            } else {
                "10.0.2.2:8080"
            },
        ],
        &r.join("serve.log"),
    );
    let started = Instant::now();
    while !std::fs::read_to_string(r.join("serve.log"))
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "kiln serve did not start:\n{}",
            std::fs::read_to_string(r.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::copy(OVMF_VARS, r.join("vars.fd")).expect("OVMF (Debian ovmf; .ci/deps installs it)");
    let started = Instant::now();
    let console = r.join("console.log");
    let status = ns
        .command("timeout")
        .arg("400")
        .args(QEMU_TCG)
        .args(["-drive", &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}")])
        .args([
            "-drive",
            &format!("if=pflash,format=raw,file={}", r.join("vars.fd").display()),
        ])
        // The storage NIC comes first on the bus; the firmware boots from
        // the second. `romfile=`: the firmware's own virtio-net driver and
        // PXE, not the iPXE option ROM QEMU would load.
        .args(["-netdev", "tap,id=storage,ifname=tap1,script=no,downscript=no"])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=storage,mac={STORAGE_MAC},romfile=,addr=0x3"),
        ])
        .args(["-netdev", "tap,id=prov,ifname=tap0,script=no,downscript=no"])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=prov,mac={MAC},romfile=,addr=0x4,bootindex=1"),
        ])
        .args(match via {
            Via::Pxe => &[][..],
            Via::Pxe6 => &["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"],
            Via::Http => &[
                "-fw_cfg",
                "name=opt/org.tianocore/IPv4PXESupport,string=n",
                "-fw_cfg",
                "name=opt/org.tianocore/IPv6PXESupport,string=n",
            ],
        })
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("qemu-system-x86_64 (.ci/deps installs qemu-system-x86)");
    let took = started.elapsed();
    let console = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
    assert!(
        status.code() != Some(124),
        "the VM did not finish within 400 s:\n{console}"
    );
    let status = ns
        .command(kiln_bin)
        .args(["status", "--server", "http://127.0.0.1:8081", "--format", "json"])
        .args(["--operator-token-file", &p("operator-token")])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|_| panic!("kiln status: {}", String::from_utf8_lossy(&status.stderr)));
    let machine = list["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "m1")
        .cloned()
        .unwrap();
    drop(ns);
    Boot {
        console,
        dnsmasq: std::fs::read_to_string(r.join("dnsmasq.log")).unwrap_or_default(),
        serve: std::fs::read_to_string(r.join("serve.log")).unwrap_or_default(),
        machine,
        took,
    }
}

fn assert_installed(b: &Boot) {
    let tail: String = b
        .console
        .chars()
        .rev()
        .take(4000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        b.console.contains("KILN-GUEST: install script exit 0"),
        "the guest did not report; the end of its console:\n{tail}\nthe executor's log:\n{}",
        b.serve
    );
    assert_eq!(b.machine["state"], "installed", "{}", b.machine);
    for route in [
        "GET /menu.ipxe 200",
        "GET /boot/ipxe 200",
        "GET /install/{token}/{file} 200",
        "POST /v1/agents/facts 200",
    ] {
        assert!(
            b.serve.contains(route),
            "the executor never answered `{route}`:\n{}",
            b.serve
        );
    }
}

/// The firmware asked as x64 UEFI PXE and got `build` by TFTP.
fn assert_tftp(b: &Boot, build: &str) {
    assert!(b.dnsmasq.contains("efi-x64"), "{}", b.dnsmasq);
    assert!(
        b.dnsmasq.contains(&format!("bootfile-name  {build}")),
        "dnsmasq did not offer {build}:\n{}",
        b.dnsmasq
    );
    assert!(
        b.dnsmasq.contains(&format!("/tftp/{build}")),
        "dnsmasq did not send {build} over TFTP:\n{}",
        b.dnsmasq
    );
}

/// The default build for x64 UEFI is Debian's `snponly.efi`: it drives only
/// the NIC the firmware booted from.
#[test]
fn uefi_pxe_installs_a_machine_with_the_default_build() {
    let (repo, _tftp) = site("");
    let b = boot("uefi-snp", repo.path(), Via::Pxe);
    assert_installed(&b);
    assert_tftp(&b, "ipxe/snponly.efi");
    eprintln!("UEFI PXE (snponly.efi) install boot: {:.1} s", b.took.as_secs_f64());
}

/// With `ipxe.efi`, iPXE drives every NIC and `net0` is the storage NIC,
/// which the plan does not know: the menu must send the booting NIC's MAC
/// (`netX`), or the machine is taken for an unknown one and sent to its disk.
#[test]
fn uefi_pxe_with_ipxe_efi_names_the_booting_nic() {
    let (repo, _tftp) = site(&format!(
        "  ipxe:\n    x64: {{path: ipxe/ipxe.efi, sha256: {}}}\n",
        kiln_plan::sha256_hex(&std::fs::read(Path::new(IPXE_DIR).join("ipxe.efi")).unwrap())
    ));
    let b = boot("uefi-all", repo.path(), Via::Pxe);
    assert!(
        b.console.contains(&STORAGE_MAC.to_string()) || b.console.contains("net1"),
        "iPXE saw both NICs:\n{}",
        b.console
    );
    assert_installed(&b);
    assert_tftp(&b, "ipxe/ipxe.efi");
    assert!(!b.serve.contains("unknown machine"), "{}", b.serve);
    eprintln!(
        "UEFI PXE (ipxe.efi, two NICs) install boot: {:.1} s",
        b.took.as_secs_f64()
    );
}

/// UEFI HTTP boot (architecture 16, vendor class `HTTPClient`): the
/// firmware fetches the site's x64 build from the executor, which serves it
/// only because the plan lists it with its SHA-256, then the same chain.
#[test]
fn uefi_http_boot_installs_a_machine() {
    let (repo, _tftp) = site("");
    let b = boot("uefi-http", repo.path(), Via::Http);
    assert_installed(&b);
    assert!(b.dnsmasq.contains("efi-x64-http"), "{}", b.dnsmasq);
    assert!(
        b.dnsmasq
            .contains("bootfile-name  http://10.0.2.2:8080/artifacts/ipxe/snponly.efi"),
        "dnsmasq did not offer the HTTP boot URL:\n{}",
        b.dnsmasq
    );
    assert!(!b.dnsmasq.contains("/tftp/"), "nothing went over TFTP:\n{}", b.dnsmasq);
    eprintln!("UEFI HTTP boot install: {:.1} s", b.took.as_secs_f64());
}

/// UEFI PXE over IPv6 on an IPv6-only site: the firmware asks DHCPv6 as x64
/// UEFI (option 61 = 7) and gets `tftp://[fd00:2::2]/ipxe/snponly.efi` in
/// option 59, iPXE asks again with its user class and gets the menu URL
/// `http://[fd00:2::2]:8080/menu.ipxe`, and the rest goes over IPv6 to the
/// executor listening on `[fd00:2::2]:8080`: the machine ends `installed`.
#[test]
fn uefi_pxe_over_ipv6_installs_a_machine() {
    let (repo, _tftp) = site6();
    let b = boot("uefi-v6", repo.path(), Via::Pxe6);
    assert_installed(&b);
    for offered in [
        "bootfile-url  tftp://[fd00:2::2]/ipxe/snponly.efi",
        "bootfile-url  http://[fd00:2::2]:8080/menu.ipxe",
        "fd00:2::100",
    ] {
        assert!(
            b.dnsmasq.contains(offered),
            "dnsmasq did not offer {offered}:\n{}",
            b.dnsmasq
        );
    }
    assert!(b.dnsmasq.contains("/tftp/ipxe/snponly.efi"), "{}", b.dnsmasq);
    assert!(b.console.contains("ipv6 ok on"), "{}", b.console);
    eprintln!("UEFI PXE over IPv6 install boot: {:.1} s", b.took.as_secs_f64());
}
