//! Small shapes that many ECS operations share: tags, name/value pairs, attributes
//! and the per-item failures of batch calls.

use serde::{Deserialize, Serialize};

/// Defines an ECS enum: a Rust enum whose variants (de)serialize as the exact wire
/// strings of the ECS model, with `as_str`, `ALL` and `Display`.
///
/// An unknown wire value is a decode error, which `decode` reports as an
/// `InvalidParameterException` naming the member.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),+
        }

        impl $name {
            /// Every value, in the order of the ECS model.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as it is on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// The value with this wire form, if any.
            #[allow(dead_code)] // not every enum is parsed from text
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

/// A tag: metadata a user attaches to a resource. Both members are optional in the
/// ECS model; the tagging rules (key 1-128, value 0-256) are checked where tags are
/// accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A name/value pair: environment variables, proxy properties, cluster statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyValuePair {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An attribute: of a container instance (custom or agent-reported) or one a task
/// definition requires of the instance it is placed on.
///
/// `targetType` is an enum in the ECS model whose only value is
/// `container-instance`; it stays a string here so that the attribute operations can
/// answer an unknown value with their own message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

impl Attribute {
    /// An attribute with a name only, as in a task definition's `requiresAttributes`.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// One item a batch operation could not act on (`failures` in Describe* responses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    wire_enum! {
        /// A test enum.
        pub enum Sample {
            One = "one",
            TwoWords = "TWO_WORDS",
        }
    }

    #[test]
    fn wire_enum_uses_the_wire_values() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Sample::TwoWords)?, "\"TWO_WORDS\"");
        assert_eq!(serde_json::from_str::<Sample>("\"one\"")?, Sample::One);
        assert!(serde_json::from_str::<Sample>("\"One\"").is_err());
        assert_eq!(Sample::ALL.len(), 2);
        assert_eq!(Sample::TwoWords.to_string(), "TWO_WORDS");
        Ok(())
    }

    #[test]
    fn absent_and_null_members_are_omitted() -> Result<(), serde_json::Error> {
        let tag: Tag = serde_json::from_str(r#"{"key":"k","value":null,"other":1}"#)?;
        assert_eq!(
            tag,
            Tag {
                key: Some("k".into()),
                value: None
            }
        );
        assert_eq!(serde_json::to_string(&tag)?, r#"{"key":"k"}"#);
        let attribute = Attribute::named("ecs.capability.task-eni");
        assert_eq!(
            serde_json::to_string(&attribute)?,
            r#"{"name":"ecs.capability.task-eni"}"#
        );
        Ok(())
    }
}
