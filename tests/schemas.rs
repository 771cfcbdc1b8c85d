//! Every rendered Kubernetes manifest (and Talos machine config) in the
//! committed `out/` validates against the upstream JSON schema of its kind
//! in `../shared/schemas/`. A manifest without a schema fails the test.

mod common;
use common::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// CRD schemas are OpenAPI v3: `nullable: true` means "or null".
fn allow_nullable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                }
            }
            map.values_mut().for_each(allow_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(allow_nullable),
        _ => {}
    }
}

/// The schema file for a document, by the lookup rule of the schemas' README.
fn schema_path(doc: &Value, file: &str) -> Option<PathBuf> {
    let dir = schemas_dir();
    if let (Some(api), Some(kind)) = (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        let kind = kind.to_lowercase();
        if api == "kustomize.config.k8s.io/v1beta1" {
            return Some(dir.join("kustomize/kustomization_v1beta1.json"));
        }
        if api == "v1alpha1" || file.ends_with("talos.yaml") {
            return Some(dir.join("talos/config_v1.13.json"));
        }
        return Some(match api.split_once('/') {
            Some((group, version)) => dir.join(group).join(format!("{kind}_{version}.json")),
            None => dir.join("core").join(format!("{kind}_{api}.json")),
        });
    }
    (doc["version"] == "v1alpha1").then(|| dir.join("talos/config_v1.13.json"))
}

/// Every YAML manifest under `out`, validated; returns how many were
/// checked and every problem.
fn validate_out(out: &Path) -> (usize, Vec<String>) {
    let mut validators: HashMap<PathBuf, jsonschema::Validator> = HashMap::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (rel, bytes) in tree(out) {
        if !(rel.ends_with(".yaml") || rel.ends_with(".yml")) || rel.ends_with("ipam.lock.yaml") {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        let docs = kiln_compiler::yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{rel}: {}", e.message));
        for doc in docs {
            let Some(path) = schema_path(&doc.value, &rel) else {
                failures.push(format!("{rel}: no apiVersion/kind and not a Talos config"));
                continue;
            };
            if !path.is_file() {
                failures.push(format!("{rel}: no upstream schema at {}", path.display()));
                continue;
            }
            let validator = validators.entry(path.clone()).or_insert_with(|| {
                let mut schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                allow_nullable(&mut schema);
                jsonschema::validator_for(&schema).unwrap()
            });
            for e in validator.iter_errors(&doc.value) {
                failures.push(format!("{rel}: {} at {}", e, e.instance_path().as_str()));
            }
            checked += 1;
        }
    }
    (checked, failures)
}

#[test]
fn rendered_manifests_validate_against_upstream_schemas() {
    let (checked, failures) = validate_out(&repo_root().join("out"));
    assert!(checked > 50, "only {checked} manifests found under out/");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The settings for older management clusters (CAPI v1beta1, CAPMOX
/// v1alpha1) render what those versions' schemas accept.
#[test]
fn older_api_versions_validate_too() {
    let repo = example_copy(false);
    proxmox_at_v1alpha1(repo.path());
    let run = kiln(repo.path(), &["render", "--set", "capi.apiVersion=v1beta1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = repo.path().join("out");
    let text = tree(&out.join("prod-aws"))
        .into_values()
        .map(|b| String::from_utf8(b).unwrap())
        .collect::<String>();
    assert!(text.contains("apiVersion: cluster.x-k8s.io/v1beta1"), "{text}");
    let (checked, failures) = validate_out(&out);
    assert!(checked > 50, "only {checked} manifests");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_output_builds_with_kubectl_kustomize() {
    let Ok(kubectl) = which("kubectl") else {
        panic!("kubectl (Debian kubernetes-client) is needed for this test; .ci/run installs it");
    };
    for name in kiln_compiler::emit::rendered_outputs(&repo_root().join("out")).unwrap() {
        let dir = repo_root().join("out").join(&name);
        if !dir.join("kustomization.yaml").is_file() {
            continue;
        }
        let out = std::process::Command::new(&kubectl)
            .args(["kustomize"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
    }
}

fn which(cmd: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(cmd))
        .find(|p| Path::new(p).is_file())
        .ok_or(())
}
