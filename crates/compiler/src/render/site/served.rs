//! Every address an installer is handed must answer. The values check in
//! `sources.rs` covers the values kiln knows to name install sources; this
//! check reads what was actually rendered (boot script, kickstart,
//! autounattend.xml, Talos config), so a template that writes its own URL is
//! held to the same rule:
//!
//! * a URL of the executor (`@@kiln:server@@/...` or the site's
//!   `bootServer`) must be one of the executor's routes that serves it: an
//!   artifact the blueprint declares, the step's own install file, or the
//!   agent API — the executor answers 404 for anything else, an install tree
//!   included;
//! * an install source handed to an installer (Anaconda's `inst.stage2=`,
//!   `inst.repo=`, kickstart `url --url`, `repo --baseurl`, `--mirrorlist`;
//!   Windows Setup's `InstallFrom/Path`) that is not the executor's must lie
//!   under a source the site declares in `spec.installSources`, and a
//!   Windows `InstallFrom/Path` must name a `.wim` or `.esd`.

use kiln_plan::placeholder::{SERVER, TOKEN};

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::kinds::Blueprint;
use crate::load::Input;
use crate::resolve::site::SiteModel;
use crate::yaml::Pos;

/// Text just before a URL that makes it an installer's install source.
const SOURCE_KEYS: &[&str] = &[
    "inst.stage2=",
    "inst.repo=",
    "--url=",
    "--url ",
    "--baseurl=",
    "--baseurl ",
    "--mirrorlist=",
    "--mirrorlist ",
];

/// Executor routes that answer for any machine with a run.
const API_ROUTES: &[&str] = &[
    "/v1/agents/facts",
    "/v1/agents/checkin",
    "/v1/agents/script",
    "/menu.ipxe",
    "/boot/ipxe",
];

/// One rendered file of a machine step and what it was rendered from.
pub(super) struct Rendered<'a> {
    pub site: &'a SiteModel<'a>,
    pub blueprint: &'a Input<Blueprint>,
    /// The template file and the blueprint field (`ipxe`, `install`) naming it.
    pub template: &'a str,
    pub template_text: Option<&'a str>,
    pub field: &'a str,
    /// The rendered text.
    pub text: &'a str,
    /// The name the step's install file is served under.
    pub install_file: Option<&'a str>,
}

impl Rendered<'_> {
    /// What the rendered file is, for messages.
    fn field_file(&self) -> &'static str {
        match self.field {
            "ipxe" => "the boot script",
            _ => "the install file",
        }
    }
}

/// Every address in the rendered file that will not answer.
pub(super) fn problems(r: &Rendered) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let boot_server = r.site.boot_server.trim_end_matches('/');
    for line in lines_with_urls(r.text) {
        for (start, url) in urls(line) {
            let before = &line[..start];
            let source_key = SOURCE_KEYS.iter().find(|k| before.ends_with(*k)).copied();
            let path = url.strip_prefix(SERVER).or_else(|| {
                (!boot_server.is_empty())
                    .then(|| url.strip_prefix(boot_server))
                    .flatten()
            });
            let problem = match path {
                Some(path) => executor_problem(r, path),
                None if source_key.is_some() || windows_install_from(r.text, line) => {
                    source_problem(r, url, source_key.is_none())
                }
                None => None,
            };
            if let Some(problem) = problem {
                // One message per template line, whatever the machine: a
                // fleet of machines sharing a template gets one error.
                let message = format!("renders `{url}` into {}: {problem}", r.field_file());
                // The text the URL follows (`inst.stage2=`, `<Path>`) finds
                // its line in the template.
                let lead = match before.strip_suffix('>') {
                    Some(_) => &before[before.rfind('<').unwrap_or(0)..],
                    None => before.rsplit(char::is_whitespace).next().unwrap_or_default(),
                };
                diags.push(locate(r, lead, url, path, message));
            }
        }
    }
    diags
}

/// Why the executor would not answer `path`, if it would not.
fn executor_problem(r: &Rendered, path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if path.contains('$') || path.contains("{{") {
        // Resolved on the machine (an iPXE or shell variable): unknowable here.
        return None;
    }
    if let Some(artifact) = path.strip_prefix("/artifacts/") {
        let declared = &r.blueprint.object.spec.artifacts;
        if declared.values().any(|a| a.path == artifact) {
            return None;
        }
        let names: Vec<&str> = declared.values().map(|a| a.path.as_str()).collect();
        return Some(format!(
            "the executor serves only the artifacts blueprint `{}` declares ({}), so it answers 404; \
             declare `{artifact}` as an artifact with its sha256, or serve it from a mirror listed in the site's spec.installSources",
            r.blueprint.object.name(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ));
    }
    if let Some(file) = path.strip_prefix(&format!("/install/{TOKEN}/")) {
        return match r.install_file {
            Some(f) if f == file => None,
            Some(f) => Some(format!("this step's install file is served as `{f}`, not `{file}`")),
            None => Some("this step has no install file (the blueprint names no install template)".into()),
        };
    }
    if API_ROUTES.contains(&path) {
        return None;
    }
    Some(
        "the executor serves only planned files (/artifacts/<declared path>, /install/<token>/<install file>) and its API, \
         so it answers 404; an install tree or image belongs on a mirror listed in the site's spec.installSources"
            .into(),
    )
}

/// Why an installer's install source `url` (not the executor's) will not
/// answer, if it will not; `windows` for Setup's `InstallFrom/Path`.
fn source_problem(r: &Rendered, url: &str, windows: bool) -> Option<String> {
    let declared = &r.site.input.object.spec.install_sources;
    if windows {
        let lower = url.to_ascii_lowercase();
        if !(lower.ends_with(".wim") || lower.ends_with(".esd")) {
            return Some(
                "Windows Setup's InstallFrom/Path must name the image file, a `.wim` or `.esd`, not a directory".into(),
            );
        }
    }
    if declared.iter().any(|d| super::sources::under(url, d)) {
        return None;
    }
    Some(format!(
        "an install source must lie under one the site declares in spec.installSources ({}); \
         kiln cannot tell that anything else will answer",
        if declared.is_empty() {
            "it declares none".to_string()
        } else {
            declared.join(", ")
        }
    ))
}

/// Whether `line` is the `<Path>` of an `<InstallFrom>` in autounattend.xml.
fn windows_install_from(text: &str, line: &str) -> bool {
    if !line.trim_start().starts_with("<Path>") {
        return false;
    }
    // The nearest element opened before this line must be InstallFrom.
    let at = text.find(line).unwrap_or(0);
    let before = &text[..at];
    let last_open = before.rfind("<InstallFrom>");
    let last_close = before.rfind("</InstallFrom>");
    matches!((last_open, last_close), (Some(o), c) if c.is_none_or(|c| c < o))
}

/// The lines of `text` that may hold a URL or UNC path, in order: one
/// search of the whole text per marker, not one per line.
fn lines_with_urls(text: &str) -> impl Iterator<Item = &str> {
    let starts: std::collections::BTreeSet<usize> = ["://", SERVER, r"\\"]
        .iter()
        .flat_map(|marker| text.match_indices(marker))
        .map(|(at, _)| text[..at].rfind('\n').map_or(0, |i| i + 1))
        .collect();
    starts.into_iter().map(|start| {
        let line = &text[start..];
        let line = &line[..line.find('\n').unwrap_or(line.len())];
        line.strip_suffix('\r').unwrap_or(line)
    })
}

/// The URLs and UNC paths in a line, with their byte offsets.
fn urls(line: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    // Most lines hold none: a substring search rules them out at once.
    if !["://", SERVER, r"\"].iter().any(|m| line.contains(m)) {
        return found;
    }
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let starts = ["http://", "https://", SERVER, r"\\"]
            .iter()
            .any(|p| rest.starts_with(p));
        if starts && (i == 0 || !line[..i].ends_with(|c: char| c.is_ascii_alphanumeric())) {
            // A quote ends a URL, also as an XML entity (a value quoted in
            // an XML template).
            let end = ["&apos;", "&quot;", "&lt;", "&gt;"]
                .iter()
                .filter_map(|entity| rest.find(entity))
                .chain(rest.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')')))
                .min()
                .unwrap_or(rest.len());
            let url = &rest[..end];
            // `\\` alone is an escape, not a share.
            if !(url.starts_with(r"\\") && url.len() < 4) {
                found.push((i, url));
            }
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// Where in the template the problem comes from: the line holding the
/// text the URL follows, else the URL's path or its last segment; else the
/// blueprint's template field.
fn locate(r: &Rendered, lead: &str, url: &str, path: Option<&str>, message: String) -> Diagnostic {
    let tail = url.rsplit(['/', '\\']).next().unwrap_or_default();
    let needles = [lead, path.unwrap_or(url), tail];
    if let Some(text) = r.template_text {
        for needle in needles.iter().filter(|n| !n.is_empty()) {
            for (n, line) in text.lines().enumerate() {
                if let Some(col) = line.find(needle) {
                    let pos = Pos {
                        line: n as u32 + 1,
                        col: line[..col].chars().count() as u32 + 1,
                    };
                    return Diagnostic::new(r.template, pos, message);
                }
            }
        }
    }
    r.blueprint
        .error(&format!("/spec/templates/{}", r.field), false, message)
}

#[cfg(test)]
mod tests {
    use super::urls;

    #[test]
    fn finds_urls_and_shares() {
        let line = r#"kernel @@kiln:server@@/artifacts/a inst.stage2=http://m/x <Path>\\f\s\i.wim</Path> a\\b"#;
        let got: Vec<&str> = urls(line).into_iter().map(|(_, u)| u).collect();
        assert_eq!(got, ["@@kiln:server@@/artifacts/a", "http://m/x", r"\\f\s\i.wim"]);
    }
}
