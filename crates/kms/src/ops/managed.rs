//! AWS managed keys: the key a service uses when the caller names none (`alias/aws/s3`),
//! created on first use as AWS creates it, rotated every year, with the alias AWS reserves.

use super::*;

/// Creates (once per account and region) and names the AWS managed key of a service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateAwsManagedKey {
    /// `s3`, as in `alias/aws/s3`.
    #[serde(rename = "Service")]
    pub service: String,
}

#[async_trait::async_trait]
impl KmsOperation for CreateAwsManagedKey {
    const NAME: &'static str = "CreateKey";
    const READ_ONLY: bool = false;
    type Output = String;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        // The service creates its key for the caller; the caller needs no permission for that.
        ctx.authorized_by_service();
        let alias = format!("alias/aws/{}", self.service);
        if let Ok(key) = kms.lookup(ctx, &alias, true).await {
            note_key(notes, &key);
            return Ok(key.arn.clone());
        }
        let fresh = KeyRecord::new(
            uuid::Uuid::new_v4().to_string(),
            ctx.principal.account_id.clone(),
            ctx.region.clone(),
        );
        let record = KeyRecord {
            description: format!(
                "Default key that protects my {} data when no other key is defined",
                self.service.to_uppercase()
            ),
            policy: aws_managed_policy(&ctx.principal.account_id, &ctx.region, &self.service),
            // AWS managed keys rotate every year and that cannot be changed.
            rotation_enabled: true,
            rotation_period_days: Some(365),
            next_rotation_ms: Some(fresh.created_ms + 365 * DAY_MS),
            aws_managed: true,
            ..fresh
        };
        let now = record.created_ms;
        let key = kms.insert_key(record).await?;
        note_key(notes, &key);
        kms.create_alias_row(AliasRow {
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            alias_name: alias,
            target_key_id: key.record.key_id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        })
        .await?;
        Ok(key.arn.clone())
    }
}
