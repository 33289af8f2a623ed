//! Deliberately broken variants of the algorithm. They exist only so tests can
//! prove that the Byzantine simulator detects a broken safety rule; the
//! feature that compiles them is never enabled in a shipped binary.

/// A deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// Ignore lockedValue/lockedRound when prevoting (L22, L28).
    NoLocking,
    /// Use a quorum of 2f (f = (total-1)/3) instead of 2f+1 (> 2/3 of power).
    QuorumTwoF,
    /// Accept votes and proposals without checking their signatures.
    NoSignatureCheck,
    /// Decide on +2/3 prevotes for a proposed value instead of precommits (L49).
    DecideOnPrevotes,
}
