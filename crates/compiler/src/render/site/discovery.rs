//! The discovery step (`spec.discovery`): the boot script a MAC the site
//! does not know gets, and the script it then runs, which reports the
//! machine's hardware so `kiln adopt` can write its Machine document.
//! Nothing is installed: the executor serves only these two files to an
//! unknown MAC.

use serde_json::{json, Map, Value};

use super::{artifacts_context, install_file_name, planned_artifacts, IntoJinja};
use crate::diag::Diagnostics;
use crate::layout::{self, Origin, ValuesOf};
use crate::merge::merge;
use crate::render::Context;
use crate::resolve::site::SiteModel;
use kiln_plan::placeholder::{SERVER, TOKEN};
use kiln_plan::DiscoveryStep;

/// The discovery files and step of a site with discovery on.
pub(super) type Discovery = (Vec<(String, Vec<u8>, Origin)>, DiscoveryStep);

pub(super) fn render(cx: &Context, site: &SiteModel) -> Result<Option<Discovery>, Diagnostics> {
    let Some(blueprint) = site.discovery else {
        return Ok(None);
    };
    let name = blueprint.object.name();
    let dir = format!("blueprints/{name}/");
    let templates = &blueprint.object.spec.templates;
    let Some(script) = templates.install.as_deref() else {
        return Err(Diagnostics::from(blueprint.error(
            "/spec/templates",
            false,
            "a discovery blueprint needs an `install` template: the script that reports the machine's hardware",
        )));
    };
    let served = install_file_name(script);
    let values: Map<String, Value> = merge(&cx.machine_layers(site.input, None, blueprint));
    let context = json!({
        "site": {"name": site.name(), "domain": site.domain, "bootServer": site.boot_server},
        "blueprint": {
            "name": name,
            "os": blueprint.object.spec.os,
            "version": blueprint.object.spec.version,
            "artifacts": artifacts_context(blueprint),
        },
        "values": values,
        "install_url": format!("{SERVER}/install/{TOKEN}/{served}"),
        "report_url": format!("{SERVER}/v1/agents/facts"),
        "token": TOKEN,
        "server": SERVER,
    })
    .into_jinja();
    let subject = format!("the discovery step of site {}", site.name());
    let origin = |template: &str| Origin {
        template: Some(template.to_string()),
        values: ValuesOf::Discovery { blueprint: name.into() },
    };
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    for (field, template, dest) in [
        (
            "ipxe",
            format!("{dir}{}", templates.ipxe),
            layout::DISCOVERY_BOOT.to_string(),
        ),
        ("install", format!("{dir}{script}"), layout::discovery_file(&served)),
    ] {
        if cx.repo.files.get(&template).is_none() {
            diags.push(blueprint.error(
                &format!("/spec/templates/{field}"),
                false,
                format!("template {template} does not exist"),
            ));
            continue;
        }
        match cx.engine.render(&template, &context, &subject, &cx.repo.files) {
            Ok(text) => files.push((dest, text.into_bytes(), origin(&template))),
            Err(d) => diags.push(d),
        }
    }
    diags.finish(Some((
        files,
        DiscoveryStep {
            boot_script: layout::DISCOVERY_BOOT.into(),
            install_file: layout::discovery_file(&served),
            artifacts: planned_artifacts(blueprint),
        },
    )))
}
