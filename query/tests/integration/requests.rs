//! Requests a query makes to the object store: a small Parquet object is read with one.

use crate::common;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use query::table::LakeTable;
use streamlake_core::lake::{Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;

/// A local store that counts the reads made of it.
#[derive(Debug)]
struct Counting {
    inner: LocalFileSystem,
    reads: AtomicU64,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }

    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }

    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(l, o).await
    }

    async fn get_ranges(&self, l: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        // One request on S3 per coalesced range; one here is the least it costs.
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_ranges(l, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

#[tokio::test]
async fn a_small_parquet_object_is_read_with_one_request() {
    let (root, _) = common::lake("requests", 400, common::Layout::Only(OutputFormat::Parquet));
    let ctx = SessionContext::new();
    let store = Arc::new(Counting {
        inner: LocalFileSystem::new(),
        reads: AtomicU64::new(0),
    });
    let url = ObjectStoreUrl::local_filesystem();
    ctx.register_object_store(url.as_ref(), store.clone());
    // Read whole as over S3, where it is the default.
    let table = LakeTable::new(
        Lake::open(LakeLocation::Local(root.clone())).await,
        url,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .with_whole_objects(true);
    let counters = table.counters();
    ctx.register_table("weather", Arc::new(table)).unwrap();
    ctx.sql("SELECT datatype, count(*), avg(value) FROM weather GROUP BY datatype")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let objects = counters.read().objects;
    assert!(objects > 4, "{objects} objects");
    assert_eq!(
        store.reads.load(Ordering::Relaxed),
        objects,
        "one read per object"
    );
    std::fs::remove_dir_all(root).unwrap();
}
