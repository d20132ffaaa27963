//! Account settings: PutAccountSetting, PutAccountSettingDefault,
//! DeleteAccountSetting, ListAccountSettings, with the values ECS allows.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// The settings ECS knows, with their allowed values and AWS's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SettingName {
    #[serde(rename = "serviceLongArnFormat")]
    ServiceLongArnFormat,
    #[serde(rename = "taskLongArnFormat")]
    TaskLongArnFormat,
    #[serde(rename = "containerInstanceLongArnFormat")]
    ContainerInstanceLongArnFormat,
    #[serde(rename = "awsvpcTrunking")]
    AwsvpcTrunking,
    #[serde(rename = "containerInsights")]
    ContainerInsights,
    #[serde(rename = "fargateFIPSMode")]
    FargateFipsMode,
    #[serde(rename = "tagResourceAuthorization")]
    TagResourceAuthorization,
    #[serde(rename = "fargateTaskRetirementWaitPeriod")]
    FargateTaskRetirementWaitPeriod,
    #[serde(rename = "guardDutyActivate")]
    GuardDutyActivate,
    #[serde(rename = "defaultLogDriverMode")]
    DefaultLogDriverMode,
    #[serde(rename = "fargateEventWindows")]
    FargateEventWindows,
}

impl SettingName {
    pub const ALL: [SettingName; 11] = [
        SettingName::ServiceLongArnFormat,
        SettingName::TaskLongArnFormat,
        SettingName::ContainerInstanceLongArnFormat,
        SettingName::AwsvpcTrunking,
        SettingName::ContainerInsights,
        SettingName::FargateFipsMode,
        SettingName::TagResourceAuthorization,
        SettingName::FargateTaskRetirementWaitPeriod,
        SettingName::GuardDutyActivate,
        SettingName::DefaultLogDriverMode,
        SettingName::FargateEventWindows,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettingName::ServiceLongArnFormat => "serviceLongArnFormat",
            SettingName::TaskLongArnFormat => "taskLongArnFormat",
            SettingName::ContainerInstanceLongArnFormat => "containerInstanceLongArnFormat",
            SettingName::AwsvpcTrunking => "awsvpcTrunking",
            SettingName::ContainerInsights => "containerInsights",
            SettingName::FargateFipsMode => "fargateFIPSMode",
            SettingName::TagResourceAuthorization => "tagResourceAuthorization",
            SettingName::FargateTaskRetirementWaitPeriod => "fargateTaskRetirementWaitPeriod",
            SettingName::GuardDutyActivate => "guardDutyActivate",
            SettingName::DefaultLogDriverMode => "defaultLogDriverMode",
            SettingName::FargateEventWindows => "fargateEventWindows",
        }
    }

    /// The values a caller may set.
    pub fn allowed_values(self) -> &'static [&'static str] {
        match self {
            SettingName::ServiceLongArnFormat
            | SettingName::TaskLongArnFormat
            | SettingName::ContainerInstanceLongArnFormat
            | SettingName::AwsvpcTrunking
            | SettingName::FargateFipsMode
            | SettingName::FargateEventWindows => &["enabled", "disabled"],
            SettingName::ContainerInsights => &["enabled", "disabled", "enhanced"],
            SettingName::TagResourceAuthorization | SettingName::GuardDutyActivate => {
                &["on", "off"]
            }
            SettingName::FargateTaskRetirementWaitPeriod => &["0", "7", "14"],
            SettingName::DefaultLogDriverMode => &["blocking", "non-blocking"],
        }
    }

    /// The value in force when neither the principal nor the account set one.
    pub fn aws_default(self) -> &'static str {
        match self {
            SettingName::ServiceLongArnFormat
            | SettingName::TaskLongArnFormat
            | SettingName::ContainerInstanceLongArnFormat => "enabled",
            SettingName::AwsvpcTrunking
            | SettingName::ContainerInsights
            | SettingName::FargateFipsMode
            | SettingName::FargateEventWindows => "disabled",
            SettingName::TagResourceAuthorization => "on",
            SettingName::GuardDutyActivate => "off",
            SettingName::FargateTaskRetirementWaitPeriod => "7",
            SettingName::DefaultLogDriverMode => "non-blocking",
        }
    }

    pub fn validate_value(self, value: &str) -> ApiResult<()> {
        if self.allowed_values().contains(&value) {
            return Ok(());
        }
        Err(ApiError::invalid_parameter(format!(
            "Invalid value '{value}' for setting {}: expected one of {}.",
            self.as_str(),
            self.allowed_values().join(", ")
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    User,
    AwsManaged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub name: SettingName,
    pub value: String,
    pub principal_arn: String,
    #[serde(rename = "type")]
    pub setting_type: SettingType,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAccountSettingRequest {
    pub name: SettingName,
    pub value: String,
    pub principal_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAccountSettingDefaultRequest {
    pub name: SettingName,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAccountSettingRequest {
    pub name: SettingName,
    pub principal_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListAccountSettingsRequest {
    pub name: Option<SettingName>,
    pub value: Option<String>,
    pub principal_arn: Option<String>,
    #[serde(default)]
    pub effective_settings: bool,
    pub next_token: Option<String>,
    pub max_results: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingResponse {
    pub setting: Setting,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListAccountSettingsResponse {
    pub settings: Vec<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
