//! How requests name a task definition: `family` (its latest ACTIVE revision),
//! `family:revision`, or the full ARN
//! `arn:PARTITION:ecs:REGION:ACCOUNT:task-definition/family:revision`.

use crate::error::{ApiError, ApiResult};

/// A parsed task definition reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskDefinitionRef {
    /// `family`: the latest ACTIVE revision of the family.
    Family(String),
    /// `family:revision`.
    Revision { family: String, revision: i32 },
    /// A full ARN; region and account are kept so that the caller can check they are
    /// its own.
    Arn {
        partition: String,
        region: String,
        account: String,
        family: String,
        revision: i32,
    },
}

impl TaskDefinitionRef {
    pub fn family(&self) -> &str {
        match self {
            TaskDefinitionRef::Family(family) => family,
            TaskDefinitionRef::Revision { family, .. } | TaskDefinitionRef::Arn { family, .. } => {
                family
            }
        }
    }

    /// The revision named, `None` for the latest ACTIVE one.
    pub fn revision(&self) -> Option<i32> {
        match self {
            TaskDefinitionRef::Family(_) => None,
            TaskDefinitionRef::Revision { revision, .. }
            | TaskDefinitionRef::Arn { revision, .. } => Some(*revision),
        }
    }
}

/// Whether `name` is a valid family: 1-255 letters, digits, hyphens and underscores.
/// Container and volume names follow the same rule.
pub fn is_valid_family(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a task definition reference as DescribeTaskDefinition, RunTask and the
/// like take it. Errors are `ClientException`s naming the reference, as ECS's are.
pub fn family_and_revision(text: &str) -> ApiResult<TaskDefinitionRef> {
    if let Some(rest) = text.strip_prefix("arn:") {
        return parse_arn(text, rest);
    }
    match text.split_once(':') {
        None => {
            if !is_valid_family(text) {
                return Err(invalid_family(text));
            }
            Ok(TaskDefinitionRef::Family(text.to_string()))
        }
        Some((family, revision)) => {
            if !is_valid_family(family) {
                return Err(invalid_family(text));
            }
            let revision = parse_revision(revision)?;
            Ok(TaskDefinitionRef::Revision {
                family: family.to_string(),
                revision,
            })
        }
    }
}

fn parse_arn(text: &str, rest: &str) -> ApiResult<TaskDefinitionRef> {
    let invalid = || ApiError::client(format!("Invalid task definition ARN: {text}"));
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if partition.is_empty() || service != "ecs" || region.is_empty() || account.is_empty() {
        return Err(invalid());
    }
    let name = resource
        .strip_prefix("task-definition/")
        .ok_or_else(invalid)?;
    let (family, revision) = name.rsplit_once(':').ok_or_else(invalid)?;
    if !is_valid_family(family) {
        return Err(invalid());
    }
    let revision = parse_revision(revision)?;
    Ok(TaskDefinitionRef::Arn {
        partition: partition.to_string(),
        region: region.to_string(),
        account: account.to_string(),
        family: family.to_string(),
        revision,
    })
}

fn parse_revision(text: &str) -> ApiResult<i32> {
    text.parse::<i32>()
        .ok()
        .filter(|revision| *revision >= 1 && !text.starts_with('+'))
        .ok_or_else(|| ApiError::client(format!("Invalid revision number. Number: {text}")))
}

fn invalid_family(text: &str) -> ApiError {
    ApiError::client(format!(
        "Invalid task definition '{text}': the family must be 1-255 letters, numbers, hyphens and underscores."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn family_alone_is_the_latest() -> ApiResult<()> {
        let parsed = family_and_revision("web-app_2")?;
        assert_eq!(parsed, TaskDefinitionRef::Family("web-app_2".into()));
        assert_eq!((parsed.family(), parsed.revision()), ("web-app_2", None));
        Ok(())
    }

    #[test]
    fn family_and_revision_number() -> ApiResult<()> {
        let parsed = family_and_revision("web:3")?;
        assert_eq!(
            parsed,
            TaskDefinitionRef::Revision {
                family: "web".into(),
                revision: 3
            }
        );
        assert_eq!(parsed.revision(), Some(3));
        Ok(())
    }

    #[test]
    fn full_arn() -> ApiResult<()> {
        let parsed =
            family_and_revision("arn:aws:ecs:us-east-1:123456789012:task-definition/web:12")?;
        assert_eq!(
            parsed,
            TaskDefinitionRef::Arn {
                partition: "aws".into(),
                region: "us-east-1".into(),
                account: "123456789012".into(),
                family: "web".into(),
                revision: 12,
            }
        );
        assert_eq!((parsed.family(), parsed.revision()), ("web", Some(12)));
        Ok(())
    }

    #[test]
    fn refusals_are_client_exceptions_naming_the_input() {
        for text in [
            "",
            "web app",
            "web:",
            "web:0",
            "web:-1",
            "web:+1",
            "web:x",
            "web:1:2",
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web",
            "arn:aws:ecs:us-east-1:123456789012:cluster/web:1",
            "arn:aws:s3:us-east-1:123456789012:task-definition/web:1",
            "arn:aws:ecs:us-east-1",
        ] {
            let err = family_and_revision(text).err();
            assert_eq!(
                err.as_ref().map(|e| e.code),
                Some(ErrorCode::ClientException),
                "{text}"
            );
            let message = err.map(|e| e.message).unwrap_or_default();
            let named = text.is_empty() || message.contains(text) || message.contains("Number");
            assert!(named, "{text}: {message}");
        }
    }
}
