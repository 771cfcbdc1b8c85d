//! Cluster API versions: clusters render at `cluster.x-k8s.io/v1beta2` (and
//! CAPMOX `v1alpha2`) by default; `capi.apiVersion: v1beta1` (and the
//! Proxmox provider's `infrastructureApiVersion` at `v1alpha1`) keep what
//! older management clusters serve, byte for byte. Both validate against the upstream schemas
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
    // CAPMOX's version is the Proxmox provider's own setting.
    proxmox_at_v1alpha1(repo.path());
    edit(
        repo.path(),
        "sites/lab/clusters/edge-proxmox.yaml",
        "    proxmox:\n",
        "    proxmox:\n      providerIDInjection: false\n",
    );
    let run = kiln(repo.path(), &["render", "--set", "capi.apiVersion=v1beta1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut text = String::new();
    for (path, content) in cluster_files(&repo.path().join("out")) {
        text.push_str(&format!("--- {path}\n{content}"));
    }
    insta::assert_snapshot!("clusters-v1beta1", text);
}

/// An unknown version is an input error at the line that set it (a
/// cluster's values, a site's values, the command line), not a silent
/// fallback; a site's mistake is reported once, not once per cluster.
#[test]
fn an_unknown_capi_version_is_an_input_error_where_it_was_set() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/eu/clusters/prod-aws.yaml",
            "  values:\n",
            "  values:\n    capi: {apiVersion: v1beta3}\n",
        )
    });
    assert!(
        err.starts_with(
            "error: sites/eu/clusters/prod-aws.yaml:24:24: values.capi: unknown variant `v1beta3`, \
             expected `v1beta2` or `v1beta1`"
        ),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");

    let err = render_fails(|r| {
        edit(
            r,
            "sites/eu/site.yaml",
            "  values: {}",
            "  values:\n    capi:\n      apiVersion: v1alpha1",
        )
    });
    assert!(
        err.starts_with("error: sites/eu/site.yaml:10:19: values.capi: unknown variant `v1alpha1`"),
        "{err}"
    );
    assert_eq!(
        err.matches("error:").count(),
        1,
        "one error for the site's two clusters: {err}"
    );

    let err = render_fails(|r| {
        edit(
            r,
            "sites/us/site.yaml",
            "  values: {}",
            "  values:\n    capi:\n      apiVersoin: v1beta1",
        )
    });
    assert!(
        err.starts_with("error: sites/us/site.yaml:10:7: values.capi: unknown field `apiVersoin`"),
        "{err}"
    );

    let repo = example_copy(false);
    let run = kiln(repo.path(), &["render", "--set", "capi.apiVersion=V1beta2"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: --set capi.apiVersion=V1beta2: values.capi: unknown variant `V1beta2`"),
        "{}",
        run.stderr
    );
}

/// Moving a site from v1beta1 to v1beta2 reads, in review, as the version
/// move and the reference changes of each resource.
#[test]
fn the_move_to_v1beta2_reads_per_resource_in_review() {
    let repo = example_copy(false);
    let r = repo.path();
    let site = "sites/eu/site.yaml";
    let v1beta2 = std::fs::read_to_string(r.join(site)).unwrap();
    edit(r, site, "  values: {}", "  values:\n    capi: {apiVersion: v1beta1}");
    assert_eq!(kiln(r, &["render"]).code, 0);
    git(r, &["init", "-q", "-b", "main"]);
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "v1beta1"]);
    std::fs::write(r.join(site), v1beta2).unwrap();
    let run = kiln(r, &["diff", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mut seen = 0;
    for output in diff["outputs"].as_array().unwrap() {
        for file in output["files"].as_array().unwrap() {
            let path = file["path"].as_str().unwrap();
            assert!(path.starts_with("cluster/"), "only the core kinds change: {path}");
            let resource = &file["resources"][0];
            let changes = resource["changes"].to_string();
            assert!(
                changes.contains("cluster.x-k8s.io/v1beta1") && changes.contains("cluster.x-k8s.io/v1beta2"),
                "{path}: {changes}"
            );
            assert!(changes.contains("apiGroup"), "{path}: {changes}");
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "{}", run.stdout);
}
