//! The rules placement constraints and strategies follow, checked where
//! RunTask, CreateService and UpdateService accept them, and compiled into what
//! [`place`](crate::place()) works with.
//!
//! From the ECS API reference: a task has at most 10 constraints, counting those
//! of its task definition, and at most 5 strategies; a `memberOf` constraint has
//! a cluster query language expression of at most 2000 characters, a
//! `distinctInstance` constraint none; `binpack`'s field is `cpu` or `memory`,
//! `spread`'s is `instanceId`, `host` (the same) or an attribute
//! (`attribute:ecs.availability-zone`), and `random` uses none.

use berth_model::task::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
};
use berth_model::task_definition::{
    TaskDefinitionPlacementConstraint, TaskDefinitionPlacementConstraintType,
};
use berth_model::{ApiError, ApiResult};

use crate::query::Expression;

/// The most placement constraints a task may have, its task definition's included.
pub const MAX_CONSTRAINTS: usize = 10;
/// The most placement strategies a task may have.
pub const MAX_STRATEGIES: usize = 5;
/// The longest `memberOf` expression, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 2000;
/// The longest strategy field, in characters.
pub const MAX_FIELD_CHARS: usize = 255;

/// Checks the placement constraints of a request: at most
/// [`MAX_CONSTRAINTS`], each with a type, `memberOf` with a valid expression and
/// `distinctInstance` without one.
pub fn validate_constraints(constraints: &[PlacementConstraint]) -> ApiResult<()> {
    compile_constraints(&[], constraints).map(|_| ())
}

/// Checks the placement strategies of a request: at most [`MAX_STRATEGIES`],
/// each with a type and the field its type needs.
pub fn validate_strategies(strategies: &[PlacementStrategy]) -> ApiResult<()> {
    compile_strategies(strategies).map(|_| ())
}

/// Checks a cluster query language expression (a `memberOf` expression or a
/// ListContainerInstances `filter`).
pub fn validate_expression(expression: &str) -> ApiResult<()> {
    Expression::parse_api(expression).map(|_| ())
}

/// The constraints of a request, ready to test instances with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Constraints {
    /// Every `memberOf` expression, the task definition's first.
    pub member_of: Vec<Expression>,
    pub distinct_instance: bool,
}

/// Compiles the constraints of a task definition and of a request, which apply
/// together.
pub(crate) fn compile_constraints(
    task_definition: &[TaskDefinitionPlacementConstraint],
    request: &[PlacementConstraint],
) -> ApiResult<Constraints> {
    let total = task_definition.len() + request.len();
    if total > MAX_CONSTRAINTS {
        return Err(ApiError::invalid_parameter(format!(
            "Too many placement constraints: {total}. A task can have at most \
             {MAX_CONSTRAINTS}, counting those of its task definition."
        )));
    }
    let mut compiled = Constraints::default();
    for constraint in task_definition {
        match constraint.constraint_type {
            Some(TaskDefinitionPlacementConstraintType::MemberOf) => {
                compiled
                    .member_of
                    .push(member_of(constraint.expression.as_deref())?);
            }
            None => return Err(missing_constraint_type()),
        }
    }
    for constraint in request {
        match constraint.constraint_type {
            Some(PlacementConstraintType::MemberOf) => {
                compiled
                    .member_of
                    .push(member_of(constraint.expression.as_deref())?);
            }
            Some(PlacementConstraintType::DistinctInstance) => {
                if constraint
                    .expression
                    .as_deref()
                    .is_some_and(|e| !e.is_empty())
                {
                    return Err(ApiError::invalid_parameter(
                        "Invalid placement constraint: a distinctInstance constraint takes no \
                         expression.",
                    ));
                }
                compiled.distinct_instance = true;
            }
            None => return Err(missing_constraint_type()),
        }
    }
    Ok(compiled)
}

fn missing_constraint_type() -> ApiError {
    ApiError::invalid_parameter(
        "Invalid placement constraint: 'type' is required (distinctInstance or memberOf).",
    )
}

fn member_of(expression: Option<&str>) -> ApiResult<Expression> {
    let expression = expression.unwrap_or("");
    if expression.trim().is_empty() {
        return Err(ApiError::invalid_parameter(
            "Invalid placement constraint: a memberOf constraint needs an 'expression'.",
        ));
    }
    if expression.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid placement constraint: the expression is longer than \
             {MAX_EXPRESSION_CHARS} characters."
        )));
    }
    Expression::parse_api(expression)
}

/// One step of a compiled strategy chain: what orders the candidates, lowest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rank {
    /// `binpack` on `cpu`: least remaining CPU first.
    Cpu,
    /// `binpack` on `memory`: least remaining memory first.
    Memory,
    /// `spread` on `instanceId`/`host`: fewest tasks of the group on the instance.
    SpreadInstance,
    /// `spread` on an attribute: fewest tasks of the group on the instances that
    /// share the attribute's value.
    SpreadAttribute(String),
}

/// Compiles strategies into the ranks that order candidates. `random` ends the
/// chain: the candidates the strategies before it tie are chosen among at
/// random, so the strategies after it never matter.
pub(crate) fn compile_strategies(strategies: &[PlacementStrategy]) -> ApiResult<Vec<Rank>> {
    if strategies.len() > MAX_STRATEGIES {
        return Err(ApiError::invalid_parameter(format!(
            "Too many placement strategies: {}. A task can have at most {MAX_STRATEGIES}.",
            strategies.len()
        )));
    }
    let mut ranks = Vec::new();
    let mut random = false;
    for strategy in strategies {
        let field = strategy.field.as_deref().unwrap_or("").trim();
        if field.chars().count() > MAX_FIELD_CHARS {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid placement strategy: the field is longer than {MAX_FIELD_CHARS} \
                 characters."
            )));
        }
        let rank = match strategy.strategy_type {
            None => {
                return Err(ApiError::invalid_parameter(
                    "Invalid placement strategy: 'type' is required (random, spread or binpack).",
                ));
            }
            Some(PlacementStrategyType::Random) => {
                if !field.is_empty() {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid placement strategy: random takes no field, not '{field}'."
                    )));
                }
                random = true;
                continue;
            }
            Some(PlacementStrategyType::Binpack) => {
                if field.eq_ignore_ascii_case("cpu") {
                    Rank::Cpu
                } else if field.eq_ignore_ascii_case("memory") {
                    Rank::Memory
                } else if field.is_empty() {
                    return Err(ApiError::invalid_parameter(
                        "Invalid placement strategy: binpack needs a field, CPU or MEMORY.",
                    ));
                } else {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid placement strategy: binpack's field must be CPU or MEMORY, not \
                         '{field}'."
                    )));
                }
            }
            Some(PlacementStrategyType::Spread) => {
                if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                    Rank::SpreadInstance
                } else if let Some(name) = field.strip_prefix("attribute:")
                    && !name.is_empty()
                {
                    Rank::SpreadAttribute(name.to_string())
                } else if field.is_empty() {
                    return Err(ApiError::invalid_parameter(
                        "Invalid placement strategy: spread needs a field, instanceId, host or \
                         attribute:NAME.",
                    ));
                } else {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid placement strategy: spread's field must be instanceId, host or \
                         attribute:NAME, not '{field}'."
                    )));
                }
            }
        };
        if !random {
            ranks.push(rank);
        }
    }
    Ok(ranks)
}
