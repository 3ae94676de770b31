//! TagResource, UntagResource, ListResourceTags.

use super::*;

#[async_trait::async_trait]
impl KmsOperation for TagResourceRequest {
    const NAME: &'static str = "TagResource";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let tags = validate_tags(required(&self.tags, "tags")?)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            Kms::record_not_pending_deletion(r, arn)?;
            merge_tags(&mut r.tags, tags)
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for UntagResourceRequest {
    const NAME: &'static str = "UntagResource";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let keys = required(&self.tag_keys, "tagKeys")?;
        for k in keys {
            length("tagKeys", k, 1, 128)?;
        }
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            Kms::record_not_pending_deletion(r, arn)?;
            r.tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListResourceTagsRequest {
    const NAME: &'static str = "ListResourceTags";
    const READ_ONLY: bool = true;
    type Output = ListResourceTagsResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let limit = limit(self.limit, 50)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let indexed: Vec<(usize, (String, String))> =
            key.record.tags.iter().cloned().enumerate().collect();
        let (page, next, truncated) =
            paginate(indexed, |(i, _)| format!("{i:08}"), &self.marker, limit)?;
        Ok(ListResourceTagsResponse {
            tags: Some(
                page.into_iter()
                    .map(|(_, (k, v))| Tag {
                        tag_key: Some(k),
                        tag_value: Some(v),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}
