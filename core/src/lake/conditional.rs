//! Conditional writes: an object created only if its key is free (`If-None-Match: *`),
//! replaced or deleted only if it is still the version read (`If-Match: <ETag>`), so that
//! two writers of one key (two compactions of one day) cannot both win.
//!
//! On S3 these are the documented conditional requests
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html>): a
//! condition that does not hold is `412 Precondition Failed`, a write racing another
//! write of the key `409 ConditionalRequestConflict`, and `If-Match` on a key with no
//! object `404`; all three are [`LakeError::PreconditionFailed`]: the caller reads the key
//! again and decides. In a local folder the same rules hold between processes: every
//! conditional change of a folder takes an exclusive lock on the folder's `.conditions`
//! file (`flock`), checks, writes aside and renames; an object's version is the MD5 of
//! its bytes, as S3's ETag of an object written in one `PutObject`.

use std::fs::{File, OpenOptions};
use std::path::Path;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use md5::{Digest, Md5};

use super::{Lake, LakeError, Store, io_error, s3_error};

/// One version of an object: S3's ETag, or the MD5 of a local file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// The ETag as S3 sends it, quotes removed.
    fn of_etag(etag: &str) -> Self {
        Self(etag.trim_matches('"').to_owned())
    }

    fn of_bytes(body: &[u8]) -> Self {
        Self(format!("{:x}", Md5::digest(body)))
    }

    /// The version as text (the ETag without its quotes).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What must hold for a conditional write to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key holds no object (`If-None-Match: *`).
    Absent,
    /// The key holds this version (`If-Match`).
    Is(Version),
}

impl Lake {
    /// An object's bytes and version, or `None` if the key holds no object.
    pub async fn read_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, LakeError> {
        match self.fetch(key, None).await {
            Ok(fetched) => {
                // S3's entity tag; a local object's is the hash of its bytes.
                let version = match &fetched.e_tag {
                    Some(tag) => Version::of_etag(tag),
                    None => Version::of_bytes(&fetched.body),
                };
                Ok(Some((fetched.body, version)))
            }
            Err(LakeError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an object if `condition` holds, and returns its new version.
    pub async fn write_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: &Condition,
    ) -> Result<Version, LakeError> {
        match &self.store {
            Store::S3 {
                client: s3, bucket, ..
            } => {
                let request = s3.put_object().bucket(bucket).key(key);
                let request = match condition {
                    Condition::Absent => request.if_none_match("*"),
                    Condition::Is(version) => request.if_match(format!("\"{}\"", version.0)),
                };
                match request.body(body.into()).send().await {
                    Ok(out) => Ok(Version::of_etag(out.e_tag().unwrap_or_default())),
                    Err(e) => Err(condition_error(e, "PutObject", bucket, key)),
                }
            }
            Store::Local { .. } => {
                let path = Path::new(key);
                let _lock = FolderLock::take(path)?;
                check_local(path, condition)?;
                let version = Version::of_bytes(&body);
                self.write_local(path, &body)?;
                Ok(version)
            }
        }
    }

    /// Deletes an object if it is still at `version`.
    pub async fn delete_if(&self, key: &str, version: &Version) -> Result<(), LakeError> {
        let condition = Condition::Is(version.clone());
        match &self.store {
            Store::S3 {
                client: s3, bucket, ..
            } => s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .if_match(format!("\"{}\"", version.0))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| condition_error(e, "DeleteObject", bucket, key)),
            Store::Local { .. } => {
                let path = Path::new(key);
                let _lock = FolderLock::take(path)?;
                check_local(path, &condition)?;
                std::fs::remove_file(path).map_err(|e| io_error(path, e))
            }
        }
    }
}

/// A failed conditional request: the condition's failures (412, 409, 404) as
/// [`LakeError::PreconditionFailed`], anything else as the request's error.
fn condition_error<E>(
    error: SdkError<E, HttpResponse>,
    operation: &'static str,
    bucket: &str,
    key: &str,
) -> LakeError
where
    E: std::error::Error + Send + Sync + 'static,
{
    match error.raw_response().map(|r| r.status().as_u16()) {
        Some(404 | 409 | 412) => LakeError::PreconditionFailed {
            target: format!("s3://{bucket}/{key}"),
        },
        _ => s3_error(operation, bucket, key, error),
    }
}

/// Whether a local object's state meets `condition`.
fn check_local(path: &Path, condition: &Condition) -> Result<(), LakeError> {
    let current = match std::fs::read(path) {
        Ok(body) => Some(Version::of_bytes(&body)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(path, e)),
    };
    let holds = match condition {
        Condition::Absent => current.is_none(),
        Condition::Is(version) => current.as_ref() == Some(version),
    };
    if holds {
        Ok(())
    } else {
        Err(LakeError::PreconditionFailed {
            target: path.display().to_string(),
        })
    }
}

/// An exclusive lock on a local folder's conditional changes, released when dropped.
struct FolderLock(File);

impl FolderLock {
    fn take(object: &Path) -> Result<Self, LakeError> {
        let dir = object.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(".conditions");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        file.lock().map_err(|e| io_error(&path, e))?;
        Ok(Self(file))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeLocation;

    #[tokio::test]
    async fn a_local_key_is_created_once_and_changed_only_from_the_version_read() {
        let root =
            std::env::temp_dir().join(format!("streamlake-conditional-{}", std::process::id()));
        let lake = Lake::open(LakeLocation::Local(root.clone())).await;
        let key = root.join("log/day.json").display().to_string();
        let first = lake
            .write_if(&key, b"a".to_vec(), &Condition::Absent)
            .await
            .unwrap();
        let refused = lake.write_if(&key, b"b".to_vec(), &Condition::Absent).await;
        assert!(
            matches!(refused, Err(LakeError::PreconditionFailed { .. })),
            "{refused:?}"
        );
        let second = lake
            .write_if(&key, b"b".to_vec(), &Condition::Is(first.clone()))
            .await
            .unwrap();
        let stale = lake
            .write_if(&key, b"c".to_vec(), &Condition::Is(first.clone()))
            .await;
        assert!(
            matches!(stale, Err(LakeError::PreconditionFailed { .. })),
            "{stale:?}"
        );
        assert_eq!(
            lake.read_versioned(&key).await.unwrap(),
            Some((b"b".to_vec(), second.clone()))
        );
        assert!(lake.delete_if(&key, &first).await.is_err());
        lake.delete_if(&key, &second).await.unwrap();
        assert_eq!(lake.read_versioned(&key).await.unwrap(), None);
        // S3's ETag of a one-part object is the MD5 of its bytes.
        assert_eq!(
            Version::of_bytes(b"a").as_str(),
            "0cc175b9c0f1b6a831c399e269772661"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
