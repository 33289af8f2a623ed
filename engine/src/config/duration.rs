//! Go's `time.Duration` text (`"3s"`, `"500ms"`, `"1m0s"`, `"168h0m0s"`),
//! the form CometBFT's config.toml uses for every timeout.

use std::fmt;
use std::time::Duration;

/// A duration read from and written to config files in Go's notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        GoDuration(Duration::from_millis(ms))
    }

    /// Parses Go's notation: one or more `<decimal><unit>` with units ns, us
    /// (or µs), ms, s, m, h; `0` alone is zero. Negative durations, which no
    /// setting of ours accepts, are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if t.is_empty() {
            return Err("empty duration".into());
        }
        if t.starts_with('-') {
            return Err(format!("`{text}` is negative"));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let mut total: u128 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("`{text}` lacks a unit (ns, us, ms, s, m, h)"))?;
            let (num, after) = rest.split_at(num_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let nanos_per: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(format!("`{text}` has unknown unit `{unit}`")),
            };
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            if int.is_empty() && frac.is_empty() {
                return Err(format!("`{text}` has a unit without a number"));
            }
            let int: u128 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| format!("`{text}` is not a duration"))?
            };
            let mut value = int.saturating_mul(nanos_per);
            let mut scale = nanos_per;
            for d in frac.chars() {
                let digit = d
                    .to_digit(10)
                    .ok_or_else(|| format!("`{text}` is not a duration"))?;
                scale /= 10;
                value += u128::from(digit) * scale;
            }
            total = total.saturating_add(value);
            rest = next;
        }
        let nanos = u64::try_from(total).map_err(|_| format!("`{text}` is too long"))?;
        Ok(GoDuration(Duration::from_nanos(nanos)))
    }
}

impl fmt::Display for GoDuration {
    /// Formats as Go's `Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        if n == 0 {
            return write!(f, "0s");
        }
        let frac = |value: u128, unit: u128| -> String {
            let whole = value / unit;
            let rem = value % unit;
            if rem == 0 {
                return whole.to_string();
            }
            let width = unit.to_string().len() - 1;
            let digits = format!("{rem:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        };
        if n < 1_000 {
            return write!(f, "{n}ns");
        }
        if n < 1_000_000 {
            return write!(f, "{}µs", frac(n, 1_000));
        }
        if n < 1_000_000_000 {
            return write!(f, "{}ms", frac(n, 1_000_000));
        }
        let secs_total = n / 1_000_000_000;
        let sub = n % 1_000_000_000;
        let (h, m, s) = (secs_total / 3600, secs_total % 3600 / 60, secs_total % 60);
        let secs = frac(s * 1_000_000_000 + sub, 1_000_000_000);
        if h > 0 {
            write!(f, "{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{m}m{secs}s")
        } else {
            write!(f, "{secs}s")
        }
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GoDuration::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!("{e}; write a duration like \"3s\" or \"500ms\""))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1_000, "1s"),
            (1_500, "1.5s"),
            (3_000, "3s"),
            (60_000, "1m0s"),
            (90_000, "1m30s"),
            (168 * 3_600_000, "168h0m0s"),
        ] {
            assert_eq!(GoDuration::from_millis(ms).to_string(), text);
            assert_eq!(
                GoDuration::parse(text),
                Ok(GoDuration::from_millis(ms)),
                "{text}"
            );
        }
        assert_eq!(GoDuration(Duration::from_micros(1)).to_string(), "1µs");
        assert_eq!(GoDuration(Duration::from_nanos(1_500)).to_string(), "1.5µs");
    }

    #[test]
    fn parses_compound_and_rejects_garbage() {
        assert_eq!(
            GoDuration::parse("1h2m3.5s"),
            Ok(GoDuration::from_millis(3_723_500))
        );
        assert_eq!(GoDuration::parse("0"), Ok(GoDuration::default()));
        assert_eq!(GoDuration::parse(".5s"), Ok(GoDuration::from_millis(500)));
        for bad in ["", "3", "3x", "-1s", "s", "1.2.3s", "ms5"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
