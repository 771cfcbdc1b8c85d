//! Code review: `kiln diff` between real git revisions (commits, branches,
//! a dirty working tree) in every format, `kiln explain` at every layer,
//! `--progress json`, completions and the man page.

mod common;
use common::*;

use std::path::Path;

/// A git repository holding the example with its rendered out/, committed
/// on `main`.
fn repository() -> tempfile::TempDir {
    let repo = example_copy(true);
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "example"]);
    repo
}

fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

const FORMATS: [&str; 4] = ["unified", "markdown", "json", "stat"];

/// Runs `kiln diff` in every format, snapshots each, checks the JSON
/// against docs/diff.schema.json and returns the unified form.
fn diff_all_formats(dir: &Path, case: &str, extra: &[&str]) -> String {
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("docs/diff.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut unified = String::new();
    for format in FORMATS {
        let mut args = vec!["diff", "--format", format];
        args.extend_from_slice(extra);
        let run = kiln(dir, &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path().as_str()))
                .collect();
            assert!(
                errors.is_empty(),
                "diff JSON does not match docs/diff.schema.json: {errors:?}"
            );
        }
        if format == "unified" {
            unified = run.stdout.clone();
        }
        insta::assert_snapshot!(format!("{case}-{format}"), run.stdout);
    }
    unified
}

#[test]
fn a_value_change_in_a_cluster() {
    let repo = repository();
    edit(
        repo.path(),
        "sites/us/clusters/web-azure.yaml",
        "  workers:\n    replicas: 3",
        "  workers:\n    replicas: 5",
    );
    let out = diff_all_formats(repo.path(), "value-change", &[]);
    assert!(out.contains("MachineDeployment/web-azure-workers"), "{out}");
    assert!(out.contains("spec.replicas: 3 → 5"), "{out}");
    assert!(!out.contains("prod-aws"), "other outputs are untouched: {out}");
}

#[test]
fn a_machine_added_on_a_branch() {
    let repo = repository();
    git(repo.path(), &["checkout", "-q", "-b", "feature"]);
    write(
        repo.path(),
        "sites/lab/machines/new.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata:\n  name: node-04\nspec:\n  blueprint: rhel9\n  interfaces:\n    - {mac: \"52:54:00:12:34:04\", network: prov}\n",
    );
    commit(repo.path(), "add node-04");
    let out = diff_all_formats(repo.path(), "machine-added", &["--base", "main", "--head", "feature"]);
    for expected in [
        "-- boot/machines/node-04.ipxe (added)",
        "-- install/node-04/ks.cfg (added)",
        "-- ipam.lock.yaml (modified)",
        "-- dhcp/dnsmasq.conf (modified)",
        "+dhcp-host=52:54:00:12:34:04,10.20.1.8,[fd00:20::1:9],node-04,infinite",
        "-- dns/lab.example.net.zone (modified)",
        "+node-04\tIN\tA\t10.20.1.8",
        "+node-04\tIN\tAAAA\tfd00:20::1:9",
        "-- dhcp/kea-dhcp6.json (modified)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn a_recipe_removed_in_a_commit() {
    let repo = repository();
    edit(
        repo.path(),
        "sites/eu/clusters/prod-aws.yaml",
        "    - observability\n",
        "",
    );
    commit(repo.path(), "drop observability");
    let out = diff_all_formats(repo.path(), "recipe-removed", &["--base", "HEAD~1", "--head", "HEAD"]);
    assert!(out.contains("-- recipes/observability.yaml (removed)"), "{out}");
    assert!(out.contains("Kustomization/prod-aws-observability (removed)"), "{out}");
}

#[test]
fn a_whitespace_only_template_change_is_no_diff() {
    let repo = repository();
    let t = "clusters/templates/namespace.yaml.j2";
    edit(repo.path(), t, "{{ cluster.namespace }}", "{{cluster.namespace}}");
    let run = kiln(repo.path(), &["diff", "--exit-code"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("no differences in rendered output"),
        "{}",
        run.stdout
    );
}

#[test]
fn reordering_keys_in_an_input_is_no_diff() {
    let repo = repository();
    let f = "sites/us/clusters/web-azure.yaml";
    let text = std::fs::read_to_string(repo.path().join(f)).unwrap();
    // Move `region:` after `recipes:`: the same document, keys reordered.
    let region: String = text.lines().find(|l| l.starts_with("  region:")).unwrap().to_string();
    let reordered =
        text.replacen(&format!("{region}\n"), "", 1)
            .replacen("  values:", &format!("{region}\n  values:"), 1);
    assert_ne!(reordered, text);
    write(repo.path(), f, &reordered);
    let run = kiln(repo.path(), &["diff", "--exit-code"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn exit_code_reports_differences() {
    let repo = repository();
    edit(
        repo.path(),
        "sites/us/clusters/web-azure.yaml",
        "region: eastus",
        "region: westus2",
    );
    assert_eq!(kiln(repo.path(), &["diff", "--exit-code", "--format", "stat"]).code, 1);
    assert_eq!(kiln(repo.path(), &["diff", "--format", "stat"]).code, 0);
}

#[test]
fn a_broken_base_revision_is_an_input_error() {
    let repo = repository();
    edit(
        repo.path(),
        "sites/eu/clusters/prod-aws.yaml",
        "provider: aws",
        "provider: ovh",
    );
    commit(repo.path(), "broken");
    let run = kiln(repo.path(), &["diff", "--base", "HEAD", "--head", "HEAD~1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown provider `ovh`") && run.stderr.contains("(in HEAD)"),
        "{}",
        run.stderr
    );
}

/// `kiln explain --format json` for one key.
fn explain(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    let run = kiln(dir, &all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// (layer, file:line:column, wins) of each contribution to the first key.
fn steps(e: &serde_json::Value) -> Vec<(String, String, bool)> {
    e["keys"][0]["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["layer"].as_str().unwrap().to_string(),
                format!("{}:{}:{}", s["file"].as_str().unwrap(), s["line"], s["column"]),
                s["wins"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn explain_shows_every_layer_and_the_winner() {
    let repo = example_copy(true);
    let dir = repo.path();
    let file = "addons/cilium/helmrelease.yaml";
    // Built-in only.
    let e = explain(dir, &["prod-aws", file, "--key", "cilium.version"]);
    assert_eq!(steps(&e), [("built-in".into(), "<built-in values>:3:12".into(), true)]);
    // Site, cluster, -f and --set on top.
    edit(
        dir,
        "sites/eu/site.yaml",
        "values: {}",
        "values: {cilium: {version: \"1.17.1\"}}",
    );
    edit(
        dir,
        "sites/eu/clusters/prod-aws.yaml",
        "  values:\n",
        "  values:\n    cilium:\n      version: \"1.17.2\"\n",
    );
    write(dir, "extra.yaml", "cilium:\n  version: \"1.17.3\"\n");
    let extra = dir.join("extra.yaml");
    let e = explain(
        dir,
        &[
            "prod-aws",
            file,
            "--key",
            "cilium.version",
            "-f",
            extra.to_str().unwrap(),
            "--set",
            "cilium.version=1.17.4",
        ],
    );
    let layers: Vec<(String, bool)> = steps(&e).into_iter().map(|(l, _, w)| (l, w)).collect();
    assert_eq!(
        layers,
        [
            ("built-in".into(), false),
            ("site".into(), false),
            ("cluster".into(), false),
            ("values file".into(), false),
            ("--set".into(), true)
        ]
    );
    assert_eq!(e["keys"][0]["value"], "1.17.4");
    let cluster_step = &steps(&e)[2].1;
    assert!(
        cluster_step.starts_with("sites/eu/clusters/prod-aws.yaml:"),
        "{cluster_step}"
    );
    // The provider layer.
    let e = explain(dir, &["prod-aws", "cluster/cluster-prod-aws.yaml", "--key", "podCIDR"]);
    assert_eq!(steps(&e)[0].0, "provider");
    assert!(steps(&e)[0].1.starts_with("clusters/aws/values.example.yaml:"));
}

#[test]
fn explain_a_null_deletion_and_machine_layers() {
    let repo = example_copy(true);
    let dir = repo.path();
    // The site sets a value, one machine removes it with null.
    edit(
        dir,
        "sites/lab/site.yaml",
        "  values:\n",
        "  values:\n    inventory: {owner: infra}\n",
    );
    edit(
        dir,
        "sites/lab/machines/windows.yaml",
        "      organization: \"Lab & Co <IT>\"",
        "      organization: \"Lab & Co <IT>\"\n    inventory: {owner: null}",
    );
    let e = explain(
        dir,
        &["lab", "install/win-01/autounattend.xml", "--key", "inventory.owner"],
    );
    let s = steps(&e);
    assert_eq!(s.first().unwrap().0, "site");
    assert_eq!(s.last().unwrap().0, "machine");
    assert!(s.last().unwrap().2, "the removal wins");
    assert!(e["keys"][0]["contributions"].as_array().unwrap().last().unwrap()["value"].is_null());
    assert!(e["keys"][0].get("value").is_none(), "the merged value is gone");
    // The text form says so too.
    let run = kiln(
        dir,
        &[
            "explain",
            "lab",
            "install/win-01/autounattend.xml",
            "--key",
            "inventory.owner",
        ],
    );
    assert!(
        run.stdout.contains("null (removes it)") && run.stdout.contains("(removed)"),
        "{}",
        run.stdout
    );
    // A key given as a path in the rendered file is traced to its value.
    let e = explain(
        dir,
        &[
            "prod-aws",
            "addons/cilium/helmrelease.yaml",
            "--key",
            "spec.chart.spec.version",
        ],
    );
    assert_eq!(e["keys"][0]["key"], "cilium.version");
    // A file that is not rendered is an input error.
    assert_eq!(kiln(dir, &["explain", "prod-aws", "nope.yaml"]).code, 2);
}

#[test]
fn progress_json_reports_each_step() {
    let repo = example_copy(false);
    let run = kiln(repo.path(), &["--progress", "json", "render"]);
    assert_eq!(run.code, 0);
    let events: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for step in ["load", "resolve", "render", "write"] {
        assert!(
            events.iter().any(|e| e["step"] == step && e["status"] == "ok"),
            "no ok event for {step}: {events:?}"
        );
    }
    assert!(events.iter().all(|e| e["elapsed_ms"].is_u64()));
    assert!(events.iter().any(|e| e["step"] == "render" && e["output"] == "lab"));
    let run = kiln(repo.path(), &["--progress", "json", "validate"]);
    assert!(run.stderr.contains("\"step\":\"load\""));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let run = kiln(&repo_root(), &["completions", shell]);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout.contains("render") && run.stdout.contains("explain"),
            "{shell}"
        );
    }
    let run = kiln(&repo_root(), &["man"]);
    assert!(
        run.stdout.contains(".TH kiln") && run.stdout.contains("render"),
        "{}",
        &run.stdout[..200.min(run.stdout.len())]
    );
}

#[test]
fn pre_commit_hooks_run_real_commands() {
    let text = std::fs::read_to_string(repo_root().join(".pre-commit-hooks.yaml")).unwrap();
    let hooks = kiln_compiler::yaml::parse_documents(&text).unwrap().remove(0).value;
    let ids: Vec<&str> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["kiln-render-check", "kiln-validate"]);
    for hook in hooks.as_array().unwrap() {
        let entry = hook["entry"].as_str().unwrap();
        let args: Vec<&str> = entry.split_whitespace().skip(1).collect();
        let run = kiln(&repo_root(), &args);
        assert_eq!(run.code, 0, "{entry}: {}", run.stderr);
    }
}

#[test]
fn ci_docs_hold_valid_yaml_and_real_kiln_commands() {
    use clap::Parser;
    let text = std::fs::read_to_string(repo_root().join("docs/ci.md")).unwrap();
    let blocks: Vec<&str> = text
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 3, "GitHub, GitLab and pre-commit examples");
    let mut commands = 0;
    for block in &blocks {
        kiln_compiler::yaml::parse_documents(block)
            .unwrap_or_else(|e| panic!("invalid YAML at {:?}: {}\n{block}", e.pos, e.message));
        for line in block.lines() {
            let Some(start) = line
                .find("kiln ")
                .filter(|i| line[..*i].trim_end().ends_with(['-', ':']) || line[..*i].trim().is_empty())
            else {
                continue;
            };
            let mut command = line[start..].split(" >").next().unwrap().to_string();
            // A CI expression such as ${{ github.base_ref }} is one word once expanded.
            while let (Some(a), Some(b)) = (command.find("${{"), command.find("}}")) {
                command.replace_range(a..b + 2, "EXPR");
            }
            let words: Vec<String> = command
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_string())
                .collect();
            if let Err(e) = kiln::cli::Cli::try_parse_from(&words) {
                panic!("docs/ci.md runs `{command}`, which kiln does not accept: {e}");
            }
            commands += 1;
        }
    }
    assert!(commands >= 6, "only {commands} kiln commands found");
}

/// The paths whose bytes differ between two rendered trees (`plan.json`
/// aside: the diff compares it as data; and kiln's own `.kiln.lock`), as
/// `<output>/<path>`.
fn differing(a: &Path, b: &Path) -> std::collections::BTreeSet<String> {
    let (ta, tb) = (tree(a), tree(b));
    ta.keys()
        .chain(tb.keys())
        .filter(|p| !p.starts_with('.') && !p.ends_with("/plan.json") && ta.get(*p) != tb.get(*p))
        .cloned()
        .collect()
}

/// The files `kiln diff --format json` reports, as `<output>/<path>`.
fn reported(dir: &Path, extra: &[&str]) -> std::collections::BTreeSet<String> {
    let mut args = vec!["diff", "--format", "json"];
    args.extend_from_slice(extra);
    let run = kiln(dir, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mut found = std::collections::BTreeSet::new();
    for output in doc["outputs"].as_array().unwrap() {
        for file in output["files"].as_array().unwrap() {
            let path = file["path"].as_str().unwrap();
            if path != "plan.json" {
                found.insert(format!("{}/{path}", output["name"].as_str().unwrap()));
            }
        }
    }
    found
}

/// `kiln diff` renders only the outputs whose inputs changed and takes the
/// base from the committed `out/` when its plan vouches for it: so for
/// every kind of input a change can touch, what it reports must be exactly
/// what two full renders differ by.
#[test]
fn the_diff_is_what_two_full_renders_differ_by() {
    let repo = repository();
    let r = repo.path();
    assert_eq!(kiln(r, &["render", "--check"]).code, 0, "the committed out/ is fresh");
    let cases = [
        ("sites/lab/machines/rack1.yaml", "ip: 10.20.1.10}", "ip: 10.20.1.11}"),
        (
            "blueprints/rhel9/templates/ks.cfg.j2",
            "--service=ssh",
            "--service=ssh,http",
        ),
        (
            "sites/lab/site.yaml",
            "shareUser: kiln-install",
            "shareUser: kiln-setup",
        ),
        ("sites/us/clusters/web-azure.yaml", "replicas: 3", "replicas: 5"),
        (
            "clusters/aws/awscluster.yaml.j2",
            "sshKeyName: \"\"",
            "sshKeyName: \"ops\"",
        ),
        (
            "recipes/base/recipe.yaml",
            "kubeletMounts: [/var/lib/longhorn]",
            "kubeletMounts: [/var/lib/longhorn, /var/lib/extra]",
        ),
        ("out/lab/ipam.lock.yaml", "ip: \"10.20.1.1\"", "ip: \"10.20.1.99\""),
    ];
    let fresh = tempfile::tempdir().unwrap();
    for (file, from, to) in cases {
        git(r, &["checkout", "-q", "--", "."]);
        edit(r, file, from, to);
        // A full render of the working tree, from the same IPAM lock.
        let head = fresh.path().join(file.replace('/', "_"));
        copy_tree(&r.join("out"), &head, false);
        let run = kiln(r, &["render", "--out", head.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let expected = differing(&r.join("out"), &head);
        assert!(!expected.is_empty(), "{file}: the case changes nothing");
        assert_eq!(reported(r, &[]), expected, "{file}");
    }
}

/// The base taken from the committed `out/` and the base rendered from the
/// committed inputs give the same diff; a committed output whose plan does
/// not vouch for it (another inputs digest, a file edited by hand) is
/// rendered instead, never trusted.
#[test]
fn a_committed_base_is_used_only_when_its_plan_vouches_for_it() {
    let repo = repository();
    let r = repo.path();
    edit(r, "sites/lab/machines/rack1.yaml", "ip: 10.20.1.10}", "ip: 10.20.1.11}");
    let renders_base = |r: &Path| {
        let run = kiln(r, &["diff", "--format", "unified", "--progress", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let rendered = run
            .stderr
            .lines()
            .any(|l| l.contains("\"step\":\"render\"") && l.contains("\"output\":\"HEAD\""));
        (run.stdout, rendered)
    };
    let (trusted, rendered) = renders_base(r);
    assert!(!rendered, "the committed out/lab/ served as the base");
    assert!(trusted.contains("10.20.1.11"), "{trusted}");
    let stash = |r: &Path| git(r, &["stash", "-q"]);
    for (file, from, to) in [
        ("out/lab/plan.json", "\"inputsDigest\": \"", "\"inputsDigest\": \"0"),
        (
            "out/lab/install/node-01/ks.cfg",
            "firewall",
            "# edited by hand\nfirewall",
        ),
    ] {
        stash(r);
        edit(r, file, from, to);
        commit(r, &format!("a committed output that does not match its inputs: {file}"));
        git(r, &["stash", "pop", "-q"]);
        let (diff, rendered) = renders_base(r);
        assert!(rendered, "{file}: the base was rendered, not read");
        assert_eq!(diff, trusted, "{file}");
        git(r, &["stash", "-q"]);
        git(r, &["reset", "-q", "--hard", "HEAD~1"]);
        git(r, &["stash", "pop", "-q"]);
    }
}
