//! One keymap feeds the key handler, the help screen and the footer hints (after gitui).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Help,
    Quit,
    FocusNext,
    FocusPrev,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    Verify,
    DryRun,
    Lint,
    Backup,
    Rehearse,
    RetryNow,
    TogglePause,
    Faster,
    Slower,
    CycleLogLevel,
    CycleSource,
    Cancel,
}

pub struct Binding {
    /// As shown on screen.
    pub keys: &'static str,
    pub action: Action,
    pub description: &'static str,
    /// In the footer (the most used ones), as written there: keys and one word.
    pub footer: Option<(&'static str, &'static str)>,
    matches: fn(&KeyEvent) -> bool,
}

impl Binding {
    pub fn matches(&self, key: &KeyEvent) -> bool {
        (self.matches)(key)
    }
}

fn plain(key: &KeyEvent, c: char) -> bool {
    key.code == KeyCode::Char(c)
        && !key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
}

pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: "?",
        action: Action::Help,
        description: "help",
        footer: Some(("?", "help")),
        matches: |k| plain(k, '?'),
    },
    Binding {
        keys: "q ^C",
        action: Action::Quit,
        description: "quit",
        footer: Some(("q ^C", "quit")),
        matches: |k| {
            plain(k, 'q')
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
        },
    },
    Binding {
        keys: "v",
        action: Action::Verify,
        description: "verify pgvector, schema, migrations",
        footer: Some(("v", "verify")),
        matches: |k| plain(k, 'v'),
    },
    Binding {
        keys: "d",
        action: Action::DryRun,
        description: "dry-run pending migrations on the dev database",
        footer: Some(("d", "dry-run")),
        matches: |k| plain(k, 'd'),
    },
    // `l` already cycles the log level (and engineers' fingers know it): the lint is `m`, for
    // the migrations it reads.
    Binding {
        keys: "m",
        action: Action::Lint,
        description: "lint pending migrations against production's tables",
        footer: Some(("m", "lint")),
        matches: |k| plain(k, 'm'),
    },
    Binding {
        keys: "b",
        action: Action::Backup,
        description: "backup production, verify its restore on the dev database",
        footer: Some(("b", "backup")),
        matches: |k| plain(k, 'b'),
    },
    // `r` retries the connection; the rehearsal is its capital, a deliberate reach.
    Binding {
        keys: "R",
        action: Action::Rehearse,
        description: "rehearse pending migrations on the newest verified backup",
        footer: Some(("R", "rehearse")),
        matches: |k| plain(k, 'R'),
    },
    Binding {
        keys: "r",
        action: Action::RetryNow,
        description: "retry the connection now",
        footer: Some(("r", "retry")),
        matches: |k| plain(k, 'r'),
    },
    Binding {
        keys: "p",
        action: Action::TogglePause,
        description: "pause / resume polling",
        footer: Some(("p", "pause")),
        matches: |k| plain(k, 'p'),
    },
    Binding {
        keys: "+",
        action: Action::Faster,
        description: "refresh faster",
        // One footer entry for the pair.
        footer: Some(("+ -", "refresh")),
        matches: |k| plain(k, '+') || plain(k, '='),
    },
    Binding {
        keys: "-",
        action: Action::Slower,
        description: "refresh slower",
        footer: None,
        matches: |k| plain(k, '-'),
    },
    Binding {
        keys: "s",
        action: Action::CycleSource,
        description: "pool source: all, apps, pgbouncer, fleet",
        footer: None,
        matches: |k| plain(k, 's'),
    },
    Binding {
        keys: "l",
        action: Action::CycleLogLevel,
        description: "cycle the log level",
        footer: None,
        matches: |k| plain(k, 'l'),
    },
    Binding {
        keys: "Tab",
        action: Action::FocusNext,
        description: "next panel (the one shown below 100 columns)",
        footer: None,
        matches: |k| k.code == KeyCode::Tab,
    },
    Binding {
        keys: "S-Tab",
        action: Action::FocusPrev,
        description: "focus previous panel",
        footer: None,
        matches: |k| k.code == KeyCode::BackTab,
    },
    Binding {
        keys: "Up",
        action: Action::ScrollUp,
        description: "scroll up",
        footer: None,
        matches: |k| k.code == KeyCode::Up,
    },
    Binding {
        keys: "Down",
        action: Action::ScrollDown,
        description: "scroll down",
        footer: None,
        matches: |k| k.code == KeyCode::Down,
    },
    Binding {
        keys: "PgUp",
        action: Action::PageUp,
        description: "page up",
        footer: None,
        matches: |k| k.code == KeyCode::PageUp,
    },
    Binding {
        keys: "PgDn",
        action: Action::PageDown,
        description: "page down",
        footer: None,
        matches: |k| k.code == KeyCode::PageDown,
    },
    Binding {
        keys: "Esc",
        action: Action::Cancel,
        description: "cancel the running job / close help",
        footer: None,
        matches: |k| k.code == KeyCode::Esc,
    },
];

/// Footer hints shown only when the footer has room for them beside the others (at 80
/// columns it has not: they are in the help).
pub const FOOTER_IF_ROOM: &[Action] = &[Action::Lint, Action::Backup, Action::Rehearse];

/// What the help screen says under the keys: what the keys may change.
pub const HELP_NOTES: &[&str] = &[
    // One line at 80 columns: the help must fit 24 rows with every key.
    "Production is only read: v, d, b and R run SQL on the dev database.",
    "Any key closes this help.",
];

/// The keys of `action` as shown on screen ("v", "Esc"): hints in panels come from here, so
/// that they cannot disagree with what the handler does.
pub fn keys_for(action: Action) -> &'static str {
    KEYMAP
        .iter()
        .find(|b| b.action == action)
        .map(|b| b.keys)
        .unwrap_or("?")
}

pub fn action_for(key: &KeyEvent) -> Option<Action> {
    KEYMAP.iter().find(|b| b.matches(key)).map(|b| b.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_key_and_keys_are_unambiguous() {
        let probes = [
            KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT),
            KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            KeyEvent::new(KeyCode::Char('v'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('m'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('b'), KeyModifiers::NONE),
            // The rehearsal is the capital of retry's key: each must reach its own action.
            KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT),
            KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('l'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('+'), KeyModifiers::SHIFT),
            KeyEvent::new(KeyCode::Char('-'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        ];
        for p in probes {
            assert_eq!(KEYMAP.iter().filter(|b| b.matches(&p)).count(), 1, "{p:?}");
        }
        // The help lists each key once.
        let mut keys: Vec<&str> = KEYMAP.iter().flat_map(|b| b.keys.split(' ')).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key listed twice");
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Action::Rehearse)
        );
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE)),
            Some(Action::RetryNow)
        );
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }
}
