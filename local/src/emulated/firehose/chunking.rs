//! Cutting a buffer into transform invocations, as Firehose does: at most the processor's
//! buffer size of record data per invocation (`BufferSizeInMBs` of the Lambda processor)
//! and never more than the 6 MB invocation payload once base64-encoded in the event
//! (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>).

use crate::emulated::kinesis_source::StreamRecord;
use crate::emulated::lambda_host::MAX_EVENT_RECORDS_BYTES;

/// The buffer's records, as indexes, in order, cut into invocations; a record larger than
/// the limit goes alone.
pub(super) fn invocations(
    records: &[StreamRecord],
    processor_buffer_bytes: usize,
) -> Vec<Vec<usize>> {
    let limit = processor_buffer_bytes.max(1);
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let (mut raw, mut encoded) = (0usize, 0usize);
    for (i, r) in records.iter().enumerate() {
        let size = r.data.len();
        let wire = r.event_bytes();
        if !current.is_empty() && (raw + size > limit || encoded + wire > MAX_EVENT_RECORDS_BYTES) {
            chunks.push(std::mem::take(&mut current));
            (raw, encoded) = (0, 0);
        }
        current.push(i);
        raw += size;
        encoded += wire;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn records(sizes: &[usize]) -> Vec<StreamRecord> {
        let shard: Arc<str> = "shardId-000000000000".into();
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| StreamRecord {
                shard_id: shard.clone(),
                sequence_number: format!("{i:056}"),
                partition_key: "k".into(),
                data: vec![b'x'; n],
                arrival: chrono::Utc::now(),
                subsequence_number: None,
            })
            .collect()
    }

    #[test]
    fn cuts_at_the_processor_buffer_size() {
        let cut = invocations(&records(&[400, 400, 400, 100]), 1000);
        assert_eq!(cut, [vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn a_record_over_the_limit_goes_alone() {
        let cut = invocations(&records(&[10, 5000, 10]), 1000);
        assert_eq!(cut, [vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn cuts_before_the_encoded_event_passes_the_invocation_payload() {
        // 3 MiB of data each: under a 10 MiB processor buffer, but base64 makes two of
        // them more than the 6 MB payload.
        let cut = invocations(&records(&[3 << 20, 3 << 20, 3 << 20]), 10 << 20);
        assert_eq!(cut, [vec![0], vec![1], vec![2]]);
        let small = invocations(&records(&[1 << 20; 6]), 10 << 20);
        assert!(small.len() >= 2, "{small:?}");
        assert_eq!(small.concat(), (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_buffer_has_no_invocation() {
        assert!(invocations(&[], 1000).is_empty());
    }
}
