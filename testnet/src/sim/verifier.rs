//! A memoizing signature verifier shared by all nodes of a run.

use std::collections::HashMap;
use std::sync::Mutex;

use engine::consensus::SignatureVerifier;
use engine::types::{PublicKey, Signature};

type Memo = HashMap<(PublicKey, Vec<u8>, Signature), bool>;

/// Real ed25519 verification, memoized on (key, message, signature): every
/// node of a simulated run verifies the same signed messages, so each one is
/// checked once. The answer is the same as [`engine::consensus::Ed25519Verifier`]'s.
#[derive(Default)]
pub struct MemoVerifier {
    memo: Mutex<Memo>,
    checks: Mutex<u64>,
}

impl MemoVerifier {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct verifications were actually computed.
    pub fn computed(&self) -> u64 {
        *self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SignatureVerifier for MemoVerifier {
    fn verify(&self, key: &PublicKey, msg: &[u8], signature: &Signature) -> bool {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let k = (*key, msg.to_vec(), *signature);
        if let Some(ok) = memo.get(&k) {
            return *ok;
        }
        let ok = key.verify(msg, signature).is_ok();
        *self.checks.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        memo.insert(k, ok);
        ok
    }
}
