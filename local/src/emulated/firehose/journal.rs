//! The Direct PUT journal: what `PutRecordBatch` accepted, on disk before the answer goes
//! out, so that a record Firehose acknowledged is delivered even if the stack is killed
//! before its buffer is. "For DirectPut Firehose streams, Firehose retains the records for
//! 24 hours" (<https://docs.aws.amazon.com/firehose/latest/dev/troubleshooting.html>,
//! retries: <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>); a producer that
//! got a `RecordId` back never sends the record again.
//!
//! The journal is a folder of segment files, each named after its first record id (ids
//! sort as sequence numbers do, [`super::direct_put`]). A segment is a sequence of frames
//! `[length u32][crc32 u32][body]`, body `[id length u8][id][arrival µs i64][data]`, all
//! little-endian. An append is written and `fsync`ed (`sync_data`) before its records are
//! acknowledged; appends that arrive together share one `fsync`. At a start the segments
//! are read back like a shard: records past the delivery stream's checkpoint are
//! delivered again under their own ids (so their objects get the keys they would have
//! had), and a frame cut short by a crash (never acknowledged) ends its segment, which is
//! truncated there. Segments whose records are all behind the checkpoint are deleted.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use streamlake_core::seqnum;

use crate::emulated::kinesis_source::StreamRecord;

/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 32 << 20;

const SUFFIX: &str = ".journal";

/// A journal folder, open for appending.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The last segment, open for appending.
    current: Option<File>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Its last record id.
    last: String,
    bytes: u64,
    records: u64,
}

impl Journal {
    /// Opens the journal in `dir` (created if missing) and returns the records it holds
    /// past `settled` (the delivery stream's checkpoint), in order. Segments wholly behind
    /// it are deleted.
    pub fn open(
        dir: &Path,
        shard: &Arc<str>,
        settled: Option<&str>,
    ) -> std::io::Result<(Self, Vec<StreamRecord>)> {
        std::fs::create_dir_all(dir)?;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.to_string_lossy().ends_with(SUFFIX))
            .collect();
        paths.sort_by(|a, b| seqnum::compare(&stem(a), &stem(b)));
        let mut journal = Self {
            dir: dir.to_owned(),
            segments: VecDeque::new(),
            current: None,
        };
        let mut pending = Vec::new();
        for path in paths {
            let (records, valid, bytes) = read_segment(&path, shard)?;
            if valid < bytes {
                tracing::warn!(
                    segment = %path.display(),
                    "the journal ends in a frame cut short (never acknowledged); truncating it"
                );
                OpenOptions::new().write(true).open(&path)?.set_len(valid)?;
            }
            let Some(last) = records.last() else {
                std::fs::remove_file(&path)?;
                continue;
            };
            journal.segments.push_back(Segment {
                path,
                last: last.sequence_number.clone(),
                bytes: valid,
                records: records.len() as u64,
            });
            pending.extend(records.into_iter().filter(|r| {
                settled.is_none_or(|s| seqnum::compare(&r.sequence_number, s).is_gt())
            }));
        }
        if let Some(settled) = settled {
            journal.settle(settled)?;
        }
        Ok((journal, pending))
    }

    /// The last record id it holds, if any.
    pub fn last_id(&self) -> Option<&str> {
        self.segments.back().map(|s| s.last.as_str())
    }

    /// Bytes and records on disk.
    pub fn size(&self) -> (u64, u64) {
        self.segments
            .iter()
            .fold((0, 0), |(b, r), s| (b + s.bytes, r + s.records))
    }

    /// Writes `records` (in id order, after every record already in) and waits until they
    /// are on disk.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a StreamRecord>,
    ) -> std::io::Result<()> {
        let records: Vec<&StreamRecord> = records.into_iter().collect();
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let body = encode(&records);
        let full = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= SEGMENT_BYTES);
        if self.current.is_none() || full {
            let path = self.dir.join(format!("{}{SUFFIX}", first.sequence_number));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            // The new name must survive a crash as well as its bytes.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some(file);
            self.segments.push_back(Segment {
                path,
                last: first.sequence_number.clone(),
                bytes: 0,
                records: 0,
            });
        }
        let file = self.current.as_mut().expect("opened above");
        file.write_all(&body)?;
        file.sync_data()?;
        let segment = self.segments.back_mut().expect("opened above");
        segment.last.clone_from(&last.sequence_number);
        segment.bytes += body.len() as u64;
        segment.records += records.len() as u64;
        Ok(())
    }

    /// Deletes the segments whose records are all at or behind `up_to` (delivered). The
    /// segment being appended to is closed first when it is among them: the next append
    /// starts a new one.
    pub fn settle(&mut self, up_to: &str) -> std::io::Result<()> {
        while let Some(segment) = self.segments.front() {
            if seqnum::compare(&segment.last, up_to).is_gt() {
                break;
            }
            if self.segments.len() == 1 {
                self.current = None;
            }
            std::fs::remove_file(&segment.path)?;
            self.segments.pop_front();
        }
        Ok(())
    }
}

fn stem(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .trim_end_matches(SUFFIX)
        .to_owned()
}

/// The frames of `records`.
fn encode(records: &[&StreamRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.data.len() + 64).sum());
    for r in records {
        let id = r.sequence_number.as_bytes();
        let mut body = Vec::with_capacity(id.len() + r.data.len() + 9);
        body.push(u8::try_from(id.len()).expect("record ids are 36 digits"));
        body.extend_from_slice(id);
        body.extend_from_slice(&r.arrival.timestamp_micros().to_le_bytes());
        body.extend_from_slice(&r.data);
        out.extend_from_slice(
            &u32::try_from(body.len())
                .expect("a record is under 1,000 KiB")
                .to_le_bytes(),
        );
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// The records of a segment, the length of its valid frames and the file's (more when
/// the last frame was cut short).
fn read_segment(path: &Path, shard: &Arc<str>) -> std::io::Result<(Vec<StreamRecord>, u64, u64)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(record) = decode(&bytes[at..], shard) {
        let (record, used) = record;
        records.push(record);
        at += used;
    }
    Ok((records, at as u64, bytes.len() as u64))
}

/// The frame at the start of `bytes` and its length, or `None` when it is missing, cut
/// short or damaged.
fn decode(bytes: &[u8], shard: &Arc<str>) -> Option<(StreamRecord, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(8..8 + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let id_len = usize::from(*body.first()?);
    let id = std::str::from_utf8(body.get(1..1 + id_len)?).ok()?;
    let micros = i64::from_le_bytes(body.get(1 + id_len..9 + id_len)?.try_into().ok()?);
    let arrival: DateTime<Utc> = DateTime::from_timestamp_micros(micros)?;
    Some((
        StreamRecord {
            shard_id: shard.clone(),
            sequence_number: id.to_owned(),
            partition_key: String::new(),
            data: body.get(9 + id_len..)?.to_vec(),
            arrival,
            subsequence_number: None,
        },
        8 + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(shard: &Arc<str>, n: u64, data: &[u8]) -> StreamRecord {
        StreamRecord {
            shard_id: shard.clone(),
            sequence_number: format!("{:020}{n:016}", 1_700_000_000_000_000u64),
            partition_key: String::new(),
            data: data.to_vec(),
            arrival: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            subsequence_number: None,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("streamlake-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn reads_back_what_was_appended_past_the_checkpoint() {
        let dir = dir("replay");
        let shard: Arc<str> = "direct-put".into();
        let (mut journal, pending) = Journal::open(&dir, &shard, None).unwrap();
        assert!(pending.is_empty());
        let records: Vec<StreamRecord> = (0..5)
            .map(|n| record(&shard, n, format!("r{n}\n").as_bytes()))
            .collect();
        journal.append(&records[..2]).unwrap();
        journal.append(&records[2..]).unwrap();
        drop(journal);

        let (journal, pending) = Journal::open(&dir, &shard, None).unwrap();
        assert_eq!(pending.len(), 5);
        assert_eq!(pending[4].data, b"r4\n");
        assert_eq!(pending[4].sequence_number, records[4].sequence_number);
        assert_eq!(pending[0].arrival, records[0].arrival);
        assert_eq!(journal.last_id(), Some(records[4].sequence_number.as_str()));
        drop(journal);

        let (_, pending) = Journal::open(&dir, &shard, Some(&records[2].sequence_number)).unwrap();
        let ids: Vec<&str> = pending.iter().map(|r| r.sequence_number.as_str()).collect();
        assert_eq!(
            ids,
            [&records[3].sequence_number, &records[4].sequence_number]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_frame_cut_short_ends_the_journal_and_is_truncated() {
        let dir = dir("torn");
        let shard: Arc<str> = "direct-put".into();
        let (mut journal, _) = Journal::open(&dir, &shard, None).unwrap();
        journal.append(&[record(&shard, 0, b"kept\n")]).unwrap();
        drop(journal);
        let segment = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let whole = std::fs::metadata(&segment).unwrap().len();
        // Half a frame, as a crash in the middle of a write leaves it.
        let half = &encode(&[&record(&shard, 1, b"never acknowledged\n")])[..10];
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(half)
            .unwrap();

        let (mut journal, pending) = Journal::open(&dir, &shard, None).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
        journal.append(&[record(&shard, 2, b"after\n")]).unwrap();
        drop(journal);
        let (_, pending) = Journal::open(&dir, &shard, None).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|r| r.data.as_slice())
                .collect::<Vec<_>>(),
            [&b"kept\n"[..], b"after\n"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn settled_segments_are_deleted() {
        let dir = dir("settle");
        let shard: Arc<str> = "direct-put".into();
        let (mut journal, _) = Journal::open(&dir, &shard, None).unwrap();
        let records: Vec<StreamRecord> = (0..4).map(|n| record(&shard, n, b"x\n")).collect();
        journal.append(&records[..2]).unwrap();
        journal.settle(&records[0].sequence_number).unwrap();
        assert_eq!(
            journal.size().1,
            2,
            "a segment with a record past the checkpoint stays"
        );
        journal.settle(&records[1].sequence_number).unwrap();
        assert_eq!(journal.size(), (0, 0));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        journal.append(&records[2..]).unwrap();
        assert_eq!(journal.size().1, 2);
        drop(journal);
        let (_, pending) = Journal::open(&dir, &shard, Some(&records[1].sequence_number)).unwrap();
        assert_eq!(pending.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
