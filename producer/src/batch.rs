//! Packing records into `PutRecords` (Kinesis) or `PutRecordBatch` (Firehose) requests
//! within the API's limits.

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Partition key (decides the shard, and the order: per key).
    pub partition_key: String,
    /// Record bytes.
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes the entry counts for against the request and record limits (data plus
    /// partition key, as Kinesis counts them).
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// The limits of a batch API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records per request (Kinesis: 500).
    pub max_records: usize,
    /// Bytes per request, data plus partition keys (Kinesis: 5 MiB).
    pub max_request_bytes: usize,
    /// Bytes per record, data plus partition key (Kinesis default: 1 MiB).
    pub max_record_bytes: usize,
    /// Partition key length in characters (Kinesis: 256).
    pub max_partition_key_chars: usize,
    /// Whether records have a partition key, which counts towards the limits (Kinesis);
    /// Firehose has none.
    pub keyed: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_request_bytes: 5 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
            max_partition_key_chars: 256,
            keyed: true,
        }
    }
}

impl Limits {
    /// `PutRecordBatch`'s: 500 records and 4 MiB per request, 1,000 KiB per record, no
    /// partition key.
    /// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
    pub fn firehose() -> Self {
        Self {
            max_records: 500,
            max_request_bytes: 4 * 1024 * 1024,
            max_record_bytes: 1_024_000,
            max_partition_key_chars: 0,
            keyed: false,
        }
    }

    /// Bytes `entry` counts for against the limits.
    pub fn size(&self, entry: &Entry) -> usize {
        if self.keyed {
            entry.size()
        } else {
            entry.data.len()
        }
    }

    /// Why an entry can never be put, if it cannot.
    pub fn reject(&self, entry: &Entry) -> Option<String> {
        let chars = entry.partition_key.chars().count();
        if self.keyed && (chars == 0 || chars > self.max_partition_key_chars) {
            return Some(format!(
                "partition key of {chars} characters (allowed: 1 to {})",
                self.max_partition_key_chars
            ));
        }
        if self.size(entry) > self.max_record_bytes {
            return Some(format!(
                "record of {} bytes{} (limit {})",
                self.size(entry),
                if self.keyed {
                    " with its partition key"
                } else {
                    ""
                },
                self.max_record_bytes
            ));
        }
        None
    }
}

/// Groups entries into requests: adds entries until the next one would break a limit.
#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    pending: Vec<Entry>,
    bytes: usize,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pending: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds an entry (one that [`Limits::reject`] accepts); returns a full batch when the
    /// entry does not fit in the current one.
    pub fn push(&mut self, entry: Entry) -> Option<Vec<Entry>> {
        let full = !self.pending.is_empty()
            && (self.pending.len() == self.limits.max_records
                || self.bytes + self.limits.size(&entry) > self.limits.max_request_bytes);
        let out = full.then(|| self.take());
        self.bytes += self.limits.size(&entry);
        self.pending.push(entry);
        out
    }

    /// The batch being filled, if any.
    pub fn finish(mut self) -> Option<Vec<Entry>> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<Entry> {
        self.bytes = 0;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: usize) -> Entry {
        Entry {
            partition_key: key.into(),
            data: vec![b'x'; size],
        }
    }

    #[test]
    fn batches_by_count_and_bytes() {
        let limits = Limits {
            max_records: 3,
            max_request_bytes: 100,
            ..Limits::default()
        };
        let mut b = Batcher::new(limits);
        let mut batches = Vec::new();
        for size in [10, 10, 10, 10, 60, 39, 5] {
            batches.extend(b.push(entry("k", size)));
        }
        batches.extend(b.finish());
        let sizes: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|e| e.data.len()).collect())
            .collect();
        assert_eq!(sizes, [vec![10, 10, 10], vec![10, 60], vec![39, 5]]);
    }

    #[test]
    fn rejects_what_kinesis_would() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        assert!(limits.reject(&entry("k", 9)).is_none());
        assert!(limits.reject(&entry("k", 10)).is_some());
        assert!(limits.reject(&entry("", 1)).is_some());
        assert!(limits.reject(&entry(&"k".repeat(257), 1)).is_some());
    }

    #[test]
    fn firehose_records_have_no_key_and_count_their_data_only() {
        let limits = Limits::firehose();
        assert!(limits.reject(&entry("", 1_024_000)).is_none());
        assert!(limits.reject(&entry("", 1_024_001)).is_some());
        assert_eq!(limits.size(&entry("key", 10)), 10);
    }
}
