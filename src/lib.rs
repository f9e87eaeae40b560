//! The pgvigil application: the command line ([`cli`], one file per command in [`commands`]),
//! the dashboard ([`tui`]), report rendering ([`report`]), the demo ([`demo`]), the connection
//! flags ([`args`]), the private dev database it starts by default ([`dev_private`]), the
//! sidecar HTTP face ([`serve`]), how a command ends ([`error`]), signals ([`signal`]) and
//! logging ([`logging`]). Everything it
//! shows comes from the `pgvigil` library.

pub mod args;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod dev_private;
pub mod error;
pub mod logging;
pub mod report;
pub mod serve;
pub mod signal;
pub mod tui;
