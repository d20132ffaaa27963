//! The cluster query language: every subject with every operator it takes, the
//! compound forms, the guide's examples, and the errors.

use std::collections::BTreeMap;

use berth_model::ErrorCode;
use berth_sched::{Expression, InstanceView, filter, validate_expression};

/// Registered 2018-06-18T22:28:28Z, agent 1.14.5, three running tasks: two of
/// `service:production`, one of `database`.
fn instance() -> InstanceView {
    let attributes: BTreeMap<String, Option<String>> = [
        ("ecs.instance-type", Some("t2.small")),
        ("ecs.availability-zone", Some("us-east-1a")),
        ("stack", Some("prod")),
        ("cores", Some("8")),
        ("description", Some("two words")),
        ("flag", None),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    .collect();
    InstanceView {
        id: "ci-1".into(),
        arn: "arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci-1".into(),
        ec2_instance_id: Some("i-abcd1234".into()),
        status: "ACTIVE".into(),
        agent_connected: true,
        agent_version: Some("1.14.5".into()),
        registered_at: Some(1_529_360_908.0),
        attributes: attributes.into(),
        running_tasks_count: 3,
        task_groups: [
            ("service:production".to_string(), 2),
            ("database".to_string(), 1),
            ("family:old".to_string(), 0),
        ]
        .into_iter()
        .collect(),
        ..InstanceView::default()
    }
}

fn check(cases: &[(&str, bool)], target: &InstanceView) {
    for (source, expected) in cases {
        let expression = match Expression::parse(source) {
            Ok(expression) => expression,
            Err(err) => panic!("{source:?} does not parse: {err}"),
        };
        assert_eq!(expression.matches(target), *expected, "{source}");
        assert_eq!(expression.source(), *source);
    }
}

#[test]
fn agent_connected() {
    check(
        &[
            ("agentConnected == true", true),
            ("agentConnected == TRUE", true),
            ("agentConnected equals false", false),
            ("agentConnected != true", false),
            ("agentConnected not_equals false", true),
            ("agentConnected in [false, true]", true),
            ("agentConnected in [false]", false),
            ("agentConnected !in [false]", true),
            ("agentConnected not_in [true]", false),
            ("agentConnected =~ t.*", true),
            ("agentConnected matches f.*", false),
            ("agentConnected !~ t.*", false),
            ("agentConnected not_matches f.*", true),
        ],
        &instance(),
    );
    let disconnected = InstanceView {
        agent_connected: false,
        ..instance()
    };
    check(
        &[
            ("agentConnected == false", true),
            ("agentConnected == true", false),
        ],
        &disconnected,
    );
}

#[test]
fn agent_version() {
    check(
        &[
            ("agentVersion == 1.14.5", true),
            ("agentVersion != 1.14.5", false),
            ("agentVersion != 1.14.4", true),
            // Versions order by number, not as text.
            ("agentVersion > 1.9.0", true),
            ("agentVersion < 1.9.0", false),
            ("agentVersion < 1.14.6", true),
            ("agentVersion <= 1.14.5", true),
            ("agentVersion >= 1.14.5", true),
            ("agentVersion > 1.14.5", false),
            ("agentVersion greater_than 1.14", true),
            ("agentVersion greater_than_equal 1.15", false),
            ("agentVersion less_than 2", true),
            ("agentVersion less_than_equal 1.14.5.0", true),
        ],
        &instance(),
    );
    let unknown = InstanceView {
        agent_version: None,
        ..instance()
    };
    check(
        &[
            ("agentVersion < 99", false),
            ("agentVersion != 1.0.0", false),
        ],
        &unknown,
    );
}

#[test]
fn attributes() {
    check(
        &[
            ("attribute:ecs.instance-type == t2.small", true),
            ("attribute:ecs.instance-type equals t2.micro", false),
            ("attribute:ecs.instance-type != t2.small", false),
            ("attribute:ecs.instance-type != t2.micro", true),
            ("attribute:ecs.instance-type exists", true),
            ("attribute:ecs.instance-type !exists", false),
            (
                "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
                true,
            ),
            (
                "attribute:ecs.availability-zone in (us-east-1b, us-east-1c)",
                false,
            ),
            ("attribute:ecs.availability-zone !in [us-east-1b]", true),
            (
                "attribute:ecs.availability-zone not_in ['us-east-1a']",
                false,
            ),
            ("attribute:ecs.instance-type =~ t2.*", true),
            // A pattern matches the whole value.
            ("attribute:ecs.instance-type =~ t2", false),
            ("attribute:ecs.instance-type =~ T2.*", false),
            ("attribute:ecs.instance-type =~ 't2\\.(micro|small)'", true),
            ("attribute:ecs.instance-type =~ t2\\.(micro|small)", true),
            ("attribute:ecs.instance-type =~ t2\\.[a-z]{1,5}", true),
            ("attribute:ecs.instance-type !~ g2.*", true),
            ("attribute:ecs.instance-type not_matches t2.*", false),
            // Numbers order as numbers ("8" > "10" as text).
            ("attribute:cores > 10", false),
            ("attribute:cores < 10", true),
            ("attribute:cores >= 8", true),
            ("attribute:cores <= 7.5", false),
            // Other values order as text.
            ("attribute:stack > prod", false),
            ("attribute:stack >= prod", true),
            ("attribute:stack < zzz", true),
            ("attribute:stack <= abc", false),
            // Quoted values may hold spaces.
            ("attribute:description == 'two words'", true),
            ("attribute:description == \"two words\"", true),
            ("attribute:description in ['two words', x]", true),
        ],
        &instance(),
    );
}

#[test]
fn missing_and_valueless_attributes() {
    check(
        &[
            // Missing: only !exists holds (the guide: `attribute:stack != prod`
            // lists the instances with `stack` unless its value is prod).
            ("attribute:missing == x", false),
            ("attribute:missing != x", false),
            ("attribute:missing in [x]", false),
            ("attribute:missing !in [x]", false),
            ("attribute:missing =~ .*", false),
            ("attribute:missing !~ x", false),
            ("attribute:missing > 0", false),
            ("attribute:missing exists", false),
            ("attribute:missing !exists", true),
            ("attribute:missing not_exists", true),
            // Without a value: exists, equals and matches nothing.
            ("attribute:flag exists", true),
            ("attribute:flag !exists", false),
            ("attribute:flag == x", false),
            ("attribute:flag != x", true),
            ("attribute:flag in [x]", false),
            ("attribute:flag !in [x]", true),
            ("attribute:flag =~ .*", false),
            ("attribute:flag !~ x", true),
            ("attribute:flag < zzz", false),
        ],
        &instance(),
    );
}

#[test]
fn ec2_instance_id() {
    check(
        &[
            ("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", true),
            ("ec2InstanceId == i-abcd1234", true),
            ("ec2InstanceId != i-abcd1234", false),
            ("ec2InstanceId =~ i-.*", true),
            ("ec2InstanceId !~ i-.*", false),
            ("ec2InstanceId !in [i-wxyx7890]", true),
        ],
        &instance(),
    );
    let external = InstanceView {
        ec2_instance_id: None,
        ..instance()
    };
    check(
        &[
            ("ec2InstanceId != i-x", false),
            ("ec2InstanceId == i-x", false),
            ("ec2InstanceId !in [i-x]", false),
        ],
        &external,
    );
}

#[test]
fn registered_at() {
    // The instance registered at 2018-06-18T22:28:28Z.
    check(
        &[
            ("registeredAt < 2018-02-13", false),
            ("registeredAt > 2018-02-13", true),
            // A date is the whole UTC day.
            ("registeredAt == 2018-06-18", true),
            ("registeredAt != 2018-06-18", false),
            ("registeredAt < 2018-06-18", false),
            ("registeredAt <= 2018-06-18", true),
            ("registeredAt > 2018-06-18", false),
            ("registeredAt >= 2018-06-18", true),
            ("registeredAt > 2018-06-17", true),
            ("registeredAt < 2018-06-19", true),
            // A time is that second, in every documented format.
            ("registeredAt == 2018-06-18T22:28:28Z", true),
            ("registeredAt == 2018-06-18T22:28:28+00:00", true),
            ("registeredAt == 2018-06-18T22:28:28", true),
            ("registeredAt == 2018-06-19T00:28:28+02:00", true),
            ("registeredAt == 2018-06-18T12:28:28-10:00", true),
            ("registeredAt == 2018-06-18T22:28:29Z", false),
            ("registeredAt < 2018-06-18T22:28:29Z", true),
            ("registeredAt > 2018-06-18T22:28:27Z", true),
            ("registeredAt >= 2018-06-18T22:28:28Z", true),
            ("registeredAt <= 2018-06-18T22:28:27Z", false),
            ("registeredAt greater_than_equal '2016-02-29'", true),
        ],
        &instance(),
    );
    let never = InstanceView {
        registered_at: None,
        ..instance()
    };
    check(&[("registeredAt != 2018-06-18", false)], &never);
}

#[test]
fn running_tasks_count() {
    check(
        &[
            ("runningTasksCount == 3", true),
            ("runningTasksCount==3", true),
            ("runningTasksCount != 3", false),
            ("runningTasksCount > 2", true),
            ("runningTasksCount > 3", false),
            ("runningTasksCount >= 4", false),
            ("runningTasksCount < 4", true),
            ("runningTasksCount <= 2", false),
            ("runningTasksCount less_than_equal 3", true),
        ],
        &instance(),
    );
}

#[test]
fn task_group() {
    check(
        &[
            // The guide's affinity and anti-affinity examples.
            ("task:group == service:production", true),
            ("not(task:group == database)", false),
            ("not(task:group == web)", true),
            ("task:group == database", true),
            ("task:group == web", false),
            // A group with no task left does not count.
            ("task:group == family:old", false),
            // A condition holds when it holds for one of the tasks.
            ("task:group != database", true),
            ("task:group in [web, database]", true),
            ("task:group !in [database, service:production]", false),
            ("task:group =~ service:.*", true),
            ("task:group !~ service:.*", true),
            ("task:group exists", true),
            ("task:group !exists", false),
        ],
        &instance(),
    );
    let empty = InstanceView {
        task_groups: BTreeMap::new(),
        ..instance()
    };
    check(
        &[
            ("task:group exists", false),
            ("task:group !exists", true),
            ("task:group != database", false),
            ("not(task:group == database)", true),
        ],
        &empty,
    );
}

#[test]
fn compound_expressions() {
    check(
        &[
            // The guide's compound example.
            (
                "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone != us-east-1d",
                true,
            ),
            (
                "attribute:ecs.instance-type =~ t2.* && attribute:ecs.availability-zone == us-east-1d",
                false,
            ),
            ("attribute:stack == dev || runningTasksCount == 3", true),
            ("attribute:stack == dev or runningTasksCount == 4", false),
            // `and` binds tighter than `or`; parentheses group.
            (
                "attribute:stack == dev and attribute:stack == prod or runningTasksCount == 3",
                true,
            ),
            (
                "attribute:stack == dev and (attribute:stack == prod or runningTasksCount == 3)",
                false,
            ),
            (
                "runningTasksCount == 3 or attribute:stack == prod and attribute:stack == dev",
                true,
            ),
            // `not` binds tighter than `and`.
            ("!attribute:stack == prod", false),
            (
                "not attribute:stack == dev and runningTasksCount == 3",
                true,
            ),
            (
                "not (attribute:stack == dev and runningTasksCount == 3)",
                true,
            ),
            ("not not attribute:stack == prod", true),
            ("!!attribute:stack == prod", true),
            (
                "NOT(attribute:stack == prod) OR runningTasksCount == 3",
                true,
            ),
            ("attribute:stack == prod AND runningTasksCount == 3", true),
            ("(attribute:stack == prod)", true),
            ("((runningTasksCount == 3))", true),
            ("  ( runningTasksCount == 3 )  ", true),
            ("(attribute:stack==prod)&&(runningTasksCount==3)", true),
            ("attribute:stack == prod&&runningTasksCount == 3", true),
            ("attribute:stack exists and attribute:flag exists", true),
        ],
        &instance(),
    );
}

/// The expression, the 1-based position of the error, a part of its message.
const ERRORS: &[(&str, usize, &str)] = &[
    ("", 1, "empty"),
    ("   ", 4, "empty"),
    ("foo == bar", 1, "unknown subject 'foo'"),
    ("attribute: == x", 1, "unknown subject 'attribute:'"),
    ("containerInstanceId == x", 1, "unknown subject"),
    (
        "runningTasksCount",
        18,
        "expected an operator after 'runningTasksCount', found 'end of expression'",
    ),
    ("runningTasksCount ~= 3", 19, "expected an operator"),
    ("runningTasksCount equal 3", 19, "expected an operator"),
    ("runningTasksCount == ", 22, "expected a value after '=='"),
    (
        "runningTasksCount == three",
        22,
        "whole numbers, not 'three'",
    ),
    ("runningTasksCount == 1.5", 22, "whole numbers"),
    (
        "runningTasksCount =~ 3",
        19,
        "operator '=~' is not valid for runningTasksCount",
    ),
    ("runningTasksCount in [1]", 19, "operator 'in' is not valid"),
    (
        "agentConnected > true",
        16,
        "operator '>' is not valid for agentConnected",
    ),
    (
        "agentConnected exists",
        16,
        "operator 'exists' is not valid",
    ),
    (
        "agentVersion =~ 1.*",
        14,
        "operator '=~' is not valid for agentVersion",
    ),
    ("ec2InstanceId < i-1", 15, "not valid for ec2InstanceId"),
    (
        "registeredAt in [2018-01-01]",
        14,
        "not valid for registeredAt",
    ),
    (
        "task:group > a",
        12,
        "operator '>' is not valid for task:group",
    ),
    (
        "registeredAt < yesterday",
        16,
        "registeredAt compares dates",
    ),
    (
        "registeredAt < 2018-02-30",
        16,
        "registeredAt compares dates",
    ),
    (
        "registeredAt < 2018-13-01",
        16,
        "registeredAt compares dates",
    ),
    (
        "registeredAt < 2018-06-18T25:00:00Z",
        16,
        "registeredAt compares dates",
    ),
    (
        "registeredAt < 2018-06-18T22:28:28+0000",
        16,
        "registeredAt compares dates",
    ),
    (
        "registeredAt < 2018-06-18 22:28:28",
        27,
        "unexpected '22:28:28'",
    ),
    (
        "attribute:x in a",
        16,
        "expects a list like [a, b], found 'a'",
    ),
    ("attribute:x in []", 17, "the argument list is empty"),
    ("attribute:x in [a b]", 19, "expected ',' or ']'"),
    ("attribute:x in [a, b", 21, "found 'end of expression'"),
    ("attribute:x in (a]", 18, "expected ',' or ')'"),
    ("attribute:x == [a]", 16, "expected a value after '=='"),
    ("attribute:x =~ '('", 16, "not a valid regular expression"),
    ("attribute:x =~ a)", 17, "unexpected ')'"),
    ("attribute:x == 'abc", 16, "never closed"),
    (
        "(attribute:x exists",
        20,
        "expected ')' to close the '(' at position 1",
    ),
    ("attribute:x exists)", 19, "unexpected ')'"),
    (
        "attribute:x exists and",
        23,
        "expected a subject, found 'end of expression'",
    ),
    (
        "attribute:x exists attribute:y exists",
        20,
        "unexpected 'attribute:y'",
    ),
    ("and attribute:x exists", 1, "unknown subject 'and'"),
    (
        "attribute:x exists || || attribute:y exists",
        23,
        "expected a subject, found '||'",
    ),
    ("not", 4, "expected a subject"),
    ("()", 2, "expected a subject, found ')'"),
    // Positions count characters, not bytes.
    ("attribute:x == 'ü' and foo", 24, "unknown subject 'foo'"),
];

#[test]
fn errors_name_the_position_and_the_token() {
    for (source, position, message) in ERRORS {
        let err = match Expression::parse(source) {
            Ok(_) => panic!("{source:?} parses"),
            Err(err) => err,
        };
        assert_eq!(err.position, *position, "{source:?}: {err}");
        assert!(err.message.contains(message), "{source:?}: {err}");
        let api = validate_expression(source).err();
        let Some(api) = api else {
            panic!("{source:?} validates")
        };
        assert_eq!(api.code, ErrorCode::InvalidParameterException);
        assert!(
            api.message.contains(&format!("(at position {position})")),
            "{}",
            api.message
        );
    }
}

#[test]
fn tasks_dependence_is_known() {
    for (source, depends) in [
        ("attribute:a exists", false),
        (
            "agentConnected == true and registeredAt > 2018-01-01",
            false,
        ),
        ("runningTasksCount == 0", true),
        ("not(attribute:a exists or task:group == web)", true),
    ] {
        let Ok(expression) = Expression::parse(source) else {
            panic!("{source}")
        };
        assert_eq!(expression.depends_on_tasks(), depends, "{source}");
    }
}

#[test]
fn filter_selects_in_order() {
    let mut instances = Vec::new();
    for (i, kind) in ["t2.small", "g2.2xlarge", "t2.medium", "m5.large"]
        .into_iter()
        .enumerate()
    {
        let mut view = instance();
        view.id = format!("ci-{i}");
        std::sync::Arc::make_mut(&mut view.attributes)
            .insert("ecs.instance-type".into(), Some(kind.into()));
        instances.push(view);
    }
    let ids = |expression: &str| -> Vec<String> {
        match filter(&instances, expression) {
            Ok(found) => found.iter().map(|v| v.id.clone()).collect(),
            Err(err) => panic!("{expression}: {err}"),
        }
    };
    assert_eq!(ids("attribute:ecs.instance-type =~ t2.*"), ["ci-0", "ci-2"]);
    assert_eq!(
        ids("attribute:ecs.instance-type in [g2.2xlarge, m5.large]"),
        ["ci-1", "ci-3"]
    );
    assert_eq!(
        ids("attribute:ecs.instance-type == c5.large"),
        Vec::<String>::new()
    );
    let Err(err) = filter(&instances, "attribute:ecs.instance-type ==") else {
        panic!("an invalid filter is accepted")
    };
    assert_eq!(err.code, ErrorCode::InvalidParameterException);
}
