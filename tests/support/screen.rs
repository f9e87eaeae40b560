//! The dashboard drawn on ratatui's TestBackend, as the text an engineer would read.
#![allow(dead_code)] // tests/dashboard_render.rs includes this file for `rows` alone.

use pgvigil_cli::tui::state::State;
use pgvigil_cli::tui::theme::{Glyphs, Theme};

/// `state` drawn at `width` x `height` with the default theme, one line per row.
pub fn text(state: &State, (width, height): (u16, u16), glyphs: &Glyphs) -> String {
    let theme = Theme::builtin("default");
    let look = pgvigil_cli::tui::ui::Look {
        theme: &theme,
        glyphs,
        log: None,
    };
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| pgvigil_cli::tui::ui::render(f, state, &look))
        .unwrap();
    rows(&terminal).join("\n")
}

/// The rows of the screen as text, one string per row.
pub fn rows(terminal: &ratatui::Terminal<ratatui::backend::TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}
