//! Reading an object, or a range of it, with what the store says of the whole object
//! (its size, last write and entity tag): what an object-store view of the lake answers
//! (`query`'s `LakeStore`, through which DataFusion reads S3).

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use chrono::{DateTime, Utc};

use super::{Lake, LakeError, ObjectInfo, Store, io_error, s3_error};

/// Which bytes of an object to read, as an HTTP `Range` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteRange {
    /// These bytes (the end cut to the object's size).
    Bounded(Range<u64>),
    /// From this offset to the end.
    From(u64),
    /// The last this many bytes.
    Last(u64),
}

impl ByteRange {
    /// The bytes of an object of `size` it names.
    fn within(&self, size: u64) -> Range<u64> {
        match *self {
            ByteRange::Bounded(ref r) => r.start.min(size)..r.end.min(size),
            ByteRange::From(start) => start.min(size)..size,
            ByteRange::Last(n) => size.saturating_sub(n)..size,
        }
    }

    /// The `Range` header (RFC 9110: the last byte is inclusive).
    fn header(&self) -> String {
        match *self {
            ByteRange::Bounded(ref r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            ByteRange::From(start) => format!("bytes={start}-"),
            ByteRange::Last(n) => format!("bytes=-{n}"),
        }
    }
}

/// An object read: the bytes asked for, where they are, and the whole object's metadata.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes read.
    pub body: Vec<u8>,
    /// Where they are in the object.
    pub range: Range<u64>,
    /// The whole object: key, size, last write.
    pub object: ObjectInfo,
    /// Its entity tag, when the store has one.
    pub e_tag: Option<String>,
}

impl Lake {
    /// What the store says of an object, without reading it (an empty body).
    pub async fn head(&self, key: &str) -> Result<Fetched, LakeError> {
        match &self.store {
            Store::S3 { client, bucket, .. } => {
                let out = client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error().is_some_and(|e| e.is_not_found()) {
                            LakeError::NotFound {
                                target: format!("s3://{bucket}/{key}"),
                            }
                        } else {
                            s3_error("HeadObject", bucket, key, e)
                        }
                    })?;
                let size = out.content_length.map_or(0, |n| n.max(0).unsigned_abs());
                Ok(Fetched {
                    body: Vec::new(),
                    range: 0..size,
                    object: ObjectInfo {
                        key: key.to_owned(),
                        size,
                        modified: out
                            .last_modified()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    },
                    e_tag: out.e_tag().map(str::to_owned),
                })
            }
            Store::Local { .. } => self.fetch(key, Some(ByteRange::Last(0))).await,
        }
    }

    /// Reads an object (a key from the lake's listings), whole or the bytes `range` names,
    /// with the whole object's metadata; a missing object is [`LakeError::NotFound`].
    pub async fn fetch(&self, key: &str, range: Option<ByteRange>) -> Result<Fetched, LakeError> {
        match &self.store {
            Store::S3 { client, bucket, .. } => {
                let out = get_object(client, bucket, key, range.as_ref()).await?;
                let length = out.content_length.map_or(0, |n| n.max(0).unsigned_abs());
                // `bytes START-END/SIZE` when a range was asked for.
                let (range, size) = match out.content_range().and_then(content_range) {
                    Some((range, size)) => (range, size),
                    None => (0..length, length),
                };
                let object = ObjectInfo {
                    key: key.to_owned(),
                    size,
                    modified: out
                        .last_modified()
                        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                };
                let e_tag = out.e_tag().map(str::to_owned);
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| s3_error("GetObject", bucket, key, e))?
                    .to_vec();
                Ok(Fetched {
                    body,
                    range,
                    object,
                    e_tag,
                })
            }
            Store::Local { .. } => {
                let path = Path::new(key);
                let read = || -> std::io::Result<Fetched> {
                    let mut file = std::fs::File::open(path)?;
                    let meta = file.metadata()?;
                    let range = range.map_or(0..meta.len(), |r| r.within(meta.len()));
                    file.seek(SeekFrom::Start(range.start))?;
                    let mut body = Vec::with_capacity((range.end - range.start) as usize);
                    file.take(range.end - range.start).read_to_end(&mut body)?;
                    Ok(Fetched {
                        body,
                        range,
                        object: ObjectInfo {
                            key: key.to_owned(),
                            size: meta.len(),
                            modified: meta.modified().ok().map(DateTime::<Utc>::from),
                        },
                        e_tag: None,
                    })
                };
                read().map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => LakeError::NotFound {
                        target: key.to_owned(),
                    },
                    _ => io_error(path, e),
                })
            }
        }
    }
}

/// `GetObject` of `key` (the bytes `range` names, or all); a missing key is
/// [`LakeError::NotFound`].
pub(super) async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
    range: Option<&ByteRange>,
) -> Result<GetObjectOutput, LakeError> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(ByteRange::header))
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                LakeError::NotFound {
                    target: format!("s3://{bucket}/{key}"),
                }
            } else {
                s3_error("GetObject", bucket, key, e)
            }
        })
}

/// The range and the object's size in a `Content-Range` header (`bytes 0-99/1234`).
fn content_range(header: &str) -> Option<(Range<u64>, u64)> {
    let (span, size) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    Some((start..end + 1, size.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeLocation;

    #[test]
    fn ranges_read_as_http_names_them() {
        assert_eq!(ByteRange::Bounded(2..5).header(), "bytes=2-4");
        assert_eq!(ByteRange::From(7).header(), "bytes=7-");
        assert_eq!(ByteRange::Last(8).header(), "bytes=-8");
        assert_eq!(ByteRange::Last(8).within(5), 0..5);
        assert_eq!(ByteRange::Bounded(3..10).within(5), 3..5);
        assert_eq!(content_range("bytes 0-99/1234"), Some((0..100, 1234)));
        assert_eq!(content_range("bytes */1234"), None);
    }

    #[tokio::test]
    async fn a_local_object_is_fetched_whole_or_in_part_with_its_size() {
        let dir = std::env::temp_dir().join(format!("streamlake-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("o").display().to_string();
        std::fs::write(&key, b"0123456789").unwrap();
        let lake = Lake::open(LakeLocation::Local(dir.clone())).await;
        let whole = lake.fetch(&key, None).await.unwrap();
        assert_eq!(
            (whole.body.as_slice(), whole.object.size),
            (&b"0123456789"[..], 10)
        );
        let tail = lake.fetch(&key, Some(ByteRange::Last(3))).await.unwrap();
        assert_eq!((tail.body.as_slice(), tail.range), (&b"789"[..], 7..10));
        let missing = lake.fetch(&format!("{key}x"), None).await.unwrap_err();
        assert!(matches!(missing, LakeError::NotFound { .. }), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
