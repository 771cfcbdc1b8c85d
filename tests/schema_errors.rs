//! Schema problems in input documents (issue 8, item 4): every problem of a
//! document is reported, each at its own `file:line:column`; an unknown
//! field is reported at its key, with the known field it most likely meant
//! ("did you mean") or, when none is close, the fields it could have been.
//!
//! Policy for a typo and the missing field it explains: when an unknown
//! field is within a small edit distance of a required field that is
//! missing from the same mapping, only the typo is reported (it is the
//! user's real mistake, and fixing it fixes both). A required field that is
//! missing for any other reason is still reported, at its mapping.
//!
//! Every failing run exits 2 and leaves out/ untouched (`render_fails`).

mod common;
use common::*;

const MACHINE: &str = "sites/lab/machines/windows.yaml";
const SITE: &str = "sites/lab/site.yaml";
const BLUEPRINT: &str = "blueprints/rhel9/blueprint.yaml";
const CLUSTER: &str = "sites/eu/clusters/prod-aws.yaml";
const RECIPE: &str = "recipes/base/recipe.yaml";

/// A failed `kiln render` of the example with `edits` applied to `rel`.
struct Failure {
    rel: &'static str,
    /// The edited file, to find where a problem is.
    text: String,
    stderr: String,
}

impl Failure {
    fn of(rel: &'static str, edits: &[(&str, &str)]) -> Failure {
        let mut text = String::new();
        let stderr = render_fails(|repo| {
            for (from, to) in edits {
                edit(repo, rel, from, to);
            }
            text = std::fs::read_to_string(repo.join(rel)).unwrap();
        });
        Failure { rel, text, stderr }
    }

    /// `error: file:line:col: message`, where `token` is the first
    /// occurrence of `token` on the first line containing `line_with`.
    fn error(&self, line_with: &str, token: &str, message: &str) -> String {
        let (n, line) = self
            .text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(line_with))
            .unwrap_or_else(|| panic!("{line_with:?} in {}", self.rel));
        let start = line.find(line_with).unwrap();
        let col = start + line[start..].find(token).expect("token on its line") + 1;
        format!("error: {}:{}:{col}: {message}", self.rel, n + 1)
    }

    /// The first line of each error reported in the edited file, in order.
    fn errors(&self) -> Vec<&str> {
        let prefix = format!("error: {}:", self.rel);
        self.stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
    }

    /// Exactly `expected` are reported for the edited file, in file order.
    /// (A document with problems is left out of the run, so references to
    /// it elsewhere may be reported too: see the report on issue 8.)
    fn assert_errors(&self, expected: &[String]) {
        assert_eq!(self.errors(), expected, "{}", self.stderr);
        let last = self.stderr.lines().last().unwrap_or_default();
        assert!(last.ends_with("; nothing was written"), "{}", self.stderr);
    }
}

fn typo(name: &str, meant: &str) -> String {
    format!("unknown field `{name}`; did you mean `{meant}`?")
}

#[test]
fn machine_typo_is_reported_at_its_key_instead_of_the_missing_field() {
    let f = Failure::of(MACHINE, &[("  interfaces:", "  interfacez:")]);
    f.assert_errors(&[f.error("interfacez:", "interfacez", &typo("interfacez", "interfaces"))]);
    assert!(!f.stderr.contains("missing field"), "{}", f.stderr);
    insta::assert_snapshot!("machine-typo", f.stderr);
}

#[test]
fn machine_unknown_field_without_a_close_match_lists_the_fields() {
    let f = Failure::of(
        MACHINE,
        &[(
            "  blueprint: windows2022\n",
            "  blueprint: windows2022\n  colour: red\n",
        )],
    );
    f.assert_errors(&[f.error(
        "colour: red",
        "colour",
        "unknown field `colour`, expected one of `blueprint`, `interfaces`, `serial`, `generation`, `commission`, `values`",
    )]);
    assert!(!f.stderr.contains("did you mean"), "{}", f.stderr);
}

#[test]
fn machine_missing_field_is_still_reported_when_no_typo_explains_it() {
    // Deleted outright.
    // A missing field is reported at its mapping: the mapping's first key.
    let f = Failure::of(MACHINE, &[("  blueprint: windows2022\n", "")]);
    f.assert_errors(&[f.error("interfaces:", "interfaces", "missing field `blueprint`")]);
    // Replaced by a key nothing like it: both problems are real.
    let f = Failure::of(MACHINE, &[("  blueprint: windows2022\n", "  os: windows2022\n")]);
    f.assert_errors(&[
        f.error("os: windows2022", "os", "missing field `blueprint`"),
        f.error(
            "os: windows2022",
            "os",
            "unknown field `os`, expected one of `blueprint`, `interfaces`, `serial`, `generation`, `commission`, `values`",
        ),
    ]);
}

#[test]
fn machine_wrong_type() {
    let f = Failure::of(
        MACHINE,
        &[(
            "  blueprint: windows2022\n",
            "  blueprint: windows2022\n  generation: \"x\"\n",
        )],
    );
    f.assert_errors(&[f.error(
        "generation: \"x\"",
        "\"x\"",
        "generation has the wrong type: expected an integer, found a string",
    )]);
}

#[test]
fn machine_several_problems_each_at_its_own_line() {
    let f = Failure::of(
        MACHINE,
        &[
            (
                "  labels: {role: fileserver}\n",
                "  labels: {role: fileserver}\n  nmae: x\n",
            ),
            (
                "  blueprint: windows2022\n",
                "  generation: \"x\"\n  colour: red\n  bluprint: windows2022\n",
            ),
            ("  interfaces:", "  interfacez:"),
        ],
    );
    f.assert_errors(&[
        f.error("nmae: x", "nmae", &typo("nmae", "name")),
        f.error(
            "generation: \"x\"",
            "\"x\"",
            "generation has the wrong type: expected an integer, found a string",
        ),
        f.error(
            "colour: red",
            "colour",
            "unknown field `colour`, expected one of `blueprint`, `interfaces`, `serial`, `generation`, `commission`, `values`",
        ),
        f.error("bluprint:", "bluprint", &typo("bluprint", "blueprint")),
        f.error("interfacez:", "interfacez", &typo("interfacez", "interfaces")),
    ]);
    insta::assert_snapshot!("machine-several", f.stderr);
}

#[test]
fn machine_typo_inside_a_flow_mapping_is_reported_at_its_key() {
    let f = Failure::of(
        MACHINE,
        &[(
            "{mac: \"52:54:00:12:35:01\", network: prov}",
            "{mac: \"52:54:00:12:35:01\", netwrk: prov}",
        )],
    );
    f.assert_errors(&[f.error("netwrk: prov", "netwrk", &typo("netwrk", "network"))]);
}

#[test]
fn problems_in_two_documents_of_one_file_are_all_reported() {
    let f = Failure::of(
        MACHINE,
        &[
            ("  interfaces:", "  interfacez:"),
            (
                "  blueprint: windows2022\n  interfaces:",
                "  blueprnt: windows2022\n  interfaces:",
            ),
        ],
    );
    f.assert_errors(&[
        f.error("interfacez:", "interfacez", &typo("interfacez", "interfaces")),
        f.error("blueprnt:", "blueprnt", &typo("blueprnt", "blueprint")),
    ]);
}

#[test]
fn site_problems() {
    let f = Failure::of(
        SITE,
        &[
            ("  domain:", "  domian:"),
            ("      gateway: 10.20.0.1", "      gatway: 10.20.0.1"),
            ("      vlan: 30", "      vlan: thirty"),
            // Inside an optional mapping (`dhcp` may be absent).
            ("    servers: [", "    servrs: ["),
        ],
    );
    f.assert_errors(&[
        f.error("domian:", "domian", &typo("domian", "domain")),
        f.error("gatway:", "gatway", &typo("gatway", "gateway")),
        f.error(
            "vlan: thirty",
            "thirty",
            "vlan has the wrong type: expected an integer, found a string",
        ),
        f.error("servrs:", "servrs", &typo("servrs", "servers")),
    ]);
}

#[test]
fn blueprint_problems() {
    let f = Failure::of(
        BLUEPRINT,
        &[
            ("  version: \"9.4\"", "  verison: \"9.4\""),
            // Inside one entry of the `artifacts` map.
            ("      sha256: b729", "      sha265: b729"),
            ("    ipxe: templates/", "    ipxee: templates/"),
        ],
    );
    f.assert_errors(&[
        f.error("verison:", "verison", &typo("verison", "version")),
        f.error("sha265:", "sha265", &typo("sha265", "sha256")),
        f.error("ipxee:", "ipxee", &typo("ipxee", "ipxe")),
    ]);
}

#[test]
fn cluster_problems() {
    let f = Failure::of(
        CLUSTER,
        &[
            ("  kubernetesVersion:", "  kubernetesVerison:"),
            ("    replicas: 3\n    cpu: 4", "    replica: 3\n    cpu: \"4\""),
            // Inside a patch (one of `patch` or `ops`).
            ("        kind: MachineDeployment", "        knd: MachineDeployment"),
        ],
    );
    f.assert_errors(&[
        f.error(
            "kubernetesVerison:",
            "kubernetesVerison",
            &typo("kubernetesVerison", "kubernetesVersion"),
        ),
        f.error("replica: 3", "replica", &typo("replica", "replicas")),
        f.error(
            "cpu: \"4\"",
            "\"4\"",
            "cpu has the wrong type: expected an integer, found a string",
        ),
        f.error("knd:", "knd", &typo("knd", "kind")),
    ]);
    insta::assert_snapshot!("cluster-several", f.stderr);
}

#[test]
fn recipe_problems() {
    let f = Failure::of(
        RECIPE,
        &[
            ("  dependsOn: []", "  dependOn: []"),
            ("      extensions: [", "      extension: ["),
            (
                "      kubeletMounts: [/var/lib/longhorn]",
                "      kubeletMounts: /var/lib/longhorn",
            ),
        ],
    );
    f.assert_errors(&[
        f.error("dependOn:", "dependOn", &typo("dependOn", "dependsOn")),
        f.error("extension:", "extension", &typo("extension", "extensions")),
        f.error(
            "kubeletMounts:",
            "/var",
            "kubeletMounts has the wrong type: expected a list, found a string",
        ),
    ]);
}

#[test]
fn a_typo_in_the_document_envelope() {
    let f = Failure::of(RECIPE, &[("metadata:", "metdata:")]);
    f.assert_errors(&[f.error("metdata:", "metdata", &typo("metdata", "metadata"))]);
}

/// Free-form maps stay free-form: any key under `values` (at every layer)
/// and under `labels` is accepted.
#[test]
fn values_and_labels_accept_any_key() {
    let repo = example_copy(false);
    let p = repo.path();
    edit(
        p,
        MACHINE,
        "  labels: {role: fileserver}",
        "  labels: {role: fileserver, interfacez: x}",
    );
    edit(p, MACHINE, "    windows:\n", "    interfacez: 1\n    windows:\n");
    edit(p, SITE, "  values:\n", "  values:\n    domian: x\n");
    edit(p, BLUEPRINT, "  values:\n", "  values:\n    verison: 1\n");
    edit(p, CLUSTER, "  values:\n", "  values:\n    kubernetesVerison: 1\n");
    let run = kiln(p, &["validate"]);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
}

/// `kiln schema` states what the loader enforces: every mapping kiln
/// defines rejects unknown fields; only the free-form `values` maps accept
/// any key, and typed maps (`labels`, `artifacts`) constrain their values.
#[test]
fn kiln_schema_rejects_unknown_fields_except_in_values() {
    let run = kiln(&repo_root(), &["schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let kinds = all.as_object().unwrap();
    assert_eq!(
        kinds.keys().collect::<Vec<_>>(),
        ["Site", "Machine", "Blueprint", "Cluster", "Recipe"]
    );
    fn walk(path: &str, schema: &serde_json::Value, open: &mut Vec<String>, closed: &mut usize) {
        match schema {
            serde_json::Value::Object(map) => {
                if map.contains_key("properties") {
                    match &map.get("additionalProperties") {
                        Some(serde_json::Value::Bool(false)) => *closed += 1,
                        other => open.push(format!("{path}: {other:?}")),
                    }
                }
                if let Some(extra) = map.get("additionalProperties") {
                    let free = extra == &serde_json::Value::Bool(true);
                    assert!(
                        !free || path.ends_with("/properties/values"),
                        "{path} accepts any key but is not a values map"
                    );
                }
                for (k, v) in map {
                    walk(&format!("{path}/{k}"), v, open, closed);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{path}/{i}"), v, open, closed);
                }
            }
            _ => {}
        }
    }
    for (kind, schema) in kinds {
        let (mut open, mut closed) = (Vec::new(), 0);
        walk(kind, schema, &mut open, &mut closed);
        assert!(open.is_empty(), "{kind}: mappings open to unknown fields: {open:?}");
        assert!(closed >= 3, "{kind}: the envelope, metadata and spec are closed");
    }
}
