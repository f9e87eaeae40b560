//! Durations as people write them in environment files: `30` (seconds), `500ms`, `2m`, `1h`.
//! Kept separate from the config so the same rules apply to every *_TIMEOUT / *_DELAY variable.

use std::time::Duration;

/// The accepted forms, quoted in every error message about a duration.
pub const ACCEPTED_DURATION: &str = "a positive number of seconds (`30`, `0.5`) or a number with a unit: ms, s, m, h (`500ms`, `2m`)";

/// Parses `30`, `1.5`, `500ms`, `10s`, `2m`, `1h`. Returns `None` for anything else, including
/// negative numbers, NaN and values that overflow.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Human form used in logs and on screen: `850ms`, `1.5s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{}s", s.round() as u64)
        } else {
            format!("{s:.1}s")
        }
    } else if ms < 3_600_000 {
        let secs = d.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        let secs = d.as_secs();
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seconds_and_units() {
        let cases = [
            ("30", Duration::from_secs(30)),
            ("0.5", Duration::from_millis(500)),
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 15 ", Duration::from_secs(15)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_duration(raw), Some(want), "{raw}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for raw in ["", "ms", "-1", "1d", "abc", "1..2", "1e400", "NaN"] {
            assert_eq!(parse_duration(raw), None, "{raw}");
        }
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(4)), "4s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
