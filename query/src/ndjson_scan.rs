//! The lake's NDJSON objects (plain and GZIP) as a scan: objects spread over DataFusion
//! partitions, each opened when the plan runs and decoded with core's projected decoder
//! ([`NdjsonDecoder`]: only the columns the query uses) as it is read, a block at a time
//! ([`Lake::reader`]: an S3 object as its body arrives), the partition columns added from the object's partition (and
//! Athena's `"$path"`, for a raw table).

use std::sync::Arc;

use chrono::Datelike;
use datafusion::arrow::array::{
    ArrayRef, Int32Array, RecordBatch, RecordBatchOptions, StringArray,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::{StreamExt, TryStreamExt};
use streamlake_core::PartitionKeys;
use streamlake_core::formats::decompressing;
use streamlake_core::lake::Lake;
use streamlake_core::ndjson::NdjsonDecoder;

/// Objects opened ahead of the one being decoded, per partition (an S3 object's first
/// bytes are asked for when it is opened: the round trip hides behind decoding).
const READ_AHEAD: usize = 2;

/// An NDJSON object to scan and the partition it belongs to.
#[derive(Debug, Clone)]
pub struct NdjsonObject {
    /// Its key (or path).
    pub key: String,
    /// Its partition.
    pub partition: PartitionKeys,
    /// Its URL, the value of a raw table's `"$path"` column.
    pub url: String,
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The decoded column at this index.
    Data(usize),
    /// The object's year, month, day or hour.
    Year,
    Month,
    Day,
    Hour,
    /// The object's URL.
    Path,
}

/// The table an NDJSON scan reads: its schema (the data columns read from the objects,
/// then the partition columns, and for a raw table `"$path"`), how many data columns
/// lead it, and their names in the order the transform writes them.
#[derive(Debug, Clone, Copy)]
pub struct NdjsonTable<'a> {
    /// The table's schema.
    pub schema: &'a SchemaRef,
    /// The data columns, in written order (they lead the schema).
    pub data_columns: &'a [&'a str],
    /// The partition columns (`year`, `month`, `day`, and `hour` in an hourly lake).
    pub partition_columns: usize,
}

/// A scan of `objects`, projected to `projection` of the table, in the session's number
/// of partitions and batch size.
pub fn ndjson_scan(
    state: &dyn Session,
    lake: &Lake,
    objects: Vec<NdjsonObject>,
    table: NdjsonTable<'_>,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let table_schema = table.schema;
    let data_columns = table.data_columns.len();
    let (partitions, batch_size) = (
        state.config().target_partitions(),
        state.config().batch_size(),
    );
    let projection: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..table_schema.fields().len()).collect(),
    };
    let schema = Arc::new(table_schema.project(&projection)?);
    let mut decoded = Vec::new();
    let sources: Arc<[Source]> = projection
        .iter()
        .map(|&i| match i.checked_sub(data_columns) {
            None => {
                decoded.push(table_schema.field(i).clone());
                Source::Data(decoded.len() - 1)
            }
            Some(0) => Source::Year,
            Some(1) => Source::Month,
            Some(2) => Source::Day,
            Some(3) if table.partition_columns == 4 => Source::Hour,
            Some(_) => Source::Path,
        })
        .collect();
    let decoder = NdjsonDecoder::new(Arc::new(Schema::new(decoded)), batch_size)
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .with_written_order(table.data_columns);
    let partitions = partitions.clamp(1, objects.len().max(1));
    let mut groups = vec![Vec::new(); partitions];
    for (i, object) in objects.into_iter().enumerate() {
        groups[i % partitions].push(object);
    }
    let streams = groups
        .into_iter()
        .map(|objects| -> Arc<dyn PartitionStream> {
            Arc::new(ObjectGroup {
                lake: lake.clone(),
                objects: objects.into(),
                decoder: decoder.clone(),
                schema: schema.clone(),
                sources: sources.clone(),
            })
        })
        .collect();
    Ok(Arc::new(StreamingTableExec::try_new(
        schema.clone(),
        streams,
        None,
        [],
        false,
        limit,
    )?))
}

/// The objects one partition reads.
#[derive(Debug, Clone)]
struct ObjectGroup {
    lake: Lake,
    objects: Arc<[NdjsonObject]>,
    decoder: NdjsonDecoder,
    schema: SchemaRef,
    sources: Arc<[Source]>,
}

impl ObjectGroup {
    /// An object's content as record batches of the output schema.
    fn batches(
        &self,
        object: &NdjsonObject,
        body: Box<dyn std::io::Read + Send>,
    ) -> Result<Vec<RecordBatch>> {
        let decoded = self
            .decoder
            .decode_reader(decompressing(&object.key, body))
            .map_err(|e| DataFusionError::External(format!("{}: {e}", object.key).into()))?;
        let date = object.partition.date();
        let hour = object.partition.hour().unwrap_or(0) as i32;
        decoded
            .into_iter()
            .map(|batch| {
                let rows = batch.num_rows();
                let constant = |v: i32| -> ArrayRef { Arc::new(Int32Array::from_value(v, rows)) };
                let columns = self
                    .sources
                    .iter()
                    .map(|source| match source {
                        Source::Data(i) => batch.column(*i).clone(),
                        Source::Year => constant(date.year()),
                        Source::Month => constant(date.month() as i32),
                        Source::Day => constant(date.day() as i32),
                        Source::Hour => constant(hour),
                        Source::Path => Arc::new(StringArray::from_iter_values(
                            std::iter::repeat_n(object.url.as_str(), rows),
                        )),
                    })
                    .collect();
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                Ok(RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    columns,
                    &options,
                )?)
            })
            .collect()
    }
}

impl PartitionStream for ObjectGroup {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let group = Arc::new(self.clone());
        let objects = (0..group.objects.len()).map({
            let group = group.clone();
            move |i| {
                let group = group.clone();
                async move {
                    let body = group
                        .lake
                        .reader(&group.objects[i].key)
                        .await
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    // Decoded as it is read, off the runtime: reading an S3 body waits
                    // for its bytes.
                    let batches =
                        tokio::task::spawn_blocking(move || group.batches(&group.objects[i], body))
                            .await
                            .map_err(|e| DataFusionError::External(Box::new(e)))??;
                    Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
                }
            }
        });
        let stream = futures::stream::iter(objects)
            .buffered(READ_AHEAD)
            .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
