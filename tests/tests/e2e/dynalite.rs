//! The consumer's writes against a DynamoDB that does not return the old item when a
//! condition fails (dynalite), beside moto (which does): the same tables, whatever the
//! order and the replays.

use consumer_lambda::{Tables, WriteOutcome};
use streamlake::clients::Clients;
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::node_servers::{NodeServer, NodeServerKind};
use streamlake::harness::resources::{TableSpec, ensure_table};
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_e2e::{WEATHER_TABLES, expected_rows, table_rows};

use crate::support::{run_logs, write_batches};

/// (sequence number, data) in the order written.
type Stream = Vec<(String, Vec<u8>)>;

async fn write(clients: &Clients, records: &[(String, Vec<u8>)], tables: &Tables) -> WriteOutcome {
    write_batches(clients, tables, records, 100, 16).await
}

/// The records, numbered from `first`, with every value changed by `shift` and only the
/// datatypes in `only` (all when empty).
fn numbered(first: u64, shift: f64, only: &[&str]) -> Stream {
    WeatherGenerator::new(GeneratorConfig::default())
        .take(300)
        .filter_map(|r| {
            let mut v: serde_json::Value = serde_json::from_slice(&r.data).ok()?;
            let datatype = v["datatype"].as_str()?.to_owned();
            if !only.is_empty() && !only.contains(&datatype.as_str()) {
                return None;
            }
            v["value"] = (v["value"].as_f64()? + shift).into();
            Some(serde_json::to_vec(&v).unwrap())
        })
        .enumerate()
        .map(|(i, data)| ((first + i as u64).to_string(), data))
        .collect()
}

/// Writes, replays and out-of-order writes; returns the reads each server needed.
async fn scenario(endpoint: &str) -> (usize, usize) {
    let clients = Clients::connect(endpoint, true).await;
    let routing = Tables::new(Dataset::weather(), "").unwrap();
    for table in TableSpec::of(routing.dynamodb()) {
        ensure_table(&clients, &table).await.unwrap();
    }
    let original = numbered(1_000_000, 0.0, &[]);
    let newest_tmax = numbered(3_000_000, 10.0, &["TMAX"]);
    let between = numbered(2_000_000, 5.0, &[]);

    let first = write(&clients, &original, &routing).await;
    assert_eq!(first.stale, 0);
    // A replay changes nothing.
    let replay = write(&clients, &original, &routing).await;
    assert_eq!((replay.written, replay.stale), (0, first.written));
    write(&clients, &newest_tmax, &routing).await;
    // Older than the stored TMAX, newer than everything else: the rest is written.
    let late = write(&clients, &between, &routing).await;
    assert!(late.written > 0);

    let mut in_order: Stream = [original, between, newest_tmax].concat();
    in_order.sort_by_key(|(seq, _)| seq.parse::<u64>().unwrap());
    assert_eq!(
        table_rows(&clients.dynamodb, &WEATHER_TABLES, false).await,
        expected_rows(in_order.iter().map(|(_, d)| d.as_slice())),
        "{endpoint}: each attribute holds its newest value"
    );
    (replay.reads, late.reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_old_item_the_consumer_reads_the_row_and_the_tables_are_the_same() {
    let dynalite = NodeServer::start(NodeServerKind::Dynalite, &default_state_dir(), &run_logs())
        .await
        .unwrap();
    let mut moto = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let (moto_reads, _) = scenario(moto.endpoint()).await;
    assert_eq!(
        moto_reads, 0,
        "moto returns the item with the failed condition"
    );
    let (replay_reads, late_reads) = scenario(dynalite.endpoint()).await;
    assert!(replay_reads > 0 && late_reads > 0, "dynalite needs a read");
    moto.stop().await;
}
