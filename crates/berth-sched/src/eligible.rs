//! Which instances a task may ever go to, whatever their free resources: those
//! every `memberOf` expression selects. The DAEMON scheduler runs one task on each
//! of them ("one task on each active container instance that meets all of the task
//! placement constraints").

use berth_model::ApiResult;
use berth_model::task::PlacementConstraint;
use berth_model::task_definition::TaskDefinitionPlacementConstraint;

use crate::model::InstanceView;
use crate::validate::compile_constraints;

/// For each instance, whether every `memberOf` constraint (the task definition's and
/// the request's) holds for it. `distinctInstance` does not decide eligibility, nor
/// do status, connection or resources. Invalid constraints are an
/// `InvalidParameterException`.
pub fn satisfies_member_of(
    instances: &[InstanceView],
    task_definition_constraints: &[TaskDefinitionPlacementConstraint],
    constraints: &[PlacementConstraint],
) -> ApiResult<Vec<bool>> {
    let compiled = compile_constraints(task_definition_constraints, constraints)?;
    Ok(instances
        .iter()
        .map(|instance| compiled.member_of.iter().all(|e| e.matches(instance)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::task::PlacementConstraintType;

    fn instance(id: &str, zone: &str) -> InstanceView {
        InstanceView {
            id: id.to_string(),
            status: "ACTIVE".to_string(),
            agent_connected: true,
            attributes: [("zone".to_string(), Some(zone.to_string()))]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
                .into(),
            ..InstanceView::default()
        }
    }

    #[test]
    fn only_member_of_decides() {
        let instances = [instance("a", "z1"), instance("b", "z2")];
        let constraints = [
            PlacementConstraint {
                constraint_type: Some(PlacementConstraintType::MemberOf),
                expression: Some("attribute:zone == z2".to_string()),
            },
            PlacementConstraint {
                constraint_type: Some(PlacementConstraintType::DistinctInstance),
                expression: None,
            },
        ];
        assert_eq!(
            satisfies_member_of(&instances, &[], &constraints).ok(),
            Some(vec![false, true])
        );
        assert_eq!(
            satisfies_member_of(&instances, &[], &[]).ok(),
            Some(vec![true, true])
        );
    }

    #[test]
    fn a_bad_expression_is_an_error() {
        let constraints = [PlacementConstraint {
            constraint_type: Some(PlacementConstraintType::MemberOf),
            expression: Some("attribute:zone ==".to_string()),
        }];
        assert!(satisfies_member_of(&[instance("a", "z1")], &[], &constraints).is_err());
    }
}
