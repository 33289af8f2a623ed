//! The header's `last_results_hash` over the application's transaction
//! results (CometBFT types/results.go).

use prost::Message;
use tendermint_proto::v0_38::abci::ExecTxResult;

use super::{merkle_hash_from_byte_slices, Hash};

/// Merkle root of the results' deterministic parts: each leaf is the encoding
/// of an `ExecTxResult` holding only `code`, `data`, `gas_wanted` and
/// `gas_used` (log, info, events and codespace are dropped, as CometBFT
/// `NewResults` does).
pub fn results_hash(results: &[ExecTxResult]) -> Hash {
    let leaves: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            ExecTxResult {
                code: r.code,
                data: r.data.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    merkle_hash_from_byte_slices(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{inner_hash, leaf_hash};
    use crate::sha256;

    /// CometBFT results_test.go TestABCIResults: the leaves are the encodings
    /// of the stripped results; non-deterministic fields do not matter.
    #[test]
    fn golden_abci_results() {
        let a = ExecTxResult {
            code: 0,
            data: Vec::new().into(),
            ..Default::default()
        };
        let b = ExecTxResult {
            code: 0,
            data: b"one".to_vec().into(),
            ..Default::default()
        };
        let c = ExecTxResult {
            code: 14,
            data: Vec::new().into(),
            ..Default::default()
        };
        let e = ExecTxResult {
            code: 14,
            data: b"foo".to_vec().into(),
            log: "bar".into(),
            gas_wanted: 5,
            gas_used: 3,
            ..Default::default()
        };
        let results = [a, b, c, e.clone()];
        // Hand-encoded leaves: empty, data "one", code 14, and
        // code 14 + data "foo" + gas_wanted 5 + gas_used 3 (log dropped).
        let leaves: [&[u8]; 4] = [
            &[],
            &[0x12, 3, b'o', b'n', b'e'],
            &[0x08, 14],
            &[0x08, 14, 0x12, 3, b'f', b'o', b'o', 0x28, 5, 0x30, 3],
        ];
        let want = inner_hash(
            &inner_hash(&leaf_hash(leaves[0]), &leaf_hash(leaves[1])),
            &inner_hash(&leaf_hash(leaves[2]), &leaf_hash(leaves[3])),
        );
        assert_eq!(results_hash(&results), want);
        let mut noisy = e;
        noisy.info = "x".into();
        noisy.codespace = "y".into();
        let results2 = [
            results[0].clone(),
            results[1].clone(),
            results[2].clone(),
            noisy,
        ];
        assert_eq!(results_hash(&results2), want);
        assert_eq!(results_hash(&[]), sha256(&[]));
    }
}
