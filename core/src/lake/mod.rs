//! The lake: an S3 bucket prefix, or a local folder with the same layout, and the one way
//! every tool lists, reads and writes it (DataFusion too, through `query`'s object-store
//! view of a [`Lake`]).
//!
//! Listings are pruned by date: only the `year=`/`month=`/`day=` folders that can hold
//! days of the requested range are opened.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use thiserror::Error;

use crate::dataset::Granularity;
use crate::partition::PartitionKeys;

mod body;
mod conditional;
mod fetch;

pub use conditional::{Condition, Version};
pub use fetch::{ByteRange, Fetched};

/// Where the lake is: `s3://bucket/prefix/` or a local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A bucket and a key prefix (empty or ending in `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix of the partitions, e.g. `data/`.
        prefix: String,
    },
    /// A folder holding `year=YYYY/month=MM/day=DD/` sub-folders.
    Local(PathBuf),
}

impl FromStr for LakeLocation {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(LakeError::InvalidLocation(s.to_owned()));
                }
                let mut prefix = prefix.to_owned();
                if !prefix.is_empty() && !prefix.ends_with('/') {
                    prefix.push('/');
                }
                Ok(LakeLocation::S3 {
                    bucket: bucket.to_owned(),
                    prefix,
                })
            }
            None if s.is_empty() => Err(LakeError::InvalidLocation(s.to_owned())),
            None => Ok(LakeLocation::Local(PathBuf::from(s))),
        }
    }
}

impl LakeLocation {
    /// The folder (key prefix ending in `/`, or path) of the lake's compaction log: beside
    /// the lake, never inside it, so a table over the lake does not read it. For
    /// `s3://bucket/data/` it is the key prefix `compaction-log/data/`; for a folder
    /// `x/lake`, the path `x/compaction-log/lake/`.
    pub fn compaction_log_folder(&self) -> String {
        match self {
            LakeLocation::S3 { prefix, .. } => {
                let trimmed = prefix.trim_end_matches('/');
                match trimmed.rsplit_once('/') {
                    Some((parent, name)) => format!("{parent}/compaction-log/{name}/"),
                    None if trimmed.is_empty() => "compaction-log/".to_owned(),
                    None => format!("compaction-log/{trimmed}/"),
                }
            }
            LakeLocation::Local(root) => {
                let name = root
                    .file_name()
                    .map_or_else(|| "lake".into(), |n| n.to_string_lossy().into_owned());
                let parent = root.parent().unwrap_or(Path::new(""));
                format!("{}/", parent.join("compaction-log").join(name).display())
            }
        }
    }

    /// The compaction log's folder as a location: `s3://bucket/compaction-log/data/`.
    pub fn compaction_log(&self) -> LakeLocation {
        match self {
            LakeLocation::S3 { bucket, .. } => LakeLocation::S3 {
                bucket: bucket.clone(),
                prefix: self.compaction_log_folder(),
            },
            LakeLocation::Local(_) => LakeLocation::Local(self.compaction_log_folder().into()),
        }
    }
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            LakeLocation::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An inclusive range of days; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
}

impl DateRange {
    /// Whether `date` is in the range.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from.is_none_or(|f| date >= f) && self.to.is_none_or(|t| date <= t)
    }

    fn may_hold_year(&self, year: i32) -> bool {
        self.from.is_none_or(|f| year >= f.year()) && self.to.is_none_or(|t| year <= t.year())
    }

    fn may_hold_month(&self, year: i32, month: u32) -> bool {
        self.from
            .is_none_or(|f| (year, month) >= (f.year(), f.month()))
            && self
                .to
                .is_none_or(|t| (year, month) <= (t.year(), t.month()))
    }
}

/// One object of the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// S3 key or file path.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, as the store says.
    pub modified: Option<DateTime<Utc>>,
}

impl ObjectInfo {
    /// The object's name: the last segment of its key.
    pub fn name(&self) -> &str {
        self.key
            .rsplit(['/', std::path::MAIN_SEPARATOR])
            .next()
            .unwrap_or(&self.key)
    }
}

/// Failure to read the lake.
#[derive(Debug, Error)]
pub enum LakeError {
    /// The location string is neither `s3://bucket/prefix/` nor a path.
    #[error("invalid lake location {0:?}: expected s3://bucket/prefix/ or a folder")]
    InvalidLocation(String),
    /// An S3 request failed.
    #[error("S3 {operation} on {target} failed")]
    S3 {
        /// The request (ListObjectsV2, GetObject).
        operation: &'static str,
        /// Bucket and key or prefix.
        target: String,
        /// The SDK's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The object does not exist.
    #[error("{target} does not exist")]
    NotFound {
        /// The object.
        target: String,
    },
    /// An object larger than a whole read may load.
    #[error("{key}: {size} bytes is more than the {limit} bytes one read may load")]
    TooLarge {
        /// The object.
        key: String,
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A conditional write or delete ([`Condition`]) found the object changed (or, for
    /// [`Condition::Absent`], present): someone else wrote it first.
    #[error("{target} changed since it was read (a conditional write was refused)")]
    PreconditionFailed {
        /// The object.
        target: String,
    },
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Whether an object is outside the table: its name starts with `_` or `.`, which Athena
/// and Hive skip ([`DATASET_OBJECT`] is one).
pub fn is_hidden(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.starts_with(['_', '.'])
}

/// The name of the dataset file stored in the lake's folder, beside its partitions. Athena
/// (and Hive) skip objects whose names start with `_`, so the table never reads it.
pub const DATASET_OBJECT: &str = "_dataset.toml";

/// The most [`Lake::read`] loads into memory for one object by default. Firehose writes
/// objects of at most 128 MiB; a day compacted into one object stays well under this.
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// A lake opened for reading.
#[derive(Debug, Clone)]
pub struct Lake {
    location: LakeLocation,
    store: Store,
    max_object_bytes: u64,
    granularity: Granularity,
}

/// What a lake's objects are read and written through.
#[derive(Debug, Clone)]
enum Store {
    /// The location's bucket, through a client.
    S3 {
        client: Client,
        bucket: String,
        /// The key prefix of the partitions.
        prefix: String,
    },
    /// The local file system: keys are paths, the partitions under `root`.
    Local { root: PathBuf },
}

/// An S3 client from the standard AWS configuration (environment, profile, instance role).
///
/// When an endpoint URL is configured (`AWS_ENDPOINT_URL`, as for the local stack), keys
/// are addressed path-style, which emulators need.
pub async fn s3_client() -> Client {
    s3_client_from(&crate::aws::load_config().await)
}

/// An S3 client from a loaded configuration, path-style when an endpoint URL is set.
pub fn s3_client_from(shared: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(shared.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

impl Lake {
    /// Opens the lake; an S3 location gets a client from the standard configuration.
    pub async fn open(location: LakeLocation) -> Self {
        match location {
            LakeLocation::S3 { .. } => Self::with_client(location, s3_client().await),
            LakeLocation::Local(ref root) => {
                Self::with_store(Store::Local { root: root.clone() }, location)
            }
        }
    }

    /// Opens a lake with a given client (used when the location is in S3).
    pub fn with_client(location: LakeLocation, client: Client) -> Self {
        let store = match &location {
            LakeLocation::S3 { bucket, prefix } => Store::S3 {
                client,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
            LakeLocation::Local(root) => Store::Local { root: root.clone() },
        };
        Self::with_store(store, location)
    }

    fn with_store(store: Store, location: LakeLocation) -> Self {
        Self {
            location,
            store,
            max_object_bytes: MAX_OBJECT_BYTES,
            granularity: Granularity::Day,
        }
    }

    /// The whole bucket of an S3 lake (keys from the bucket's root), through the same
    /// client; `None` for a local lake.
    pub fn bucket(&self) -> Option<Lake> {
        match &self.store {
            Store::S3 { client, bucket, .. } => Some(Lake::with_client(
                LakeLocation::S3 {
                    bucket: bucket.clone(),
                    prefix: String::new(),
                },
                client.clone(),
            )),
            Store::Local { .. } => None,
        }
    }

    /// Reads the lake as partitioned by day (the default) or by hour, as its dataset says.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// Day or hour partitions.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Sets the most [`Lake::read`] loads for one object (default [`MAX_OBJECT_BYTES`]).
    pub fn with_max_object_bytes(mut self, limit: u64) -> Self {
        self.max_object_bytes = limit;
        self
    }

    /// Where the lake is.
    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The partitions that exist within `range`, in date order.
    pub async fn partitions(&self, range: DateRange) -> Result<Vec<PartitionKeys>, LakeError> {
        let mut out = Vec::new();
        for year_dir in self.subfolders("").await? {
            let Some(year) = value_of(&year_dir, "year").and_then(|v| v.parse::<i32>().ok()) else {
                continue;
            };
            if !range.may_hold_year(year) {
                continue;
            }
            let months = self.subfolders(&year_dir).await?.into_iter().filter(|dir| {
                value_of(dir, "month")
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|month| range.may_hold_month(year, month))
            });
            // The months' day folders are listed at once: one request each on S3.
            let days = futures::future::try_join_all(
                months.map(|m| async move { self.subfolders(&m).await }),
            )
            .await?;
            let days = days.into_iter().flatten().filter(|dir| {
                PartitionKeys::from_path(dir).is_some_and(|p| range.contains(p.date()))
            });
            match self.granularity {
                Granularity::Day => {
                    out.extend(days.filter_map(|dir| PartitionKeys::from_path(&dir)))
                }
                Granularity::Hour => {
                    // Each day's hour folders, listed at once.
                    let hours = futures::future::try_join_all(
                        days.map(|d| async move { self.subfolders(&d).await }),
                    )
                    .await?;
                    out.extend(
                        hours
                            .into_iter()
                            .flatten()
                            .filter_map(|dir| PartitionKeys::from_path(&dir))
                            .filter(|p| p.hour().is_some()),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The objects of one partition, by key.
    pub async fn objects(&self, partition: &PartitionKeys) -> Result<Vec<ObjectInfo>, LakeError> {
        let folder = format!("{partition}/");
        let mut out = match &self.store {
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                list_s3(client, bucket, &format!("{prefix}{folder}"), None)
                    .await?
                    .1
            }
            Store::Local { root } => list_local_files(&root.join(&folder))?,
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The content of one object (a key from [`Lake::objects`]), at most the lake's
    /// object limit: a larger object is an error naming it, never a whole allocation.
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, LakeError> {
        let limit = self.max_object_bytes;
        let too_large = |size| LakeError::TooLarge {
            key: key.to_owned(),
            size,
            limit,
        };
        match &self.store {
            Store::S3 {
                client: s3, bucket, ..
            } => {
                let mut out = self.get_within_limit(s3, bucket, key).await?;
                let size = out.content_length.map_or(0, |n| n.max(0).unsigned_abs());
                let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                while let Some(chunk) = out
                    .body
                    .try_next()
                    .await
                    .map_err(|e| s3_error("GetObject", bucket, key, e))?
                {
                    if (body.len() + chunk.len()) as u64 > limit {
                        return Err(too_large((body.len() + chunk.len()) as u64));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
            Store::Local { .. } => {
                let (file, size) = self.open_local(key)?;
                let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                file.take(limit + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| io_error(Path::new(key), e))?;
                if body.len() as u64 > limit {
                    return Err(too_large(body.len() as u64));
                }
                Ok(body)
            }
        }
    }

    /// One object as a reader, at most the lake's object limit, read as it is consumed: a
    /// local object from its file, an S3 object as its body arrives (the round trip to
    /// its first byte is paid here, where it can overlap other work). Neither is held
    /// whole. Reading blocks: read it on a blocking thread (`spawn_blocking`).
    pub async fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>, LakeError> {
        match &self.store {
            Store::S3 { client, bucket, .. } => {
                let target = format!("s3://{bucket}/{key}");
                let out = self.get_within_limit(client, bucket, key).await?;
                Ok(Box::new(body::streamed(
                    out.body,
                    target,
                    self.max_object_bytes,
                )))
            }
            Store::Local { .. } => Ok(Box::new(self.open_local(key)?.0)),
        }
    }

    /// An S3 object's `GetObject` answer, refused when its length is over the lake's object
    /// limit (the body then is not read).
    async fn get_within_limit(
        &self,
        client: &Client,
        bucket: &str,
        key: &str,
    ) -> Result<GetObjectOutput, LakeError> {
        let out = fetch::get_object(client, bucket, key, None).await?;
        let size = out.content_length.map_or(0, |n| n.max(0).unsigned_abs());
        if size > self.max_object_bytes {
            return Err(LakeError::TooLarge {
                key: key.to_owned(),
                size,
                limit: self.max_object_bytes,
            });
        }
        Ok(out)
    }

    /// A local object's file and size, the size within the lake's object limit.
    fn open_local(&self, key: &str) -> Result<(std::fs::File, u64), LakeError> {
        let path = Path::new(key);
        let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let size = file.metadata().map_err(|e| io_error(path, e))?.len();
        if size > self.max_object_bytes {
            return Err(LakeError::TooLarge {
                key: key.to_owned(),
                size,
                limit: self.max_object_bytes,
            });
        }
        Ok((file, size))
    }

    /// The bytes `range` of one object (for a Parquet footer).
    pub async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, LakeError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.fetch(key, Some(ByteRange::Bounded(range))).await?.body)
    }

    /// The object's address as Athena's `"$path"` pseudo-column gives it:
    /// `s3://bucket/key`, or the path of a local lake's file.
    pub fn url_of(&self, key: &str) -> String {
        match &self.location {
            LakeLocation::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            LakeLocation::Local(_) => key.to_owned(),
        }
    }

    /// The key (or path) of the object at `url` ([`Lake::url_of`]), if it is in this
    /// lake's bucket (or is a local path).
    pub fn key_of_url(&self, url: &str) -> Option<String> {
        match &self.location {
            LakeLocation::S3 { bucket, .. } => url
                .strip_prefix("s3://")?
                .strip_prefix(bucket.as_str())?
                .strip_prefix('/')
                .map(str::to_owned),
            LakeLocation::Local(_) => Some(url.to_owned()),
        }
    }

    /// The folder (key prefix or path, ending in `/`) of the lake's compaction log
    /// ([`LakeLocation::compaction_log_folder`]).
    pub fn compaction_log_folder(&self) -> String {
        self.location.compaction_log_folder()
    }

    /// The objects directly in a folder (a key prefix ending in `/`, or a path), by key.
    pub async fn objects_in(&self, folder: &str) -> Result<Vec<ObjectInfo>, LakeError> {
        Ok(self.folder(folder).await?.1)
    }

    /// What is directly in a folder (a key prefix ending in `/`, or a path): its
    /// sub-folders (keys or paths ending in `/`) and its objects, each by key.
    pub async fn folder(&self, folder: &str) -> Result<(Vec<String>, Vec<ObjectInfo>), LakeError> {
        let (mut folders, mut objects) = match &self.store {
            Store::S3 { client, bucket, .. } => list_s3(client, bucket, folder, Some("/")).await?,
            Store::Local { .. } => {
                let dir = Path::new(folder);
                let folders = list_local_folders(dir)?
                    .into_iter()
                    .map(|p| format!("{}/", p.display()))
                    .collect();
                (folders, list_local_files(dir)?)
            }
        };
        folders.sort();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((folders, objects))
    }

    /// Every object under a folder (a key prefix, or a path), however deep, by key.
    pub async fn objects_under(&self, folder: &str) -> Result<Vec<ObjectInfo>, LakeError> {
        let mut out = match &self.store {
            Store::S3 { client, bucket, .. } => list_s3(client, bucket, folder, None).await?.1,
            Store::Local { .. } => {
                let mut out = Vec::new();
                let mut folders = vec![PathBuf::from(folder)];
                while let Some(dir) = folders.pop() {
                    out.extend(list_local_files(&dir)?);
                    folders.extend(list_local_folders(&dir)?);
                }
                out
            }
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The key (or path) of an object named `name` in a partition.
    pub fn key_in(&self, partition: &PartitionKeys, name: &str) -> String {
        match &self.location {
            LakeLocation::S3 { prefix, .. } => format!("{prefix}{partition}/{name}"),
            LakeLocation::Local(root) => root
                .join(partition.to_string())
                .join(name)
                .display()
                .to_string(),
        }
    }

    /// The key of the dataset file stored beside the lake's partitions
    /// ([`DATASET_OBJECT`]).
    pub fn dataset_key(&self) -> String {
        match &self.location {
            LakeLocation::S3 { prefix, .. } => format!("{prefix}{DATASET_OBJECT}"),
            LakeLocation::Local(root) => root.join(DATASET_OBJECT).display().to_string(),
        }
    }

    /// The text of the dataset file stored beside the lake, if there is one.
    pub async fn read_dataset(&self) -> Result<Option<String>, LakeError> {
        let key = self.dataset_key();
        let body = match self.fetch(&key, None).await {
            Ok(fetched) => fetched.body,
            Err(LakeError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        String::from_utf8(body)
            .map(Some)
            .map_err(|e| LakeError::Io {
                path: self.url_of(&key),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
    }

    /// Stores the dataset file beside the lake ([`DATASET_OBJECT`]), where `query` finds it.
    pub async fn write_dataset(&self, text: &str) -> Result<(), LakeError> {
        self.write(&self.dataset_key(), text.as_bytes().to_vec())
            .await
    }

    /// Writes an object (a key from [`Lake::key_in`]).
    pub async fn write(&self, key: &str, body: Vec<u8>) -> Result<(), LakeError> {
        match &self.store {
            Store::S3 {
                client: s3, bucket, ..
            } => s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("PutObject", bucket, key, e)),
            Store::Local { .. } => self.write_local(Path::new(key), &body),
        }
    }

    /// Writes a local object whole: aside under a hidden name, then renamed, so a reader
    /// never sees half a file, nor the one being written (names starting with `.` are not
    /// data).
    fn write_local(&self, path: &Path, body: &[u8]) -> Result<(), LakeError> {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, body)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| io_error(path, e))
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) -> Result<(), LakeError> {
        match &self.store {
            Store::S3 {
                client: s3, bucket, ..
            } => s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("DeleteObject", bucket, key, e)),
            Store::Local { .. } => match std::fs::remove_file(key) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_error(Path::new(key), e))
                }
                _ => Ok(()),
            },
        }
    }

    /// Sub-folders (relative to the lake root, ending in `/`) of a folder of the lake.
    async fn subfolders(&self, folder: &str) -> Result<Vec<String>, LakeError> {
        match &self.store {
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let (dirs, _) =
                    list_s3(client, bucket, &format!("{prefix}{folder}"), Some("/")).await?;
                Ok(dirs
                    .into_iter()
                    .filter_map(|d| d.strip_prefix(prefix.as_str()).map(str::to_owned))
                    .collect())
            }
            Store::Local { root } => Ok(list_local_folders(&root.join(folder))?
                .into_iter()
                .filter_map(|dir| Some(format!("{folder}{}/", dir.file_name()?.to_string_lossy())))
                .collect()),
        }
    }
}

/// Lists a prefix: common prefixes (with a delimiter) and objects.
async fn list_s3(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Result<(Vec<String>, Vec<ObjectInfo>), LakeError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_owned))
        .into_paginator()
        .send();
    let mut dirs = Vec::new();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error("ListObjectsV2", bucket, prefix, e))?;
        dirs.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        objects.extend(page.contents().iter().filter_map(|o| {
            Some(ObjectInfo {
                key: o.key()?.to_owned(),
                size: o.size().unwrap_or(0).try_into().unwrap_or(0),
                modified: o
                    .last_modified()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            })
        }));
    }
    Ok((dirs, objects))
}

fn value_of<'a>(folder: &'a str, name: &str) -> Option<&'a str> {
    let last = folder.trim_end_matches('/').rsplit('/').next()?;
    last.strip_prefix(name)?.strip_prefix('=')
}

fn s3_error(
    operation: &'static str,
    bucket: &str,
    key: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> LakeError {
    LakeError::S3 {
        operation,
        target: format!("s3://{bucket}/{key}"),
        source: Box::new(error),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> LakeError {
    LakeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The entries of a local folder; none when it does not exist.
fn local_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, LakeError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.map_err(|e| io_error(dir, e)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(io_error(dir, source)),
    }
}

fn list_local_folders(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let mut out = Vec::new();
    for entry in local_entries(dir)? {
        if entry.file_type().map_err(|e| io_error(dir, e))?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn list_local_files(dir: &Path) -> Result<Vec<ObjectInfo>, LakeError> {
    let mut out = Vec::new();
    for entry in local_entries(dir)? {
        let meta = entry.metadata().map_err(|e| io_error(dir, e))?;
        if meta.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(ObjectInfo {
                key: entry.path().display().to_string(),
                size: meta.len(),
                modified: meta.modified().ok().map(DateTime::<Utc>::from),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            "s3://streamlake-lake/data".parse::<LakeLocation>().unwrap(),
            LakeLocation::S3 {
                bucket: "streamlake-lake".into(),
                prefix: "data/".into()
            }
        );
        assert_eq!(
            "s3://b".parse::<LakeLocation>().unwrap().to_string(),
            "s3://b/"
        );
        assert!("s3:///x".parse::<LakeLocation>().is_err());
        let log = |location: &str| {
            location
                .parse::<LakeLocation>()
                .unwrap()
                .compaction_log_folder()
        };
        assert_eq!(log("s3://b/data/"), "compaction-log/data/");
        assert_eq!(
            log("s3://b/lakes/weather/"),
            "lakes/compaction-log/weather/"
        );
        assert_eq!(log("s3://b"), "compaction-log/");
        assert_eq!(
            "s3://b/data/"
                .parse::<LakeLocation>()
                .unwrap()
                .compaction_log()
                .to_string(),
            "s3://b/compaction-log/data/"
        );
        let s3 = Lake::with_client(
            "s3://b/data/".parse().unwrap(),
            Client::from_conf(
                aws_sdk_s3::Config::builder()
                    .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                    .build(),
            ),
        );
        assert_eq!(s3.url_of("data/x"), "s3://b/data/x");
        assert_eq!(s3.key_of_url("s3://b/data/x").as_deref(), Some("data/x"));
        assert_eq!(s3.key_of_url("s3://other/data/x"), None);
        assert_eq!(
            "./lake".parse::<LakeLocation>().unwrap(),
            LakeLocation::Local(PathBuf::from("./lake"))
        );
    }

    #[tokio::test]
    async fn prunes_a_local_lake_by_date() {
        let root =
            std::env::temp_dir().join(format!("streamlake-lake-test-{}", std::process::id()));
        let days = ["2021-09-30", "2021-10-01", "2021-10-02", "2022-01-01"];
        for d in days {
            let p = PartitionKeys::for_date(d.parse().unwrap());
            let dir = root.join(p.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("obj"), b"{}\n").unwrap();
        }
        let lake = Lake::open(LakeLocation::Local(root.clone())).await;
        assert_eq!(
            lake.compaction_log_folder(),
            format!(
                "{}/",
                std::env::temp_dir()
                    .join("compaction-log")
                    .join(root.file_name().unwrap())
                    .display()
            )
        );
        let all = lake.partitions(DateRange::default()).await.unwrap();
        assert_eq!(all.len(), 4);
        let under = lake
            .objects_under(&format!("{}/", root.display()))
            .await
            .unwrap();
        assert_eq!(under.len(), 4, "{under:?}");
        assert!(
            under
                .iter()
                .all(|o| o.name() == "obj" && o.modified.is_some())
        );
        let range = DateRange {
            from: Some("2021-10-01".parse().unwrap()),
            to: Some("2021-10-31".parse().unwrap()),
        };
        let some = lake.partitions(range).await.unwrap();
        let dates: Vec<String> = some.iter().map(|p| p.date().to_string()).collect();
        assert_eq!(dates, ["2021-10-01", "2021-10-02"]);
        let objects = lake.objects(&some[0]).await.unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(lake.read(&objects[0].key).await.unwrap(), b"{}\n");
        assert_eq!(
            lake.read_range(&objects[0].key, 1..3).await.unwrap(),
            b"}\n"
        );
        let capped = lake.clone().with_max_object_bytes(2);
        let error = capped.read(&objects[0].key).await.unwrap_err().to_string();
        assert!(
            error.starts_with(&objects[0].key) && error.contains("more than the 2 bytes"),
            "{error}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
