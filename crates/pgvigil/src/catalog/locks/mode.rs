//! The eight table lock modes of PostgreSQL, as a type: which modes conflict (the documentation's
//! table 13.2), so "blocks reads" and "blocks writes" are methods, and which statements take each
//! mode (section 13.3.1). pg_locks names a mode `AccessExclusiveLock`; people and the
//! documentation say `ACCESS EXCLUSIVE`: both parse, the second is how a mode is shown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A table-level lock mode, weakest first (the order the documentation lists them in, which is
/// also PostgreSQL's own numbering: a stronger mode conflicts with everything a weaker one does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `ACCESS SHARE`: plain reads.
    AccessShare,
    /// `ROW SHARE`: `SELECT ... FOR UPDATE` and the other row-locking reads.
    RowShare,
    /// `ROW EXCLUSIVE`: `INSERT`, `UPDATE`, `DELETE`, `MERGE`.
    RowExclusive,
    /// `SHARE UPDATE EXCLUSIVE`: `VACUUM`, `ANALYZE`, `CREATE INDEX CONCURRENTLY`, ...
    ShareUpdateExclusive,
    /// `SHARE`: `CREATE INDEX` without `CONCURRENTLY`.
    Share,
    /// `SHARE ROW EXCLUSIVE`: `CREATE TRIGGER`, some `ALTER TABLE` forms.
    ShareRowExclusive,
    /// `EXCLUSIVE`: `REFRESH MATERIALIZED VIEW CONCURRENTLY`.
    Exclusive,
    /// `ACCESS EXCLUSIVE`: most `ALTER TABLE` forms, `DROP`, `TRUNCATE`, `VACUUM FULL`, ...
    AccessExclusive,
}

use LockMode::*;

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        AccessShare,
        RowShare,
        RowExclusive,
        ShareUpdateExclusive,
        Share,
        ShareRowExclusive,
        Exclusive,
        AccessExclusive,
    ];

    /// The modes this one conflicts with, one bit per mode in [`LockMode::ALL`]'s order (as
    /// PostgreSQL's own `LockConflicts` table in lock.c keeps them).
    const fn conflict_bits(self) -> u8 {
        const fn bit(m: LockMode) -> u8 {
            1 << m as u8
        }
        match self {
            AccessShare => bit(AccessExclusive),
            RowShare => bit(Exclusive) | bit(AccessExclusive),
            RowExclusive => {
                bit(Share) | bit(ShareRowExclusive) | bit(Exclusive) | bit(AccessExclusive)
            }
            ShareUpdateExclusive => {
                bit(ShareUpdateExclusive)
                    | bit(Share)
                    | bit(ShareRowExclusive)
                    | bit(Exclusive)
                    | bit(AccessExclusive)
            }
            Share => {
                bit(RowExclusive)
                    | bit(ShareUpdateExclusive)
                    | bit(ShareRowExclusive)
                    | bit(Exclusive)
                    | bit(AccessExclusive)
            }
            ShareRowExclusive => {
                bit(RowExclusive)
                    | bit(ShareUpdateExclusive)
                    | bit(Share)
                    | bit(ShareRowExclusive)
                    | bit(Exclusive)
                    | bit(AccessExclusive)
            }
            Exclusive => !(bit(AccessShare)),
            AccessExclusive => u8::MAX,
        }
    }

    /// Whether a session asking for `self` must wait while another holds `other` (and the other
    /// way round: the table is symmetric).
    pub const fn conflicts_with(self, other: LockMode) -> bool {
        self.conflict_bits() & (1 << other as u8) != 0
    }

    /// Whether holding (or queueing for) this mode makes plain `SELECT`s on the table wait: it
    /// conflicts with ACCESS SHARE.
    pub const fn blocks_reads(self) -> bool {
        self.conflicts_with(AccessShare)
    }

    /// Whether it makes `INSERT`, `UPDATE`, `DELETE` and `MERGE` on the table wait: it conflicts
    /// with ROW EXCLUSIVE.
    pub const fn blocks_writes(self) -> bool {
        self.conflicts_with(RowExclusive)
    }

    /// What it makes wait, in words: "blocks reads and writes", "blocks writes", "blocks
    /// neither reads nor writes".
    pub const fn blocking_words(self) -> &'static str {
        match (self.blocks_reads(), self.blocks_writes()) {
            (true, _) => "blocks reads and writes",
            (false, true) => "blocks writes",
            (false, false) => "blocks neither reads nor writes",
        }
    }

    /// The mode as the documentation and `LOCK TABLE ... IN ... MODE` name it: `ACCESS EXCLUSIVE`.
    pub const fn sql_name(self) -> &'static str {
        match self {
            AccessShare => "ACCESS SHARE",
            RowShare => "ROW SHARE",
            RowExclusive => "ROW EXCLUSIVE",
            ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Share => "SHARE",
            ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Exclusive => "EXCLUSIVE",
            AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The mode as `pg_locks.mode` names it: `AccessExclusiveLock`.
    pub const fn pg_locks_name(self) -> &'static str {
        match self {
            AccessShare => "AccessShareLock",
            RowShare => "RowShareLock",
            RowExclusive => "RowExclusiveLock",
            ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Share => "ShareLock",
            ShareRowExclusive => "ShareRowExclusiveLock",
            Exclusive => "ExclusiveLock",
            AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The statements that take this mode on a table (section 13.3.1 of the documentation).
    pub const fn taken_by(self) -> &'static str {
        match self {
            AccessShare => "SELECT and any other statement that only reads the table",
            RowShare => "SELECT ... FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE",
            RowExclusive => "INSERT, UPDATE, DELETE, MERGE",
            ShareUpdateExclusive => {
                "VACUUM (without FULL), ANALYZE, CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, \
                 CREATE STATISTICS, COMMENT ON, some ALTER INDEX and ALTER TABLE forms \
                 (VALIDATE CONSTRAINT, SET STATISTICS, ...)"
            }
            Share => "CREATE INDEX (without CONCURRENTLY)",
            ShareRowExclusive => {
                "CREATE TRIGGER, some ALTER TABLE forms (ADD FOREIGN KEY, ENABLE/DISABLE TRIGGER)"
            }
            Exclusive => "REFRESH MATERIALIZED VIEW CONCURRENTLY",
            AccessExclusive => {
                "DROP TABLE, TRUNCATE, REINDEX, CLUSTER, VACUUM FULL, REFRESH MATERIALIZED VIEW, \
                 LOCK TABLE (its default), most ALTER TABLE and ALTER INDEX forms"
            }
        }
    }
}

impl fmt::Display for LockMode {
    /// `ACCESS EXCLUSIVE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// A text that names none of the eight table lock modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a table lock mode: one of ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE, \
     SHARE UPDATE EXCLUSIVE, SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE, ACCESS EXCLUSIVE \
     (or pg_locks' AccessShareLock ... AccessExclusiveLock)"
)]
pub struct UnknownLockMode(pub String);

impl FromStr for LockMode {
    type Err = UnknownLockMode;

    /// `AccessExclusiveLock` (pg_locks) or `ACCESS EXCLUSIVE` (any case, one space between words).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        LockMode::ALL
            .into_iter()
            .find(|m| t == m.pg_locks_name() || t.eq_ignore_ascii_case(m.sql_name()))
            .ok_or_else(|| UnknownLockMode(s.to_string()))
    }
}

impl Serialize for LockMode {
    /// As the documentation names it (`"ACCESS EXCLUSIVE"`): the words pgvigil's JSON has always
    /// carried.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.sql_name())
    }
}

impl<'de> Deserialize<'de> for LockMode {
    /// Either name (the server view's JSON carries pg_locks' `AccessExclusiveLock`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 13.2 "Conflicting Lock Modes" of the PostgreSQL documentation, copied as it is
    /// printed: a row per requested mode, a column per existing mode, X where they conflict.
    const DOCUMENTED: &str = "
                            AS  RS  RE  SUE S   SRE E   AE
        ACCESS SHARE        .   .   .   .   .   .   .   X
        ROW SHARE           .   .   .   .   .   .   X   X
        ROW EXCLUSIVE       .   .   .   .   X   X   X   X
        SHARE UPDATE EXCL   .   .   .   X   X   X   X   X
        SHARE               .   .   X   X   .   X   X   X
        SHARE ROW EXCL      .   .   X   X   X   X   X   X
        EXCLUSIVE           .   X   X   X   X   X   X   X
        ACCESS EXCLUSIVE    X   X   X   X   X   X   X   X
    ";

    fn documented() -> Vec<Vec<bool>> {
        DOCUMENTED
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with('X') || l.ends_with('.'))
            .map(|l| {
                l.split_whitespace()
                    .rev()
                    .take(8)
                    .map(|c| c == "X")
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_pair_conflicts_as_the_documentation_says() {
        let table = documented();
        assert_eq!(table.len(), 8);
        let mut checked = 0;
        for (r, requested) in LockMode::ALL.into_iter().enumerate() {
            for (e, existing) in LockMode::ALL.into_iter().enumerate() {
                assert_eq!(
                    requested.conflicts_with(existing),
                    table[r][e],
                    "{requested} requested while {existing} is held"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 64);
    }

    #[test]
    fn only_access_exclusive_blocks_reads_and_four_modes_block_writes() {
        let reads: Vec<_> = LockMode::ALL
            .into_iter()
            .filter(|m| m.blocks_reads())
            .collect();
        assert_eq!(reads, [AccessExclusive]);
        let writes: Vec<_> = LockMode::ALL
            .into_iter()
            .filter(|m| m.blocks_writes())
            .collect();
        assert_eq!(
            writes,
            [Share, ShareRowExclusive, Exclusive, AccessExclusive]
        );
        assert_eq!(AccessExclusive.blocking_words(), "blocks reads and writes");
        assert_eq!(Share.blocking_words(), "blocks writes");
        assert_eq!(
            ShareUpdateExclusive.blocking_words(),
            "blocks neither reads nor writes"
        );
    }

    #[test]
    fn both_names_parse_and_the_documentation_s_is_shown() {
        for m in LockMode::ALL {
            assert_eq!(m.pg_locks_name().parse::<LockMode>(), Ok(m));
            assert_eq!(m.sql_name().parse::<LockMode>(), Ok(m));
            assert_eq!(m.sql_name().to_lowercase().parse::<LockMode>(), Ok(m));
        }
        assert_eq!(AccessExclusive.to_string(), "ACCESS EXCLUSIVE");
        assert_eq!(ShareUpdateExclusive.to_string(), "SHARE UPDATE EXCLUSIVE");
        assert_eq!(
            serde_json::to_string(&RowExclusive).unwrap(),
            "\"ROW EXCLUSIVE\""
        );
        assert_eq!(
            serde_json::from_str::<LockMode>("\"ShareLock\"").unwrap(),
            Share
        );
        // Predicate locks share pg_locks with table locks but are no table lock mode.
        let err = "SIReadLock".parse::<LockMode>().unwrap_err();
        assert!(
            err.to_string()
                .contains("\"SIReadLock\" is not a table lock mode")
        );
    }
}
