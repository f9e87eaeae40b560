//! A parser for the Prometheus text format (0.0.4) and OpenMetrics text, enough to read pool
//! figures from an application's `/metrics`: samples with their labels and values. Written here
//! rather than taken from crates.io: prometheus-parse (regex based, last release 2023) mishandles
//! label values holding `}` or escaped quotes, and openmetrics-parser is LGPL. The input is
//! hostile by assumption (a scraped endpoint): label values keep their text but are unescaped,
//! never interpreted, and callers sanitise before display; lines that do not parse are counted,
//! not fatal.

use std::collections::BTreeMap;

use super::bounds::{MAX_POOL_SERIES, shown_series};
use super::scrape::ScrapeError;

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
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
pub(crate) struct Exposition {
    /// Every sample kept, in order.
    pub samples: Vec<Sample>,
    /// Lines that were neither comments nor samples.
    pub unreadable_lines: usize,
    /// Sample lines skipped by name (counted, not parsed).
    pub skipped_samples: usize,
}

impl Exposition {
    /// The samples called `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Whether any sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// Sample lines in the body, read or not.
    pub fn sample_lines(&self) -> usize {
        self.samples.len() + self.skipped_samples + self.unreadable_lines
    }
}

/// Parses a text exposition; see [`parse_where`] for what is refused.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Exposition, ScrapeError> {
    parse_where(text, |_| true)
}

/// Parses only the samples whose name `keep` accepts; the others are counted and skipped
/// before anything is allocated for them (a dashboard scraping twenty instances a second reads
/// the pool's few dozen samples out of bodies that carry hundreds). Refused: the same series
/// (name and label set) twice, which Prometheus drops as a duplicate and pgvigil once summed
/// (a thousand copies of `max 1` read as a maximum of 1,000). Refused past
/// [`MAX_POOL_SERIES`] kept samples, so the work and memory per body stay bounded whatever it
/// holds; the work is linear in the body (the duplicate check sorts the kept samples).
pub(crate) fn parse_where(
    text: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Exposition, ScrapeError> {
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
            out.skipped_samples += 1;
            continue;
        }
        match sample(line) {
            Some(s) if out.samples.len() >= MAX_POOL_SERIES => {
                return Err(ScrapeError::TooManySeries(s.name));
            }
            Some(s) => out.samples.push(s),
            None => out.unreadable_lines += 1,
        }
    }
    let mut order: Vec<&Sample> = out.samples.iter().collect();
    order.sort_unstable_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    if let Some(twice) = order
        .windows(2)
        .find(|w| w[0].name == w[1].name && w[0].labels == w[1].labels)
    {
        let s = twice[0];
        return Err(ScrapeError::Duplicate(shown_series(
            &s.name,
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )));
    }
    Ok(out)
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
        let all = parse(text).unwrap();
        let pools = parse_where(text, |n| {
            n.starts_with("hikaricp_") || n.starts_with("pgvigil_pool_")
        })
        .unwrap();
        assert_eq!(pools.skipped_samples, 2);
        assert_eq!(pools.sample_lines(), 4);
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
        )
        .unwrap();
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
    fn hostile_label_values_survive_as_text_and_the_screen_sanitiser_defuses_them() {
        let body = parse("x{pool=\"a\\\"b}\\n\x1b[2J\"} 1\n").unwrap();
        let label = body.samples[0].label("pool").unwrap();
        assert_eq!(label, "a\"b}\n\x1b[2J");
        let shown = crate::sanitize::printable(label);
        assert!(!shown.contains('\x1b') && !shown.contains('\n'), "{shown}");
    }

    #[test]
    fn broken_label_sets_are_unreadable_not_fatal() {
        let e = parse("a{x=\"unterminated} 1\nb{=\"v\"} 1\nc 1\n").unwrap();
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.unreadable_lines, 2);
    }

    #[test]
    fn the_same_series_twice_is_refused_as_prometheus_refuses_it() {
        // Label order does not make a series different; another label value does.
        let twice =
            "x{pool=\"a\",state=\"idle\"} 1\nx{pool=\"b\"} 1\nx{state=\"idle\",pool=\"a\"} 2\n";
        assert_eq!(
            parse(twice),
            Err(ScrapeError::Duplicate(
                "x{pool=\"a\",state=\"idle\"}".into()
            ))
        );
        assert!(parse("x{pool=\"a\"} 1\nx{pool=\"b\"} 1\nx 3\n").is_ok());
        let many: String = (0..1000)
            .map(|_| "hikaricp_connections_max{pool=\"p\"} 1\n")
            .collect();
        assert!(matches!(parse(&many), Err(ScrapeError::Duplicate(_))));
    }

    #[test]
    fn a_body_past_the_series_bound_is_refused_without_reading_the_rest() {
        let body: String = (0..=MAX_POOL_SERIES)
            .map(|i| format!("pgvigil_pool_acquire_seconds_bucket{{le=\"{i}\"}} {i}\n"))
            .collect();
        let err = parse(&body).unwrap_err();
        assert_eq!(
            err,
            ScrapeError::TooManySeries("pgvigil_pool_acquire_seconds_bucket".into())
        );
        assert!(err.to_string().contains("10000"), "{err}");
        // Skipped names do not count against the bound.
        assert!(parse_where(&body, |n| n.starts_with("hikaricp_")).is_ok());
    }
}
