//! Parquet objects on disk, read on the thread that decodes them.
//!
//! `object_store`'s `LocalFileSystem` runs every read on tokio's blocking pool: a hand-off
//! to another thread and back for each footer and each set of column chunks, about 500
//! for a scan of the lake bench's 248 objects. On two cores those wake-ups and context
//! switches were about a tenth of a cold `GROUP BY` (futex wake-ups, scheduling). A lake's
//! object is in the page cache or an SSD read away, so [`LocalFileReaderFactory`] seeks
//! and reads where DataFusion asks, on the runtime's own thread, as an embedded engine
//! does (a slow disk then holds that thread, not a pool's); the footer with one read of
//! the object's last [`FOOTER_HINT`] bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    ParquetFileMetrics, ParquetFileReaderFactory,
};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::local::LocalFileSystem;

use crate::whole_object::metadata_reader;

/// Bytes read from an object's end for its footer: the lake's footers are a few KiB (one
/// row group, a dozen columns); a larger one costs a second read.
pub const FOOTER_HINT: usize = 64 * 1024;

/// Creates readers of local Parquet files, located as DataFusion's `file://` store
/// locates them.
#[derive(Debug, Default)]
pub struct LocalFileReaderFactory {
    files: LocalFileSystem,
}

impl ParquetFileReaderFactory for LocalFileReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        _metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = &file.object_meta.location;
        Ok(Box::new(LocalFile {
            path: self.files.path_to_filesystem(location)?,
            size: file.object_meta.size,
            file: None,
            metrics: ParquetFileMetrics::new(partition_index, location.as_ref(), metrics),
        }))
    }
}

/// One local file, opened on first read.
struct LocalFile {
    path: PathBuf,
    size: u64,
    file: Option<File>,
    metrics: ParquetFileMetrics,
}

impl LocalFile {
    fn read(&mut self, range: Range<u64>) -> datafusion::parquet::errors::Result<Bytes> {
        let path = &self.path;
        let failed = |e: std::io::Error| {
            ParquetError::General(format!(
                "reading bytes {}..{} of {}: {e}",
                range.start,
                range.end,
                path.display()
            ))
        };
        if range.start > range.end || range.end > self.size {
            return Err(ParquetError::EOF(format!(
                "range {}..{} is outside {} ({} bytes)",
                range.start,
                range.end,
                path.display(),
                self.size
            )));
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::open(path).map_err(failed)?),
        };
        let length = range.end - range.start;
        // Read into the vector's spare capacity: no zeroing first.
        let mut bytes = Vec::with_capacity(length as usize);
        file.seek(SeekFrom::Start(range.start)).map_err(failed)?;
        file.take(length).read_to_end(&mut bytes).map_err(failed)?;
        if bytes.len() as u64 != length {
            return Err(ParquetError::EOF(format!(
                "{} ended after {} of bytes {}..{}",
                path.display(),
                bytes.len(),
                range.start,
                range.end
            )));
        }
        self.metrics.bytes_scanned.add(bytes.len());
        Ok(bytes.into())
    }
}

impl AsyncFileReader for LocalFile {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        futures::future::ready(self.read(range)).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        let read = ranges.into_iter().map(|r| self.read(r)).collect();
        futures::future::ready(read).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let reader = metadata_reader(options).with_prefetch_hint(Some(FOOTER_HINT));
            let size = self.size;
            // Every read completes at once: this future never waits.
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use object_store::path::Path;

    /// A Parquet file of `rows` rows of one column, `group` rows a row group.
    struct Written {
        path: PathBuf,
        metrics: ExecutionPlanMetricsSet,
    }

    impl Written {
        fn new(name: &str, rows: i64, group: usize) -> Self {
            let path = std::env::temp_dir().join(format!(
                "streamlake-local-file-{}-{name}.parquet",
                std::process::id()
            ));
            let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
            let column = Arc::new(Int64Array::from_iter_values(0..rows));
            let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
            let properties = WriterProperties::builder()
                .set_max_row_group_row_count(Some(group))
                .build();
            let file = File::create(&path).unwrap();
            let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).unwrap();
            // One slice a row group (the writer splits a larger batch by recursing).
            for start in (0..batch.num_rows()).step_by(group) {
                let rows = group.min(batch.num_rows() - start);
                writer.write(&batch.slice(start, rows)).unwrap();
            }
            writer.close().unwrap();
            Self {
                path,
                metrics: ExecutionPlanMetricsSet::new(),
            }
        }

        fn size(&self) -> u64 {
            std::fs::metadata(&self.path).unwrap().len()
        }

        /// A reader from the factory, as DataFusion makes one.
        fn reader(&self) -> Box<dyn AsyncFileReader + Send> {
            let location = Path::from_absolute_path(&self.path).unwrap();
            let file = PartitionedFile::new(location.to_string(), self.size());
            LocalFileReaderFactory::default()
                .create_reader(0, file, None, &self.metrics)
                .unwrap()
        }

        fn bytes_scanned(&self) -> usize {
            let metrics = self.metrics.clone_inner();
            metrics.sum_by_name("bytes_scanned").unwrap().as_usize()
        }

        /// The length of the footer's metadata, from its last 8 bytes.
        fn metadata_length(&self) -> usize {
            let bytes = std::fs::read(&self.path).unwrap();
            let tail = &bytes[bytes.len() - 8..bytes.len() - 4];
            u32::from_le_bytes(tail.try_into().unwrap()) as usize
        }
    }

    impl Drop for Written {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    #[tokio::test]
    async fn a_small_footer_is_read_with_one_read_of_the_hint() {
        let written = Written::new("small", 100_000, 50_000);
        let metadata = written.reader().get_metadata(None).await.unwrap();
        assert_eq!(metadata.num_row_groups(), 2);
        assert_eq!(metadata.file_metadata().num_rows(), 100_000);
        assert!(written.metadata_length() < FOOTER_HINT);
        let expected = FOOTER_HINT.min(written.size() as usize);
        assert_eq!(written.bytes_scanned(), expected, "one read of the hint");
    }

    #[tokio::test]
    async fn a_footer_larger_than_the_hint_is_read_whole() {
        let written = Written::new("large", 3000, 1);
        assert!(
            written.metadata_length() > FOOTER_HINT,
            "the test needs a large footer"
        );
        let metadata = written.reader().get_metadata(None).await.unwrap();
        assert_eq!(metadata.num_row_groups(), 3000);
        assert!(written.bytes_scanned() > written.metadata_length());
    }

    #[tokio::test]
    async fn ranges_read_the_file_and_a_bad_one_names_it() {
        let written = Written::new("ranges", 1000, 1000);
        let bytes = std::fs::read(&written.path).unwrap();
        let size = written.size();
        let mut reader = written.reader();
        let ranges = vec![0..4, 10..100, size - 4..size];
        let read = reader.get_byte_ranges(ranges.clone()).await.unwrap();
        for (range, read) in ranges.into_iter().zip(read) {
            assert_eq!(read, bytes[range.start as usize..range.end as usize]);
        }
        let past = reader.get_bytes(size - 4..size + 1).await.unwrap_err();
        let name = written.path.display().to_string();
        assert!(past.to_string().contains(&name), "{past}");
        let mut unopened = written.reader();
        std::fs::remove_file(&written.path).unwrap();
        let gone = unopened.get_bytes(0..4).await.unwrap_err();
        assert!(gone.to_string().contains(&name), "{gone}");
    }
}
