//! What several of the end-to-end tests need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use producer::Entry;
use producer::redrive::REDRIVEN_PREFIX;
use streamlake::clients::Clients;
use streamlake::emulated::firehose::ErrorRecord;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::demo::read_prefix;
use streamlake::harness::logs;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::layout::{CONSUMER_DEAD_LETTER_PREFIX, DATA_ROOT, ERROR_ROOT};
use streamlake_core::time::{format_rfc3339, from_epoch_millis};
use streamlake_e2e::weather;
use streamlake_e2e::{WEATHER_TABLES, drain_queue, expected_rows, table_rows};

/// A log folder for an emulator a test starts by itself.
pub fn run_logs() -> PathBuf {
    logs::create_run_dir(&default_state_dir()).expect("a log folder")
}

/// A record as the lake holds it: station, datatype, observation time, value.
pub type RecordKey = (String, String, String, String);

/// Where the records of a run ended up, after [`assert_nothing_lost`] checked them.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Valid records in the lake's data objects.
    pub delivered: usize,
    /// Valid records under `processing-failed/` because the transform kept failing
    /// (`Lambda.*` after Firehose's retries).
    pub transform_failed: usize,
    /// Malformed records under `processing-failed/` (the function said `ProcessingFailed`).
    pub malformed: usize,
}

/// Checks that every record of `entries` is in exactly one place: each valid record once
/// in the lake's data (or, if the transform kept failing, once under `processing-failed/`
/// with a `Lambda.*` error code), each malformed one once under `processing-failed/` and
/// once among the consumer's dead letters; the tables hold exactly the rows the records
/// make, and the on-failure queue is empty.
pub async fn assert_nothing_lost(stack: &LocalStack, entries: &[Entry]) -> Ledger {
    audit(
        stack.clients(),
        stack.config(),
        stack.failure_queue_url(),
        entries,
    )
    .await
}

/// [`assert_nothing_lost`] for a stack running elsewhere (another process), configured
/// as `config`.
pub async fn audit(
    clients: &Clients,
    config: &StackConfig,
    failure_queue_url: &str,
    entries: &[Entry],
) -> Ledger {
    let in_stream_order = entries.iter().map(|e| e.data.as_slice());
    audit_in_order(clients, config, failure_queue_url, entries, in_stream_order).await
}

/// [`audit`], with the tables checked against `stream` (the records' data in the order of
/// their shards): where records of one row and datatype repeat, the newest one's value
/// stays, and a producer's resent entries change which one that is.
pub async fn audit_in_order<'a>(
    clients: &Clients,
    config: &StackConfig,
    failure_queue_url: &str,
    entries: &[Entry],
    stream: impl IntoIterator<Item = &'a [u8]>,
) -> Ledger {
    let bucket = &config.bucket;
    let (ledger, malformed, redriven) = audit_lake(clients, bucket, entries).await;

    let mut dead: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for (key, body) in read_prefix(clients, bucket, CONSUMER_DEAD_LETTER_PREFIX)
        .await
        .unwrap()
    {
        if redriven.contains(&key) {
            continue;
        }
        let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let raw = STANDARD
            .decode(record["rawData"].as_str().unwrap())
            .unwrap();
        *dead.entry(raw).or_default() += 1;
    }
    assert_same(
        &dead,
        &malformed,
        "malformed records: each once in the dead letters",
    );

    assert_eq!(
        table_rows(&clients.dynamodb, &WEATHER_TABLES, false).await,
        expected_rows(stream),
        "the tables hold exactly the rows of the records"
    );
    assert!(
        drain_queue(&clients.sqs, failure_queue_url)
            .await
            .is_empty(),
        "nothing was given up on"
    );
    ledger
}

/// `entries` as a Firehose producer sends them: with the newline it appends (records
/// travel with it, into the lake and the error output).
pub fn with_newline(entries: &[Entry]) -> Vec<Entry> {
    entries
        .iter()
        .map(|e| Entry {
            data: [&e.data[..], b"\n"].concat(),
            ..e.clone()
        })
        .collect()
}

/// The lake's part of [`audit`]: each valid record of `entries` once in the lake's data
/// (or under `processing-failed/` with a `Lambda.*` error), each malformed one once under
/// `processing-failed/`. Returns the ledger, the malformed records and the error objects
/// a redrive sent again.
pub async fn audit_lake(
    clients: &Clients,
    bucket: &str,
    entries: &[Entry],
) -> (Ledger, BTreeMap<Vec<u8>, u32>, BTreeSet<String>) {
    let arrival = from_epoch_millis(0);
    let mut valid: BTreeMap<RecordKey, u32> = BTreeMap::new();
    let mut malformed: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for e in entries {
        match weather(&e.data, arrival) {
            Ok(o) => {
                let key = (
                    o.stationid.to_string(),
                    o.datatype.to_string(),
                    format_rfc3339(&o.observed_at),
                    o.value.to_string(),
                );
                *valid.entry(key).or_default() += 1;
            }
            Err(_) => *malformed.entry(e.data.clone()).or_default() += 1,
        }
    }

    let mut ledger = Ledger::default();
    let mut found: BTreeMap<RecordKey, u32> = BTreeMap::new();
    for (key, body) in read_prefix(clients, bucket, DATA_ROOT).await.unwrap() {
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let row: serde_json::Value = serde_json::from_slice(line).unwrap();
            let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
            let value = row["value"].as_f64().unwrap_or(f64::NAN).to_string();
            let record = (
                text("stationid"),
                text("datatype"),
                text("observed_at"),
                value,
            );
            *found.entry(record).or_default() += 1;
            ledger.delivered += 1;
            assert!(key.starts_with(DATA_ROOT));
        }
    }
    // Error objects a redrive sent again are settled: their records are counted where
    // the redrive put them.
    let redriven: BTreeSet<String> = read_prefix(clients, bucket, REDRIVEN_PREFIX)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix(REDRIVEN_PREFIX).map(str::to_owned))
        .collect();
    let mut failed: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for (key, body) in read_prefix(clients, bucket, ERROR_ROOT).await.unwrap() {
        if key.starts_with(CONSUMER_DEAD_LETTER_PREFIX)
            || key.starts_with(REDRIVEN_PREFIX)
            || redriven.contains(&key)
        {
            continue;
        }
        assert!(key.starts_with("errors/processing-failed/"), "{key}");
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let ErrorRecord::Processing(record) = serde_json::from_slice(line).unwrap() else {
                panic!("{key}: not a processing-failed record");
            };
            let raw = STANDARD.decode(&record.raw_data).unwrap();
            match weather(&raw, arrival) {
                Ok(o) => {
                    assert!(
                        record.error_code.starts_with("Lambda.")
                            && record.error_code != "Lambda.ProcessingFailedStatus",
                        "a valid record failed with {}",
                        record.error_code
                    );
                    let key = (
                        o.stationid.to_string(),
                        o.datatype.to_string(),
                        format_rfc3339(&o.observed_at),
                        o.value.to_string(),
                    );
                    *found.entry(key).or_default() += 1;
                    ledger.transform_failed += 1;
                }
                Err(_) => {
                    *failed.entry(raw).or_default() += 1;
                    ledger.malformed += 1;
                }
            }
        }
    }
    assert_same(&found, &valid, "valid records: each once in the lake");
    assert_same(
        &failed,
        &malformed,
        "malformed records: each once in processing-failed/",
    );

    (ledger, malformed, redriven)
}

/// Asserts two multisets are equal, naming (up to ten of) the records whose counts differ.
fn assert_same<K: Ord + std::fmt::Debug>(
    found: &BTreeMap<K, u32>,
    expected: &BTreeMap<K, u32>,
    what: &str,
) {
    let differ: Vec<String> = found
        .keys()
        .chain(expected.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| found.get(k) != expected.get(k))
        .map(|k| {
            let count = |m: &BTreeMap<K, u32>| m.get(k).copied().unwrap_or(0);
            format!("{k:?}: {} (expected {})", count(found), count(expected))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: {} records differ, for example\n{}",
        differ.len(),
        differ
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Stops a `streamlake up` child process with Ctrl-C (SIGINT) and checks that it finished
/// what was in flight and exited cleanly within a minute.
pub async fn interrupt(up: &mut tokio::process::Child) {
    stop_with(up, "INT").await;
}

/// Stops a `streamlake up` child process with SIGTERM (what `kill` and service managers
/// send), with the same checks as [`interrupt`].
pub async fn terminate(up: &mut tokio::process::Child) {
    stop_with(up, "TERM").await;
}

async fn stop_with(up: &mut tokio::process::Child, signal: &str) {
    let pid = up.id().expect("still running").to_string();
    let sent = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), up.wait())
        .await
        .unwrap_or_else(|_| panic!("up stops on SIG{signal}"))
        .unwrap();
    assert!(status.success(), "SIG{signal}: {status}");
}

/// Waits until the consumer branch has caught up with `entries` (for a stack in another
/// process, whose counters the test cannot read): the tables hold the rows the records
/// make and every malformed record has its dead letter. The lake being complete says
/// nothing about the consumer, which reads the stream on its own.
pub async fn wait_for_consumer(clients: &Clients, bucket: &str, entries: &[Entry]) {
    let expected = expected_rows(entries.iter().map(|e| e.data.as_slice()));
    let malformed = entries
        .iter()
        .filter(|e| weather(&e.data, from_epoch_millis(0)).is_err())
        .count();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let rows = table_rows(&clients.dynamodb, &WEATHER_TABLES, false).await;
        // Counted by listing: one request, where reading them was one per dead letter.
        let dead = clients
            .bucket(bucket)
            .objects_under(CONSUMER_DEAD_LETTER_PREFIX)
            .await
            .unwrap()
            .len();
        if rows == expected && dead >= malformed {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer did not catch up: {} of {} rows, {dead} of {malformed} dead letters",
            rows.len(),
            expected.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The URL of the stack's on-failure queue, for a stack running in another process.
pub async fn failure_queue_url(clients: &Clients, config: &StackConfig) -> String {
    clients
        .sqs
        .get_queue_url()
        .queue_name(&config.failure_queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Starts `streamlake up` on `endpoint` with `state_dir` and `args`, its log in
/// `state_dir/NAME.log`, and waits until it says it is up.
pub async fn start_up(
    binaries: &Binaries,
    endpoint: &str,
    state_dir: &Path,
    name: &str,
    args: &[&str],
) -> tokio::process::Child {
    start_up_at(binaries, endpoint, state_dir, name, args)
        .await
        .0
}

/// [`start_up`], with the endpoint `up` prints (its front: Direct PUT is answered there).
pub async fn start_up_at(
    binaries: &Binaries,
    endpoint: &str,
    state_dir: &Path,
    name: &str,
    args: &[&str],
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let log = std::fs::File::create(state_dir.join(format!("{name}.log"))).unwrap();
    let mut child = binaries
        .command("streamlake")
        .args(["up", "--endpoint", endpoint, "--state-dir"])
        .arg(state_dir)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("is up") {
                return true;
            }
        }
        false
    });
    assert!(ready.await.unwrap(), "streamlake up ({name}) did not start");
    let line = lines.next_line().await.unwrap().unwrap_or_default();
    let front = line
        .trim()
        .strip_prefix("endpoint")
        .map(|e| e.trim().to_owned())
        .unwrap_or_else(|| panic!("streamlake up ({name}) printed {line:?}, not its endpoint"));
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, front)
}

/// Writes `records` (sequence number, data) through the consumer's library, `batch` at a
/// time with `concurrency` requests in flight, as the Lambda does; every row must be
/// written. Returns the batches' outcomes added up.
pub async fn write_batches(
    clients: &Clients,
    tables: &consumer_lambda::Tables,
    records: &[(String, Vec<u8>)],
    batch: usize,
    concurrency: usize,
) -> consumer_lambda::WriteOutcome {
    use consumer_lambda::{InputRecord, WriteOptions, apply, plan_batch};

    let mut total = consumer_lambda::WriteOutcome::default();
    for batch in records.chunks(batch) {
        let plan = plan_batch(
            batch.iter().map(|(seq, data)| InputRecord {
                sequence_number: seq,
                partition_key: "k",
                data,
                arrival: chrono::Utc::now(),
            }),
            tables,
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let options = WriteOptions::new(concurrency, deadline);
        let outcome = apply(&clients.dynamodb, &plan, options).await;
        assert!(outcome.failed.is_empty(), "{outcome:?}");
        total.written += outcome.written;
        total.stale += outcome.stale;
        total.requests += outcome.requests;
        total.reads += outcome.reads;
    }
    total
}
