//! The statements of one migration file as the pgvector rules and the severity need them: each
//! statement's byte range (from squawk's parse, so statement boundaries agree with squawk's
//! rules), its words in order (comments and string literals skipped, identifiers lower-cased
//! unless quoted), and the table it touches.

use squawk_syntax::ast::AstNode;

/// One token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A keyword or identifier: lower-cased, or as written when double-quoted.
    Word(String),
    /// A number.
    Number(String),
    /// A string literal's text (a dollar-quoted body is kept empty: it is code, not a value).
    Literal(String),
    /// One punctuation character (`::` is two `:`).
    Punct(char),
}

impl Tok {
    pub(crate) fn is(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w == word)
    }
}

/// A statement of a file.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// Byte offset of its first character in the file.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// Its tokens.
    pub toks: Vec<Tok>,
}

impl Statement {
    /// Whether the statement begins with these words.
    pub(crate) fn starts_with(&self, words: &[&str]) -> bool {
        words.len() <= self.toks.len() && words.iter().zip(&self.toks).all(|(w, t)| t.is(w))
    }

    /// Position of the first occurrence of `word` at or after `from`.
    pub(crate) fn find(&self, word: &str, from: usize) -> Option<usize> {
        self.toks
            .iter()
            .skip(from)
            .position(|t| t.is(word))
            .map(|i| i + from)
    }

    /// The (possibly schema-qualified) name at `i`, and the index after it.
    pub(crate) fn name_at(&self, i: usize) -> Option<(String, usize)> {
        let Tok::Word(first) = self.toks.get(i)? else {
            return None;
        };
        if matches!(self.toks.get(i + 1), Some(Tok::Punct('.')))
            && let Some(Tok::Word(second)) = self.toks.get(i + 2)
        {
            return Some((format!("{first}.{second}"), i + 3));
        }
        Some((first.clone(), i + 1))
    }

    /// The table the statement changes, when it is one of the statements that lock a table:
    /// ALTER TABLE, CREATE INDEX, DROP INDEX (the index's name), UPDATE, DELETE, CREATE TABLE,
    /// VACUUM FULL / CLUSTER / REINDEX TABLE, TRUNCATE.
    pub(crate) fn table(&self) -> Option<String> {
        let skip = |mut i: usize, words: &[&str]| {
            while self
                .toks
                .get(i)
                .is_some_and(|t| words.iter().any(|w| t.is(w)))
            {
                i += 1;
            }
            i
        };
        if self.starts_with(&["alter", "table"]) {
            let i = skip(2, &["if", "exists", "only"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        if self.starts_with(&["create", "table"]) {
            let i = skip(2, &["if", "not", "exists"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        if self.starts_with(&["create"]) && self.find("index", 1).is_some_and(|i| i <= 2) {
            let on = self.find("on", 2)?;
            let i = skip(on + 1, &["only"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        if self.starts_with(&["update"]) || self.starts_with(&["truncate"]) {
            let i = skip(1, &["only", "table"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        if self.starts_with(&["delete", "from"]) {
            let i = skip(2, &["only"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        if self.starts_with(&["vacuum"]) || self.starts_with(&["cluster"]) {
            let i = skip(1, &["full", "verbose", "analyze", "freeze"]);
            return self.name_at(i).map(|(n, _)| n);
        }
        None
    }
}

/// The statements of `sql` as squawk parsed them (a file that does not parse is never split).
pub(crate) fn split(sql: &str) -> Vec<Statement> {
    let parse = squawk_syntax::SourceFile::parse(sql);
    parse
        .tree()
        .stmts()
        .map(|stmt| {
            let range = stmt.syntax().text_range();
            let (start, end) = (
                u32::from(range.start()) as usize,
                u32::from(range.end()) as usize,
            );
            Statement {
                start,
                end,
                toks: tokens(&sql[start..end]),
            }
        })
        .collect()
}

/// Tokens of one statement's text.
pub(crate) fn tokens(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'\'' {
            let start = i + 1;
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                } else if b[i] == b'\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            out.push(Tok::Literal(sql[start..i.min(b.len())].replace("''", "'")));
            i += 1;
        } else if c == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i.min(b.len())].to_string()));
            i += 1;
        } else if c == b'$'
            && let Some(tag_end) = dollar_tag(b, i)
        {
            let tag = &sql[i..=tag_end];
            let body = tag_end + 1;
            i = sql[body..]
                .find(tag)
                .map_or(b.len(), |p| body + p + tag.len());
            out.push(Tok::Literal(String::new()));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i].to_lowercase()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Number(sql[start..i].to_string()));
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

/// `$tag$` starting at `i`: the index of its closing `$`.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    (j < b.len() && b[j] == b'$' && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit())).then_some(j)
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The table part of a possibly qualified name (`public.documents` -> `documents` is looked up
/// as `public.documents`): unqualified names are taken to be in `public`, the default
/// search_path's first schema.
pub(crate) fn qualified(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("public.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_table_they_lock() {
        let sql = "-- c\nALTER TABLE ONLY public.documents ADD COLUMN x int;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON documents USING hnsw (e);\nUPDATE \"Docs\" SET a = 'x;y';";
        let s = split(sql);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].table().as_deref(), Some("public.documents"));
        assert_eq!(s[1].table().as_deref(), Some("documents"));
        assert_eq!(s[2].table().as_deref(), Some("Docs"));
        assert_eq!(line_column(sql, s[1].start), (3, 1));
    }
}
