//! A machine's workflow steps each serve their own files, and `kiln explain`
//! names the blueprint and layers a file was really rendered from.

mod common;
use common::*;

use std::path::Path;

/// The commissioning blueprint's install template has the same file name as
/// the install blueprint's (`ks.cfg`), with its own content.
fn same_install_file_name(repo: &Path) {
    write(
        repo,
        "blueprints/commission/templates/ks.cfg.j2",
        "# commissioning script for {{ machine.name }} ({{ values.commission.minCpus }} CPUs)\n",
    );
    edit(
        repo,
        "blueprints/commission/blueprint.yaml",
        "install: templates/commission.sh.j2",
        "install: templates/ks.cfg.j2",
    );
}

#[test]
fn each_step_of_a_workflow_serves_its_own_install_file() {
    let repo = example_copy(false);
    let dir = repo.path();
    same_install_file_name(dir);
    let run = kiln(dir, &["render", "lab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: kiln_plan::Plan = serde_json::from_slice(&std::fs::read(dir.join("out/lab/plan.json")).unwrap()).unwrap();
    let node = plan.machines.iter().find(|m| m.name == "node-02").unwrap();
    let files: Vec<&str> = node.steps.iter().map(|s| s.install_file.as_deref().unwrap()).collect();
    assert_eq!(files.len(), 2, "{:?}", node.steps);
    assert_ne!(files[0], files[1], "both steps serve {}", files[0]);
    let commission = std::fs::read_to_string(dir.join("out/lab").join(files[0])).unwrap();
    let install = std::fs::read_to_string(dir.join("out/lab").join(files[1])).unwrap();
    assert!(
        commission.starts_with("# commissioning script for node-02"),
        "{commission}"
    );
    assert!(
        install.contains("%packages") || install.contains("url --url"),
        "{install}"
    );
    for (step, file) in node.steps.iter().zip(&files) {
        assert!(
            plan.files.iter().any(|f| f.path == *file),
            "{:?}'s file {file} is not planned",
            step.name
        );
    }
}

/// `kiln explain` on the commissioning step's file names the commissioning
/// blueprint's values, not the install blueprint's.
#[test]
fn explain_names_the_blueprint_a_file_was_rendered_from() {
    let repo = example_copy(false);
    let dir = repo.path();
    same_install_file_name(dir);
    assert_eq!(kiln(dir, &["render", "lab"]).code, 0);
    let plan: kiln_plan::Plan = serde_json::from_slice(&std::fs::read(dir.join("out/lab/plan.json")).unwrap()).unwrap();
    let node = plan.machines.iter().find(|m| m.name == "node-02").unwrap();
    for step in &node.steps {
        let file = step.install_file.as_deref().unwrap();
        let run = kiln(dir, &["explain", "lab", file, "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let e: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let blueprint_layer = e["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == "blueprint")
            .unwrap_or_else(|| panic!("no blueprint layer for {file}: {e}"));
        let expected = if step.name == kiln_plan::StepName::Commission {
            "blueprints/commission/blueprint.yaml"
        } else {
            "blueprints/rhel9/blueprint.yaml"
        };
        assert_eq!(blueprint_layer["file"], expected, "{file}: {e}");
        assert!(e["origin"]["template"].is_string(), "{file}: {e}");
    }
}
