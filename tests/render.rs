//! The rendered example repository: pinned by snapshots, byte-identical
//! across file orders and locales, never rewritten when unchanged, atomic
//! when a render fails, and `--check` tells fresh from stale.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;

/// Each output of a fresh render of the example, as one snapshot.
#[test]
fn example_snapshots() {
    let repo = example_copy(false);
    let run = kiln(repo.path(), &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = repo.path().join("out");
    for name in kiln_compiler::emit::rendered_outputs(&out).unwrap() {
        let mut text = String::new();
        for (path, bytes) in tree(&out.join(&name)) {
            text.push_str(&format!("--- {path}\n{}", String::from_utf8_lossy(&bytes)));
        }
        // Digests fingerprint kiln's own code too (any change of it moves
        // them); tests/incremental.rs holds what they must cover.
        insta::with_settings!({filters => vec![
            (r#""(inputsDigest|planDigest)": "[0-9a-f]{64}""#, r#""$1": "[digest]""#),
        ]}, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn committed_out_is_fresh() {
    let run = kiln(&repo_root(), &["render", "--check"]);
    assert_eq!(
        run.code, 0,
        "out/ is stale; run `make demo` and commit:\n{}",
        run.stdout
    );
}

#[test]
fn output_is_identical_across_file_order_and_locale() {
    let a = example_copy(false);
    let b = tempfile::tempdir().unwrap();
    for d in INPUT_DIRS {
        copy_tree(&repo_root().join(d), &b.path().join(d), true);
    }
    assert_eq!(kiln_env(a.path(), &["render"], &[("LC_ALL", "C")]).code, 0);
    let run = kiln_env(
        b.path(),
        &["render"],
        &[
            ("LC_ALL", "tr_TR.UTF-8"),
            ("LANG", "tr_TR.UTF-8"),
            ("TZ", "Pacific/Chatham"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (ta, tb) = (tree(&a.path().join("out")), tree(&b.path().join("out")));
    assert!(ta.len() > 50);
    assert_eq!(ta, tb);
}

/// (inode, mtime) of every file under out/.
fn stamps(dir: &std::path::Path) -> Vec<(String, u64, i64, i64)> {
    tree(dir)
        .keys()
        .map(|rel| {
            let m = std::fs::metadata(dir.join(rel)).unwrap();
            (rel.clone(), m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

#[test]
fn rendering_twice_rewrites_nothing() {
    let repo = example_copy(false);
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let before = stamps(&repo.path().join("out"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = kiln(repo.path(), &["render"]);
    assert!(run.stderr.contains("0 written"), "{}", run.stderr);
    assert_eq!(stamps(&repo.path().join("out")), before);
}

#[test]
fn a_change_rewrites_only_changed_files_and_removes_stale_ones() {
    let repo = example_copy(false);
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let out = repo.path().join("out");
    let before = stamps(&out);
    edit(
        repo.path(),
        "sites/eu/clusters/prod-aws.yaml",
        "    - observability\n",
        "",
    );
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let after = stamps(&out);
    assert!(
        !out.join("prod-aws/recipes/observability.yaml").exists(),
        "stale file removed"
    );
    let unchanged_file = "prod-aws/cluster/cluster-prod-aws.yaml";
    let find = |s: &Vec<(String, u64, i64, i64)>| s.iter().find(|x| x.0 == unchanged_file).cloned();
    assert_eq!(
        find(&before),
        find(&after),
        "an unchanged file keeps its inode and mtime"
    );
    let other_output: Vec<_> = before.iter().filter(|x| x.0.starts_with("web-azure/")).collect();
    assert!(other_output.iter().all(|x| after.contains(x)));
}

/// A write that fails leaves out/ as it was, whether the output would
/// have been patched (its directory as the last render left it: only
/// changed files are written) or staged whole and swapped (the stat cache
/// gone, so nothing vouches for the directory).
#[test]
fn a_failed_render_leaves_out_untouched() {
    for patched in [true, false] {
        let repo = example_copy(false);
        assert_eq!(kiln(repo.path(), &["render"]).code, 0);
        let out = repo.path().join("out");
        if !patched {
            std::fs::remove_file(out.join(".kiln.cache")).unwrap();
        }
        let before = tree(&out);
        edit(
            repo.path(),
            "sites/eu/clusters/prod-aws.yaml",
            "replicas: 3",
            "replicas: 4",
        );
        edit(
            repo.path(),
            "sites/us/clusters/web-azure.yaml",
            "replicas: 3",
            "replicas: 4",
        );
        let run = kiln_env(repo.path(), &["render"], &[("KILN_TEST_FAIL_AFTER_FILES", "1")]);
        assert_eq!(run.code, 4, "patched {patched}: {}", run.stderr);
        assert!(run.stderr.contains("injected failure"), "{}", run.stderr);
        assert_eq!(
            tree(&out),
            before,
            "out/ changed after a failed render (patched {patched})"
        );
        let names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.') || n == ".kiln.lock"),
            "staging or a stat cache left behind: {names:?}"
        );
        // The next render writes both.
        let run = kiln(repo.path(), &["render"]);
        assert!(run.stderr.contains("2 written, 3 unchanged"), "{}", run.stderr);
        assert_eq!(kiln(repo.path(), &["render", "--check"]).code, 0);
    }
}

#[test]
fn a_killed_render_leaves_every_output_whole() {
    // A repository big enough that a render takes a while; kill it at
    // several points and check each output is entirely old or entirely new.
    let repo = example_copy(false);
    let base = std::fs::read_to_string(repo.path().join("sites/eu/clusters/prod-aws.yaml")).unwrap();
    let base = base.split("patches:").next().unwrap().to_string();
    for i in 0..150 {
        write(
            repo.path(),
            &format!("sites/eu/clusters/c{i:03}.yaml"),
            &base.replace("name: prod-aws", &format!("name: c{i:03}")),
        );
    }
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let out = repo.path().join("out");
    let old = tree(&out);
    for i in 0..150 {
        edit(
            repo.path(),
            &format!("sites/eu/clusters/c{i:03}.yaml"),
            "replicas: 3",
            "replicas: 7",
        );
    }
    let new_repo = tempfile::tempdir().unwrap();
    for d in INPUT_DIRS {
        copy_tree(&repo.path().join(d), &new_repo.path().join(d), false);
    }
    assert_eq!(kiln(new_repo.path(), &["render"]).code, 0);
    let new = tree(&new_repo.path().join("out"));
    for delay_ms in [5u64, 15, 30, 60] {
        // Without the stat cache each output is staged whole and swapped in
        // (with it, a patch replaces changed files one by one, plan.json
        // last: see `emit` and `a_failed_render_leaves_out_untouched`).
        let _ = std::fs::remove_file(out.join(kiln_compiler::stat::FILE));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("-C")
            .arg(repo.path())
            .arg("render")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let now = tree(&out);
        for name in kiln_compiler::emit::rendered_outputs(&out).unwrap() {
            let part = |t: &std::collections::BTreeMap<String, Vec<u8>>| {
                t.iter()
                    .filter(|(k, _)| k.starts_with(&format!("{name}/")))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            };
            let current = part(&now);
            assert!(
                current == part(&old) || current == part(&new),
                "output {name} is half-written after a kill at {delay_ms} ms"
            );
        }
    }
}

#[test]
fn check_is_clean_after_render_and_stale_after_an_edit() {
    let repo = example_copy(false);
    assert_eq!(kiln(repo.path(), &["render"]).code, 0);
    let run = kiln(repo.path(), &["render", "--check"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    edit(
        repo.path(),
        "sites/us/clusters/web-azure.yaml",
        "replicas: 3",
        "replicas: 5",
    );
    let before = tree(&repo.path().join("out"));
    let run = kiln(repo.path(), &["render", "--check"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("web-azure/plan.json"), "{}", run.stdout);
    assert!(!run.stdout.contains("prod-aws/"), "{}", run.stdout);
    assert_eq!(tree(&repo.path().join("out")), before, "--check wrote something");
}

#[test]
fn set_and_values_files_are_the_top_layers() {
    let repo = example_copy(false);
    write(repo.path(), "extra.yaml", "cilium:\n  version: \"1.17.0\"\n");
    let extra = repo.path().join("extra.yaml");
    let extra = extra.to_str().unwrap();
    let run = kiln(repo.path(), &["render", "prod-aws", "-f", extra]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rel = "out/prod-aws/addons/cilium/helmrelease.yaml";
    assert!(std::fs::read_to_string(repo.path().join(rel))
        .unwrap()
        .contains("version: \"1.17.0\""));
    let run = kiln(
        repo.path(),
        &["render", "prod-aws", "-f", extra, "--set", "cilium.version=1.16.1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::read_to_string(repo.path().join(rel))
        .unwrap()
        .contains("version: \"1.16.1\""));
}

#[test]
fn init_scaffolds_a_repo_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fleet");
    let run = kiln(dir.path(), &["init", target.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(&target, &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(target.join("out/demo/cluster/cluster-demo.yaml").is_file());
    assert_eq!(
        kiln(dir.path(), &["init", target.to_str().unwrap()]).code,
        2,
        "init refuses a non-empty directory"
    );
}

#[test]
fn new_cluster_writes_a_document_that_renders() {
    let repo = example_copy(false);
    let run = kiln(
        repo.path(),
        &[
            "new",
            "cluster",
            "batch",
            "--site",
            "us",
            "--provider",
            "gcp",
            "--region",
            "us-east1",
            "--workers",
            "5",
            "--recipes",
            "base,observability",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = std::fs::read_to_string(repo.path().join("sites/us/clusters/batch.yaml")).unwrap();
    assert!(doc.contains("replicas: 5") && doc.contains("provider: gcp"), "{doc}");
    let run = kiln(repo.path(), &["render", "batch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(
        repo.path(),
        &["new", "cluster", "batch", "--site", "us", "--provider", "gcp"],
    );
    assert_eq!(run.code, 2, "new never overwrites");
    let run = kiln(
        repo.path(),
        &["new", "cluster", "x", "--site", "nope", "--provider", "gcp"],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn schema_prints_each_kind() {
    let run = kiln(&repo_root(), &["schema", "Machine"]);
    assert_eq!(run.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["properties"]["kind"]["const"], "Machine");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(kiln(&repo_root(), &["schema", "Nope"]).code, 2);
}

#[test]
fn new_machine_writes_a_document_that_renders() {
    let repo = example_copy(true);
    let run = kiln(
        repo.path(),
        &[
            "new",
            "machine",
            "node-09",
            "--site",
            "lab",
            "--blueprint",
            "rhel9",
            "--mac",
            "52-54-00-12-34-09",
            "--commission",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = std::fs::read_to_string(repo.path().join("sites/lab/machines/node-09.yaml")).unwrap();
    assert!(
        doc.contains("52:54:00:12:34:09") && doc.contains("network: prov") && doc.contains("commission: true"),
        "{doc}"
    );
    let run = kiln(repo.path(), &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(repo
        .path()
        .join("out/lab/boot/machines/node-09.commission.ipxe")
        .is_file());
    let bad = kiln(
        repo.path(),
        &[
            "new",
            "machine",
            "x",
            "--site",
            "lab",
            "--blueprint",
            "rhel9",
            "--mac",
            "zz",
        ],
    );
    assert_eq!(bad.code, 2);
}
