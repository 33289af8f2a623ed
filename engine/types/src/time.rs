//! Timestamps as CometBFT carries them (gogoproto `stdtime`), and BFT time:
//! the voting-power-weighted median of a commit's precommit timestamps.

use tendermint_proto::google::protobuf::{Duration as PbDuration, Timestamp as PbTimestamp};

use super::{Commit, CommitSig, Error, Time, ValidatorSet};

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Time {
    /// `0001-01-01T00:00:00Z`: Go's zero `time.Time`, which CometBFT encodes
    /// wherever a time is unset (absent commit signatures, empty votes, the
    /// median of no timestamps).
    pub const GO_ZERO: Time = Time {
        secs: -62_135_596_800,
        nanos: 0,
    };

    /// Smallest accepted seconds value (0001-01-01), as gogoproto validates.
    pub const MIN_SECS: i64 = -62_135_596_800;
    /// One past the largest accepted seconds value (10000-01-01).
    pub const MAX_SECS_EXCLUSIVE: i64 = 253_402_300_800;

    /// A time from seconds and nanoseconds, checked like gogoproto's
    /// `StdTimeUnmarshal`: years 1..=9999 and nanos in `0..1e9`.
    pub fn new(secs: i64, nanos: u32) -> Result<Time, Error> {
        if !(Self::MIN_SECS..Self::MAX_SECS_EXCLUSIVE).contains(&secs) {
            return Err(Error::field("timestamp", "outside years 0001..=9999"));
        }
        if i64::from(nanos) >= NANOS_PER_SEC {
            return Err(Error::field("timestamp", "nanos out of range"));
        }
        Ok(Time { secs, nanos })
    }

    /// A time from nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(nanos: i64) -> Time {
        Time {
            secs: nanos.div_euclid(NANOS_PER_SEC),
            // rem_euclid of a positive modulus is in 0..1e9 and fits in u32.
            nanos: nanos.rem_euclid(NANOS_PER_SEC) as u32,
        }
    }

    /// Go's `time.Time.UnixNano()`, including its wrap-around outside the
    /// years 1678..2262; CometBFT orders timestamps by this value.
    pub fn go_unix_nanos(&self) -> i64 {
        self.secs
            .wrapping_mul(NANOS_PER_SEC)
            .wrapping_add(i64::from(self.nanos))
    }

    /// This time plus `nanos` nanoseconds (saturating at the i64 range of seconds).
    pub fn add_nanos(&self, nanos: u64) -> Time {
        let total = i128::from(self.nanos) + i128::from(nanos);
        let carry = (total / i128::from(NANOS_PER_SEC)) as i64;
        Time {
            secs: self.secs.saturating_add(carry),
            nanos: (total % i128::from(NANOS_PER_SEC)) as u32,
        }
    }
}

impl From<Time> for PbTimestamp {
    fn from(t: Time) -> Self {
        PbTimestamp {
            seconds: t.secs,
            // Valid times have nanos < 1e9, which fits in i32.
            nanos: i32::try_from(t.nanos).unwrap_or(i32::MAX),
        }
    }
}

impl TryFrom<PbTimestamp> for Time {
    type Error = Error;

    fn try_from(t: PbTimestamp) -> Result<Self, Error> {
        let nanos =
            u32::try_from(t.nanos).map_err(|_| Error::field("timestamp", "negative nanos"))?;
        Time::new(t.seconds, nanos)
    }
}

/// A non-nullable gogoproto time field: absent on the wire means Go's zero time.
pub(crate) fn time_from_pb(t: Option<PbTimestamp>) -> Result<Time, Error> {
    t.map_or(Ok(Time::GO_ZERO), Time::try_from)
}

/// Largest duration gogoproto accepts (10,000 years), in seconds.
const MAX_DURATION_SECS: i64 = 315_576_000_000;

/// Durations (evidence max age) are carried in a [`Time`] as (secs, nanos).
pub(crate) fn duration_to_pb(d: Time) -> PbDuration {
    PbDuration {
        seconds: d.secs,
        nanos: i32::try_from(d.nanos).unwrap_or(i32::MAX),
    }
}

/// Checks as gogoproto's `StdDurationUnmarshal` (range, sign agreement, fits a
/// Go `time.Duration`), and additionally rejects negative durations, which no
/// consensus parameter allows.
pub(crate) fn duration_from_pb(d: PbDuration) -> Result<Time, Error> {
    if !(0..=MAX_DURATION_SECS).contains(&d.seconds) {
        return Err(Error::field("duration", "seconds out of range"));
    }
    let nanos = u32::try_from(d.nanos).map_err(|_| Error::field("duration", "negative nanos"))?;
    if i64::from(nanos) >= NANOS_PER_SEC {
        return Err(Error::field("duration", "nanos out of range"));
    }
    if d.seconds
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(i64::from(nanos)))
        .is_none()
    {
        return Err(Error::field("duration", "does not fit time.Duration"));
    }
    Ok(Time {
        secs: d.seconds,
        nanos,
    })
}

/// BFT time of the block following `commit`: the voting-power-weighted median
/// of the timestamps of all non-absent signatures (both `Commit` and `Nil`
/// flags count, as in CometBFT `state.MedianTime`), weighted by the signer's
/// power in `validators`. Signers not in the set are skipped. Returns
/// [`Time::GO_ZERO`] when nothing counts, as Go returns the zero time.
pub fn bft_time(commit: &Commit, validators: &ValidatorSet) -> Time {
    let mut weighted: Vec<(Time, i64)> = Vec::with_capacity(commit.signatures.len());
    let mut total: i64 = 0;
    for sig in &commit.signatures {
        let (address, timestamp) = match sig {
            CommitSig::Absent => continue,
            CommitSig::Commit {
                validator_address,
                timestamp,
                ..
            }
            | CommitSig::Nil {
                validator_address,
                timestamp,
                ..
            } => (validator_address, timestamp),
        };
        if let Some((_, v)) = validators.get_by_address(address) {
            // Powers are bounded by MAX_TOTAL_VOTING_POWER, so no overflow.
            total = total.saturating_add(v.voting_power);
            weighted.push((*timestamp, v.voting_power));
        }
    }
    weighted_median(weighted, total)
}

/// CometBFT `WeightedMedian`: sort by `UnixNano` and walk until the remaining
/// half of the total power (`total / 2`, Go integer division) is covered.
fn weighted_median(mut weighted: Vec<(Time, i64)>, total: i64) -> Time {
    // Entries with equal UnixNano are equal times, so stability is irrelevant
    // to the result; a stable sort keeps it obviously deterministic anyway.
    weighted.sort_by_key(|(t, _)| t.go_unix_nanos());
    let mut median = total / 2;
    for (t, w) in weighted {
        if median <= w {
            return t;
        }
        median -= w;
    }
    Time::GO_ZERO
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time { secs, nanos: 0 }
    }

    /// CometBFT types/time/time_test.go TestWeightedMedian (input order
    /// preserved; nil slots of the Go slice are simply left out).
    #[test]
    fn golden_weighted_median() {
        let t1 = t(1_700_000_000);
        let t2 = t(1_700_000_005);
        let t3 = t(1_700_000_010);
        let t4 = t(1_700_000_015);
        let t5 = t(1_700_000_060);
        assert_eq!(weighted_median(vec![(t2, 40), (t3, 27), (t1, 33)], 100), t2);
        assert_eq!(weighted_median(vec![(t3, 33), (t1, 40), (t2, 27)], 100), t2);
        let m = vec![(t4, 20), (t2, 10), (t1, 10), (t3, 23), (t2, 10), (t5, 10)];
        assert_eq!(weighted_median(m, 83), t3);
        assert_eq!(weighted_median(vec![], 0), Time::GO_ZERO);
        // The walk stops when the remaining half is <= the weight: with two
        // equal halves the earlier time wins.
        assert_eq!(weighted_median(vec![(t2, 5), (t1, 5)], 10), t1);
        assert_eq!(weighted_median(vec![(t2, 5), (t1, 3)], 8), t2);
    }

    #[test]
    fn go_unix_nanos_wraps_like_go() {
        assert_eq!(Time { secs: 1, nanos: 5 }.go_unix_nanos(), 1_000_000_005);
        // Go's zero time: (-62135596800 * 1e9) wraps in int64.
        assert_eq!(
            Time::GO_ZERO.go_unix_nanos(),
            (-62_135_596_800i64).wrapping_mul(1_000_000_000)
        );
    }

    #[test]
    fn timestamp_range_checks() {
        assert!(Time::try_from(PbTimestamp {
            seconds: Time::MIN_SECS,
            nanos: 0
        })
        .is_ok());
        assert!(Time::try_from(PbTimestamp {
            seconds: Time::MIN_SECS - 1,
            nanos: 0
        })
        .is_err());
        assert!(Time::try_from(PbTimestamp {
            seconds: Time::MAX_SECS_EXCLUSIVE,
            nanos: 0
        })
        .is_err());
        assert!(Time::try_from(PbTimestamp {
            seconds: 0,
            nanos: -1
        })
        .is_err());
        assert!(Time::try_from(PbTimestamp {
            seconds: 0,
            nanos: 1_000_000_000
        })
        .is_err());
        assert_eq!(time_from_pb(None), Ok(Time::GO_ZERO));
        assert_eq!(
            Time::from_unix_nanos(-1),
            Time {
                secs: -1,
                nanos: 999_999_999
            }
        );
        assert_eq!(
            Time {
                secs: 1,
                nanos: 999_999_999
            }
            .add_nanos(2),
            Time { secs: 2, nanos: 1 }
        );
    }

    #[test]
    fn duration_checks() {
        assert_eq!(
            duration_from_pb(PbDuration {
                seconds: 172_800,
                nanos: 0
            }),
            Ok(t(172_800))
        );
        assert!(duration_from_pb(PbDuration {
            seconds: -1,
            nanos: 0
        })
        .is_err());
        assert!(duration_from_pb(PbDuration {
            seconds: 1,
            nanos: -1
        })
        .is_err());
        assert!(duration_from_pb(PbDuration {
            seconds: MAX_DURATION_SECS,
            nanos: 0
        })
        .is_err());
    }
}
