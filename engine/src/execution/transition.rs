//! The state after a finalized block (CometBFT state/execution.go:
//! `validateValidatorUpdates`, `PB2TM.ValidatorUpdates` and `updateState`).

use tendermint_proto::v0_38::abci::{ResponseFinalizeBlock, ValidatorUpdate};

use super::{next_height, ExecError, Result};
use crate::store::State;
use crate::types::{
    results_hash, Block, BlockId, ConsensusParams, PublicKey, Validator, ABCI_PUB_KEY_TYPE_ED25519,
};

/// Converts one ABCI validator update (CometBFT `PB2TM.ValidatorUpdates`):
/// the key must be a well-formed ed25519 key, the only type this engine
/// supports. The power is taken as is (0 means removal).
pub(super) fn validator_from_update(index: usize, u: &ValidatorUpdate) -> Result<Validator> {
    let invalid = |reason: String| ExecError::InvalidValidatorUpdate { index, reason };
    let key = u
        .pub_key
        .clone()
        .ok_or_else(|| invalid("missing public key".into()))?;
    let pub_key = PublicKey::try_from(key).map_err(|e| invalid(e.to_string()))?;
    Ok(Validator::new(pub_key, u.power))
}

/// Checks and converts the validator updates of a FinalizeBlock response,
/// as CometBFT's `validateValidatorUpdates` then `PB2TM.ValidatorUpdates`:
/// no negative power, and every added or changed validator's key type
/// (ed25519) allowed by `params.validator_pub_key_types`. Removals (power 0)
/// are not checked against the key types. Keys other than ed25519 are
/// rejected (CometBFT would accept secp256k1 where the parameters allow it).
pub fn validator_updates(
    updates: &[ValidatorUpdate],
    params: &ConsensusParams,
) -> Result<Vec<Validator>> {
    let ed25519_allowed = params
        .validator_pub_key_types
        .iter()
        .any(|t| t == ABCI_PUB_KEY_TYPE_ED25519);
    updates
        .iter()
        .enumerate()
        .map(|(index, u)| {
            if u.power < 0 {
                return Err(ExecError::InvalidValidatorUpdate {
                    index,
                    reason: format!("voting power can't be negative: {}", u.power),
                });
            }
            let v = validator_from_update(index, u)?;
            if u.power > 0 && !ed25519_allowed {
                return Err(ExecError::InvalidValidatorUpdate {
                    index,
                    reason: format!(
                        "key type {ABCI_PUB_KEY_TYPE_ED25519} is not allowed by the consensus params ({:?})",
                        params.validator_pub_key_types
                    ),
                });
            }
            Ok(v)
        })
        .collect()
}

/// The state after `block` (with id `block_id`) has been finalized by the
/// application with `response` (CometBFT `updateState`, plus the checks
/// `applyBlock` makes on the response, plus the app hash its `Commit` sets):
///
/// - the response must carry one tx result per transaction
///   ([`ExecError::TxResultsMismatch`]: the node must halt);
/// - validator updates are checked ([`validator_updates`]) and applied to a
///   copy of the next validators, so they take effect two heights after
///   `block` (`last_height_validators_changed = height + 2`); that set's
///   proposer priority is incremented once; validators shift down
///   (next → current → last);
/// - consensus parameter updates are applied, must yield valid parameters
///   and respect the vote-extension rules (`validate_update` against the
///   current parameters at the block's height); they take effect at the next
///   height (`last_height_consensus_params_changed = height + 1`) and carry
///   the app version into `state.version`;
/// - `last_results_hash` is the merkle root of the deterministic parts of
///   the tx results, `app_hash` the response's, `last_block_*` the block's.
///
/// `block` is expected to have passed [`validate_block`](super::validate_block)
/// against `state`; only its height is re-checked.
pub fn next_state(
    state: &State,
    block_id: BlockId,
    block: &Block,
    response: &ResponseFinalizeBlock,
) -> Result<State> {
    let header = &block.header;
    let expected = next_height(state);
    if header.height != expected {
        return Err(ExecError::WrongFinalizeHeight {
            expected,
            got: header.height,
        });
    }
    if block.txs.len() != response.tx_results.len() {
        return Err(ExecError::TxResultsMismatch {
            txs: block.txs.len(),
            results: response.tx_results.len(),
        });
    }
    let updates = validator_updates(&response.validator_updates, &state.consensus_params)?;

    let mut next_validators = state.next_validators.clone();
    let mut last_height_validators_changed = state.last_height_validators_changed;
    if !updates.is_empty() {
        next_validators
            .update_with_change_set(&updates)
            .map_err(ExecError::ValidatorSetChange)?;
        last_height_validators_changed = header.height + 2;
    }
    next_validators.increment_proposer_priority(1);

    let mut version = state.version;
    let mut consensus_params = state.consensus_params.clone();
    let mut last_height_consensus_params_changed = state.last_height_consensus_params_changed;
    if let Some(changes) = &response.consensus_param_updates {
        let params = state
            .consensus_params
            .update(changes)
            .map_err(ExecError::ConsensusParams)?;
        params
            .validate_basic()
            .map_err(ExecError::ConsensusParams)?;
        state
            .consensus_params
            .validate_update(changes, header.height)
            .map_err(ExecError::ConsensusParams)?;
        version.app = params.version_app;
        consensus_params = params;
        last_height_consensus_params_changed = header.height + 1;
    }

    Ok(State {
        version,
        chain_id: state.chain_id.clone(),
        initial_height: state.initial_height,
        last_block_height: header.height,
        last_block_id: Some(block_id),
        last_block_time: header.time,
        next_validators,
        validators: state.next_validators.clone(),
        last_validators: Some(state.validators.clone()),
        last_height_validators_changed,
        consensus_params,
        last_height_consensus_params_changed,
        last_results_hash: results_hash(&response.tx_results).0.to_vec(),
        app_hash: response.app_hash.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PrivateKey;

    fn update(seed: u8, power: i64) -> ValidatorUpdate {
        ValidatorUpdate {
            pub_key: Some(PrivateKey::from_seed([seed; 32]).public_key().into()),
            power,
        }
    }

    #[test]
    fn validator_update_checks() {
        let params = ConsensusParams::default();
        let vals = validator_updates(&[update(1, 5), update(2, 0)], &params).expect("valid");
        assert_eq!(vals.len(), 2);
        assert_eq!(vals[0].voting_power, 5);
        assert_eq!(vals[0].address, vals[0].pub_key.address());
        assert_eq!(vals[1].voting_power, 0);

        let err = validator_updates(&[update(1, 5), update(2, -1)], &params);
        assert!(matches!(
            err,
            Err(ExecError::InvalidValidatorUpdate { index: 1, .. })
        ));

        let mut secp_only = params.clone();
        secp_only.validator_pub_key_types = vec!["secp256k1".into()];
        assert!(matches!(
            validator_updates(&[update(1, 5)], &secp_only),
            Err(ExecError::InvalidValidatorUpdate { index: 0, .. })
        ));
        // Removals are not checked against the allowed key types.
        assert!(validator_updates(&[update(1, 0)], &secp_only).is_ok());

        let bad_key = ValidatorUpdate {
            pub_key: Some(tendermint_proto::v0_38::crypto::PublicKey {
                sum: Some(tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(
                    vec![1; 31],
                )),
            }),
            power: 1,
        };
        assert!(matches!(
            validator_updates(&[bad_key], &params),
            Err(ExecError::InvalidValidatorUpdate { index: 0, .. })
        ));
        let secp = ValidatorUpdate {
            pub_key: Some(tendermint_proto::v0_38::crypto::PublicKey {
                sum: Some(tendermint_proto::v0_38::crypto::public_key::Sum::Secp256k1(
                    vec![2; 33],
                )),
            }),
            power: 1,
        };
        assert!(matches!(
            validator_updates(&[secp], &params),
            Err(ExecError::InvalidValidatorUpdate { index: 0, .. })
        ));
    }
}
