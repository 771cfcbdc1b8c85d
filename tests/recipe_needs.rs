//! A recipe may ask machine config patches of its cluster's Talos machines
//! (issue 16, item 2): kiln renders them into the TalosControlPlane and the
//! TalosConfigTemplate, and refuses a malformed one at the recipe, and two
//! recipes that patch one path differently at the cluster.

mod common;

use common::{edit, example_copy, kiln, render_fails};

const NEEDS: &str = "      kubeletMounts: [/var/lib/longhorn]\n";

#[test]
fn recipe_config_patches_reach_both_talos_configs() {
    let repo = example_copy(false);
    edit(
        repo.path(),
        "recipes/base/recipe.yaml",
        NEEDS,
        "      kubeletMounts: [/var/lib/longhorn]\n      configPatches:\n        \
         - {op: add, path: /machine/kernel, value: {modules: [{name: nbd}]}}\n",
    );
    let run = kiln(repo.path(), &["render", "prod-aws"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for file in [
        "out/prod-aws/cluster/taloscontrolplane-prod-aws-control-plane.yaml",
        "out/prod-aws/cluster/talosconfigtemplate-prod-aws-workers.yaml",
    ] {
        let text = std::fs::read_to_string(repo.path().join(file)).unwrap();
        assert!(
            text.contains("path: /machine/kernel") && text.contains("name: nbd"),
            "{file}: {text}"
        );
    }
}

#[test]
fn a_malformed_config_patch_is_refused_at_the_recipe() {
    let err = render_fails(|r| {
        edit(
            r,
            "recipes/base/recipe.yaml",
            NEEDS,
            "      kubeletMounts: [/var/lib/longhorn]\n      configPatches:\n        \
             - {op: merge, path: /machine/kernel, value: {}}\n",
        )
    });
    assert!(
        err.contains("recipes/base/recipe.yaml:") && err.contains("`op` must be one of add, replace, remove"),
        "{err}"
    );
}

#[test]
fn two_recipes_patching_one_path_differently_are_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "recipes/base/recipe.yaml",
            NEEDS,
            "      kubeletMounts: [/var/lib/longhorn]\n      configPatches:\n        \
             - {op: add, path: /machine/sysctls, value: {vm.max_map_count: '262144'}}\n",
        );
        edit(
            r,
            "recipes/observability/recipe.yaml",
            "  dependsOn:\n",
            "  requires:\n    talos:\n      configPatches:\n        \
             - {op: add, path: /machine/sysctls, value: {vm.max_map_count: '524288'}}\n  dependsOn:\n",
        );
    });
    assert!(
        err.contains("recipes `base` and `observability` both patch the Talos config at /machine/sysctls"),
        "{err}"
    );
}
