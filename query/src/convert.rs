//! Converting a lake into a Parquet lake at another location: one Parquet object per day,
//! the same `year=/month=/day=` folders, its own Athena table ([`crate::athena`]). A table
//! reads one format, so a lake is never converted in place.

use streamlake_core::PartitionKeys;
use streamlake_core::columnar::{arrow_schema, conform, write_parquet};
use streamlake_core::dataset::Dataset;
use streamlake_core::formats::read_batches;
use streamlake_core::lake::{DateRange, Lake};

use crate::QueryError;
use crate::compaction::{live_objects_of, partitions_to_read};

/// The name of each day's object in the converted lake: converting a day again replaces it.
pub const CONVERTED_NAME: &str = "converted.parquet";

/// What converting one partition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionConversion {
    /// The partition.
    pub partition: PartitionKeys,
    /// Objects read (the live ones: the compaction log honoured).
    pub objects_in: usize,
    /// Their bytes.
    pub bytes_in: u64,
    /// Bytes of the Parquet object written.
    pub bytes_out: u64,
    /// Records written.
    pub records: u64,
}

/// Writes every partition of `range` in `source` that holds records as one Parquet object
/// ([`CONVERTED_NAME`]) in the same partition of `dest`; `each` is called after each.
/// Running it again over a day replaces that day's object.
pub async fn convert(
    source: &Lake,
    dest: &Lake,
    dataset: &Dataset,
    range: DateRange,
    mut each: impl FnMut(&PartitionConversion),
) -> Result<Vec<PartitionConversion>, QueryError> {
    if source.location() == dest.location() {
        return Err(QueryError::Compaction(format!(
            "converting {} into itself would mix two formats in one table: give another location",
            source.location()
        )));
    }
    let schema = arrow_schema(dataset);
    let (partitions, hidden) = partitions_to_read(source, range).await?;
    let mut listed = std::pin::pin!(live_objects_of(source, &hidden, partitions));
    let mut done = Vec::new();
    while let Some((partition, objects)) = futures::TryStreamExt::try_next(&mut listed).await? {
        if objects.is_empty() {
            continue;
        }
        let mut batches = Vec::new();
        let mut bytes_in = 0;
        for object in &objects {
            let body = source.read(&object.key).await?;
            bytes_in += object.size;
            for batch in read_batches(dataset, &object.key, &body)? {
                batches.push(conform(&batch, &schema).map_err(|e| {
                    QueryError::Compaction(format!("{}: {e}", source.url_of(&object.key)))
                })?);
            }
        }
        let parquet =
            write_parquet(&schema, &batches).map_err(|e| QueryError::Compaction(e.to_string()))?;
        let report = PartitionConversion {
            partition,
            objects_in: objects.len(),
            bytes_in,
            bytes_out: parquet.len() as u64,
            records: batches.iter().map(|b| b.num_rows() as u64).sum(),
        };
        dest.write(&dest.key_in(&partition, CONVERTED_NAME), parquet)
            .await?;
        each(&report);
        done.push(report);
    }
    Ok(done)
}
