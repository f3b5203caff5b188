//! `streamlake dataset`: what a dataset file implies (`check`), a starting one from a
//! sample of records (`infer`), and the CloudFormation template that deploys it
//! (`template`).

use std::fmt::Write as _;
use std::path::Path;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use query::athena::TableNames;
use query::cloudformation::{self, SavedQuery, TemplateError};
use streamlake_core::dataset::dynamodb::{Key, KeySource, Versions};
use streamlake_core::dataset::{Dataset, Derived, Source};
use streamlake_core::lake::{Lake, LakeLocation};

use crate::error::StackError;

/// What a checked dataset implies: the lake's layout, the event time, the columns with
/// their Glue types and sources, and the tables `query` and Athena get.
pub fn describe(dataset: &Dataset) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "dataset {}: valid", dataset.name());
    let granularity = dataset.partition();
    let _ = writeln!(
        out,
        "  lake       s3://BUCKET/{}{}/ (stored beside it: {}_dataset.toml)",
        dataset.prefix(),
        granularity
            .columns()
            .iter()
            .map(|c| format!("{c}=.."))
            .collect::<Vec<_>>()
            .join("/"),
        dataset.prefix()
    );
    let _ = match dataset.event_time() {
        Some(event) => writeln!(
            out,
            "  partition  by the event time in {} ({}), UTC {}",
            event.path.join("."),
            event.format.as_setting(),
            granularity.as_str()
        ),
        None => writeln!(
            out,
            "  partition  by the arrival time in the stream, UTC {}",
            granularity.as_str()
        ),
    };
    let _ = writeln!(
        out,
        "  unknown    fields not listed are {}",
        match dataset.unknown_fields() {
            streamlake_core::dataset::UnknownFields::Drop => "dropped",
            streamlake_core::dataset::UnknownFields::Reject => "refused (the record fails)",
        }
    );
    if let Some(key) = dataset.partition_key() {
        let _ = writeln!(out, "  producer   keys Kinesis records by {key}");
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["column", "type", "Glue type", "from", "null"]);
    for column in dataset.columns() {
        let from = match &column.source {
            Source::Read(read) => read.dotted(),
            Source::Derived(Derived::EventTime) => "(event time)".to_owned(),
            Source::Derived(Derived::EventDate) => "(event time's UTC day)".to_owned(),
            Source::Derived(Derived::ArrivalTime) => "(arrival time)".to_owned(),
        };
        let null = if column.nullable() { "yes" } else { "no" };
        table.add_row([
            column.name.as_str(),
            column.ty.as_str(),
            column.ty.glue_type(),
            &from,
            null,
        ]);
    }
    for partition in granularity.columns() {
        table.add_row([partition, "string", "string", "(partition)", "no"]);
    }
    let _ = writeln!(out, "{table}");
    let names = TableNames::of(dataset);
    let _ = writeln!(
        out,
        "tables: {} (the view to query), {} (the partition folders), {} (the compaction log)",
        names.view, names.raw, names.log
    );
    describe_dynamodb(&mut out, dataset);
    out
}

/// The consumer's tables: keys and what each item or row holds.
fn describe_dynamodb(out: &mut String, dataset: &Dataset) {
    let Some(dynamodb) = dataset.dynamodb() else {
        let _ = writeln!(
            out,
            "DynamoDB: none (no [dynamodb] section: no consumer is deployed or started)"
        );
        return;
    };
    let key_text = |k: &Key| format!("{} ({})", k.attribute, k.ty.as_str());
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["DynamoDB table", "partition key", "sort key", "holds"]);
    for t in &dynamodb.tables {
        let mut holds: Vec<String> = t.attributes.iter().map(|a| a.name.clone()).collect();
        if let Some(pivot) = t.pivot {
            let columns = dataset.columns();
            holds.push(format!(
                "<{}> = {}",
                columns[pivot.name].name, columns[pivot.value].name
            ));
        }
        let versions = match t.versions {
            Versions::Attribute => "versioned per attribute",
            Versions::Row => "versioned per row",
        };
        table.add_row([
            t.name.clone(),
            key_text(&t.partition_key),
            t.sort_key.as_ref().map(key_text).unwrap_or_default(),
            format!("{} ({versions})", holds.join(", ")),
        ]);
    }
    for s in &dynamodb.summaries {
        let pivot = s
            .pivot
            .map(|p| format!("<{}>", dataset.columns()[p.name].name));
        let mut holds: Vec<String> = s.count.iter().cloned().collect();
        holds.extend(pivot.iter().map(|p| format!("{p}_count")));
        holds.extend(s.measures.iter().map(|m| m.attribute_for(pivot.as_deref())));
        table.add_row([
            s.name.clone(),
            key_text(&s.partition_key),
            s.sort_key.as_ref().map(key_text).unwrap_or_default(),
            format!(
                "{} ({}each tumbling window added once)",
                holds.join(", "),
                match s.sort_key.as_ref().map(|k| k.source) {
                    Some(KeySource::WindowStart(w)) =>
                        format!("per {} of event time, ", w.as_str()),
                    _ => String::new(),
                }
            ),
        ]);
    }
    let _ = writeln!(out, "{table}");
    if let Some(p) = &dynamodb.position {
        let _ = writeln!(
            out,
            "positions: each {}'s newest item of {} at ({}, {})",
            p.key, p.table, p.latitude, p.longitude
        );
    }
}

/// A dataset name from a sample's file name (its folder's, for a generic name such as
/// `records.ndjson`): `[a-z][a-z0-9_]*`, `records` when nothing of it fits.
pub fn name_of(sample: &Path) -> String {
    let lower = |p: Option<&std::ffi::OsStr>| {
        p.map(|s| s.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let mut stem = lower(sample.file_stem());
    if ["records", "sample", "samples", "data"].contains(&stem.as_str()) {
        stem = lower(sample.parent().and_then(Path::file_name));
    }
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match name.trim_start_matches(|c: char| !c.is_ascii_lowercase()) {
        "" => "records".to_owned(),
        name => name.to_owned(),
    }
}

/// The dataset stored beside `dataset`'s lake in `bucket`, if there is one, and its URL.
pub async fn stored_dataset(
    bucket: &str,
    dataset: &Dataset,
) -> Result<Option<(Dataset, String)>, StackError> {
    let location = LakeLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: dataset.prefix().to_owned(),
    };
    let lake = Lake::open(location).await;
    let url = lake.url_of(&lake.dataset_key());
    let text = lake
        .read_dataset()
        .await
        .map_err(|source| StackError::Lake {
            context: format!("reading {url}"),
            source,
        })?;
    match text {
        Some(text) => Ok(Some((Dataset::from_toml(&text, &url)?, url))),
        None => Ok(None),
    }
}

/// The CloudFormation template every deploy starts from (the weather dataset's).
pub const BASE_TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The saved queries of a folder's `*.sql` files, by name; none when it has no such file.
pub fn saved_queries(folder: &Path) -> std::io::Result<Vec<SavedQuery>> {
    let mut queries = Vec::new();
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(queries),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            queries.push(SavedQuery::from_file(
                &name,
                &std::fs::read_to_string(&path)?,
            ));
        }
    }
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queries)
}

/// The CloudFormation template for `dataset`, with `queries` as its saved queries (the
/// dataset's records per day when there are none).
pub fn template(dataset: &Dataset, queries: &[SavedQuery]) -> Result<String, TemplateError> {
    let generic;
    let queries = if queries.is_empty() {
        generic = [SavedQuery::records_per_day(dataset)];
        &generic[..]
    } else {
        queries
    };
    cloudformation::render(BASE_TEMPLATE, dataset, queries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_weather_dataset() {
        let text = describe(&Dataset::weather());
        for expected in [
            "dataset weather: valid",
            "s3://BUCKET/data/year=../month=../day=../",
            "by the event time in date",
            "station_name",
            "┆ location ",
            "(arrival time)",
            "tables: weather (the view to query), weather_raw",
            "Precipitation",
            "DailySummary",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }

    #[test]
    fn names_come_from_the_sample_file() {
        assert_eq!(
            name_of(Path::new("data/Unicorn-Status.ndjson")),
            "unicorn_status"
        );
        assert_eq!(name_of(Path::new("2024.json")), "records");
        assert_eq!(name_of(Path::new("-")), "records");
        assert_eq!(
            name_of(Path::new("examples/unicorns/records.ndjson")),
            "unicorns"
        );
    }
}
