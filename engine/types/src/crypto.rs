//! Hashing and ed25519 keys: SHA-256 digests, address derivation, signature
//! verification (ZIP-215 rules, as CometBFT v0.38 verifies) and signing.

use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::crypto as pb_crypto;

use super::{Address, Error, Hash, PublicKey, Signature};

/// SHA-256 of `data` (CometBFT's `tmhash.Sum`).
pub fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
}

impl Hash {
    /// Length of a hash in bytes.
    pub const LEN: usize = 32;

    /// Reads a hash from exactly 32 bytes.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| Error::field(field, format!("expected 32 bytes, got {}", bytes.len())))
    }

    /// The hash as a byte slice.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Address {
    /// Length of an address in bytes.
    pub const LEN: usize = 20;

    /// Reads an address from exactly 20 bytes.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 20]>::try_from(bytes)
            .map(Address)
            .map_err(|_| Error::field(field, format!("expected 20 bytes, got {}", bytes.len())))
    }

    /// The address as a byte slice.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Signature {
    /// Reads a signature from exactly 64 bytes.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 64]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| Error::field(field, format!("expected 64 bytes, got {}", bytes.len())))
    }
}

impl PublicKey {
    /// The validator address of this key: the first 20 bytes of SHA-256 of the
    /// raw 32-byte key (CometBFT `ed25519.PubKey.Address`).
    pub fn address(&self) -> Address {
        let digest = sha256(&self.0);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    /// Verifies `sig` over `msg` with the ZIP-215 rules of `ed25519-consensus`,
    /// which are the rules CometBFT v0.38 applies (curve25519-voi in ZIP-215
    /// mode). A key that is not a valid curve point fails verification.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), Error> {
        let vk = ed25519_consensus::VerificationKey::try_from(self.0)
            .map_err(|_| Error::InvalidSignature)?;
        vk.verify(&ed25519_consensus::Signature::from(sig.0), msg)
            .map_err(|_| Error::InvalidSignature)
    }
}

impl From<PublicKey> for pb_crypto::PublicKey {
    fn from(pk: PublicKey) -> Self {
        pb_crypto::PublicKey {
            sum: Some(pb_crypto::public_key::Sum::Ed25519(pk.0.to_vec())),
        }
    }
}

impl TryFrom<pb_crypto::PublicKey> for PublicKey {
    type Error = Error;

    fn try_from(pk: pb_crypto::PublicKey) -> Result<Self, Error> {
        match pk.sum {
            Some(pb_crypto::public_key::Sum::Ed25519(bytes)) => <[u8; 32]>::try_from(&bytes[..])
                .map(PublicKey)
                .map_err(|_| {
                    Error::field(
                        "pub_key",
                        format!("ed25519 key must be 32 bytes, got {}", bytes.len()),
                    )
                }),
            Some(pb_crypto::public_key::Sum::Secp256k1(_)) => {
                Err(Error::field("pub_key", "secp256k1 keys are not supported"))
            }
            None => Err(Error::field("pub_key", "missing")),
        }
    }
}

/// An ed25519 signing key.
pub struct PrivateKey(pub ed25519_consensus::SigningKey);

impl PrivateKey {
    /// The key whose 32-byte seed is `seed` (RFC 8032 private key).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        PrivateKey(ed25519_consensus::SigningKey::from(seed))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verification_key().to_bytes())
    }

    /// Signs `msg` (deterministic RFC 8032 signature).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        write!(f, "PrivateKey({:?})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_tamper() {
        let sk = PrivateKey::from_seed([7; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        assert_eq!(pk.verify(b"hello", &sig), Ok(()));
        assert_eq!(pk.verify(b"hellp", &sig), Err(Error::InvalidSignature));
        let mut bad = sig;
        bad.0[0] ^= 1;
        assert_eq!(pk.verify(b"hello", &bad), Err(Error::InvalidSignature));
        let other = PrivateKey::from_seed([8; 32]).public_key();
        assert_eq!(other.verify(b"hello", &sig), Err(Error::InvalidSignature));
    }

    /// RFC 8032 section 7.1, TEST 1: the empty message under the all-known seed.
    #[test]
    fn rfc8032_test_vector_1() {
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("valid hex");
        let sk = PrivateKey::from_seed(seed.try_into().expect("32 bytes"));
        assert_eq!(
            hex::encode(sk.public_key().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(sk.sign(b"").0),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    /// CometBFT's address derivation: sha256(pubkey)[:20].
    #[test]
    fn address_is_truncated_sha256() {
        let pk = PublicKey([1; 32]);
        assert_eq!(pk.address().0[..], sha256(&[1; 32]).0[..20]);
    }

    #[test]
    fn public_key_proto_rejects_bad_lengths_and_types() {
        let good = pb_crypto::PublicKey::from(PublicKey([3; 32]));
        assert_eq!(PublicKey::try_from(good), Ok(PublicKey([3; 32])));
        let short = pb_crypto::PublicKey {
            sum: Some(pb_crypto::public_key::Sum::Ed25519(vec![1; 31])),
        };
        assert!(PublicKey::try_from(short).is_err());
        let secp = pb_crypto::PublicKey {
            sum: Some(pb_crypto::public_key::Sum::Secp256k1(vec![1; 33])),
        };
        assert!(PublicKey::try_from(secp).is_err());
        assert!(PublicKey::try_from(pb_crypto::PublicKey { sum: None }).is_err());
    }
}
