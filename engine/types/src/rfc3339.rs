//! RFC 3339 text for [`Time`], as CometBFT writes times in JSON (genesis
//! files, RPC): Go's `RFC3339Nano` layout in UTC, fractional seconds with
//! trailing zeros trimmed, e.g. `2024-03-01T12:00:00.5Z`.

use super::{Error, Time};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // d in 1..=31 and m in 1..=12 by construction of the algorithm.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

impl Time {
    /// Formats as Go's `RFC3339Nano` in UTC.
    pub fn to_rfc3339(&self) -> String {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let mut s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
        if self.nanos > 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    /// Parses RFC 3339 (`Z` or a `±hh:mm` offset, up to nine fractional
    /// digits), as Go's `time.Parse(time.RFC3339Nano, ..)` accepts it.
    pub fn parse_rfc3339(text: &str) -> Result<Time, Error> {
        let bad = |why: &str| Error::field("time", format!("`{text}` is not RFC 3339: {why}"));
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return Err(bad("expected YYYY-MM-DDThh:mm:ss"));
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(bad("expected hh:mm:ss"));
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, Error> {
            let s = text.get(r).ok_or_else(|| bad("truncated"))?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("expected digits"));
            }
            s.parse::<i64>().map_err(|_| bad("expected digits"))
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
            return Err(bad("field out of range"));
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &text[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return Err(bad("1 to 9 fractional digits"));
            }
            let padded = format!("{digits:0<9}");
            nanos = padded.parse().map_err(|_| bad("fraction"))?;
        }
        let offset = match &text[i..] {
            "Z" | "z" => 0,
            tz if tz.len() == 6
                && (tz.starts_with('+') || tz.starts_with('-'))
                && &tz[3..4] == ":" =>
            {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(bad("expected Z or an offset like +02:00")),
        };
        // Reject dates such as February 30 by round-tripping the day count.
        let days = days_from_civil(y, mo as u32, d as u32);
        if civil_from_days(days) != (y, mo as u32, d as u32) {
            return Err(bad("no such date"));
        }
        let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
        Time::new(secs, nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(
            Time { secs: 0, nanos: 0 }.to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Time {
                secs: 1_700_000_000,
                nanos: 500_000_000
            }
            .to_rfc3339(),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(
            Time {
                secs: 1_700_000_000,
                nanos: 123_456_789
            }
            .to_rfc3339(),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(Time::GO_ZERO.to_rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(
            Time {
                secs: 951_782_400,
                nanos: 0
            }
            .to_rfc3339(),
            "2000-02-29T00:00:00Z",
            "leap day"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for (secs, nanos) in [
            (0, 0),
            (1_700_000_000, 1),
            (-62_135_596_800, 0),
            (253_402_300_799, 999_999_999),
        ] {
            let t = Time { secs, nanos };
            assert_eq!(Time::parse_rfc3339(&t.to_rfc3339()), Ok(t));
        }
        assert_eq!(
            Time::parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Ok(Time {
                secs: 1_700_000_000,
                nanos: 500_000_000
            })
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-02-30T00:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20.1234567890Z",
        ] {
            assert!(Time::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
