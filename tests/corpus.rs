//! A hostile-input corpus (issue 9): encodings, whitespace, YAML 1.1 traps
//! where a string is meant, names that try to leave out/, and two renders
//! into one out/. Each says what kiln understood, or refuses precisely.

mod common;
use common::*;

const MACHINE: &str = "sites/lab/machines/windows.yaml";
const CLUSTER: &str = "sites/eu/clusters/prod-aws.yaml";

#[test]
fn invalid_utf8_is_refused_at_its_file() {
    let err = render_fails(|r| {
        let mut bytes = std::fs::read(r.join(MACHINE)).unwrap();
        bytes.extend_from_slice(b"\n# \xff\xfe broken\n");
        std::fs::write(r.join(MACHINE), bytes).unwrap();
    });
    assert!(err.contains(MACHINE) && err.contains("UTF-8"), "{err}");
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_read_as_usual() {
    let repo = example_copy(false);
    let path = repo.path().join(MACHINE);
    let text = std::fs::read_to_string(&path).unwrap().replace('\n', "\r\n");
    std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
    let run = kiln(repo.path(), &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let committed = std::fs::read(repo_root().join("out/lab/install/win-01/autounattend.xml")).unwrap();
    assert_eq!(
        std::fs::read(repo.path().join("out/lab/install/win-01/autounattend.xml")).unwrap(),
        committed
    );
    // Positions still count lines right with CRLF.
    let err = render_fails(|r| {
        let p = r.join(MACHINE);
        let text =
            std::fs::read_to_string(&p)
                .unwrap()
                .replace('\n', "\r\n")
                .replacen("  blueprint:", "  bluprint:", 1);
        std::fs::write(p, text).unwrap();
    });
    assert!(
        err.contains(&format!("{MACHINE}:7:3: unknown field `bluprint`")),
        "{err}"
    );
}

#[test]
fn a_tab_in_indentation_is_a_positioned_error() {
    let err = render_fails(|r| edit(r, MACHINE, "  blueprint: windows2022", "\tblueprint: windows2022"));
    assert!(err.contains(&format!("{MACHINE}:7:")), "{err}");
}

#[test]
fn duplicate_keys_are_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            MACHINE,
            "  blueprint: windows2022\n",
            "  blueprint: windows2022\n  blueprint: rhel9\n",
        )
    });
    assert!(err.contains("duplicate key `blueprint`"), "{err}");
}

/// YAML 1.1 traps: kiln reads YAML 1.2, so `no`, `on` and dates stay
/// strings; a number where a string is meant is refused with what was read.
#[test]
fn yaml_1_1_traps_say_what_was_understood() {
    // `no` and `on` as label values are strings (YAML 1.1 would make them
    // booleans); the machine renders.
    let repo = example_copy(false);
    edit(
        repo.path(),
        MACHINE,
        "labels: {role: fileserver}",
        "labels: {role: fileserver, backup: no, power: on, since: 2026-01-01}",
    );
    let run = kiln(repo.path(), &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A version written as a number is not the string it was meant to be.
    let err = render_fails(|r| edit(r, CLUSTER, "kubernetesVersion: v1.35.2", "kubernetesVersion: 1.30"));
    assert!(err.contains("kubernetesVersion") && err.contains("1.3"), "{err}");
    assert!(err.contains("quote"), "{err}");
    for (from, to, read) in [
        ("serial: R1N01", "serial: 012", "12"),
        ("serial: R1N01", "serial: 0x1F", "31"),
    ] {
        let err = render_fails(|r| edit(r, "sites/lab/machines/rack1.yaml", from, to));
        assert!(
            err.contains(&format!("read as the number {read}")) && err.contains("quote"),
            "{to}: {err}"
        );
    }
}

#[test]
fn names_that_try_to_leave_out_are_refused() {
    for name in ["../../etc", "a/b", "..", "Prod", ""] {
        let err = render_fails(|r| edit(r, CLUSTER, "  name: prod-aws", &format!("  name: \"{name}\"")));
        assert!(err.contains(CLUSTER), "{name}: {err}");
    }
}

/// Two renders into one out/ never mix: the second waits for the first.
#[test]
fn two_renders_at_once_are_serialised() {
    let repo = example_copy(false);
    let r = repo.path();
    std::fs::create_dir_all(r.join("out")).unwrap();
    let lock = std::fs::File::create(r.join("out/.kiln.lock")).unwrap();
    lock.lock().unwrap();
    let path = r.to_path_buf();
    let render = std::thread::spawn(move || kiln(&path, &["render"]));
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert!(
        !r.join("out/lab/plan.json").exists(),
        "rendered while another held out/"
    );
    lock.unlock().unwrap();
    let run = render.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("waiting for another kiln"), "{}", run.stderr);
    assert_eq!(kiln(r, &["render", "--check"]).code, 0);
}
