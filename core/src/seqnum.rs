//! Kinesis sequence numbers.
//!
//! They are decimal strings of up to 128 digits, more than any integer type holds; they
//! compare as numbers: by length (without leading zeros), then digit by digit.

use std::cmp::Ordering;

/// Compares two decimal sequence numbers numerically.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A text form whose byte order is the numeric order (`056:4959...`): three digits of
/// length, then the digits without leading zeros. DynamoDB compares strings by bytes, and
/// its numbers hold only 38 digits, so this is how a sequence number is stored and
/// compared in a condition expression.
pub fn sortable(seq: &str) -> String {
    let digits = seq.trim_start_matches('0');
    format!("{:03}:{digits}", digits.len())
}

/// The smallest of several sequence numbers.
pub fn min<'a>(seqs: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    seqs.into_iter().min_by(|a, b| compare(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_numbers_not_text() {
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("010", "10"), Ordering::Equal);
        let aws = "49590338271490256608559692538361571095921575989136588898";
        let next = "49590338271490256608559692538361571095921575989136588899";
        assert_eq!(compare(aws, next), Ordering::Less);
        assert_eq!(compare("2", aws), Ordering::Less);
        assert_eq!(min(["12", "9", "100"]), Some("9"));
        let mut pairs = [("9", "10"), ("1", "2"), (aws, next), ("99", aws)];
        for (a, b) in &mut pairs {
            assert!(sortable(a) < sortable(b), "{a} < {b}");
        }
        assert_eq!(sortable("00042"), "002:42");
    }
}
