//! Validator sets and proposer selection, exactly as CometBFT v0.38
//! types/validator_set.go computes them: the set's order, its hash, the
//! proposer-priority rotation and the change-set update rules.
//!
//! Priorities use CometBFT's clipping arithmetic (`safeAddClip` /
//! `safeSubClip`, i.e. saturating), Go's truncating `/` for rescaling and
//! `big.Int` Euclidean division for the average. Bounding the total power by
//! [`MAX_TOTAL_VOTING_POWER`] keeps all of it far from the clipping range in
//! practice, but the arithmetic is reproduced anyway so that results agree
//! even at the edges.

use std::cmp::Ordering;

use prost::Message;
use tendermint_proto::v0_38::types as pb;

use super::{
    merkle_hash_from_byte_slices, Address, Error, Hash, PublicKey, Validator, ValidatorSet,
};

/// Largest allowed total voting power (`MaxTotalVotingPower`, i64::MAX / 8).
pub const MAX_TOTAL_VOTING_POWER: i64 = i64::MAX / 8;

/// Priorities are kept within `PRIORITY_WINDOW_SIZE_FACTOR * total power`.
const PRIORITY_WINDOW_SIZE_FACTOR: i64 = 2;

impl Validator {
    /// A validator with the address derived from `pub_key` and priority 0.
    pub fn new(pub_key: PublicKey, voting_power: i64) -> Self {
        Validator {
            address: pub_key.address(),
            pub_key,
            voting_power,
            proposer_priority: 0,
        }
    }

    /// The leaf this validator contributes to the set hash: the encoding of
    /// `SimpleValidator{pub_key, voting_power}` (CometBFT `Validator.Bytes`).
    pub fn hash_bytes(&self) -> Vec<u8> {
        pb::SimpleValidator {
            pub_key: Some(self.pub_key.into()),
            voting_power: self.voting_power,
        }
        .encode_to_vec()
    }

    /// CometBFT `CompareProposerPriority`: the higher priority wins, ties go
    /// to the smaller address. Returns true when `self` wins over `other`.
    fn beats(&self, other: &Validator) -> bool {
        match self.proposer_priority.cmp(&other.proposer_priority) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.address < other.address,
        }
    }
}

impl From<Validator> for pb::Validator {
    fn from(v: Validator) -> Self {
        pb::Validator {
            address: v.address.0.to_vec(),
            pub_key: Some(v.pub_key.into()),
            voting_power: v.voting_power,
            proposer_priority: v.proposer_priority,
        }
    }
}

impl TryFrom<pb::Validator> for Validator {
    type Error = Error;

    /// CometBFT `ValidatorFromProto` + `Validator.ValidateBasic`: ed25519
    /// key, address derived from it, non-negative power.
    fn try_from(v: pb::Validator) -> Result<Self, Error> {
        let pub_key: PublicKey = v
            .pub_key
            .ok_or_else(|| Error::field("validator.pub_key", "missing"))?
            .try_into()?;
        let address = Address::from_slice("validator.address", &v.address)?;
        if address != pub_key.address() {
            return Err(Error::field(
                "validator.address",
                "not derived from the public key",
            ));
        }
        if v.voting_power < 0 {
            return Err(Error::field("validator.voting_power", "negative"));
        }
        Ok(Validator {
            address,
            pub_key,
            voting_power: v.voting_power,
            proposer_priority: v.proposer_priority,
        })
    }
}

/// Go's `safeAddClip`: addition clipped to the i64 range.
fn add_clip(a: i64, b: i64) -> i64 {
    a.saturating_add(b)
}

/// Go's `safeSubClip`: subtraction clipped to the i64 range.
fn sub_clip(a: i64, b: i64) -> i64 {
    a.saturating_sub(b)
}

/// CometBFT's order of a set: voting power descending, then address ascending.
fn by_voting_power(a: &Validator, b: &Validator) -> Ordering {
    b.voting_power
        .cmp(&a.voting_power)
        .then_with(|| a.address.cmp(&b.address))
}

impl ValidatorSet {
    /// Builds a set as CometBFT `NewValidatorSet`: rejects an empty list,
    /// addresses not derived from their key, duplicate addresses, powers that
    /// are not positive, and totals above [`MAX_TOTAL_VOTING_POWER`]; sorts the
    /// validators; gives them centred priorities and selects the first
    /// proposer (`IncrementProposerPriority(1)`). Input priorities are ignored.
    pub fn new(validators: Vec<Validator>) -> Result<Self, Error> {
        if validators.is_empty() {
            return Err(Error::field("validators", "empty validator set"));
        }
        check_addresses(&validators)?;
        let mut set = ValidatorSet {
            validators: Vec::new(),
            proposer: None,
            total_voting_power: 0,
        };
        set.apply_change_set(&validators, false)?;
        set.increment_proposer_priority(1);
        Ok(set)
    }

    /// Merkle root of the validators' [`Validator::hash_bytes`], in set order.
    pub fn hash(&self) -> Hash {
        let leaves: Vec<Vec<u8>> = self.validators.iter().map(Validator::hash_bytes).collect();
        merkle_hash_from_byte_slices(&leaves)
    }

    /// Sum of the validators' voting powers.
    pub fn total_voting_power(&self) -> i64 {
        self.total_power()
    }

    /// The cached total, recomputed when it is 0 (a set written as a literal),
    /// like Go's lazily computed `TotalVotingPower`.
    fn total_power(&self) -> i64 {
        if self.total_voting_power != 0 {
            return self.total_voting_power;
        }
        self.validators
            .iter()
            .fold(0i64, |acc, v| add_clip(acc, v.voting_power))
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Whether the set has no validators (never true for a set built by
    /// [`ValidatorSet::new`] or decoded from protobuf).
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The validator with `address` and its index in the set.
    pub fn get_by_address(&self, address: &Address) -> Option<(u32, &Validator)> {
        self.validators
            .iter()
            .enumerate()
            .find(|(_, v)| &v.address == address)
            // Sets are bounded far below u32::MAX validators (vote indices are int32).
            .map(|(i, v)| (i as u32, v))
    }

    /// The validator at `index`.
    pub fn get_by_index(&self, index: u32) -> Option<&Validator> {
        self.validators.get(usize::try_from(index).ok()?)
    }

    /// The current proposer: the one chosen by the last priority increment,
    /// or, if none was recorded, the validator with the highest priority
    /// (ties to the smaller address), as CometBFT `GetProposer`.
    ///
    /// # Panics
    ///
    /// On an empty set. Sets built by [`ValidatorSet::new`], decoded from
    /// protobuf or updated by [`ValidatorSet::update_with_change_set`] are
    /// never empty.
    pub fn proposer(&self) -> &Validator {
        if let Some(p) = &self.proposer {
            return p;
        }
        self.most_priority()
            .map(|i| &self.validators[i])
            .expect("ValidatorSet::proposer called on an empty validator set")
    }

    /// Index of the validator with the highest priority (ties: smaller address).
    fn most_priority(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, v) in self.validators.iter().enumerate() {
            match best {
                Some(b) if !v.beats(&self.validators[b]) => {}
                _ => best = Some(i),
            }
        }
        best
    }

    /// CometBFT `IncrementProposerPriority(times)`: rescale priorities into a
    /// window of twice the total power, centre them on their average, then
    /// `times` times add each validator's power to its priority and charge
    /// the total power to the highest-priority validator, who becomes the
    /// proposer. Does nothing on an empty set or for `times == 0` (CometBFT
    /// panics on both; neither happens in consensus).
    pub fn increment_proposer_priority(&mut self, times: u32) {
        if self.validators.is_empty() || times == 0 {
            return;
        }
        let total = self.total_power();
        self.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR.saturating_mul(total));
        self.shift_by_avg_proposer_priority();
        let mut proposer = 0;
        for _ in 0..times {
            for v in self.validators.iter_mut() {
                v.proposer_priority = add_clip(v.proposer_priority, v.voting_power);
            }
            // Non-empty, checked above.
            proposer = self.most_priority().unwrap_or(0);
            let p = &mut self.validators[proposer];
            p.proposer_priority = sub_clip(p.proposer_priority, total);
        }
        self.proposer = Some(self.validators[proposer].clone());
    }

    /// A copy with [`ValidatorSet::increment_proposer_priority`] applied.
    pub fn copy_increment_proposer_priority(&self, times: u32) -> ValidatorSet {
        let mut copy = self.clone();
        copy.increment_proposer_priority(times);
        copy
    }

    /// CometBFT `RescalePriorities`: if max - min priority exceeds `diff_max`,
    /// divide every priority by `ceil(diff / diff_max)` (truncating division).
    fn rescale_priorities(&mut self, diff_max: i64) {
        if self.validators.is_empty() || diff_max <= 0 {
            return;
        }
        let diff = self.max_min_priority_diff();
        // Go computes (diff + diffMax - 1) / diffMax in wrapping int64.
        let ratio = diff.wrapping_add(diff_max).wrapping_sub(1) / diff_max;
        if diff > diff_max && ratio != 0 {
            for v in self.validators.iter_mut() {
                v.proposer_priority = v.proposer_priority.wrapping_div(ratio);
            }
        }
    }

    /// Go's `computeMaxMinPriorityDiff`, including its wrapping `max - min`.
    fn max_min_priority_diff(&self) -> i64 {
        let max = self
            .validators
            .iter()
            .map(|v| v.proposer_priority)
            .max()
            .unwrap_or(0);
        let min = self
            .validators
            .iter()
            .map(|v| v.proposer_priority)
            .min()
            .unwrap_or(0);
        let diff = max.wrapping_sub(min);
        if diff < 0 {
            diff.wrapping_neg()
        } else {
            diff
        }
    }

    /// Go's `computeAvgProposerPriority`: the sum over a `big.Int` divided by
    /// the count with `big.Int.Div`, which is Euclidean (rounds towards
    /// negative infinity for a positive divisor), not Go's truncating `/`.
    fn avg_proposer_priority(&self) -> i64 {
        let n = self.validators.len() as i128;
        if n == 0 {
            return 0;
        }
        let sum: i128 = self
            .validators
            .iter()
            .map(|v| i128::from(v.proposer_priority))
            .sum();
        // The mean of i64 values is within the i64 range.
        sum.div_euclid(n) as i64
    }

    /// CometBFT `shiftByAvgProposerPriority`.
    fn shift_by_avg_proposer_priority(&mut self) {
        let avg = self.avg_proposer_priority();
        for v in self.validators.iter_mut() {
            v.proposer_priority = sub_clip(v.proposer_priority, avg);
        }
    }

    /// Applies validator updates as CometBFT `UpdateWithChangeSet`: entries
    /// with power 0 remove a validator, others add one or replace an existing
    /// one's key and power (keeping its priority). New validators start at
    /// priority `-1.125 * total` (total after updates, before removals).
    /// Priorities are then rescaled and centred and the set re-sorted; the
    /// proposer is not re-selected (callers increment the priority next, as
    /// CometBFT's state transition does).
    ///
    /// Errors, leaving the set unchanged: address not derived from the key,
    /// duplicate addresses, negative power, power above
    /// [`MAX_TOTAL_VOTING_POWER`], removal of an unknown validator, an empty
    /// result, or a total power above the maximum.
    pub fn update_with_change_set(&mut self, changes: &[Validator]) -> Result<(), Error> {
        check_addresses(changes)?;
        self.apply_change_set(changes, true)
    }

    /// CometBFT `updateWithChangeSet`, without the key/address check (CometBFT
    /// does not perform it here; the public entry points do).
    fn apply_change_set(
        &mut self,
        changes: &[Validator],
        allow_deletes: bool,
    ) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let (mut updates, deletes) = process_changes(changes)?;
        if !allow_deletes && !deletes.is_empty() {
            return Err(Error::field(
                "validators",
                "voting power 0 is not allowed in a new set",
            ));
        }
        let num_new = updates
            .iter()
            .filter(|u| self.get_by_address(&u.address).is_none())
            .count();
        if num_new == 0 && self.validators.len() == deletes.len() {
            return Err(Error::field(
                "validators",
                "applying the changes would result in an empty set",
            ));
        }
        let removed_power = self.verify_removals(&deletes)?;
        let tvp_after_updates_before_removals = self.verify_updates(&updates, removed_power)?;
        self.compute_new_priorities(&mut updates, tvp_after_updates_before_removals);

        // Go's proposer pointer keeps aliasing the validator object it was
        // taken from: an unchanged validator is rescaled in place below, one
        // that is replaced or removed leaves a stale snapshot. Mirror that.
        let proposer_tracks = self.proposer.as_ref().is_some_and(|p| {
            self.get_by_address(&p.address).is_some()
                && !updates.iter().any(|u| u.address == p.address)
                && !deletes.iter().any(|d| d.address == p.address)
        });

        self.apply_updates(updates);
        self.apply_removals(&deletes);
        self.total_voting_power = self
            .validators
            .iter()
            .fold(0i64, |acc, v| add_clip(acc, v.voting_power));
        if self.total_voting_power > MAX_TOTAL_VOTING_POWER {
            // Unreachable: verify_updates bounded the total above.
            return Err(Error::field("validators", "total voting power overflow"));
        }
        self.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR * self.total_voting_power);
        self.shift_by_avg_proposer_priority();
        self.validators.sort_by(by_voting_power);

        if proposer_tracks {
            if let Some(p) = self.proposer.take() {
                self.proposer = self
                    .get_by_address(&p.address)
                    .map(|(_, v)| v.clone())
                    .or(Some(p));
            }
        }
        Ok(())
    }

    /// Go's `verifyRemovals`: every removed address must be in the set;
    /// returns their total power.
    fn verify_removals(&self, deletes: &[Validator]) -> Result<i64, Error> {
        let mut removed = 0i64;
        for d in deletes {
            match self.get_by_address(&d.address) {
                Some((_, v)) => removed += v.voting_power,
                None => {
                    return Err(Error::field(
                        "validators",
                        format!("cannot remove unknown validator {:?}", d.address),
                    ))
                }
            }
        }
        Ok(removed)
    }

    /// Go's `verifyUpdates`: applying the updates in order of increasing
    /// power change, after the removals, must never exceed the maximum total.
    /// Returns the total after updates and before removals.
    fn verify_updates(&self, updates: &[Validator], removed_power: i64) -> Result<i64, Error> {
        let delta = |u: &Validator| match self.get_by_address(&u.address) {
            Some((_, v)) => u.voting_power - v.voting_power,
            None => u.voting_power,
        };
        let mut deltas: Vec<i64> = updates.iter().map(delta).collect();
        deltas.sort_unstable();
        let mut tvp_after_removals = self.total_power() - removed_power;
        for d in deltas {
            tvp_after_removals += d;
            if tvp_after_removals > MAX_TOTAL_VOTING_POWER {
                return Err(Error::field(
                    "validators",
                    format!("total voting power would exceed {MAX_TOTAL_VOTING_POWER}"),
                ));
            }
        }
        Ok(tvp_after_removals + removed_power)
    }

    /// Go's `computeNewPriorities`: existing validators keep their priority,
    /// new ones get `-(tvp + tvp >> 3)`.
    fn compute_new_priorities(&self, updates: &mut [Validator], tvp: i64) {
        for u in updates.iter_mut() {
            u.proposer_priority = match self.get_by_address(&u.address) {
                Some((_, v)) => v.proposer_priority,
                None => -(tvp + (tvp >> 3)),
            };
        }
    }

    /// Go's `applyUpdates`: merge the address-sorted updates into the
    /// address-sorted validators, an update replacing a validator it matches.
    fn apply_updates(&mut self, updates: Vec<Validator>) {
        let mut existing = std::mem::take(&mut self.validators);
        existing.sort_by_key(|v| v.address);
        let mut merged = Vec::with_capacity(existing.len() + updates.len());
        let mut existing = existing.into_iter().peekable();
        let mut updates = updates.into_iter().peekable();
        loop {
            match (existing.peek(), updates.peek()) {
                (Some(e), Some(u)) => match e.address.cmp(&u.address) {
                    Ordering::Less => merged.extend(existing.next()),
                    Ordering::Equal => {
                        existing.next();
                        merged.extend(updates.next());
                    }
                    Ordering::Greater => merged.extend(updates.next()),
                },
                (Some(_), None) => merged.extend(existing.next()),
                (None, Some(_)) => merged.extend(updates.next()),
                (None, None) => break,
            }
        }
        self.validators = merged;
    }

    /// Go's `applyRemovals` (removals were verified to exist).
    fn apply_removals(&mut self, deletes: &[Validator]) {
        self.validators
            .retain(|v| !deletes.iter().any(|d| d.address == v.address));
    }
}

/// Rejects validators whose address is not derived from their key.
fn check_addresses(validators: &[Validator]) -> Result<(), Error> {
    for v in validators {
        if v.address != v.pub_key.address() {
            return Err(Error::field(
                "validator.address",
                format!("{:?} is not derived from {:?}", v.address, v.pub_key),
            ));
        }
    }
    Ok(())
}

/// Go's `processChanges`: sort a copy by address, reject duplicates, negative
/// powers and powers above the maximum, and split into updates (power > 0)
/// and removals (power 0), both sorted by address.
fn process_changes(changes: &[Validator]) -> Result<(Vec<Validator>, Vec<Validator>), Error> {
    let mut sorted = changes.to_vec();
    sorted.sort_by_key(|v| v.address);
    let mut updates = Vec::new();
    let mut removals = Vec::new();
    let mut prev: Option<Address> = None;
    for v in sorted {
        if prev == Some(v.address) {
            return Err(Error::field(
                "validators",
                format!("duplicate entry {:?}", v.address),
            ));
        }
        prev = Some(v.address);
        if v.voting_power < 0 {
            return Err(Error::field("validators", "voting power can't be negative"));
        }
        if v.voting_power > MAX_TOTAL_VOTING_POWER {
            return Err(Error::field(
                "validators",
                format!("voting power can't be higher than {MAX_TOTAL_VOTING_POWER}"),
            ));
        }
        if v.voting_power == 0 {
            removals.push(v);
        } else {
            updates.push(v);
        }
    }
    Ok((updates, removals))
}

impl From<ValidatorSet> for pb::ValidatorSet {
    /// As CometBFT `ValidatorSet.ToProto`: the total is written as 0 (peers
    /// recompute it), the proposer as [`ValidatorSet::proposer`].
    fn from(set: ValidatorSet) -> Self {
        if set.validators.is_empty() {
            return pb::ValidatorSet::default();
        }
        let proposer = set.proposer().clone();
        pb::ValidatorSet {
            validators: set.validators.into_iter().map(Into::into).collect(),
            proposer: Some(proposer.into()),
            total_voting_power: 0,
        }
    }
}

impl TryFrom<pb::ValidatorSet> for ValidatorSet {
    type Error = Error;

    /// As CometBFT `ValidatorSetFromProto` + `ValidateBasic`, and stricter
    /// where our invariants need it: non-empty, every validator valid with
    /// power > 0, no duplicate addresses, total within the maximum, a proposer
    /// that belongs to the set. The given total is ignored and recomputed;
    /// the order is kept as sent.
    fn try_from(set: pb::ValidatorSet) -> Result<Self, Error> {
        if set.validators.is_empty() {
            return Err(Error::field("validator_set", "empty"));
        }
        let validators = set
            .validators
            .into_iter()
            .map(Validator::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = 0i64;
        for (i, v) in validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(Error::field("validator_set", "validator with zero power"));
            }
            if validators[..i].iter().any(|w| w.address == v.address) {
                return Err(Error::field("validator_set", "duplicate validator"));
            }
            total = add_clip(total, v.voting_power);
            if total > MAX_TOTAL_VOTING_POWER {
                return Err(Error::field("validator_set", "total voting power too high"));
            }
        }
        let proposer = Validator::try_from(
            set.proposer
                .ok_or_else(|| Error::field("validator_set.proposer", "missing"))?,
        )?;
        if !validators.iter().any(|v| v.address == proposer.address) {
            return Err(Error::field("validator_set.proposer", "not in the set"));
        }
        Ok(ValidatorSet {
            validators,
            proposer: Some(proposer),
            total_voting_power: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivateKey;

    /// A validator with an arbitrary address, as CometBFT's tests build them
    /// (`newValidator(address, power)`); the address is zero-padded to 20
    /// bytes, which preserves the byte order of the Go test addresses.
    fn val(name: &[u8], power: i64) -> Validator {
        let mut a = [0u8; 20];
        a[..name.len()].copy_from_slice(name);
        Validator {
            address: Address(a),
            pub_key: PublicKey([0; 32]),
            voting_power: power,
            proposer_priority: 0,
        }
    }

    /// CometBFT `NewValidatorSet` for validators with arbitrary addresses.
    fn new_set(vals: Vec<Validator>) -> ValidatorSet {
        let mut set = ValidatorSet {
            validators: Vec::new(),
            proposer: None,
            total_voting_power: 0,
        };
        set.apply_change_set(&vals, false).expect("valid test set");
        set.increment_proposer_priority(1);
        set
    }

    fn name(v: &Validator) -> String {
        String::from_utf8(
            v.address
                .0
                .iter()
                .copied()
                .take_while(|b| *b != 0)
                .collect(),
        )
        .expect("ascii test address")
    }

    /// CometBFT validator_set_test.go TestProposerSelection1.
    #[test]
    fn golden_proposer_selection_1() {
        let mut set = new_set(vec![val(b"foo", 1000), val(b"bar", 300), val(b"baz", 330)]);
        let mut got = Vec::new();
        for _ in 0..99 {
            got.push(name(set.proposer()));
            set.increment_proposer_priority(1);
        }
        let want = "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar \
                    foo foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar \
                    foo baz foo foo bar foo baz foo foo bar foo baz foo foo foo baz bar foo foo foo baz \
                    foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo \
                    foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo";
        assert_eq!(got.join(" "), want);
    }

    /// CometBFT TestProposerSelection2.
    #[test]
    fn golden_proposer_selection_2() {
        let addr = |i: u8| {
            let mut a = [0u8; 20];
            a[19] = i;
            a
        };
        let v = |i: u8, p: i64| Validator {
            address: Address(addr(i)),
            pub_key: PublicKey([0; 32]),
            voting_power: p,
            proposer_priority: 0,
        };
        // Equal power: round robin in address order.
        let list = vec![v(0, 100), v(1, 100), v(2, 100)];
        let mut set = new_set(list.clone());
        for i in 0..15 {
            assert_eq!(set.proposer().address, list[i % 3].address, "step {i}");
            set.increment_proposer_priority(1);
        }
        // More power, but not enough to propose twice in a row.
        let mut set = new_set(vec![v(0, 100), v(1, 100), v(2, 400)]);
        assert_eq!(set.proposer().address.0, addr(2));
        set.increment_proposer_priority(1);
        assert_eq!(set.proposer().address.0, addr(0));
        // Enough to propose twice in a row.
        let mut set = new_set(vec![v(0, 100), v(1, 100), v(2, 401)]);
        assert_eq!(set.proposer().address.0, addr(2));
        set.increment_proposer_priority(1);
        assert_eq!(set.proposer().address.0, addr(2));
        set.increment_proposer_priority(1);
        assert_eq!(set.proposer().address.0, addr(0));
        // Proportional counts.
        let mut set = new_set(vec![v(0, 4), v(1, 5), v(2, 3)]);
        let mut count = [0; 3];
        for _ in 0..120 {
            count[set.proposer().address.0[19] as usize] += 1;
            set.increment_proposer_priority(1);
        }
        assert_eq!(count, [40, 50, 30]);
    }

    /// CometBFT TestProposerSelection3: four equal validators keep their
    /// round-robin order whatever the `times` of each increment, and through
    /// protobuf round trips. (Go draws `times` at random; a fixed pattern of
    /// 1..=4 is used here.)
    #[test]
    fn golden_proposer_selection_3() {
        let vals: Vec<Validator> = (0..4u8)
            .map(|i| Validator::new(PrivateKey::from_seed([i + 1; 32]).public_key(), 1))
            .collect();
        let mut set = ValidatorSet::new(vals).expect("valid set");
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(set.proposer().address);
            set.increment_proposer_priority(1);
        }
        let mut j = 0u32;
        for i in 0..2000u32 {
            assert_eq!(
                set.proposer().address,
                order[(j % 4) as usize],
                "i={i} j={j}"
            );
            let bytes = pb::ValidatorSet::from(set.clone()).encode_to_vec();
            set = pb::ValidatorSet::decode(&bytes[..])
                .map_err(|e| Error::Decode(e.to_string()))
                .and_then(ValidatorSet::try_from)
                .expect("roundtrip");
            let times = [1, 1, 3, 1, 4, 2, 1][(i % 7) as usize];
            set.increment_proposer_priority(times);
            j += times;
        }
    }

    /// CometBFT TestAvgProposerPriority, plus a negative sum, where big.Int's
    /// Euclidean division differs from Go's truncating `/`.
    #[test]
    fn golden_avg_proposer_priority() {
        let with = |ps: &[i64]| ValidatorSet {
            validators: ps
                .iter()
                .map(|p| Validator {
                    proposer_priority: *p,
                    ..val(b"x", 0)
                })
                .collect(),
            proposer: None,
            total_voting_power: 0,
        };
        assert_eq!(with(&[0, 0, 0]).avg_proposer_priority(), 0);
        assert_eq!(
            with(&[i64::MAX, 0, 0]).avg_proposer_priority(),
            i64::MAX / 3
        );
        assert_eq!(with(&[i64::MAX, 0]).avg_proposer_priority(), i64::MAX / 2);
        assert_eq!(
            with(&[i64::MAX, i64::MAX]).avg_proposer_priority(),
            i64::MAX
        );
        assert_eq!(
            with(&[i64::MIN, i64::MIN]).avg_proposer_priority(),
            i64::MIN
        );
        assert_eq!(with(&[-1, -1, 0]).avg_proposer_priority(), -1);
        assert_eq!(with(&[-7, 0]).avg_proposer_priority(), -4);
    }

    /// CometBFT TestAveragingInIncrementProposerPriority (zero powers).
    #[test]
    fn golden_averaging_in_increment() {
        let cases: [([i64; 3], u32, i64); 3] = [
            ([1, 2, 3], 1, 2),
            ([10, -10, 1], 11, 0),
            ([100, -10, 1], 1, 91 / 3),
        ];
        for (prios, times, avg) in cases {
            let set = ValidatorSet {
                validators: [b"a", b"b", b"c"]
                    .iter()
                    .zip(prios)
                    .map(|(n, p)| Validator {
                        proposer_priority: p,
                        ..val(*n, 0)
                    })
                    .collect(),
                proposer: None,
                total_voting_power: 0,
            };
            let next = set.copy_increment_proposer_priority(times);
            for v in &set.validators {
                let (_, u) = next.get_by_address(&v.address).expect("present");
                assert_eq!(u.proposer_priority, v.proposer_priority - avg);
            }
        }
    }

    /// CometBFT TestAveragingInIncrementProposerPriorityWithVotingPower.
    #[test]
    fn golden_averaging_with_voting_power() {
        let (vp0, vp1, vp2) = (10i64, 1i64, 1i64);
        let total = vp0 + vp1 + vp2;
        let avg = (vp0 + vp1 + vp2 - total) / 3;
        let base = ValidatorSet {
            validators: vec![
                Validator {
                    address: Address([0; 20]),
                    ..val(b"", vp0)
                },
                Validator {
                    address: Address([1; 20]),
                    ..val(b"", vp1)
                },
                Validator {
                    address: Address([2; 20]),
                    ..val(b"", vp2)
                },
            ],
            proposer: None,
            total_voting_power: 0,
        };
        let cases: Vec<([i64; 3], u32, usize)> = vec![
            ([vp0 - total - avg, vp1, vp2], 1, 0),
            ([(vp0 - total) + vp0 - total - avg, 2 * vp1, 2 * vp2], 2, 0),
            ([3 * (vp0 - total) - avg, 3 * vp1, 3 * vp2], 3, 0),
            ([4 * (vp0 - total), 4 * vp1, 4 * vp2], 4, 0),
            ([4 * (vp0 - total) + vp0, 5 * vp1 - total, 5 * vp2], 5, 1),
            ([6 * vp0 - 5 * total, 6 * vp1 - total, 6 * vp2], 6, 0),
            ([7 * vp0 - 6 * total, 7 * vp1 - total, 7 * vp2], 7, 0),
            ([8 * vp0 - 7 * total, 8 * vp1 - total, 8 * vp2], 8, 0),
            (
                [9 * vp0 - 7 * total, 9 * vp1 - total, 9 * vp2 - total],
                9,
                2,
            ),
            (
                [10 * vp0 - 8 * total, 10 * vp1 - total, 10 * vp2 - total],
                10,
                0,
            ),
            (
                [11 * vp0 - 9 * total, 11 * vp1 - total, 11 * vp2 - total],
                11,
                0,
            ),
        ];
        for (i, (want, times, proposer)) in cases.into_iter().enumerate() {
            let mut set = base.clone();
            set.increment_proposer_priority(times);
            assert_eq!(
                set.proposer().address,
                base.validators[proposer].address,
                "case {i}"
            );
            let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    /// RescalePriorities by hand: powers 1, 1, 1 (window 2 * 3 = 6) and
    /// priorities 1000, -1000, 0: diff 2000 > 6, ratio ceil(2000 / 6) = 334,
    /// priorities truncate to 2, -2, 0; the average is 0; then one round adds
    /// 1 to each (3, -1, 1) and charges the total to the first (0, -1, 1).
    #[test]
    fn rescale_by_hand() {
        let mut set = ValidatorSet {
            validators: vec![
                Validator {
                    proposer_priority: 1000,
                    ..val(b"a", 1)
                },
                Validator {
                    proposer_priority: -1000,
                    ..val(b"b", 1)
                },
                Validator {
                    proposer_priority: 0,
                    ..val(b"c", 1)
                },
            ],
            proposer: None,
            total_voting_power: 3,
        };
        set.increment_proposer_priority(1);
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, vec![0, -1, 1]);
        assert_eq!(name(set.proposer()), "a");
        // diff 1999: ratio ceil(1999 / 6) = 334 as well; 999 / 334 = 2 and
        // -1000 / 334 = -2 (truncation towards zero), average 0.
        let mut set = ValidatorSet {
            validators: vec![
                Validator {
                    proposer_priority: 999,
                    ..val(b"a", 1)
                },
                Validator {
                    proposer_priority: -1000,
                    ..val(b"b", 1)
                },
                Validator {
                    proposer_priority: 0,
                    ..val(b"c", 1)
                },
            ],
            proposer: None,
            total_voting_power: 3,
        };
        set.rescale_priorities(6);
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, vec![2, -2, 0]);
        // Exactly at the window no rescaling happens.
        let mut set = ValidatorSet {
            validators: vec![
                Validator {
                    proposer_priority: 3,
                    ..val(b"a", 1)
                },
                Validator {
                    proposer_priority: -3,
                    ..val(b"b", 1)
                },
            ],
            proposer: None,
            total_voting_power: 2,
        };
        set.rescale_priorities(6);
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, vec![3, -3]);
        // ratio = ceil(7 / 6) = 2 for diff 7.
        set.validators[0].proposer_priority = 4;
        set.rescale_priorities(6);
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, vec![2, -1]);
        // An exact multiple: diff 12, ratio exactly 12 / 6 = 2.
        set.validators[0].proposer_priority = 6;
        set.validators[1].proposer_priority = -6;
        set.rescale_priorities(6);
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, vec![3, -3]);
    }

    fn key_val(seed: u8, power: i64) -> Validator {
        Validator::new(PrivateKey::from_seed([seed; 32]).public_key(), power)
    }

    #[test]
    fn new_rejects_invalid_sets() {
        assert!(ValidatorSet::new(vec![]).is_err());
        assert!(ValidatorSet::new(vec![key_val(1, 0)]).is_err());
        assert!(ValidatorSet::new(vec![key_val(1, -1)]).is_err());
        assert!(ValidatorSet::new(vec![key_val(1, 5), key_val(1, 6)]).is_err());
        assert!(ValidatorSet::new(vec![key_val(1, MAX_TOTAL_VOTING_POWER + 1)]).is_err());
        assert!(
            ValidatorSet::new(vec![key_val(1, MAX_TOTAL_VOTING_POWER), key_val(2, 1)]).is_err()
        );
        let mut wrong = key_val(1, 5);
        wrong.address = Address([0; 20]);
        assert!(ValidatorSet::new(vec![wrong]).is_err());
        assert!(ValidatorSet::new(vec![key_val(1, MAX_TOTAL_VOTING_POWER)]).is_ok());
    }

    #[test]
    fn new_sorts_and_centres() {
        let set =
            ValidatorSet::new(vec![key_val(1, 5), key_val(2, 10), key_val(3, 5)]).expect("valid");
        assert_eq!(set.validators[0].voting_power, 10);
        assert!(set.validators[1].address < set.validators[2].address);
        assert_eq!(set.total_voting_power(), 20);
        // After NewValidatorSet, priorities are p_i + power_i, minus total for
        // the proposer, starting from 0.
        let sum: i64 = set.validators.iter().map(|v| v.proposer_priority).sum();
        assert_eq!(sum, 0);
        assert_eq!(set.proposer().voting_power, 10);
        assert_eq!(set.proposer().proposer_priority, 10 - 20);
    }

    /// CometBFT TestValSetUpdatesBasicTestsExecute / TestValSetUpdatePriorityOrderTests
    /// style checks: new validators enter at -1.125 * total, updates keep the
    /// priority, removals and errors.
    #[test]
    fn update_with_change_set_rules() {
        let mut set = ValidatorSet::new(vec![key_val(1, 10), key_val(2, 20)]).expect("valid");
        // Add one: tvp after updates = 30 + 10 = 40, new priority -(40 + 5) = -45
        // before rescale/centre.
        let before = set.clone();
        set.update_with_change_set(&[key_val(3, 10)]).expect("add");
        assert_eq!(set.len(), 3);
        assert_eq!(set.total_voting_power(), 40);
        let expected: Vec<i64> = {
            let mut p: Vec<(Address, i64)> = before
                .validators
                .iter()
                .map(|v| (v.address, v.proposer_priority))
                .collect();
            p.push((key_val(3, 10).address, -45));
            // window 80 > diff, so only the average shift applies.
            let sum: i128 = p.iter().map(|(_, x)| i128::from(*x)).sum();
            let avg = sum.div_euclid(3) as i64;
            set.validators
                .iter()
                .map(|v| {
                    p.iter()
                        .find(|(a, _)| *a == v.address)
                        .map(|(_, x)| x - avg)
                        .expect("in")
                })
                .collect()
        };
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, expected);

        // Remove, unknown removal, duplicates, empty result, negative power.
        let unchanged = set.clone();
        assert!(set.update_with_change_set(&[key_val(9, 0)]).is_err());
        assert!(set
            .update_with_change_set(&[key_val(1, 3), key_val(1, 4)])
            .is_err());
        assert!(set.update_with_change_set(&[key_val(1, -3)]).is_err());
        assert!(set
            .update_with_change_set(&[key_val(1, 0), key_val(2, 0), key_val(3, 0)])
            .is_err());
        assert!(set
            .update_with_change_set(&[key_val(4, MAX_TOTAL_VOTING_POWER)])
            .is_err());
        assert_eq!(set, unchanged);
        set.update_with_change_set(&[key_val(2, 0)])
            .expect("remove");
        assert_eq!(set.len(), 2);
        assert!(set.get_by_address(&key_val(2, 0).address).is_none());
        // Replacing power keeps order rules.
        set.update_with_change_set(&[key_val(1, 100)])
            .expect("update");
        assert_eq!(set.validators[0].address, key_val(1, 0).address);
        assert_eq!(set.total_voting_power(), 110);
        // A removal and an addition that together exceed the maximum only
        // transiently are accepted (removals are counted first).
        let mut big =
            ValidatorSet::new(vec![key_val(1, MAX_TOTAL_VOTING_POWER - 1), key_val(2, 1)])
                .expect("valid");
        big.update_with_change_set(&[key_val(1, 0), key_val(3, MAX_TOTAL_VOTING_POWER - 1)])
            .expect("swap");
        assert_eq!(big.total_voting_power(), MAX_TOTAL_VOTING_POWER);

        // verifyUpdates applies the power changes in increasing order, so a
        // big decrease is counted before a big increase, whatever the
        // addresses' order. Pick a newcomer whose address sorts first.
        let a = key_val(1, MAX_TOTAL_VOTING_POWER - 10);
        let newcomer = (2..=255u8)
            .map(|s| key_val(s, MAX_TOTAL_VOTING_POWER - 20))
            .find(|v| v.address < a.address)
            .expect("some key sorts below");
        let mut set = ValidatorSet::new(vec![a.clone(), key_val(0, 10)]).expect("valid");
        set.update_with_change_set(&[
            Validator {
                voting_power: 1,
                ..a
            },
            newcomer,
        ])
        .expect("fits once the decrease is counted first");
        assert_eq!(set.total_voting_power(), MAX_TOTAL_VOTING_POWER - 9);
    }

    #[test]
    fn proto_roundtrip_and_validation() {
        let set = ValidatorSet::new(vec![key_val(1, 10), key_val(2, 20)]).expect("valid");
        let raw = pb::ValidatorSet::from(set.clone());
        assert_eq!(raw.total_voting_power, 0);
        assert_eq!(ValidatorSet::try_from(raw.clone()), Ok(set));
        let mut no_prop = raw.clone();
        no_prop.proposer = None;
        assert!(ValidatorSet::try_from(no_prop).is_err());
        let mut foreign = raw.clone();
        foreign.proposer = Some(key_val(7, 1).into());
        assert!(ValidatorSet::try_from(foreign).is_err());
        let mut dup = raw.clone();
        dup.validators.push(dup.validators[0].clone());
        assert!(ValidatorSet::try_from(dup).is_err());
        let mut bad_addr = raw.clone();
        bad_addr.validators[0].address[0] ^= 1;
        assert!(ValidatorSet::try_from(bad_addr).is_err());
        let mut zero = raw;
        zero.validators[1].voting_power = 0;
        assert!(ValidatorSet::try_from(zero).is_err());
        assert!(ValidatorSet::try_from(pb::ValidatorSet::default()).is_err());
    }
}
