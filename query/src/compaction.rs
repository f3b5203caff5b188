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
//! The log entry is the day's claim ([`crate::compaction_log`]): created only if the day
//! has none, changed only from the version this compaction wrote, renewed while it works.
//! A second compaction of the day waits until the claim is released. A claim that stays
//! unchanged for a whole lease ([`LEASE`]) was left by a compaction that stopped part
//! way; the next compaction of the day takes it over (a conditional write, so that only
//! one does) and finishes or undoes it ([`Compactor::recover`]): a pending one is undone
//! (new object deleted, then its entry), a committed one finished (sources deleted, then
//! its entry). A compaction whose claim was taken over (it stalled for a whole lease)
//! stops at its next change to the log, and deletes the object it wrote if it had not
//! committed: between that write and that delete, the only window this leaves, readers
//! would see the day's records twice; a lease many times a day's compaction time keeps
//! it closed.

use futures::{Stream, StreamExt};
use streamlake_core::PartitionKeys;
use streamlake_core::columnar::{arrow_schema, conform, write_parquet};
use streamlake_core::dataset::Dataset;
use streamlake_core::formats::{decompress, gzip, read_batches};
use streamlake_core::lake::{DateRange, Lake, ObjectInfo};
use streamlake_core::layout::OutputFormat;
use streamlake_core::report::Report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlake_core::lake::Version;
use tokio::sync::Mutex;

use crate::QueryError;
use crate::compaction_log::{Claim, CompactionLog, HiddenObjects, LogEntry, State, is_hidden_name};

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

/// How long a claim may go without renewal before another compaction takes it over as
/// left by a crash ([`Compactor::lease`]).
pub const LEASE: Duration = Duration::from_secs(60);

/// A compaction run, for when [`compact`] is not enough.
#[derive(Debug)]
pub struct Compactor<'a> {
    lake: &'a Lake,
    dataset: &'a Dataset,
    log: CompactionLog,
    lease: Duration,
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
            lease: LEASE,
            changes: 0,
            stop_after: None,
        }
    }

    /// How long another compaction's claim on a day must stay unchanged, watched by this
    /// run, before this run takes it over as left by a crash (default [`LEASE`]); this
    /// run renews its own claims three times per lease. Zero takes a claim over at first
    /// sight: only for a lake no other compaction is working on.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Stops the run, as a crash would, before its change number `changes + 1` to the
    /// lake or its log (a write or a delete; a claim's renewal is not counted), with
    /// [`QueryError::Interrupted`]: for tests of what readers see between steps, and of
    /// the next run's recovery.
    #[must_use]
    pub fn stop_after(mut self, changes: usize) -> Self {
        self.stop_after = Some(changes);
        self
    }

    /// Finishes or undoes what crashed runs left on the days of `range` ([`recover`]),
    /// then compacts every partition of `range` with more than one live object. A day
    /// another compaction holds is waited for.
    pub async fn run(
        mut self,
        range: DateRange,
        mut each: impl FnMut(&PartitionCompaction),
    ) -> Result<Vec<PartitionCompaction>, QueryError> {
        self.recover(range).await?;
        let mut done = Vec::new();
        for partition in self.lake.partitions(range).await? {
            let report = self.compact_partition(&partition).await?;
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

    /// Settles every claim on a day of `range`: waits while its compaction renews it,
    /// and takes over one that goes a lease unchanged, undoing it if it was pending (new
    /// object deleted) or finishing it if it was committed (sources deleted), then
    /// releasing it. Each step is safe to repeat, and at each one readers see every
    /// record once.
    pub async fn recover(&mut self, range: DateRange) -> Result<(), QueryError> {
        for claim in self.log.claims().await? {
            let in_range = PartitionKeys::from_path(&claim.entry.day_folder)
                .is_some_and(|day| range.contains(day.date()));
            if in_range {
                self.settle(&claim.entry.day_folder).await?;
            }
        }
        Ok(())
    }

    /// Returns once the day has no claim: it was released by its compaction, or taken
    /// over from a crashed one and settled.
    async fn settle(&mut self, day_folder: &str) -> Result<(), QueryError> {
        let mut watched: Option<(Version, Instant)> = None;
        let poll = (self.lease / 20).clamp(Duration::from_millis(50), Duration::from_secs(1));
        while let Some(claim) = self.log.claim_of(day_folder).await? {
            let since = match &watched {
                Some((version, since)) if *version == claim.version => *since,
                _ => {
                    tracing::warn!(
                        id = %claim.entry.id,
                        day = day_folder,
                        renewed_at = claim.entry.renewed_at.as_deref().unwrap_or("-"),
                        "waiting for another compaction of the day (taken over if its claim goes {:?} unrenewed)",
                        self.lease
                    );
                    let now = Instant::now();
                    watched = Some((claim.version.clone(), now));
                    now
                }
            };
            if since.elapsed() >= self.lease {
                self.take_over(claim).await?;
                watched = None;
            } else {
                tokio::time::sleep(poll).await;
            }
        }
        Ok(())
    }

    /// Takes over a claim left by a crashed compaction and finishes or undoes it; a claim
    /// that changed meanwhile is left to its holder.
    async fn take_over(&mut self, claim: Claim) -> Result<(), QueryError> {
        self.change()?;
        let mut entry = claim.entry.clone();
        entry.renewed_at = Some(now());
        let Some(held) = self.log.replace(&claim, &entry).await? else {
            return Ok(());
        };
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
        self.change()?;
        self.log.release(&held).await?;
        Ok(())
    }

    /// Claims the entry's day, waiting for (or taking over) another compaction's claim.
    async fn claim(&mut self, entry: &LogEntry) -> Result<Lease, QueryError> {
        loop {
            self.change()?;
            if let Some(claim) = self.log.create(entry).await? {
                return Ok(Lease::hold(self.log.clone(), claim, self.lease));
            }
            self.settle(&entry.day_folder).await?;
        }
    }

    async fn compact_partition(
        &mut self,
        partition: &PartitionKeys,
    ) -> Result<PartitionCompaction, QueryError> {
        let lake = self.lake;
        let mut report = PartitionCompaction {
            partition: Some(*partition),
            ..Default::default()
        };
        let (sources, format, compacted_key, entry, lease) = loop {
            let sources = live_objects(lake, &self.log.hidden().await?, partition).await?;
            if sources.len() < 2 {
                return Ok(report);
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let format = format_of(partition, &sources)?;
            let compacted_key =
                lake.key_in(partition, &format!("compacted-{id}{}", format.extension()));
            let entry = LogEntry {
                id,
                day_folder: partition.to_string(),
                compacted: lake.url_of(&compacted_key),
                sources: sources.iter().map(|o| lake.url_of(&o.key)).collect(),
                state: State::Pending,
                renewed_at: Some(now()),
            };
            let lease = self.claim(&entry).await?;
            // Another compaction may have changed the day before this one claimed it.
            let live = live_objects(lake, &self.log.hidden().await?, partition).await?;
            if sources.iter().all(|s| live.contains(s)) {
                break (sources, format, compacted_key, entry, lease);
            }
            self.change()?;
            lease.release().await?;
        };
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

        lease.check().await?;
        self.write(&compacted_key, body).await?;
        self.change()?;
        if let Err(lost) = lease.commit().await {
            // Taken over: the new object must not outlive the claim that hid it.
            lake.delete(&compacted_key).await?;
            return Err(lost);
        }
        for source in &entry.sources {
            self.delete_url(source).await?;
        }
        self.change()?;
        lease.release().await?;
        Ok(report)
    }
}

/// Now, as a claim's `renewed_at`.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A claim this run holds, renewed in the background three times per lease until it is
/// committed, released or dropped (a crash, as far as the log can tell).
struct Lease {
    log: CompactionLog,
    /// The claim as last written; `None` once another compaction took it over.
    held: Arc<Mutex<Option<Claim>>>,
    /// The day and the compaction, for the error of a lost claim.
    day: String,
    id: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    fn hold(log: CompactionLog, claim: Claim, lease: Duration) -> Self {
        let (day, id) = (claim.entry.day_folder.clone(), claim.entry.id.clone());
        let held = Arc::new(Mutex::new(Some(claim)));
        let renewer = (!lease.is_zero()).then(|| {
            let (log, held) = (log.clone(), held.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match renew(&log, &mut *held.lock().await, |_| {}).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => tracing::warn!("renewing a compaction's claim: {}", Report(&e)),
                    }
                }
            })
        });
        Self {
            log,
            held,
            day,
            id,
            renewer,
        }
    }

    /// The error of a claim taken over.
    fn lost(&self) -> QueryError {
        QueryError::ClaimLost {
            day: self.day.clone(),
            id: self.id.clone(),
        }
    }

    /// Renews the claim now: an error if it was taken over.
    async fn check(&self) -> Result<(), QueryError> {
        let held = renew(&self.log, &mut *self.held.lock().await, |_| {}).await?;
        if held { Ok(()) } else { Err(self.lost()) }
    }

    /// Switches the day over: the entry committed, if the claim is still this run's.
    async fn commit(&self) -> Result<(), QueryError> {
        let commit = |entry: &mut LogEntry| entry.state = State::Committed;
        let held = renew(&self.log, &mut *self.held.lock().await, commit).await?;
        if held { Ok(()) } else { Err(self.lost()) }
    }

    /// Deletes the claim; a claim taken over meanwhile is its new holder's to delete.
    async fn release(mut self) -> Result<(), QueryError> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        let held = self.held.lock().await;
        if let Some(claim) = &*held
            && !self.log.release(claim).await?
        {
            tracing::warn!(day = %claim.entry.day_folder, "another compaction took over this claim before it was released");
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

/// Rewrites the held claim (`renewed_at` now, and `change`) if it is still at the version
/// this run wrote; `false` when another compaction took it over (it is then dropped).
async fn renew(
    log: &CompactionLog,
    held: &mut Option<Claim>,
    change: impl FnOnce(&mut LogEntry),
) -> Result<bool, QueryError> {
    let Some(claim) = held.as_ref() else {
        return Ok(false);
    };
    let mut entry = claim.entry.clone();
    entry.renewed_at = Some(now());
    change(&mut entry);
    *held = log.replace(claim, &entry).await?;
    Ok(held.is_some())
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
