//! What a site renders once for a blueprint rather than per machine, with
//! the site's and the blueprint's values (there is no `machine`):
//!
//! * the discovery step (`spec.discovery`): the boot script a MAC the site
//!   does not know gets, and the script it then runs, which reports the
//!   machine's hardware so `kiln adopt` can write its Machine document;
//! * a blueprint's agent (`templates.agent`), which each installed machine
//!   fetches with its agent credential.

use serde_json::{json, Map, Value};

use super::{artifacts_context, install_file_name, planned_artifacts, render_template, IntoJinja};
use crate::diag::Diagnostics;
use crate::layout::{self, Origin, ValuesOf};
use crate::load::kinds::Blueprint;
use crate::load::Input;
use crate::merge::merge;
use crate::render::Context;
use crate::resolve::site::SiteModel;
use kiln_plan::placeholder::{SERVER, TOKEN};
use kiln_plan::DiscoveryStep;

/// Rendered files: path, bytes, origin.
pub(super) type Files = Vec<(String, Vec<u8>, Origin)>;

/// Renders `templates` (blueprint field, template file, destination) of
/// `blueprint` with the site's values over the blueprint's.
fn render(
    cx: &Context,
    site: &SiteModel,
    blueprint: &Input<Blueprint>,
    templates: &[(&str, &str, String)],
    extra: Value,
) -> Result<Files, Diagnostics> {
    let name = blueprint.object.name();
    let values: Map<String, Value> = merge(&cx.machine_layers(site.input, None, blueprint));
    let mut context = json!({
        "site": {"name": site.name(), "domain": site.domain, "bootServer": site.boot_server},
        "blueprint": {
            "name": name,
            "os": blueprint.object.spec.os,
            "version": blueprint.object.spec.version,
            "artifacts": artifacts_context(blueprint),
        },
        "values": values,
        "server": SERVER,
        "report_url": format!("{SERVER}/v1/agents/facts"),
        "checkin_url": format!("{SERVER}/v1/agents/checkin"),
    });
    if let (Value::Object(context), Value::Object(extra)) = (&mut context, extra) {
        context.extend(extra);
    }
    let context = context.into_jinja();
    let subject = format!("blueprint {name} of site {}", site.name());
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    for (field, template, dest) in templates {
        let template = format!("blueprints/{name}/{template}");
        match render_template(cx, blueprint, field, &template, &context, &subject) {
            Ok(text) => files.push((
                dest.clone(),
                text.into_bytes(),
                Origin {
                    template: Some(template),
                    values: ValuesOf::Blueprint { blueprint: name.into() },
                },
            )),
            Err(d) => diags.push(d),
        }
    }
    diags.finish(files)
}

/// The discovery files and step of a site with discovery on.
pub(super) fn discovery(cx: &Context, site: &SiteModel) -> Result<Option<(Files, DiscoveryStep)>, Diagnostics> {
    let Some(blueprint) = site.discovery else {
        return Ok(None);
    };
    let templates = &blueprint.object.spec.templates;
    let Some(script) = templates.install.as_deref() else {
        return Err(Diagnostics::from(blueprint.error(
            "/spec/templates",
            false,
            "a discovery blueprint needs an `install` template: the script that reports the machine's hardware",
        )));
    };
    let served = install_file_name(script);
    let extra = json!({
        "install_url": format!("{SERVER}/install/{TOKEN}/{served}"),
        "token": TOKEN,
    });
    let files = render(
        cx,
        site,
        blueprint,
        &[
            ("ipxe", &templates.ipxe, layout::DISCOVERY_BOOT.to_string()),
            ("install", script, layout::discovery_file(&served)),
        ],
        extra,
    )?;
    let step = DiscoveryStep {
        boot_script: layout::DISCOVERY_BOOT.into(),
        install_file: layout::discovery_file(&served),
        artifacts: planned_artifacts(blueprint),
    };
    Ok(Some((files, step)))
}

/// Where a blueprint's agent script goes in the plan, when it has one.
pub(super) fn agent_path(blueprint: &Input<Blueprint>) -> Option<String> {
    let template = blueprint.object.spec.templates.agent.as_deref()?;
    Some(layout::agent_script(
        blueprint.object.name(),
        &install_file_name(template),
    ))
}

/// A blueprint's agent script.
pub(super) fn agent(cx: &Context, site: &SiteModel, blueprint: &Input<Blueprint>) -> Result<Files, Diagnostics> {
    let (Some(template), Some(dest)) = (blueprint.object.spec.templates.agent.as_deref(), agent_path(blueprint)) else {
        return Ok(Vec::new());
    };
    render(cx, site, blueprint, &[("agent", template, dest)], json!({}))
}
