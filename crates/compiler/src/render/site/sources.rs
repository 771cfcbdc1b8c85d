//! Install sources: where a machine's installer fetches what kiln does not
//! serve. Each must be under a source the site declares
//! (`spec.installSources`) — the executor serves only planned files, never an
//! install tree — and be usable by the installer that reads it.

use serde_json::{Map, Value};

use super::lookup;
use crate::resolve::site::SiteModel;

/// What an installer needs of a source value.
#[derive(Clone, Copy)]
enum Need {
    /// A tree or mirror URL (Anaconda's `inst.stage2`, `url`, `repo`).
    Tree,
    /// A Windows image on a share: `.wim` or `.esd`, read with credentials.
    WindowsImage,
}

/// The values that name install sources, as dotted paths.
const SOURCES: &[(&str, Need)] = &[
    ("rhel.installTree", Need::Tree),
    ("windows.installImage", Need::WindowsImage),
];

/// Every problem with the install sources in `values`: the values path
/// (with `/` separators) and the message.
pub(super) fn problems(site: &SiteModel, values: &Map<String, Value>) -> Vec<(String, String)> {
    let declared = &site.input.object.spec.install_sources;
    let mut found = Vec::new();
    for (path, need) in SOURCES {
        let Some(source) = lookup(values, path).and_then(Value::as_str) else {
            continue;
        };
        let pointer = path.replace('.', "/");
        if !declared.iter().any(|d| under(source, d)) {
            let known = if declared.is_empty() {
                "it declares none".to_string()
            } else {
                format!("it declares {}", declared.join(", "))
            };
            found.push((
                pointer.clone(),
                format!(
                    "values.{path}: {source} is not under a source the site declares in spec.installSources ({known}); \
                     the executor serves only planned files, not install trees or shares"
                ),
            ));
        }
        if let Need::WindowsImage = need {
            let lower = source.to_ascii_lowercase();
            if !(lower.ends_with(".wim") || lower.ends_with(".esd")) {
                found.push((
                    pointer.clone(),
                    format!("values.{path}: {source} must name the image file, a `.wim` or `.esd` (Setup's InstallFrom/Path)"),
                ));
            }
            let user = lookup(values, "windows.shareUser")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if source.starts_with(r"\\") && user.is_empty() {
                found.push((
                    "windows/shareUser".into(),
                    "values.windows.shareUser: the image is on a share and no user is set; current Windows refuses \
                     SMB guest access, so set shareUser (and sharePasswordSecret)"
                        .into(),
                ));
            }
        }
    }
    found
}

/// Whether `source` lies under the declared prefix `declared` (URLs compare
/// case-sensitively, UNC paths without case).
pub(super) fn under(source: &str, declared: &str) -> bool {
    if declared.starts_with(r"\\") {
        let (s, d) = (source.to_ascii_lowercase(), declared.to_ascii_lowercase());
        let d = d.trim_end_matches('\\');
        s == d || s.starts_with(&format!("{d}\\"))
    } else {
        let d = declared.trim_end_matches('/');
        source == d || source.starts_with(&format!("{d}/"))
    }
}
