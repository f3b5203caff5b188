//! The live dashboard `streamlake up` serves on loopback: one page of plain HTML and
//! JavaScript (no build step) that polls `/api/status` ([`crate::status`]) every second
//! and shows the stack's counters, throughput per stage over time, checkpoints per shard,
//! the lake's partitions and error folders, rows per DynamoDB table, the latest position
//! of each partition key (`/positions.svg`, drawn by [`crate::positions`]), the
//! consumer's latest dead letters with their reasons, and the last records delivered.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The page.
const PAGE: &str = include_str!("page.html");

/// Serves the page.
pub async fn page() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}
