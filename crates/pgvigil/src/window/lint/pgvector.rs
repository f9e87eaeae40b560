//! Rules for pgvector that squawk does not have (names `pgvector-...`). They read the
//! statements' words and what the lint knows of the schema: vector columns and indexes from the
//! catalog and from the files before this one in the pending set, so a column created two
//! migrations earlier is known by its dimensions.

use std::collections::{BTreeMap, BTreeSet};

use super::squawk::Raw;
use super::statements::{Statement, Tok, qualified};

/// HNSW and IVFFlat index at most this many `vector` dimensions ...
pub const MAX_VECTOR_INDEX_DIMS: u32 = 2000;
/// ... and this many `halfvec` ones.
pub const MAX_HALFVEC_INDEX_DIMS: u32 = 4000;

/// What the lint knows of the schema while it walks the pending set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// `schema.table.column` -> (type, dimensions).
    pub vector_columns: BTreeMap<String, (String, u32)>,
    /// `schema.index` -> (access method, `schema.table`).
    pub vector_indexes: BTreeMap<String, (String, String)>,
    /// Tables created earlier in the pending set (or in this file).
    pub created: BTreeSet<String>,
}

/// The settings a vector build runs under when the file does not set them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// From the catalog, when read.
    pub maintenance_work_mem: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
    /// A non-zero statement_timeout shorter than this is taken to cut a vector build.
    pub min_build_timeout_ms: u64,
}

impl Known {
    /// Learns what `stmt` creates.
    pub(crate) fn learn(&mut self, stmt: &Statement) {
        if stmt.starts_with(&["create", "table"]) {
            let Some(table) = stmt.table().map(|t| qualified(&t)) else {
                return;
            };
            self.created.insert(table.clone());
            // Columns: a word followed by vector/halfvec ( n ) at nesting depth 1.
            let mut depth = 0;
            for (i, t) in stmt.toks.iter().enumerate() {
                match t {
                    Tok::Punct('(') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    Tok::Word(col) if depth == 1 => {
                        if let Some(ty) = vector_type_at(stmt, i + 1) {
                            self.vector_columns.insert(format!("{table}.{col}"), ty);
                        }
                    }
                    _ => {}
                }
            }
        } else if stmt.starts_with(&["alter", "table"]) {
            let Some(table) = stmt.table().map(|t| qualified(&t)) else {
                return;
            };
            let mut i = 0;
            while let Some(add) = stmt.find("add", i) {
                let mut j = add + 1;
                for w in ["column", "if", "not", "exists"] {
                    if stmt.toks.get(j).is_some_and(|t| t.is(w)) {
                        j += 1;
                    }
                }
                if let Some(Tok::Word(col)) = stmt.toks.get(j)
                    && let Some(ty) = vector_type_at(stmt, j + 1)
                {
                    self.vector_columns.insert(format!("{table}.{col}"), ty);
                }
                i = add + 1;
            }
        } else if let Some(index) = VectorIndex::of(stmt, self)
            && let Some(name) = index.name
        {
            self.vector_indexes
                .insert(qualified(&name), (index.method, index.table));
        }
    }
}

/// `vector(n)` or `halfvec(n)` at `i`.
fn vector_type_at(stmt: &Statement, i: usize) -> Option<(String, u32)> {
    let ty = match stmt.toks.get(i)? {
        Tok::Word(w) if w == "vector" || w == "halfvec" => w.clone(),
        _ => return None,
    };
    match (
        stmt.toks.get(i + 1),
        stmt.toks.get(i + 2),
        stmt.toks.get(i + 3),
    ) {
        (Some(Tok::Punct('(')), Some(Tok::Number(n)), Some(Tok::Punct(')'))) => {
            Some((ty, n.parse().ok()?))
        }
        _ => None,
    }
}

/// A `CREATE INDEX ... USING hnsw|ivfflat` statement.
struct VectorIndex {
    name: Option<String>,
    table: String,
    method: String,
    concurrent: bool,
    /// The indexed element's type and dimensions, when known.
    element: Option<(String, u32)>,
    /// The indexed column, when the element is a plain column.
    column: Option<String>,
    /// The operator class after a plain column (`vector_cosine_ops`).
    opclass: Option<String>,
}

impl VectorIndex {
    fn of(stmt: &Statement, known: &Known) -> Option<Self> {
        if !(stmt.starts_with(&["create", "index"])
            || stmt.starts_with(&["create", "unique", "index"]))
        {
            return None;
        }
        let using = stmt.find("using", 2)?;
        let method = match stmt.toks.get(using + 1)? {
            Tok::Word(m) if m == "hnsw" || m == "ivfflat" => m.clone(),
            _ => return None,
        };
        let on = stmt.find("on", 2)?;
        let table = qualified(&stmt.table()?);
        let head = &stmt.toks[..on];
        let concurrent = head.iter().any(|t| t.is("concurrently"));
        let name = match head.last() {
            Some(Tok::Word(w)) if !matches!(w.as_str(), "index" | "concurrently" | "exists") => {
                Some(w.clone())
            }
            _ => None,
        };
        // The first element: `(col ops)` or `((expr) ops)`.
        let open = using + 2;
        let (mut element, mut column, mut opclass) = (None, None, None);
        if matches!(stmt.toks.get(open), Some(Tok::Punct('('))) {
            if matches!(stmt.toks.get(open + 1), Some(Tok::Punct('('))) {
                // An expression: its last cast to vector/halfvec(n) is what is indexed.
                let mut depth = 0;
                let mut k = open + 1;
                while let Some(t) = stmt.toks.get(k) {
                    match t {
                        Tok::Punct('(') => depth += 1,
                        Tok::Punct(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Tok::Punct(':')
                            if matches!(stmt.toks.get(k + 1), Some(Tok::Punct(':'))) =>
                        {
                            if let Some(ty) = vector_type_at(stmt, k + 2) {
                                element = Some(ty);
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
            } else if let Some(Tok::Word(col)) = stmt.toks.get(open + 1) {
                element = known.vector_columns.get(&format!("{table}.{col}")).cloned();
                column = Some(col.clone());
                if let Some(Tok::Word(ops)) = stmt.toks.get(open + 2) {
                    opclass = Some(ops.clone());
                }
            }
        }
        Some(VectorIndex {
            name,
            table,
            method,
            concurrent,
            element,
            column,
            opclass,
        })
    }
}

/// One `SET` the file makes before a statement, by setting name.
fn settings_before(stmts: &[Statement], upto: usize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in &stmts[..upto] {
        if !s.starts_with(&["set"]) {
            continue;
        }
        let mut i = 1;
        if s.toks
            .get(i)
            .is_some_and(|t| t.is("local") || t.is("session"))
        {
            i += 1;
        }
        let Some(Tok::Word(name)) = s.toks.get(i) else {
            continue;
        };
        let value: String = s.toks[i + 1..]
            .iter()
            .filter_map(|t| match t {
                Tok::Word(w) if w == "to" => None,
                Tok::Punct('=') | Tok::Punct(';') => None,
                Tok::Word(w) | Tok::Number(w) | Tok::Literal(w) => Some(w.clone()),
                Tok::Punct(_) => None,
            })
            .collect();
        out.insert(name.clone(), value);
    }
    out
}

/// A memory setting in bytes: a bare number is kB (maintenance_work_mem's unit); units kB, MB,
/// GB, TB as PostgreSQL reads them.
pub(crate) fn memory_bytes(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "kb" => 1024,
        "mb" => 1024 * 1024,
        "gb" => 1024 * 1024 * 1024,
        "tb" => 1024u64.pow(4),
        "b" => 1,
        _ => return None,
    };
    Some(n * factor)
}

/// The memory an HNSW build wants to keep its graph in memory: per row the element
/// (dimensions x 4 bytes for vector, x 2 for halfvec) and about 400 bytes of neighbour lists
/// and tuple overhead at the default m = 16. An estimate, and the report says so.
pub(crate) fn hnsw_graph_bytes(rows: u64, element: Option<&(String, u32)>) -> u64 {
    let per_dim = match element {
        Some((t, _)) if t == "halfvec" => 2,
        _ => 4,
    };
    let dims = element.map_or(1536, |(_, d)| *d as u64);
    rows * (dims * per_dim + 400)
}

/// Runs the pgvector rules over one file. `rows_of`: the rows of a table when the catalog
/// knows them (0 for a table created in the pending set).
pub(crate) fn check(
    stmts: &[Statement],
    no_transaction: bool,
    known: &mut Known,
    defaults: Defaults,
    rows_of: &dyn Fn(&str) -> Option<u64>,
) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut push = |offset: usize, rule: &str, message: String, fix: Option<String>| {
        out.push(Raw {
            rule: rule.into(),
            offset,
            message,
            fix,
        })
    };
    for (n, stmt) in stmts.iter().enumerate() {
        if let Some(ix) = VectorIndex::of(stmt, known) {
            let method = ix.method.to_uppercase();
            if let Some((ty, dims)) = &ix.element {
                let limit = if ty == "halfvec" {
                    MAX_HALFVEC_INDEX_DIMS
                } else {
                    MAX_VECTOR_INDEX_DIMS
                };
                if *dims > limit {
                    let fix = if ty == "vector" && *dims <= MAX_HALFVEC_INDEX_DIMS {
                        let col = ix.column.clone().unwrap_or_else(|| "embedding".into());
                        // Keep the distance the index was for: vector_l2_ops -> halfvec_l2_ops.
                        let ops = ix
                            .opclass
                            .as_deref()
                            .and_then(|o| o.strip_prefix("vector_"))
                            .map_or_else(
                                || "halfvec_cosine_ops".to_string(),
                                |rest| format!("halfvec_{rest}"),
                            );
                        Some(format!(
                            "index the halfvec expression instead: USING {} (({col}::halfvec({dims})) {ops}), and query with ORDER BY {col}::halfvec({dims}) <=> $1::halfvec({dims})",
                            ix.method
                        ))
                    } else {
                        Some("reduce the dimensions (bit + binary_quantize, or a smaller model): no pgvector index takes this many".into())
                    };
                    push(
                        stmt.start,
                        "pgvector-index-too-many-dimensions",
                        format!(
                            "{method} index on {ty}({dims}): pgvector's {method} indexes at most {limit} {ty} dimensions, so this build fails"
                        ),
                        fix,
                    );
                }
            }
            if ix.concurrent && no_transaction && stmts.len() > 1 {
                push(
                    stmt.start,
                    "pgvector-concurrent-build-not-alone",
                    format!(
                        "CREATE INDEX CONCURRENTLY ... USING {} shares its -- no-transaction file with {} other statement(s): PostgreSQL runs a multi-statement file as one implicit transaction, where a concurrent build fails",
                        ix.method,
                        stmts.len() - 1
                    ),
                    Some(
                        "put the concurrent build alone in its own -- no-transaction migration"
                            .into(),
                    ),
                );
            }
            // The settings the build runs under.
            let set = settings_before(stmts, n);
            let mwm = set
                .get("maintenance_work_mem")
                .and_then(|v| memory_bytes(v))
                .or(defaults.maintenance_work_mem);
            let timeout = set
                .get("statement_timeout")
                .map(|v| super::catalog::setting_ms(v))
                .or(defaults.statement_timeout_ms);
            let rows = rows_of(&ix.table);
            let mut problems = Vec::new();
            match (mwm, rows) {
                (Some(mem), Some(rows)) if ix.method == "hnsw" => {
                    let want = hnsw_graph_bytes(rows, ix.element.as_ref());
                    if mem < want {
                        problems.push(format!(
                            "maintenance_work_mem {} is below the graph's estimated {} for {rows} rows (the build spills to disk and runs many times slower)",
                            crate::window::progress::bytes(mem), crate::window::progress::bytes(want)
                        ));
                    }
                }
                (None, _) => problems.push(
                    "maintenance_work_mem is not set for it and the server's value is unknown"
                        .into(),
                ),
                _ => {}
            }
            match timeout {
                Some(ms) if ms > 0 && ms < defaults.min_build_timeout_ms && rows != Some(0) => problems.push(format!(
                    "statement_timeout {} would cancel a build that can take far longer (squawk's short-timeout advice does not fit index builds)",
                    human_ms(ms)
                )),
                None => problems.push("statement_timeout is not set for it and the server's value is unknown".into()),
                _ => {}
            }
            if !problems.is_empty() {
                let fix = if no_transaction {
                    "set them for the migrating role before the window (ALTER ROLE ... SET maintenance_work_mem = '...'; ALTER ROLE ... SET statement_timeout = 0), or run with PGOPTIONS='-c maintenance_work_mem=... -c statement_timeout=0': a -- no-transaction build must be alone in its file"
                } else {
                    "SET LOCAL maintenance_work_mem = '...' and SET LOCAL statement_timeout = 0 before the build, in the same file"
                };
                push(
                    stmt.start,
                    "pgvector-index-build-settings",
                    format!(
                        "{method} build on {}: {}",
                        short(&ix.table),
                        problems.join("; ")
                    ),
                    Some(fix.into()),
                );
            }
        }
        if stmt.starts_with(&["create"])
            && stmt.find("concurrently", 1).is_some_and(|i| i <= 3)
            && stmt.find("exists", 1).is_some_and(|i| i <= 6)
            && stmt.find("index", 1).is_some()
        {
            push(stmt.start, "pgvector-concurrently-if-not-exists",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS: a failed earlier attempt leaves an INVALID index of that name, and IF NOT EXISTS then skips the build and reports success with an index no query uses".into(),
                Some("drop the name without IF NOT EXISTS guards (DROP INDEX CONCURRENTLY IF EXISTS ...) in a migration before, or check pg_index.indisvalid after the build".into()));
        }
        if stmt.starts_with(&["alter", "table"]) {
            let table = stmt.table().map(|t| qualified(&t)).unwrap_or_default();
            let mut i = 0;
            while let Some(ty) = stmt.find("type", i) {
                if let Some(Tok::Word(w)) = stmt.toks.get(ty + 1)
                    && (w == "vector" || w == "halfvec")
                {
                    let col = stmt
                        .find("column", 0)
                        .and_then(|c| match stmt.toks.get(c + 1) {
                            Some(Tok::Word(c)) => Some(c.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    push(stmt.start, "pgvector-alter-column-type-vector", format!(
                        "ALTER COLUMN {col} TYPE {w}: rewrites every row of {} under ACCESS EXCLUSIVE (reads and writes wait for the whole rewrite), and its vector indexes are rebuilt", short(&table)
                    ), Some("add a new column of the new type, backfill it in batches, build its index CONCURRENTLY, then switch readers; or index an expression cast (col::halfvec(n)) and keep the column".into()));
                }
                i = ty + 1;
            }
        }
        if stmt.starts_with(&["update"]) {
            let table = stmt.table().map(|t| qualified(&t)).unwrap_or_default();
            let set = stmt.find("set", 1).unwrap_or(stmt.toks.len());
            let wh = stmt.find("where", set);
            let assigned: Vec<&str> = stmt.toks[set..wh.unwrap_or(stmt.toks.len())]
                .windows(2)
                .filter_map(|w| match (&w[0], &w[1]) {
                    (Tok::Word(c), Tok::Punct('=')) => Some(c.as_str()),
                    _ => None,
                })
                .collect();
            let embedding = assigned.iter().find(|c| {
                known.vector_columns.contains_key(&format!("{table}.{c}"))
                    || c.contains("embedding")
            });
            if let Some(col) = embedding {
                let batched = wh.is_some_and(|w| {
                    stmt.toks[w..].iter().enumerate().any(|(k, t)| match t {
                        Tok::Punct('<') => {
                            !matches!(stmt.toks.get(w + k + 1), Some(Tok::Punct('>')))
                        }
                        Tok::Punct('>') => !matches!(
                            stmt.toks.get((w + k).wrapping_sub(1)),
                            Some(Tok::Punct('<'))
                        ),
                        Tok::Punct('=') => true,
                        Tok::Word(x) => matches!(x.as_str(), "between" | "limit" | "in" | "any"),
                        _ => false,
                    })
                });
                if !batched {
                    push(stmt.start, "pgvector-unbatched-embedding-update", format!(
                        "UPDATE of {col} on {} without a batching predicate: one transaction rewrites every matching row (each embedding is kilobytes), holds its row locks to the end and bloats the table and its vector index", short(&table)
                    ), Some("backfill in batches by key range (WHERE id BETWEEN ... or WHERE id IN (SELECT id ... LIMIT 1000)), one transaction per batch, outside the migration".into()));
                }
            }
        }
        if stmt.starts_with(&["alter", "extension", "vector", "update"]) {
            push(stmt.start, "pgvector-alter-extension-update",
                "ALTER EXTENSION vector UPDATE: changes the operators and index code every query and vector index uses, for the whole database".into(),
                Some("run it inside the maintenance window as its own step, after the backup is verified, not in an application migration".into()));
        }
        if stmt.starts_with(&["drop", "index"]) {
            let mut i = 2;
            while let Some(t) = stmt.toks.get(i) {
                if t.is("concurrently") || t.is("if") || t.is("exists") {
                    i += 1;
                } else {
                    break;
                }
            }
            while let Some((name, next)) = stmt.name_at(i) {
                if let Some((am, table)) = known.vector_indexes.get(&qualified(&name)).cloned() {
                    push(stmt.start, "pgvector-drop-vector-index", format!(
                        "DROP INDEX {name}: the {} index on {} goes; rebuilding it takes as long as its first build (no rehearsal has measured it yet), and nearest-neighbour queries fall back to a sequential scan meanwhile", am.to_uppercase(), short(&table)
                    ), Some("build the replacement CONCURRENTLY first, check pg_index.indisvalid, then drop the old one".into()));
                }
                i = next;
                if matches!(stmt.toks.get(i), Some(Tok::Punct(','))) {
                    i += 1;
                } else {
                    break;
                }
            }
        }
        known.learn(stmt);
    }
    out
}

fn short(table: &str) -> &str {
    table.strip_prefix("public.").unwrap_or(table)
}

fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_postgresql_reads_them() {
        assert_eq!(memory_bytes("1GB"), Some(1 << 30));
        assert_eq!(memory_bytes("65536"), Some(64 << 20));
        assert_eq!(memory_bytes("12 parsecs"), None);
        assert_eq!(super::super::catalog::setting_ms("30s"), 30_000);
        assert_eq!(super::super::catalog::setting_ms("0"), 0);
        assert_eq!(super::super::catalog::setting_ms("5min"), 300_000);
        assert_eq!(super::super::catalog::setting_ms("1500"), 1500);
        // 2,000 rows of halfvec(3072): 2000 x (6144 + 400) bytes.
        assert_eq!(
            hnsw_graph_bytes(2000, Some(&("halfvec".into(), 3072))),
            13_088_000
        );
    }
}
