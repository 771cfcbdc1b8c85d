use std::io::IsTerminal;

fn main() {
    let stdout = std::io::stdout();
    let io = kiln::cli::Io {
        stdout_is_terminal: stdout.is_terminal(),
        stdout: &mut stdout.lock(),
        stderr: &mut std::io::stderr(),
    };
    std::process::exit(kiln::cli::run(std::env::args_os(), io));
}
