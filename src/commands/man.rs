//! `pgvigil man`: the man page in roff, generated from the same clap definition the parser
//! uses (src/cli.rs): every flag, variable and default as `--help` shows them.

use std::path::PathBuf;

use clap::CommandFactory;
use pgvigil::checks::Status;

use super::print_out;
use crate::cli::Cli;
use crate::error::CommandError;

/// The page on standard output, or every page (pgvigil.1, pgvigil-check.1, ...) into `dir`.
pub fn run(dir: Option<PathBuf>) -> Result<Status, CommandError> {
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .expect("rendering into memory does not fail");
            print_out(&String::from_utf8_lossy(&page));
        }
        Some(dir) => clap_mangen::generate_to(Cli::command(), &dir)
            .map_err(|source| CommandError::ManDir { dir, source })?,
    }
    Ok(Status::Pass)
}
