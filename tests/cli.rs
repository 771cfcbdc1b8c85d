//! What a first-time user meets on the command line: `kiln new site` makes a
//! site machines can be added to, command-line mistakes are not given a
//! made-up line and column, a closed pipe ends a command quietly, and
//! counts agree with their nouns. Commands run in-process through
//! `kiln::cli::run` where that is enough.

mod common;
use common::*;

use std::process::{Command, Stdio};

/// Runs `kiln ARGS` in-process; returns (code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    run_on(args, false)
}

/// Runs `kiln ARGS` in-process as if stdout were (or were not) a terminal.
fn run_on(args: &[&str], terminal: bool) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = kiln::cli::Io {
        stdout: &mut out,
        stderr: &mut err,
        stdout_is_terminal: terminal,
    };
    let code = kiln::cli::run(std::iter::once("kiln").chain(args.iter().copied()), io);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn a_new_site_with_a_network_takes_machines_that_render() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    let r = repo.to_str().unwrap();
    assert_eq!(run(&["init", r]).0, 0);
    let (code, _, err) = run(&[
        "-C",
        r,
        "new",
        "site",
        "rack",
        "--domain",
        "rack.example.net",
        "--boot-server",
        "http://10.40.0.2:8080",
        "--network",
        "prov=10.40.0.0/24",
        "--network",
        "bmc=10.41.0.0/24,pool=10.41.0.20-10.41.0.60,dhcp=10.41.0.100-10.41.0.150",
        "--install-source",
        "http://mirror.example.net/",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "-C",
        r,
        "new",
        "machine",
        "n1",
        "--site",
        "rack",
        "--blueprint",
        "rhel9",
        "--mac",
        "52:54:00:40:00:01",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["-C", r, "render", "rack"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.lines().next().unwrap_or_default().split(" in ").next(),
        Some("rendered 1 output")
    );
    let plan: kiln_plan::Plan =
        serde_json::from_slice(&std::fs::read(repo.join("out/rack/plan.json")).unwrap()).unwrap();
    let ip: std::net::Ipv4Addr = plan.machines[0].ip.parse().unwrap();
    assert!(
        (10..=127).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 40, 0],
        "{ip} is not from the derived pool"
    );
    let dnsmasq = std::fs::read_to_string(repo.join("out/rack/dhcp/dnsmasq.conf")).unwrap();
    assert!(dnsmasq.contains("10.41.0.100,10.41.0.150"), "{dnsmasq}");
}

#[test]
fn command_line_mistakes_name_the_argument_not_a_line() {
    let repo = example_copy(false);
    let r = repo.path().to_str().unwrap();
    for (args, expected) in [
        (
            vec!["render", "--set", "novalue"],
            "error: --set novalue: expected KEY=VALUE",
        ),
        (
            vec!["render", "nope"],
            "error: command line: no site or cluster is named `nope`",
        ),
        (vec!["schema", "Nope"], "error: kiln schema: unknown kind `Nope`"),
        (
            vec!["new", "site", "x", "--network", "prov"],
            "error: --network prov: expected NAME=CIDR",
        ),
        (
            vec!["new", "site", "x", "--network", "prov=10.0.0.1/24"],
            "did you mean 10.0.0.0/24?",
        ),
    ] {
        let mut all = vec!["-C", r];
        all.extend(&args);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains(":1:1:"), "{args:?} pretends to have a line: {err}");
        assert!(err.ends_with("1 error; nothing was written\n"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    // The reading end is closed before kiln writes a byte, as with
    // `kiln schema | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("schema")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

/// Progress events and terminal detection go through what the caller
/// passes in, so commands can be tested in-process.
#[test]
fn progress_and_terminal_detection_are_injected() {
    let repo = example_copy(true);
    let r = repo.path().to_str().unwrap();
    let (code, _, err) = run(&["-C", r, "--progress", "json", "validate"]);
    assert_eq!(code, 0, "{err}");
    let steps: Vec<serde_json::Value> = err.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        steps.iter().any(|s| s["step"] == "render" && s["status"] == "ok"),
        "{err}"
    );

    for args in [
        ["init", "-q", "-b", "main"].as_slice(),
        &["add", "-A"],
        &["commit", "-qm", "x"],
    ] {
        git(repo.path(), args);
    }
    edit(
        repo.path(),
        "sites/eu/clusters/prod-aws.yaml",
        "replicas: 3",
        "replicas: 4",
    );
    let (_, plain, _) = run_on(&["-C", r, "diff"], false);
    let (_, coloured, _) = run_on(&["-C", r, "diff"], true);
    assert!(!plain.contains('\u{1b}') && plain.contains("replicas"), "{plain}");
    assert!(coloured.contains("\u{1b}["), "{coloured}");
}
