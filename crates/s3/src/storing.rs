//! Storing bodies: a body streams in, is sealed segment by segment under its data key while its
//! checksums are computed, and becomes durable only after every stated checksum matched.
//!
//! A body of one segment (64 KiB or less) stays in memory and is stored in the object's row, so
//! it is durable with the store's group commit of that row; larger bodies go to a temporary file
//! that is fsynced and renamed into the bucket's directory before the row commits. Either way no
//! plaintext byte reaches the disk and nothing is left behind when a check fails.

use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::Checksum;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use tokio::io::AsyncWriteExt;

use crate::body::{self, BodyKey, SEGMENT_LEN};
use crate::checksums::{BodyInput, Digester};
use crate::{S3Engine, internal};

/// Where a stored body is.
pub(crate) enum BodyPlace {
    /// Sealed segments for the object's row.
    Inline(Vec<u8>),
    /// A file in the bucket's directory.
    File(PathBuf),
}

pub(crate) struct StoredBody {
    pub(crate) size: u64,
    /// When [`BodyInput::md5`] asked for it.
    pub(crate) md5: Option<Vec<u8>>,
    pub(crate) computed: Checksum,
    pub(crate) place: BodyPlace,
}

impl StoredBody {
    /// The sealed segments for the object's row, when the body is stored there (moved out, so
    /// taken once).
    pub(crate) fn take_inline_body(&mut self) -> Option<Vec<u8>> {
        match &mut self.place {
            BodyPlace::Inline(sealed) => Some(std::mem::take(sealed)),
            BodyPlace::File(_) => None,
        }
    }

    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.place, BodyPlace::Inline(_))
    }

    /// Removes what was stored, when its record could not be written.
    pub(crate) async fn discard(&self) {
        if let BodyPlace::File(path) = &self.place {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// Where sealed segments go while a body streams in.
enum Sink {
    Memory(Vec<u8>),
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

/// Seals a body into segments as it streams in. A full segment is held back until more data
/// arrives, because only then is it known not to be the last one; a body whose first sealed
/// segment is also its last stays in memory when `inline` allows it.
struct SegmentWriter<'a> {
    key: &'a BodyKey,
    sink: Sink,
    tmp_dir: PathBuf,
    index: u64,
    held: Option<Vec<u8>>,
    buffer: Vec<u8>,
}

impl<'a> SegmentWriter<'a> {
    fn new(key: &'a BodyKey, tmp_dir: PathBuf) -> Self {
        Self {
            key,
            sink: Sink::Memory(Vec::new()),
            tmp_dir,
            index: 0,
            held: None,
            buffer: Vec::with_capacity(SEGMENT_LEN + body::TAG_LEN),
        }
    }

    /// From memory to a temporary file (with what memory held so far).
    async fn spill(&mut self) -> S3Result<()> {
        if let Sink::Memory(held) = &mut self.sink {
            let held = std::mem::take(held);
            let path = self.tmp_dir.join(uuid::Uuid::new_v4().to_string());
            let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
            // The sink is the file from here on, so a failure below still removes it.
            let result = file.write_all(&held).await;
            self.sink = Sink::File { file, path };
            result.map_err(internal)?;
        }
        Ok(())
    }

    async fn write(&mut self, mut segment: Vec<u8>, last: bool) -> S3Result<()> {
        self.key
            .seal(self.index, last, &mut segment)
            .map_err(internal)?;
        if !(last && self.index == 0) {
            self.spill().await?;
        }
        match &mut self.sink {
            Sink::Memory(bytes) => bytes.extend_from_slice(&segment),
            Sink::File { file, .. } => file.write_all(&segment).await.map_err(internal)?,
        }
        self.index += 1;
        Ok(())
    }

    async fn push(&mut self, mut data: &[u8]) -> S3Result<()> {
        while !data.is_empty() {
            if let Some(held) = self.held.take() {
                self.write(held, false).await?;
            }
            let take = (SEGMENT_LEN - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == SEGMENT_LEN {
                let full = std::mem::replace(
                    &mut self.buffer,
                    Vec::with_capacity(SEGMENT_LEN + body::TAG_LEN),
                );
                self.held = Some(full);
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> S3Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        match self.held.take() {
            Some(held) if buffer.is_empty() => self.write(held, true).await,
            Some(held) => {
                self.write(held, false).await?;
                self.write(buffer, true).await
            }
            None => self.write(buffer, true).await,
        }
    }
}

impl S3Engine {
    /// Streams a body into sealed segments, checks every stated checksum and Content-MD5, then
    /// makes it durable: in memory for the object's row when it is one segment and `inline`
    /// allows it (multipart parts are always files), else fsynced and renamed to `file_name` in
    /// the bucket's directory. Nothing is left behind when a check fails.
    pub(crate) async fn store_body(
        &self,
        bucket: &str,
        file_name: &str,
        body_key: &BodyKey,
        input: BodyInput,
        inline: bool,
    ) -> S3Result<StoredBody> {
        let BodyInput {
            body,
            expected,
            hasher,
            trailing,
            content_md5,
            large,
            md5,
        } = input;
        let mut writer = SegmentWriter::new(body_key, self.objects_dir.join("tmp"));
        let mut digester = Digester::new(hasher, large, md5 || content_md5.is_some());
        let result: S3Result<u64> = async {
            if !inline {
                writer.spill().await?;
            }
            let mut size = 0u64;
            if let Some(mut stream) = body {
                while let Some(chunk) = stream.next().await {
                    let chunk: Bytes = chunk.map_err(|e| {
                        S3Error::with_message(S3ErrorCode::IncompleteBody, e.to_string())
                    })?;
                    digester.update(&chunk).await;
                    size += chunk.len() as u64;
                    writer.push(&chunk).await?;
                }
            }
            writer.finish().await?;
            Ok(size)
        }
        .await;
        let digests = digester.finish().await;
        let result = result.and_then(|size| digests.map(|d| (size, d)));
        let checked = result.and_then(|(size, (digest, computed))| {
            let trailer_values = trailing.and_then(|t| t.take());
            expected.verify(&computed, trailer_values.as_ref())?;
            if let Some(stated) = &content_md5 {
                let given = base64::engine::general_purpose::STANDARD
                    .decode(stated)
                    .map_err(|_| {
                        s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
                    })?;
                if digest.as_deref() != Some(given.as_slice()) {
                    return Err(s3_error!(
                        BadDigest,
                        "The Content-MD5 you specified did not match what we received."
                    ));
                }
            }
            Ok((size, digest, computed))
        });
        let (size, md5, computed) = match checked {
            Ok(v) => v,
            Err(e) => {
                if let Sink::File { file, path } = writer.sink {
                    drop(file);
                    let _ = tokio::fs::remove_file(&path).await;
                }
                return Err(e);
            }
        };
        let place = match writer.sink {
            Sink::Memory(sealed) => BodyPlace::Inline(sealed),
            Sink::File {
                file,
                path: tmp_path,
            } => {
                file.sync_all().await.map_err(internal)?;
                drop(file);
                let dir = self.objects_dir.join(bucket);
                tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
                let path = dir.join(file_name);
                tokio::fs::rename(&tmp_path, &path)
                    .await
                    .map_err(internal)?;
                if let Ok(dir) = tokio::fs::File::open(&dir).await {
                    let _ = dir.sync_all().await;
                }
                BodyPlace::File(path)
            }
        };
        Ok(StoredBody {
            size,
            md5,
            computed,
            place,
        })
    }
}
