//! Human durations (`90s`, `2h`, `1h30m`, `250ms`, a bare number = seconds)
//! for the command line, scenario files and the process vocabulary, so every
//! place that takes a time reads it the same way.

use clinit_engine::time::Millis;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad duration {text:?}: {why} (examples: 90s, 2h, 1h30m, 250ms, 1.5s)")]
pub struct DurationError {
    pub text: String,
    pub why: &'static str,
}

/// Parse a duration. Units: `ms`, `s`, `m`, `h`, `d`; parts add up.
pub fn parse_duration(text: &str) -> Result<Millis, DurationError> {
    let err = |why| DurationError { text: text.to_string(), why };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        // `nan` and `inf` parse as numbers; say what they are.
        let why = if secs.is_nan() {
            "not a number"
        } else if secs < 0.0 {
            "must not be negative"
        } else {
            "too large"
        };
        return secs_to_millis(secs).ok_or_else(|| err(why));
    }
    if s.starts_with('-') {
        return Err(err("must not be negative"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(err("missing unit after a number")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    secs_to_millis(total).ok_or_else(|| err("too large"))
}

fn secs_to_millis(secs: f64) -> Option<Millis> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && (0.0..1e15).contains(&ms)).then_some(Millis(ms as u64))
}

/// A duration as [`parse_duration`] reads it back, for messages that tell
/// the user what to type: `3m18s`, `1h`, `250ms`, `0s` (whole parts, the
/// largest units first; milliseconds only when there are some).
pub fn fmt_duration(m: Millis) -> String {
    if m.0 == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = m.0;
    for (unit, ms) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if rest >= ms {
            out.push_str(&format!("{}{unit}", rest / ms));
            rest %= ms;
        }
    }
    out
}

/// Seconds as a float, for reports.
pub fn secs(m: Millis) -> f64 {
    m.0 as f64 / 1000.0
}

/// `n` and the noun in the number it needs: `1 run`, `0 runs`, `2 runs`.
/// Every count the simulator prints goes through it (issue 8's new-user
/// test read "1 records", "1 episodes", "weakened 1 times").
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Millis(90_000)));
        assert_eq!(parse_duration("2h"), Ok(Millis(7_200_000)));
        assert_eq!(parse_duration("1h30m"), Ok(Millis(5_400_000)));
        assert_eq!(parse_duration("250ms"), Ok(Millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Millis(0)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn formatted_durations_read_back() {
        for (ms, text) in [
            (0, "0s"),
            (250, "250ms"),
            (198_000, "3m18s"),
            (3_600_000, "1h"),
            (3_661_001, "1h1m1s1ms"),
        ] {
            assert_eq!(fmt_duration(Millis(ms)), text);
            assert_eq!(parse_duration(text), Ok(Millis(ms)));
        }
    }

    #[test]
    fn plural_says_one_and_many() {
        assert_eq!(plural(1u32, "run", "runs"), "1 run");
        assert_eq!(plural(0u64, "run", "runs"), "0 runs");
        assert_eq!(plural(2u64, "time", "times"), "2 times");
    }
}
