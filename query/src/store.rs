//! The lake's bucket as the object store DataFusion reads S3 through: a read-only view
//! over [`Lake`], so tables read with the same SDK client, credentials (the standard
//! provider chain) and retries as everything else that reads the lake.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use streamlake_core::lake::{ByteRange, Lake, LakeError, ObjectInfo};

use crate::QueryError;

/// Registers the lake's bucket with `ctx` (a local lake is read from the file system);
/// returns its URL.
pub fn register(ctx: &SessionContext, lake: &Lake) -> Result<ObjectStoreUrl, QueryError> {
    let Some(bucket) = lake.bucket() else {
        return Ok(ObjectStoreUrl::local_filesystem());
    };
    let url = ObjectStoreUrl::parse(bucket.location().to_string().trim_end_matches('/'))
        .map_err(|e| QueryError::Store(e.to_string()))?;
    ctx.register_object_store(url.as_ref(), Arc::new(LakeStore { bucket }));
    Ok(url)
}

/// An S3 bucket read through [`Lake`]. Reading, listing and heads are answered; writes are
/// refused (`query` writes through [`Lake`] itself, with its conditions).
#[derive(Debug)]
pub struct LakeStore {
    /// The whole bucket, keys from its root.
    bucket: Lake,
}

impl fmt::Display for LakeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeStore({})", self.bucket.location())
    }
}

/// The object store's error for a lake's.
fn store_error(key: &str, error: LakeError) -> object_store::Error {
    match error {
        LakeError::NotFound { .. } => object_store::Error::NotFound {
            path: key.to_owned(),
            source: Box::new(error),
        },
        error => object_store::Error::Generic {
            store: "S3",
            source: Box::new(error),
        },
    }
}

fn read_only(operation: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!(
            "{operation}: query reads the lake through this store; it writes through Lake"
        )
        .into(),
    }
}

fn meta(object: ObjectInfo, e_tag: Option<String>) -> ObjectMeta {
    ObjectMeta {
        location: Path::from(object.key),
        last_modified: object.modified.unwrap_or_default(),
        size: object.size,
        e_tag,
        version: None,
    }
}

#[async_trait]
impl ObjectStore for LakeStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _options: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("put_multipart"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.version.is_some() {
            return Err(object_store::Error::NotImplemented {
                operation: "get of an object version".into(),
                implementer: self.to_string(),
            });
        }
        let key = location.as_ref();
        let range = options.range.as_ref().map(|range| match range {
            GetRange::Bounded(r) => ByteRange::Bounded(r.clone()),
            GetRange::Offset(start) => ByteRange::From(*start),
            GetRange::Suffix(n) => ByteRange::Last(*n),
        });
        let fetched = if options.head {
            self.bucket.head(key).await
        } else {
            self.bucket.fetch(key, range).await
        }
        .map_err(|e| store_error(key, e))?;
        let meta = meta(fetched.object, fetched.e_tag);
        options.check_preconditions(&meta)?;
        let (range, body) = (fetched.range, Bytes::from(fetched.body));
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async { Ok(body) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let bucket = self.bucket.clone();
        let folder = prefix.map_or_else(String::new, |p| format!("{p}/"));
        stream::once(async move {
            match bucket.objects_under(&folder).await {
                Ok(objects) => stream::iter(objects.into_iter().map(|o| Ok(meta(o, None)))).boxed(),
                Err(e) => stream::iter([Err(store_error(&folder, e))]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let folder = prefix.map_or_else(String::new, |p| format!("{p}/"));
        let (folders, objects) = self
            .bucket
            .folder(&folder)
            .await
            .map_err(|e| store_error(&folder, e))?;
        Ok(ListResult {
            common_prefixes: folders
                .into_iter()
                .map(|f| Path::from(f.trim_end_matches('/')))
                .collect(),
            objects: objects.into_iter().map(|o| meta(o, None)).collect(),
        })
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}
