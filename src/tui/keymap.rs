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
    /// Shown in the footer (the most used ones).
    pub in_footer: bool,
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
        in_footer: true,
        matches: |k| plain(k, '?'),
    },
    Binding {
        keys: "q ^C",
        action: Action::Quit,
        description: "quit",
        in_footer: true,
        matches: |k| {
            plain(k, 'q')
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
        },
    },
    Binding {
        keys: "v",
        action: Action::Verify,
        description: "verify pgvector, schema, migrations",
        in_footer: true,
        matches: |k| plain(k, 'v'),
    },
    Binding {
        keys: "d",
        action: Action::DryRun,
        description: "dry-run pending migrations (rolled back)",
        in_footer: true,
        matches: |k| plain(k, 'd'),
    },
    Binding {
        keys: "r",
        action: Action::RetryNow,
        description: "retry the connection now",
        in_footer: true,
        matches: |k| plain(k, 'r'),
    },
    Binding {
        keys: "p",
        action: Action::TogglePause,
        description: "pause / resume polling",
        in_footer: true,
        matches: |k| plain(k, 'p'),
    },
    Binding {
        keys: "+ -",
        action: Action::Faster,
        description: "refresh faster / slower",
        in_footer: true,
        matches: |k| plain(k, '+') || plain(k, '='),
    },
    Binding {
        keys: "-",
        action: Action::Slower,
        description: "refresh slower",
        in_footer: false,
        matches: |k| plain(k, '-'),
    },
    Binding {
        keys: "s",
        action: Action::CycleSource,
        description: "pool source: all, apps, pgbouncer, fleet",
        in_footer: false,
        matches: |k| plain(k, 's'),
    },
    Binding {
        keys: "l",
        action: Action::CycleLogLevel,
        description: "cycle the log level",
        in_footer: false,
        matches: |k| plain(k, 'l'),
    },
    Binding {
        keys: "Tab",
        action: Action::FocusNext,
        description: "focus next panel",
        in_footer: false,
        matches: |k| k.code == KeyCode::Tab,
    },
    Binding {
        keys: "S-Tab",
        action: Action::FocusPrev,
        description: "focus previous panel",
        in_footer: false,
        matches: |k| k.code == KeyCode::BackTab,
    },
    Binding {
        keys: "Up",
        action: Action::ScrollUp,
        description: "scroll up",
        in_footer: false,
        matches: |k| k.code == KeyCode::Up,
    },
    Binding {
        keys: "Down",
        action: Action::ScrollDown,
        description: "scroll down",
        in_footer: false,
        matches: |k| k.code == KeyCode::Down,
    },
    Binding {
        keys: "PgUp",
        action: Action::PageUp,
        description: "page up",
        in_footer: false,
        matches: |k| k.code == KeyCode::PageUp,
    },
    Binding {
        keys: "PgDn",
        action: Action::PageDown,
        description: "page down",
        in_footer: false,
        matches: |k| k.code == KeyCode::PageDown,
    },
    Binding {
        keys: "Esc",
        action: Action::Cancel,
        description: "cancel the running job / close help",
        in_footer: false,
        matches: |k| k.code == KeyCode::Esc,
    },
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
            KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Char('+'), KeyModifiers::SHIFT),
            KeyEvent::new(KeyCode::Char('-'), KeyModifiers::NONE),
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        ];
        for p in probes {
            assert_eq!(KEYMAP.iter().filter(|b| b.matches(&p)).count(), 1, "{p:?}");
        }
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }
}
