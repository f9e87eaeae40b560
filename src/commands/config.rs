//! `pgvigil config`: the configuration pgvigil would use, as JSON (the password redacted).

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use super::print_json;
use crate::error::CommandError;

pub fn run(config: &PoolConfig) -> Result<Status, CommandError> {
    print_json(config);
    Ok(Status::Pass)
}
