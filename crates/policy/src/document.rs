//! Parsing a policy document into its statements, with the validation AWS applies when a policy
//! is written (a malformed document is refused then, never discovered at evaluation time).

use serde_json::{Map, Value};

use crate::condition::{Condition, Operator, SetQualifier};
use crate::error::PolicyError;
use crate::pattern::arn_fields;

/// Which kind of policy a document is; each kind has its own rules about Principal and Resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role: no Principal, Resource required.
    Identity,
    /// A key policy or bucket policy: Principal and Resource required.
    Resource,
    /// A role's trust policy: Principal required, no Resource.
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: policy variables are substituted.
    V2012,
    /// `2008-10-17` (also what a document without Version means): `${...}` is literal text.
    V2008,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A principal a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// `"*"` or `{"AWS": "*"}`: everyone, signed or not.
    Anyone,
    /// A 12-digit account or `arn:aws:iam::<account>:root`: the account, which then decides
    /// through its own IAM policies.
    Account(String),
    /// A user, role or role-session ARN.
    Arn(String),
    /// `{"Service": "cloudtrail.amazonaws.com"}`.
    Service(String),
    /// Federated and canonical-user principals are accepted in documents but match none of the
    /// callers keytrail knows.
    Other(String),
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalBlock {
    pub negated: bool,
    pub patterns: Vec<PrincipalPattern>,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: the patterns and whether the element is
/// the `Not...` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternBlock {
    pub negated: bool,
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<PrincipalBlock>,
    /// Action patterns are stored lower-cased: actions compare without regard to case.
    pub action: PatternBlock,
    pub resource: Option<PatternBlock>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

const TOP_LEVEL: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_FIELDS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Parses and validates a document of the given kind.
    pub fn parse(document: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(document)
            .map_err(|e| PolicyError::new(format!("the policy is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(PolicyError::new("the policy must be a JSON object"));
        };
        reject_unknown(&top, TOP_LEVEL, "policy")?;
        let version = match top.get("Version") {
            None => Version::V2008,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008,
            Some(other) => {
                return Err(PolicyError::new(format!(
                    "the policy must contain a valid version string; {other} is not one \
                     (use \"2012-10-17\")"
                )));
            }
        };
        let id = match top.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(PolicyError::new("Id must be a string")),
        };
        let statements = match top.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| parse_statement(item, kind))
                .collect::<Result<Vec<_>, _>>()?,
            Some(item @ Value::Object(_)) => vec![parse_statement(item, kind)?],
            Some(_) => return Err(PolicyError::new("Statement must be a non-empty list")),
            None => return Err(PolicyError::new("the policy is missing Statement")),
        };
        let mut seen = std::collections::HashSet::new();
        for sid in statements.iter().filter_map(|s| s.sid.as_deref()) {
            if !sid.is_empty() && !seen.insert(sid) {
                return Err(PolicyError::new(format!(
                    "statement ids (Sid) must be unique; '{sid}' is used twice"
                )));
            }
        }
        Ok(Policy {
            version,
            id,
            statements,
        })
    }
}

fn reject_unknown(
    object: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), PolicyError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(PolicyError::new(format!(
            "the {what} has an unknown field '{unknown}'"
        ))),
        None => Ok(()),
    }
}

fn parse_statement(value: &Value, kind: PolicyKind) -> Result<Statement, PolicyError> {
    let Value::Object(fields) = value else {
        return Err(PolicyError::new("each statement must be a JSON object"));
    };
    reject_unknown(fields, STATEMENT_FIELDS, "statement")?;
    let sid = match fields.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(PolicyError::new("Sid must be a string")),
    };
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::new(format!(
                "Effect must be \"Allow\" or \"Deny\", not {other}"
            )));
        }
        None => return Err(PolicyError::new("a statement is missing Effect")),
    };

    let principal = one_of(fields, "Principal", "NotPrincipal")?
        .map(|(negated, value)| {
            parse_principal(value).map(|patterns| PrincipalBlock { negated, patterns })
        })
        .transpose()?;
    match (kind, &principal) {
        (PolicyKind::Identity, Some(_)) => {
            return Err(PolicyError::new(
                "an identity-based policy must not specify a Principal",
            ));
        }
        (PolicyKind::Resource | PolicyKind::Trust, None) => {
            return Err(PolicyError::new("a statement is missing Principal"));
        }
        _ => {}
    }

    let action = match one_of(fields, "Action", "NotAction")? {
        Some((negated, value)) => {
            let patterns = string_list(value, "Action")?;
            for pattern in &patterns {
                validate_action(pattern)?;
            }
            PatternBlock {
                negated,
                patterns: patterns
                    .into_iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
            }
        }
        None => return Err(PolicyError::new("a statement is missing Action")),
    };

    let resource = one_of(fields, "Resource", "NotResource")?
        .map(|(negated, value)| {
            let patterns = string_list(value, "Resource")?;
            for pattern in &patterns {
                if pattern != "*" && !pattern.starts_with("arn:") {
                    return Err(PolicyError::new(format!(
                        "resource '{pattern}' must be \"*\" or an ARN"
                    )));
                }
            }
            Ok(PatternBlock { negated, patterns })
        })
        .transpose()?;
    match (kind, &resource) {
        (PolicyKind::Trust, Some(_)) => {
            return Err(PolicyError::new(
                "a trust policy must not specify a Resource",
            ));
        }
        (PolicyKind::Identity | PolicyKind::Resource, None) => {
            return Err(PolicyError::new("a statement is missing Resource"));
        }
        _ => {}
    }

    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => parse_conditions(block)?,
        Some(_) => return Err(PolicyError::new("Condition must be a JSON object")),
    };

    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// An element that comes in a positive and a `Not` form, of which a statement may hold one.
fn one_of<'a>(
    fields: &'a Map<String, Value>,
    positive: &str,
    negative: &str,
) -> Result<Option<(bool, &'a Value)>, PolicyError> {
    match (fields.get(positive), fields.get(negative)) {
        (Some(_), Some(_)) => Err(PolicyError::new(format!(
            "a statement cannot have both {positive} and {negative}"
        ))),
        (Some(value), None) => Ok(Some((false, value))),
        (None, Some(value)) => Ok(Some((true, value))),
        (None, None) => Ok(None),
    }
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let list = match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(PolicyError::new(format!(
                    "{what} entries must be strings, not {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(PolicyError::new(format!(
                "{what} must be a string or a non-empty list of strings"
            )));
        }
    };
    if list.iter().any(String::is_empty) {
        return Err(PolicyError::new(format!(
            "{what} entries must not be empty"
        )));
    }
    Ok(list)
}

fn validate_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    match action.split_once(':') {
        Some((service, operation))
            if !service.is_empty()
                && !operation.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Ok(())
        }
        _ => Err(PolicyError::new(format!(
            "action '{action}' must be \"*\" or have the form service:operation"
        ))),
    }
}

fn parse_principal(value: &Value) -> Result<Vec<PrincipalPattern>, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(vec![PrincipalPattern::Anyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut patterns = Vec::new();
            for (kind, entries) in map {
                for entry in string_list(entries, "Principal")? {
                    patterns.push(match kind.as_str() {
                        "AWS" => aws_principal(&entry)?,
                        "Service" => {
                            if entry.contains('*') {
                                return Err(PolicyError::new(format!(
                                    "service principal '{entry}' must not contain wildcards"
                                )));
                            }
                            PrincipalPattern::Service(entry.to_ascii_lowercase())
                        }
                        "Federated" | "CanonicalUser" => PrincipalPattern::Other(entry),
                        other => {
                            return Err(PolicyError::new(format!(
                                "unknown principal type '{other}' (AWS, Service, Federated or \
                                 CanonicalUser)"
                            )));
                        }
                    });
                }
            }
            Ok(patterns)
        }
        _ => Err(PolicyError::new(
            "Principal must be \"*\" or an object such as {\"AWS\": ...} or {\"Service\": ...}",
        )),
    }
}

fn aws_principal(entry: &str) -> Result<PrincipalPattern, PolicyError> {
    if entry == "*" {
        return Ok(PrincipalPattern::Anyone);
    }
    if is_account_id(entry) {
        return Ok(PrincipalPattern::Account(entry.to_string()));
    }
    let invalid = || PolicyError::invalid_principal(entry);
    let Some(["arn", _partition, service, "", account, resource]) = arn_fields(entry) else {
        return Err(invalid());
    };
    if !is_account_id(account) || entry.contains('*') || entry.contains('?') {
        return Err(invalid());
    }
    match (service, resource) {
        ("iam", "root") => Ok(PrincipalPattern::Account(account.to_string())),
        ("iam", r) if r.starts_with("user/") || r.starts_with("role/") => {
            Ok(PrincipalPattern::Arn(entry.to_string()))
        }
        ("sts", r) if r.starts_with("assumed-role/") => {
            Ok(PrincipalPattern::Arn(entry.to_string()))
        }
        _ => Err(invalid()),
    }
}

pub(crate) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn parse_conditions(block: &Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
    for (operator_name, keys) in block {
        let (qualifier, rest) = if let Some(rest) = operator_name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = operator_name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, operator_name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator = Operator::from_name(base)
            .filter(|op| !(if_exists && *op == Operator::Null))
            .ok_or_else(|| {
                PolicyError::new(format!("unknown condition operator '{operator_name}'"))
            })?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::new(format!(
                "the {operator_name} condition must map condition keys to values"
            )));
        };
        if keys.is_empty() {
            return Err(PolicyError::new(format!(
                "the {operator_name} condition names no condition key"
            )));
        }
        for (key, values) in keys {
            let values = condition_values(values, operator_name)?;
            let condition = Condition {
                operator,
                qualifier,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            };
            condition.validate()?;
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

fn condition_values(value: &Value, operator: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(PolicyError::new(format!(
            "the {operator} condition has a value that is not a string, number or boolean: {other}"
        ))),
    };
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(scalar).collect(),
        Value::Array(_) => Err(PolicyError::new(format!(
            "the {operator} condition has an empty list of values"
        ))),
        other => Ok(vec![scalar(other)?]),
    }
}
