//! The machine config patches recipes ask of their cluster's Talos
//! machines (`spec.requires.talos.configPatches`): each must be an RFC 6902
//! operation Talos can apply to a machine config, and two recipes of one
//! cluster must not set the same path to different values.

use serde_json::Value;

use crate::diag::Diagnostics;
use crate::load::kinds::Recipe;
use crate::load::Input;
use crate::resolve::cluster::ClusterModel;

/// The operations Talos applies in `configPatches`.
const OPS: &[&str] = &["add", "replace", "remove"];

/// The well-formed patches of a recipe; a malformed one is an error at the patch in the recipe file.
pub(super) fn config_patches(recipe: &Input<Recipe>, diags: &mut Diagnostics) -> Vec<Value> {
    let mut good = Vec::new();
    for (j, patch) in recipe.object.spec.requires.talos.config_patches.iter().enumerate() {
        let at = format!("/spec/requires/talos/configPatches/{j}");
        let op = patch.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = patch.get("path").and_then(Value::as_str).unwrap_or_default();
        let problem = if !patch.is_object() {
            Some("a config patch is an RFC 6902 operation: {op, path, value}".to_string())
        } else if !OPS.contains(&op) {
            Some(format!(
                "`op` must be one of {} (what Talos applies), not `{op}`",
                OPS.join(", ")
            ))
        } else if !path.starts_with("/machine/") && !path.starts_with("/cluster/") {
            Some(format!(
                "`path` must point into the Talos machine config (/machine/... or /cluster/...), not `{path}`"
            ))
        } else if op != "remove" && patch.get("value").is_none() {
            Some(format!("`{op}` needs a `value`"))
        } else {
            None
        };
        match problem {
            Some(p) => diags.push(recipe.error(&at, false, p)),
            None => good.push(patch.clone()),
        }
    }
    good
}

/// Two recipes of one cluster setting one path to different values would
/// silently depend on the order of the patches; that is an error at the
/// cluster, naming both.
pub(super) fn conflicting_patches(model: &ClusterModel, patches: &[Value], diags: &mut Diagnostics) {
    let owner = |p: &Value| {
        model
            .recipes
            .iter()
            .position(|r| r.object.spec.requires.talos.config_patches.contains(p))
            .unwrap_or(0)
    };
    for (a, first) in patches.iter().enumerate() {
        for second in &patches[a + 1..] {
            if first["path"] == second["path"] && first != second {
                let (i, j) = (owner(first), owner(second));
                if i == j {
                    continue;
                }
                diags.push(model.input.error(
                    &format!("/spec/recipes/{j}"),
                    false,
                    format!(
                        "recipes `{}` and `{}` both patch the Talos config at {} with different operations; \
                         they cannot both be satisfied",
                        model.recipes[i].object.name(),
                        model.recipes[j].object.name(),
                        first["path"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
    }
}
