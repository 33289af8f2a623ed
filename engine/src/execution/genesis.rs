//! The state of a fresh chain (CometBFT `MakeGenesisState`) and the InitChain
//! exchange of the handshake (consensus/replay.go, `ReplayBlocks` at app
//! height 0).

use tendermint_proto::v0_38::abci::{RequestInitChain, ResponseInitChain, ValidatorUpdate};
use tendermint_proto::v0_38::types as pb;

use super::transition::validator_from_update;
use super::{ExecError, Result};
use crate::genesis::GenesisDoc;
use crate::store::State;
use crate::types::{sha256, Validator, ValidatorSet, Version, BLOCK_PROTOCOL};

/// A validator set with no validators, as Go's `NewValidatorSet(nil)`: what
/// the state holds when the genesis leaves validators to InitChain.
fn empty_set() -> ValidatorSet {
    ValidatorSet {
        validators: Vec::new(),
        proposer: None,
        total_voting_power: 0,
    }
}

/// The state before the first block (CometBFT `MakeGenesisState`): protocol
/// version `BLOCK_PROTOCOL` with app version 0 (the handshake learns the app
/// version), the genesis validators with their proposer priorities
/// initialised and the next validators one increment ahead, the genesis time
/// as last block time, the genesis parameters and app hash. Both "last
/// changed" heights are the initial height.
///
/// `last_block_height` is `initial_height - 1`, as [`State`] documents it
/// (CometBFT writes 0; the two agree on chains starting at height 1).
/// `last_results_hash` stays empty until [`apply_init_chain`] sets it, as in
/// CometBFT.
pub fn genesis_state(genesis: &GenesisDoc) -> Result<State> {
    if genesis.initial_height == 0 {
        return Err(ExecError::InvalidGenesis(crate::types::Error::field(
            "initial_height",
            "must be >= 1",
        )));
    }
    genesis
        .consensus_params
        .validate_basic()
        .map_err(ExecError::InvalidGenesis)?;
    let (validators, next_validators) =
        match genesis.validator_set().map_err(ExecError::InvalidGenesis)? {
            Some(set) => {
                let next = set.copy_increment_proposer_priority(1);
                (set, next)
            }
            None => (empty_set(), empty_set()),
        };
    Ok(State {
        version: Version {
            block: BLOCK_PROTOCOL,
            app: 0,
        },
        chain_id: genesis.chain_id.clone(),
        initial_height: genesis.initial_height,
        last_block_height: genesis.initial_height - 1,
        last_block_id: None,
        last_block_time: genesis.genesis_time,
        next_validators,
        validators,
        last_validators: None,
        last_height_validators_changed: genesis.initial_height,
        consensus_params: genesis.consensus_params.clone(),
        last_height_consensus_params_changed: genesis.initial_height,
        last_results_hash: Vec::new(),
        app_hash: genesis.app_hash.clone(),
    })
}

/// The InitChain request of the handshake: genesis time, chain id, genesis
/// consensus parameters, the genesis validators as updates (in validator-set
/// order: power descending, then address), the application state bytes and
/// the initial height.
///
/// `app_state_bytes` is the compact JSON serialisation of the genesis
/// `app_state` (keys in file order), not the file's raw bytes as CometBFT
/// passes them: whitespace may differ.
pub fn init_chain_request(genesis: &GenesisDoc) -> RequestInitChain {
    let mut vals: Vec<Validator> = genesis
        .validators
        .iter()
        .map(|v| Validator::new(v.pub_key, v.power))
        .collect();
    vals.sort_by(|a, b| {
        b.voting_power
            .cmp(&a.voting_power)
            .then_with(|| a.address.cmp(&b.address))
    });
    let app_state_bytes = genesis
        .app_state
        .as_ref()
        .map(|v| serde_json::to_vec(v).unwrap_or_default())
        .unwrap_or_default();
    RequestInitChain {
        time: Some(genesis.genesis_time.into()),
        chain_id: genesis.chain_id.clone(),
        consensus_params: Some(pb::ConsensusParams::from(genesis.consensus_params.clone())),
        validators: vals
            .into_iter()
            .map(|v| ValidatorUpdate {
                pub_key: Some(v.pub_key.into()),
                power: v.voting_power,
            })
            .collect(),
        app_state_bytes: app_state_bytes.into(),
        initial_height: i64::try_from(genesis.initial_height).unwrap_or(i64::MAX),
    }
}

/// Folds the application's InitChain response into the genesis state, as
/// CometBFT's handshake does: a non-empty app hash replaces the state's;
/// validators in the response replace the genesis set (validators, and next
/// validators one increment ahead); with none in either the chain cannot
/// start ([`ExecError::NoValidators`]); consensus parameters in the response
/// update the state's (and the app version with them); the last results
/// hash becomes the empty-tree root.
///
/// Deviation: the updated parameters are checked with `validate_basic`
/// (CometBFT takes them unchecked), and invalid validators are an error
/// where CometBFT panics.
pub fn apply_init_chain(state: State, response: &ResponseInitChain) -> Result<State> {
    if state.last_block_id.is_some() {
        return Err(ExecError::NotAtGenesis(state.last_block_height));
    }
    let mut state = state;
    if !response.app_hash.is_empty() {
        state.app_hash = response.app_hash.to_vec();
    }
    if response.validators.is_empty() {
        if state.validators.is_empty() {
            return Err(ExecError::NoValidators);
        }
    } else {
        let vals = response
            .validators
            .iter()
            .enumerate()
            .map(|(index, u)| validator_from_update(index, u))
            .collect::<Result<Vec<_>>>()?;
        let set = ValidatorSet::new(vals).map_err(ExecError::ValidatorSetChange)?;
        state.next_validators = set.copy_increment_proposer_priority(1);
        state.validators = set;
    }
    if let Some(changes) = &response.consensus_params {
        let params = state
            .consensus_params
            .update(changes)
            .map_err(ExecError::ConsensusParams)?;
        params
            .validate_basic()
            .map_err(ExecError::ConsensusParams)?;
        state.version.app = params.version_app;
        state.consensus_params = params;
    }
    state.last_results_hash = sha256(&[]).0.to_vec();
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::GenesisValidator;
    use crate::types::{PrivateKey, Time};

    fn key(i: u8) -> PrivateKey {
        PrivateKey::from_seed([i; 32])
    }

    fn genesis(powers: &[i64]) -> GenesisDoc {
        GenesisDoc {
            genesis_time: Time {
                secs: 1_700_000_000,
                nanos: 5,
            },
            chain_id: "exec-chain".into(),
            initial_height: 1,
            consensus_params: crate::types::ConsensusParams::default(),
            validators: powers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pub_key = key(i as u8 + 1).public_key();
                    GenesisValidator {
                        address: pub_key.address(),
                        pub_key,
                        power: *p,
                        name: String::new(),
                    }
                })
                .collect(),
            app_hash: vec![1, 2, 3],
            app_state: Some(serde_json::json!({"b": 1, "a": [true]})),
        }
    }

    #[test]
    fn genesis_state_fields() {
        let g = genesis(&[10, 20, 30]);
        let s = genesis_state(&g).expect("state");
        assert_eq!(s.version.block, BLOCK_PROTOCOL);
        assert_eq!(s.version.app, 0);
        assert_eq!(s.last_block_height, 0);
        assert_eq!(s.last_block_id, None);
        assert_eq!(s.last_block_time, g.genesis_time);
        assert_eq!(s.validators.len(), 3);
        assert_eq!(
            s.next_validators,
            s.validators.copy_increment_proposer_priority(1)
        );
        assert_eq!(s.last_validators, None);
        assert_eq!(s.last_height_validators_changed, 1);
        assert_eq!(s.last_height_consensus_params_changed, 1);
        assert_eq!(s.app_hash, vec![1, 2, 3]);
        assert!(s.last_results_hash.is_empty());

        let mut g2 = g.clone();
        g2.initial_height = 7;
        let s2 = genesis_state(&g2).expect("state");
        assert_eq!(s2.last_block_height, 6);
        assert_eq!(s2.last_height_validators_changed, 7);
        assert_eq!(super::super::next_height(&s2), 7);

        let mut bad = g.clone();
        bad.consensus_params.block.max_bytes = 0;
        assert!(matches!(
            genesis_state(&bad),
            Err(ExecError::InvalidGenesis(_))
        ));
        bad = g.clone();
        bad.initial_height = 0;
        assert!(matches!(
            genesis_state(&bad),
            Err(ExecError::InvalidGenesis(_))
        ));
        bad = g;
        bad.validators[0].power = 0;
        assert!(matches!(
            genesis_state(&bad),
            Err(ExecError::InvalidGenesis(_))
        ));
    }

    #[test]
    fn init_chain_request_fields() {
        let g = genesis(&[10, 30, 20]);
        let req = init_chain_request(&g);
        assert_eq!(req.chain_id, "exec-chain");
        assert_eq!(req.initial_height, 1);
        assert_eq!(req.time, Some(g.genesis_time.into()));
        assert_eq!(
            req.consensus_params,
            Some(pb::ConsensusParams::from(g.consensus_params.clone()))
        );
        assert_eq!(&req.app_state_bytes[..], br#"{"b":1,"a":[true]}"#);
        // Set order, as CometBFT's TM2PB.ValidatorUpdates(validatorSet).
        let set = genesis_state(&g).expect("state").validators;
        let want: Vec<ValidatorUpdate> = set
            .validators
            .iter()
            .map(|v| ValidatorUpdate {
                pub_key: Some(v.pub_key.into()),
                power: v.voting_power,
            })
            .collect();
        assert_eq!(req.validators, want);
        assert_eq!(
            req.validators.iter().map(|u| u.power).collect::<Vec<_>>(),
            vec![30, 20, 10]
        );
        let empty = GenesisDoc {
            app_state: None,
            validators: Vec::new(),
            ..g
        };
        let req = init_chain_request(&empty);
        assert!(req.validators.is_empty());
        assert!(req.app_state_bytes.is_empty());
    }

    #[test]
    fn init_chain_keeps_genesis_without_overrides() {
        let s = genesis_state(&genesis(&[10, 20])).expect("state");
        let out = apply_init_chain(s.clone(), &ResponseInitChain::default()).expect("apply");
        assert_eq!(out.validators, s.validators);
        assert_eq!(out.next_validators, s.next_validators);
        assert_eq!(out.app_hash, s.app_hash);
        assert_eq!(out.consensus_params, s.consensus_params);
        assert_eq!(out.last_results_hash, sha256(&[]).0.to_vec());
    }

    #[test]
    fn init_chain_replaces_set_params_and_app_hash() {
        let s = genesis_state(&genesis(&[10, 20])).expect("state");
        let new_key = key(9).public_key();
        let mut params = pb::ConsensusParams::from(s.consensus_params.clone());
        params.block = Some(pb::BlockParams {
            max_bytes: 2_000_000,
            max_gas: 50,
        });
        params.version = Some(pb::VersionParams { app: 4 });
        let resp = ResponseInitChain {
            consensus_params: Some(params),
            validators: vec![ValidatorUpdate {
                pub_key: Some(new_key.into()),
                power: 7,
            }],
            app_hash: vec![0xAA; 4].into(),
        };
        let out = apply_init_chain(s, &resp).expect("apply");
        assert_eq!(out.validators.len(), 1);
        assert_eq!(out.validators.validators[0].pub_key, new_key);
        assert_eq!(out.validators.validators[0].voting_power, 7);
        assert_eq!(
            out.next_validators,
            out.validators.copy_increment_proposer_priority(1)
        );
        assert_eq!(out.app_hash, vec![0xAA; 4]);
        assert_eq!(out.consensus_params.block.max_bytes, 2_000_000);
        assert_eq!(out.consensus_params.block.max_gas, 50);
        assert_eq!(out.version.app, 4);
    }

    #[test]
    fn init_chain_errors() {
        let empty = genesis_state(&genesis(&[])).expect("state");
        assert!(empty.validators.is_empty());
        assert_eq!(
            apply_init_chain(empty.clone(), &ResponseInitChain::default()),
            Err(ExecError::NoValidators)
        );
        let zero_power = ResponseInitChain {
            validators: vec![ValidatorUpdate {
                pub_key: Some(key(3).public_key().into()),
                power: 0,
            }],
            ..Default::default()
        };
        assert!(matches!(
            apply_init_chain(empty.clone(), &zero_power),
            Err(ExecError::ValidatorSetChange(_))
        ));
        let no_key = ResponseInitChain {
            validators: vec![ValidatorUpdate {
                pub_key: None,
                power: 1,
            }],
            ..Default::default()
        };
        assert!(matches!(
            apply_init_chain(empty.clone(), &no_key),
            Err(ExecError::InvalidValidatorUpdate { index: 0, .. })
        ));
        let bad_params = pb::ConsensusParams {
            block: Some(pb::BlockParams {
                max_bytes: 0,
                max_gas: -1,
            }),
            ..Default::default()
        };
        let s = genesis_state(&genesis(&[1])).expect("state");
        assert!(matches!(
            apply_init_chain(
                s.clone(),
                &ResponseInitChain {
                    consensus_params: Some(bad_params),
                    ..Default::default()
                }
            ),
            Err(ExecError::ConsensusParams(_))
        ));
        let mut later = s;
        later.last_block_id = Some(crate::types::BlockId::default());
        assert!(matches!(
            apply_init_chain(later, &ResponseInitChain::default()),
            Err(ExecError::NotAtGenesis(_))
        ));
    }
}
