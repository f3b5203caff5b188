//! Kinesis sequence numbers, and the positions of user records in KPL aggregates.
//!
//! Sequence numbers are decimal strings of up to 128 digits, more than any integer type
//! holds; they compare as numbers: by length (without leading zeros), then digit by
//! digit. A user record taken out of an aggregated record is at `SEQ:SUB`: the Kinesis
//! record's sequence number and its index in the aggregate (its sub-sequence number). It
//! comes after every record of a lower sequence number, and after `SEQ` itself.

use std::cmp::Ordering;

/// The position of user record `sub` of the Kinesis record `seq`.
pub fn with_subsequence(seq: &str, sub: u64) -> String {
    format!("{seq}:{sub}")
}

/// The Kinesis record's sequence number of a position (`SEQ` of `SEQ:SUB`): what a
/// partial batch response names.
pub fn kinesis_part(position: &str) -> &str {
    position.split_once(':').map_or(position, |(seq, _)| seq)
}

fn parts(position: &str) -> (&str, Option<u64>) {
    match position.split_once(':') {
        Some((seq, sub)) => (seq.trim_start_matches('0'), sub.parse().ok()),
        None => (position.trim_start_matches('0'), None),
    }
}

/// Compares two positions (sequence numbers, or `SEQ:SUB`) numerically.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, a_sub) = parts(a);
    let (b, b_sub) = parts(b);
    a.len()
        .cmp(&b.len())
        .then_with(|| a.cmp(b))
        .then_with(|| a_sub.cmp(&b_sub))
}

/// A text form whose byte order is the numeric order (`056:4959...`, and `:SUB` on 20
/// digits for a user record of an aggregate): three digits of length, then the digits
/// without leading zeros. DynamoDB compares strings by bytes, and its numbers hold only
/// 38 digits, so this is how a position is stored and compared in a condition
/// expression. A plain record's form is unchanged by aggregation support.
pub fn sortable(position: &str) -> String {
    let (digits, sub) = parts(position);
    match sub {
        Some(sub) => format!("{:03}:{digits}:{sub:020}", digits.len()),
        None => format!("{:03}:{digits}", digits.len()),
    }
}

/// The smallest of several positions.
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

    #[test]
    fn user_records_of_an_aggregate_order_within_their_record() {
        let (a, b) = ("9", "10");
        let ordered = [
            a.to_owned(),
            with_subsequence(a, 0),
            with_subsequence(a, 2),
            with_subsequence(a, 10),
            b.to_owned(),
            with_subsequence(b, 0),
        ];
        for pair in ordered.windows(2) {
            assert_eq!(compare(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
            assert!(sortable(&pair[0]) < sortable(&pair[1]), "{pair:?}");
        }
        assert_eq!(kinesis_part("10:3"), "10");
        assert_eq!(kinesis_part("10"), "10");
        assert_eq!(min(["10:1", "10:0", "11"]), Some("10:0"));
    }
}
