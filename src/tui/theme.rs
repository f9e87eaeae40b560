//! Colour themes with semantic slots (after gitui): panels ask for `warn` or `border_focused`,
//! never for a colour. Themes are TOML files in themes/; all four shipped ones are embedded in
//! the binary so pgvigil runs without them. Glyphs (UTF-8 or ASCII) are decided once, from the
//! locale, like tokio-console does.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;

/// The shipped themes, embedded: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

/// Every slot a theme must define.
pub const SLOTS: &[&str] = &[
    "text",
    "dim",
    "title",
    "border",
    "border_focused",
    "header",
    "header_alert",
    "ok",
    "warn",
    "danger",
    "info",
    "gauge",
    "gauge_warn",
    "gauge_danger",
    "sparkline",
    "sparkline_wait",
    "key",
    "selected",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub border: Style,
    pub border_focused: Style,
    pub header: Style,
    pub header_alert: Style,
    pub ok: Style,
    pub warn: Style,
    pub danger: Style,
    pub info: Style,
    pub gauge: Style,
    pub gauge_warn: Style,
    pub gauge_danger: Style,
    pub sparkline: Style,
    pub sparkline_wait: Style,
    pub key: Style,
    pub selected: Style,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThemeError {
    #[error("theme {file}: {problem}")]
    Invalid { file: String, problem: String },
    #[error(
        "--theme {0}: no such theme or file; expected one of default, light, high-contrast, monochrome, or a path to a .toml file"
    )]
    Unknown(String),
}

impl Theme {
    /// `--theme NAME|PATH`: a built-in name, else a file.
    pub fn load(name_or_path: &str) -> Result<Theme, ThemeError> {
        if let Some((_, toml)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Theme::parse(toml, &format!("{name_or_path} (built in)"));
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            // A regular file of at most 256 KiB (a device or a FIFO must not hang the start).
            let text = pgvigil::config::read_named_file(path, 256 * 1024).map_err(|e| {
                ThemeError::Invalid {
                    file: path.display().to_string(),
                    problem: format!("{}; expected a theme .toml file", e.reason()),
                }
            })?;
            return Theme::parse(&text, &path.display().to_string());
        }
        Err(ThemeError::Unknown(name_or_path.to_string()))
    }

    pub fn builtin(name: &str) -> Theme {
        Theme::load(name).expect("built-in themes parse (tested)")
    }

    /// Parses a theme file; errors name the file and the key.
    pub fn parse(text: &str, file: &str) -> Result<Theme, ThemeError> {
        let invalid = |problem: String| ThemeError::Invalid {
            file: file.to_string(),
            problem,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(format!("not valid TOML: {}", e.message())))?;
        let name = match doc.get("name") {
            Some(toml::Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid("key `name`: expected a string".into())),
            None => return Err(invalid("key `name` is missing".into())),
        };
        let styles = match doc.get("styles") {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(invalid("table [styles] is missing".into())),
        };
        for key in styles.keys() {
            if !SLOTS.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "key `styles.{key}` is not a theme slot; expected one of {}",
                    SLOTS.join(", ")
                )));
            }
        }
        let get = |slot: &str| -> Result<Style, ThemeError> {
            match styles.get(slot) {
                Some(toml::Value::String(spec)) => parse_style(spec)
                    .map_err(|p| invalid(format!("key `styles.{slot}` = \"{spec}\": {p}"))),
                Some(_) => Err(invalid(format!(
                    "key `styles.{slot}`: expected a string such as \"yellow bold\""
                ))),
                None => Err(invalid(format!("key `styles.{slot}` is missing"))),
            }
        };
        Ok(Theme {
            name,
            text: get("text")?,
            dim: get("dim")?,
            title: get("title")?,
            border: get("border")?,
            border_focused: get("border_focused")?,
            header: get("header")?,
            header_alert: get("header_alert")?,
            ok: get("ok")?,
            warn: get("warn")?,
            danger: get("danger")?,
            info: get("info")?,
            gauge: get("gauge")?,
            gauge_warn: get("gauge_warn")?,
            gauge_danger: get("gauge_danger")?,
            sparkline: get("sparkline")?,
            sparkline_wait: get("sparkline_wait")?,
            key: get("key")?,
            selected: get("selected")?,
        })
    }
}

const COLOURS: &str = "reset black red green yellow blue magenta cyan gray darkgray lightred \
                       lightgreen lightyellow lightblue lightmagenta lightcyan white";

fn colour(word: &str) -> Option<Color> {
    Some(match word {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

/// Why a style spec is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StyleError {
    #[error("`on` needs a colour after it")]
    OnWithoutColour,
    #[error("unknown colour `{0}`; expected one of {COLOURS}")]
    UnknownColour(String),
    #[error(
        "unknown word `{0}`; expected a colour ({COLOURS}), `on COLOUR`, or bold, dim, italic, underlined, reversed"
    )]
    UnknownWord(String),
}

/// "yellow on black bold": a foreground, optionally `on` a background, then modifiers.
pub fn parse_style(spec: &str) -> Result<Style, StyleError> {
    let mut style = Style::new();
    let mut words = spec.split_whitespace().peekable();
    let mut fg_set = false;
    while let Some(word) = words.next() {
        let w = word.to_ascii_lowercase();
        if w == "on" {
            let bg = words.next().ok_or(StyleError::OnWithoutColour)?;
            let c = colour(&bg.to_ascii_lowercase())
                .ok_or_else(|| StyleError::UnknownColour(bg.to_string()))?;
            style = style.bg(c);
            continue;
        }
        let modifier = match w.as_str() {
            "bold" => Some(Modifier::BOLD),
            "dim" => Some(Modifier::DIM),
            "italic" => Some(Modifier::ITALIC),
            "underlined" => Some(Modifier::UNDERLINED),
            "reversed" => Some(Modifier::REVERSED),
            _ => None,
        };
        if let Some(m) = modifier {
            style = style.add_modifier(m);
        } else if let Some(c) = colour(&w).filter(|_| !fg_set) {
            style = style.fg(c);
            fg_set = true;
        } else {
            return Err(StyleError::UnknownWord(word.to_string()));
        }
    }
    Ok(style)
}

/// Characters that depend on what the terminal can show.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyphs {
    pub border: symbols::border::Set<'static>,
    pub bars: symbols::bar::Set<'static>,
    pub gauge_filled: &'static str,
    pub gauge_empty: &'static str,
    pub connected: &'static str,
    pub disconnected: &'static str,
    pub warn: &'static str,
    pub pass: &'static str,
    pub fail: &'static str,
    pub separator: &'static str,
}

pub const ASCII_BORDER: symbols::border::Set<'static> = symbols::border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

pub const ASCII_BARS: symbols::bar::Set<'static> = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: ".",
    one_eighth: ".",
    empty: " ",
};

impl Glyphs {
    pub fn unicode() -> Self {
        Self {
            border: symbols::border::PLAIN,
            bars: symbols::bar::NINE_LEVELS,
            gauge_filled: "█",
            gauge_empty: "░",
            connected: "●",
            disconnected: "○",
            warn: "▲",
            pass: "✓",
            fail: "✗",
            separator: "│",
        }
    }

    pub fn ascii() -> Self {
        Self {
            border: ASCII_BORDER,
            bars: ASCII_BARS,
            gauge_filled: "#",
            gauge_empty: ".",
            connected: "*",
            disconnected: "o",
            warn: "!",
            pass: "+",
            fail: "x",
            separator: "|",
        }
    }

    /// UTF-8 when the locale says so (LC_ALL, then LC_CTYPE, then LANG).
    pub fn from_locale(lc_all: Option<&str>, lc_ctype: Option<&str>, lang: Option<&str>) -> Self {
        let locale = [lc_all, lc_ctype, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty())
            .unwrap_or("");
        let l = locale.to_ascii_lowercase();
        if l.contains("utf-8") || l.contains("utf8") {
            Self::unicode()
        } else {
            Self::ascii()
        }
    }

    pub fn from_env() -> Self {
        let var = |n: &str| std::env::var(n).ok();
        Self::from_locale(
            var("LC_ALL").as_deref(),
            var("LC_CTYPE").as_deref(),
            var("LANG").as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_and_matches_its_file_name() {
        for (name, toml) in BUILTIN {
            let theme = Theme::parse(toml, name).unwrap();
            assert_eq!(theme.name, *name);
        }
    }

    #[test]
    fn style_specs() {
        assert_eq!(
            parse_style("yellow on black bold").unwrap(),
            Style::new()
                .fg(Color::Yellow)
                .bg(Color::Black)
                .add_modifier(Modifier::BOLD)
        );
        assert!(
            parse_style("purple")
                .unwrap_err()
                .to_string()
                .contains("unknown word `purple`")
        );
        assert!(
            parse_style("red on")
                .unwrap_err()
                .to_string()
                .contains("`on` needs a colour")
        );
    }

    #[test]
    fn locale_decides_the_glyphs() {
        assert_eq!(
            Glyphs::from_locale(None, None, Some("en_US.UTF-8")),
            Glyphs::unicode()
        );
        assert_eq!(
            Glyphs::from_locale(Some("C"), None, Some("en_US.UTF-8")),
            Glyphs::ascii()
        );
        assert_eq!(Glyphs::from_locale(None, None, None), Glyphs::ascii());
        assert_eq!(
            Glyphs::from_locale(None, Some("de_DE.utf8"), None),
            Glyphs::unicode()
        );
    }
}
