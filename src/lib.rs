//! The pgvigil application: the dashboard ([`tui`]), report rendering ([`report`]), the demo
//! ([`demo`]), the command-line flags ([`args`]) and the private dev database it starts by
//! default ([`dev_private`]) and the sidecar HTTP face ([`serve`]). Everything it shows comes from the `pgvigil` library.

pub mod args;
pub mod demo;
pub mod dev_private;
pub mod report;
pub mod serve;
pub mod tui;
