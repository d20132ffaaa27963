//! The rules of placement constraints and strategies.

use berth_model::ErrorCode;
use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
};
use berth_sched::{validate_constraints, validate_strategies};

fn constraint(
    kind: Option<PlacementConstraintType>,
    expression: Option<&str>,
) -> PlacementConstraint {
    PlacementConstraint {
        constraint_type: kind,
        expression: expression.map(str::to_string),
    }
}

fn strategy(kind: Option<PlacementStrategyType>, field: Option<&str>) -> PlacementStrategy {
    PlacementStrategy {
        strategy_type: kind,
        field: field.map(str::to_string),
    }
}

fn refused(result: Result<(), berth_model::ApiError>, part: &str) {
    match result {
        Ok(()) => panic!("accepted; expected an error with {part:?}"),
        Err(err) => {
            assert_eq!(err.code, ErrorCode::InvalidParameterException);
            assert!(err.message.contains(part), "{}", err.message);
        }
    }
}

#[test]
fn constraints() {
    use PlacementConstraintType::{DistinctInstance, MemberOf};
    assert_eq!(validate_constraints(&[]), Ok(()));
    assert_eq!(
        validate_constraints(&[
            constraint(Some(DistinctInstance), None),
            constraint(Some(DistinctInstance), Some("")),
            constraint(Some(MemberOf), Some("attribute:ecs.instance-type =~ t2.*")),
        ]),
        Ok(())
    );
    assert_eq!(
        validate_constraints(&vec![
            constraint(Some(MemberOf), Some("task:group exists"));
            10
        ]),
        Ok(())
    );
    refused(
        validate_constraints(&vec![constraint(Some(DistinctInstance), None); 11]),
        "Too many placement constraints: 11",
    );
    refused(
        validate_constraints(&[constraint(None, None)]),
        "'type' is required",
    );
    refused(
        validate_constraints(&[constraint(
            Some(DistinctInstance),
            Some("task:group exists"),
        )]),
        "takes no expression",
    );
    refused(
        validate_constraints(&[constraint(Some(MemberOf), None)]),
        "needs an 'expression'",
    );
    refused(
        validate_constraints(&[constraint(Some(MemberOf), Some("  "))]),
        "needs an 'expression'",
    );
    refused(
        validate_constraints(&[constraint(Some(MemberOf), Some("attribute:x =="))]),
        "(at position 15)",
    );
    let long = format!("attribute:x in [{}]", vec!["a"; 1000].join(","));
    refused(
        validate_constraints(&[constraint(Some(MemberOf), Some(&long))]),
        "longer than 2000 characters",
    );
}

#[test]
fn strategies() {
    use PlacementStrategyType::{Binpack, Random, Spread};
    assert_eq!(validate_strategies(&[]), Ok(()));
    for ok in [
        strategy(Some(Binpack), Some("cpu")),
        strategy(Some(Binpack), Some("CPU")),
        strategy(Some(Binpack), Some("memory")),
        strategy(Some(Binpack), Some("Memory")),
        strategy(Some(Spread), Some("instanceId")),
        strategy(Some(Spread), Some("host")),
        strategy(Some(Spread), Some("attribute:ecs.availability-zone")),
        strategy(Some(Spread), Some("attribute:stack")),
        strategy(Some(Random), None),
        strategy(Some(Random), Some("")),
    ] {
        assert_eq!(
            validate_strategies(std::slice::from_ref(&ok)),
            Ok(()),
            "{ok:?}"
        );
    }
    assert_eq!(
        validate_strategies(&vec![strategy(Some(Random), None); 5]),
        Ok(())
    );
    refused(
        validate_strategies(&vec![strategy(Some(Random), None); 6]),
        "Too many placement strategies: 6",
    );
    refused(
        validate_strategies(&[strategy(None, Some("cpu"))]),
        "'type' is required",
    );
    refused(
        validate_strategies(&[strategy(Some(Binpack), None)]),
        "binpack needs a field",
    );
    refused(
        validate_strategies(&[strategy(Some(Binpack), Some("disk"))]),
        "must be CPU or MEMORY, not 'disk'",
    );
    refused(
        validate_strategies(&[strategy(Some(Spread), None)]),
        "spread needs a field",
    );
    refused(
        validate_strategies(&[strategy(Some(Spread), Some("zone"))]),
        "not 'zone'",
    );
    refused(
        validate_strategies(&[strategy(Some(Spread), Some("attribute:"))]),
        "not 'attribute:'",
    );
    refused(
        validate_strategies(&[strategy(Some(Random), Some("cpu"))]),
        "random takes no field",
    );
    let long = format!("attribute:{}", "a".repeat(300));
    refused(
        validate_strategies(&[strategy(Some(Spread), Some(&long))]),
        "longer than 255",
    );
}
