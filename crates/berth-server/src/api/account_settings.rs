//! PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting,
//! ListAccountSettings. A setting is resolved as ECS resolves it: the principal's own,
//! else the account default (set on the root principal), else AWS's default.

use berth_model::account_setting::*;
use berth_model::pagination::{PageRequest, page};
use berth_model::{ApiError, ApiResult};
use berth_store::{Compare, Snapshot, Txn};

use super::Ctx;
use crate::state::{self, keys};

fn validate_principal(principal_arn: &str) -> ApiResult<()> {
    let valid = principal_arn.starts_with("arn:aws:iam::")
        && principal_arn.split(':').count() == 6
        && !principal_arn.ends_with(':');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "Invalid principalArn '{principal_arn}': expected an IAM user, role or root ARN."
        )))
    }
}

async fn put(
    ctx: &Ctx<'_>,
    name: SettingName,
    value: String,
    principal_arn: String,
) -> ApiResult<SettingResponse> {
    name.validate_value(&value)?;
    validate_principal(&principal_arn)?;
    let key = keys::setting(ctx.region(), &principal_arn, name.as_str());
    let setting = Setting {
        name,
        value,
        principal_arn,
        setting_type: SettingType::User,
    };
    let record = state::encode_record(&setting)?;
    state::write(ctx.store, |snapshot| {
        let revision = snapshot.get(&key).map_or(0, |kv| kv.mod_revision);
        let txn = Txn::new()
            .when(Compare::unchanged(&key, revision))
            .put(&key, record.clone());
        Ok((
            Some(txn),
            SettingResponse {
                setting: setting.clone(),
            },
        ))
    })
    .await
}

pub async fn put_account_setting(
    ctx: &Ctx<'_>,
    req: PutAccountSettingRequest,
) -> ApiResult<SettingResponse> {
    let principal = req
        .principal_arn
        .unwrap_or_else(|| ctx.principal_arn.clone());
    put(ctx, req.name, req.value, principal).await
}

pub async fn put_account_setting_default(
    ctx: &Ctx<'_>,
    req: PutAccountSettingDefaultRequest,
) -> ApiResult<SettingResponse> {
    put(ctx, req.name, req.value, ctx.scope.account_root_arn()).await
}

pub async fn delete_account_setting(
    ctx: &Ctx<'_>,
    req: DeleteAccountSettingRequest,
) -> ApiResult<SettingResponse> {
    let principal = req
        .principal_arn
        .unwrap_or_else(|| ctx.principal_arn.clone());
    validate_principal(&principal)?;
    let key = keys::setting(ctx.region(), &principal, req.name.as_str());
    state::write(ctx.store, |snapshot| {
        let found = state::read::<Setting>(snapshot, &key)?.ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "The setting {} is not set for principal {principal}.",
                req.name.as_str()
            ))
        })?;
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .delete(&key);
        Ok((
            Some(txn),
            SettingResponse {
                setting: found.value,
            },
        ))
    })
    .await
}

/// The setting in force for `principal`, falling back as ECS does.
fn effective(
    ctx: &Ctx<'_>,
    snapshot: &Snapshot,
    principal: &str,
    name: SettingName,
) -> ApiResult<Setting> {
    let root = ctx.scope.account_root_arn();
    for owner in [principal, root.as_str()] {
        if let Some(found) =
            state::read::<Setting>(snapshot, &keys::setting(ctx.region(), owner, name.as_str()))?
        {
            return Ok(found.value);
        }
    }
    Ok(Setting {
        name,
        value: name.aws_default().to_string(),
        principal_arn: root,
        setting_type: SettingType::AwsManaged,
    })
}

pub async fn list_account_settings(
    ctx: &Ctx<'_>,
    req: ListAccountSettingsRequest,
) -> ApiResult<ListAccountSettingsResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 10, 10)?;
    if req.value.is_some() && req.name.is_none() {
        return Err(ApiError::invalid_parameter(
            "value can only be given with name.",
        ));
    }
    let principal = req
        .principal_arn
        .clone()
        .unwrap_or_else(|| ctx.principal_arn.clone());
    validate_principal(&principal)?;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let names: Vec<SettingName> = match req.name {
        Some(name) => vec![name],
        None => SettingName::ALL.to_vec(),
    };
    let mut settings = Vec::new();
    for name in names {
        let setting = if req.effective_settings {
            Some(effective(ctx, &snapshot, &principal, name)?)
        } else {
            state::read::<Setting>(
                &snapshot,
                &keys::setting(ctx.region(), &principal, name.as_str()),
            )?
            .map(|found| found.value)
        };
        if let Some(setting) = setting
            && req
                .value
                .as_deref()
                .is_none_or(|value| value == setting.value)
        {
            settings.push(setting);
        }
    }
    if let Some(after) = &page_request.after {
        settings.retain(|s| s.name.as_str() > after.as_str());
    }
    settings.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let (settings, next_token) = page(settings, page_request.limit, |s| {
        s.name.as_str().to_string()
    });
    Ok(ListAccountSettingsResponse {
        settings,
        next_token,
    })
}
