//! The dashboard. Data flows one way: every producer (the poller, the pool sources, the jobs,
//! the terminal, the clock) sends a `message::Message` on one bus, `state::update` changes the
//! state, `ui::render` draws it; keys become actions through the keymap, actions become jobs,
//! job progress and results come back as messages.
//!
//! A new panel is three files: its producer's variant in `message.rs` (sent on the bus by the
//! task or job that reads it), a module in `state/` that applies it (its field on `State`, its
//! `apply`, dispatched from `state::update`), and its file in `ui/` that draws that field.

pub mod app;
pub mod apps;
pub mod cadence;
#[cfg(test)]
mod fixtures;
pub mod jobs;
pub mod keymap;
pub mod message;
pub mod panic;
pub mod poller;
pub mod snapshot;
pub mod source_errors;
pub mod state;
pub mod theme;
pub mod ui;
pub mod verdicts;

pub use app::{DashboardOptions, run_dashboard};
