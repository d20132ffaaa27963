//! The cluster query language: the expressions of `memberOf` placement
//! constraints and of ListContainerInstances' `filter`.
//!
//! An expression is one or more conditions `subject operator [argument]` joined
//! with `&&`/`and`, `||`/`or`, negated with `!`/`not`, grouped with parentheses.
//! `not` binds tighter than `and`, which binds tighter than `or`.
//!
//! Subjects (the ECS developer guide's list): `agentConnected`, `agentVersion`,
//! `attribute:NAME`, `ec2InstanceId`, `registeredAt`, `runningTasksCount` and
//! `task:group`. Each accepts the operators the guide lists for it; `attribute:`
//! accepts all of them and `task:group` all but the orderings.
//!
//! Operators: `==`/`equals`, `!=`/`not_equals`, `>`/`greater_than`,
//! `>=`/`greater_than_equal`, `<`/`less_than`, `<=`/`less_than_equal`, `exists`,
//! `!exists`/`not_exists`, `in`, `!in`/`not_in`, `=~`/`matches`,
//! `!~`/`not_matches`. Word operators and `and`/`or`/`not` are
//! case-insensitive; subjects and values are not.
//!
//! Arguments: a value, bare (`t2.small`, `us-east-1a`) or quoted with `'` or `"`
//! (no escapes inside quotes), or for `in`/`!in` a list `[a, b]` (also written
//! `(a, b)`). A bare value ends at white space, a bracket, a parenthesis, a comma,
//! `&&` or `||`; quote values that hold those. Patterns of `=~`/`!~` are regular
//! expressions that must match the whole value (Java's `String.matches`, which
//! the guide refers to).
//!
//! Typing: `runningTasksCount` compares whole numbers; `registeredAt` compares
//! instants against the guide's date formats (`2018-06-18T22:28:28+00:00`,
//! `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28`, `2018-06-18`; no offset means
//! UTC) where a date stands for that whole UTC day and a time for that whole
//! second (so `registeredAt == 2018-06-18` holds all day, `< 2018-06-18` before it
//! and `> 2018-06-18` after it); `agentVersion` orders by dotted version numbers
//! (`1.9.0 < 1.14.5`) and tests `==`/`!=` as strings; `attribute:` values order as
//! numbers when both sides are numbers, as strings otherwise.
//!
//! Missing values: a condition on an attribute the instance does not have is false
//! whatever the operator, except `!exists` (so `attribute:stack != prod` selects
//! the instances that have `stack` with another value, as the guide's example
//! says). An attribute without a value exists, equals nothing and matches nothing
//! (so `!=`, `!in` and `!~` hold for it). The same goes for an instance without an
//! EC2 instance id, agent version or registration time.
//!
//! `task:group` has one value per task on the instance, and a condition holds
//! when it holds for at least one of them (`exists`: the instance has a task).
//! Task anti-affinity is therefore written as the guide does,
//! `not(task:group == database)`; `task:group != database` means "runs a task of
//! another group".

use std::cmp::Ordering;
use std::fmt;

use berth_model::{ApiError, ApiResult};
use regex::Regex;

/// What an expression is evaluated against: one container instance.
pub trait QueryTarget {
    /// Whether the instance's agent is connected.
    fn agent_connected(&self) -> bool;
    /// The agent's version, if known.
    fn agent_version(&self) -> Option<&str>;
    /// `None` when the instance lacks the attribute, `Some(None)` when it has it
    /// without a value.
    fn attribute(&self, name: &str) -> Option<Option<&str>>;
    /// The EC2 instance id, if any.
    fn ec2_instance_id(&self) -> Option<&str>;
    /// Registration time, epoch seconds.
    fn registered_at(&self) -> Option<f64>;
    /// The instance's running task count.
    fn running_tasks_count(&self) -> i64;
    /// Whether `test` holds for the group of at least one task on the instance.
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool;
}

/// A syntax or typing error of an expression, at a 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at position {position})")]
pub struct QueryError {
    /// 1-based position, in characters, of the offending token.
    pub position: usize,
    pub message: String,
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        ApiError::invalid_parameter(format!("Invalid cluster query expression: {err}."))
    }
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

impl Subject {
    fn parse(word: &str) -> Option<Subject> {
        Some(match word {
            "agentConnected" => Subject::AgentConnected,
            "agentVersion" => Subject::AgentVersion,
            "ec2InstanceId" => Subject::Ec2InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            _ => {
                let name = word.strip_prefix("attribute:")?;
                if name.is_empty() {
                    return None;
                }
                Subject::Attribute(name.to_string())
            }
        })
    }

    fn name(&self) -> &str {
        match self {
            Subject::AgentConnected => "agentConnected",
            Subject::AgentVersion => "agentVersion",
            Subject::Attribute(_) => "attribute",
            Subject::Ec2InstanceId => "ec2InstanceId",
            Subject::RegisteredAt => "registeredAt",
            Subject::RunningTasksCount => "runningTasksCount",
            Subject::TaskGroup => "task:group",
        }
    }

    /// The operators the guide lists for the subject.
    fn operators(&self) -> &'static [Op] {
        use Op::*;
        const STRINGS: &[Op] = &[Eq, Ne, In, NotIn, Matches, NotMatches];
        const ORDERED: &[Op] = &[Eq, Ne, Gt, Ge, Lt, Le];
        const GROUPS: &[Op] = &[Eq, Ne, In, NotIn, Matches, NotMatches, Exists, NotExists];
        const ALL: &[Op] = &[
            Eq, Ne, Gt, Ge, Lt, Le, Exists, NotExists, In, NotIn, Matches, NotMatches,
        ];
        match self {
            Subject::AgentConnected | Subject::Ec2InstanceId => STRINGS,
            Subject::AgentVersion | Subject::RegisteredAt | Subject::RunningTasksCount => ORDERED,
            Subject::TaskGroup => GROUPS,
            Subject::Attribute(_) => ALL,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Exists => "exists",
            Op::NotExists => "!exists",
            Op::In => "in",
            Op::NotIn => "!in",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
        }
    }

    fn word(word: &str) -> Option<Op> {
        const WORDS: &[(&str, Op)] = &[
            ("equals", Op::Eq),
            ("not_equals", Op::Ne),
            ("greater_than", Op::Gt),
            ("greater_than_equal", Op::Ge),
            ("less_than", Op::Lt),
            ("less_than_equal", Op::Le),
            ("exists", Op::Exists),
            ("not_exists", Op::NotExists),
            ("in", Op::In),
            ("not_in", Op::NotIn),
            ("matches", Op::Matches),
            ("not_matches", Op::NotMatches),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, op)| *op)
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// A value of the expression, with what it parses to for the subject it is
/// compared with.
#[derive(Debug, Clone)]
struct Value {
    text: String,
    /// `attribute:` orderings: the value as a number, when it is one.
    number: Option<f64>,
    /// `runningTasksCount`.
    integer: i64,
    /// `registeredAt`: the instants the value stands for, `[start, end)`.
    span: (f64, f64),
}

#[derive(Debug, Clone)]
enum Argument {
    None,
    One(Value),
    List(Vec<Value>),
    Pattern(Regex),
}

#[derive(Debug, Clone)]
struct Condition {
    subject: Subject,
    op: Op,
    argument: Argument,
}

#[derive(Debug, Clone)]
enum Node {
    Condition(Condition),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// A parsed expression, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: Node,
}

impl Expression {
    /// Parses an expression.
    pub fn parse(source: &str) -> Result<Expression, QueryError> {
        let mut parser = Parser { src: source, at: 0 };
        parser.skip_space();
        if parser.at_end() {
            return Err(parser.error_here("the expression is empty"));
        }
        let root = parser.or()?;
        parser.skip_space();
        if !parser.at_end() {
            let token = parser.token_here();
            return Err(parser.error_here(format!(
                "unexpected '{token}', expected '&&', '||' or the end of the expression"
            )));
        }
        Ok(Expression {
            source: source.to_string(),
            root,
        })
    }

    /// Parses an expression, as an API error when it is not valid.
    pub fn parse_api(source: &str) -> ApiResult<Expression> {
        Ok(Self::parse(source)?)
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression holds for the instance.
    pub fn matches(&self, target: &(impl QueryTarget + ?Sized)) -> bool {
        eval(&self.root, target)
    }

    /// Whether the expression looks at what placing a task changes (the running
    /// task count, the task groups); if not, its value for an instance stays the
    /// same while tasks are placed on it.
    pub fn depends_on_tasks(&self) -> bool {
        fn walk(node: &Node) -> bool {
            match node {
                Node::Condition(c) => {
                    matches!(c.subject, Subject::RunningTasksCount | Subject::TaskGroup)
                }
                Node::Not(inner) => walk(inner),
                Node::And(a, b) | Node::Or(a, b) => walk(a) || walk(b),
            }
        }
        walk(&self.root)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn eval<T: QueryTarget + ?Sized>(node: &Node, target: &T) -> bool {
    match node {
        Node::Condition(c) => condition(c, target),
        Node::Not(inner) => !eval(inner, target),
        Node::And(a, b) => eval(a, target) && eval(b, target),
        Node::Or(a, b) => eval(a, target) || eval(b, target),
    }
}

fn condition<T: QueryTarget + ?Sized>(c: &Condition, target: &T) -> bool {
    match &c.subject {
        Subject::TaskGroup => match c.op {
            Op::Exists => target.any_task_group(&mut |_| true),
            Op::NotExists => !target.any_task_group(&mut |_| true),
            _ => target.any_task_group(&mut |group| compare_text(c, group)),
        },
        Subject::Attribute(name) => match (target.attribute(name), c.op) {
            (None, op) => op == Op::NotExists,
            (Some(_), Op::Exists) => true,
            (Some(_), Op::NotExists) => false,
            (Some(Some(value)), _) => compare_text(c, value),
            // A value-less attribute equals and matches nothing.
            (Some(None), op) => matches!(op, Op::Ne | Op::NotIn | Op::NotMatches),
        },
        Subject::AgentConnected => compare_text(
            c,
            if target.agent_connected() {
                "true"
            } else {
                "false"
            },
        ),
        Subject::Ec2InstanceId => target
            .ec2_instance_id()
            .is_some_and(|id| compare_text(c, id)),
        Subject::AgentVersion => target.agent_version().is_some_and(|version| match c.op {
            Op::Eq | Op::Ne => compare_text(c, version),
            op => single(c).is_some_and(|v| ordered(op, compare_versions(version, &v.text))),
        }),
        Subject::RegisteredAt => target.registered_at().is_some_and(|at| {
            let Some(v) = single(c) else { return false };
            let (start, end) = v.span;
            match c.op {
                Op::Eq => start <= at && at < end,
                Op::Ne => !(start <= at && at < end),
                Op::Lt => at < start,
                Op::Le => at < end,
                Op::Gt => at >= end,
                Op::Ge => at >= start,
                _ => false,
            }
        }),
        Subject::RunningTasksCount => single(c).is_some_and(|v| {
            let count = target.running_tasks_count();
            match c.op {
                Op::Eq => count == v.integer,
                Op::Ne => count != v.integer,
                op => ordered(op, count.cmp(&v.integer)),
            }
        }),
    }
}

fn single(c: &Condition) -> Option<&Value> {
    match &c.argument {
        Argument::One(value) => Some(value),
        _ => None,
    }
}

/// A string subject's value against the condition.
fn compare_text(c: &Condition, value: &str) -> bool {
    match (&c.argument, c.op) {
        (Argument::One(v), Op::Eq) => value == v.text,
        (Argument::One(v), Op::Ne) => value != v.text,
        (Argument::One(v), op) if op.is_ordering() => {
            let order = match (v.number, parse_number(value)) {
                (Some(want), Some(have)) => have.partial_cmp(&want).unwrap_or(Ordering::Equal),
                _ => value.cmp(v.text.as_str()),
            };
            ordered(op, order)
        }
        (Argument::List(list), Op::In) => list.iter().any(|v| v.text == value),
        (Argument::List(list), Op::NotIn) => list.iter().all(|v| v.text != value),
        (Argument::Pattern(re), Op::Matches) => re.is_match(value),
        (Argument::Pattern(re), Op::NotMatches) => !re.is_match(value),
        _ => false,
    }
}

/// Whether `order` (the instance's value against the argument) satisfies an
/// ordering operator.
fn ordered(op: Op, order: Ordering) -> bool {
    match op {
        Op::Gt => order == Ordering::Greater,
        Op::Ge => order != Ordering::Less,
        Op::Lt => order == Ordering::Less,
        Op::Le => order != Ordering::Greater,
        _ => false,
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Compares dotted versions segment by segment: the leading digits of a segment
/// as a number, then the rest as text; a missing segment counts as `0`.
fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(segment: &str) -> (u64, &str) {
        let digits = segment.len()
            - segment
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let number = segment[..digits]
            .parse()
            .unwrap_or(if digits > 0 { u64::MAX } else { 0 });
        (number, &segment[digits..])
    }
    let a = a.trim().trim_start_matches(['v', 'V']);
    let b = b.trim().trim_start_matches(['v', 'V']);
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (l, r) => {
                let order = split(l.unwrap_or("0")).cmp(&split(r.unwrap_or("0")));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The instants a `registeredAt` argument stands for: a date, that UTC day; a
/// time, that second. `None` when it is not in one of the guide's formats.
fn parse_instant(text: &str) -> Option<(f64, f64)> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let midnight = days_from_civil(year, month, day) * 86_400;
    if bytes.len() == 10 {
        return Some((midnight as f64, (midnight + 86_400) as f64));
    }
    if bytes.len() < 19 || bytes[10] != b'T' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset = match text.get(19..)? {
        "" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone.as_bytes()[3] != b':' {
                return None;
            }
            let (h, m) = (number(20..22)?, number(23..25)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let at = midnight + hour * 3600 + minute * 60 + second - offset;
    Some((at as f64, (at + 1) as f64))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Characters of a subject (attribute names: letters, digits, `-`, `_`, `/`,
/// `\`, `.`; and the `:` of `attribute:` and `task:group`).
fn is_subject_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '/' | '\\' | '@')
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset.
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.at..]
    }

    fn at_end(&self) -> bool {
        self.at >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn position_of(&self, byte: usize) -> usize {
        self.src[..byte].chars().count() + 1
    }

    fn error_at(&self, byte: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            position: self.position_of(byte),
            message: message.into(),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> QueryError {
        self.error_at(self.at, message)
    }

    /// The token at the cursor, for messages.
    fn token_here(&self) -> String {
        let token: String = self
            .rest()
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(24)
            .collect();
        if token.is_empty() {
            "end of expression".to_string()
        } else {
            token
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.rest().starts_with(text) {
            self.at += text.len();
            true
        } else {
            false
        }
    }

    /// Eats a keyword (case-insensitive) that is not the start of a longer word.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let Some(head) = rest.get(..word.len()) else {
            return false;
        };
        if !head.eq_ignore_ascii_case(word) {
            return false;
        }
        if rest[word.len()..]
            .chars()
            .next()
            .is_some_and(is_subject_char)
        {
            return false;
        }
        self.at += word.len();
        true
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let mut left = self.and()?;
        loop {
            self.skip_space();
            if self.eat("||") || self.eat_keyword("or") {
                let right = self.and()?;
                left = Node::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut left = self.unary()?;
        loop {
            self.skip_space();
            if self.eat("&&") || self.eat_keyword("and") {
                let right = self.unary()?;
                left = Node::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        self.skip_space();
        if self.eat("!") || self.eat_keyword("not") {
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let open = self.at - 1;
            let inner = self.or()?;
            self.skip_space();
            if !self.eat(")") {
                let token = self.token_here();
                return Err(self.error_here(format!(
                    "expected ')' to close the '(' at position {}, found '{token}'",
                    self.position_of(open)
                )));
            }
            return Ok(inner);
        }
        self.condition().map(Node::Condition)
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let start = self.at;
        let word: &str = {
            let rest = self.rest();
            let len = rest.len() - rest.trim_start_matches(is_subject_char).len();
            &rest[..len]
        };
        if word.is_empty() {
            let token = self.token_here();
            return Err(self.error_here(format!("expected a subject, found '{token}'")));
        }
        let Some(subject) = Subject::parse(word) else {
            return Err(self.error_at(
                start,
                format!(
                    "unknown subject '{word}'; expected agentConnected, agentVersion, \
                     attribute:NAME, ec2InstanceId, registeredAt, runningTasksCount or task:group"
                ),
            ));
        };
        self.at += word.len();
        self.skip_space();
        let op_at = self.at;
        let op = self.operator(&subject)?;
        if !subject.operators().contains(&op) {
            let valid: Vec<&str> = subject.operators().iter().map(|op| op.symbol()).collect();
            return Err(self.error_at(
                op_at,
                format!(
                    "operator '{}' is not valid for {}; valid operators: {}",
                    op.symbol(),
                    subject.name(),
                    valid.join(", ")
                ),
            ));
        }
        let argument = match op {
            Op::Exists | Op::NotExists => Argument::None,
            Op::In | Op::NotIn => Argument::List(self.list(&subject, op)?),
            Op::Matches | Op::NotMatches => {
                self.skip_space();
                let value_at = self.at;
                let value = self.value(&subject, op)?;
                let pattern = Regex::new(&format!("^(?:{})$", value.text)).map_err(|err| {
                    self.error_at(
                        value_at,
                        format!("'{}' is not a valid regular expression: {err}", value.text),
                    )
                })?;
                Argument::Pattern(pattern)
            }
            _ => {
                self.skip_space();
                Argument::One(self.value(&subject, op)?)
            }
        };
        Ok(Condition {
            subject,
            op,
            argument,
        })
    }

    fn operator(&mut self, subject: &Subject) -> Result<Op, QueryError> {
        // Longest first: `!exists` and `!in` before `!=`/`!~`, `>=` before `>`.
        for (symbol, op) in [("!exists", Op::NotExists), ("!in", Op::NotIn)] {
            if self.eat_keyword(symbol) {
                return Ok(op);
            }
        }
        for (symbol, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=~", Op::Matches),
            ("!~", Op::NotMatches),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.eat(symbol) {
                return Ok(op);
            }
        }
        let rest = self.rest();
        let len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '_')
                .len();
        if let Some(op) = Op::word(&rest[..len])
            && !rest[len..].chars().next().is_some_and(is_subject_char)
        {
            self.at += len;
            return Ok(op);
        }
        let token = self.token_here();
        Err(self.error_here(format!(
            "expected an operator after '{}', found '{token}'",
            subject.name()
        )))
    }

    fn list(&mut self, subject: &Subject, op: Op) -> Result<Vec<Value>, QueryError> {
        self.skip_space();
        let close = if self.eat("[") {
            "]"
        } else if self.eat("(") {
            ")"
        } else {
            let token = self.token_here();
            return Err(self.error_here(format!(
                "operator '{}' expects a list like [a, b], found '{token}'",
                op.symbol()
            )));
        };
        let mut values = Vec::new();
        loop {
            self.skip_space();
            if values.is_empty() && self.rest().starts_with(close) {
                return Err(self.error_here("the argument list is empty"));
            }
            values.push(self.value(subject, op)?);
            self.skip_space();
            if self.eat(close) {
                return Ok(values);
            }
            if !self.eat(",") {
                let token = self.token_here();
                return Err(self.error_here(format!(
                    "expected ',' or '{close}' in the argument list, found '{token}'"
                )));
            }
        }
    }

    /// One value, quoted or bare, typed for the subject.
    fn value(&mut self, subject: &Subject, op: Op) -> Result<Value, QueryError> {
        let start = self.at;
        let text = match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                let body = &self.rest()[1..];
                let Some(end) = body.find(quote) else {
                    return Err(self.error_here(format!("the quote {quote} is never closed")));
                };
                let text = body[..end].to_string();
                self.at += end + 2;
                text
            }
            _ => {
                let len = bare_len(self.rest(), matches!(op, Op::Matches | Op::NotMatches));
                if len == 0 {
                    let token = self.token_here();
                    return Err(self.error_here(format!(
                        "expected a value after '{}', found '{token}'",
                        op.symbol()
                    )));
                }
                let text = self.rest()[..len].to_string();
                self.at += len;
                text
            }
        };
        let mut value = Value {
            number: parse_number(&text),
            integer: 0,
            span: (0.0, 0.0),
            text,
        };
        let regex = matches!(op, Op::Matches | Op::NotMatches);
        match subject {
            Subject::RunningTasksCount if !regex => {
                value.integer = value.text.parse().map_err(|_| {
                    self.error_at(
                        start,
                        format!(
                            "runningTasksCount compares whole numbers, not '{}'",
                            value.text
                        ),
                    )
                })?;
            }
            Subject::RegisteredAt if !regex => {
                value.span = parse_instant(&value.text).ok_or_else(|| {
                    self.error_at(
                        start,
                        format!(
                            "registeredAt compares dates like 2018-06-18T22:28:28+00:00, \
                             2018-06-18T22:28:28Z, 2018-06-18T22:28:28 or 2018-06-18, not '{}'",
                            value.text
                        ),
                    )
                })?;
            }
            Subject::AgentConnected if !regex => value.text.make_ascii_lowercase(),
            _ => {}
        }
        Ok(value)
    }
}

/// The length in bytes of the bare value at the start of `rest`: up to white
/// space, a quote, a bracket, a parenthesis, a comma, `&&` or `||`. A pattern
/// (`=~`, `!~`) keeps balanced parentheses and brackets and commas, so
/// `t2\.(micro|small)` and `a{1,3}` need no quotes.
fn bare_len(rest: &str, pattern: bool) -> usize {
    let mut depth = 0usize;
    let mut len = 0;
    for (i, c) in rest.char_indices() {
        let stop = c.is_whitespace()
            || matches!(c, '\'' | '"')
            || rest[i..].starts_with("&&")
            || rest[i..].starts_with("||")
            || if pattern {
                match c {
                    '(' | '[' => {
                        depth += 1;
                        false
                    }
                    ')' | ']' if depth > 0 => {
                        depth -= 1;
                        false
                    }
                    ')' | ']' => true,
                    _ => false,
                }
            } else {
                matches!(c, '(' | ')' | '[' | ']' | ',')
            };
        if stop {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// The instances an expression selects, in their order (ListContainerInstances'
/// `filter`). An invalid expression is an `InvalidParameterException`.
pub fn filter<'a, T: QueryTarget>(instances: &'a [T], expression: &str) -> ApiResult<Vec<&'a T>> {
    let expression = Expression::parse_api(expression)?;
    Ok(instances
        .iter()
        .filter(|instance| expression.matches(*instance))
        .collect())
}
