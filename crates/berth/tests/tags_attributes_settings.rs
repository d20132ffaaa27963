//! Tags (TagResource, UntagResource, ListTagsForResource), attributes (PutAttributes,
//! DeleteAttributes, ListAttributes) and account settings (PutAccountSetting,
//! PutAccountSettingDefault, ListAccountSettings, DeleteAccountSetting).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Attribute, ClusterField, ContainerDefinition, Setting, SettingName, Tag, TargetType,
};
use common::{
    ACCOUNT, BerthServer, REGION, TestResult, cluster_arn, service_error, task_definition_arn,
};
use serde_json::json;

const NOT_FOUND: &[&str] = &["ResourceNotFoundException", "ClusterNotFoundException"];

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn tags_of(client: &Client, arn: &str) -> TestResult<BTreeMap<String, String>> {
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await?;
    Ok(out
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

async fn register(client: &Client, family: &str, tags: Vec<Tag>) -> TestResult<String> {
    let container = ContainerDefinition::builder()
        .name("app")
        .image("busybox")
        .memory(64)
        .build();
    let out = client
        .register_task_definition()
        .family(family)
        .container_definitions(container)
        .set_tags(Some(tags))
        .send()
        .await?;
    Ok(out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn cluster_tags_merge_overwrite_and_untag() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client
        .create_cluster()
        .cluster_name("tagged")
        .tags(tag("a", "1"))
        .send()
        .await?;
    let arn = cluster_arn(REGION, "tagged");
    assert_eq!(tags_of(&client, &arn).await?, map(&[("a", "1")]));

    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("b", "2"))
        .send()
        .await?;
    assert_eq!(
        tags_of(&client, &arn).await?,
        map(&[("a", "1"), ("b", "2")]),
        "TagResource merges"
    );

    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "3"))
        .tags(tag("c", ""))
        .send()
        .await?;
    assert_eq!(
        tags_of(&client, &arn).await?,
        map(&[("a", "3"), ("b", "2"), ("c", "")]),
        "TagResource overwrites"
    );

    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .tag_keys("absent")
        .send()
        .await?;
    assert_eq!(
        tags_of(&client, &arn).await?,
        map(&[("b", "2"), ("c", "")]),
        "UntagResource removes only its keys"
    );

    let described = client
        .describe_clusters()
        .clusters("tagged")
        .include(ClusterField::Tags)
        .send()
        .await?;
    let described_tags: BTreeMap<String, String> = described.clusters()[0]
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(described_tags, map(&[("b", "2"), ("c", "")]));
    Ok(())
}

#[tokio::test]
async fn task_definition_tags_belong_to_one_revision() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let first = register(&client, "fam", vec![tag("x", "1")]).await?;
    let second = register(&client, "fam", Vec::new()).await?;
    assert_eq!(first, task_definition_arn(REGION, "fam", 1));
    assert_eq!(second, task_definition_arn(REGION, "fam", 2));
    assert_eq!(tags_of(&client, &first).await?, map(&[("x", "1")]));
    assert!(tags_of(&client, &second).await?.is_empty());

    client
        .tag_resource()
        .resource_arn(&second)
        .tags(tag("y", "2"))
        .send()
        .await?;
    assert_eq!(tags_of(&client, &second).await?, map(&[("y", "2")]));
    assert_eq!(
        tags_of(&client, &first).await?,
        map(&[("x", "1")]),
        "tagging revision 2 left revision 1 alone"
    );

    client
        .untag_resource()
        .resource_arn(&first)
        .tag_keys("x")
        .send()
        .await?;
    assert!(tags_of(&client, &first).await?.is_empty());

    let described = client
        .describe_task_definition()
        .task_definition("fam:2")
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await?;
    let tags: Vec<_> = described
        .tags()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, [(Some("y"), Some("2"))]);
    Ok(())
}

#[tokio::test]
async fn a_resource_holds_at_most_50_tags() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("full").send().await?;
    let arn = cluster_arn(REGION, "full");
    let fifty: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i:02}"), "v")).collect();
    client
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(fifty))
        .send()
        .await?;
    assert_eq!(tags_of(&client, &arn).await?.len(), 50);

    let over = service_error(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("k50", "v"))
            .send()
            .await,
    )?;
    over.assert_code(&["InvalidParameterException", "LimitExceededException"]);
    let tags = tags_of(&client, &arn).await?;
    assert_eq!(tags.len(), 50, "a refused TagResource changed nothing");
    assert!(!tags.contains_key("k50"));

    // Overwriting a key adds no tag.
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("k00", "new"))
        .send()
        .await?;
    assert_eq!(
        tags_of(&client, &arn).await?.get("k00").map(String::as_str),
        Some("new")
    );

    // 51 tags at creation are refused too, and no cluster is created.
    let fifty_one: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i:02}"), "v")).collect();
    let create = service_error(
        client
            .create_cluster()
            .cluster_name("overfull")
            .set_tags(Some(fifty_one))
            .send()
            .await,
    )?;
    create.assert_code(&["InvalidParameterException", "LimitExceededException"]);
    let described = client
        .describe_clusters()
        .clusters("overfull")
        .send()
        .await?;
    assert!(described.clusters().is_empty(), "{described:?}");
    Ok(())
}

#[tokio::test]
async fn the_aws_prefix_is_reserved() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client
        .create_cluster()
        .cluster_name("reserved")
        .tags(tag("mine", "1"))
        .send()
        .await?;
    let arn = cluster_arn(REGION, "reserved");
    for key in ["aws:owner", "AWS:owner", "Aws:Owner"] {
        let err = service_error(
            client
                .tag_resource()
                .resource_arn(&arn)
                .tags(tag(key, "x"))
                .send()
                .await,
        )?;
        err.assert_code(&["InvalidParameterException"]);
    }
    assert_eq!(tags_of(&client, &arn).await?, map(&[("mine", "1")]));
    let create = service_error(
        client
            .create_cluster()
            .cluster_name("reserved2")
            .tags(tag("aws:x", "1"))
            .send()
            .await,
    )?;
    create.assert_code(&["InvalidParameterException"]);
    Ok(())
}

#[tokio::test]
async fn tagging_unknown_resources_fails() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let missing_cluster = cluster_arn(REGION, "missing");
    let missing_definition = task_definition_arn(REGION, "missing", 1);
    for arn in [&missing_cluster, &missing_definition] {
        let err = service_error(
            client
                .tag_resource()
                .resource_arn(arn)
                .tags(tag("a", "1"))
                .send()
                .await,
        )?;
        err.assert_code(NOT_FOUND);
        let err = service_error(
            client
                .untag_resource()
                .resource_arn(arn)
                .tag_keys("a")
                .send()
                .await,
        )?;
        err.assert_code(NOT_FOUND);
        let err = service_error(
            client
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await,
        )?;
        err.assert_code(NOT_FOUND);
    }
    // A revision that does not exist in a family that does.
    register(&client, "real", Vec::new()).await?;
    let err = service_error(
        client
            .tag_resource()
            .resource_arn(task_definition_arn(REGION, "real", 7))
            .tags(tag("a", "1"))
            .send()
            .await,
    )?;
    err.assert_code(NOT_FOUND);

    let err = service_error(
        client
            .tag_resource()
            .resource_arn("not-an-arn")
            .tags(tag("a", "1"))
            .send()
            .await,
    )?;
    err.assert_code(&["InvalidParameterException", "ClientException"]);
    Ok(())
}

#[tokio::test]
async fn attributes_on_an_empty_cluster() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name("attrs").send().await?;
    let listed = client
        .list_attributes()
        .cluster("attrs")
        .target_type(TargetType::ContainerInstance)
        .send()
        .await?;
    assert!(listed.attributes().is_empty(), "{listed:?}");
    assert!(listed.next_token().is_none());

    let missing = service_error(
        client
            .list_attributes()
            .cluster("no-such-cluster")
            .target_type(TargetType::ContainerInstance)
            .send()
            .await,
    )?;
    missing.assert_code(&["ClusterNotFoundException"]);

    let instance = format!(
        "arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/attrs/0123456789abcdef0123456789abcdef"
    );
    let attribute = Attribute::builder()
        .name("stack")
        .value("prod")
        .target_type(TargetType::ContainerInstance)
        .target_id(&instance)
        .build()?;
    let err = service_error(
        client
            .put_attributes()
            .cluster("attrs")
            .attributes(attribute.clone())
            .send()
            .await,
    )?;
    err.assert_code(&["TargetNotFoundException"]);
    let err = service_error(
        client
            .delete_attributes()
            .cluster("attrs")
            .attributes(attribute.clone())
            .send()
            .await,
    )?;
    err.assert_code(&["TargetNotFoundException"]);
    let by_id = Attribute::builder()
        .name("stack")
        .value("prod")
        .target_type(TargetType::ContainerInstance)
        .target_id("0123456789abcdef0123456789abcdef")
        .build()?;
    let err = service_error(
        client
            .put_attributes()
            .cluster("attrs")
            .attributes(by_id)
            .send()
            .await,
    )?;
    err.assert_code(&["TargetNotFoundException"]);
    let err = service_error(
        client
            .put_attributes()
            .cluster("no-such-cluster")
            .attributes(attribute)
            .send()
            .await,
    )?;
    err.assert_code(&["ClusterNotFoundException", "TargetNotFoundException"]);

    let listed = client
        .list_attributes()
        .cluster("attrs")
        .target_type(TargetType::ContainerInstance)
        .send()
        .await?;
    assert!(
        listed.attributes().is_empty(),
        "a refused PutAttributes added {listed:?}"
    );
    Ok(())
}

fn setting_values(settings: &[Setting]) -> BTreeMap<String, String> {
    settings
        .iter()
        .map(|s| {
            (
                s.name().map(|n| n.as_str().to_string()).unwrap_or_default(),
                s.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every page of ListAccountSettings, checking each page holds at most `max`.
async fn list_settings(
    client: &Client,
    name: Option<SettingName>,
    effective: bool,
    max: Option<i32>,
) -> TestResult<Vec<Setting>> {
    let mut settings = Vec::new();
    let mut token = None;
    for _ in 0..50 {
        let page = client
            .list_account_settings()
            .set_name(name.clone())
            .effective_settings(effective)
            .set_max_results(max)
            .set_next_token(token)
            .send()
            .await?;
        assert!(
            page.settings().len() <= max.unwrap_or(10) as usize,
            "a page over maxResults: {page:?}"
        );
        settings.extend(page.settings().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(settings);
        }
    }
    Err("ListAccountSettings does not stop paging".into())
}

#[tokio::test]
async fn account_settings_of_the_caller() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    assert!(
        list_settings(&client, None, false, None).await?.is_empty(),
        "nothing is set explicitly at first"
    );

    let out = client
        .put_account_setting()
        .name(SettingName::ServiceLongArnFormat)
        .value("enabled")
        .send()
        .await?;
    let setting = out
        .setting()
        .cloned()
        .unwrap_or_else(|| Setting::builder().build());
    assert_eq!(setting.name(), Some(&SettingName::ServiceLongArnFormat));
    assert_eq!(setting.value(), Some("enabled"));
    let principal = setting.principal_arn().unwrap_or_default().to_string();
    assert!(
        principal.starts_with(&format!("arn:aws:iam::{ACCOUNT}:")),
        "principalArn {principal}"
    );
    assert_ne!(
        principal,
        format!("arn:aws:iam::{ACCOUNT}:root"),
        "the caller is not the root user"
    );

    let listed = list_settings(
        &client,
        Some(SettingName::ServiceLongArnFormat),
        false,
        None,
    )
    .await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].value(), Some("enabled"));
    assert_eq!(listed[0].principal_arn(), Some(principal.as_str()));
    let all = list_settings(&client, None, false, None).await?;
    assert_eq!(
        setting_values(&all),
        BTreeMap::from([("serviceLongArnFormat".into(), "enabled".into())])
    );

    // The value filter.
    let filtered = client
        .list_account_settings()
        .name(SettingName::ServiceLongArnFormat)
        .value("disabled")
        .send()
        .await?;
    assert!(filtered.settings().is_empty(), "{filtered:?}");
    Ok(())
}

#[tokio::test]
async fn account_defaults_and_effective_settings() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let out = client
        .put_account_setting_default()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .send()
        .await?;
    let setting = out
        .setting()
        .cloned()
        .unwrap_or_else(|| Setting::builder().build());
    assert_eq!(setting.value(), Some("enabled"));
    assert_eq!(
        setting.principal_arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:root").as_str())
    );

    // The caller has set nothing itself; the account default is its effective value.
    assert!(
        list_settings(&client, Some(SettingName::ContainerInsights), false, None)
            .await?
            .is_empty()
    );
    let effective =
        list_settings(&client, Some(SettingName::ContainerInsights), true, None).await?;
    assert_eq!(
        setting_values(&effective),
        BTreeMap::from([("containerInsights".into(), "enabled".into())])
    );
    let as_root = client
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .principal_arn(format!("arn:aws:iam::{ACCOUNT}:root"))
        .send()
        .await?;
    assert_eq!(
        setting_values(as_root.settings()),
        BTreeMap::from([("containerInsights".into(), "enabled".into())])
    );

    // A setting of the caller wins over the account default.
    client
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("disabled")
        .send()
        .await?;
    let effective =
        list_settings(&client, Some(SettingName::ContainerInsights), true, None).await?;
    assert_eq!(
        setting_values(&effective),
        BTreeMap::from([("containerInsights".into(), "disabled".into())])
    );

    // All effective settings, a page at a time: each name once, the same as one big page.
    let whole = list_settings(&client, None, true, Some(10)).await?;
    let names: Vec<String> = whole
        .iter()
        .filter_map(|s| s.name().map(|n| n.as_str().to_string()))
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        names.len(),
        unique.len(),
        "a setting listed twice: {names:?}"
    );
    for expected in [
        "serviceLongArnFormat",
        "taskLongArnFormat",
        "containerInstanceLongArnFormat",
        "awsvpcTrunking",
        "containerInsights",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "effective settings lack {expected}: {names:?}"
        );
    }
    for max in [1, 3] {
        let paged = list_settings(&client, None, true, Some(max)).await?;
        assert_eq!(
            setting_values(&paged),
            setting_values(&whole),
            "pages of {max}"
        );
        assert_eq!(paged.len(), whole.len(), "pages of {max}");
    }
    assert_eq!(
        setting_values(&whole)
            .get("containerInsights")
            .map(String::as_str),
        Some("disabled")
    );

    for max in [0, 11] {
        let err = service_error(
            client
                .list_account_settings()
                .effective_settings(true)
                .max_results(max)
                .send()
                .await,
        )?;
        err.assert_code(&["InvalidParameterException"]);
    }
    Ok(())
}

#[tokio::test]
async fn delete_account_setting_restores_the_effective_value() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let before = setting_values(
        &list_settings(&client, Some(SettingName::TaskLongArnFormat), true, None).await?,
    );
    assert_eq!(before.len(), 1, "{before:?}");
    let flipped = if before.get("taskLongArnFormat").map(String::as_str) == Some("enabled") {
        "disabled"
    } else {
        "enabled"
    };

    client
        .put_account_setting()
        .name(SettingName::TaskLongArnFormat)
        .value(flipped)
        .send()
        .await?;
    let during = setting_values(
        &list_settings(&client, Some(SettingName::TaskLongArnFormat), true, None).await?,
    );
    assert_eq!(
        during.get("taskLongArnFormat").map(String::as_str),
        Some(flipped)
    );

    let out = client
        .delete_account_setting()
        .name(SettingName::TaskLongArnFormat)
        .send()
        .await?;
    assert_eq!(
        out.setting().and_then(Setting::name),
        Some(&SettingName::TaskLongArnFormat)
    );
    assert!(
        list_settings(&client, Some(SettingName::TaskLongArnFormat), false, None)
            .await?
            .is_empty()
    );
    let after = setting_values(
        &list_settings(&client, Some(SettingName::TaskLongArnFormat), true, None).await?,
    );
    assert_eq!(after, before);
    Ok(())
}

#[tokio::test]
async fn invalid_account_settings_are_refused() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let err = service_error(
        client
            .put_account_setting()
            .name(SettingName::ServiceLongArnFormat)
            .value("maybe")
            .send()
            .await,
    )?;
    err.assert_code(&["InvalidParameterException"]);
    let err = service_error(
        client
            .put_account_setting_default()
            .name(SettingName::ContainerInsights)
            .value("sometimes")
            .send()
            .await,
    )?;
    err.assert_code(&["InvalidParameterException"]);
    let raw = server
        .call(
            "PutAccountSetting",
            &json!({"name": "noSuchSetting", "value": "enabled"}),
        )
        .await?;
    assert_eq!(raw.status, 400, "{}", raw.text());
    assert!(
        [
            "InvalidParameterException",
            "SerializationException",
            "ClientException"
        ]
        .contains(&raw.error_code().unwrap_or_default().as_str()),
        "{}",
        raw.text()
    );
    assert!(
        list_settings(&client, None, false, None).await?.is_empty(),
        "a refused setting was stored"
    );
    Ok(())
}
