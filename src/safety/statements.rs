//! A small lexer over migration SQL that finds where each statement starts, skipping comments,
//! quoted strings, quoted identifiers and dollar-quoted bodies (so a plpgsql `BEGIN ... END`
//! inside a function is not mistaken for transaction control). Used to refuse what a
//! rolled-back dry-run or a scratch database cannot contain safely.

/// The first words (upper-cased, up to three) of every statement in `sql`.
pub fn statement_heads(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut heads = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    let mut i = 0;
    let mut at_word = false;
    while i < b.len() {
        let c = b[i];
        // Comments.
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            at_word = false;
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
            at_word = false;
            continue;
        }
        // Quoted strings and identifiers.
        if c == b'\'' || c == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            words = words.max(1);
            at_word = false;
            continue;
        }
        // Dollar quotes: $$ ... $$ or $tag$ ... $tag$.
        if c == b'$' {
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
                words = words.max(1);
                at_word = false;
                continue;
            }
        }
        if c == b';' {
            if !current.is_empty() {
                heads.push(std::mem::take(&mut current));
            }
            words = 0;
            at_word = false;
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            if !at_word && words < 3 {
                if !current.is_empty() {
                    current.push(' ');
                }
                words += 1;
                at_word = true;
            }
            if at_word && words <= 3 && current.split(' ').count() == words {
                current.push(c.to_ascii_uppercase() as char);
            }
        } else if !c.is_ascii_digit() {
            if at_word {
                at_word = false;
            }
            if !c.is_ascii_whitespace() {
                // Punctuation ends the words we care about.
                words = 3;
            }
        }
        i += 1;
    }
    if !current.trim().is_empty() {
        heads.push(current);
    }
    heads
}

/// Statements that would break out of the dry-run's transaction or turn its safety off.
pub fn transaction_control(sql: &str) -> Option<String> {
    statement_heads(sql).into_iter().find(|h| {
        let first = h.split(' ').next().unwrap_or("");
        matches!(
            first,
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        ) || h.starts_with("PREPARE TRANSACTION")
            || h.starts_with("SET LOCK_TIMEOUT")
            || h.starts_with("SET STATEMENT_TIMEOUT")
            || h.starts_with("SET SESSION LOCK_TIMEOUT")
            || h.starts_with("SET SESSION STATEMENT_TIMEOUT")
            || h.starts_with("RESET ALL")
    })
}

/// Statements whose effect is not confined to one database (roles, tablespaces, server
/// settings, other databases): a scratch database on the same server would keep them.
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

#[cfg(test)]
mod tests {
    use super::*;

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
            "set lock_timeout = 0;",
            "ROLLBACK",
        ] {
            assert!(transaction_control(sql).is_some(), "{sql}");
        }
        assert!(transaction_control("SET LOCAL search_path = x; SELECT 1").is_none());
    }

    #[test]
    fn server_wide_statements_are_found() {
        assert_eq!(
            server_wide("CREATE ROLE reporter LOGIN;").as_deref(),
            Some("CREATE ROLE REPORTER")
        );
        assert!(server_wide("alter system set work_mem = '1GB'").is_some());
        assert!(server_wide("CREATE TABLE roles (id int)").is_none());
        assert!(server_wide("GRANT SELECT ON t TO reporter").is_none());
    }
}
