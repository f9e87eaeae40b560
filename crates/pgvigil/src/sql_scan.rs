//! A small lexer over migration SQL: it splits statements, skipping comments, string literals
//! (including `E''` strings, where a backslash escapes the quote), quoted identifiers and
//! dollar-quoted bodies (but not a `$` inside an identifier such as `a$b$`, which is no
//! quote). It is a review aid for the dry-run report ("this file contains COMMIT", "this
//! opens a second connection"), never a safety boundary: what might be dangerous runs on a dev
//! database, and production sees only read-only statements.

/// One token of a statement, as far as the lint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or identifier, upper-cased (quoted identifiers keep their text).
    Word(String),
    /// A string literal or dollar-quoted body.
    Literal,
    Punct(char),
}

/// Splits `sql` into statements of tokens.
fn statements(sql: &str) -> Vec<Vec<Token>> {
    statements_at(sql).into_iter().map(|(_, s)| s).collect()
}

/// The byte offset where each statement of `sql` starts (its first token, after comments):
/// the server runs a file's statements in this order, so the (n+1)-th is the one that failed
/// after n completed.
pub(crate) fn statement_starts(sql: &str) -> Vec<usize> {
    statements_at(sql).into_iter().map(|(at, _)| at).collect()
}

/// Splits `sql` into statements of tokens, each with the offset of its first token.
fn statements_at(sql: &str) -> Vec<(usize, Vec<Token>)> {
    let b = sql.as_bytes();
    let mut out: Vec<(usize, Vec<Token>)> = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if current.is_empty() {
            start = i;
        }
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 1;
            i += 2;
            while i < b.len() && depth > 0 {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            continue;
        }
        if c == b'\'' {
            // E'...' (or e'...'): backslash escapes. Only when the E stands alone, not as the
            // end of a longer word (`some'` is not an escape string).
            let escape = matches!(current.last(), Some(Token::Word(w)) if w == "E")
                && i > 0
                && matches!(b[i - 1], b'E' | b'e');
            if escape {
                current.pop();
            }
            i += 1;
            while i < b.len() {
                if escape && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            current.push(Token::Literal);
            continue;
        }
        if c == b'"' {
            i += 1;
            let mut ident = Vec::new();
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        ident.push(b'"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                ident.push(b[i]);
                i += 1;
            }
            i += 1;
            current.push(Token::Word(String::from_utf8_lossy(&ident).into_owned()));
            continue;
        }
        if c == b'$' {
            // $tag$ ... $tag$ or $$ ... $$; $1 is a parameter.
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j < b.len() && b[j] == b'$' && !(j > i + 1 && b[i + 1].is_ascii_digit()) {
                let tag = &sql[i..=j];
                match sql[j + 1..].find(tag) {
                    Some(end) => i = j + 1 + end + tag.len(),
                    None => i = b.len(),
                }
                current.push(Token::Literal);
                continue;
            }
            i += 1;
            continue;
        }
        if c == b';' {
            if !current.is_empty() {
                out.push((start, std::mem::take(&mut current)));
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            // Identifier characters include digits and `$` after the first: `a$b$` is one
            // identifier, not the start of a dollar quote.
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            current.push(Token::Word(sql[start..i].to_ascii_uppercase()));
            continue;
        }
        if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            current.push(Token::Literal);
            continue;
        }
        if !c.is_ascii_whitespace() {
            current.push(Token::Punct(c as char));
        }
        i += 1;
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

/// The first words (upper-cased, up to three, stopping at anything that is not a word) of
/// every statement in `sql`.
pub fn statement_heads(sql: &str) -> Vec<String> {
    statements(sql)
        .iter()
        .map(|s| {
            let words = leading_words(s);
            words[..words.len().min(3)].join(" ")
        })
        .filter(|h| !h.is_empty())
        .collect()
}

/// A statement that ends or changes the transaction it runs in, or lifts its timeouts.
pub fn transaction_control(sql: &str) -> Option<String> {
    statement_heads(sql).into_iter().find(|h| {
        let first = h.split(' ').next().unwrap_or("");
        matches!(
            first,
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        ) || h.starts_with("PREPARE TRANSACTION")
            || h.starts_with("COMMIT PREPARED")
            || h.starts_with("RESET ALL")
    })
}

/// A statement that changes a timeout (`SET [LOCAL|SESSION] statement_timeout = 0`).
pub fn timeout_override(sql: &str) -> Option<String> {
    statements(sql).iter().find_map(|s| {
        let words: Vec<&str> = s
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        let set = words.first() == Some(&"SET") || words.first() == Some(&"RESET");
        let timeout = words.iter().take(3).any(|w| {
            matches!(
                *w,
                "LOCK_TIMEOUT" | "STATEMENT_TIMEOUT" | "IDLE_IN_TRANSACTION_SESSION_TIMEOUT"
            )
        });
        (set && timeout).then(|| words.iter().take(3).cloned().collect::<Vec<_>>().join(" "))
    })
}

/// Statements whose effect is not confined to one database (roles, tablespaces, server
/// settings, other databases).
pub fn server_wide(sql: &str) -> Option<String> {
    statement_heads(sql).into_iter().find(|h| {
        let mut w = h.split(' ');
        let (a, b) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
        matches!(
            (a, b),
            (
                "CREATE" | "ALTER" | "DROP",
                "ROLE" | "USER" | "GROUP" | "TABLESPACE" | "DATABASE"
            ) | ("ALTER", "SYSTEM")
                | ("REASSIGN", _)
        )
    })
}

/// An extension to create on a dev database: `version` and `schema` as on production when
/// known, else the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Extension name (`vector`).
    pub name: String,
    /// Version to install, `None` for the server's default.
    pub version: Option<String>,
    /// Schema to install it in (created when missing), `None` for the default.
    pub schema: Option<String>,
}

/// How many statements of `sql` take time: every statement but `SET` and `RESET` (a
/// migration's `SET LOCAL statement_timeout = 0` is not work). The migration runner's bound
/// from outside is this many times the per-statement bound; a miscount only changes that bound.
pub(crate) fn timed_statements(sql: &str) -> usize {
    statements(sql)
        .iter()
        .filter(|s| !matches!(s.first(), Some(Token::Word(w)) if w == "SET" || w == "RESET"))
        .count()
}

/// The words a statement starts with, up to its first literal or punctuation
/// (`CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA s`).
fn leading_words(statement: &[Token]) -> Vec<&str> {
    statement
        .iter()
        .map_while(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect()
}

/// Extensions created with `CREATE EXTENSION IF NOT EXISTS name [WITH] [SCHEMA s]`: a dev
/// database can create them beforehand as its administrator, and the statement then finds them
/// there.
pub fn extensions_created_if_not_exists(sql: &str) -> Vec<Extension> {
    statements(sql)
        .iter()
        .filter_map(|s| {
            let words = leading_words(s);
            match words.as_slice() {
                [
                    "CREATE",
                    "EXTENSION",
                    "IF",
                    "NOT",
                    "EXISTS",
                    name,
                    rest @ ..,
                ] => {
                    let schema = rest
                        .iter()
                        .position(|w| *w == "SCHEMA")
                        .and_then(|i| rest.get(i + 1))
                        .map(|s| s.to_ascii_lowercase());
                    Some(Extension {
                        name: name.to_ascii_lowercase(),
                        version: None,
                        schema,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

/// Every extension a `CREATE EXTENSION [IF NOT EXISTS] name` statement creates (lower-cased
/// unless quoted), in order: what the dev database's extension policy judges.
pub fn extensions_created(sql: &str) -> Vec<String> {
    statements(sql)
        .iter()
        .filter_map(|s| {
            let words = leading_words(s);
            match words.as_slice() {
                ["CREATE", "EXTENSION", "IF", "NOT", "EXISTS", name, ..]
                | ["CREATE", "EXTENSION", name, ..] => Some(name.to_ascii_lowercase()),
                _ => None,
            }
        })
        .collect()
}

/// Words (function names, options) that reach outside the database: another connection, the
/// server's files or programs.
const REACHES_OUT: &[(&str, &str)] = &[
    (
        "DBLINK",
        "opens a second connection (dblink), outside the migration's transaction",
    ),
    (
        "DBLINK_EXEC",
        "opens a second connection (dblink), outside the migration's transaction",
    ),
    (
        "DBLINK_CONNECT",
        "opens a second connection (dblink), outside the migration's transaction",
    ),
    ("PG_READ_FILE", "reads a file on the database server"),
    ("PG_READ_BINARY_FILE", "reads a file on the database server"),
    ("PG_LS_DIR", "lists a directory on the database server"),
    (
        "LO_IMPORT",
        "reads a file on the database server (lo_import)",
    ),
    (
        "LO_EXPORT",
        "writes a file on the database server (lo_export)",
    ),
    (
        "PG_EXECUTE_SERVER_PROGRAM",
        "grants running programs on the database server",
    ),
    (
        "PG_READ_SERVER_FILES",
        "grants reading the database server's files",
    ),
    (
        "PG_WRITE_SERVER_FILES",
        "grants writing the database server's files",
    ),
];

/// What a reviewer should know about a migration before it is applied. Dynamic SQL (EXECUTE in
/// a function or DO block) is not looked into, and the notes say so.
pub fn lint(sql: &str) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(s) = transaction_control(sql) {
        notes.push(format!(
            "contains `{s}`: transaction control; sqlx runs the file in one transaction, which \
             this would end or change"
        ));
    }
    if let Some(s) = timeout_override(sql) {
        notes.push(format!(
            "contains `{s}`: it changes its own timeouts (pgvigil's dry-run still stops it at its \
             wall-clock bound)"
        ));
    }
    if let Some(s) = server_wide(sql) {
        notes.push(format!(
            "contains `{s}`: it changes the whole server, not only this database"
        ));
    }
    let stmts = statements(sql);
    let words: Vec<&str> = stmts
        .iter()
        .flatten()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    let copy_program = stmts.iter().any(|s| {
        matches!(s.first(), Some(Token::Word(w)) if w == "COPY")
            && s.iter()
                .any(|t| matches!(t, Token::Word(w) if w == "PROGRAM"))
    });
    if copy_program {
        notes.push("uses COPY ... PROGRAM: runs a program on the database server".into());
    }
    for (word, why) in REACHES_OUT {
        if words.contains(word) && !notes.iter().any(|n| n.ends_with(why)) {
            notes.push(format!("uses {}: {why}", word.to_ascii_lowercase()));
        }
    }
    let dynamic = stmts.iter().any(|s| {
        matches!(s.first(), Some(Token::Word(w)) if w == "DO")
            || s.iter()
                .any(|t| matches!(t, Token::Word(w) if w == "FUNCTION" || w == "PROCEDURE"))
    });
    if dynamic {
        notes.push(
            "has a code block (DO, FUNCTION or PROCEDURE): statements inside it, dynamic SQL \
             included, are not scanned"
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_start_at_their_first_token() {
        let sql = "-- a comment; with a semicolon\nSET lock_timeout = '1s';\n\n  /* c */ ALTER TABLE t\n  ADD CHECK (a > 0);";
        let starts = statement_starts(sql);
        assert_eq!(starts.len(), 2);
        assert!(sql[starts[0]..].starts_with("SET lock_timeout"));
        assert!(sql[starts[1]..].starts_with("ALTER TABLE t"));
    }

    #[test]
    fn heads_skip_comments_strings_and_function_bodies() {
        let sql = "-- BEGIN in a comment\nCREATE TABLE t (a text DEFAULT 'COMMIT; x');\n\
                   CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END; $$;\n\
                   /* COMMIT */ alter table t add column b int;";
        assert_eq!(
            statement_heads(sql),
            vec!["CREATE TABLE T", "CREATE FUNCTION F", "ALTER TABLE T"]
        );
        assert_eq!(transaction_control(sql), None);
    }

    #[test]
    fn transaction_control_is_found() {
        for sql in [
            "ALTER TABLE t ADD c int; COMMIT; DROP TABLE t;",
            "begin; select 1;",
            "SELECT 1;\nend;",
            "ROLLBACK",
        ] {
            assert!(transaction_control(sql).is_some(), "{sql}");
        }
        assert!(transaction_control("SET LOCAL search_path = x; SELECT 1").is_none());
    }

    #[test]
    fn a_dollar_inside_an_identifier_does_not_hide_a_commit() {
        // `a$b$` is an identifier; a scanner that took `$b$` for a dollar quote would skip
        // everything up to the next `$b$`, COMMIT included.
        let sql = "CREATE TABLE a$b$ (x int); COMMIT; DROP TABLE documents CASCADE; SELECT 'x$b$';";
        assert_eq!(transaction_control(sql).as_deref(), Some("COMMIT"));
        assert_eq!(
            statement_heads(sql),
            vec![
                "CREATE TABLE A$B$",
                "COMMIT",
                "DROP TABLE DOCUMENTS",
                "SELECT"
            ]
        );
    }

    #[test]
    fn an_escaped_quote_in_an_e_string_does_not_hide_a_commit() {
        // In E'\'' the backslash escapes the quote; a scanner that ignored it would read
        // `'; COMMIT; SELECT '` as the inside of one long string.
        let sql = "SELECT E'\\''; COMMIT; DELETE FROM documents; SELECT '';";
        assert_eq!(transaction_control(sql).as_deref(), Some("COMMIT"));
        // And a quote doubled in a plain string is still inside it.
        assert_eq!(transaction_control("SELECT 'it''s; COMMIT'"), None);
        // Lower-case e; and a word ending in e is no E'' prefix: there the backslash is a
        // plain character, the string ends at the next quote, and COMMIT is a statement.
        assert!(transaction_control("select e'\\''; commit;").is_some());
        assert_eq!(
            transaction_control("SELECT name'a\\'; COMMIT; SELECT '").as_deref(),
            Some("COMMIT")
        );
        assert_eq!(transaction_control("SELECT E'a\\'; COMMIT; '"), None);
    }

    #[test]
    fn timeouts_and_server_wide_statements_are_found() {
        assert_eq!(
            timeout_override("SET LOCAL statement_timeout = 0; UPDATE t SET a = 1").as_deref(),
            Some("SET LOCAL STATEMENT_TIMEOUT")
        );
        assert!(timeout_override("set lock_timeout = 0").is_some());
        assert!(timeout_override("SET LOCAL search_path = x").is_none());
        assert_eq!(
            server_wide("CREATE ROLE reporter LOGIN;").as_deref(),
            Some("CREATE ROLE REPORTER")
        );
        assert!(server_wide("alter system set work_mem = '1GB'").is_some());
        assert!(server_wide("CREATE TABLE roles (id int)").is_none());
        assert!(server_wide("GRANT SELECT ON t TO reporter").is_none());
    }

    #[test]
    fn sets_are_not_timed_statements() {
        assert_eq!(
            timed_statements("SET LOCAL statement_timeout = 0;\nSELECT pg_sleep(40);\n"),
            1
        );
        assert_eq!(
            timed_statements(
                "-- x\nCREATE INDEX a ON t (x);\nCREATE INDEX b ON t (y);\nreset all;"
            ),
            2
        );
        assert_eq!(
            timed_statements(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT 2 $$;"
            ),
            1
        );
        assert_eq!(timed_statements("-- nothing"), 0);
    }

    #[test]
    fn extensions_to_create_beforehand_are_found() {
        let found: Vec<(String, Option<String>)> = extensions_created_if_not_exists(
            "-- x\nCREATE EXTENSION IF NOT EXISTS vector;\nCREATE EXTENSION pg_trgm;\ncreate extension if not exists hstore with schema extensions;",
        )
        .into_iter()
        .map(|e| (e.name, e.schema))
        .collect();
        assert_eq!(
            found,
            vec![
                ("vector".to_string(), None),
                ("hstore".to_string(), Some("extensions".to_string()))
            ]
        );
    }

    #[test]
    fn every_extension_created_is_found() {
        assert_eq!(
            extensions_created(
                "CREATE EXTENSION IF NOT EXISTS dblink;\ncreate extension postgres_fdw with schema x;\n\
                 CREATE EXTENSION \"mysql_fdw\";\nSELECT 'CREATE EXTENSION hidden';\nCREATE TABLE extension (a int);"
            ),
            vec!["dblink", "postgres_fdw", "mysql_fdw"]
        );
    }

    #[test]
    fn reaching_outside_the_database_is_noted() {
        let notes = lint("COPY documents FROM PROGRAM 'curl evil'");
        assert!(
            notes.iter().any(|n| n.contains("runs a program")),
            "{notes:?}"
        );
        let notes = lint("SELECT dblink_exec('dbname=prod', 'DELETE FROM documents')");
        assert!(
            notes.iter().any(|n| n.contains("second connection")),
            "{notes:?}"
        );
        let notes = lint("DO $$ BEGIN EXECUTE 'CREATE ROLE x SUPERUSER'; END $$");
        assert!(notes.iter().any(|n| n.contains("not scanned")), "{notes:?}");
        assert!(lint("ALTER TABLE t ADD COLUMN program text").is_empty());
        assert!(lint("CREATE TABLE t (a int)").is_empty());
    }
}
