//! The bare-metal site: every rendered file is accepted by the real
//! software that consumes it, IPAM is stable, DNS serials only move when a
//! zone changes, bad input is reported precisely, and no secret is written.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn lab() -> std::path::PathBuf {
    repo_root().join("out/lab")
}

/// Runs a checker; the test fails (not skips) when it is missing.
fn check(cmd: &str, args: &[&str], dir: &Path) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is needed for this test (.ci/deps installs it): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} rejected the file:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files_named(dir: &Path, suffix: &str) -> Vec<String> {
    let found: Vec<String> = tree(dir).into_keys().filter(|p| p.ends_with(suffix)).collect();
    assert!(!found.is_empty(), "no {suffix} under {}", dir.display());
    found
}

#[test]
fn dnsmasq_accepts_its_config() {
    check("dnsmasq", &["--test", "-C", "dhcp/dnsmasq.conf"], &lab());
}

/// kea-dhcp6 checks that the interface a DHCPv6 subnet names exists, so
/// its config is checked where it would run: a network namespace holding
/// the lab server's `ens3`.
#[test]
fn kea_accepts_its_configs() {
    check("kea-dhcp4", &["-t", "dhcp/kea-dhcp4.json"], &lab());
    let ns = format!("kiln-kea6-{}", std::process::id());
    check("ip", &["netns", "add", &ns], &lab());
    let checked = std::panic::catch_unwind(|| {
        check(
            "ip",
            &[
                "-n", &ns, "link", "add", "ens3", "type", "veth", "peer", "name", "ens3p",
            ],
            &lab(),
        );
        check(
            "ip",
            &["netns", "exec", &ns, "kea-dhcp6", "-t", "dhcp/kea-dhcp6.json"],
            &lab(),
        );
    });
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    checked.unwrap();
}

#[test]
fn isc_dhcpd_accepts_its_configs() {
    check("dhcpd", &["-t", "-4", "-cf", "dhcp/dhcpd.conf"], &lab());
    check("dhcpd", &["-t", "-6", "-cf", "dhcp/dhcpd6.conf"], &lab());
}

#[test]
fn every_zone_passes_named_checkzone() {
    for zone in files_named(&lab(), ".zone") {
        let name = zone.trim_start_matches("dns/").trim_end_matches(".zone");
        check("named-checkzone", &["-k", "fail", "-n", "fail", name, &zone], &lab());
    }
}

/// Every A and AAAA record has its PTR record, in an in-addr.arpa or
/// ip6.arpa zone, naming it back.
#[test]
fn every_address_record_has_its_ptr() {
    let zones = tree(&lab().join("dns"));
    let mut forward: BTreeMap<(String, &str), std::net::IpAddr> = BTreeMap::new();
    let mut ptr = BTreeMap::new();
    for (file, bytes) in &zones {
        let origin = file.trim_end_matches(".zone");
        for line in String::from_utf8_lossy(bytes).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() == 4 && (f[2] == "A" || f[2] == "AAAA") {
                let kind = if f[2] == "A" { "A" } else { "AAAA" };
                forward.insert((format!("{}.{origin}.", f[0]), kind), f[3].parse().unwrap());
            }
            if f.len() == 4 && f[2] == "PTR" {
                let full = format!("{}.{origin}", f[0]);
                let ip: std::net::IpAddr = if let Some(v4) = full.strip_suffix(".in-addr.arpa") {
                    v4.split('.').rev().collect::<Vec<_>>().join(".").parse().unwrap()
                } else {
                    let nibbles: String = full.strip_suffix(".ip6.arpa").unwrap().split('.').rev().collect();
                    assert_eq!(nibbles.len(), 32, "{full}");
                    let groups: Vec<&str> = (0..8).map(|i| &nibbles[i * 4..i * 4 + 4]).collect();
                    groups.join(":").parse().unwrap()
                };
                ptr.insert(ip, f[3].to_string());
            }
        }
    }
    let count = |kind| forward.keys().filter(|(_, k)| *k == kind).count();
    assert!(count("A") >= 10 && count("AAAA") >= 8, "{forward:?}");
    for ((name, kind), ip) in &forward {
        let back = ptr.get(ip).unwrap_or_else(|| panic!("no PTR for {ip} ({name})"));
        assert_eq!(
            forward.get(&(back.clone(), *kind)),
            Some(ip),
            "PTR of {ip} names {back}, whose {kind} record is not {ip}"
        );
    }
}

#[test]
fn every_kickstart_passes_ksvalidator_and_its_scripts_parse() {
    for ks in files_named(&lab(), "ks.cfg") {
        check("ksvalidator", &["-v", "RHEL9", &ks], &lab());
        let text = std::fs::read_to_string(lab().join(&ks)).unwrap();
        let mut script = String::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("%post") || line.starts_with("%pre") || line.starts_with("%onerror") {
                inside = true;
            } else if line.starts_with("%end") {
                inside = false;
            } else if inside {
                script.push_str(line);
                script.push('\n');
            }
        }
        assert!(script.contains("postinstall_done"), "{ks} does not report completion");
        let path = std::env::temp_dir().join(format!("kiln-post-{}.sh", std::process::id()));
        std::fs::write(&path, script).unwrap();
        check("bash", &["-n", path.to_str().unwrap()], &lab());
    }
}

#[test]
fn every_autounattend_is_well_formed_xml() {
    for xml in files_named(&lab(), "autounattend.xml") {
        check("xmllint", &["--noout", "--nonet", &xml], &lab());
    }
}

#[test]
fn ipxe_scripts_and_the_commissioning_script() {
    for script in files_named(&lab(), ".ipxe") {
        let text = std::fs::read_to_string(lab().join(&script)).unwrap();
        assert!(text.starts_with("#!ipxe\n"), "{script}");
    }
    for sh in files_named(&lab(), "commission.sh") {
        check("sh", &["-n", &sh], &lab());
    }
    let menu = std::fs::read_to_string(lab().join("boot/menu.ipxe")).unwrap();
    assert!(menu.contains("@@kiln:server@@/boot/ipxe?mac=${netX/mac:hexhyp}"));
}

#[test]
fn plan_lists_machines_and_their_workflows() {
    let plan: kiln_plan::Plan = serde_json::from_slice(&std::fs::read(lab().join("plan.json")).unwrap()).unwrap();
    assert!(plan.machines.len() >= 8);
    let node02 = plan.machines.iter().find(|m| m.name == "node-02").unwrap();
    let steps: Vec<&str> = node02.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["commission", "install"]);
    assert_eq!(node02.steps[0].boot_script, "boot/machines/node-02.commission.ipxe");
    for m in &plan.machines {
        for s in &m.steps {
            for f in s.install_file.iter().chain([&s.boot_script]) {
                assert!(plan.files.iter().any(|p| &p.path == f), "{f} is not in the plan");
            }
        }
    }
}

/// Renders and returns the lock's addresses of every machine interface, by
/// `"<mac> v4"` and `"<mac> v6"` (prov is dual-stack).
fn addresses(repo: &Path) -> BTreeMap<String, String> {
    let run = kiln(repo, &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lock = std::fs::read_to_string(repo.join("out/lab/ipam.lock.yaml")).unwrap();
    let doc = kiln_compiler::yaml::parse_documents(&lock).unwrap().remove(0).value;
    doc["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let ip = a["ip"].as_str().unwrap();
            let family = if ip.contains(':') { "v6" } else { "v4" };
            (format!("{} {family}", a["mac"].as_str().unwrap()), ip.to_string())
        })
        .collect()
}

const MACHINE: &str = "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata:\n  name: NAME\nspec:\n  blueprint: rhel9\n  interfaces:\n    - {mac: \"MAC\", network: prov}\n";

fn machine(name: &str, mac: &str) -> String {
    MACHINE.replace("NAME", name).replace("MAC", mac)
}

#[test]
fn ipam_is_stable_when_machines_come_and_go() {
    let repo = example_copy(true);
    let before = addresses(repo.path());

    // Add a machine in the middle of the name order: it takes the lowest
    // free address, nobody else moves.
    write(
        repo.path(),
        "sites/lab/machines/new.yaml",
        &machine("node-025", "52:54:00:99:00:01"),
    );
    let added = addresses(repo.path());
    for (mac, ip) in &before {
        assert_eq!(added.get(mac), Some(ip), "{mac} moved when a machine was added");
    }
    assert_eq!(added["52:54:00:99:00:01 v4"], "10.20.1.8");
    assert_eq!(added["52:54:00:99:00:01 v6"], "fd00:20::1:9");
    assert_eq!(added.len(), before.len() + 2);

    // Remove one: nobody else moves, its address is released.
    edit(
        repo.path(),
        "sites/lab/machines/windows.yaml",
        "  name: win-01",
        "  name: win-01-gone",
    );
    let text = std::fs::read_to_string(repo.path().join("sites/lab/machines/windows.yaml")).unwrap();
    let kept: Vec<&str> = text.split("---\n").filter(|d| !d.contains("win-01-gone")).collect();
    write(repo.path(), "sites/lab/machines/windows.yaml", &kept.join("---\n"));
    let removed = addresses(repo.path());
    assert!(!removed.contains_key("52:54:00:12:35:01 v4") && !removed.contains_key("52:54:00:12:35:01 v6"));
    for (mac, ip) in &added {
        if !mac.starts_with("52:54:00:12:35:01 ") {
            assert_eq!(removed.get(mac), Some(ip), "{mac} moved when a machine was removed");
        }
    }

    // Rename one: it keeps its address (allocations follow the interface),
    // and so does everybody else.
    edit(
        repo.path(),
        "sites/lab/machines/rack1.yaml",
        "name: node-03",
        "name: node-99",
    );
    let renamed = addresses(repo.path());
    assert_eq!(renamed, removed);

    // A fresh render from the lock alone reproduces every address.
    let lock = std::fs::read(repo.path().join("out/lab/ipam.lock.yaml")).unwrap();
    std::fs::remove_dir_all(repo.path().join("out")).unwrap();
    std::fs::create_dir_all(repo.path().join("out/lab")).unwrap();
    std::fs::write(repo.path().join("out/lab/ipam.lock.yaml"), lock).unwrap();
    assert_eq!(addresses(repo.path()), renamed);
}

fn serials(repo: &Path) -> BTreeMap<String, u64> {
    let lock = std::fs::read_to_string(repo.join("out/lab/ipam.lock.yaml")).unwrap();
    let doc = kiln_compiler::yaml::parse_documents(&lock).unwrap().remove(0).value;
    doc["zones"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["serial"].as_u64().unwrap()))
        .collect()
}

#[test]
fn soa_serials_move_only_when_a_zone_changes() {
    let repo = example_copy(true);
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let first = serials(repo.path());
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    assert_eq!(serials(repo.path()), first, "re-rendering changed a serial");
    write(
        repo.path(),
        "sites/lab/machines/new.yaml",
        &machine("extra", "52:54:00:99:00:02"),
    );
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let second = serials(repo.path());
    assert_eq!(second["lab.example.net"], first["lab.example.net"] + 1);
    assert_eq!(second["20.10.in-addr.arpa"], first["20.10.in-addr.arpa"] + 1);
    let v6 = "0.0.0.0.0.0.0.0.0.2.0.0.0.0.d.f.ip6.arpa";
    assert_eq!(second[v6], first[v6] + 1, "the IPv6 reverse zone got its PTR");
    assert_eq!(
        second["4.30.10.in-addr.arpa"], first["4.30.10.in-addr.arpa"],
        "an unchanged zone kept its serial"
    );
    // Taking the machine away again changes the zone back, but the serial
    // still goes up: secondaries only transfer a zone whose serial grew.
    std::fs::remove_file(repo.path().join("sites/lab/machines/new.yaml")).unwrap();
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    assert_eq!(serials(repo.path())["lab.example.net"], first["lab.example.net"] + 2);
}

const RACK1: &str = "sites/lab/machines/rack1.yaml";
const NEW: &str = "sites/lab/machines/new.yaml";

#[test]
fn duplicate_mac() {
    let err = render_fails(|r| write(r, NEW, &machine("zz-dup", "52:54:00:12:34:01")));
    assert!(
        err.contains(&format!(
            "{NEW}:8:13: duplicate MAC 52:54:00:12:34:01: also an interface of machine `node-01`"
        )),
        "{err}"
    );
    assert!(!err.contains("duplicate IP"), "one mistake, one error: {err}");
}

#[test]
fn duplicate_mac_in_another_spelling() {
    let err = render_fails(|r| write(r, NEW, &machine("zz-dup", "5254.0012.3401")));
    assert!(err.contains("duplicate MAC 52:54:00:12:34:01"), "{err}");
}

#[test]
fn duplicate_ip() {
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("zz-dup", "52:54:00:99:00:03").replace("network: prov}", "network: prov, ip: 10.20.1.10}"),
        )
    });
    assert!(
        err.contains(&format!(
            "{NEW}:8:53: duplicate IP 10.20.1.10: also assigned to machine `node-01`"
        )),
        "{err}"
    );
}

#[test]
fn duplicate_machine_name() {
    let err = render_fails(|r| write(r, NEW, &machine("node-01", "52:54:00:99:00:04")));
    assert!(
        err.contains(&format!(
            "{RACK1}:6:9: duplicate machine name `node-01`: also defined in {NEW}"
        )),
        "{err}"
    );
}

#[test]
fn ip_outside_its_network() {
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("out", "52:54:00:99:00:05").replace("network: prov}", "network: prov, ip: 10.99.0.5}"),
        )
    });
    assert!(
        err.contains(&format!(
            "{NEW}:8:53: IP 10.99.0.5 is outside network `prov` (10.20.0.0/16)"
        )),
        "{err}"
    );
}

#[test]
fn ip_inside_the_dhcp_range() {
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("dyn", "52:54:00:99:00:06").replace("network: prov}", "network: prov, ip: 10.20.0.150}"),
        )
    });
    assert!(
        err.contains("IP 10.20.0.150 is inside the dhcpRange 10.20.0.100-10.20.0.199"),
        "{err}"
    );
}

#[test]
fn overlapping_networks() {
    let err = render_fails(|r| edit(r, "sites/lab/site.yaml", "cidr: 10.30.4.0/22", "cidr: 10.20.128.0/22"));
    assert!(
        err.contains("sites/lab/site.yaml:29:13: network 10.20.128.0/22 overlaps network `prov` (10.20.0.0/16)"),
        "{err}"
    );
}

/// IPv6 mistakes get the same precise errors as IPv4 ones.
#[test]
fn ipv6_mistakes() {
    let site = "sites/lab/site.yaml";
    let err = render_fails(|r| {
        edit(
            r,
            site,
            "      vlan: 30\n",
            "      vlan: 30\n      ipv6: {cidr: \"fd00:20:0:0:8000::/65\", interface: ens4}\n",
        )
    });
    assert!(
        err.contains(&format!(
            "{site}:31:20: network fd00:20:0:0:8000::/65 overlaps network `prov` (fd00:20::/64)"
        )),
        "{err}"
    );
    let err = render_fails(|r| edit(r, site, "cidr: 10.30.4.0/22", "cidr: \"fd00:30::/64\""));
    assert!(
        err.contains(&format!(
            "{site}:29:13: fd00:30::/64 is an IPv6 network: put it under `ipv6: {{cidr: ...}}`"
        )),
        "{err}"
    );
    let err = render_fails(|r| edit(r, site, "        interface: ens3", "        # no interface"));
    assert!(
        err.contains("network `prov` is served by Kea over DHCPv6 directly") && err.contains("set `ipv6.interface`"),
        "{err}"
    );
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("six", "52:54:00:99:00:16").replace("network: prov}", "network: prov, ip6: 10.20.1.200}"),
        )
    });
    assert!(
        err.contains(&format!("{NEW}:8:54: 10.20.1.200 is an IPv4 address: write it as `ip`")),
        "{err}"
    );
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("six", "52:54:00:99:00:17").replace("network: prov}", "network: storage, ip6: \"fd00:20::5\"}"),
        )
    });
    assert!(
        err.contains("network `storage` has no IPv6 side: give it `ipv6: {cidr: ...}` in site.yaml, or drop `ip6`"),
        "{err}"
    );
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("six", "52:54:00:99:00:18").replace("network: prov}", "network: prov, ip6: \"fd00:20::150\"}"),
        )
    });
    assert!(
        err.contains("IP fd00:20::150 is inside the dhcpRange fd00:20::100-fd00:20::1ff of network `prov`"),
        "{err}"
    );
}

/// An IPv6 pool runs out as an IPv4 one does, at the pool, with counts.
#[test]
fn ipv6_pool_exhausted() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "end: \"fd00:20::1:ffff\"",
            "end: \"fd00:20::1:8\"",
        );
        write(r, NEW, &machine("node-99", "52:54:00:99:00:21"));
    });
    assert!(
        err.contains("sites/lab/site.yaml:26:15:")
            && err.contains(
                "pool fd00:20::1:1-fd00:20::1:8 of network `prov` is exhausted: 1 new addresses wanted, 0 free"
            ),
        "{err}"
    );
}

/// A relayed IPv6 network that Kea could never answer (it takes relayed
/// DHCPv6 only on a unicast address it listens on, and the lab names its
/// executor by an IPv4 address) is an error at the relay, not a silent
/// config.
#[test]
fn a_relayed_ipv6_network_kea_cannot_hear_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "  dhcp:\n",
            "    - name: far6\n      ipv6: {cidr: \"fd00:99::/64\", relay: {address: \"fd00:99::1\"}}\n  dhcp:\n",
        )
    });
    assert!(
        err.contains("sites/lab/site.yaml:33:43:")
            && err.contains("network `far6` is reached through a DHCPv6 relay, and Kea takes relayed requests only on a unicast address")
            && err.contains("values.dhcp.interfaces6"),
        "{err}"
    );
}

/// A fixed IPv6 address is kept, and the pool skips it.
#[test]
fn a_fixed_ipv6_address_is_kept() {
    let repo = example_copy(true);
    write(
        repo.path(),
        NEW,
        &machine("node-00", "52:54:00:99:00:19").replace("network: prov}", "network: prov, ip6: \"fd00:20::1:9\"}"),
    );
    let before = addresses(repo.path());
    assert_eq!(before["52:54:00:99:00:19 v6"], "fd00:20::1:9");
    write(
        repo.path(),
        "sites/lab/machines/new2.yaml",
        &machine("node-001", "52:54:00:99:00:20"),
    );
    let after = addresses(repo.path());
    assert_eq!(
        after["52:54:00:99:00:20 v6"], "fd00:20::1:a",
        "the pool went past the fixed address"
    );
    let hosts = std::fs::read_to_string(repo.path().join("out/lab/dhcp/dnsmasq.conf")).unwrap();
    assert!(
        hosts.contains("dhcp-host=52:54:00:99:00:19,10.20.1.8,[fd00:20::1:9],node-00,infinite"),
        "{hosts}"
    );
}

#[test]
fn pool_exhausted() {
    // Locked addresses use .1-.7 and .10 of a pool shrunk to .1-.12, which
    // leaves four free; five new machines want one each.
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "pool: {start: 10.20.1.1, end: 10.20.1.254}",
            "pool: {start: 10.20.1.1, end: 10.20.1.12}",
        );
        let docs: Vec<String> = (0..5)
            .map(|i| machine(&format!("new-{i}"), &format!("52:54:00:99:01:0{i}")))
            .collect();
        write(r, NEW, &docs.join("---\n"));
    });
    assert!(
        err.contains("sites/lab/site.yaml:16:13: pool 10.20.1.1-10.20.1.12 of network `prov` is exhausted: 5 new addresses wanted, 4 free"),
        "{err}"
    );
}

#[test]
fn unknown_network() {
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("lost", "52:54:00:99:00:07").replace("network: prov", "network: mgmt"),
        )
    });
    assert!(
        err.contains(&format!(
            "{NEW}:8:43: unknown network `mgmt`, expected one of prov, storage"
        )),
        "{err}"
    );
}

#[test]
fn unknown_blueprint() {
    let err = render_fails(|r| {
        write(
            r,
            NEW,
            &machine("bp", "52:54:00:99:00:08").replace("blueprint: rhel9", "blueprint: rhel10"),
        )
    });
    assert!(
        err.contains(&format!(
            "{NEW}:6:14: unknown blueprint `rhel10`, expected one of commission, discovery, rhel9, talos, windows2022"
        )),
        "{err}"
    );
}

#[test]
fn a_mac_that_is_not_one() {
    let err = render_fails(|r| write(r, NEW, &machine("bad", "52:54:00:zz:00:09")));
    assert!(
        err.contains(&format!("{NEW}:8:13: mac `52:54:00:zz:00:09` is not a MAC address")),
        "{err}"
    );
}

#[test]
fn no_secret_reaches_out() {
    // The secrets an executor would hold for this site: none may appear in
    // out/, and every password or key field is a placeholder.
    let repo = example_copy(false);
    let secrets = [
        "$6$rounds=4096$s3cr3tSALT$hash",
        "P@ssw0rd-admin!",
        "talos-bootstrap-token-abcdef",
    ];
    write(repo.path(), "secrets/rhel-root-password-hash", secrets[0]);
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    for (path, bytes) in tree(&repo.path().join("out/lab")) {
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!text.contains(s), "secret in out/{path}");
        }
        for element in ["<Password>", "<AdministratorPassword>"] {
            for part in text.split(element).skip(1) {
                let content = &part[..part.find("</").unwrap_or(part.len())];
                assert!(
                    content.contains("@@kiln:secret:"),
                    "out/lab/{path}: {element} holds no placeholder"
                );
            }
        }
        for line in text.lines() {
            let l = line.trim_start();
            let secret_field = l.starts_with("rootpw")
                || (path.ends_with("talos.yaml") && (l.starts_with("token:") || l.starts_with("key:")));
            if secret_field {
                assert!(line.contains("@@kiln:secret:"), "out/lab/{path}: {line}");
            }
        }
    }
}

/// `kiln boot-path MAC` says what a machine gets, for each firmware
/// architecture, and agrees with what was rendered: every file it names is
/// in the rendered dnsmasq config, the TFTP list or the plan.
#[test]
fn boot_path_says_what_a_machine_gets_and_agrees_with_the_render() {
    let repo = example_copy(true);
    let r = repo.path();
    let text = kiln(r, &["boot-path", "52:54:00:AA:34:01"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!("boot_path_node_01_eth1", text.stdout);
    let json = kiln(r, &["boot-path", "52-54-00-12-36-01", "--format", "json"]);
    let path: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(path["machine"], "talos-cp-01");
    let dnsmasq = std::fs::read_to_string(r.join("out/lab/dhcp/dnsmasq.conf")).unwrap();
    let tftp = std::fs::read_to_string(r.join("out/lab/boot/tftp.sha256")).unwrap();
    for answer in path["dhcp"].as_array().unwrap() {
        let Some(loads) = answer["loads"].as_str() else {
            continue;
        };
        assert!(dnsmasq.contains(&format!(",{loads}")), "dnsmasq.conf lacks {loads}");
        if answer["via"] == "tftp" {
            let line = format!("{}  {loads}", answer["sha256"].as_str().unwrap());
            assert!(tftp.contains(&line), "tftp.sha256 lacks {line}");
        }
    }
    // On the dual-stack prov network, the DHCPv6 answers too: each is an
    // option 59 URL of all three rendered configs.
    let kea6 = std::fs::read_to_string(r.join("out/lab/dhcp/kea-dhcp6.json")).unwrap();
    let isc6 = std::fs::read_to_string(r.join("out/lab/dhcp/dhcpd6.conf")).unwrap();
    let dhcp6 = path["dhcp6"].as_array().unwrap();
    assert!(dhcp6.len() >= 2, "{dhcp6:?}");
    for answer in dhcp6 {
        let url = answer["loads"].as_str().unwrap();
        assert!(
            dnsmasq.contains(&format!("option6:bootfile-url,{url}\n")),
            "dnsmasq.conf lacks {url}"
        );
        assert!(
            kea6.contains(&format!("\"data\": \"{url}\"")),
            "kea-dhcp6.json lacks {url}"
        );
        assert!(
            isc6.contains(&format!("option dhcp6.bootfile-url \"{url}\";")),
            "dhcpd6.conf lacks {url}"
        );
    }
    for step in path["steps"].as_array().unwrap() {
        for key in ["bootScript", "installFile"] {
            if let Some(file) = step[key].as_str() {
                assert!(r.join("out/lab").join(file).is_file(), "{file} is not rendered");
            }
        }
    }
    let unknown = kiln(r, &["boot-path", "52:54:00:99:99:99"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown
        .stderr
        .contains("no machine of any site has an interface with MAC 52:54:00:99:99:99"));
}
