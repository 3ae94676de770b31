//! The IAM JSON policy language, on its own and pure: documents are parsed and validated the
//! way AWS validates them when they are written (identity, resource and trust policies each
//! with their own rules), and evaluated the way AWS evaluates them — explicit Deny wins, then
//! Allow, else the implicit deny — with identity and resource policies combined as AWS combines
//! them within an account and across accounts.
//!
//! It knows nothing of keytrail's services: callers describe the request (who, which action,
//! which resource, which condition keys) in a [`RequestContext`] and get a [`Decision`].

mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod pattern;

pub use condition::{Condition, Operator, SetQualifier};
pub use context::{Caller, RequestContext};
pub use document::{
    Effect, PatternBlock, Policy, PolicyKind, PrincipalBlock, PrincipalPattern, Statement, Version,
};
pub use error::PolicyError;
pub use evaluate::{
    Authorization, Decision, PolicyVerdict, PrincipalMatch, ResourceAuthority, evaluate_all,
};
pub use pattern::{arn_fields, arn_match, wildcard_match};

#[cfg(test)]
mod tests;
