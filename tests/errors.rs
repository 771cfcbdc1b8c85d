//! Bad input: each class of error exits 2, names the exact
//! `path:line:column`, shows the offending line, and leaves out/ untouched.

mod common;
use common::*;

const CLUSTER: &str = "sites/eu/clusters/prod-aws.yaml";

/// `path:line:column` of the first occurrence of `needle` in an example file.
fn at(rel: &str, needle: &str) -> String {
    at_token(rel, needle, needle)
}

/// `path:line:column` of `token` on the first line that contains `line_with`.
fn at_token(rel: &str, line_with: &str, token: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(rel)).unwrap();
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(line_with))
        .expect("needle in file");
    let start = line.find(line_with).unwrap();
    format!("{rel}:{}:{}", n + 1, start + line[start..].find(token).unwrap() + 1)
}

#[test]
fn yaml_syntax_error() {
    let err = render_fails(|r| {
        write(
            r,
            CLUSTER,
            "apiVersion: kiln/v1alpha1\nkind: Cluster\nmetadata: {name: x\nspec: {}\n",
        )
    });
    assert!(
        err.contains("error: sites/eu/clusters/prod-aws.yaml:4:5: while parsing a flow mapping"),
        "{err}"
    );
}

#[test]
fn wrong_type() {
    let err = render_fails(|r| edit(r, CLUSTER, "replicas: 3", "replicas: three"));
    let place = at_token(CLUSTER, "replicas: 3", "3");
    let expected = format!("{place}: replicas has the wrong type: expected an integer, found a string");
    assert!(err.contains(&expected), "expected {expected}\n{err}");
    assert!(err.contains("replicas: three"), "the offending line is shown: {err}");
}

#[test]
fn unknown_field() {
    let err = render_fails(|r| edit(r, CLUSTER, "  provider: aws", "  provider: aws\n  providr: aws"));
    assert!(
        err.contains("unknown field `providr`; did you mean `provider`?"),
        "{err}"
    );
    let place = at(CLUSTER, "provider: aws");
    let next_line = place.replace(":8:", ":9:");
    assert!(err.contains(&format!("{next_line}: unknown field")), "{err}");
}

#[test]
fn unknown_provider() {
    let err = render_fails(|r| edit(r, CLUSTER, "provider: aws", "provider: ovh"));
    assert!(
        err.contains(&format!(
            "{}: unknown provider `ovh`, expected one of `aws`, `azure`, `gcp`, `proxmox`",
            at_token(CLUSTER, "provider: aws", "aws")
        )),
        "{err}"
    );
}

#[test]
fn unknown_recipe() {
    let err = render_fails(|r| edit(r, CLUSTER, "- observability", "- observabilty"));
    assert!(err.contains("unknown recipe `observabilty`"), "{err}");
    assert!(
        err.contains(&format!("{}: unknown recipe", at(CLUSTER, "observability"))),
        "{err}"
    );
}

#[test]
fn cluster_in_site_without_site_yaml() {
    let err = render_fails(|r| {
        let text = std::fs::read_to_string(r.join(CLUSTER)).unwrap();
        write(r, "sites/nowhere/clusters/prod-aws.yaml", &text);
        std::fs::remove_file(r.join(CLUSTER)).unwrap();
    });
    let place = at(CLUSTER, "prod-aws").replace(CLUSTER, "sites/nowhere/clusters/prod-aws.yaml");
    assert!(
        err.contains(&format!(
            "{place}: cluster `prod-aws` is under sites/nowhere/, which has no site.yaml"
        )),
        "{err}"
    );
}

#[test]
fn site_and_cluster_name_clash() {
    let err = render_fails(|r| {
        write(
            r,
            "sites/prod-aws/site.yaml",
            "apiVersion: kiln/v1alpha1\nkind: Site\nmetadata:\n  name: prod-aws\n",
        );
    });
    let place = at(CLUSTER, "prod-aws");
    assert!(
        err.contains(&format!(
            "{place}: cluster `prod-aws` has the same name as the site in sites/prod-aws/site.yaml"
        )),
        "{err}"
    );
}

#[test]
fn template_with_undefined_value() {
    let err = render_fails(|r| {
        let t = "clusters/templates/namespace.yaml.j2";
        let text = std::fs::read_to_string(r.join(t)).unwrap();
        write(r, t, &format!("{text}# {{{{ values.doesNotExist }}}}\n"));
    });
    let lines = std::fs::read_to_string(repo_root().join("clusters/templates/namespace.yaml.j2"))
        .unwrap()
        .lines()
        .count();
    let expected = format!("clusters/templates/namespace.yaml.j2:{}:6: undefined value", lines + 1);
    assert!(err.contains(&expected), "expected {expected}\n{err}");
    assert!(err.contains("(rendering cluster prod-aws)"), "{err}");
}

#[test]
fn every_error_of_a_run_is_reported() {
    let err = render_fails(|r| {
        edit(r, CLUSTER, "provider: aws", "provider: ovh");
        edit(
            r,
            "sites/us/clusters/web-azure.yaml",
            "kind: Cluster",
            "kind: Cluster\nbogus: 1",
        );
    });
    assert!(err.contains("unknown provider `ovh`"), "{err}");
    assert!(err.contains("unknown field `bogus`"), "{err}");
}

#[test]
fn errors_as_json_for_tools() {
    let repo = example_copy(true);
    edit(repo.path(), CLUSTER, "provider: aws", "provider: ovh");
    let run = kiln(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(run.code, 2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let e = &report["errors"][0];
    let place = at_token(CLUSTER, "provider: aws", "aws");
    assert_eq!(
        format!("{}:{}:{}", e["file"].as_str().unwrap(), e["line"], e["column"]),
        place
    );
    assert!(e["message"].as_str().unwrap().starts_with("unknown provider `ovh`"));
    edit(repo.path(), CLUSTER, "provider: ovh", "provider: aws");
    let ok = kiln(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(ok.code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok.stdout).unwrap()["ok"],
        true
    );
    let check = kiln(repo.path(), &["render", "--check", "--format", "json"]);
    assert_eq!(
        (check.code, check.stdout.trim()),
        (0, r#"{"upToDate":true,"stale":[]}"#)
    );
}

/// kiln's own settings come from the built-in values; a layer that removes
/// one or gives it a wrong type is told so, with the key, instead of kiln
/// falling back to a constant of its own.
#[test]
fn a_removed_or_mistyped_setting_names_its_key() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "  values:\n",
            "  values:\n    dhcp: {leaseTime: null}\n",
        )
    });
    assert!(
        err.contains("sites/lab/site.yaml:") && err.contains("values.dhcp: missing field `leaseTime`"),
        "{err}"
    );
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "  values:\n",
            "  values:\n    dns: {nameserverIp: 10.0.0.300}\n",
        )
    });
    assert!(
        err.contains("values.dns.nameserverIp: `10.0.0.300` is not an IP address"),
        "{err}"
    );
}

/// A site can set the defaults of its clusters' specs through values.
#[test]
fn cluster_defaults_are_values() {
    let repo = example_copy(false);
    let dir = repo.path();
    edit(
        dir,
        "sites/us/site.yaml",
        "  values: {}",
        "  values:\n    clusterDefaults: {talosVersion: v1.13.1}",
    );
    edit(dir, "sites/us/clusters/web-azure.yaml", "  talosVersion: v1.13.9\n", "");
    let run = kiln(dir, &["render", "web-azure"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = tree(&dir.join("out/web-azure"))
        .into_iter()
        .filter(|(p, _)| p.starts_with("cluster/"))
        .map(|(_, b)| String::from_utf8(b).unwrap())
        .collect::<String>();
    assert!(text.contains("v1.13.1"), "{text}");
}

/// A typo'd field is reported where it is, with the field it most likely
/// meant; every other problem of the document is reported too, each at its
/// own line.
#[test]
fn a_typo_is_reported_at_its_line_with_a_suggestion() {
    const MACHINE: &str = "sites/lab/machines/windows.yaml";
    let err = render_fails(|r| edit(r, MACHINE, "  interfaces:", "  interfacez:"));
    let typo = at(MACHINE, "  interfaces:");
    let typo_line = typo.split(':').nth(1).unwrap().to_string();
    assert!(
        err.contains(&format!(
            "{MACHINE}:{typo_line}:3: unknown field `interfacez`; did you mean `interfaces`?"
        )),
        "{err}"
    );
    // The missing `interfaces` is the typo's doing: said once, not twice.
    assert!(!err.contains("missing field `interfaces`"), "{err}");
    assert!(err.ends_with("1 error; nothing was written\n"), "{err}");

    // A field that is really missing is still reported.
    let err = render_fails(|r| edit(r, MACHINE, "  blueprint: windows2022\n", ""));
    assert!(err.contains("missing field `blueprint`"), "{err}");

    // Several problems of one document: each on its own line.
    let err = render_fails(|r| {
        edit(r, MACHINE, "  interfaces:", "  interfacez:");
        edit(r, MACHINE, "  blueprint:", "  bluprint:");
    });
    assert!(
        err.contains("unknown field `interfacez`; did you mean `interfaces`?"),
        "{err}"
    );
    assert!(
        err.contains("unknown field `bluprint`; did you mean `blueprint`?"),
        "{err}"
    );

    // Nothing close: the fields it could have been.
    let err = render_fails(|r| edit(r, CLUSTER, "  provider: aws", "  provider: aws\n  zzzzzz: 1"));
    assert!(
        err.contains("unknown field `zzzzzz`, expected one of `provider`"),
        "{err}"
    );
    assert!(!err.contains("did you mean"), "{err}");
}
