//! An S3 object's body as a blocking reader, filled by a task as the bytes arrive: a large
//! object is decoded while it downloads, and never held whole.

use std::io::{self, Read};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::LakeError;

/// Chunks of the body read ahead of the reader.
const AHEAD: usize = 8;

/// The body of one object, read as its chunks arrive. Reading blocks: read it on a
/// blocking thread (`tokio::task::spawn_blocking`), not on the runtime's.
pub(super) struct StreamedBody {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

/// Starts receiving `body` (of the object at `target`), failing the read past `limit`
/// bytes; must be called within a Tokio runtime.
pub(super) fn streamed(mut body: ByteStream, target: String, limit: u64) -> StreamedBody {
    let (tx, chunks) = mpsc::channel(AHEAD);
    tokio::spawn(async move {
        let mut total = 0u64;
        loop {
            let chunk = match body.try_next().await {
                Ok(None) => return,
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        Err(io::Error::other(LakeError::TooLarge {
                            key: target.clone(),
                            size: total,
                            limit,
                        }))
                    } else {
                        Ok(chunk)
                    }
                }
                Err(e) => Err(io::Error::other(LakeError::S3 {
                    operation: "GetObject",
                    target: target.clone(),
                    source: Box::new(e),
                })),
            };
            let failed = chunk.is_err();
            // A reader gone (dropped mid-object) stops the download.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    StreamedBody {
        chunks,
        current: Bytes::new(),
    }
}

impl Read for StreamedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
