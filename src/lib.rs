//! The `kiln` command line. The work is done by the workspace's crates:
//! `kiln-compiler` (render, validate, diff, explain), `kiln-executor`
//! (`kiln serve`) and `kiln-plan` (the contract between the two). This crate
//! parses arguments and hands each command to its module; tests call
//! [`cli::run`] in-process with their own stdout and stderr.

pub mod cli;
