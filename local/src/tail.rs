//! `streamlake tail`: follow a stream, every shard at once, and print its records as they
//! were produced, pretty JSON with where each came from, or one line each (NDJSON).
//!
//! `--where` filters compare the columns of the record as the dataset normalizes it, as
//! `query scan` does; a record that does not fit the dataset matches no filter (and is
//! printed when there is none, since it is in the stream all the same).

use std::io::Write;

use aws_sdk_kinesis::Client;
use query::filter::Filter;
use serde_json::{Map, Value};
use streamlake_core::dataset::Dataset;
use tokio::sync::mpsc;

use crate::emulated::kinesis_source::{ShardReader, StartingPosition, StreamRecord, list_shards};
use crate::error::StackError;

/// How records are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TailFormat {
    /// A header line (shard, sequence number, partition key, arrival) and the record as
    /// indented JSON (or as text, when it is not JSON).
    #[default]
    Pretty,
    /// The record's bytes as produced, one line each (a trailing newline is not doubled).
    Ndjson,
}

/// What to follow and print.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// The stream.
    pub stream: String,
    /// Where each shard is read from.
    pub from: StartingPosition,
    /// The records' shape, for the filters.
    pub dataset: std::sync::Arc<Dataset>,
    /// Print only records matching every filter.
    pub filters: Vec<Filter>,
    /// Stop after this many records printed.
    pub count: Option<usize>,
    /// How records are printed.
    pub format: TailFormat,
}

/// What a tail read and printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailSummary {
    /// Records read from the stream.
    pub read: usize,
    /// Records printed.
    pub printed: usize,
}

/// Follows the stream until `options.count` records are printed or `stop` completes;
/// writes them to `out`.
pub async fn tail(
    client: &Client,
    options: &TailOptions,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<TailSummary, StackError> {
    let (sender, mut records) = mpsc::channel::<Result<Vec<StreamRecord>, StackError>>(16);
    let mut readers = tokio::task::JoinSet::new();
    for shard in list_shards(client, &options.stream).await? {
        let mut reader = ShardReader::new(
            client.clone(),
            &options.stream,
            &shard,
            options.from.clone(),
        );
        let sender = sender.clone();
        readers.spawn(async move {
            while !reader.is_closed() {
                let read = reader.read(1_000).await;
                let idle = matches!(&read, Ok(r) if r.is_empty());
                if sender.send(read).await.is_err() {
                    return;
                }
                if idle {
                    // GetRecords: at most five calls a second per shard.
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        });
    }
    drop(sender);
    let mut summary = TailSummary::default();
    let mut stop = std::pin::pin!(stop);
    while options.count.is_none_or(|n| summary.printed < n) {
        let batch = tokio::select! {
            () = &mut stop => break,
            batch = records.recv() => match batch {
                Some(batch) => batch?,
                None => break,
            },
        };
        for record in batch {
            summary.read += 1;
            if !matches(&options.dataset, &options.filters, &record) {
                continue;
            }
            print(out, options.format, &record).map_err(StackError::io("writing a record"))?;
            summary.printed += 1;
            if options.count.is_some_and(|n| summary.printed >= n) {
                break;
            }
        }
        out.flush().map_err(StackError::io("writing a record"))?;
    }
    readers.abort_all();
    Ok(summary)
}

fn matches(dataset: &Dataset, filters: &[Filter], record: &StreamRecord) -> bool {
    if filters.is_empty() {
        return true;
    }
    let mut line = Vec::new();
    if dataset
        .normalize_into(&record.data, record.arrival, &mut line)
        .is_err()
    {
        return false;
    }
    let Ok(fields) = serde_json::from_slice::<Map<String, Value>>(&line) else {
        return false;
    };
    filters.iter().all(|f| f.matches(&fields))
}

fn print(out: &mut impl Write, format: TailFormat, record: &StreamRecord) -> std::io::Result<()> {
    let data = record.data.strip_suffix(b"\n").unwrap_or(&record.data);
    match format {
        TailFormat::Ndjson => {
            out.write_all(data)?;
            out.write_all(b"\n")
        }
        TailFormat::Pretty => {
            writeln!(
                out,
                "# {} {} key={} arrived {}",
                record.shard_id,
                record.sequence_number,
                record.partition_key,
                streamlake_core::time::format_rfc3339(&record.arrival)
            )?;
            match serde_json::from_slice::<Value>(data) {
                Ok(json) => {
                    serde_json::to_writer_pretty(&mut *out, &json)?;
                    out.write_all(b"\n")
                }
                Err(_) => writeln!(out, "{}", String::from_utf8_lossy(data)),
            }
        }
    }
}
