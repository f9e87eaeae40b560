//! `pgvigil completions SHELL`: the shell's completion script, generated from the same clap
//! definition the parser uses (src/cli.rs), so a new flag completes without anyone editing a
//! script.

use clap::CommandFactory;
use pgvigil::checks::Status;

use super::print_out;
use crate::cli::Cli;
use crate::error::CommandError;

pub fn run(shell: clap_complete::Shell) -> Result<Status, CommandError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgvigil", &mut script);
    print_out(&String::from_utf8_lossy(&script));
    Ok(Status::Pass)
}
