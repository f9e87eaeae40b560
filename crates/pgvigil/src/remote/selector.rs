//! The fleet's selector (`--selector '{job="docs-api"}'`): a list of label matchers and nothing
//! else. It is parsed with PromQL's rules for label names and string literals and written back
//! into the query from the parsed parts, never pasted: `{job="a"} or vector(1e300)` is refused
//! when the flag is read, not sent to Prometheus as part of the query.

use std::fmt::Write;

use super::scrape::ScrapeError;

/// One matcher: `name="v"`, `name!="v"`, `name=~"re"` or `name!~"re"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed selector: zero or more matchers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses `{name="v", ...}`; `what` names the flag or variable for errors.
    pub fn parse(raw: &str, what: &str) -> Result<Self, ScrapeError> {
        let bad = |reason: String| ScrapeError::BadSelector {
            what: what.to_string(),
            value: crate::sanitize::printable(raw).into_owned(),
            reason,
        };
        let text = raw.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let Some(inner) = text.strip_prefix('{') else {
            return Err(bad("it does not start with `{`".into()));
        };
        let mut rest = inner;
        let mut matchers = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                return Err(bad("no closing `}`".into()));
            }
            if let Some(after) = rest.strip_prefix('}') {
                if !after.trim().is_empty() {
                    return Err(bad(format!(
                        "`{}` follows the closing `}}`",
                        crate::sanitize::printable(after.trim())
                    )));
                }
                return Ok(Self { matchers });
            }
            if !matchers.is_empty() {
                rest = rest
                    .strip_prefix(',')
                    .ok_or_else(|| bad("matchers are separated by `,`".into()))?
                    .trim_start();
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    if !rest.trim().is_empty() {
                        return Err(bad(format!(
                            "`{}` follows the closing `}}`",
                            crate::sanitize::printable(rest.trim())
                        )));
                    }
                    return Ok(Self { matchers });
                }
            }
            let name_len = rest
                .char_indices()
                .find(|&(i, c)| {
                    !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                })
                .map_or(rest.len(), |(i, _)| i);
            if name_len == 0 {
                return Err(bad(if rest.is_empty() {
                    "no closing `}`".into()
                } else {
                    "a label name is a letter or `_`, then letters, digits or `_`".into()
                }));
            }
            let name = &rest[..name_len];
            if name == "__name__" {
                return Err(bad(
                    "`__name__` is not accepted: the metric names are pgvigil's".into(),
                ));
            }
            rest = rest[name_len..].trim_start();
            let op = ["!=", "=~", "!~", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .ok_or_else(|| bad(format!("`{name}` needs =, !=, =~ or !~")))?;
            rest = rest[op.len()..].trim_start();
            let (value, after) =
                string_literal(rest).map_err(|why| bad(format!("{name}: {why}")))?;
            rest = after;
            matchers.push(Matcher {
                name: name.to_string(),
                op,
                value,
            });
        }
    }

    /// The matchers.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// The matchers as PromQL, comma-separated, without braces; empty for none.
    pub fn promql(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}{}\"", m.name, m.op);
            for c in m.value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c if c.is_control() => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out
    }
}

/// Why a matcher's value is not a PromQL string literal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum LiteralError {
    #[error("the value is a quoted string (\"v\", 'v' or `v`)")]
    NotQuoted,
    #[error("a line break inside the string")]
    LineBreak,
    #[error("an unfinished escape")]
    UnfinishedEscape,
    /// `\x`, `\u`, `\U` or octal with the wrong digits (shown escaped).
    #[error("`\\{0}` is not a valid escape")]
    BadCode(String),
    /// A letter after `\` that PromQL has no escape for (shown escaped).
    #[error("`\\{0}` is not an escape PromQL knows")]
    Unknown(String),
    #[error("the string is not closed")]
    Unclosed,
}

/// A PromQL string literal at the start of `s`: `"..."` or `'...'` with Go's escapes, or a raw
/// `` `...` ``. Returns the value and what follows.
fn string_literal(s: &str) -> Result<(String, &str), LiteralError> {
    let mut chars = s.char_indices();
    let quote = match chars.next() {
        Some((_, q @ ('"' | '\'' | '`'))) => q,
        _ => return Err(LiteralError::NotQuoted),
    };
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, &s[i + c.len_utf8()..])),
            '\n' if quote != '`' => return Err(LiteralError::LineBreak),
            '\\' if quote != '`' => {
                let (_, e) = chars.next().ok_or(LiteralError::UnfinishedEscape)?;
                let mut take = |n: usize| -> String {
                    (0..n)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect()
                };
                let code = |digits: &str, radix: u32, n: usize| {
                    u32::from_str_radix(digits, radix)
                        .ok()
                        .filter(|v| digits.len() == n && (radix == 16 || *v < 256))
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            LiteralError::BadCode(
                                crate::sanitize::printable(&format!("{e}{digits}")).into_owned(),
                            )
                        })
                };
                value.push(match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    '\\' => '\\',
                    q if q == quote => q,
                    'x' => code(&take(2), 16, 2)?,
                    'u' => code(&take(4), 16, 4)?,
                    'U' => code(&take(8), 16, 8)?,
                    '0'..='7' => {
                        let digits = take(2);
                        code(&format!("{e}{digits}"), 8, 3)?
                    }
                    other => {
                        return Err(LiteralError::Unknown(
                            crate::sanitize::printable(&other.to_string()).into_owned(),
                        ));
                    }
                });
            }
            c => value.push(c),
        }
    }
    Err(LiteralError::Unclosed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promql(raw: &str) -> Result<String, ScrapeError> {
        Selector::parse(raw, "--selector").map(|s| s.promql())
    }

    #[test]
    fn label_matcher_lists_are_read_and_written_back_from_their_parts() {
        for (raw, want) in [
            ("", ""),
            ("{}", ""),
            ("{job=\"docs-api\"}", "job=\"docs-api\""),
            (
                " { job = \"a\" , env!=\"dev\", pod=~\"api-.*\",  zone!~'eu-\\'x', } ",
                "job=\"a\",env!=\"dev\",pod=~\"api-.*\",zone!~\"eu-'x\"",
            ),
            ("{a=`raw\\d+`}", "a=\"raw\\\\d+\""),
            ("{a=\"q\\\"\\x41\\u00e9\\101\\n\"}", "a=\"q\\\"AéA\\n\""),
            ("{_x1=\"}\"}", "_x1=\"}\""),
        ] {
            assert_eq!(promql(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn anything_but_label_matchers_is_refused_naming_the_flag() {
        for (raw, why) in [
            (
                "{job=\"a\"} or vector(1e300) or {b=\"c\"}",
                "follows the closing",
            ),
            ("job=x", "does not start with"),
            ("{job=x}", "quoted string"),
            ("{job=\"a\" env=\"b\"}", "separated by"),
            ("{1job=\"a\"}", "a label name is"),
            ("{job==\"a\"}", "quoted string"),
            ("{job=\"a\"", "no closing"),
            ("{job=\"a}", "not closed"),
            ("{job=\"a\\q\"}", "not an escape"),
            ("{__name__=\"x\"}", "__name__"),
            ("{job<\"a\"}", "needs =, !=, =~ or !~"),
            ("{job=\"a\"}) or vector(1", "follows the closing"),
        ] {
            let err = promql(raw).unwrap_err().to_string();
            assert!(err.starts_with("--selector: `"), "{raw}: {err}");
            assert!(err.contains(why), "{raw}: {err}");
            assert!(err.contains("name=~\"re\""), "{raw}: {err}");
        }
    }
}
