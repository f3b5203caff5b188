//! Small Parquet objects read with one request.
//!
//! DataFusion reads a Parquet object in several ranged requests: the footer (with a size
//! hint), then the column chunks a query needs. On S3 each request is a round trip, and
//! most of the lake's objects (Firehose's deliveries, a day's compacted file) are a few
//! megabytes at most: reading such an object whole, once, and answering every range from
//! memory costs one round trip instead of two or more. Larger objects are read as
//! DataFusion reads them.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Objects up to this size are read whole.
pub const WHOLE_OBJECT_BYTES: u64 = 8 * 1024 * 1024;

/// Creates readers that fetch objects up to [`WHOLE_OBJECT_BYTES`] in one request.
#[derive(Debug)]
pub struct WholeObjectReaderFactory {
    store: Arc<dyn ObjectStore>,
    larger: DefaultParquetFileReaderFactory,
}

impl WholeObjectReaderFactory {
    /// Readers of objects in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            larger: DefaultParquetFileReaderFactory::new(store.clone()),
            store,
        }
    }
}

impl ParquetFileReaderFactory for WholeObjectReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        if file.object_meta.size > WHOLE_OBJECT_BYTES {
            return self
                .larger
                .create_reader(partition_index, file, metadata_size_hint, metrics);
        }
        Ok(Box::new(WholeObject {
            store: self.store.clone(),
            location: file.object_meta.location,
            body: None,
        }))
    }
}

/// One object, fetched on first use.
struct WholeObject {
    store: Arc<dyn ObjectStore>,
    location: Path,
    body: Option<Bytes>,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl WholeObject {
    async fn body(&mut self) -> datafusion::parquet::errors::Result<Bytes> {
        if let Some(body) = &self.body {
            return Ok(body.clone());
        }
        let body = self
            .store
            .get(&self.location)
            .await
            .map_err(external)?
            .bytes()
            .await
            .map_err(external)?;
        self.body = Some(body.clone());
        Ok(body)
    }

    fn slice(body: &Bytes, range: Range<u64>) -> datafusion::parquet::errors::Result<Bytes> {
        let (start, end) = (range.start as usize, range.end as usize);
        if start > end || end > body.len() {
            return Err(ParquetError::EOF(format!(
                "range {start}..{end} is outside the object ({} bytes)",
                body.len()
            )));
        }
        Ok(body.slice(start..end))
    }
}

impl AsyncFileReader for WholeObject {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        async move { Self::slice(&self.body().await?, range) }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let body = self.body().await?;
            ranges.into_iter().map(|r| Self::slice(&body, r)).collect()
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let body = self.body().await?;
            Ok(Arc::new(metadata_reader(options).parse_and_finish(&body)?))
        }
        .boxed()
    }
}

/// A footer reader with the page index policies and metadata options DataFusion asks for.
pub(crate) fn metadata_reader(options: Option<&ArrowReaderOptions>) -> ParquetMetaDataReader {
    let reader = ParquetMetaDataReader::new();
    match options {
        Some(options) => reader
            .with_column_index_policy(options.column_index_policy())
            .with_offset_index_policy(options.offset_index_policy())
            .with_metadata_options(Some(options.metadata_options().clone())),
        None => reader,
    }
}
