//! The command line: argument definitions and a dispatcher that hands each
//! command to its own module. `run` is what `main` calls; tests call it
//! in-process with their own stdout and stderr.
//!
//! Modules: `session` (what commands that read the repository share),
//! `failure` (errors and exit codes), and one module per command.

mod client;
mod diff;
mod explain;
mod failure;
mod fleet;
mod render;
mod scaffold;
mod schema;
mod serve;
mod session;
mod status;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::{Parser, Subcommand};

pub use failure::exit;
use failure::Failure;
use kiln_compiler::progress::{JsonLines, Silent};
use kiln_compiler::render::templates::Limits;
use session::{Session, TextOrJson};

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
    /// Largest file a template may render, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = 64)]
    pub max_file_mib: u64,
    /// Largest total a run's templates may render, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = 4096)]
    pub max_output_mib: u64,
    /// Template instructions one file's render may execute.
    #[arg(long, global = true, value_name = "N", default_value_t = 50_000_000)]
    pub template_fuel: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProgressFormat {
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render sites and clusters into out/<name>/.
    Render(render::RenderArgs),
    /// Check every input and render in memory without writing.
    Validate(render::ValidateArgs),
    /// Show what a change does to the rendered output, between git revisions.
    Diff(diff::DiffArgs),
    /// Show where the values behind a rendered file came from, layer by layer.
    Explain(explain::ExplainArgs),
    /// Show what a machine gets when it boots, for each firmware architecture.
    BootPath(explain::BootPathArgs),
    /// Run the site executor on a rendered site plan.
    Serve(Box<serve::ServeArgs>),
    /// Show the machines of a running executor by state.
    Status(status::StatusArgs),
    /// Write Machine documents for hardware a running executor discovered.
    Adopt(fleet::AdoptArgs),
    /// Compare installed machines' reported facts with the repository.
    Drift(fleet::DriftArgs),
    /// Download a running executor's diagnostics bundle (admin).
    Diag(serve::DiagArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Print the JSON Schema of an input kind (all kinds when none is given).
    Schema(schema::SchemaArgs),
    /// Create a new input document.
    New {
        #[command(subcommand)]
        what: scaffold::NewCommand,
    },
    /// Scaffold a working starter repository.
    Init(scaffold::InitArgs),
}

impl Command {
    /// Whether input errors are reported as JSON on stdout.
    fn reports_json(&self) -> bool {
        match self {
            Command::Render(a) => a.format == TextOrJson::Json,
            Command::Validate(a) => a.format == TextOrJson::Json,
            _ => false,
        }
    }
}

/// Where a command's output goes, and what it may know about it. `main`
/// passes the process's own; tests pass buffers.
pub struct Io<'a> {
    pub stdout: &'a mut dyn Write,
    /// Also where `--progress json` events go (from several threads).
    pub stderr: &'a mut (dyn Write + Send),
    /// Whether stdout is a terminal (`kiln diff` colours only then).
    pub stdout_is_terminal: bool,
}

/// stderr shared by a command and its progress events.
struct Stderr<'a>(Mutex<&'a mut (dyn Write + Send)>);

impl Write for &Stderr<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut w) => w.write(buf),
            Err(_) => Err(std::io::Error::other("stderr is poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut w) => w.flush(),
            Err(_) => Err(std::io::Error::other("stderr is poisoned")),
        }
    }
}

/// Parses `args` and runs the command; returns the exit code.
pub fn run<I, T>(args: I, io: Io) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let Io {
        stdout,
        stderr,
        stdout_is_terminal,
    } = io;
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
    let json_errors = cli.command.reports_json();
    let stderr = Stderr(Mutex::new(stderr));
    let result = dispatch(cli, stdout, &stderr, stdout_is_terminal);
    failure::report(result, &repo, json_errors, stdout, &mut &stderr)
}

fn dispatch(cli: Cli, stdout: &mut dyn Write, stderr: &Stderr, stdout_is_terminal: bool) -> Result<i32, Failure> {
    let json_progress = JsonLines(Mutex::new(stderr));
    // Only commands that read the repository need (and check) its out/.
    let session = || -> Result<Session, Failure> {
        Ok(Session {
            out_dir: session::out_dir(&cli.repo, cli.out.as_deref())?,
            repo: cli.repo.clone(),
            limits: Limits {
                file_bytes: cli.max_file_mib.saturating_mul(1 << 20),
                run_bytes: cli.max_output_mib.saturating_mul(1 << 20),
                fuel: cli.template_fuel,
            },
            progress: match cli.progress {
                Some(ProgressFormat::Json) => &json_progress,
                None => &Silent,
            },
        })
    };
    match cli.command {
        Command::Render(args) => render::render(&session()?, args, stdout, &mut &*stderr),
        Command::Validate(args) => render::validate(&session()?, args, stdout),
        Command::Diff(args) => diff::diff(&session()?, args, stdout, stdout_is_terminal),
        Command::Explain(args) => explain::explain(&session()?, args, stdout),
        Command::BootPath(args) => explain::boot_path(&session()?, args, stdout),
        Command::Serve(args) => serve::serve(*args, stdout),
        Command::Diag(args) => serve::diag(args, stdout),
        Command::Status(args) => status::run(args, stdout),
        Command::Adopt(args) => fleet::adopt(&session()?, args, stdout),
        Command::Drift(args) => fleet::drift(&session()?, args, stdout),
        Command::Completions { shell } => completions(shell, stdout),
        Command::Man => man(stdout),
        Command::Schema(args) => schema::schema(args, stdout),
        Command::New { what } => scaffold::new(&cli.repo, what, stdout),
        Command::Init(args) => scaffold::init(&args.dir, stdout),
    }
}

fn completions(shell: clap_complete::Shell, stdout: &mut dyn Write) -> Result<i32, Failure> {
    clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "kiln", stdout);
    Ok(exit::OK)
}

fn man(stdout: &mut dyn Write) -> Result<i32, Failure> {
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(stdout)?;
    Ok(exit::OK)
}
