//! The KPL aggregated record format: many user records in one Kinesis record.
//!
//! A Kinesis record is aggregated when its data is the 4 magic bytes `F3 89 9A C2`, a
//! protobuf `AggregatedRecord` (a table of partition keys, a table of explicit hash keys,
//! and the user records, each naming its keys by index), then the MD5 digest of the
//! protobuf bytes. The format is the Kinesis Producer Library's:
//! <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>.
//! Data that does not start with the magic bytes, is too short, fails its MD5 check or
//! does not decode is one plain record, as the reference de-aggregators treat it.
//!
//! Firehose de-aggregates KPL records for a Kinesis source before its processor Lambda
//! sees them; a Lambda consumer gets the Kinesis record as is and de-aggregates itself:
//! <https://docs.aws.amazon.com/streams/latest/dev/kinesis-kpl-consumer-deaggregation.html>.

use std::collections::HashMap;

use md5::{Digest, Md5};
use prost::Message;
use thiserror::Error;

/// The first bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Bytes of the MD5 digest that ends an aggregated record.
const DIGEST_BYTES: usize = 16;

/// The most a Kinesis record may hold: its data and its partition key together, 1 MiB
/// (<https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The protobuf message of an aggregated record.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys, named by index from the records.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys, named by index from the records.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record in an [`AggregatedRecord`].
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// Index of its partition key in the table.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index of its explicit hash key in the table, if it has one.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// Its data.
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    /// Tags (the KPL writes none).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A tag of a user record.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    /// Key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// A user record taken out of a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key, if it had one.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Vec<u8>,
}

/// Why data is not a valid aggregated record (it is then one plain record).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NotAggregated {
    /// It does not start with [`MAGIC`], or is shorter than magic and digest.
    #[error("no KPL magic bytes")]
    NoMagic,
    /// The MD5 digest at the end does not match.
    #[error("the MD5 digest does not match")]
    BadDigest,
    /// The protobuf message does not decode, or names a key that is not in its tables.
    #[error("the AggregatedRecord does not decode: {0}")]
    Malformed(String),
}

/// The user records of an aggregated record, in order; an error when `data` is not one
/// (then it is a plain record: [`user_records`] does that).
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord>, NotAggregated> {
    if data.len() < MAGIC.len() + DIGEST_BYTES || !data.starts_with(&MAGIC) {
        return Err(NotAggregated::NoMagic);
    }
    let (message, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_BYTES);
    if Md5::digest(message).as_slice() != digest {
        return Err(NotAggregated::BadDigest);
    }
    let aggregated =
        AggregatedRecord::decode(message).map_err(|e| NotAggregated::Malformed(e.to_string()))?;
    let key = |table: &[String], index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| table.get(i))
            .cloned()
            .ok_or_else(|| NotAggregated::Malformed(format!("key index {index} out of range")))
    };
    aggregated
        .records
        .into_iter()
        .map(|r| {
            Ok(UserRecord {
                partition_key: key(&aggregated.partition_key_table, r.partition_key_index)?,
                explicit_hash_key: r
                    .explicit_hash_key_index
                    .map(|i| key(&aggregated.explicit_hash_key_table, i))
                    .transpose()?,
                data: r.data,
            })
        })
        .collect()
}

/// The user records of a Kinesis record: those of an aggregate, or the record itself
/// (with its own partition key) when it is not one.
pub fn user_records(partition_key: &str, data: &[u8]) -> Vec<UserRecord> {
    deaggregate(data).unwrap_or_else(|_| {
        vec![UserRecord {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: None,
            data: data.to_vec(),
        }]
    })
}

/// Bytes a protobuf length-delimited field of `len` bytes takes with a one-byte tag.
fn delimited_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Packs user records into one aggregated record, up to a size.
#[derive(Debug)]
pub struct Aggregator {
    max_bytes: usize,
    message: AggregatedRecord,
    key_index: HashMap<String, u64>,
    message_len: usize,
}

/// An aggregated record, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The Kinesis record's partition key: its first user record's, so it lands on the
    /// shard that key maps to.
    pub partition_key: String,
    /// The record's data.
    pub data: Vec<u8>,
    /// User records in it.
    pub records: usize,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new(MAX_RECORD_BYTES)
    }
}

impl Aggregator {
    /// An empty aggregator whose records (data and partition key) stay within
    /// `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            message: AggregatedRecord::default(),
            key_index: HashMap::new(),
            message_len: 0,
        }
    }

    /// User records added so far.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// What the record would weigh with one more user record.
    fn grown_len(&self, partition_key: &str, data_len: usize) -> (usize, bool) {
        let (index, new_key) = match self.key_index.get(partition_key) {
            Some(&i) => (i, false),
            None => (self.message.partition_key_table.len() as u64, true),
        };
        let record_len = 1 + prost::encoding::encoded_len_varint(index) + delimited_len(data_len);
        let mut len = self.message_len + delimited_len(record_len);
        if new_key {
            len += delimited_len(partition_key.len());
        }
        (len, new_key)
    }

    /// Bytes of the Kinesis record now: magic, message, digest, and its partition key.
    pub fn size(&self) -> usize {
        let key = self
            .message
            .partition_key_table
            .first()
            .map_or(0, String::len);
        MAGIC.len() + self.message_len + DIGEST_BYTES + key
    }

    /// Adds a user record if the aggregate stays within its size; `false` (nothing
    /// added) when it would not: send [`Aggregator::finish`] and add it to the next. A
    /// record too large for an empty aggregate is never added: send it plain.
    pub fn try_add(&mut self, partition_key: &str, data: &[u8]) -> bool {
        let (message_len, new_key) = self.grown_len(partition_key, data.len());
        let first_key = self
            .message
            .partition_key_table
            .first()
            .map_or(partition_key.len(), String::len);
        if MAGIC.len() + message_len + DIGEST_BYTES + first_key > self.max_bytes {
            return false;
        }
        let index = if new_key {
            let i = self.message.partition_key_table.len() as u64;
            self.message
                .partition_key_table
                .push(partition_key.to_owned());
            self.key_index.insert(partition_key.to_owned(), i);
            i
        } else {
            self.key_index[partition_key]
        };
        self.message.records.push(Record {
            partition_key_index: index,
            explicit_hash_key_index: None,
            data: data.to_vec(),
            tags: Vec::new(),
        });
        self.message_len = message_len;
        true
    }

    /// The aggregated record of the user records added, and an empty aggregator; `None`
    /// when none was added.
    pub fn finish(&mut self) -> Option<Aggregate> {
        if self.is_empty() {
            return None;
        }
        let message = std::mem::take(&mut self.message);
        self.key_index.clear();
        self.message_len = 0;
        let body = message.encode_to_vec();
        let mut data = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_BYTES);
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&body);
        data.extend_from_slice(&Md5::digest(&body));
        Some(Aggregate {
            partition_key: message.partition_key_table[0].clone(),
            data,
            records: message.records.len(),
        })
    }
}

/// The 128-bit hash key Kinesis maps a partition key to: its MD5 digest, big-endian
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html>).
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes_exactly() {
        let mut aggregator = Aggregator::default();
        let records: Vec<(String, Vec<u8>)> = (0..300)
            .map(|i| {
                (
                    format!("key-{}", i % 7),
                    format!("{{\"n\":{i}}}\n").into_bytes(),
                )
            })
            .collect();
        for (key, data) in &records {
            assert!(aggregator.try_add(key, data));
        }
        let expected_size = aggregator.size();
        let aggregate = aggregator.finish().unwrap();
        assert!(aggregator.is_empty());
        assert_eq!(aggregate.records, 300);
        assert_eq!(aggregate.partition_key, "key-0");
        assert_eq!(
            aggregate.data.len() + aggregate.partition_key.len(),
            expected_size
        );
        let back = deaggregate(&aggregate.data).unwrap();
        let back: Vec<(String, Vec<u8>)> = back
            .into_iter()
            .map(|r| (r.partition_key, r.data))
            .collect();
        assert_eq!(back, records);
    }

    #[test]
    fn stays_within_the_limit() {
        let mut aggregator = Aggregator::new(10_000);
        let data = vec![b'x'; 999];
        let mut added = 0;
        while aggregator.try_add(&format!("k{added}"), &data) {
            added += 1;
            assert!(aggregator.size() <= 10_000);
        }
        assert!(added >= 9, "{added}");
        let aggregate = aggregator.finish().unwrap();
        assert!(aggregate.data.len() + aggregate.partition_key.len() <= 10_000);
        assert!(!Aggregator::new(100).try_add("k", &[0; 100]));
    }

    #[test]
    fn what_is_not_an_aggregate_is_one_plain_record() {
        let mut aggregator = Aggregator::default();
        aggregator.try_add("a", b"one");
        aggregator.try_add("b", b"two");
        let good = aggregator.finish().unwrap().data;
        assert_eq!(user_records("p", &good).len(), 2);

        let mut bad_digest = good.clone();
        *bad_digest.last_mut().unwrap() ^= 1;
        assert_eq!(deaggregate(&bad_digest), Err(NotAggregated::BadDigest));
        let truncated = &good[..good.len() - 3];
        assert!(deaggregate(truncated).is_err());
        assert_eq!(deaggregate(b"{\"plain\":1}"), Err(NotAggregated::NoMagic));
        for data in [&bad_digest[..], truncated, b"{\"plain\":1}"] {
            assert_eq!(
                user_records("p", data),
                [UserRecord {
                    partition_key: "p".into(),
                    explicit_hash_key: None,
                    data: data.to_vec()
                }]
            );
        }
        // Magic and a valid digest over bytes that are not an AggregatedRecord.
        let junk = [0xFF, 0xFF, 0xFF];
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&junk);
        forged.extend_from_slice(&Md5::digest(junk));
        assert!(matches!(
            deaggregate(&forged),
            Err(NotAggregated::Malformed(_))
        ));
    }

    #[test]
    fn hash_keys_are_the_md5_of_the_partition_key() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }
}
