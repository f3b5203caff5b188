//! KPL aggregation for the producer: user records packed into aggregated Kinesis records
//! ([`streamlake_core::kpl`]), one aggregate per shard being filled at a time, so every
//! user record lands on the shard its own partition key maps to.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use streamlake_core::kpl::{Aggregator, hash_key};
use thiserror::Error;

use crate::batch::Entry;

/// The hash key ranges of a stream's open shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Inclusive ranges, by start.
    ranges: Vec<(u128, u128)>,
}

/// The shards could not be listed.
#[derive(Debug, Error)]
#[error("ListShards of {stream} failed: {message}")]
pub struct ShardMapError {
    stream: String,
    message: String,
}

impl ShardMap {
    /// A map of inclusive hash key ranges.
    pub fn new(mut ranges: Vec<(u128, u128)>) -> Self {
        ranges.sort_unstable();
        Self { ranges }
    }

    /// One shard over every hash key.
    pub fn single() -> Self {
        Self::new(vec![(0, u128::MAX)])
    }

    /// The open shards of `stream` (a closed shard, after a reshard, takes no records).
    pub async fn of_stream(client: &Client, stream: &str) -> Result<Self, ShardMapError> {
        let error = |e: &dyn std::error::Error| ShardMapError {
            stream: stream.to_owned(),
            message: DisplayErrorContext(e).to_string(),
        };
        let mut ranges = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // With a token, ListShards takes no stream name.
            let request = match &next_token {
                Some(token) => client.list_shards().next_token(token),
                None => client.list_shards().stream_name(stream),
            };
            let page = request.send().await.map_err(|e| error(&e))?;
            for shard in page.shards() {
                let open = shard
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none());
                let range = shard.hash_key_range();
                if let (true, Some(range)) = (open, range) {
                    let parse = |s: &str| s.parse::<u128>().unwrap_or(0);
                    ranges.push((
                        parse(range.starting_hash_key()),
                        parse(range.ending_hash_key()),
                    ));
                }
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(if ranges.is_empty() {
            Self::single()
        } else {
            Self::new(ranges)
        })
    }

    /// Shards in the map.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the map has no shard.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The index of the shard a partition key maps to.
    pub fn shard_of(&self, partition_key: &str) -> usize {
        let hash = hash_key(partition_key);
        self.ranges
            .partition_point(|&(start, _)| start <= hash)
            .saturating_sub(1)
    }
}

/// Entries packed into aggregated entries; an entry too large to aggregate passes
/// through as it is (the limits then decide).
#[derive(Debug)]
pub struct Aggregating<I> {
    entries: I,
    shards: ShardMap,
    open: Vec<Aggregator>,
    ready: std::collections::VecDeque<Entry>,
    user_records: u64,
    done: bool,
}

impl<I: Iterator<Item = Entry>> Aggregating<I> {
    /// Aggregates of `entries` for a stream of `shards`, each at most `max_bytes` (data
    /// and partition key).
    pub fn new(entries: I, shards: ShardMap, max_bytes: usize) -> Self {
        let open = (0..shards.len().max(1))
            .map(|_| Aggregator::new(max_bytes))
            .collect();
        Self {
            entries,
            shards,
            open,
            ready: Default::default(),
            user_records: 0,
            done: false,
        }
    }

    /// User records taken from the input so far.
    pub fn user_records(&self) -> u64 {
        self.user_records
    }

    fn emit(&mut self, shard: usize) {
        if let Some(aggregate) = self.open[shard].finish() {
            self.ready.push_back(Entry {
                partition_key: aggregate.partition_key,
                data: aggregate.data,
            });
        }
    }
}

impl<I: Iterator<Item = Entry>> Iterator for Aggregating<I> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        while self.ready.is_empty() && !self.done {
            let Some(entry) = self.entries.next() else {
                self.done = true;
                for shard in 0..self.open.len() {
                    self.emit(shard);
                }
                break;
            };
            self.user_records += 1;
            let shard = self.shards.shard_of(&entry.partition_key);
            if self.open[shard].try_add(&entry.partition_key, &entry.data) {
                continue;
            }
            self.emit(shard);
            if !self.open[shard].try_add(&entry.partition_key, &entry.data) {
                self.ready.push_back(entry);
            }
        }
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::kpl::user_records;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                partition_key: format!("station-{}", i % 13),
                data: format!("{{\"n\":{i}}}\n").into_bytes(),
            })
            .collect()
    }

    #[test]
    fn every_user_record_lands_on_its_own_shard_in_order() {
        let quarter = u128::MAX / 4;
        let shards = ShardMap::new(
            (0..4)
                .map(|i| {
                    (
                        i * quarter,
                        if i == 3 {
                            u128::MAX
                        } else {
                            (i + 1) * quarter - 1
                        },
                    )
                })
                .collect(),
        );
        let input = entries(1000);
        let mut aggregating = Aggregating::new(input.clone().into_iter(), shards.clone(), 2_000);
        let aggregates: Vec<Entry> = aggregating.by_ref().collect();
        assert_eq!(aggregating.user_records(), 1000);
        assert!(
            aggregates.len() > 4 && aggregates.len() < 100,
            "{}",
            aggregates.len()
        );
        let mut out = Vec::new();
        for aggregate in &aggregates {
            assert!(aggregate.size() <= 2_000);
            let shard = shards.shard_of(&aggregate.partition_key);
            for user in user_records(&aggregate.partition_key, &aggregate.data) {
                assert_eq!(shards.shard_of(&user.partition_key), shard);
                out.push(Entry {
                    partition_key: user.partition_key,
                    data: user.data,
                });
            }
        }
        // Per partition key, the order of the input.
        for key in (0..13).map(|k| format!("station-{k}")) {
            let of = |v: &[Entry]| -> Vec<Vec<u8>> {
                v.iter()
                    .filter(|e| e.partition_key == key)
                    .map(|e| e.data.clone())
                    .collect()
            };
            assert_eq!(of(&out), of(&input), "{key}");
        }
    }

    #[test]
    fn a_record_too_large_to_aggregate_passes_through() {
        let big = Entry {
            partition_key: "k".into(),
            data: vec![b'x'; 5_000],
        };
        let out: Vec<Entry> =
            Aggregating::new(vec![big.clone()].into_iter(), ShardMap::single(), 1_000).collect();
        assert_eq!(out, [big]);
    }
}
