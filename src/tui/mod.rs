//! The dashboard. Data flows one way: the poller sends snapshots, `state::update` changes the
//! state, `ui::render` draws it; keys become actions through the keymap, actions become jobs,
//! job results come back as messages.

pub mod app;
pub mod apps;
pub mod cadence;
pub mod jobs;
pub mod keymap;
pub mod panic;
pub mod poller;
pub mod snapshot;
pub mod source_errors;
pub mod state;
pub mod theme;
pub mod ui;
pub mod verdicts;

pub use app::{DashboardOptions, run_dashboard};
