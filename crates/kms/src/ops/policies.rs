//! GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.

use super::*;

pub(super) fn policy_name(name: &Option<String>) -> KmsResult<()> {
    match name.as_deref() {
        None | Some("default") => Ok(()),
        Some(other) => {
            length("policyName", other, 1, 128)?;
            if !other
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(KmsError::constraint(
                    "policyName",
                    other,
                    "Member must satisfy regular expression pattern: [\\w]+",
                ));
            }
            Err(KmsError::NotFound(format!(
                "No such policy exists: {other}"
            )))
        }
    }
}

#[async_trait::async_trait]
impl KmsOperation for GetKeyPolicyRequest {
    const NAME: &'static str = "GetKeyPolicy";
    const READ_ONLY: bool = true;
    type Output = GetKeyPolicyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        policy_name(&self.policy_name)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        Ok(GetKeyPolicyResponse {
            policy: Some(key.record.policy.clone()),
            policy_name: Some("default".into()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for PutKeyPolicyRequest {
    const NAME: &'static str = "PutKeyPolicy";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        if self.policy_name.as_deref().is_some_and(|n| n != "default") {
            policy_name(&self.policy_name)?;
        }
        let policy = required(&self.policy, "policy")?;
        let parsed = validate_policy(policy)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        if self.bypass_policy_lockout_safety_check != Some(true) {
            kms.check_policy_lockout(ctx, &key.record, &parsed).await?;
        }
        kms.update_key(&key, |r, _| {
            r.policy = policy.clone();
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListKeyPoliciesRequest {
    const NAME: &'static str = "ListKeyPolicies";
    const READ_ONLY: bool = true;
    type Output = ListKeyPoliciesResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let limit = limit(self.limit, 100)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let (page, next, truncated) = paginate(
            vec!["default".to_string()],
            Clone::clone,
            &self.marker,
            limit,
        )?;
        Ok(ListKeyPoliciesResponse {
            policy_names: Some(page),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}
