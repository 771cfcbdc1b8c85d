//! The rendered DHCP configs served for real: dnsmasq, Kea and ISC dhcpd
//! each run in a network namespace with the config kiln rendered, and a
//! busybox `udhcpc` in a second namespace asks as each kind of client. Every
//! server must hand iPXE the menu URL, UEFI HTTP boot the HTTP URL of
//! ipxe.efi, UEFI PXE `ipxe.efi`, legacy BIOS `undionly.kpxe`, a known MAC
//! its reserved address and host name, and an unknown MAC a dynamic lease.
//! (Needs root for `ip netns`; CI runs as root.)

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Two network namespaces joined by a veth pair: the server side has
/// 198.18.0.2/24. Removed when dropped.
struct Net {
    server: String,
    client: String,
    server_if: String,
    client_if: String,
    /// For a routed network: the namespace of the relay between the two,
    /// and the relay.
    relay: Option<String>,
    relay_process: Option<Child>,
}

/// An address family, with the addresses of its routed topology.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The server's address, the relay's towards it and on the far network,
    /// the far network, and the server's next hop to it.
    fn addresses(self) -> [&'static str; 5] {
        match self {
            Family::V4 => [
                "198.18.1.2/24",
                "198.18.1.1/24",
                "10.9.0.1/24",
                "10.9.0.0/24",
                "198.18.1.1",
            ],
            Family::V6 => [
                "fd00:18:1::2/64",
                "fd00:18:1::1/64",
                "fd00:9::1/64",
                "fd00:9::/64",
                "fd00:18:1::1",
            ],
        }
    }
}

/// Duplicate address detection off for `dev` in `ns`, so its IPv6
/// addresses (link-local included) are usable at once.
fn no_dad(ns: &str, dev: &str) {
    let key = format!("net.ipv6.conf.{dev}.accept_dad=0");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-qw", &key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A number no other `Net` of this test process has, for its namespaces'
/// and interfaces' names (tests run in parallel).
fn unique_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (std::process::id() % 10_000) * 10 + n % 10
}

impl Net {
    fn new() -> Net {
        let id = unique_id();
        let net = Net {
            server: format!("kiln-dhcp-s{id}"),
            client: format!("kiln-dhcp-c{id}"),
            server_if: format!("kds{id}"),
            client_if: format!("kdc{id}"),
            relay: None,
            relay_process: None,
        };
        ip(&["netns", "add", &net.server]);
        ip(&["netns", "add", &net.client]);
        ip(&[
            "link",
            "add",
            &net.server_if,
            "type",
            "veth",
            "peer",
            "name",
            &net.client_if,
        ]);
        ip(&["link", "set", &net.server_if, "netns", &net.server]);
        ip(&["link", "set", &net.client_if, "netns", &net.client]);
        ip(&["-n", &net.server, "addr", "add", "198.18.0.2/24", "dev", &net.server_if]);
        for (ns, dev) in [
            (&net.server, &net.server_if),
            (&net.client, &net.client_if),
            (&net.server, &"lo".to_string()),
        ] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        net
    }

    /// A routed network: the client's namespace (10.9.0.0/24, nothing on
    /// it but the relay), a relay's namespace with 10.9.0.1 and
    /// 198.18.1.1, and the server's namespace with 198.18.1.2 and a route
    /// to 10.9.0.0/24 through the relay. The relay is dnsmasq relaying
    /// (`--dhcp-relay`), with 10.9.0.1 as the giaddr it forwards with. The
    /// same over IPv6 with `Family::V6`: fd00:9::/64 behind fd00:9::1, the
    /// server at fd00:18:1::2.
    fn routed(dir: &Path, addresses: Family) -> Net {
        let id = unique_id();
        let net = Net {
            server: format!("kiln-rly-s{id}"),
            client: format!("kiln-rly-c{id}"),
            server_if: format!("krs{id}"),
            client_if: format!("krc{id}"),
            relay: Some(format!("kiln-rly-r{id}")),
            relay_process: None,
        };
        let relay = net.relay.clone().unwrap();
        let (up, down) = (format!("kru{id}"), format!("krd{id}"));
        for ns in [&net.server, &net.client, &relay] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["link", "add", &net.server_if, "type", "veth", "peer", "name", &up]);
        ip(&["link", "add", &net.client_if, "type", "veth", "peer", "name", &down]);
        for (dev, ns) in [
            (&net.server_if, &net.server),
            (&up, &relay),
            (&down, &relay),
            (&net.client_if, &net.client),
        ] {
            ip(&["link", "set", dev, "netns", ns]);
            no_dad(ns, dev);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        let [server, relay_up, relay_down, far, via] = addresses.addresses();
        ip(&["-n", &net.server, "addr", "add", server, "dev", &net.server_if, "nodad"]);
        ip(&["-n", &net.server, "route", "add", far, "via", via]);
        ip(&["-n", &relay, "addr", "add", relay_up, "dev", &up, "nodad"]);
        ip(&["-n", &relay, "addr", "add", relay_down, "dev", &down, "nodad"]);
        let bare = |a: &str| a.split('/').next().unwrap().to_string();
        let log = dir.join("relay.log");
        let mut net = net;
        let relay_process = Command::new("ip")
            .args([
                "netns",
                "exec",
                &relay,
                "dnsmasq",
                "--no-daemon",
                "--port=0",
                "--log-dhcp",
            ])
            .arg(format!("--dhcp-relay={},{}", bare(relay_down), bare(server)))
            .arg(format!("--pid-file={}", dir.join("relay.pid").display()))
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
            .spawn()
            .unwrap();
        net.relay_process = Some(relay_process);
        net
    }

    /// An unknown client (the MAC set last) leases from the `dhcpRange`
    /// (.100 to .150) of the network starting with `prefix`.
    fn assert_dynamic_lease(&self, dir: &Path, name: &str, prefix: &str) {
        let lease = self.ask(dir, name, IPXE);
        let last: u32 = lease["ip"].rsplit('.').next().unwrap().parse().unwrap();
        assert!(
            lease["ip"].starts_with(prefix) && (100..=150).contains(&last),
            "{name}: an unknown MAC leases from dhcpRange: {lease:?}"
        );
    }

    /// Stops `server` and whatever else runs in the server's namespace
    /// (dnsmasq and dhcpd may leave children behind).
    fn stop_servers(&self, server: &mut Child) {
        let _ = server.kill();
        let _ = server.wait();
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.server]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    fn client_mac(&self, mac: &str) {
        ip(&["-n", &self.client, "link", "set", &self.client_if, "address", mac]);
    }

    /// Gives the server side fd00:18::2/64 too, with duplicate address
    /// detection off on both sides so addresses are usable at once.
    fn with_ipv6(self) -> Net {
        no_dad(&self.server, &self.server_if);
        no_dad(&self.client, &self.client_if);
        ip(&[
            "-n",
            &self.server,
            "addr",
            "add",
            "fd00:18::2/64",
            "dev",
            &self.server_if,
            "nodad",
        ]);
        self
    }

    /// One DHCPv6 exchange (ISC `dhclient -6`) as the machine with `mac`,
    /// sending these dhclient.conf lines; the lease's variables (`ip6`,
    /// `bootfile_url`). A machine keeps its DUID from one exchange to the
    /// next (its lease file), as its firmware does.
    fn ask6(&self, dir: &Path, name: &str, mac: &str, send: &str) -> BTreeMap<String, String> {
        // A new MAC means a new link-local address, and the server must not
        // know the old one's MAC from its neighbour table.
        ip(&["-n", &self.client, "link", "set", &self.client_if, "down"]);
        self.client_mac(mac);
        ip(&["-n", &self.client, "link", "set", &self.client_if, "up"]);
        ip(&["-n", &self.server, "neigh", "flush", "dev", &self.server_if]);
        let conf = dir.join("dhclient6.conf");
        std::fs::write(
            &conf,
            format!(
                "option dhcp6.kiln-user-class code 15 = string;
option dhcp6.kiln-arch code 61 = unsigned integer 16;
also request dhcp6.bootfile-url;
{send}
"
            ),
        )
        .unwrap();
        let env = dir.join("lease6.env");
        let _ = std::fs::remove_file(&env);
        let script = dir.join("dhclient6.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh
[ \"$reason\" = BOUND6 ] && env > {}\nexit 0\n",
                env.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pid = dir.join("dhclient6.pid");
        // A fresh lease file each time, so each exchange starts from a
        // Solicit; the machine's DUID comes from the first one's.
        let leases = dir.join("dhclient6.leases");
        let _ = std::fs::remove_file(&leases);
        let duid = dir.join(format!("dhclient6-{}.duid", mac.replace(':', "")));
        let known = duid.exists();
        let dhclient = |args: &[&str]| {
            let duid_args = if known {
                vec!["-df".as_ref(), duid.as_os_str()]
            } else {
                Vec::new()
            };
            Command::new("timeout")
                .args(["20", "ip", "netns", "exec", &self.client, "dhclient", "-6"])
                .args(args)
                .args(duid_args)
                .arg("-cf")
                .arg(&conf)
                .arg("-lf")
                .arg(&leases)
                .arg("-pf")
                .arg(&pid)
                .arg("-sf")
                .arg(&script)
                .arg(&self.client_if)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("dhclient (isc-dhcp-client) is needed")
        };
        dhclient(&["-1"]);
        // Stop the client it left running, keeping the lease it holds.
        dhclient(&["-x"]);
        if !known {
            let _ = std::fs::copy(&leases, &duid);
        }
        let Ok(text) = std::fs::read_to_string(&env) else {
            let log = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap_or_default();
            panic!(
                "{name}: no DHCPv6 lease for {mac} sending {send:?}; its output:\n{}{}",
                log("log"),
                log("err")
            );
        };
        text.lines()
            .filter_map(|l| l.split_once('='))
            .filter_map(|(k, v)| {
                let key = k
                    .strip_prefix("new_ip6_address")
                    .map(|_| "ip6")
                    .or(k.strip_prefix("new_dhcp6_bootfile_url").map(|_| "bootfile_url"))?;
                Some((key.to_string(), v.to_string()))
            })
            .collect()
    }

    /// Starts the server `name` (`command`) inside the server namespace,
    /// its output in `dir/name.log` and `.err`.
    ///
    /// What a site's Kea needs when systemd does not make it (docs/sites.md):
    /// the lease file's directory, and a directory for its PID file and its
    /// logger's lock file. All of it lives in the test's directory `dir`, so
    /// the test needs no /var/lib/kea or /run/kea, and two runs at once (or a
    /// PID file a killed Kea left behind) cannot stop each other's Kea.
    /// dhcpd gets the empty lease files it wants.
    fn serve(&self, dir: &Path, name: &str, command: &[String]) -> Child {
        let kea_dir = dir.join("kea");
        std::fs::create_dir_all(&kea_dir).unwrap();
        for leases in ["dhcpd.leases", "dhcpd6.leases"] {
            std::fs::write(dir.join(leases), "").unwrap();
        }
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server])
            .args(command)
            .env("KEA_PIDFILE_DIR", &kea_dir)
            .env("KEA_LOCKFILE_DIR", &kea_dir)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        child
    }

    /// One DHCP exchange as a client with these extra udhcpc options; the
    /// lease's variables (ip, boot_file, hostname, ...). Without a lease the
    /// test fails with what the server `name` logged (`dir/name.log`,
    /// `dir/name.err`), which is where a server says why it did not start.
    fn ask(&self, dir: &Path, name: &str, options: &[&str]) -> BTreeMap<String, String> {
        let lease = dir.join("lease.env");
        let _ = std::fs::remove_file(&lease);
        let script = dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n", lease.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("timeout")
            .args([
                "20",
                "ip",
                "netns",
                "exec",
                &self.client,
                "busybox",
                "udhcpc",
                "-i",
                &self.client_if,
            ])
            .args(["-n", "-q", "-t", "5", "-T", "1", "-s"])
            .arg(&script)
            .args(options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("busybox (busybox-static) is needed");
        if !status.success() {
            let log = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap_or_default();
            panic!(
                "{name}: no lease for {options:?}; its output:\n{}{}",
                log("log"),
                log("err")
            );
        }
        std::fs::read_to_string(&lease)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut relay) = self.relay_process.take() {
            let _ = relay.kill();
            let _ = relay.wait();
        }
        if let Some(relay) = &self.relay {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", relay]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").arg(pid).status();
                }
            }
        }
        for ns in [&self.server, &self.client].into_iter().chain(&self.relay) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

const IPXE: &[&str] = &["-x", "0x4d:69505845"]; // user class "iPXE"
const BIOS: &[&str] = &["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"];
const UEFI: &[&str] = &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"];
const UEFI_HTTP: &[&str] = &["-V", "HTTPClient:Arch:00016:UNDI:003016", "-x", "0x5d:0010"];
const IA32: &[&str] = &["-V", "PXEClient:Arch:00006:UNDI:003016", "-x", "0x5d:0006"];
const ARM64: &[&str] = &["-V", "PXEClient:Arch:00011:UNDI:003016", "-x", "0x5d:000b"];
const ARM64_HTTP: &[&str] = &["-V", "HTTPClient:Arch:00019:UNDI:003016", "-x", "0x5d:0013"];

/// The site's iPXE builds (its `spec.ipxe`): BIOS, x64 and ARM64, no IA32.
const BUILDS: &str = "  ipxe:\n    bios: {path: ipxe/undionly.kpxe, sha256: f09cfbe9bbd39c3f5eb9cdf7386b520a4f5858bbc4438960c5b870c7a8930a7f}\n    x64: {path: ipxe/snponly.efi, sha256: 18fc84b69172b9f7d1e6b5274c81121dde429fdacfdc984747f687cfb4f8090b}\n    arm64: {path: ipxe/arm64/snponly.efi, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n";

#[test]
fn every_dhcp_server_boots_every_kind_of_client() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    let tftp = r.join("tftp");
    std::fs::create_dir_all(&tftp).unwrap();
    write(
        r,
        "sites/d/site.yaml",
        &format!(
            "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata: {{name: d}}\nspec:\n  domain: d.example.net\n  bootServer: http://198.18.0.2:8080\n  networks:\n    - {{name: net, cidr: 198.18.0.0/24, gateway: 198.18.0.1, dns: [198.18.0.2], pool: {{start: 198.18.0.10, end: 198.18.0.50}}, dhcpRange: {{start: 198.18.0.100, end: 198.18.0.150}}}}\n  dhcp: {{servers: [dnsmasq, kea, isc]}}\n  installSources: [\"http://mirror.example.net/\"]\n{BUILDS}  values:\n    dhcp: {{tftpRoot: {}, keaLeaseFile: {}}}\n",
            tftp.display(),
            r.join("kea/kea-leases4.csv").display()
        ),
    );
    write(
        r,
        "sites/d/machines/m.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: known}\nspec:\n  blueprint: rhel9\n  interfaces: [{mac: \"52:54:00:00:00:01\", network: net}]\n",
    );
    copy_tree(&repo_root().join("blueprints"), &r.join("blueprints"), false);
    let run = kiln(r, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let net = Net::new();
    for (name, command) in servers(r, "d", &net, Family::V4) {
        let mut server = net.serve(r, name, &command);
        net.client_mac("52:54:00:00:00:01");
        // Each architecture gets its own build, or no boot file at all.
        let expect = [
            (IPXE, Some("http://198.18.0.2:8080/menu.ipxe")),
            (UEFI_HTTP, Some("http://198.18.0.2:8080/artifacts/ipxe/snponly.efi")),
            (UEFI, Some("ipxe/snponly.efi")),
            (BIOS, Some("ipxe/undionly.kpxe")),
            (ARM64, Some("ipxe/arm64/snponly.efi")),
            (
                ARM64_HTTP,
                Some("http://198.18.0.2:8080/artifacts/ipxe/arm64/snponly.efi"),
            ),
            (IA32, None),
        ];
        for (client, boot_file) in expect {
            let lease = net.ask(r, name, client);
            assert_eq!(
                lease.get("boot_file").map(String::as_str).filter(|f| !f.is_empty()),
                boot_file,
                "{name} for {client:?}: {lease:?}"
            );
            assert_eq!(
                lease["ip"], "198.18.0.10",
                "{name}: the known MAC gets its reserved address"
            );
            assert_eq!(
                lease.get("hostname").map(String::as_str),
                Some("known"),
                "{name}: and its host name"
            );
        }
        net.client_mac("52:54:00:99:99:99");
        net.assert_dynamic_lease(r, name, "198.18.0.");
        net.stop_servers(&mut server);
    }
}

/// The three servers' commands for one family, as each runs with its
/// rendered config.
fn servers(r: &Path, site: &str, net: &Net, family: Family) -> Vec<(&'static str, Vec<String>)> {
    let dhcp = r.join("out").join(site).join("dhcp");
    let path = |p: std::path::PathBuf| p.display().to_string();
    // dnsmasq serves both families from one config; Kea and dhcpd from one each.
    let (kea, isc, flag) = match family {
        Family::V4 => ("kea-dhcp4", "dhcpd", "-4"),
        Family::V6 => ("kea-dhcp6", "dhcpd6", "-6"),
    };
    vec![
        (
            "dnsmasq",
            vec![
                "dnsmasq".into(),
                format!("--conf-file={}", dhcp.join("dnsmasq.conf").display()),
                "--no-daemon".into(),
                format!("--dhcp-leasefile={}", r.join("dnsmasq.leases").display()),
            ],
        ),
        (
            "kea",
            vec![kea.into(), "-c".into(), path(dhcp.join(format!("{kea}.json")))],
        ),
        (
            "isc",
            vec![
                "dhcpd".into(),
                flag.into(),
                "-f".into(),
                "-cf".into(),
                path(dhcp.join(format!("{isc}.conf"))),
                "-lf".into(),
                path(r.join(format!("{isc}.leases"))),
                "-pf".into(),
                path(r.join(format!("{isc}.pid"))),
                net.server_if.clone(),
            ],
        ),
    ]
}

/// A routed site: the machines' network is reached through a DHCP relay.
/// Each server, run with its rendered config, serves a client on the far
/// subnet its reserved address and boot file through the relay, and an
/// unknown client a lease from that subnet's range.
#[test]
fn every_dhcp_server_serves_a_network_behind_a_relay() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(
        r,
        "sites/r/site.yaml",
        &format!(
            "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata: {{name: r}}\nspec:\n  domain: r.example.net\n  bootServer: http://198.18.1.2:8080\n  networks:\n    - {{name: local, cidr: 198.18.1.0/24}}\n    - {{name: far, cidr: 10.9.0.0/24, gateway: 10.9.0.1, relay: {{address: 10.9.0.1}}, dns: [198.18.1.2], pool: {{start: 10.9.0.10, end: 10.9.0.50}}, dhcpRange: {{start: 10.9.0.100, end: 10.9.0.150}}}}\n  dhcp: {{servers: [dnsmasq, kea, isc]}}\n  installSources: [\"http://mirror.example.net/\"]\n  values:\n    dhcp: {{tftpRoot: {}, keaLeaseFile: {}}}\n",
            r.join("tftp").display(),
            r.join("kea/kea-leases4.csv").display()
        ),
    );
    write(
        r,
        "sites/r/machines/m.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: far}\nspec:\n  blueprint: rhel9\n  interfaces: [{mac: \"52:54:00:00:09:01\", network: far}]\n",
    );
    copy_tree(&repo_root().join("blueprints"), &r.join("blueprints"), false);
    let run = kiln(r, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kea = std::fs::read_to_string(r.join("out/r/dhcp/kea-dhcp4.json")).unwrap();
    assert!(kea.contains("\"ip-addresses\": [\n            \"10.9.0.1\""), "{kea}");
    std::fs::create_dir_all(r.join("tftp")).unwrap();
    let net = Net::routed(r, Family::V4);
    for (name, command) in servers(r, "r", &net, Family::V4) {
        let mut server = net.serve(r, name, &command);
        net.client_mac("52:54:00:00:09:01");
        for (client, boot_file) in [(IPXE, "http://198.18.1.2:8080/menu.ipxe"), (BIOS, "ipxe/undionly.kpxe")] {
            let lease = net.ask(r, name, client);
            assert_eq!(
                lease["ip"], "10.9.0.10",
                "{name}: the reserved address through the relay: {lease:?}"
            );
            assert_eq!(
                lease.get("boot_file").map(String::as_str),
                Some(boot_file),
                "{name}: {lease:?}"
            );
            assert_eq!(
                lease.get("router").map(String::as_str),
                Some("10.9.0.1"),
                "{name}: {lease:?}"
            );
        }
        net.client_mac("52:54:00:99:09:99");
        net.assert_dynamic_lease(r, name, "10.9.0.");
        net.stop_servers(&mut server);
    }
}

/// An IPv6 network: each server, run with the config kiln rendered (dnsmasq
/// and ISC dhcpd's `dhcpd6.conf`, Kea's `kea-dhcp6.json`), answers a real
/// DHCPv6 client with the address the IPAM lock holds for the machine and
/// the boot URL of its kind (option 59): iPXE the menu, UEFI HTTP boot the
/// HTTP URL of its build, UEFI PXE a `tftp://[...]` URL, an architecture
/// without a build none; an unknown machine leases from `dhcpRange`.
#[test]
fn every_dhcp_server_serves_ipv6() {
    let repo = tempfile::tempdir().unwrap();
    let net = Net::new().with_ipv6();
    let networks = format!(
        "    - name: net\n      ipv6: {{cidr: \"fd00:18::/64\", interface: {}, dns: [\"fd00:18::2\"], pool: {{start: \"fd00:18::10\", end: \"fd00:18::50\"}}, dhcpRange: {{start: \"fd00:18::100\", end: \"fd00:18::150\"}}}}\n",
        net.server_if
    );
    let boot = "fd00:18::2";
    let (r, expect) = (repo.path(), ipv6_site(repo.path(), boot, &networks));
    serve_ipv6(r, &net, ("fd00:18::10", "fd00:18::100", "fd00:18::150"), &expect);
}

/// An IPv6 network behind a DHCPv6 relay (dnsmasq relaying from fd00:9::1
/// to fd00:18:1::2): each server picks the subnet by the relay's
/// link-address, and the far client gets its reserved address and boot
/// URLs through the relay. Kea receives relayed requests only on a unicast
/// address it is told to listen on: kiln renders `iface/fd00:18:1::2`.
#[test]
fn every_dhcp_server_serves_an_ipv6_network_behind_a_relay() {
    let repo = tempfile::tempdir().unwrap();
    let net = Net::routed(repo.path(), Family::V6);
    let networks = format!(
        "    - {{name: local, ipv6: {{cidr: \"fd00:18:1::/64\", interface: {}}}}}\n    - name: far\n      ipv6: {{cidr: \"fd00:9::/64\", relay: {{address: \"fd00:9::1\"}}, dns: [\"fd00:18:1::2\"], pool: {{start: \"fd00:9::10\", end: \"fd00:9::50\"}}, dhcpRange: {{start: \"fd00:9::100\", end: \"fd00:9::150\"}}}}\n",
        net.server_if
    );
    let (r, expect) = (repo.path(), ipv6_site(repo.path(), "fd00:18:1::2", &networks));
    let kea = std::fs::read_to_string(r.join("out/six/dhcp/kea-dhcp6.json")).unwrap();
    assert!(kea.contains(&format!("\"{}/fd00:18:1::2\"", net.server_if)), "{kea}");
    serve_ipv6(r, &net, ("fd00:9::10", "fd00:9::100", "fd00:9::150"), &expect);
}

/// Renders an IPv6 site `six` with these networks, its executor at `boot`,
/// and one machine on the last network: the URLs each kind of client is to
/// get (a dhclient.conf line and the option 59 URL).
fn ipv6_site(r: &Path, boot: &str, networks: &str) -> Vec<(&'static str, Option<String>)> {
    write(
        r,
        "sites/six/site.yaml",
        &format!(
            "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata: {{name: six}}\nspec:\n  domain: six.example.net\n  bootServer: http://[{boot}]:8080\n  networks:\n{networks}  dhcp: {{servers: [dnsmasq, kea, isc]}}\n  installSources: [\"http://mirror.example.net/\"]\n  values:\n    dhcp: {{tftpRoot: {}, keaLeaseFile6: {}, keaDataDirectory: {}}}\n",
            r.join("tftp").display(),
            r.join("kea/kea-leases6.csv").display(),
            r.join("kea").display(),
        ),
    );
    let last = networks
        .rsplit("name: ")
        .next()
        .unwrap()
        .split([',', '\n'])
        .next()
        .unwrap();
    write(
        r,
        "sites/six/machines/m.yaml",
        &format!("apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {{name: known}}\nspec:\n  blueprint: rhel9\n  interfaces: [{{mac: \"{KNOWN6}\", network: {last}}}]\n"),
    );
    copy_tree(&repo_root().join("blueprints"), &r.join("blueprints"), false);
    let run = kiln(r, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::create_dir_all(r.join("tftp")).unwrap();
    vec![
        (IPXE6, Some(format!("http://[{boot}]:8080/menu.ipxe"))),
        (
            "send dhcp6.kiln-arch 16;",
            Some(format!("http://[{boot}]:8080/artifacts/ipxe/snponly.efi")),
        ),
        (
            "send dhcp6.kiln-arch 7;",
            Some(format!("tftp://[{boot}]/ipxe/snponly.efi")),
        ),
        ("send dhcp6.kiln-arch 11;", None),
    ]
}

const KNOWN6: &str = "52:54:00:00:06:01";
const IPXE6: &str = "send dhcp6.kiln-user-class 00:04:69:50:58:45;";

/// Runs each server with the rendered `six` site's IPv6 config: the known
/// machine gets `reserved` and each expected URL, an unknown one a lease
/// from `range`.
fn serve_ipv6(r: &Path, net: &Net, (reserved, first, last): (&str, &str, &str), expect: &[(&str, Option<String>)]) {
    let lock = std::fs::read_to_string(r.join("out/six/ipam.lock.yaml")).unwrap();
    assert!(lock.contains(&format!("ip: {reserved}\n")), "{lock}");
    let range: std::ops::RangeInclusive<std::net::Ipv6Addr> = first.parse().unwrap()..=last.parse().unwrap();
    for (name, command) in servers(r, "six", net, Family::V6) {
        let mut server = net.serve(r, name, &command);
        for (send, url) in expect {
            let lease = net.ask6(r, name, KNOWN6, send);
            assert_eq!(
                lease.get("ip6").map(String::as_str),
                Some(reserved),
                "{name} {send}: the address the lock holds: {lease:?}"
            );
            assert_eq!(lease.get("bootfile_url"), url.as_ref(), "{name} {send}: {lease:?}");
        }
        let lease = net.ask6(r, name, "52:54:00:99:06:99", IPXE6);
        let dynamic = lease.get("ip6").and_then(|a| a.parse::<std::net::Ipv6Addr>().ok());
        assert!(
            dynamic.is_some_and(|a| range.contains(&a)),
            "{name}: an unknown MAC leases from dhcpRange: {lease:?}"
        );
        net.stop_servers(&mut server);
        for f in std::fs::read_dir(r).unwrap().flatten() {
            if f.file_name().to_string_lossy().ends_with(".duid") {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
    }
}
