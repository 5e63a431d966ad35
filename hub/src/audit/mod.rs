//! The tamper-evident audit log (issue 15): every event the hub sends or receives,
//! every API change with its actor and the hub's own transitions, as a hash chain
//! with signed checkpoints.
//!
//! - [`chain`]: the records and their hashes (pure; every backend only stores them);
//! - [`checkpoint`]: checkpoints signed with the hub's audit key (`audit.key`), and the
//!   anchor file that makes a truncated tail visible;
//! - [`verify`]: recomputes a chain and its signatures and names the first bad record
//!   (pure, over any source of records: a store or an exported file);
//! - [`export`]: JSON lines in CloudEvents structured format, chain fields as
//!   extensions, and reading them back.

pub mod api_record;
pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod replay;
pub mod retention;
pub mod sealer;
pub mod verify;
