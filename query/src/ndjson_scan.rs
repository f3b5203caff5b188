//! The lake's NDJSON objects (plain and GZIP) as a scan: objects spread over DataFusion
//! partitions, each opened when the plan runs and decoded with core's projected decoder
//! ([`NdjsonDecoder`]: only the columns the query uses) as it is read, a block at a time
//! ([`Lake::reader`]), the partition columns added from the object's day (and Athena's
//! `"$path"`, for a raw table).

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
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
use streamlake_core::formats::decompressing;
use streamlake_core::lake::Lake;
use streamlake_core::ndjson::NdjsonDecoder;
use streamlake_core::schema::FIELDS;

/// Objects opened ahead of the one being decoded, per partition (an S3 object is fetched
/// when opened: its latency hides behind decoding).
const READ_AHEAD: usize = 2;

/// An NDJSON object to scan and the day it belongs to.
#[derive(Debug, Clone)]
pub struct NdjsonObject {
    /// Its key (or path).
    pub key: String,
    /// Its partition's day.
    pub date: NaiveDate,
    /// Its URL, the value of a raw table's `"$path"` column.
    pub url: String,
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The decoded column at this index.
    Data(usize),
    /// The object's year, month or day.
    Year,
    Month,
    Day,
    /// The object's URL.
    Path,
}

/// A scan of `objects`, projected to `projection` of `table_schema` (the observation
/// columns read from the objects, then year, month, day, and for a raw table `"$path"`),
/// in the session's number of partitions and batch size.
pub fn ndjson_scan(
    state: &dyn Session,
    lake: &Lake,
    objects: Vec<NdjsonObject>,
    table_schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let data_columns = FIELDS.len();
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
            Some(_) => Source::Path,
        })
        .collect();
    let decoder = NdjsonDecoder::new(Arc::new(Schema::new(decoded)), batch_size)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
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
        let date = &object.date;
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
                    let object = &group.objects[i];
                    let body = group
                        .lake
                        .reader(&object.key)
                        .await
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    let batches = group.batches(object, body)?;
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
