//! A parser for the Prometheus text format (0.0.4) and OpenMetrics text, enough to read pool
//! figures from an application's `/metrics`: samples with their labels and values. Written here
//! rather than taken from crates.io: prometheus-parse (regex based, last release 2023) mishandles
//! label values holding `}` or escaped quotes, and openmetrics-parser is LGPL. The input is
//! hostile by assumption (a scraped endpoint): label values keep their text but are unescaped,
//! never interpreted, and callers sanitise before display; lines that do not parse are counted,
//! not fatal.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (`hikaricp_connections_active`, `x_bucket`, `y_total`).
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// A label's value, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// What a body held: the samples and how many lines could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Lines that were neither comments nor samples.
    pub unreadable_lines: usize,
}

impl Exposition {
    /// The samples called `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The sum of the samples called `name` (over all label sets), if there is any.
    pub fn sum(&self, name: &str) -> Option<f64> {
        let mut any = false;
        let total = self
            .named(name)
            .inspect(|_| any = true)
            .map(|s| s.value)
            .sum();
        any.then_some(total)
    }
}

/// Parses a text exposition.
pub fn parse(text: &str) -> Exposition {
    parse_where(text, |_| true)
}

/// Parses only the samples whose name `keep` accepts; the others are skipped before anything
/// is allocated for them (a dashboard scraping twenty instances a second reads the pool's few
/// dozen samples out of bodies that carry hundreds).
pub fn parse_where(text: &str, keep: impl Fn(&str) -> bool) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.trim_start();
        let name = &name[..name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(name.len())];
        if !keep(name) {
            continue;
        }
        match sample(line) {
            Some(s) => out.samples.push(s),
            None => out.unreadable_lines += 1,
        }
    }
    out
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim_start();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end == 0 {
        return None;
    }
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = label_set(after)?;
        labels = parsed;
        rest = remaining;
    }
    // The value, then an optional timestamp, then (OpenMetrics) an optional exemplar after #.
    let rest = rest.split(" # ").next().unwrap_or("");
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `name="value",...}` after the opening brace; returns the labels and what follows `}`.
fn label_set(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_where_keeps_only_the_names_asked_for_and_reads_them_alike() {
        let text = "jvm_threads{state=\"a}b\"} 4\n\
                    hikaricp_connections_max{pool=\"p\",} 10.0\n\
                    pgvigil_pool_connections{pool=\"m\",state=\"idle\"} 2\n\
                    process_cpu 1\n";
        let all = parse(text);
        let pools = parse_where(text, |n| {
            n.starts_with("hikaricp_") || n.starts_with("pgvigil_pool_")
        });
        assert_eq!(all.samples.len(), 4);
        assert_eq!(pools.samples.len(), 2);
        assert_eq!(pools.samples[0], all.samples[1]);
        assert_eq!(pools.samples[1], all.samples[2]);
    }

    #[test]
    fn label_values_keep_braces_quotes_and_newlines() {
        let e = parse(
            "# HELP x a\n# TYPE x gauge\n\
             x{pool=\"a}b\",app=\"say \\\"hi\\\"\\nnext\\\\\"} 3 1700000000000\n\
             y_total 2 # {trace_id=\"abc\"} 1.0\n\
             z{le=\"+Inf\"} +Inf\n\
             garbage line here\n# EOF\n",
        );
        assert_eq!(e.samples.len(), 3, "{e:?}");
        assert_eq!(e.samples[0].label("pool"), Some("a}b"));
        assert_eq!(e.samples[0].label("app"), Some("say \"hi\"\nnext\\"));
        assert_eq!(e.samples[0].value, 3.0);
        assert_eq!(e.samples[1].name, "y_total");
        assert_eq!(e.samples[1].value, 2.0);
        assert!(e.samples[2].value.is_infinite());
        assert_eq!(e.unreadable_lines, 1);
    }

    #[test]
    fn broken_label_sets_are_unreadable_not_fatal() {
        let e = parse("a{x=\"unterminated} 1\nb{=\"v\"} 1\nc 1\n");
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.unreadable_lines, 2);
    }
}
