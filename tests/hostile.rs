//! A pull request is hostile input: whatever it commits, kiln reads nothing
//! outside the repository and prints no file from outside it.

mod common;
use common::*;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "hunter2-ci-secret";

/// `kiln ARGS` with a secret in its environment, as a CI job has.
fn kiln_with_secret(dir: &Path, args: &[&str]) -> Run {
    kiln_env(dir, args, &[("FAKE_CI_SECRET", SECRET)])
}

fn assert_refused(run: &Run, link: &str) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("{link}: ")) && run.stderr.contains("outside the repository"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(SECRET) && !run.stdout.contains(SECRET),
        "{}",
        run.stderr
    );
}

#[test]
fn a_symlink_to_the_environment_is_refused_and_never_printed() {
    let repo = example_copy(false);
    let link = "sites/lab/machines/zz.yaml";
    symlink("/proc/self/environ", repo.path().join(link)).unwrap();
    for command in ["validate", "render"] {
        let run = kiln_with_secret(repo.path(), &[command]);
        assert_refused(&run, link);
    }
    assert!(!repo.path().join("out").exists(), "render wrote out/ on an input error");
}

#[test]
fn a_symlink_to_a_system_file_is_not_echoed() {
    let repo = example_copy(false);
    let link = "sites/lab/machines/host.yaml";
    symlink("/etc/hostname", repo.path().join(link)).unwrap();
    let run = kiln(repo.path(), &["validate"]);
    assert_refused(&run, link);
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    if !hostname.is_empty() {
        assert!(!run.stderr.contains(&format!("| {hostname}")), "{}", run.stderr);
    }
}

#[test]
fn a_symlinked_directory_out_of_the_repository_is_not_walked() {
    let repo = example_copy(false);
    let link = "blueprints/rhel9/templates/etc";
    symlink("/etc", repo.path().join(link)).unwrap();
    let started = Instant::now();
    let run = kiln(repo.path(), &["validate"]);
    assert_refused(&run, link);
    assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn symlinks_inside_the_repository_still_work() {
    let repo = example_copy(false);
    let r = repo.path();
    std::fs::rename(
        r.join("sites/lab/machines/talos.yaml"),
        r.join("sites/lab/talos-machines.yaml.txt"),
    )
    .unwrap();
    symlink("../talos-machines.yaml.txt", r.join("sites/lab/machines/talos.yaml")).unwrap();
    let run = kiln(r, &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = std::fs::read(repo_root().join("out/lab/plan.json")).unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(r.join("out/lab/plan.json")).unwrap()).unwrap();
    let committed: serde_json::Value = serde_json::from_slice(&expected).unwrap();
    assert_eq!(plan["machines"], committed["machines"]);
}

#[test]
fn a_values_file_must_be_a_regular_file() {
    let repo = example_copy(false);
    for path in ["/proc/self/environ", "/dev/zero", "/dev/stdin"] {
        let run = kiln_with_secret(repo.path(), &["validate", "-f", path]);
        assert_eq!(run.code, 2, "{path}: {}", run.stderr);
        assert!(run.stderr.contains("not a regular file"), "{path}: {}", run.stderr);
        assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    }
    // A values file may live anywhere outside the repository.
    let elsewhere = tempfile::tempdir().unwrap();
    let values = elsewhere.path().join("values.yaml");
    std::fs::write(&values, "cilium: {version: \"1.18.5\"}\n").unwrap();
    let run = kiln(repo.path(), &["validate", "-f", values.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn an_out_directory_linked_out_of_the_repository_is_refused_unless_named() {
    let repo = example_copy(false);
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), repo.path().join("out")).unwrap();
    let run = kiln(repo.path(), &["render"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("out: ") && run.stderr.contains("--out"),
        "{}",
        run.stderr
    );
    assert!(
        std::fs::read_dir(elsewhere.path()).unwrap().next().is_none(),
        "wrote through the link"
    );
    let explicit = elsewhere.path().to_str().unwrap();
    let run = kiln(repo.path(), &["render", "--out", explicit]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(elsewhere.path().join("lab/plan.json").is_file());
}

#[test]
fn kiln_diff_treats_a_committed_symlink_as_the_working_tree_does() {
    let repo = example_copy(true);
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "base"]);
    symlink("/proc/self/environ", r.join("sites/lab/machines/zz.yaml")).unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "a hostile link"]);
    let run = kiln_with_secret(r, &["diff", "--base", "HEAD~1", "--head", "HEAD"]);
    assert_refused(&run, "sites/lab/machines/zz.yaml");
}

/// Peak memory (KiB) and the run of `kiln ARGS`, measured by GNU time.
fn measured(dir: &Path, args: &[&str]) -> (u64, Run, Duration) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("/usr/bin/time (Debian time) is needed");
    let elapsed = started.elapsed();
    let kib = std::fs::read_to_string(report.path())
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (kib, run, elapsed)
}

#[test]
fn a_template_that_renders_without_end_stops_at_the_output_limit() {
    let repo = example_copy(false);
    let template = "blueprints/rhel9/templates/ks.cfg.j2";
    let text = std::fs::read_to_string(repo.path().join(template)).unwrap();
    let bomb = "{% for i in range(100000) %}{{ \"x\" * 100000 }}{% endfor %}\n";
    std::fs::write(repo.path().join(template), format!("{bomb}{text}")).unwrap();
    let (kib, run, elapsed) = measured(repo.path(), &["validate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{template}:1:"))
            && run.stderr.contains("exceeds 64 MiB")
            && run.stderr.contains("(rendering machine "),
        "{}",
        run.stderr
    );
    assert!(kib < 1024 * 1024, "peak memory {kib} KiB");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// Files each far below the per-file limit (and below the step in which
/// the run total is counted) still count towards the run's: 30 machines'
/// kickstarts of 50 KiB pass 1 MiB.
#[test]
fn many_small_files_stop_at_the_run_limit() {
    let repo = example_copy(false);
    let template = "blueprints/rhel9/templates/ks.cfg.j2";
    let text = std::fs::read_to_string(repo.path().join(template)).unwrap();
    let padding = "{% for i in range(500) %}# {{ \"x\" * 100 }}\n{% endfor %}\n";
    std::fs::write(repo.path().join(template), format!("{padding}{text}")).unwrap();
    let machines: String = (0..30)
        .map(|i| {
            format!(
                "---\napiVersion: kiln/v1alpha1\nkind: Machine\nmetadata: {{name: pad-{i:02}}}\n\
                 spec:\n  blueprint: rhel9\n  interfaces: [{{mac: \"52:54:00:aa:00:{i:02x}\", network: prov}}]\n"
            )
        })
        .collect();
    write(repo.path(), "sites/lab/machines/padded.yaml", &machines);
    let run = kiln(repo.path(), &["validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = kiln(repo.path(), &["--max-output-mib", "1", "validate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the rendered files exceed 1 MiB in all (--max-output-mib)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_template_that_loops_without_output_runs_out_of_fuel() {
    let repo = example_copy(false);
    let template = "blueprints/rhel9/templates/ks.cfg.j2";
    let text = std::fs::read_to_string(repo.path().join(template)).unwrap();
    let spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n";
    std::fs::write(repo.path().join(template), format!("{spin}{text}")).unwrap();
    let (_, run, elapsed) = measured(repo.path(), &["validate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{template}:1:")) && run.stderr.contains("ran too long"),
        "{}",
        run.stderr
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

/// A committed symlink that stays inside the revision reads its target,
/// as in the working tree.
#[test]
fn kiln_diff_follows_a_committed_symlink_that_stays_inside() {
    let repo = example_copy(true);
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "base"]);
    std::fs::rename(
        r.join("sites/lab/machines/talos.yaml"),
        r.join("sites/lab/talos-machines.yaml.txt"),
    )
    .unwrap();
    symlink("../talos-machines.yaml.txt", r.join("sites/lab/machines/talos.yaml")).unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "the machines behind a link"]);
    let run = kiln(r, &["diff", "--base", "HEAD~1", "--head", "HEAD", "--exit-code"]);
    assert_eq!(
        run.code, 0,
        "the same machines render the same: {}{}",
        run.stdout, run.stderr
    );
}

/// The IPAM lock is read from out/<site>/ only when it really is there, not
/// through a link under out/ to somewhere else.
#[test]
fn a_lock_behind_a_link_under_out_is_not_read() {
    let repo = example_copy(true);
    let r = repo.path();
    let elsewhere = tempfile::tempdir().unwrap();
    copy_tree(&r.join("out/lab"), elsewhere.path(), false);
    // A "lock" elsewhere that kiln would choke on (and print) if it read it.
    std::fs::write(elsewhere.path().join("ipam.lock.yaml"), "not: [a lock\n").unwrap();
    std::fs::remove_dir_all(r.join("out/lab")).unwrap();
    symlink(elsewhere.path(), r.join("out/lab")).unwrap();
    let run = kiln(r, &["validate", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
