//! Vote counting (placeholder).
#![allow(missing_docs)]
/// Counts votes of one height.
pub struct VoteKeeper;
