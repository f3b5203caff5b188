//! The transformation response, written straight into one JSON buffer.
//!
//! A response at the 6 MB limit is mostly base64 text; encoding it into the output
//! buffer in place, instead of building a `String` per record and escaping it again
//! while serializing, is most of the transform's speed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::value::RawValue;
use streamlake_core::PartitionKeys;

/// Outcome of one record, as Firehose spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformResult {
    /// Transformed; deliver the data.
    Ok,
    /// Intentionally dropped.
    Dropped,
    /// Could not be transformed; Firehose writes it under the error prefix.
    ProcessingFailed,
}

impl TransformResult {
    /// The `result` value of the response.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransformResult::Ok => "Ok",
            TransformResult::Dropped => "Dropped",
            TransformResult::ProcessingFailed => "ProcessingFailed",
        }
    }
}

/// Builds `{"records":[...]}` one record at a time.
pub(crate) struct ResponseWriter {
    buf: Vec<u8>,
    records: usize,
}

impl ResponseWriter {
    /// A writer with room for about `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(b"{\"records\":[");
        Self { buf, records: 0 }
    }

    /// Appends one record: `data` is base64-encoded in place; `partition_keys` become
    /// `metadata.partitionKeys`.
    pub(crate) fn record(
        &mut self,
        record_id: &str,
        result: TransformResult,
        data: &[u8],
        partition_keys: Option<PartitionKeys>,
    ) {
        self.open(record_id, result);
        self.buf.push(b'"');
        let start = self.buf.len();
        let encoded = base64::encoded_len(data.len(), true).expect("record size fits usize");
        self.buf.resize(start + encoded, 0);
        STANDARD
            .encode_slice(data, &mut self.buf[start..])
            .expect("buffer sized for the encoding");
        self.buf.push(b'"');
        if let Some(keys) = partition_keys {
            self.buf
                .extend_from_slice(b",\"metadata\":{\"partitionKeys\":{");
            for (i, (name, value)) in keys.pairs().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                // Names and values are ASCII letters and digits: no escaping needed.
                self.buf.push(b'"');
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.extend_from_slice(b"\":\"");
                self.buf.extend_from_slice(value.as_str().as_bytes());
                self.buf.push(b'"');
            }
            self.buf.extend_from_slice(b"}}");
        }
        self.buf.push(b'}');
    }

    /// Appends a `ProcessingFailed` record that returns the input's `data` text as it came
    /// (even when it is not valid base64): Firehose writes the original record under the
    /// error prefix and does not read the returned data.
    pub(crate) fn failed(&mut self, record_id: &str, original_data: &str) {
        self.open(record_id, TransformResult::ProcessingFailed);
        serde_json::to_writer(&mut self.buf, original_data).expect("a string serializes");
        self.buf.push(b'}');
    }

    /// Writes `{"recordId":...,"result":...,"data":` (with a comma before all but the
    /// first record).
    fn open(&mut self, record_id: &str, result: TransformResult) {
        if self.records > 0 {
            self.buf.push(b',');
        }
        self.records += 1;
        self.buf.extend_from_slice(b"{\"recordId\":");
        serde_json::to_writer(&mut self.buf, record_id).expect("a string serializes");
        self.buf.extend_from_slice(b",\"result\":\"");
        self.buf.extend_from_slice(result.as_str().as_bytes());
        self.buf.extend_from_slice(b"\",\"data\":");
    }

    /// The finished response.
    pub(crate) fn finish(mut self) -> Box<RawValue> {
        self.buf.extend_from_slice(b"]}");
        let json = String::from_utf8(self.buf).expect("the response is ASCII and escaped strings");
        RawValue::from_string(json).expect("the writer produces valid JSON")
    }
}
