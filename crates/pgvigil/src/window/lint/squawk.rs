//! squawk's linter as a library (squawk-linter / squawk-syntax 2.68.0): a fresh [`Linter`] per
//! file (it keeps state between calls), told the server's version and whether the file runs in
//! a transaction (sqlx's rule: unless its first line is `-- no-transaction`). A file that does
//! not parse gives its parse errors and is not linted: squawk's rules would run on a partial tree.

use squawk_linter::{Linter, Version};

/// A finding before severity and waivers: a rule at a byte offset.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub rule: String,
    pub offset: usize,
    pub message: String,
    pub fix: Option<String>,
}

/// Rules squawk reports whose subject is style, not locking or failure: reported as notes.
pub(crate) const STYLE_RULES: &[&str] = &[
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
    "ban-char-field",
    "identifier-too-long",
];

/// The parse errors of `sql`, or squawk's violations.
pub(crate) fn lint(
    sql: &str,
    pg_version: &str,
    in_transaction: bool,
) -> Result<Vec<Raw>, Vec<Raw>> {
    let parse = squawk_syntax::SourceFile::parse(sql);
    let errors = parse.errors();
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| Raw {
                rule: "syntax-error".into(),
                offset: u32::from(e.range().start()) as usize,
                message: e.message().to_string(),
                fix: None,
            })
            .collect());
    }
    let mut linter = Linter::with_default_rules();
    linter.settings.assume_in_transaction = in_transaction;
    if let Ok(v) = pg_version.parse::<Version>() {
        linter.settings.pg_version = v;
    }
    Ok(linter
        .lint(&parse, sql)
        .into_iter()
        .map(|v| Raw {
            rule: v.code.to_string(),
            offset: u32::from(v.text_range.start()) as usize,
            message: v.message,
            fix: v.help.or_else(|| v.fix.map(|f| f.title)),
        })
        .collect())
}
