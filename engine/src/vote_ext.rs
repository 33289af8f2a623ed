//! Vote extensions (ABCI++ `ExtendVote` / `VerifyVoteExtension`), run as
//! CometBFT v0.38 runs them once the consensus parameters enable them
//! (`abci.vote_extensions_enable_height`, see
//! [`ConsensusParams::vote_extensions_enabled`]).
//!
//! This module owns the rules around extensions: which received votes may
//! enter the consensus core ([`check_received_vote`], [`verify_with_app`]),
//! what our own precommit asks the application ([`extend_vote_request`]),
//! the extended commit a decided height is stored with
//! ([`extended_commit`]), and the `local_last_commit` the next proposer
//! hands to `PrepareProposal` ([`extended_commit_info`]). It never signs
//! (the signer does, through its double-sign guard), never touches the
//! store, and decides nothing about consensus.
//!
//! [`ConsensusParams::vote_extensions_enabled`]: crate::types::ConsensusParams::vote_extensions_enabled

use abci::proto::{
    response_verify_vote_extension::VerifyStatus, ExtendedCommitInfo, ExtendedVoteInfo,
    RequestExtendVote, RequestVerifyVoteExtension, Validator as AbciValidator,
};

use crate::app_conn::{AppConns, AppError};
use crate::block_exec;
use crate::consensus::VoteSet;
use crate::store::State;
use crate::types::{
    Address, Block, BlockId, Commit, CommitSig, ExtendedCommit, ExtendedCommitSig, Height,
    ValidatorSet, Vote, VoteType, MAX_VOTE_EXTENSION_SIZE,
};

/// Why a vote received from another node may not enter the consensus core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteRefused {
    /// Extension data while extensions are disabled at the vote's height
    /// (CometBFT refuses the vote as malformed).
    #[error("vote extension data at height {height}, where vote extensions are disabled")]
    ExtensionWhileDisabled {
        /// The vote's height.
        height: Height,
    },
    /// Extension data on a prevote or a nil precommit.
    #[error("vote extension data on a vote that is not a precommit for a block")]
    ExtensionOnWrongVote,
    /// The extension exceeds CometBFT's `MaxVoteExtensionSize`.
    #[error("vote extension of {len} bytes exceeds the maximum of {MAX_VOTE_EXTENSION_SIZE}")]
    TooLarge {
        /// The extension's length.
        len: usize,
    },
    /// A precommit for a block of a height not yet reached: only that
    /// height's application can judge its extension (CometBFT ignores votes
    /// of other heights; gossip sends it again once the height starts).
    #[error("precommit for a block at height {height}, above the current height {current}")]
    FutureHeight {
        /// The vote's height.
        height: Height,
        /// The height being decided.
        current: Height,
    },
    /// No validator of the vote's height has this index.
    #[error("validator index {0} is not in the validator set")]
    UnknownValidator(u32),
    /// The vote's signature or its extension signature does not verify.
    #[error("invalid vote or extension signature: {0}")]
    BadSignature(crate::types::Error),
    /// The application's VerifyVoteExtension answered REJECT.
    #[error("the application rejected the vote extension")]
    Rejected,
    /// The application answered neither ACCEPT nor REJECT (a protocol
    /// violation CometBFT panics on; here the vote is simply not counted).
    #[error("the application answered VerifyVoteExtension with status {0}")]
    UnknownStatus(i32),
}

/// Why a received vote was not admitted: refused, or the application
/// failed to answer (which stops consensus, like any application failure).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    /// The vote is refused.
    #[error(transparent)]
    Refused(#[from] VoteRefused),
    /// The application failed.
    #[error(transparent)]
    App(#[from] AppError),
}

/// Vote-extension data that breaks CometBFT's rules where the node itself
/// produced or stored it: a bug or a damaged store, never a peer's fault.
#[derive(Debug, thiserror::Error)]
pub enum VoteExtensionError {
    /// Extensions were enabled at `height` but its extended commit is not
    /// in the store.
    #[error("the extended commit of height {height} is not in the store")]
    MissingExtendedCommit {
        /// The height.
        height: Height,
    },
    /// The extended commit does not have one entry per validator.
    #[error(
        "the extended commit of height {height} has {entries} entries for {validators} validators"
    )]
    SizeMismatch {
        /// The commit's height.
        height: Height,
        /// Its number of entries.
        entries: usize,
        /// The number of validators of that height.
        validators: usize,
    },
    /// An entry is signed by another validator than the one at its index.
    #[error("the extended commit of height {height} has entry {index} from another validator")]
    AddressMismatch {
        /// The commit's height.
        height: Height,
        /// The entry's index.
        index: usize,
    },
    /// Extension data present where it must not be, or missing where it must.
    #[error("the extended commit of height {height}: {source}")]
    Extensions {
        /// The commit's height.
        height: Height,
        /// The violated rule.
        #[source]
        source: crate::types::Error,
    },
    /// Our application's ExtendVote answered more than CometBFT's
    /// `MaxVoteExtensionSize`: no peer would accept the precommit and the
    /// stored extended commit would not load back.
    #[error("the application's vote extension of {len} bytes exceeds the maximum of {MAX_VOTE_EXTENSION_SIZE}")]
    OwnExtensionTooLarge {
        /// The extension's length.
        len: usize,
    },
    /// The core asked us to precommit for a block it does not hold.
    #[error("no block {0:?} to extend a precommit for")]
    UnknownBlock(BlockId),
}

/// Judges a vote received from another node before it enters the consensus
/// core (CometBFT `State.addVote`), against `state`, the state after the
/// last committed block. Returns the VerifyVoteExtension request the
/// application must still accept, if any (see [`verify_with_app`]).
///
/// - Extensions disabled at the vote's height: any extension data is
///   refused.
/// - Enabled, for a precommit for a block at the current height
///   (`last_block_height + 1`): the extension must fit
///   `MaxVoteExtensionSize`, the vote and its extension signature must
///   verify with the validator's key, and, unless the vote is `own`
///   (ours, coming back), the application must accept the extension.
/// - Enabled, for the previous height (a late precommit for the last
///   commit): the signatures are checked; the application is not asked.
/// - Enabled, for a height above the current one: refused
///   ([`VoteRefused::FutureHeight`]).
///
/// Prevotes and nil precommits never carry extension data.
pub fn check_received_vote(
    state: &State,
    own: Option<Address>,
    vote: &Vote,
) -> Result<Option<RequestVerifyVoteExtension>, VoteRefused> {
    let has_data = !vote.extension.is_empty() || !vote.extension_signature.is_empty();
    let extendable = vote.vote_type == VoteType::Precommit && vote.block_id.is_some();
    if has_data && !extendable {
        return Err(VoteRefused::ExtensionOnWrongVote);
    }
    if !extendable {
        return Ok(None);
    }
    let current = state.last_block_height.saturating_add(1);
    if vote.height > current {
        // Whether extensions are enabled there is only known once this
        // height is executed (the application may enable them from the
        // next height on).
        return Err(VoteRefused::FutureHeight {
            height: vote.height,
            current,
        });
    }
    // Enabling happens only from a future height and never changes once
    // reached, so today's parameters answer for every height up to now.
    if !state.consensus_params.vote_extensions_enabled(vote.height) {
        if has_data {
            return Err(VoteRefused::ExtensionWhileDisabled {
                height: vote.height,
            });
        }
        return Ok(None);
    }
    if vote.extension.len() > MAX_VOTE_EXTENSION_SIZE {
        return Err(VoteRefused::TooLarge {
            len: vote.extension.len(),
        });
    }
    let validators = if vote.height == current {
        if own == Some(vote.validator_address) {
            // Our own precommit coming back: its extension came from our
            // application and was signed by us (CometBFT skips it too).
            return Ok(None);
        }
        &state.validators
    } else if vote.height.saturating_add(1) == current {
        match &state.last_validators {
            Some(v) => v,
            None => return Ok(None),
        }
    } else {
        // Older heights: the core drops the vote; nothing to verify.
        return Ok(None);
    };
    let validator = validators
        .get_by_index(vote.validator_index)
        .ok_or(VoteRefused::UnknownValidator(vote.validator_index))?;
    vote.verify_with_extension(&state.chain_id, &validator.pub_key)
        .map_err(VoteRefused::BadSignature)?;
    if vote.height != current {
        return Ok(None);
    }
    Ok(Some(RequestVerifyVoteExtension {
        hash: vote
            .block_id
            .map(|b| b.hash.0.to_vec())
            .unwrap_or_default()
            .into(),
        validator_address: vote.validator_address.0.to_vec().into(),
        height: i64::try_from(vote.height).unwrap_or(i64::MAX),
        vote_extension: vote.extension.clone().into(),
    }))
}

/// Asks the application whether it accepts an extension (CometBFT
/// `BlockExecutor.VerifyVoteExtension`). The outer error is the
/// application failing; the inner one its verdict against the vote.
pub async fn verify_with_app(
    app: &AppConns,
    request: RequestVerifyVoteExtension,
) -> Result<Result<(), VoteRefused>, AppError> {
    let resp = app.verify_vote_extension(request).await?;
    Ok(match VerifyStatus::try_from(resp.status) {
        Ok(VerifyStatus::Accept) => Ok(()),
        Ok(VerifyStatus::Reject) => Err(VoteRefused::Rejected),
        _ => Err(VoteRefused::UnknownStatus(resp.status)),
    })
}

/// [`check_received_vote`] followed, when needed, by [`verify_with_app`]:
/// the whole admission of one received vote.
pub async fn admit_received_vote(
    app: &AppConns,
    state: &State,
    own: Option<Address>,
    vote: &Vote,
) -> Result<(), AdmitError> {
    if let Some(request) = check_received_vote(state, own, vote)? {
        verify_with_app(app, request).await??;
    }
    Ok(())
}

/// The ExtendVote request for our precommit for `block`: the same facts
/// its ProcessProposal carried (CometBFT `BlockExecutor.ExtendVote`).
/// `last_validators` are the validators of the previous height.
pub fn extend_vote_request(
    block: &Block,
    block_id: &BlockId,
    last_validators: Option<&ValidatorSet>,
) -> RequestExtendVote {
    let r = block_exec::finalize_request(block, block_id, last_validators, &|_| None);
    RequestExtendVote {
        hash: r.hash,
        height: r.height,
        time: r.time,
        txs: r.txs,
        proposed_last_commit: r.decided_last_commit,
        misbehavior: r.misbehavior,
        next_validators_hash: r.next_validators_hash,
        proposer_address: r.proposer_address,
    }
}

/// The extended commit of a decided height (CometBFT
/// `VoteSet.MakeExtendedCommit`): `commit`, as the core built it, with
/// each precommit for the block completed by that precommit's extension
/// and extension signature from `precommits`, the decided round's
/// precommits. Other entries carry no extension data.
pub fn extended_commit(commit: &Commit, precommits: Option<&VoteSet>) -> ExtendedCommit {
    let value = Some(commit.block_id);
    let signatures = commit
        .signatures
        .iter()
        .enumerate()
        .map(|(i, sig)| {
            let vote = match sig {
                CommitSig::Commit { .. } => u32::try_from(i)
                    .ok()
                    .and_then(|i| precommits.and_then(|p| p.vote_for(i, &value))),
                _ => None,
            };
            ExtendedCommitSig {
                commit_sig: sig.clone(),
                extension: vote.map(|v| v.extension.clone()).unwrap_or_default(),
                extension_signature: vote
                    .map(|v| v.extension_signature.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    ExtendedCommit {
        height: commit.height,
        round: commit.round,
        block_id: commit.block_id,
        signatures,
    }
}

/// The `local_last_commit` of PrepareProposal from the previous height's
/// extended commit and `validators` (that height's set), CometBFT
/// `BuildExtendedCommitInfo`. `enabled` is whether extensions were enabled
/// at the commit's height: then every precommit for the block must carry
/// an extension signature and both are handed over; otherwise none may
/// carry extension data (the first height with extensions enabled gets a
/// last commit without any).
pub fn extended_commit_info(
    ec: &ExtendedCommit,
    validators: &ValidatorSet,
    enabled: bool,
) -> Result<ExtendedCommitInfo, VoteExtensionError> {
    let height = ec.height;
    if ec.signatures.len() != validators.len() {
        return Err(VoteExtensionError::SizeMismatch {
            height,
            entries: ec.signatures.len(),
            validators: validators.len(),
        });
    }
    let votes = validators
        .validators
        .iter()
        .zip(&ec.signatures)
        .enumerate()
        .map(|(index, (val, s))| {
            let (flag, address) = match &s.commit_sig {
                CommitSig::Absent => (1, None),
                CommitSig::Commit {
                    validator_address, ..
                } => (2, Some(validator_address)),
                CommitSig::Nil {
                    validator_address, ..
                } => (3, Some(validator_address)),
            };
            if address.is_some_and(|a| *a != val.address) {
                return Err(VoteExtensionError::AddressMismatch { height, index });
            }
            s.ensure_extension(enabled)
                .map_err(|source| VoteExtensionError::Extensions { height, source })?;
            Ok(ExtendedVoteInfo {
                validator: Some(AbciValidator {
                    address: val.address.0.to_vec().into(),
                    power: val.voting_power,
                }),
                vote_extension: s.extension.clone().into(),
                extension_signature: s.extension_signature.clone().into(),
                block_id_flag: flag,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ExtendedCommitInfo {
        round: i32::try_from(ec.round).unwrap_or(i32::MAX),
        votes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use abci::proto::ResponseVerifyVoteExtension;

    use super::*;
    use crate::app_conn::AppConnConfig;
    use crate::consensus::{Thresholds, VoteKeeper};
    use crate::types::{
        ConsensusParams, Hash, PartSetHeader, PrivateKey, Signature, Time, Validator, Version,
    };

    const CHAIN: &str = "ve-chain";

    fn key(i: u8) -> PrivateKey {
        PrivateKey::from_seed([i; 32])
    }

    fn validators() -> ValidatorSet {
        ValidatorSet::new(vec![
            Validator::new(key(1).public_key(), 10),
            Validator::new(key(2).public_key(), 10),
        ])
        .expect("set")
    }

    /// The state after `last` blocks, with extensions enabled from `enable`.
    fn state(last: Height, enable: i64) -> State {
        State {
            version: Version::default(),
            chain_id: CHAIN.into(),
            initial_height: 1,
            last_block_height: last,
            last_block_id: None,
            last_block_time: Time::default(),
            next_validators: validators(),
            validators: validators(),
            last_validators: Some(validators()),
            last_height_validators_changed: 1,
            consensus_params: ConsensusParams {
                vote_extensions_enable_height: enable,
                ..ConsensusParams::default()
            },
            last_height_consensus_params_changed: 1,
            last_results_hash: vec![],
            app_hash: vec![],
        }
    }

    fn block_id() -> BlockId {
        BlockId {
            hash: Hash([7; 32]),
            part_set_header: PartSetHeader {
                total: 1,
                hash: Hash([8; 32]),
            },
        }
    }

    /// A precommit for [`block_id`] by the validator with seed `seed`,
    /// signed, with `extension` signed when `sign_extension`.
    fn precommit(seed: u8, height: Height, extension: &[u8], sign_extension: bool) -> Vote {
        let k = key(seed);
        let vals = validators();
        let (index, _) = vals
            .get_by_address(&k.public_key().address())
            .expect("a validator");
        let mut v = Vote {
            vote_type: VoteType::Precommit,
            height,
            round: 0,
            block_id: Some(block_id()),
            timestamp: Time {
                secs: 1_700_000_000,
                nanos: 0,
            },
            validator_address: k.public_key().address(),
            validator_index: index,
            signature: Signature::default(),
            extension: extension.to_vec(),
            extension_signature: vec![],
        };
        v.sign(CHAIN, &k);
        if sign_extension {
            v.sign_extension(CHAIN, &k);
        }
        v
    }

    async fn kvstore() -> AppConns {
        AppConns::connect("kvstore", &AppConnConfig::default())
            .await
            .expect("in-process kvstore")
    }

    /// An application that rejects every extension, over a real socket.
    struct Rejecting;

    impl abci::Application for Rejecting {
        async fn verify_vote_extension(
            &self,
            _request: RequestVerifyVoteExtension,
        ) -> ResponseVerifyVoteExtension {
            ResponseVerifyVoteExtension {
                status: VerifyStatus::Reject.into(),
            }
        }
    }

    async fn rejecting_app() -> AppConns {
        let addr = abci::Addr::parse("tcp://127.0.0.1:0").expect("address");
        let server = abci::Server::bind(&addr, Arc::new(Rejecting), Default::default())
            .await
            .expect("bind");
        let bound = server.local_addr().expect("bound address").to_string();
        tokio::spawn(server.run());
        AppConns::connect(&bound, &AppConnConfig::default())
            .await
            .expect("connect")
    }

    #[test]
    fn extensions_are_enabled_from_the_enable_height_on_and_never_at_zero() {
        let never = ConsensusParams::default();
        assert!((1..100).all(|h| !never.vote_extensions_enabled(h)));
        let from_2 = state(0, 2).consensus_params;
        assert!(!from_2.vote_extensions_enabled(1));
        assert!(from_2.vote_extensions_enabled(2));
        assert!(from_2.vote_extensions_enabled(3));
        // The rule as the admission applies it: before the enable height
        // extension data is refused, from it on it is required.
        let signed = precommit(2, 1, b"x", true);
        assert_eq!(
            check_received_vote(&state(0, 2), None, &signed),
            Err(VoteRefused::ExtensionWhileDisabled { height: 1 })
        );
        let signed = precommit(2, 2, b"x", true);
        assert!(matches!(
            check_received_vote(&state(1, 2), None, &signed),
            Ok(Some(_))
        ));
    }

    #[tokio::test]
    async fn a_good_extension_is_verified_by_the_app_and_admitted() {
        let vote = precommit(2, 2, b"ext-2", true);
        let own = Some(key(1).public_key().address());
        let request = check_received_vote(&state(1, 2), own, &vote)
            .expect("admissible")
            .expect("the app must verify it");
        assert_eq!(request.vote_extension.as_ref(), b"ext-2");
        assert_eq!(request.height, 2);
        assert_eq!(request.hash.as_ref(), &block_id().hash.0);
        assert_eq!(
            request.validator_address.as_ref(),
            &key(2).public_key().address().0
        );
        // The kvstore, like Go's, accepts every extension.
        admit_received_vote(&kvstore().await, &state(1, 2), own, &vote)
            .await
            .expect("admitted");
        // An empty extension is still signed and still admitted.
        let empty = precommit(2, 2, b"", true);
        admit_received_vote(&kvstore().await, &state(1, 2), own, &empty)
            .await
            .expect("admitted");
    }

    #[tokio::test]
    async fn bad_or_missing_extension_signatures_are_refused() {
        let app = kvstore().await;
        let st = state(1, 2);
        let mut forged = precommit(2, 2, b"ext-2", true);
        forged.extension = b"ext-X".to_vec();
        assert!(matches!(
            admit_received_vote(&app, &st, None, &forged).await,
            Err(AdmitError::Refused(VoteRefused::BadSignature(_)))
        ));
        let unsigned = precommit(2, 2, b"ext-2", false);
        assert!(matches!(
            admit_received_vote(&app, &st, None, &unsigned).await,
            Err(AdmitError::Refused(VoteRefused::BadSignature(_)))
        ));
        // Signed by another validator's key than the one at its index.
        let mut impostor = precommit(2, 2, b"ext-2", false);
        impostor.sign_extension(CHAIN, &key(1));
        assert!(matches!(
            check_received_vote(&st, None, &impostor),
            Err(VoteRefused::BadSignature(_))
        ));
        // A late precommit for the previous height is checked against the
        // previous validators, without asking the app.
        let late = precommit(2, 2, b"ext-2", false);
        assert!(matches!(
            check_received_vote(&state(2, 2), None, &late),
            Err(VoteRefused::BadSignature(_))
        ));
        let late = precommit(2, 2, b"ext-2", true);
        assert_eq!(check_received_vote(&state(2, 2), None, &late), Ok(None));
    }

    #[tokio::test]
    async fn extension_data_while_disabled_is_refused() {
        let app = kvstore().await;
        for st in [state(1, 0), state(1, 3)] {
            let with_ext = precommit(2, 2, b"ext-2", true);
            assert!(matches!(
                admit_received_vote(&app, &st, None, &with_ext).await,
                Err(AdmitError::Refused(VoteRefused::ExtensionWhileDisabled {
                    height: 2
                }))
            ));
            let only_signature = precommit(2, 2, b"", true);
            assert!(matches!(
                admit_received_vote(&app, &st, None, &only_signature).await,
                Err(AdmitError::Refused(
                    VoteRefused::ExtensionWhileDisabled { .. }
                ))
            ));
            let plain = precommit(2, 2, b"", false);
            assert_eq!(check_received_vote(&st, None, &plain), Ok(None));
        }
    }

    #[tokio::test]
    async fn an_extension_the_app_rejects_is_refused_but_our_own_is_not_sent() {
        let app = rejecting_app().await;
        let st = state(1, 2);
        let vote = precommit(2, 2, b"ext-2", true);
        assert!(matches!(
            admit_received_vote(&app, &st, None, &vote).await,
            Err(AdmitError::Refused(VoteRefused::Rejected))
        ));
        // Our own precommit coming back is not sent to VerifyVoteExtension.
        let own = Some(key(2).public_key().address());
        admit_received_vote(&app, &st, own, &vote)
            .await
            .expect("own vote admitted without asking the app");
    }

    #[test]
    fn malformed_oversized_and_future_votes_are_refused() {
        let st = state(1, 2);
        let mut prevote = precommit(2, 2, b"", false);
        prevote.vote_type = VoteType::Prevote;
        prevote.extension = b"x".to_vec();
        assert_eq!(
            check_received_vote(&st, None, &prevote),
            Err(VoteRefused::ExtensionOnWrongVote)
        );
        let mut nil = precommit(2, 2, b"", false);
        nil.block_id = None;
        nil.extension_signature = vec![1; 64];
        assert_eq!(
            check_received_vote(&st, None, &nil),
            Err(VoteRefused::ExtensionOnWrongVote)
        );
        let big = precommit(2, 2, &vec![0; MAX_VOTE_EXTENSION_SIZE + 1], true);
        assert_eq!(
            check_received_vote(&st, None, &big),
            Err(VoteRefused::TooLarge {
                len: MAX_VOTE_EXTENSION_SIZE + 1
            })
        );
        let future = precommit(2, 3, b"ext-3", true);
        assert_eq!(
            check_received_vote(&st, None, &future),
            Err(VoteRefused::FutureHeight {
                height: 3,
                current: 2
            })
        );
        let mut unknown = precommit(2, 2, b"e", true);
        unknown.validator_index = 9;
        assert_eq!(
            check_received_vote(&st, None, &unknown),
            Err(VoteRefused::UnknownValidator(9))
        );
    }

    #[test]
    fn the_extended_commit_carries_the_decided_precommits_extensions() {
        let vals = validators();
        let mut keeper = VoteKeeper::new(Thresholds::new(vals.total_voting_power()));
        let votes = [
            precommit(1, 2, b"ext-a", true),
            precommit(2, 2, b"ext-b", true),
        ];
        for v in &votes {
            keeper.add(v.clone(), 10);
        }
        let sig = |v: &Vote| CommitSig::Commit {
            validator_address: v.validator_address,
            timestamp: v.timestamp,
            signature: v.signature,
        };
        let mut by_index = votes.clone();
        by_index.sort_by_key(|v| v.validator_index);
        let commit = Commit {
            height: 2,
            round: 0,
            block_id: block_id(),
            signatures: by_index.iter().map(sig).collect(),
        };
        let precommits = keeper.round(0).map(|r| &r.precommits);
        let ec = extended_commit(&commit, precommits);
        assert_eq!(ec.to_commit(), commit);
        assert_eq!(ec.ensure_extensions(true), Ok(()));
        for (entry, vote) in ec.signatures.iter().zip(&by_index) {
            assert_eq!(entry.extension, vote.extension);
            assert_eq!(entry.extension_signature, vote.extension_signature);
        }

        let info = extended_commit_info(&ec, &vals, true).expect("valid");
        assert_eq!(info.votes.len(), 2);
        for (v, vote) in info.votes.iter().zip(&by_index) {
            assert_eq!(v.block_id_flag, 2);
            assert_eq!(v.vote_extension.as_ref(), vote.extension.as_slice());
            assert_eq!(
                v.extension_signature.as_ref(),
                vote.extension_signature.as_slice()
            );
        }
        // At the first enabled height the last commit predates extensions:
        // a plain commit, handed over without any.
        let plain = ExtendedCommit::from_commit(commit);
        let info = extended_commit_info(&plain, &vals, false).expect("valid");
        assert!(info
            .votes
            .iter()
            .all(|v| v.vote_extension.is_empty() && v.extension_signature.is_empty()));
        // Extension data where it must not be, or missing where it must,
        // is an error, never passed on.
        assert!(matches!(
            extended_commit_info(&plain, &vals, true),
            Err(VoteExtensionError::Extensions { height: 2, .. })
        ));
        assert!(matches!(
            extended_commit_info(&ec, &vals, false),
            Err(VoteExtensionError::Extensions { .. })
        ));
        let one = ValidatorSet::new(vec![vals.validators[0].clone()]).expect("set");
        assert!(matches!(
            extended_commit_info(&ec, &one, true),
            Err(VoteExtensionError::SizeMismatch { .. })
        ));
    }
}
