//! Cluster API versions: clusters render at `cluster.x-k8s.io/v1beta2` (and
//! CAPMOX `v1alpha2`) by default; `capi.apiVersion: v1beta1` (and
//! `proxmox.apiVersion: v1alpha1`) keep what older management clusters
//! serve, byte for byte. Both validate against the upstream schemas
//! (`tests/schemas.rs` checks the committed v1beta2 output).

mod common;
use common::*;

use std::collections::BTreeMap;

/// The cluster outputs' files, `plan.json` aside (its digest covers the
/// command line).
fn cluster_files(out: &std::path::Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for name in ["analytics-gcp", "edge-proxmox", "prod-aws", "web-azure"] {
        for (path, bytes) in tree(&out.join(name)) {
            if path != "plan.json" {
                files.insert(format!("{name}/{path}"), String::from_utf8(bytes).unwrap());
            }
        }
    }
    files
}

/// The older API versions still render exactly what kiln rendered before
/// v1beta2 became the default.
#[test]
fn the_v1beta1_setting_keeps_the_old_bytes() {
    let repo = example_copy(false);
    let run = kiln(
        repo.path(),
        &["render", "--set", "capi.apiVersion=v1beta1", "--set", "proxmox.apiVersion=v1alpha1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut text = String::new();
    for (path, content) in cluster_files(&repo.path().join("out")) {
        text.push_str(&format!("--- {path}\n{content}"));
    }
    insta::assert_snapshot!("clusters-v1beta1", text);
}
