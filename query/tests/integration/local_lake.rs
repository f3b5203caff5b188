//! `partitions` and `scan` over a local folder holding the three object formats.

use crate::common;

use query::{ScanOptions, scan, summarize_partitions};
use streamlake_core::lake::{DateRange, Lake, LakeLocation};

#[tokio::test]
async fn partitions_and_scans_read_every_format_and_only_the_range() {
    let (root, observations) = common::lake("scan", 600, common::Layout::Mixed);
    let total = observations.len();
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
        filters: vec![
            query::Filter::parse(
                "datatype=prcp",
                &streamlake_core::dataset::Dataset::weather(),
            )
            .unwrap(),
        ],
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

#[tokio::test]
async fn partitions_count_parquet_rows_from_the_footer_alone() {
    let (root, observations) = common::lake(
        "footers",
        600,
        common::Layout::Only(streamlake_core::layout::OutputFormat::Parquet),
    );
    // No whole object may be read: only the footers' ranges are.
    let lake = Lake::open(LakeLocation::Local(root.clone()))
        .await
        .with_max_object_bytes(8);
    let all = summarize_partitions(&lake, DateRange::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|p| p.records).sum::<u64>() as usize,
        observations.len()
    );
    // The same limit refuses a whole read, naming the object.
    let objects = lake.objects(&all[0].partition).await.unwrap();
    let error = lake.read(&objects[0].key).await.unwrap_err().to_string();
    assert!(error.starts_with(&objects[0].key), "{error}");
    std::fs::remove_dir_all(root).unwrap();
}
