//! The local event source mapping's failure handling, with a purpose-built function
//! (`flaky_lambda`) that fails on records containing `poison`, over real moto and the
//! Lambda Runtime API.

use std::sync::Arc;
use std::time::Duration;

use crate::support::run_logs;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::clients::Clients;
use streamlake::emulated::esm::{
    EventSourceMapping, FailureRecord, MappingConfig, MappingStats, OnFailureDestination,
};
use streamlake::emulated::lambda_host::{FunctionSpec, LambdaFunction};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::resources::{self, Resources};
use streamlake_core::kpl::Aggregator;
use streamlake_e2e::{before, drain_queue};

struct Run {
    /// (partition key, sequence number) of every record the function completed, in order.
    completed: Vec<(String, String)>,
    /// Sequence numbers of the records produced, in order.
    produced: Vec<String>,
    /// What the on-failure queue received.
    failures: Vec<FailureRecord>,
    stats: MappingStats,
}

/// Produces `records` (partition key, data) to a one-shard stream and runs the mapping
/// with `flaky_lambda` in `mode` until every record is settled.
async fn run(
    mode: &str,
    records: Vec<(String, String)>,
    configure: impl FnOnce(&mut MappingConfig),
) -> Run {
    let entries = records
        .into_iter()
        .map(|(partition_key, data)| Entry {
            partition_key,
            data: data.into_bytes(),
        })
        .collect();
    run_entries(mode, entries, configure).await
}

/// A one-shard stream holding the records, and `flaky_lambda` in `mode` logging to `log`.
struct Setup {
    emulator: Emulator,
    clients: Clients,
    provisioned: resources::Provisioned,
    function: Arc<LambdaFunction>,
    log: std::path::PathBuf,
}

/// Produces `entries` to a new one-shard stream `flaky` and starts `flaky_lambda` in
/// `mode`.
async fn setup(mode: &str, entries: Vec<Entry>) -> Setup {
    let state_dir = default_state_dir();
    let emulator = Emulator::start(&state_dir, &run_logs()).await.unwrap();
    let clients = Clients::connect(emulator.endpoint(), true).await;
    let provisioned = resources::ensure(
        &clients,
        &Resources {
            stream: "flaky".into(),
            shards: 1,
            bucket: "flaky".into(),
            tables: Vec::new(),
            failure_queue: "flaky-failures".into(),
        },
    )
    .await
    .unwrap();
    let count = entries.len() as u64;
    let producer = Producer::new(clients.kinesis.clone(), ProducerConfig::new("flaky"));
    assert_eq!(producer.send(entries, |_| {}).await.unwrap().sent, count);

    let log =
        std::env::temp_dir().join(format!("flaky-{}-{}.log", std::process::id(), uuid_like()));
    let function = Arc::new(
        LambdaFunction::start(FunctionSpec {
            name: "flaky".into(),
            binary: env!("CARGO_BIN_EXE_flaky_lambda").into(),
            env: vec![
                ("FLAKY_LOG".into(), log.display().to_string()),
                ("FLAKY_MODE".into(), mode.into()),
                ("FLAKY_FINAL_FAILURES".into(), "5".into()),
            ],
            // A hung function is stopped at its timeout: keep that short.
            timeout: Duration::from_secs(if mode == "hang" { 2 } else { 30 }),
            memory_mb: 128,
            log_path: std::env::temp_dir().join(format!("flaky-{}.stderr", std::process::id())),
            region: clients.region(),
            faults: None,
        })
        .await
        .unwrap(),
    );
    Setup {
        emulator,
        clients,
        provisioned,
        function,
        log,
    }
}

impl Setup {
    /// The mapping's configuration for the stream and the function.
    fn config(&self) -> MappingConfig {
        MappingConfig::new(
            "flaky",
            &self.provisioned.stream_arn,
            &self.clients.region(),
            "arn:aws:iam::123456789012:role/flaky",
        )
    }

    /// The records the `window` mode's final invocations counted.
    fn windowed(&self) -> u64 {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("window "))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    }

    /// Removes the logs, stops the function and the emulator.
    async fn finish(mut self) {
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(format!("{}.finals", self.log.display()));
        Arc::into_inner(self.function).unwrap().stop().await;
        self.emulator.stop().await;
    }
}

/// [`run`] with the Kinesis records given as they are (KPL aggregates, for example).
async fn run_entries(
    mode: &str,
    entries: Vec<Entry>,
    configure: impl FnOnce(&mut MappingConfig),
) -> Run {
    let count = entries.len() as u64;
    let setup = setup(mode, entries).await;
    let (clients, provisioned) = (&setup.clients, &setup.provisioned);
    let mut config = setup.config();
    config.on_failure = Some(OnFailureDestination {
        sqs: clients.sqs.clone(),
        queue_url: provisioned.failure_queue_url.clone(),
    });
    configure(&mut config);
    let mapping = EventSourceMapping::start(config, clients, setup.function.clone())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(mapping.stats().records_read == count && mapping.stats().settled()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {:?}",
            mapping.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // In `window` mode, also until the windows' final invocations logged every record.
    while mode == "window" && setup.windowed() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "windows not closed: {} of {count} records",
            setup.windowed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = mapping.stats();
    mapping.stop().await;

    let completed = std::fs::read_to_string(&setup.log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (k, s) = l.split_once(' ').unwrap();
            (k.to_owned(), s.to_owned())
        })
        .collect();
    let failures = drain_queue(&clients.sqs, &provisioned.failure_queue_url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let produced = read_sequence_numbers(clients).await;
    setup.finish().await;
    Run {
        completed,
        produced,
        failures,
        stats,
    }
}

fn uuid_like() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The sequence numbers of the stream, in order.
async fn read_sequence_numbers(clients: &Clients) -> Vec<String> {
    let shards = streamlake::emulated::kinesis_source::list_shards(&clients.kinesis, "flaky")
        .await
        .unwrap();
    let mut reader = streamlake::emulated::kinesis_source::ShardReader::new(
        clients.kinesis.clone(),
        "flaky",
        &shards[0],
        streamlake::emulated::kinesis_source::StartingPosition::TrimHorizon,
    );
    let mut out = Vec::new();
    loop {
        let records = reader.read(10_000).await.unwrap();
        if records.is_empty() {
            return out;
        }
        out.extend(records.into_iter().map(|r| r.sequence_number));
    }
}

/// 30 records of one key; the 14th is poison.
fn records_with_poison() -> Vec<(String, String)> {
    (0..30)
        .map(|i| {
            let data = if i == 13 {
                format!("record {i} poison")
            } else {
                format!("record {i}")
            };
            ("key".to_owned(), data)
        })
        .collect()
}

fn completed_seqs(run: &Run) -> Vec<String> {
    run.completed.iter().map(|(_, s)| s.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bisect_isolates_the_poison_record() {
    let run = run("error", records_with_poison(), |c| {
        c.settings.batch_size = 10;
        c.settings.bisect_on_error = true;
        c.settings.max_retries = Some(1);
    })
    .await;
    let poison = &run.produced[13];
    let mut expected = run.produced.clone();
    expected.remove(13);
    assert_eq!(
        completed_seqs(&run),
        expected,
        "every other record, in order"
    );
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(
        (
            info.batch_size,
            &info.start_sequence_number,
            &info.end_sequence_number
        ),
        (1, poison, poison)
    );
    assert_eq!(
        run.failures[0].request_context.condition,
        "RetryAttemptsExhausted"
    );
    assert_eq!((run.stats.discarded, run.stats.on_failure_records), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_bisect_the_poison_batch_is_skipped_and_reported() {
    let run = run("error", records_with_poison(), |c| {
        c.settings.batch_size = 10;
        c.settings.bisect_on_error = false;
        c.settings.max_retries = Some(2);
    })
    .await;
    // Batches are records 0-9, 10-19, 20-29: the second one is given up on.
    let expected: Vec<String> = run.produced[..10]
        .iter()
        .chain(&run.produced[20..])
        .cloned()
        .collect();
    assert_eq!(completed_seqs(&run), expected);
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(info.batch_size, 10);
    assert_eq!(info.start_sequence_number, run.produced[10]);
    assert_eq!(info.end_sequence_number, run.produced[19]);
    assert_eq!(
        run.failures[0].request_context.approximate_invoke_count, 3,
        "first try and two retries"
    );
    assert_eq!(run.stats.discarded, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_batch_response_retries_from_the_reported_record() {
    let run = run("partial", records_with_poison(), |c| {
        c.settings.batch_size = 10;
        c.settings.max_retries = Some(1);
    })
    .await;
    // Batch 10-19 reports record 13: 10-12 succeed; 13-19 are retried once, then skipped.
    let expected: Vec<String> = run.produced[..13]
        .iter()
        .chain(&run.produced[20..])
        .cloned()
        .collect();
    assert_eq!(completed_seqs(&run), expected);
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(info.start_sequence_number, run.produced[13]);
    assert_eq!(info.end_sequence_number, run.produced[19]);
    assert_eq!(info.batch_size, 7);
}

/// `records` packed `per` user records to a KPL aggregate.
fn aggregated(records: Vec<(String, String)>, per: usize) -> Vec<Entry> {
    records
        .chunks(per)
        .map(|chunk| {
            let mut aggregator = Aggregator::default();
            for (key, data) in chunk {
                assert!(aggregator.try_add(key, data.as_bytes()));
            }
            let aggregate = aggregator.finish().unwrap();
            Entry {
                partition_key: aggregate.partition_key,
                data: aggregate.data,
            }
        })
        .collect()
}

/// The position of user record `user` of [`records_with_poison`] packed 3 per aggregate.
fn user_position(run: &Run, user: usize) -> String {
    format!("{}:{}", run.produced[user / 3], user % 3)
}

/// A poison user record inside a KPL aggregate: bisect isolates its Kinesis record (the
/// unit Lambda splits, retries and reports), and every user record of the other
/// aggregates completes once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bisect_isolates_the_aggregate_holding_a_poison_user_record() {
    let run = run_entries("error", aggregated(records_with_poison(), 3), |c| {
        c.settings.batch_size = 4;
        c.settings.bisect_on_error = true;
        c.settings.max_retries = Some(1);
    })
    .await;
    // Ten aggregates of three; user record 13 (the poison) is in aggregate 4.
    assert_eq!(run.produced.len(), 10);
    let expected: Vec<String> = (0..30)
        .filter(|u| u / 3 != 4)
        .map(|u| user_position(&run, u))
        .collect();
    assert_eq!(completed_seqs(&run), expected);
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(info.batch_size, 1);
    assert_eq!(info.start_sequence_number, run.produced[4]);
    assert_eq!(info.end_sequence_number, run.produced[4]);
    assert_eq!(run.stats.discarded, 1);
}

/// A partial batch response for a poison user record names its Kinesis record: the user
/// records before the poison (its aggregate's first among them) complete, the retry starts
/// at the aggregate and completes that first user record again (a consumer's per-user-record
/// versions make it a no-op), and what is given up on is reported by Kinesis records.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_batch_response_names_the_aggregate_of_a_poison_user_record() {
    let run = run_entries("partial", aggregated(records_with_poison(), 3), |c| {
        c.settings.batch_size = 10;
        c.settings.max_retries = Some(1);
    })
    .await;
    let expected: Vec<String> = (0..13)
        .chain([12])
        .map(|u| user_position(&run, u))
        .collect();
    assert_eq!(completed_seqs(&run), expected);
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(info.start_sequence_number, run.produced[4]);
    assert_eq!(info.end_sequence_number, run.produced[9]);
    assert_eq!(info.batch_size, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallelization_keeps_each_partition_keys_order() {
    let records: Vec<(String, String)> = (0..200)
        .map(|i| (format!("key-{}", i % 7), format!("record {i}")))
        .collect();
    let run = run("error", records, |c| {
        c.settings.batch_size = 8;
        c.settings.parallelization_factor = 4;
    })
    .await;
    assert_eq!(run.completed.len(), 200);
    for key in 0..7 {
        let seqs: Vec<&String> = run
            .completed
            .iter()
            .filter(|(k, _)| *k == format!("key-{key}"))
            .map(|(_, s)| s)
            .collect();
        assert!(
            seqs.windows(2).all(|w| before(w[0], w[1])),
            "key-{key} out of order"
        );
    }
    assert!(run.failures.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_partial_batch_response_fails_the_whole_batch() {
    // The function reports `{"itemIdentifier": 123}` for the poison record: Lambda cannot
    // read it, so the whole batch failed and is retried, then given up on.
    let run = run("malformed", records_with_poison(), |c| {
        c.settings.batch_size = 10;
        c.settings.bisect_on_error = false;
        c.settings.max_retries = Some(1);
    })
    .await;
    // Records 10-12 were handled on both attempts (at least once, as on AWS).
    let expected: Vec<String> = run.produced[..13]
        .iter()
        .chain(&run.produced[10..13])
        .chain(&run.produced[20..])
        .cloned()
        .collect();
    assert_eq!(completed_seqs(&run), expected);
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!(
        (
            info.batch_size,
            &info.start_sequence_number,
            &info.end_sequence_number
        ),
        (10, &run.produced[10], &run.produced[19])
    );
    assert_eq!(run.failures[0].request_context.approximate_invoke_count, 2);
    assert_eq!(run.stats.discarded, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_function_is_stopped_at_its_timeout_and_the_batch_bisected() {
    let run = run("hang", records_with_poison(), |c| {
        c.settings.batch_size = 10;
        c.settings.bisect_on_error = true;
        c.settings.max_retries = Some(0);
    })
    .await;
    let poison = &run.produced[13];
    let mut expected = run.produced.clone();
    expected.remove(13);
    assert_eq!(
        completed_seqs(&run),
        expected,
        "every other record, in order"
    );
    assert_eq!(run.failures.len(), 1);
    let info = &run.failures[0].kinesis_batch_info;
    assert_eq!((info.batch_size, &info.start_sequence_number), (1, poison));
    assert_eq!((run.stats.discarded, run.stats.on_failure_records), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_final_invocation_is_retried_until_it_succeeds() {
    let records = (0..30).map(|i| ("key".to_owned(), format!("record {i}")));
    let run = run("window", records.collect(), |c| {
        c.settings.batch_size = 10;
        c.settings.tumbling_window = Some(Duration::from_secs(1));
        // Fewer retries than the final invocation fails: they do not apply to it.
        c.settings.max_retries = Some(1);
    })
    .await;
    let windows: Vec<u64> = run
        .completed
        .iter()
        .filter(|(k, _)| k == "window")
        .map(|(_, n)| n.parse().unwrap())
        .collect();
    assert_eq!(windows.iter().sum::<u64>(), 30, "{windows:?}");
    assert!(run.stats.failed_invocations >= 5, "{:?}", run.stats);
    assert_eq!(run.failures.len(), 0);
}

/// Stopped while a tumbling window is open, the mapping has not checkpointed the window's
/// records: the next start reads them again, and the window's aggregates are whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_cut_by_a_stop_is_read_again_at_the_next_start() {
    let entries: Vec<Entry> = (0..30)
        .map(|i| Entry {
            partition_key: "key".into(),
            data: format!("record {i}").into_bytes(),
        })
        .collect();
    let setup = setup("window", entries).await;
    let checkpoints = streamlake::emulated::checkpoint::CheckpointStore::open(
        &std::env::temp_dir().join(format!("flaky-cut-{}-{}", std::process::id(), uuid_like())),
        &setup.provisioned.stream_arn,
    )
    .unwrap();
    let config = |window: Duration| {
        let mut config = setup.config();
        config.settings.batch_size = 10;
        config.settings.tumbling_window = Some(window);
        config.checkpoints = Some(checkpoints.clone());
        config
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let start =
        |window| EventSourceMapping::start(config(window), &setup.clients, setup.function.clone());

    // A window longer than the test: every record done, none of them checkpointed. (Its
    // final invocation would fail 5 times: it never comes.)
    let mapping = start(Duration::from_secs(3600)).await.unwrap();
    while !(mapping.stats().records_read == 30 && mapping.stats().settled()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            mapping.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mapping.stop().await;
    assert_eq!(setup.windowed(), 0, "the window never closed");
    assert_eq!(checkpoints.get("flaky", "shardId-000000000000"), None);

    // The next start reads the window's records again, and its windows close.
    let mapping = start(Duration::from_secs(1)).await.unwrap();
    while setup.windowed() < 30 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of 30: {:?}",
            setup.windowed(),
            mapping.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mapping.stats().records_read, 30);
    mapping.stop().await;
    assert_eq!(setup.windowed(), 30);
    setup.finish().await;
}
