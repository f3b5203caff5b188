//! Parquet readers that name their object when they fail: DataFusion's Parquet source says
//! `Parquet error: Invalid Parquet file. Corrupt footer` and leaves out which of a lake's
//! thousands of objects is at fault. [`NamingReaderFactory`] wraps the reader of each
//! object so that its errors carry an [`ObjectError`], which [`crate::QueryError`] reports
//! as `<object>: <reason>`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetFileReaderFactory;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;

/// An object of the lake could not be read as Parquet.
#[derive(Debug, thiserror::Error)]
#[error("{object}: not a readable Parquet object: {reason}")]
pub struct ObjectError {
    /// The object (its path in the store).
    pub object: String,
    /// What the Parquet reader said, its `Parquet error: ` prefix removed.
    pub reason: String,
}

/// Wraps another factory's readers so that their errors name the object, by its URL
/// (`base`, the store's URL such as `s3://bucket/` or `file:///`, then its path).
#[derive(Debug)]
pub struct NamingReaderFactory {
    /// The readers.
    pub inner: Arc<dyn ParquetFileReaderFactory>,
    /// The store's URL, ending in `/`.
    pub base: String,
}

impl ParquetFileReaderFactory for NamingReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let object = format!("{}{}", self.base, file.object_meta.location);
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(Named { object, inner }))
    }
}

struct Named {
    object: String,
    inner: Box<dyn AsyncFileReader + Send>,
}

impl Named {
    fn name<T>(object: &str, result: Result<T, ParquetError>) -> Result<T, ParquetError> {
        result.map_err(|e| {
            let text = e.to_string();
            let reason = text.strip_prefix("Parquet error: ").unwrap_or(&text);
            ParquetError::External(Box::new(ObjectError {
                object: object.to_owned(),
                reason: reason.to_owned(),
            }))
        })
    }
}

impl AsyncFileReader for Named {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        let object = self.object.clone();
        self.inner
            .get_bytes(range)
            .map(move |r| Self::name(&object, r))
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        let object = self.object.clone();
        self.inner
            .get_byte_ranges(ranges)
            .map(move |r| Self::name(&object, r))
            .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        let object = self.object.clone();
        self.inner
            .get_metadata(options)
            .map(move |r| Self::name(&object, r))
            .boxed()
    }
}

/// The [`ObjectError`] somewhere in an error's chain, if there is one.
pub fn object_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ObjectError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<ObjectError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
