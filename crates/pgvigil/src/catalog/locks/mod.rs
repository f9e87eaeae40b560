//! The lock model, in one place: the eight table lock modes and their conflicts ([`LockMode`]),
//! the one reading of relation locks and of who blocks whom, and the [`LockSampler`] that
//! follows the locks of given backends over time. The server view, the lock-wait guard, the
//! migration runner (dry-run, rehearsal, apply) all use it; no lock mode travels as text.

mod mode;
mod read;
mod sampler;

pub use mode::{LockMode, UnknownLockMode};
pub use read::{LockHolder, RelationLock, strongest_per_relation};
pub(crate) use read::{blocking_pids, read_blockers, relation_locks_of, relation_name_sql};
pub use sampler::{LockSampler, LockSpan};
