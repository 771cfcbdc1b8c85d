//! The command line: argument definitions and one function per command.
//! `run` is what `main` calls; tests call it in-process.

mod scaffold;
mod status;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use kiln_compiler::diag::{Diagnostic, Diagnostics};
use kiln_compiler::load::kinds::Kind;
use kiln_compiler::merge::{set_path, Layer};
use kiln_compiler::progress::{step, JsonLines, Progress, Silent};
use kiln_compiler::render::{values_document, Options};
use kiln_compiler::yaml::{parse_documents, Document, Pos};

/// Exit codes (SPEC §5).
pub mod exit {
    pub const OK: i32 = 0;
    pub const DIFFERENCES: i32 = 1;
    pub const INVALID_INPUT: i32 = 2;
    pub const DEGRADED: i32 = 3;
    pub const RUNTIME: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Render-only GitOps plan compiler for bare-metal sites and Kubernetes clusters"
)]
pub struct Cli {
    /// Run against the repository at DIR.
    #[arg(short = 'C', global = true, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// Where output goes (default: <repo>/out).
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Report each step as a JSON line on stderr.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub progress: Option<ProgressFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProgressFormat {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Unified,
    Markdown,
    Json,
    Stat,
}

impl From<DiffFormat> for kiln_compiler::diff::Format {
    fn from(f: DiffFormat) -> Self {
        match f {
            DiffFormat::Unified => Self::Unified,
            DiffFormat::Markdown => Self::Markdown,
            DiffFormat::Json => Self::Json,
            DiffFormat::Stat => Self::Stat,
        }
    }
}

#[derive(Debug, clap::Args, Default)]
pub struct ValueArgs {
    /// Set a value on the command line (highest layer), e.g. `workers.replicas=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Merge a values file (highest layer, below --set).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render sites and clusters into out/<name>/.
    Render {
        /// Outputs to render (default: all).
        names: Vec<String>,
        /// Write nothing; exit 1 listing stale files when out/ differs from a fresh render.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        values: ValueArgs,
        /// Report (and report errors) as JSON on stdout.
        #[arg(long, value_enum, default_value = "text")]
        format: TextOrJson,
    },
    /// Check every input and render in memory without writing.
    Validate {
        names: Vec<String>,
        #[command(flatten)]
        values: ValueArgs,
        /// Report (and report errors) as JSON on stdout.
        #[arg(long, value_enum, default_value = "text")]
        format: TextOrJson,
    },
    /// Show what a change does to the rendered output, between git revisions.
    Diff {
        /// The revision to compare against.
        #[arg(long, default_value = "HEAD")]
        base: String,
        /// The revision to compare (default: the working tree).
        #[arg(long)]
        head: Option<String>,
        #[arg(long, value_enum, default_value = "unified")]
        format: DiffFormat,
        /// Exit 1 when there are differences.
        #[arg(long)]
        exit_code: bool,
    },
    /// Show where the values behind a rendered file came from, layer by layer.
    Explain {
        /// The site or cluster.
        name: String,
        /// A file of out/NAME/, e.g. addons/cilium/helmrelease.yaml.
        path: String,
        /// A dotted values key (cilium.version) or a path in the rendered YAML.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: TextOrJson,
        #[command(flatten)]
        values: ValueArgs,
    },
    /// Run the site executor on a rendered site plan.
    Serve {
        /// The rendered site: out/<site>.
        #[arg(long = "plan", value_name = "DIR")]
        plan: PathBuf,
        /// Where the state (SQLite) lives.
        #[arg(long = "state", value_name = "DIR", default_value = "state")]
        state: PathBuf,
        /// Where the artifacts the plan lists are.
        #[arg(long = "artifacts", value_name = "DIR")]
        artifacts: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Directory of secret files (one per secret; private to the executor's user).
        #[arg(long = "secrets", value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// File holding the operator API's bearer token.
        #[arg(long = "operator-token-file", value_name = "FILE")]
        operator_token_file: Option<PathBuf>,
        /// The URL machines reach the executor at (default: the Host they ask).
        #[arg(long = "public-url", value_name = "URL")]
        public_url: Option<String>,
        /// Seconds a run may take before it fails for want of a report.
        #[arg(long = "run-timeout", default_value_t = 3600)]
        run_timeout: i64,
        /// Seconds a run token lives.
        #[arg(long = "token-ttl", default_value_t = 3600)]
        token_ttl: i64,
        /// Milliseconds between checks of plan.json for a change.
        #[arg(long = "poll-ms", default_value_t = 2000)]
        poll_ms: u64,
    },
    /// Show the machines of a running executor by state.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// File holding the operator bearer token (default: $KILN_OPERATOR_TOKEN).
        #[arg(long = "operator-token-file", value_name = "FILE")]
        operator_token_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: TableOrJson,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Print the JSON Schema of an input kind (all kinds when none is given).
    Schema {
        /// Site, Machine, Blueprint, Cluster or Recipe.
        kind: Option<String>,
    },
    /// Create a new input document.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Scaffold a working starter repository.
    Init {
        /// Directory to create (must be empty or absent).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// A Site (sites/NAME/site.yaml).
    Site {
        name: String,
        #[arg(long)]
        domain: Option<String>,
    },
    /// A Machine (sites/SITE/machines/NAME.yaml).
    Machine {
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        blueprint: String,
        /// MAC of the interface it PXE-boots from.
        #[arg(long)]
        mac: String,
        /// The site network of that interface (default: the site's first).
        #[arg(long)]
        network: Option<String>,
        /// A fixed address (default: IPAM allocates one).
        #[arg(long)]
        ip: Option<String>,
        /// Run hardware checks before the install.
        #[arg(long)]
        commission: bool,
    },
    /// A Cluster (sites/SITE/clusters/NAME.yaml).
    Cluster {
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        region: Option<String>,
        /// Worker replicas.
        #[arg(long)]
        workers: Option<u32>,
        /// CPUs per worker.
        #[arg(long)]
        cpu: Option<u32>,
        /// Memory per worker, e.g. 16Gi.
        #[arg(long)]
        memory: Option<String>,
        /// Kubernetes version, e.g. v1.35.2.
        #[arg(long = "k8s")]
        kubernetes_version: Option<String>,
        /// Recipes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        recipes: Vec<String>,
    },
}

/// Why a command failed, mapped to an exit code.
pub enum Failure {
    Input(Diagnostics),
    /// Input errors in files that are not on disk (a git revision).
    InputIn(Diagnostics, kiln_compiler::diag::Sources),
    Runtime(String),
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::Input(d)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Runtime(e.to_string())
    }
}

/// Parses `args` and runs the command; returns the exit code.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID_INPUT } else { exit::OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                stderr.write_all(text.as_bytes())
            } else {
                stdout.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let repo = cli.repo.clone();
    let json_errors = matches!(
        cli.command,
        Command::Render {
            format: TextOrJson::Json,
            ..
        } | Command::Validate {
            format: TextOrJson::Json,
            ..
        }
    );
    match dispatch(cli, stdout, stderr) {
        Err(Failure::Input(diags)) if json_errors => {
            let errors: Vec<Value> = diags
                .0
                .iter()
                .map(|d| json!({"file": d.file, "line": d.pos.line, "column": d.pos.col, "message": d.message}))
                .collect();
            let _ = writeln!(stdout, "{}", json!({"ok": false, "errors": errors}));
            exit::INVALID_INPUT
        }
        Ok(code) => code,
        Err(Failure::Input(diags)) => {
            let text = diags.render(|file| read_source(&repo, file));
            let _ = write!(stderr, "{text}");
            let _ = writeln!(stderr, "{} error(s); nothing was written", diags.0.len());
            exit::INVALID_INPUT
        }
        Err(Failure::InputIn(diags, sources)) => {
            let text = diags.render(|file| sources.get(file).cloned());
            let _ = write!(stderr, "{text}");
            let _ = writeln!(stderr, "{} error(s)", diags.0.len());
            exit::INVALID_INPUT
        }
        Err(Failure::Runtime(message)) => {
            let _ = writeln!(stderr, "error: {message}");
            exit::RUNTIME
        }
    }
}

/// A file's text for showing an error's line: repository files first, then
/// paths as given on the command line.
fn read_source(repo: &Path, file: &str) -> Option<Arc<str>> {
    std::fs::read_to_string(repo.join(file))
        .or_else(|_| std::fs::read_to_string(file))
        .ok()
        .map(Arc::from)
}

/// What every command that reads the repository shares.
pub struct Session<'a> {
    pub repo: PathBuf,
    pub out_dir: PathBuf,
    pub progress: &'a dyn Progress,
}

impl Session<'_> {
    /// Loads, resolves and renders the selected outputs in memory.
    pub fn compile(&self, names: Vec<String>, values: &ValueArgs) -> Result<Vec<kiln_compiler::emit::Output>, Failure> {
        let overrides = override_layers(values)?;
        let options = Options { only: names, overrides };
        Ok(kiln_compiler::compile(
            &self.repo,
            &self.out_dir,
            &options,
            self.progress,
        )?)
    }
}

fn dispatch(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<i32, Failure> {
    let json_progress = JsonLines(Mutex::new(std::io::stderr()));
    let session = Session {
        out_dir: cli.out.clone().unwrap_or_else(|| cli.repo.join("out")),
        repo: cli.repo.clone(),
        progress: match cli.progress {
            Some(ProgressFormat::Json) => &json_progress,
            None => &Silent,
        },
    };
    match cli.command {
        Command::Render {
            names,
            check,
            values,
            format,
        } => render(
            &session,
            names,
            check,
            &values,
            format == TextOrJson::Json,
            stdout,
            stderr,
        ),
        Command::Validate { names, values, format } => {
            let started = Instant::now();
            let outputs = session.compile(names, &values)?;
            let files: usize = outputs.iter().map(|o| o.files.len()).sum();
            let ms = started.elapsed().as_millis();
            if format == TextOrJson::Json {
                let list: Vec<Value> = outputs
                    .iter()
                    .map(|o| json!({"name": o.name, "kind": o.kind, "files": o.files.len()}))
                    .collect();
                writeln!(
                    stdout,
                    "{}",
                    json!({"ok": true, "outputs": list, "elapsedMs": ms as u64})
                )?;
            } else {
                writeln!(stdout, "ok: {} outputs, {files} files valid in {ms} ms", outputs.len())?;
            }
            Ok(exit::OK)
        }
        Command::Diff {
            base,
            head,
            format,
            exit_code,
        } => diff(&session, &base, head.as_deref(), format.into(), exit_code, stdout),
        Command::Explain {
            name,
            path,
            key,
            format,
            values,
        } => {
            let overrides = override_layers(&values)?;
            let (repo, mut diags) = kiln_compiler::load::load(&session.repo, &session.out_dir);
            diags.extend(kiln_compiler::resolve::check(&repo));
            let (sites, site_diags) = kiln_compiler::resolve::site::sites(&repo);
            diags.extend(site_diags);
            diags.finish(())?;
            let options = Options {
                only: Vec::new(),
                overrides,
            };
            let e = kiln_compiler::explain::explain(&repo, &sites, &options, &name, &path, key.as_deref())?;
            match format {
                TextOrJson::Text => write!(stdout, "{}", kiln_compiler::explain::to_text(&e))?,
                TextOrJson::Json => writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&e).expect("explanations serialize")
                )?,
            }
            Ok(exit::OK)
        }
        Command::Serve {
            plan,
            state,
            artifacts,
            listen,
            secrets,
            operator_token_file,
            public_url,
            run_timeout,
            token_ttl,
            poll_ms,
        } => {
            let options = kiln_executor::Options {
                plan_dir: plan,
                state_dir: state,
                artifacts_dir: artifacts,
                listen,
                secrets_dir: secrets,
                operator_token_file,
                public_url,
                timing: kiln_executor::Timing { run_timeout, token_ttl },
                poll: std::time::Duration::from_millis(poll_ms.max(50)),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime
                .block_on(kiln_executor::run(options))
                .map_err(Failure::Runtime)?;
            Ok(exit::OK)
        }
        Command::Status {
            server,
            operator_token_file,
            format,
        } => crate::cli::status::status(
            &server,
            operator_token_file.as_deref(),
            format == TableOrJson::Json,
            stdout,
        ),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "kiln", stdout);
            Ok(exit::OK)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(stdout)?;
            Ok(exit::OK)
        }
        Command::Schema { kind } => schema(kind.as_deref(), stdout),
        Command::New { what } => crate::cli::scaffold::new(&cli.repo, what, stdout),
        Command::Init { dir } => crate::cli::scaffold::init(&dir, stdout),
    }
}

fn render(
    session: &Session,
    names: Vec<String>,
    check: bool,
    values: &ValueArgs,
    json: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, Failure> {
    let started = Instant::now();
    let all = names.is_empty();
    let (out_dir, progress) = (&session.out_dir, session.progress);
    let outputs = session.compile(names, values)?;
    if check {
        let stale = step(progress, "check", None, || {
            kiln_compiler::emit::check(out_dir, &outputs, all)
        })?;
        if json {
            writeln!(stdout, "{}", json!({"upToDate": stale.is_empty(), "stale": stale}))?;
            return Ok(if stale.is_empty() { exit::OK } else { exit::DIFFERENCES });
        }
        if stale.is_empty() {
            writeln!(stdout, "out/ is up to date ({} outputs)", outputs.len())?;
            return Ok(exit::OK);
        }
        writeln!(stdout, "out/ is stale; these files differ from a fresh render:")?;
        for path in &stale {
            writeln!(stdout, "  {path}")?;
        }
        return Ok(exit::DIFFERENCES);
    }
    let report = step(progress, "write", None, || {
        kiln_compiler::emit::write(out_dir, &outputs, all)
    })?;
    if json {
        let body = json!({"written": report.written, "unchanged": report.unchanged, "removed": report.removed});
        writeln!(stdout, "{body}")?;
        return Ok(exit::OK);
    }
    let removed = if report.removed.is_empty() {
        String::new()
    } else {
        format!(", removed {}", report.removed.join(", "))
    };
    writeln!(
        stderr,
        "rendered {} outputs in {} ms: {} written, {} unchanged{removed}",
        outputs.len(),
        started.elapsed().as_millis(),
        report.written.len(),
        report.unchanged.len(),
    )?;
    Ok(exit::OK)
}

/// Renders `rev` of the repository in memory.
fn render_revision(session: &Session, rev: &str) -> Result<Vec<kiln_compiler::emit::Output>, Failure> {
    let source = kiln_compiler::diff::git::read_revision(&session.repo, rev).map_err(Failure::Runtime)?;
    let (repo, diags) = kiln_compiler::load::load_from(&source);
    kiln_compiler::compile_repo(&repo, diags, &Options::default(), session.progress).map_err(|d| {
        let labelled =
            d.0.into_iter()
                .map(|mut x| {
                    x.message = format!("{} (in {rev})", x.message);
                    x
                })
                .collect();
        Failure::InputIn(Diagnostics(labelled), repo.files.clone())
    })
}

fn diff(
    session: &Session,
    base: &str,
    head: Option<&str>,
    format: kiln_compiler::diff::Format,
    exit_code: bool,
    stdout: &mut dyn Write,
) -> Result<i32, Failure> {
    use std::io::IsTerminal;
    let base_outputs = step(session.progress, "render", Some(base), || {
        render_revision(session, base)
    })?;
    let (head_label, head_outputs) = match head {
        Some(rev) => (
            rev.to_string(),
            step(session.progress, "render", Some(rev), || render_revision(session, rev))?,
        ),
        None => (
            "working tree".to_string(),
            session.compile(Vec::new(), &ValueArgs::default())?,
        ),
    };
    let diff = step(session.progress, "diff", None, || {
        Ok::<_, Failure>(kiln_compiler::diff::compare(
            base,
            &base_outputs,
            &head_label,
            &head_outputs,
        ))
    })?;
    let color = format == kiln_compiler::diff::Format::Unified
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    write!(stdout, "{}", kiln_compiler::diff::render(&diff, format, color))?;
    Ok(if exit_code && !diff.is_empty() {
        exit::DIFFERENCES
    } else {
        exit::OK
    })
}

fn schema(kind: Option<&str>, stdout: &mut dyn Write) -> Result<i32, Failure> {
    let schema = match kind {
        Some(name) => match Kind::parse(name) {
            Some(kind) => kind.schema(),
            None => {
                return Err(Diagnostics::from(Diagnostic::new(
                    "<command line>",
                    Pos { line: 1, col: 1 },
                    format!("unknown kind `{name}`, expected one of Site, Machine, Blueprint, Cluster, Recipe"),
                ))
                .into())
            }
        },
        None => Value::Object(Kind::ALL.iter().map(|k| (k.as_str().to_string(), k.schema())).collect()),
    };
    writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(&schema).expect("schemas serialize")
    )?;
    Ok(exit::OK)
}

/// The command line's values layers: `-f` files in order, then `--set`.
pub fn override_layers(args: &ValueArgs) -> Result<Vec<Layer>, Failure> {
    let mut layers = Vec::new();
    let mut diags = Diagnostics::default();
    for path in &args.values {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Failure::Runtime(format!("{file}: {e}")))?;
        match values_document(&file, &text) {
            Ok(doc) => layers.push(Layer {
                name: "values file".into(),
                file,
                doc,
            }),
            Err(d) => diags.push(d),
        }
    }
    for (i, item) in args.set.iter().enumerate() {
        let Some((key, raw)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            diags.push(Diagnostic::new(
                "--set",
                Pos {
                    line: 1,
                    col: i as u32 + 1,
                },
                format!("`{item}` is not KEY=VALUE"),
            ));
            continue;
        };
        let value = parse_documents(raw)
            .ok()
            .and_then(|mut d| (d.len() == 1).then(|| d.remove(0).value))
            .unwrap_or_else(|| Value::String(raw.to_string()));
        let mut map = Map::new();
        set_path(&mut map, key, value);
        layers.push(Layer {
            name: "--set".into(),
            file: format!("--set {item}"),
            doc: Document::from_value(Value::Object(map)),
        });
    }
    diags.finish(layers).map_err(Failure::Input)
}
