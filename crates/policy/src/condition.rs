//! Condition operators and how one condition is evaluated against a request.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::context::RequestContext;
use crate::document::Version;
use crate::error::PolicyError;
use crate::pattern::{arn_match, literal_text, substitute_variables, wildcard_match};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const OPERATORS: &[(&str, Operator)] = &[
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringEqualsIgnoreCase", Operator::StringEqualsIgnoreCase),
    (
        "StringNotEqualsIgnoreCase",
        Operator::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
    ("NumericEquals", Operator::NumericEquals),
    ("NumericNotEquals", Operator::NumericNotEquals),
    ("NumericLessThan", Operator::NumericLessThan),
    ("NumericLessThanEquals", Operator::NumericLessThanEquals),
    ("NumericGreaterThan", Operator::NumericGreaterThan),
    (
        "NumericGreaterThanEquals",
        Operator::NumericGreaterThanEquals,
    ),
    ("DateEquals", Operator::DateEquals),
    ("DateNotEquals", Operator::DateNotEquals),
    ("DateLessThan", Operator::DateLessThan),
    ("DateLessThanEquals", Operator::DateLessThanEquals),
    ("DateGreaterThan", Operator::DateGreaterThan),
    ("DateGreaterThanEquals", Operator::DateGreaterThanEquals),
    ("Bool", Operator::Bool),
    ("BinaryEquals", Operator::BinaryEquals),
    ("IpAddress", Operator::IpAddress),
    ("NotIpAddress", Operator::NotIpAddress),
    ("ArnEquals", Operator::ArnEquals),
    ("ArnLike", Operator::ArnLike),
    ("ArnNotEquals", Operator::ArnNotEquals),
    ("ArnNotLike", Operator::ArnNotLike),
    ("Null", Operator::Null),
];

impl Operator {
    pub fn from_name(name: &str) -> Option<Operator> {
        OPERATORS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map(|(n, _)| *n)
            .unwrap_or("Unknown")
    }

    /// The operators that hold when the value matches none of the policy's values.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::NumericNotEquals
                | Operator::DateNotEquals
                | Operator::NotIpAddress
                | Operator::ArnNotEquals
                | Operator::ArnNotLike
        )
    }

    /// The positive operator a negated one is the complement of.
    fn positive(self) -> Operator {
        match self {
            Operator::StringNotEquals => Operator::StringEquals,
            Operator::StringNotEqualsIgnoreCase => Operator::StringEqualsIgnoreCase,
            Operator::StringNotLike => Operator::StringLike,
            Operator::NumericNotEquals => Operator::NumericEquals,
            Operator::DateNotEquals => Operator::DateEquals,
            Operator::NotIpAddress => Operator::IpAddress,
            Operator::ArnNotEquals => Operator::ArnEquals,
            Operator::ArnNotLike => Operator::ArnLike,
            other => other,
        }
    }
}

/// `ForAllValues:` / `ForAnyValue:` for multi-valued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// One condition key under one operator, with its values (OR-ed).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub qualifier: Option<SetQualifier>,
    pub if_exists: bool,
    /// Lower-cased: condition key names are case-insensitive.
    pub key: String,
    pub values: Vec<String>,
}

impl Condition {
    /// Values that can never be read as the operator's type are refused when the policy is
    /// written, as AWS does, rather than silently never matching.
    pub(crate) fn validate(&self) -> Result<(), PolicyError> {
        let bad = |value: &str, kind: &str| {
            Err(PolicyError::new(format!(
                "the {} condition on '{}' has '{value}', which is not {kind}",
                self.operator.name(),
                self.key
            )))
        };
        for value in &self.values {
            match self.operator.positive() {
                Operator::NumericEquals
                | Operator::NumericLessThan
                | Operator::NumericLessThanEquals
                | Operator::NumericGreaterThan
                | Operator::NumericGreaterThanEquals
                    if !value.contains("${") && value.parse::<f64>().is_err() =>
                {
                    return bad(value, "a number");
                }
                Operator::DateEquals
                | Operator::DateLessThan
                | Operator::DateLessThanEquals
                | Operator::DateGreaterThan
                | Operator::DateGreaterThanEquals
                    if !value.contains("${") && parse_date(value).is_none() =>
                {
                    return bad(value, "a date (ISO 8601 or epoch seconds)");
                }
                Operator::Bool | Operator::Null
                    if !value.eq_ignore_ascii_case("true")
                        && !value.eq_ignore_ascii_case("false") =>
                {
                    return bad(value, "true or false");
                }
                Operator::IpAddress if parse_cidr(value).is_none() => {
                    return bad(value, "an IP address or CIDR block");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether this condition holds for the request.
    pub fn holds(&self, request: &RequestContext, version: Version) -> bool {
        let present = request.values(&self.key).filter(|v| !v.is_empty());
        if self.operator == Operator::Null {
            let wants_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            let wants_present = self.values.iter().any(|v| v.eq_ignore_ascii_case("false"));
            return (wants_absent && present.is_none()) || (wants_present && present.is_some());
        }
        let Some(actual) = present else {
            return self.if_exists
                || self.qualifier == Some(SetQualifier::ForAllValues)
                || (self.qualifier.is_none() && self.operator.is_negated());
        };
        let policy_values: Vec<std::borrow::Cow<'_, str>> = self
            .values
            .iter()
            .filter_map(|v| match version {
                Version::V2012 => substitute_variables(v, request),
                Version::V2008 => Some(std::borrow::Cow::Borrowed(v.as_str())),
            })
            .collect();
        let positive = self.operator.positive();
        let matches_one = |value: &str| {
            policy_values
                .iter()
                .any(|policy_value| compare(positive, policy_value, value))
        };
        let holds_for = |value: &str| {
            if self.operator.is_negated() {
                !matches_one(value)
            } else {
                matches_one(value)
            }
        };
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => actual.iter().all(|v| holds_for(v)),
            Some(SetQualifier::ForAnyValue) => actual.iter().any(|v| holds_for(v)),
            // A multi-valued key without a qualifier: a positive operator wants one of the
            // request's values to match, a negated one wants none of them to.
            None if self.operator.is_negated() => actual.iter().all(|v| holds_for(v)),
            None => actual.iter().any(|v| holds_for(v)),
        }
    }
}

/// Compares one request value with one policy value under a positive operator.
fn compare(operator: Operator, policy_value: &str, value: &str) -> bool {
    match operator {
        Operator::StringEquals => literal_text(policy_value) == value,
        Operator::StringEqualsIgnoreCase => {
            literal_text(policy_value).to_lowercase() == value.to_lowercase()
        }
        Operator::StringLike => wildcard_match(policy_value, value, false),
        Operator::NumericEquals
        | Operator::NumericLessThan
        | Operator::NumericLessThanEquals
        | Operator::NumericGreaterThan
        | Operator::NumericGreaterThanEquals => {
            match (
                value.trim().parse::<f64>(),
                literal_text(policy_value).trim().parse::<f64>(),
            ) {
                (Ok(v), Ok(p)) => ordered(operator, v.partial_cmp(&p)),
                _ => false,
            }
        }
        Operator::DateEquals
        | Operator::DateLessThan
        | Operator::DateLessThanEquals
        | Operator::DateGreaterThan
        | Operator::DateGreaterThanEquals => {
            match (parse_date(value), parse_date(&literal_text(policy_value))) {
                (Some(v), Some(p)) => ordered(operator, Some(v.cmp(&p))),
                _ => false,
            }
        }
        Operator::Bool => literal_text(policy_value).eq_ignore_ascii_case(value),
        Operator::BinaryEquals => literal_text(policy_value) == value,
        Operator::IpAddress => match (value.parse::<IpAddr>(), parse_cidr(policy_value)) {
            (Ok(ip), Some((network, prefix))) => in_network(ip, network, prefix),
            _ => false,
        },
        Operator::ArnEquals | Operator::ArnLike => arn_match(policy_value, value),
        _ => false,
    }
}

fn ordered(operator: Operator, ordering: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let Some(ordering) = ordering else {
        return false;
    };
    match operator {
        Operator::NumericEquals | Operator::DateEquals => ordering == Equal,
        Operator::NumericLessThan | Operator::DateLessThan => ordering == Less,
        Operator::NumericLessThanEquals | Operator::DateLessThanEquals => ordering != Greater,
        Operator::NumericGreaterThan | Operator::DateGreaterThan => ordering == Greater,
        Operator::NumericGreaterThanEquals | Operator::DateGreaterThanEquals => ordering != Less,
        _ => false,
    }
}

/// Dates in conditions are ISO 8601 (`2026-01-01T00:00:00Z`, or a bare `2026-01-01`) or epoch
/// seconds.
fn parse_date(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(seconds).ok();
    }
    if let Ok(date) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(date);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
        None => (value, None),
    };
    let address: IpAddr = address.trim().parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((address, prefix))
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128u32),
        _ => return false,
    };
    if prefix == 0 {
        return true;
    }
    let shift = width - u32::from(prefix);
    (ip >> shift) == (network >> shift)
}
