//! Reading objects back: conditional requests, byte ranges, and the stream that decrypts an
//! object's pieces segment by segment as the client consumes them.

use std::path::PathBuf;

use bytes::Bytes;
use keytrail_store::ObjectRow;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::body::{BodyKey, SEGMENT_LEN};
use crate::encryption::version_bytes;
use crate::record::ObjectRecord;
use crate::{S3Engine, body, internal};

/// Where a piece's sealed segments are.
pub(crate) enum PieceSource {
    File(PathBuf),
    /// In the object's row.
    Inline(Bytes),
}

/// What to read of one piece of an object.
pub(crate) struct PieceRead {
    pub(crate) source: PieceSource,
    pub(crate) key: BodyKey,
    pub(crate) size: u64,
    pub(crate) range: std::ops::Range<u64>,
}

/// Reads the pieces of an object one after another.
pub(crate) struct ObjectReader {
    /// In reverse order, so the next one is popped from the end.
    pub(crate) pending: Vec<PieceRead>,
    pub(crate) current: Option<SegmentReader>,
}

impl ObjectReader {
    pub(crate) async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(reader) = &mut self.current {
                if let Some(chunk) = reader.next_chunk().await? {
                    return Ok(Some(chunk));
                }
                self.current = None;
            }
            let Some(piece) = self.pending.pop() else {
                return Ok(None);
            };
            let first = piece.range.start / SEGMENT_LEN as u64;
            let offset = body::stored_offset(first);
            let source = match piece.source {
                PieceSource::File(path) => {
                    let mut file = tokio::fs::File::open(&path).await?;
                    file.seek(std::io::SeekFrom::Start(offset)).await?;
                    SegmentSource::File(file)
                }
                PieceSource::Inline(sealed) => {
                    let start = usize::try_from(offset).unwrap_or(usize::MAX);
                    SegmentSource::Inline(sealed.slice(start.min(sealed.len())..))
                }
            };
            self.current = Some(SegmentReader {
                source,
                key: piece.key,
                next: first,
                count: body::segment_count(piece.size),
                size: piece.size,
                range: piece.range,
            });
        }
    }
}

/// The rest of a piece's sealed segments.
pub(crate) enum SegmentSource {
    File(tokio::fs::File),
    Inline(Bytes),
}

/// Reads and opens one segment after another for [`S3Engine::range_stream`].
pub(crate) struct SegmentReader {
    pub(crate) source: SegmentSource,
    pub(crate) key: BodyKey,
    pub(crate) next: u64,
    pub(crate) count: u64,
    pub(crate) size: u64,
    pub(crate) range: std::ops::Range<u64>,
}

impl SegmentReader {
    pub(crate) async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        let seg_start = self.next * SEGMENT_LEN as u64;
        if self.range.start >= self.range.end || seg_start >= self.range.end {
            return Ok(None);
        }
        let len = body::stored_len(self.size, self.next);
        let mut sealed = vec![0u8; len];
        match &mut self.source {
            SegmentSource::File(file) => {
                file.read_exact(&mut sealed).await?;
            }
            SegmentSource::Inline(rest) => {
                if rest.len() < len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "an inline body is shorter than its record says",
                    ));
                }
                sealed.copy_from_slice(&rest.split_to(len));
            }
        }
        let plain = self
            .key
            .open(self.next, self.next + 1 == self.count, &mut sealed)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let from = usize::try_from(self.range.start.saturating_sub(seg_start)).unwrap_or(0);
        let to = usize::try_from((self.range.end - seg_start).min(plain.len() as u64)).unwrap_or(0);
        let chunk = Bytes::copy_from_slice(&plain[from..to]);
        self.next += 1;
        Ok(Some(chunk))
    }
}

/// The conditional headers of GET and HEAD (RFC 9110 §13, as S3 applies them).
pub(crate) struct Conditions<'a> {
    pub(crate) if_match: &'a Option<ETagCondition>,
    pub(crate) if_none_match: &'a Option<ETagCondition>,
    pub(crate) if_modified_since: &'a Option<Timestamp>,
    pub(crate) if_unmodified_since: &'a Option<Timestamp>,
}

pub(crate) fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

pub(crate) fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions<'_> {
    pub(crate) fn check(&self, row: &ObjectRow) -> S3Result<()> {
        let modified = row.modified_at_ms.div_euclid(1000);
        let precondition_failed = || {
            S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
        };
        if let Some(condition) = self.if_match {
            if !etag_matches(condition, &row.etag) {
                return Err(precondition_failed());
            }
        } else if let Some(since) = self.if_unmodified_since
            && modified > seconds(since)
        {
            return Err(precondition_failed());
        }
        let not_modified = || {
            let mut e = S3Error::new(S3ErrorCode::NotModified);
            e.set_status_code(http::StatusCode::NOT_MODIFIED);
            e
        };
        if let Some(condition) = self.if_none_match {
            if etag_matches(condition, &row.etag) {
                return Err(not_modified());
            }
        } else if let Some(since) = self.if_modified_since
            && modified <= seconds(since)
        {
            return Err(not_modified());
        }
        Ok(())
    }
}

/// `bytes=first-last` of UploadPartCopy, inclusive, within the source object.
pub(crate) fn parse_copy_range(text: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(first..last + 1)
}

impl S3Engine {
    /// A stream of the decrypted bytes of `range`, one segment in memory at a time, so a GET
    /// of any size needs bounded memory and a range decrypts only the segments it covers. The
    /// stream takes the row's inline body, if any, rather than copying it.
    pub(crate) fn range_stream(
        &self,
        row: &mut ObjectRow,
        record: &ObjectRecord,
        data_key: &[u8],
        range: std::ops::Range<u64>,
    ) -> S3Result<StreamingBlob> {
        let inline = row.inline_body.take().map(Bytes::from);
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for piece in record.pieces() {
            let (start, end) = (offset, offset + piece.size);
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            let version = version_bytes(&piece.version_id)?;
            let source = match (&inline, record.inline) {
                (Some(sealed), true) => PieceSource::Inline(sealed.clone()),
                (None, true) => return Err(internal("an inline object's row has no body")),
                (_, false) => PieceSource::File(self.body_path(&row.bucket, &piece.file)),
            };
            pieces.push(PieceRead {
                source,
                key: BodyKey::new(data_key, version).map_err(internal)?,
                size: piece.size,
                range: range.start.max(start) - start..range.end.min(end) - start,
            });
        }
        pieces.reverse();
        let state = ObjectReader {
            pending: pieces,
            current: None,
        };
        let stream = futures::stream::try_unfold(state, |mut state| async move {
            let chunk = state.next_chunk().await?;
            Ok::<_, std::io::Error>(chunk.map(|c| (c, state)))
        });
        Ok(StreamingBlob::wrap(stream))
    }
}
