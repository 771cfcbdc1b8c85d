//! `kiln diff`: what a change does to the rendered output, between git
//! revisions (or a revision and the working tree).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use super::failure::{exit, Failure};
use super::session::Session;
use kiln_compiler::diag::Diagnostics;
use kiln_compiler::diff::Format;
use kiln_compiler::emit::Output;
use kiln_compiler::load::Repo;
use kiln_compiler::progress::step;
use kiln_compiler::render::{digest_of, input_keys, machine_keys, Context, Previous, PreviousOutput};
use kiln_compiler::resolve::Model;
use kiln_plan::{sha256_hex, Plan, PLAN_FILE};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The revision to compare against.
    #[arg(long, default_value = "HEAD")]
    pub base: String,
    /// The revision to compare (default: the working tree).
    #[arg(long)]
    pub head: Option<String>,
    #[arg(long, value_enum, default_value = "unified")]
    pub format: DiffFormat,
    /// Exit 1 when there are differences.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Unified,
    Markdown,
    Json,
    Stat,
}

impl From<DiffFormat> for Format {
    fn from(f: DiffFormat) -> Self {
        match f {
            DiffFormat::Unified => Self::Unified,
            DiffFormat::Markdown => Self::Markdown,
            DiffFormat::Json => Self::Json,
            DiffFormat::Stat => Self::Stat,
        }
    }
}

/// One side of the comparison: a revision (or the working tree), loaded.
struct Side {
    label: String,
    /// The revision, `None` for the working tree.
    rev: Option<String>,
    repo: Repo,
}

impl Side {
    /// The side and the problems its load found.
    fn load(session: &Session, rev: Option<&str>) -> Result<(Side, Diagnostics), Failure> {
        let label = rev.unwrap_or("working tree").to_string();
        step(session.progress, "load", Some(&label), || {
            let (repo, diags) = match rev {
                Some(rev) => {
                    let source = kiln_compiler::diff::git::read_revision(&session.repo, rev)
                        .map_err(|e| Failure::Runtime(e.to_string()))?;
                    kiln_compiler::load::load_from(&source)
                }
                None => kiln_compiler::load::load(&session.repo, &session.out_dir),
            };
            let side = Side {
                label: label.clone(),
                rev: rev.map(str::to_string),
                repo,
            };
            Ok((side, diags))
        })
    }

    /// Its model; `diags` are the problems its load found.
    fn resolve(&self, session: &Session, mut diags: Diagnostics) -> Result<Model<'_>, Failure> {
        step(session.progress, "resolve", Some(&self.label), || {
            let (model, found) = kiln_compiler::resolve::resolve(&self.repo);
            diags.extend(found);
            std::mem::take(&mut diags).finish(model).map_err(|d| self.failure(d))
        })
    }

    fn context(&self, session: &Session) -> Result<Context<'_>, Failure> {
        Context::new(&self.repo, &[], session.limits).map_err(|d| self.failure(d))
    }

    /// A failure of this side, its messages naming the revision.
    fn failure(&self, d: Diagnostics) -> Failure {
        match &self.rev {
            None => Failure::Input(d),
            Some(rev) => {
                let labelled =
                    d.0.into_iter()
                        .map(|mut x| {
                            x.message = format!("{} (in {rev})", x.message);
                            x
                        })
                        .collect();
                Failure::InputIn(Diagnostics(labelled), self.repo.files.clone())
            }
        }
    }
}

/// The plan of the base revision's committed `out/<name>/` (and its
/// bytes), when it says it was rendered from exactly the base's inputs by
/// this version of kiln (its inputs digest is `digest`).
fn committed_plan(session: &Session, rev: &str, name: &str, digest: &str) -> Option<(Plan, Vec<u8>)> {
    let plan_path = format!("out/{name}/{PLAN_FILE}");
    let mut read = kiln_compiler::diff::git::read_paths(&session.repo, rev, std::slice::from_ref(&plan_path)).ok()?;
    let plan_bytes = read.remove(&plan_path)??;
    let plan: Plan = serde_json::from_slice(&plan_bytes).ok()?;
    (plan.inputs_digest == digest && plan.name == name).then_some((plan, plan_bytes))
}

/// An output of the base revision as its committed `plan` lists it. Files
/// the head renders identically (same SHA-256) are not read at all
/// (`kept`: the comparison goes by hash); the rest are read from git and
/// checked against the plan. `None` means render the base instead.
fn committed(session: &Session, rev: &str, (plan, plan_bytes): (Plan, Vec<u8>), head: &Output) -> Option<Output> {
    let dir = format!("out/{}/", plan.name);
    let mut files = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut others = Vec::new();
    for f in &plan.files {
        match head.sha256.get(&f.path) {
            Some(sha) if *sha == f.sha256 => {
                kept.insert(f.path.clone(), f.clone());
            }
            _ => others.push(format!("{dir}{}", f.path)),
        }
    }
    let wanted: BTreeMap<String, &str> = plan
        .files
        .iter()
        .map(|f| (format!("{dir}{}", f.path), f.sha256.as_str()))
        .collect();
    for (full, bytes) in kiln_compiler::diff::git::read_paths(&session.repo, rev, &others).ok()? {
        let bytes = bytes?;
        (sha256_hex(&bytes) == wanted[&full]).then_some(())?;
        files.insert(full.strip_prefix(&dir)?.to_string(), bytes);
    }
    files.insert(PLAN_FILE.to_string(), plan_bytes);
    let sha256 = plan.files.iter().map(|f| (f.path.clone(), f.sha256.clone())).collect();
    Some(Output {
        files,
        machines: plan.machines,
        boot_artifacts: plan.boot_artifacts,
        discovery: plan.discovery,
        sha256,
        kept,
        ..Output::empty(&plan.name, plan.kind, plan.inputs_digest)
    })
}

pub(super) fn diff(
    session: &Session,
    args: DiffArgs,
    stdout: &mut dyn Write,
    is_terminal: bool,
) -> Result<i32, Failure> {
    // The two sides are read (one of them from git) and resolved at once.
    let (base, head) = rayon::join(
        || Side::load(session, Some(&args.base)),
        || Side::load(session, args.head.as_deref()),
    );
    let ((base, base_diags), (head, head_diags)) = (base?, head?);
    let (base_model, head_model) = rayon::join(
        || base.resolve(session, base_diags),
        || head.resolve(session, head_diags),
    );
    let (base_model, head_model) = (base_model?, head_model?);
    let context = |side| Side::context(side, session);
    let (base_cx, head_cx) = step(session.progress, "templates", None, || {
        Ok::<_, Failure>((context(&base)?, context(&head)?))
    })?;
    let (base_keys, head_keys) = step(session.progress, "digest", None, || {
        Ok::<_, Failure>((input_keys(&base_cx, &base_model), input_keys(&head_cx, &head_model)))
    })?;
    // Outputs rendered from the same inputs by the same kiln are the same
    // files: only the others are rendered and compared.
    let changed: BTreeSet<&String> = base_keys
        .keys()
        .chain(head_keys.keys())
        .filter(|n| base_keys.get(*n) != head_keys.get(*n))
        .collect();
    let render = |side: &Side, cx: &Context, model: &Model, names: Vec<String>| {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        step(session.progress, "render", Some(&side.label), || {
            kiln_compiler::render::render_with(cx, model, &names, session.progress).map_err(|d| side.failure(d))
        })
    };
    // The base's committed outputs that its plan vouches for; a machine of
    // one whose key is the same on both sides has the same files there, so
    // the head does not render it (it is compared by hash, never read).
    let mut plans = step(session.progress, "read", Some(&base.label), || {
        let plans: BTreeMap<String, (Plan, Vec<u8>)> = changed
            .iter()
            .filter(|n| base_keys.contains_key(**n) && head_keys.contains_key(**n))
            .filter_map(|name| {
                let plan = committed_plan(session, &args.base, name, digest_of(&base_keys[*name]))?;
                Some((name.to_string(), plan))
            })
            .collect();
        Ok::<_, Failure>(plans)
    })?;
    let previous = Previous {
        outputs: plans
            .iter()
            .filter_map(|(name, (plan, _))| {
                let keys = machine_keys(&base_cx, &base_model, name)?;
                let files = plan.files.iter().map(|f| (f.path.clone(), f.clone())).collect();
                Some((name.clone(), PreviousOutput { keys, files }))
            })
            .collect(),
    };
    let head_cx = head_cx.reusing(Some(&previous));
    let head_names = changed
        .iter()
        .filter(|n| head_keys.contains_key(**n))
        .map(|n| n.to_string());
    let head_outputs = render(&head, &head_cx, &head_model, head_names.collect())?;
    let mut base_outputs = Vec::new();
    let mut base_names = Vec::new();
    for name in changed.iter().filter(|n| base_keys.contains_key(**n)) {
        let head_output = head_outputs.iter().find(|o| &o.name == *name);
        match head_output
            .zip(plans.remove(*name))
            .and_then(|(h, plan)| committed(session, &args.base, plan, h))
        {
            Some(output) => base_outputs.push(output),
            None => base_names.push(name.to_string()),
        }
    }
    base_outputs.extend(render(&base, &base_cx, &base_model, base_names)?);
    let diff = step(session.progress, "diff", None, || {
        Ok::<_, Failure>(kiln_compiler::diff::compare(
            &base.label,
            &base_outputs,
            &head.label,
            &head_outputs,
        ))
    })?;
    let format = Format::from(args.format);
    let color = format == Format::Unified && is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    write!(stdout, "{}", kiln_compiler::diff::render(&diff, format, color))?;
    // The process ends with this command: freeing both sides (hundreds of
    // MB in small pieces) one by one would only add to it.
    std::mem::forget((base_outputs, head_outputs, head_cx, base_model, head_model, base_cx));
    std::mem::forget(previous);
    std::mem::forget((base, head));
    Ok(if args.exit_code && !diff.is_empty() {
        exit::DIFFERENCES
    } else {
        exit::OK
    })
}
