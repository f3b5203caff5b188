//! `streamlake status`: one snapshot of a running stack, for people and scripts.
//!
//! `streamlake up` takes a [`Status`] every [`REFRESH`] and serves the latest as JSON at
//! `http://127.0.0.1:PORT/api/status` (the address is written to `status-endpoint` in the
//! state folder); `streamlake status` reads it from there and prints it, as a table or as
//! the same JSON (`--json`). The lake is not listed whole at each snapshot: the
//! partitions shown are the recent ones, the totals the whole lake's ([`LakeIndex`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use streamlake_core::layout::{CONSUMER_DEAD_LETTER_PREFIX, ERROR_ROOT};
use streamlake_core::names;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::emulated::esm::MappingStats;
use crate::emulated::firehose::{FirehoseStats, JournalDepth};
use crate::error::StackError;
use crate::harness::demo::count_rows;
use crate::harness::stack::LocalStack;
pub use crate::lake_index::{LakeIndex, LakeTotals, Objects};
use crate::positions::{self, Position};

/// How often `up` takes a snapshot.
pub const REFRESH: Duration = Duration::from_secs(2);

/// File in the state folder holding the status server's address.
pub const ENDPOINT_FILE: &str = "status-endpoint";

/// A snapshot of a running stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The stream.
    pub stream: String,
    /// The lake's bucket.
    pub bucket: String,
    /// The lake's prefix in the bucket (the dataset's).
    pub prefix: String,
    /// Firehose delivery from the stream: read, in its buffer, delivered, failed, dropped.
    pub firehose: FirehoseStats,
    /// Firehose delivery of Direct PUT records (`PutRecordBatch` to the stack's endpoint).
    #[serde(default)]
    pub direct_put: FirehoseStats,
    /// What the Direct PUT journal holds on disk (none when the stack keeps no
    /// checkpoints: accepted records are then in memory only).
    #[serde(default)]
    pub journal: Option<JournalDepth>,
    /// The consumer's event source mapping, iterator age included.
    pub mapping: MappingStats,
    /// Checkpoints: by reader (the delivery stream, the consumer), by shard.
    pub checkpoints: BTreeMap<String, BTreeMap<String, String>>,
    /// Messages in the mapping's on-failure queue.
    pub failure_queue_depth: u64,
    /// Whether the dataset has a consumer branch (`[dynamodb]`); without one there are
    /// no tables and no consumer.
    #[serde(default)]
    pub consumer: bool,
    /// Rows per DynamoDB table.
    pub rows: BTreeMap<String, u64>,
    /// The latest position of each partition key, when the dataset names one
    /// (`[dynamodb.position]`).
    #[serde(default)]
    pub positions: Vec<Position>,
    /// The lake's data, per partition (`year=YYYY/month=MM/day=DD`), of the partitions the
    /// stack wrote into within the last `window_seconds`.
    pub partitions: BTreeMap<String, Objects>,
    /// The recent window of `partitions`.
    #[serde(default)]
    pub window_seconds: u64,
    /// The whole lake's data.
    #[serde(default)]
    pub lake: LakeTotals,
    /// Compactions holding a day now (their claims in the compaction log).
    #[serde(default)]
    pub compactions: Vec<CompactionClaim>,
    /// Error objects, per folder of `errors/` (the consumer's dead letters included).
    pub errors: BTreeMap<String, Objects>,
    /// Sums of the Lambdas' metrics (their EMF lines), by function and metric.
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    /// Records per second over the last [`SERIES_SECONDS`] seconds with data, by stage
    /// (`transformed`, `failed`: the transform's `RecordsOk` and `RecordsFailed`;
    /// `consumed`: the consumer's `RecordsIn`), from the Lambdas' metrics: (second's
    /// start in milliseconds since the epoch, records).
    pub throughput: BTreeMap<String, Vec<(i64, f64)>>,
    /// The last records of the lake's newest data object, one JSON object each.
    pub latest_records: Vec<String>,
    /// The consumer's newest dead letters: which record, and why.
    pub latest_errors: Vec<LatestError>,
}

/// A record the consumer could not take, from its dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestError {
    /// The record's sequence number.
    pub sequence_number: String,
    /// Why it was refused.
    pub reason: String,
}

/// A day claimed by a compaction (`query compact`), from the compaction log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionClaim {
    /// The partition folder.
    pub day: String,
    /// The compaction.
    pub id: String,
    /// `pending` (the new object may be written) or `committed` (its sources are being
    /// deleted).
    pub state: String,
    /// When its compaction last renewed the claim.
    pub renewed_at: Option<String>,
}

/// Seconds of throughput kept in a snapshot.
pub const SERIES_SECONDS: usize = 300;

/// Records shown of the newest data object, and dead letters shown.
const LATEST: usize = 10;

impl Status {
    /// Takes a snapshot: the stack's counters, the tables and queue as counted now, the
    /// lake's recent partitions as listed now and its totals as `lake` keeps them.
    pub async fn of(stack: &LocalStack, lake: &mut LakeIndex) -> Result<Self, StackError> {
        let config = stack.config();
        let clients = stack.clients();
        lake.refresh(stack.take_written()).await?;
        let mut status = Self {
            stream: config.stream.clone(),
            bucket: config.bucket.clone(),
            prefix: config.dataset.prefix().to_owned(),
            firehose: stack.firehose_stats(),
            direct_put: stack.direct_put_stats(),
            journal: stack.journal_depth(),
            partitions: lake.recent(),
            window_seconds: lake.window().as_secs(),
            lake: lake.totals(),
            compactions: compactions(stack).await?,
            mapping: stack.mapping_stats(),
            checkpoints: stack.checkpoints(),
            consumer: config.dataset.dynamodb().is_some(),
            rows: count_rows(clients, &config.table_names()).await?,
            ..Self::default()
        };
        if let Some(position) = config.dataset.dynamodb().and_then(|d| d.position.as_ref()) {
            status.positions =
                positions::latest(&clients.dynamodb, &position.table, position).await?;
        }
        let metrics = stack.lambda_metrics();
        for (stage, function, metric) in [
            ("transformed", names::TRANSFORM_FUNCTION, "RecordsOk"),
            ("failed", names::TRANSFORM_FUNCTION, "RecordsFailed"),
            ("consumed", names::CONSUMER_FUNCTION, "RecordsIn"),
        ] {
            let Some(series) = metrics.get(function).and_then(|m| m.get(metric)) else {
                continue;
            };
            let per_second = &series.per_second;
            let skip = per_second.len().saturating_sub(SERIES_SECONDS);
            let points = per_second.iter().skip(skip).map(|(t, s)| (*t, s.sum));
            status.throughput.insert(stage.to_owned(), points.collect());
        }
        status.metrics = metrics
            .into_iter()
            .map(|(f, series)| {
                (
                    f,
                    series.into_iter().map(|(m, s)| (m, s.total.sum)).collect(),
                )
            })
            .collect();
        let queue = clients
            .sqs
            .get_queue_attributes()
            .queue_url(stack.failure_queue_url())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| StackError::aws("GetQueueAttributes", e))?;
        status.failure_queue_depth = queue
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let bucket = clients.bucket(&config.bucket);
        let lake_error = |source| StackError::Lake {
            context: "taking the status".into(),
            source,
        };
        // (last modified, key) of the consumer's dead letters.
        let mut dead_letters = Vec::new();
        for object in bucket.objects_under(ERROR_ROOT).await.map_err(lake_error)? {
            let group = if object.key.starts_with(CONSUMER_DEAD_LETTER_PREFIX) {
                dead_letters.push((object.modified, object.key.clone()));
                status.errors.entry("consumer-invalid".into())
            } else if let Some(rest) = object.key.strip_prefix(ERROR_ROOT) {
                let folder = rest.split('/').next().unwrap_or_default();
                status.errors.entry(folder.to_owned())
            } else {
                continue;
            };
            let entry = group.or_default();
            entry.objects += 1;
            entry.bytes += object.size;
        }
        if let Some(key) = lake.newest() {
            let body = bucket.read(key).await.map_err(lake_error)?;
            if let Ok((records, _)) = streamlake_core::formats::read_records(key, &body) {
                let skip = records.len().saturating_sub(LATEST);
                status.latest_records = records[skip..]
                    .iter()
                    .map(|r| serde_json::to_string(r).expect("a record serializes"))
                    .collect();
            }
        }
        dead_letters.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in dead_letters.into_iter().take(LATEST) {
            let body = bucket.read(&key).await.map_err(lake_error)?;
            if let Ok(letter) = serde_json::from_slice::<serde_json::Value>(&body) {
                status.latest_errors.push(LatestError {
                    sequence_number: letter["sequenceNumber"].as_str().unwrap_or_default().into(),
                    reason: letter["reason"].as_str().unwrap_or_default().into(),
                });
            }
        }
        Ok(status)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m) = (&self.firehose, &self.mapping);
        writeln!(
            f,
            "stream {}  ->  s3://{}/{}",
            self.stream, self.bucket, self.prefix
        )?;
        writeln!(
            f,
            "firehose   read {}  buffered {}  delivered {}  failed {}  dropped {}",
            h.records_read, h.in_flight, h.delivered, h.failed, h.dropped
        )?;
        if self.consumer {
            writeln!(
                f,
                "consumer   read {}  succeeded {}  discarded {}  iterator age {} ms (max {} ms)  on-failure queue {}",
                m.records_read,
                m.succeeded,
                m.discarded,
                m.iterator_age_ms,
                m.max_iterator_age_ms,
                self.failure_queue_depth
            )?;
        } else {
            writeln!(f, "consumer   none: the dataset has no [dynamodb] section")?;
        }
        for (reader, shards) in &self.checkpoints {
            for (shard, sequence_number) in shards {
                writeln!(f, "checkpoint {reader} {shard} {sequence_number}")?;
            }
        }
        for (table, rows) in &self.rows {
            writeln!(f, "table      {table} {rows} rows")?;
        }
        for p in &self.positions {
            let at =
                p.at.as_deref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default();
            writeln!(
                f,
                "position   {} {:.6}, {:.6}{at}",
                p.key, p.latitude, p.longitude
            )?;
        }
        writeln!(
            f,
            "direct put read {}  buffered {}  delivered {}  failed {}  dropped {}{}",
            self.direct_put.records_read,
            self.direct_put.in_flight,
            self.direct_put.delivered,
            self.direct_put.failed,
            self.direct_put.dropped,
            self.journal.map_or_else(
                || "  (no journal: accepted records in memory only)".to_owned(),
                |j| format!("  journal {} records, {} bytes", j.records, j.bytes)
            )
        )?;
        let t = &self.lake;
        writeln!(
            f,
            "lake       {} partitions, {} objects, {} bytes",
            t.partitions, t.objects, t.bytes
        )?;
        for (partition, o) in &self.partitions {
            writeln!(
                f,
                "recent     {partition}: {} objects, {} bytes (written within {} s)",
                o.objects, o.bytes, self.window_seconds
            )?;
        }
        for c in &self.compactions {
            writeln!(
                f,
                "compaction {} of {}: {} (renewed {})",
                c.id,
                c.day,
                c.state,
                c.renewed_at.as_deref().unwrap_or("-")
            )?;
        }
        for (folder, o) in &self.errors {
            writeln!(
                f,
                "errors     {folder}: {} objects, {} bytes",
                o.objects, o.bytes
            )?;
        }
        Ok(())
    }
}

/// The days compactions hold now, from the lake's compaction log.
async fn compactions(stack: &LocalStack) -> Result<Vec<CompactionClaim>, StackError> {
    let config = stack.config();
    let location = streamlake_core::lake::LakeLocation::S3 {
        bucket: config.bucket.clone(),
        prefix: config.dataset.prefix().to_owned(),
    };
    let lake = streamlake_core::lake::Lake::with_client(location, stack.clients().s3.clone());
    let claims = query::compaction_log::CompactionLog::of(&lake)
        .claims()
        .await
        .map_err(StackError::CompactionLog)?;
    Ok(claims
        .into_iter()
        .map(|c| CompactionClaim {
            day: c.entry.day_folder,
            id: c.entry.id,
            state: c.entry.state.as_str().to_owned(),
            renewed_at: c.entry.renewed_at,
        })
        .collect())
}

/// The status server of `up`: serves the latest snapshot.
pub struct StatusServer {
    endpoint: String,
    task: JoinHandle<()>,
}

impl StatusServer {
    /// Serves `latest` at `/api/status` on a free loopback port, and writes the address
    /// to [`ENDPOINT_FILE`] in `state_dir`.
    pub async fn start(
        latest: watch::Receiver<Status>,
        state_dir: &Path,
    ) -> Result<Self, StackError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(StackError::io("binding the status server"))?;
        let addr = listener
            .local_addr()
            .map_err(StackError::io("binding the status server"))?;
        let endpoint = format!("http://{addr}");
        let app = Router::new()
            .route("/", get(crate::dashboard::page))
            .route(
                "/api/status",
                get(|State(latest): State<watch::Receiver<Status>>| async move {
                    let body = serde_json::to_vec(&*latest.borrow()).expect("a status serializes");
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }),
            )
            .route(
                "/positions.svg",
                get(|State(latest): State<watch::Receiver<Status>>| async move {
                    let svg = positions::svg(&latest.borrow().positions);
                    ([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg)
                }),
            )
            .with_state(latest);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("status server stopped: {e}");
            }
        });
        let file = endpoint_file(state_dir);
        std::fs::write(&file, &endpoint)
            .map_err(StackError::io(format!("writing {}", file.display())))?;
        Ok(Self { endpoint, task })
    }

    /// The server's address.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn endpoint_file(state_dir: &Path) -> PathBuf {
    state_dir.join(ENDPOINT_FILE)
}

/// The latest snapshot of the stack running with `state_dir`.
pub async fn fetch(state_dir: &Path) -> Result<Status, StackError> {
    let file = endpoint_file(state_dir);
    let endpoint = std::fs::read_to_string(&file).map_err(StackError::io(format!(
        "reading {} (is `streamlake up` running with this state folder?)",
        file.display()
    )))?;
    let url = format!("{}/api/status", endpoint.trim());
    let unreachable = |e: &dyn fmt::Display| {
        StackError::io(format!("asking {url} (is `streamlake up` still running?)"))(
            std::io::Error::other(e.to_string()),
        )
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let request = axum::http::Request::get(&url)
        .body(Body::empty())
        .map_err(|e| unreachable(&e))?;
    let response = client.request(request).await.map_err(|e| unreachable(&e))?;
    let body = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024 * 1024)
        .await
        .map_err(|e| unreachable(&e))?;
    serde_json::from_slice(&body).map_err(|e| unreachable(&e))
}
