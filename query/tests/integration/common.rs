#![allow(dead_code)] // Each test file uses part of it.
//! A generated lake in a local folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use streamlake_core::PartitionKeys;
use streamlake_core::columnar::ndjson_to_parquet;
use streamlake_core::dataset::Dataset;
use streamlake_core::formats::gzip;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::OutputFormat;
use streamlake_core::time::from_epoch_millis;

/// How the objects of each partition are written.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// Two objects per partition in one format.
    Only(OutputFormat),
    /// Two objects per partition: NDJSON, then GZIP or Parquet by turns.
    Mixed,
}

/// The columns of one weather record in the lake that the tests check.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub stationid: String,
    pub datatype: String,
    pub value: f64,
    pub observed_at: DateTime<Utc>,
    pub date: NaiveDate,
}

/// A lake of `count` generated observations in a fresh folder named `name`; returns its
/// root and the observations.
pub fn lake(name: &str, count: usize, layout: Layout) -> (PathBuf, Vec<Observation>) {
    let root = std::env::temp_dir().join(format!("streamlake-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dataset = Dataset::weather();
    let mut observations = Vec::new();
    let mut by_day: BTreeMap<PartitionKeys, Vec<Vec<u8>>> = BTreeMap::new();
    for r in WeatherGenerator::new(GeneratorConfig::default()).take(count) {
        let o = dataset
            .normalize(&r.data, from_epoch_millis(1_633_046_400_000))
            .unwrap();
        let mut line = Vec::new();
        o.write_ndjson(&dataset, &mut line);
        by_day.entry(o.partition).or_default().push(line);
        let value = |column| o.get(&dataset, column).unwrap();
        observations.push(Observation {
            stationid: value("stationid").as_str().unwrap().to_owned(),
            datatype: value("datatype").as_str().unwrap().to_owned(),
            value: value("value").as_f64().unwrap(),
            observed_at: value("observed_at").as_timestamp().unwrap(),
            date: value("date").as_date().unwrap(),
        });
    }
    for (i, (day, lines)) in by_day.iter().enumerate() {
        let dir = root.join(day.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let (first, second) = lines.split_at(lines.len() / 2);
        for (j, part) in [first, second].into_iter().enumerate() {
            let format = match layout {
                Layout::Only(f) => f,
                Layout::Mixed if j == 0 => OutputFormat::Ndjson,
                Layout::Mixed if i % 2 == 0 => OutputFormat::Parquet,
                Layout::Mixed => OutputFormat::NdjsonGzip,
            };
            let body = match format {
                OutputFormat::Ndjson => part.concat(),
                OutputFormat::NdjsonGzip => gzip(&part.concat()),
                OutputFormat::Parquet => {
                    let refs: Vec<&[u8]> = part.iter().map(Vec::as_slice).collect();
                    ndjson_to_parquet(&dataset, &refs).unwrap().parquet.unwrap()
                }
            };
            let name = format!(
                "streamlake-delivery-1-2021-10-01-00-00-0{j}-x{}",
                format.extension()
            );
            std::fs::write(dir.join(name), body).unwrap();
        }
    }
    (root, observations)
}
