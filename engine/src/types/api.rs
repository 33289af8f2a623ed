//! TEMPORARY: the method surface of `types`, fixed so that `consensus` can be
//! written in parallel. Every `todo!()` here is replaced by the real
//! implementation (in topic modules: merkle, hashing, sign bytes, validator
//! set, part set, proto conversions) before this lands.
#![allow(clippy::todo, unused_variables, missing_docs)]

use super::*;

impl PublicKey {
    pub fn address(&self) -> Address {
        todo!()
    }
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), Error> {
        todo!()
    }
}

/// An ed25519 signing key.
pub struct PrivateKey(pub ed25519_consensus::SigningKey);

impl PrivateKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        todo!()
    }
    pub fn public_key(&self) -> PublicKey {
        todo!()
    }
    pub fn sign(&self, msg: &[u8]) -> Signature {
        todo!()
    }
}

impl Vote {
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        todo!()
    }
    pub fn extension_sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        todo!()
    }
    pub fn verify(&self, chain_id: &str, pub_key: &PublicKey) -> Result<(), Error> {
        todo!()
    }
}

impl Proposal {
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        todo!()
    }
    pub fn verify(&self, chain_id: &str, pub_key: &PublicKey) -> Result<(), Error> {
        todo!()
    }
}

impl Validator {
    pub fn new(pub_key: PublicKey, voting_power: i64) -> Self {
        todo!()
    }
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, Error> {
        todo!()
    }
    pub fn hash(&self) -> Hash {
        todo!()
    }
    pub fn total_voting_power(&self) -> i64 {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    pub fn get_by_address(&self, address: &Address) -> Option<(u32, &Validator)> {
        todo!()
    }
    pub fn get_by_index(&self, index: u32) -> Option<&Validator> {
        todo!()
    }
    pub fn proposer(&self) -> &Validator {
        todo!()
    }
    pub fn increment_proposer_priority(&mut self, times: u32) {
        todo!()
    }
    pub fn copy_increment_proposer_priority(&self, times: u32) -> ValidatorSet {
        todo!()
    }
    pub fn update_with_change_set(&mut self, changes: &[Validator]) -> Result<(), Error> {
        todo!()
    }
}

impl Header {
    pub fn hash(&self) -> Hash {
        todo!()
    }
}

impl Block {
    pub fn hash(&self) -> Hash {
        todo!()
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!()
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        todo!()
    }
    pub fn part_set(&self) -> PartSet {
        todo!()
    }
    pub fn block_id(&self) -> BlockId {
        todo!()
    }
}

impl Commit {
    pub fn hash(&self) -> Hash {
        todo!()
    }
}

impl ConsensusParams {
    pub fn hash(&self) -> Hash {
        todo!()
    }
}

impl Default for ConsensusParams {
    fn default() -> Self {
        todo!()
    }
}

impl DuplicateVoteEvidence {
    pub fn new(
        a: Vote,
        b: Vote,
        timestamp: Time,
        validators: &ValidatorSet,
    ) -> Result<Self, Error> {
        todo!()
    }
    pub fn hash(&self) -> Hash {
        todo!()
    }
}

pub const BLOCK_PART_SIZE: usize = 65536;

pub struct Proof {
    pub total: u64,
    pub index: u64,
    pub leaf_hash: Hash,
    pub aunts: Vec<Hash>,
}
pub struct Part {
    pub index: u32,
    pub bytes: Vec<u8>,
    pub proof: Proof,
}
pub struct PartSet {
    pub header: PartSetHeader,
}

impl PartSet {
    pub fn from_data(data: &[u8], part_size: usize) -> Self {
        todo!()
    }
    pub fn from_header(header: PartSetHeader) -> Self {
        todo!()
    }
    pub fn add_part(&mut self, part: Part) -> Result<bool, Error> {
        todo!()
    }
    pub fn is_complete(&self) -> bool {
        todo!()
    }
    pub fn data(&self) -> Option<Vec<u8>> {
        todo!()
    }
}

pub fn merkle_hash_from_byte_slices<T: AsRef<[u8]>>(items: &[T]) -> Hash {
    todo!()
}
pub fn txs_hash(txs: &[Vec<u8>]) -> Hash {
    todo!()
}
pub fn bft_time(commit: &Commit, validators: &ValidatorSet) -> Time {
    todo!()
}
