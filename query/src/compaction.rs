//! Compaction: a partition's many small objects rewritten into one object of the same
//! format: Parquet stays Parquet, NDJSON (plain or GZIP) becomes one GZIP NDJSON object
//! (`.gz`, which Athena's JSON table decompresses), so a table over the lake never finds
//! an object it cannot read. Converting NDJSON to Parquet is [`crate::convert`]'s job,
//! into another location.
//!
//! Readers must never see a day with records missing or doubled, in `query` or in Athena,
//! so a compaction moves through the compaction log ([`crate::compaction_log`]):
//! 1. log entry written, `pending` (names the new object and its sources);
//! 2. new object written (hidden: the compacted object of a pending compaction);
//! 3. log entry overwritten, `committed`: the day switches to the new object in one
//!    atomic write (sources hidden from now on);
//! 4. sources deleted;
//! 5. log entry deleted.
//!
//! A compaction that stopped part way is finished or undone by the next one before it
//! does anything else ([`recover`]): a pending one is undone (new object deleted, then
//! its entry), a committed one finished (sources deleted, then its entry). One compaction
//! at a time per lake.

use futures::{Stream, StreamExt};
use streamlake_core::PartitionKeys;
use streamlake_core::columnar::{arrow_schema, conform, write_parquet};
use streamlake_core::dataset::Dataset;
use streamlake_core::formats::{decompress, gzip, read_batches};
use streamlake_core::lake::{DateRange, Lake, ObjectInfo};
use streamlake_core::layout::OutputFormat;

use crate::QueryError;
use crate::compaction_log::{CompactionLog, HiddenObjects, LogEntry, State, is_hidden_name};

/// Partitions listed at once: listing a partition in S3 is a request (or more) of its own.
pub const LIST_CONCURRENCY: usize = 16;

/// The live objects ([`live_objects`]) of each partition, listed [`LIST_CONCURRENCY`] at a
/// time, in the partitions' order.
pub fn live_objects_of<'a>(
    lake: &'a Lake,
    hidden: &'a HiddenObjects,
    partitions: Vec<PartitionKeys>,
) -> impl Stream<Item = Result<(PartitionKeys, Vec<ObjectInfo>), QueryError>> + 'a {
    futures::stream::iter(partitions)
        .map(move |p| async move {
            live_objects(lake, hidden, &p)
                .await
                .map(|objects| (p, objects))
        })
        .buffered(LIST_CONCURRENCY)
}

/// The partitions of `range` and the objects the compaction log hides, listed at once.
pub async fn partitions_to_read(
    lake: &Lake,
    range: DateRange,
) -> Result<(Vec<PartitionKeys>, HiddenObjects), QueryError> {
    let log = CompactionLog::of(lake);
    futures::try_join!(async { Ok(lake.partitions(range).await?) }, log.hidden())
}

/// The objects of a partition a reader must read: data objects (name not starting with
/// `_` or `.`) that the compaction log does not hide.
pub async fn live_objects(
    lake: &Lake,
    hidden: &HiddenObjects,
    partition: &PartitionKeys,
) -> Result<Vec<ObjectInfo>, QueryError> {
    Ok(lake
        .objects(partition)
        .await?
        .into_iter()
        .filter(|o| !is_hidden_name(o) && !hidden.contains(&lake.url_of(&o.key)))
        .collect())
}

/// What compacting one partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionCompaction {
    /// The partition.
    pub partition: Option<PartitionKeys>,
    /// Objects replaced.
    pub objects_in: usize,
    /// Their bytes.
    pub bytes_in: u64,
    /// Bytes of the object written.
    pub bytes_out: u64,
    /// Records moved.
    pub records: u64,
}

/// Compacts every partition of `range` that has more than one object; `each` is called
/// after each partition (compacted or not).
pub async fn compact(
    lake: &Lake,
    dataset: &Dataset,
    range: DateRange,
    each: impl FnMut(&PartitionCompaction),
) -> Result<Vec<PartitionCompaction>, QueryError> {
    Compactor::new(lake, dataset).run(range, each).await
}

/// A compaction run, for when [`compact`] is not enough.
#[derive(Debug)]
pub struct Compactor<'a> {
    lake: &'a Lake,
    dataset: &'a Dataset,
    log: CompactionLog,
    changes: usize,
    stop_after: Option<usize>,
}

impl<'a> Compactor<'a> {
    /// A run over `lake`, holding `dataset`'s records (a Parquet day is rewritten in
    /// the dataset's schema: columns older objects lack are null).
    pub fn new(lake: &'a Lake, dataset: &'a Dataset) -> Self {
        Self {
            lake,
            dataset,
            log: CompactionLog::of(lake),
            changes: 0,
            stop_after: None,
        }
    }

    /// Stops the run, as a crash would, before its change number `changes + 1` to the
    /// lake or its log (a write or a delete), with [`QueryError::Interrupted`]: for tests
    /// of what readers see between steps, and of the next run's recovery.
    #[must_use]
    pub fn stop_after(mut self, changes: usize) -> Self {
        self.stop_after = Some(changes);
        self
    }

    /// Finishes or undoes what an earlier run left ([`recover`]), then compacts every
    /// partition of `range` with more than one live object.
    pub async fn run(
        mut self,
        range: DateRange,
        mut each: impl FnMut(&PartitionCompaction),
    ) -> Result<Vec<PartitionCompaction>, QueryError> {
        self.recover().await?;
        let hidden = self.log.hidden().await?;
        let mut done = Vec::new();
        for partition in self.lake.partitions(range).await? {
            let report = self.compact_partition(&hidden, &partition).await?;
            each(&report);
            if report.objects_in > 0 {
                done.push(report);
            }
        }
        Ok(done)
    }

    /// Counts one change to the lake, or stops before it.
    fn change(&mut self) -> Result<(), QueryError> {
        if self.stop_after.is_some_and(|limit| self.changes >= limit) {
            return Err(QueryError::Interrupted {
                changes: self.changes,
            });
        }
        self.changes += 1;
        Ok(())
    }

    async fn write(&mut self, key: &str, body: Vec<u8>) -> Result<(), QueryError> {
        self.change()?;
        Ok(self.lake.write(key, body).await?)
    }

    async fn delete_url(&mut self, url: &str) -> Result<(), QueryError> {
        self.change()?;
        match self.lake.key_of_url(url) {
            Some(key) => Ok(self.lake.delete(&key).await?),
            None => Err(QueryError::Compaction(format!(
                "the compaction log names {url}, which is not in this lake's bucket"
            ))),
        }
    }

    async fn write_log(&mut self, entry: &LogEntry) -> Result<(), QueryError> {
        self.change()?;
        self.log.write(entry).await
    }

    async fn delete_log(&mut self, id: &str) -> Result<(), QueryError> {
        self.change()?;
        self.log.delete(id).await
    }

    /// Undoes every pending compaction of the log (new object deleted, then the entry)
    /// and finishes every committed one (sources deleted, then the entry). Each step is
    /// safe to repeat, and at each one readers see every record once.
    pub async fn recover(&mut self) -> Result<(), QueryError> {
        for entry in self.log.entries().await? {
            match entry.state {
                State::Pending => {
                    tracing::info!(id = %entry.id, day = %entry.day_folder, "undoing a compaction that did not commit");
                    self.delete_url(&entry.compacted).await?;
                }
                State::Committed => {
                    tracing::info!(id = %entry.id, day = %entry.day_folder, "finishing a committed compaction");
                    for source in &entry.sources {
                        self.delete_url(source).await?;
                    }
                }
            }
            self.delete_log(&entry.id).await?;
        }
        Ok(())
    }

    async fn compact_partition(
        &mut self,
        hidden: &HiddenObjects,
        partition: &PartitionKeys,
    ) -> Result<PartitionCompaction, QueryError> {
        let lake = self.lake;
        let mut report = PartitionCompaction {
            partition: Some(*partition),
            ..Default::default()
        };
        let sources = live_objects(lake, hidden, partition).await?;
        if sources.len() < 2 {
            return Ok(report);
        }
        let format = format_of(partition, &sources)?;
        let mut bodies = Vec::with_capacity(sources.len());
        for object in &sources {
            bodies.push(lake.read(&object.key).await?);
            report.bytes_in += object.size;
        }
        let (body, records) = match format {
            OutputFormat::Parquet => {
                let schema = arrow_schema(self.dataset);
                let mut batches = Vec::new();
                for (object, body) in sources.iter().zip(&bodies) {
                    for batch in read_batches(self.dataset, &object.key, body)? {
                        batches.push(conform(&batch, &schema).map_err(|e| {
                            QueryError::Compaction(format!("{}: {e}", lake.url_of(&object.key)))
                        })?);
                    }
                }
                let records = batches.iter().map(|b| b.num_rows() as u64).sum();
                let parquet = write_parquet(&schema, &batches)
                    .map_err(|e| QueryError::Compaction(e.to_string()))?;
                (parquet, records)
            }
            _ => concatenate_ndjson(&sources, &bodies)?,
        };
        report.records = records;
        report.bytes_out = body.len() as u64;
        report.objects_in = sources.len();

        let id = uuid::Uuid::new_v4().simple().to_string();
        let compacted_key =
            lake.key_in(partition, &format!("compacted-{id}{}", format.extension()));
        let mut entry = LogEntry {
            id,
            day_folder: partition.to_string(),
            compacted: lake.url_of(&compacted_key),
            sources: sources.iter().map(|o| lake.url_of(&o.key)).collect(),
            state: State::Pending,
        };
        self.write_log(&entry).await?;
        self.write(&compacted_key, body).await?;
        entry.state = State::Committed;
        self.write_log(&entry).await?;
        for source in &entry.sources {
            self.delete_url(source).await?;
        }
        self.delete_log(&entry.id).await?;
        Ok(report)
    }
}

/// The format a partition compacts into: Parquet if its objects are Parquet, GZIP NDJSON
/// if they are NDJSON (plain or GZIP); a partition that mixes both (which no table reads)
/// is an error naming it.
fn format_of(
    partition: &PartitionKeys,
    objects: &[ObjectInfo],
) -> Result<OutputFormat, QueryError> {
    let parquet = objects
        .iter()
        .filter(|o| OutputFormat::of_key(&o.key) == OutputFormat::Parquet)
        .count();
    match parquet {
        0 => Ok(OutputFormat::NdjsonGzip),
        n if n == objects.len() => Ok(OutputFormat::Parquet),
        n => Err(QueryError::Compaction(format!(
            "{partition} holds {n} Parquet and {} NDJSON objects: a table reads one format; \
             move one kind away (or use `query convert` into a new location) and compact again",
            objects.len() - n
        ))),
    }
}

/// The NDJSON objects' lines, in order, GZIP'd: records are moved byte for byte.
fn concatenate_ndjson(
    objects: &[ObjectInfo],
    bodies: &[Vec<u8>],
) -> Result<(Vec<u8>, u64), QueryError> {
    let mut text = Vec::new();
    for (object, body) in objects.iter().zip(bodies) {
        let body = decompress(&object.key, body)?;
        text.extend_from_slice(&body);
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
    }
    let records = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count() as u64;
    Ok((gzip(&text), records))
}
