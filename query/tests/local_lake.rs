//! `partitions` and `scan` over a local folder holding the three object formats.

use std::path::PathBuf;

use query::{ScanOptions, scan, summarize_partitions};
use streamlake_core::columnar::ndjson_to_parquet;
use streamlake_core::formats::gzip;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::lake::{DateRange, Lake, LakeLocation};
use streamlake_core::time::from_epoch_millis;
use streamlake_core::{PartitionKeys, normalize};

/// A lake of 600 generated records over several days: NDJSON, GZIP and Parquet objects.
fn lake() -> (PathBuf, usize) {
    let root = std::env::temp_dir().join(format!("streamlake-query-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut by_day: std::collections::BTreeMap<PartitionKeys, Vec<Vec<u8>>> = Default::default();
    for r in WeatherGenerator::new(GeneratorConfig::default()).take(600) {
        let o = normalize(&r.data, from_epoch_millis(1_633_046_400_000)).unwrap();
        let mut line = Vec::new();
        o.write_ndjson(&mut line);
        by_day.entry(o.partition()).or_default().push(line);
    }
    for (i, (day, lines)) in by_day.iter().enumerate() {
        let dir = root.join(day.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let (first, second) = lines.split_at(lines.len() / 2);
        let body: Vec<u8> = first.concat();
        std::fs::write(dir.join("a"), &body).unwrap();
        let refs: Vec<&[u8]> = second.iter().map(Vec::as_slice).collect();
        match i % 2 {
            0 => std::fs::write(
                dir.join("b.parquet"),
                ndjson_to_parquet(&refs).unwrap().parquet.unwrap(),
            )
            .unwrap(),
            _ => std::fs::write(dir.join("b.gz"), gzip(&second.concat())).unwrap(),
        }
    }
    (root, 600)
}

#[tokio::test]
async fn partitions_and_scans_read_every_format_and_only_the_range() {
    let (root, total) = lake();
    let lake = Lake::open(LakeLocation::Local(root.clone())).await;

    let all = summarize_partitions(&lake, DateRange::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(all.iter().map(|p| p.records).sum::<u64>() as usize, total);
    assert!(all.iter().all(|p| p.objects == 2));

    let day = all[1].partition.date();
    let one_day = ScanOptions {
        range: DateRange {
            from: Some(day),
            to: Some(day),
        },
        filters: vec!["datatype=prcp".parse().unwrap()],
        limit: None,
    };
    let mut seen = Vec::new();
    let stats = scan(&lake, &one_day, |r| seen.push(r)).await.unwrap();
    assert_eq!(stats.partitions, 1);
    assert_eq!(stats.objects, 2, "only that day's objects are read");
    assert_eq!(stats.records, all[1].records);
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r["datatype"] == "PRCP" && r["date"] == day.to_string())
    );
    std::fs::remove_dir_all(root).unwrap();
}
