//! The lake's NDJSON decoder against arrow-json's, in the same run.
//!
//! `cargo bench -p streamlake-core --features formats --bench ndjson` decodes the
//! transform's own lines (generated, ~10 MB) with [`NdjsonDecoder`] and with arrow-json's
//! reader, for every column and for two (what `GROUP BY datatype ... avg(value)` reads),
//! on one thread; prints MB/s, best of 20, and the ratio.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use streamlake_core::columnar::arrow_schema;
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::ndjson::NdjsonDecoder;
use streamlake_core::time::from_epoch_millis;

const LINES: usize = 50_000;
const RUNS: usize = 20;
const BATCH: usize = 8192;

/// MB/s of `body`, best of [`RUNS`].
fn throughput(body: &[u8], decode: impl Fn(&[u8]) -> Vec<RecordBatch>) -> f64 {
    let best = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let batches = decode(body);
            assert_eq!(
                batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                LINES
            );
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    body.len() as f64 / 1e6 / best
}

fn arrow_json(schema: SchemaRef) -> impl Fn(&[u8]) -> Vec<RecordBatch> {
    move |body| {
        arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(BATCH)
            .build(body)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

fn ours(schema: SchemaRef) -> impl Fn(&[u8]) -> Vec<RecordBatch> {
    let decoder = NdjsonDecoder::new(schema, BATCH).unwrap();
    move |body| decoder.decode(body).unwrap()
}

fn main() {
    let dataset = Dataset::weather();
    let mut body = Vec::new();
    for record in WeatherGenerator::new(GeneratorConfig::default()).take(LINES) {
        dataset
            .normalize_into(
                &record.data,
                from_epoch_millis(1_633_046_400_250),
                &mut body,
            )
            .unwrap();
    }
    let two: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("datatype", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    println!(
        "ndjson decode: {LINES} lines, {:.1} MB, one thread, best of {RUNS}",
        body.len() as f64 / 1e6
    );
    for (columns, schema) in [
        ("all columns", arrow_schema(&dataset)),
        ("two columns", two),
    ] {
        let theirs = throughput(&body, arrow_json(schema.clone()));
        let ours = throughput(&body, ours(schema));
        println!(
            "  {columns}: streamlake {ours:.0} MB/s, arrow-json {theirs:.0} MB/s: {:.2}x",
            ours / theirs
        );
    }
}
