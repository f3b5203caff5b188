//! `query sql --chart`: a PNG of the requested size, one series per value column or per
//! value of `--series`, lines over dates and bars over text.

use crate::common;

use query::chart::{ChartOptions, draw_png};
use query::sql::LakeSession;
use streamlake_core::lake::{Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;

/// Width and height from a PNG's header (the IHDR chunk follows the 8-byte signature).
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test]
async fn a_known_query_charts_as_a_png_of_the_requested_size() {
    let (root, observations) =
        common::lake("chart", 600, common::Layout::Only(OutputFormat::Parquet));
    let session = LakeSession::new(
        Lake::open(LakeLocation::Local(root.clone())).await,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .await
    .unwrap();

    // A daily TMAX average per station: a line per station over dates.
    let batches = session
        .run(
            "SELECT \"date\", stationid, avg(value) AS tmax FROM weather \
             WHERE datatype = 'TMAX' GROUP BY \"date\", stationid ORDER BY \"date\"",
        )
        .await
        .unwrap();
    let png = root.join("tmax.png");
    let options = ChartOptions {
        width: 800,
        height: 450,
        series: Some("stationid".into()),
        title: Some("Daily TMAX".into()),
    };
    let drawn = draw_png(&batches, &png, &options).unwrap();
    assert_eq!(png_size(&png), (800, 450));
    let mut stations: Vec<String> = observations
        .iter()
        .filter(|o| o.datatype == "TMAX")
        .map(|o| o.stationid.to_string())
        .collect();
    stations.sort();
    stations.dedup();
    assert_eq!(drawn.series, stations);
    assert_eq!(
        drawn.points,
        batches.iter().map(|b| b.num_rows()).sum::<usize>()
    );

    // Counts per datatype: bars over text, one series per value column.
    let batches = session
        .run("SELECT datatype, count(*) AS n, avg(value) AS average FROM weather GROUP BY datatype")
        .await
        .unwrap();
    let png = root.join("counts.png");
    let drawn = draw_png(&batches, &png, &ChartOptions::default()).unwrap();
    assert_eq!(png_size(&png), (1000, 600));
    assert_eq!(drawn.series, ["average", "n"]);

    // A result that is not a chart says why.
    let batches = session.run("SELECT datatype FROM weather").await.unwrap();
    let error = draw_png(&batches, &root.join("none.png"), &ChartOptions::default()).unwrap_err();
    assert!(error.to_string().contains("value column"), "{error}");
    std::fs::remove_dir_all(root).unwrap();
}
