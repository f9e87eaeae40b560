//! `pgvigil config`: the configuration pgvigil would use, as JSON (the password redacted).

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use super::print_out;

pub fn run(config: &PoolConfig) -> Status {
    print_out(&format!(
        "{}\n",
        serde_json::to_string_pretty(config).expect("config serialises")
    ));
    Status::Pass
}
