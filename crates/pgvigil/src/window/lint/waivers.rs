//! `-- pgvigil:ignore RULE reason` on the line(s) directly above a statement waives RULE for
//! that statement only. The reason is required: a waiver without one is itself an error (a
//! reviewer must be able to read why), and so is one naming no known rule; a waiver that waived
//! nothing is a warning (the statement changed, or the rule name is wrong).

/// The marker.
pub const WAIVER_PREFIX: &str = "pgvigil:ignore";

/// One waiver comment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Waiver {
    /// 1-based line of the comment.
    pub line: usize,
    /// The rule named.
    pub rule: String,
    /// The reason (empty when missing).
    pub reason: String,
    /// 1-based line of the statement it applies to, when one starts right below.
    pub statement_line: Option<usize>,
}

/// The waivers of a file; `statement_lines`: the first line of each statement.
pub(crate) fn waivers(sql: &str, statement_lines: &[usize]) -> Vec<Waiver> {
    let lines: Vec<&str> = sql.lines().collect();
    let mut out = Vec::new();
    for (i, text) in lines.iter().enumerate() {
        let Some(body) = text.trim_start().strip_prefix("--") else {
            continue;
        };
        let Some(rest) = body.trim_start().strip_prefix(WAIVER_PREFIX) else {
            continue;
        };
        let mut parts = rest.trim().splitn(2, char::is_whitespace);
        let rule = parts.next().unwrap_or("").to_string();
        let reason = parts.next().unwrap_or("").trim().to_string();
        // The statement below: skip further comment lines (stacked waivers).
        let mut j = i + 1;
        while j < lines.len() && lines[j].trim_start().starts_with("--") {
            j += 1;
        }
        let statement_line = statement_lines.iter().copied().find(|&l| l == j + 1);
        out.push(Waiver {
            line: i + 1,
            rule,
            reason,
            statement_line,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiver_applies_to_the_statement_right_below() {
        let sql = "-- pgvigil:ignore ban-drop-column the column was unused since v3\n\
                   -- pgvigil:ignore changing-column-type\n\
                   ALTER TABLE t DROP COLUMN c;\n\n-- pgvigil:ignore x y\n\nSELECT 1;\n";
        let w = waivers(sql, &[3, 7]);
        assert_eq!(w.len(), 3);
        assert_eq!(
            (
                w[0].rule.as_str(),
                w[0].reason.as_str(),
                w[0].statement_line
            ),
            ("ban-drop-column", "the column was unused since v3", Some(3))
        );
        assert_eq!((w[1].reason.as_str(), w[1].statement_line), ("", Some(3)));
        assert_eq!(w[2].statement_line, None);
    }
}
