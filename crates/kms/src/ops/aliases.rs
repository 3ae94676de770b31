//! CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use super::*;

pub(super) async fn alias_target_key(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    target: &Option<String>,
) -> KmsResult<std::sync::Arc<LoadedKey>> {
    let target = key_id_member(target, "targetKeyId")?;
    let key = kms.resolve(ctx, target, false).await?;
    Kms::not_pending_deletion(&key)?;
    Ok(key)
}

/// Alias actions need permission on the alias itself (from IAM policies: an alias has no
/// policy of its own) besides the key's.
async fn authorize_alias(kms: &Kms, ctx: &KmsCall<'_>, name: &str) -> KmsResult<()> {
    let arn = alias_arn(&ctx.region, &ctx.principal.account_id, name);
    kms.authorize_resource(ctx, &arn, ctx.action()).await
}

pub(super) fn alias_resource(ctx: &CallContext, name: &str) -> Resource {
    Resource {
        account_id: Some(ctx.principal.account_id.clone()),
        resource_type: "AWS::KMS::Alias".into(),
        arn: alias_arn(&ctx.region, &ctx.principal.account_id, name),
    }
}

#[async_trait::async_trait]
impl KmsOperation for CreateAliasRequest {
    const NAME: &'static str = "CreateAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        validate_alias_name(name)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        authorize_alias(kms, ctx, name).await?;
        let key = alias_target_key(kms, ctx, &self.target_key_id).await?;
        note_key(notes, &key);
        let existing = kms
            .aliases_of(&ctx.principal.account_id, &ctx.region)
            .await?;
        if existing
            .values()
            .filter(|a| a.target_key_id == key.record.key_id)
            .count()
            >= MAX_ALIASES_PER_KEY
        {
            return Err(KmsError::LimitExceeded(format!(
                "A KMS key can have at most {MAX_ALIASES_PER_KEY} aliases."
            )));
        }
        let now = now_ms();
        kms.create_alias_row(AliasRow {
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            alias_name: name.clone(),
            target_key_id: key.record.key_id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for UpdateAliasRequest {
    const NAME: &'static str = "UpdateAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        validate_alias_name(name)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        authorize_alias(kms, ctx, name).await?;
        let key = alias_target_key(kms, ctx, &self.target_key_id).await?;
        note_key(notes, &key);
        kms.update_alias_row(AliasRow {
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            alias_name: name.clone(),
            target_key_id: key.record.key_id.clone(),
            created_at_ms: 0,
            updated_at_ms: now_ms(),
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DeleteAliasRequest {
    const NAME: &'static str = "DeleteAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        length("aliasName", name, 1, 256)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        authorize_alias(kms, ctx, name).await?;
        if let Some(alias) = kms
            .aliases_of(&ctx.principal.account_id, &ctx.region)
            .await?
            .get(name.as_str())
        {
            kms.resolve(ctx, &alias.target_key_id, false).await?;
        }
        kms.delete_alias_row(&ctx.principal.account_id, &ctx.region, name)
            .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListAliasesRequest {
    const NAME: &'static str = "ListAliases";
    const READ_ONLY: bool = true;
    type Output = ListAliasesResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let limit = limit(self.limit, 50)?;
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let filter = match &self.key_id {
            Some(k) => {
                length("keyId", k, 1, 2048)?;
                let key = kms.resolve(ctx, k, false).await?;
                note_key(notes, &key);
                Some(key.record.key_id.clone())
            }
            None => None,
        };
        let aliases = kms
            .aliases_of(&ctx.principal.account_id, &ctx.region)
            .await?;
        let rows: Vec<AliasRow> = aliases
            .values()
            .filter(|a| filter.as_ref().is_none_or(|k| &a.target_key_id == k))
            .cloned()
            .collect();
        let (page, next, truncated) =
            paginate(rows, |a| a.alias_name.clone(), &self.marker, limit)?;
        Ok(ListAliasesResponse {
            aliases: Some(
                page.iter()
                    .map(|a| AliasListEntry {
                        alias_name: Some(a.alias_name.clone()),
                        alias_arn: Some(alias_arn(&a.region, &a.account_id, &a.alias_name)),
                        target_key_id: Some(a.target_key_id.clone()),
                        creation_date: Some(epoch_seconds(a.created_at_ms)),
                        last_updated_date: Some(epoch_seconds(a.updated_at_ms)),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}
