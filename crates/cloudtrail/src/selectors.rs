//! Which events a trail logs (§5.8): by default every management event, read and write; basic
//! event selectors (read/write type, management events on or off, excluded sources, S3 data
//! resources) or advanced ones (field conditions) when the user puts them.

use serde_json::Value;

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::model::{AdvancedEventSelector, AdvancedFieldSelector, EventSelector};
use crate::trail::TrailRecord;

const MAX_SELECTORS: usize = 5;
const MAX_DATA_RESOURCES: usize = 250;
const MAX_ADVANCED_VALUES: usize = 500;
const ADVANCED_FIELDS: &[&str] = &[
    "eventCategory",
    "resources.type",
    "resources.ARN",
    "readOnly",
    "eventName",
    "eventSource",
    "eventType",
    "userIdentity.arn",
    "errorCode",
    "sessionCredentialFromConsole",
    "vpcEndpointId",
];
const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";

fn invalid(message: impl Into<String>) -> CloudTrailError {
    CloudTrailError::new("InvalidEventSelectorsException", message)
}

pub fn validate_basic(selectors: &[EventSelector]) -> CloudTrailResult<()> {
    if selectors.len() > MAX_SELECTORS {
        return Err(invalid(format!(
            "A trail can have at most {MAX_SELECTORS} event selectors."
        )));
    }
    let mut resources = 0;
    for selector in selectors {
        if let Some(kind) = &selector.read_write_type
            && !matches!(kind.as_str(), "ReadOnly" | "WriteOnly" | "All")
        {
            return Err(invalid(format!(
                "ReadWriteType {kind} is not one of ReadOnly, WriteOnly, All."
            )));
        }
        for data in selector.data_resources.iter().flatten() {
            let kind = data.r#type.as_deref().unwrap_or_default();
            if kind.is_empty() {
                return Err(invalid("A data resource needs a Type."));
            }
            let values = data.values.as_deref().unwrap_or_default();
            if kind == "AWS::S3::Object"
                && let Some(bad) = values.iter().find(|v| !v.starts_with("arn:aws:s3"))
            {
                return Err(invalid(format!(
                    "Value {bad} for AWS::S3::Object is not an S3 ARN."
                )));
            }
            resources += values.len();
        }
        for source in selector.exclude_management_event_sources.iter().flatten() {
            if !matches!(
                source.as_str(),
                "kms.amazonaws.com" | "rdsdata.amazonaws.com"
            ) {
                return Err(invalid(format!(
                    "ExcludeManagementEventSources may name kms.amazonaws.com or \
                     rdsdata.amazonaws.com, not {source}."
                )));
            }
        }
    }
    if resources > MAX_DATA_RESOURCES {
        return Err(invalid(format!(
            "A trail can have at most {MAX_DATA_RESOURCES} data resources."
        )));
    }
    Ok(())
}

pub fn validate_advanced(selectors: &[AdvancedEventSelector]) -> CloudTrailResult<()> {
    if selectors.len() > MAX_SELECTORS {
        return Err(invalid(format!(
            "A trail can have at most {MAX_SELECTORS} advanced event selectors."
        )));
    }
    let mut values = 0;
    for selector in selectors {
        let fields = selector.field_selectors.as_deref().unwrap_or_default();
        if fields.is_empty() {
            return Err(invalid("An advanced event selector needs FieldSelectors."));
        }
        if !fields
            .iter()
            .any(|f| f.field.as_deref() == Some("eventCategory"))
        {
            return Err(invalid(
                "An advanced event selector must have an eventCategory field selector.",
            ));
        }
        for field in fields {
            let name = field.field.as_deref().unwrap_or_default();
            if !ADVANCED_FIELDS.contains(&name) {
                return Err(invalid(format!("Field {name} is not supported.")));
            }
            let count = operator_values(field).map(|(_, v)| v.len()).sum::<usize>();
            if count == 0 {
                return Err(invalid(format!("Field selector {name} has no values.")));
            }
            if matches!(name, "eventCategory" | "resources.type")
                && (field.equals.is_none() || operator_values(field).count() > 1)
            {
                return Err(invalid(format!(
                    "Field {name} accepts only the Equals operator."
                )));
            }
            values += count;
        }
    }
    if values > MAX_ADVANCED_VALUES {
        return Err(invalid(format!(
            "Advanced event selectors may have at most {MAX_ADVANCED_VALUES} values."
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Operator {
    Equals,
    StartsWith,
    EndsWith,
    NotEquals,
    NotStartsWith,
    NotEndsWith,
}

fn operator_values(field: &AdvancedFieldSelector) -> impl Iterator<Item = (Operator, &[String])> {
    [
        (Operator::Equals, &field.equals),
        (Operator::StartsWith, &field.starts_with),
        (Operator::EndsWith, &field.ends_with),
        (Operator::NotEquals, &field.not_equals),
        (Operator::NotStartsWith, &field.not_starts_with),
        (Operator::NotEndsWith, &field.not_ends_with),
    ]
    .into_iter()
    .filter_map(|(op, values)| values.as_deref().map(|v| (op, v)))
}

/// The event's values for an advanced selector field (several for `resources.*`).
fn field_values(event: &Value, field: &str) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match field {
        "resources.type" | "resources.ARN" => {
            let member = if field == "resources.type" {
                "type"
            } else {
                "ARN"
            };
            event["resources"]
                .as_array()
                .map(|r| r.iter().filter_map(|res| text(&res[member])).collect())
                .unwrap_or_default()
        }
        "userIdentity.arn" => text(&event["userIdentity"]["arn"]).into_iter().collect(),
        other => text(&event[other]).into_iter().collect(),
    }
}

fn field_matches(event: &Value, field: &AdvancedFieldSelector) -> bool {
    let values = field_values(event, field.field.as_deref().unwrap_or_default());
    operator_values(field).all(|(op, wanted)| match op {
        Operator::Equals => values.iter().any(|v| wanted.contains(v)),
        Operator::StartsWith => values
            .iter()
            .any(|v| wanted.iter().any(|w| v.starts_with(w.as_str()))),
        Operator::EndsWith => values
            .iter()
            .any(|v| wanted.iter().any(|w| v.ends_with(w.as_str()))),
        Operator::NotEquals => values.iter().all(|v| !wanted.contains(v)),
        Operator::NotStartsWith => values
            .iter()
            .all(|v| !wanted.iter().any(|w| v.starts_with(w.as_str()))),
        Operator::NotEndsWith => values
            .iter()
            .all(|v| !wanted.iter().any(|w| v.ends_with(w.as_str()))),
    })
}

fn read_write_matches(kind: Option<&str>, read_only: bool) -> bool {
    match kind.unwrap_or("All") {
        "ReadOnly" => read_only,
        "WriteOnly" => !read_only,
        _ => true,
    }
}

fn basic_matches(selector: &EventSelector, event: &Value) -> bool {
    let read_only = event["readOnly"].as_bool().unwrap_or(false);
    if !read_write_matches(selector.read_write_type.as_deref(), read_only) {
        return false;
    }
    let source = event["eventSource"].as_str().unwrap_or_default();
    if event["managementEvent"].as_bool().unwrap_or(true) {
        return selector.include_management_events.unwrap_or(true)
            && !selector
                .exclude_management_event_sources
                .iter()
                .flatten()
                .any(|s| s == source);
    }
    // A data event: logged when a data resource of its type names it by ARN prefix.
    let resources = event["resources"].as_array().cloned().unwrap_or_default();
    selector.data_resources.iter().flatten().any(|data| {
        let kind = data.r#type.as_deref().unwrap_or_default();
        resources.iter().any(|r| {
            r["type"].as_str() == Some(kind)
                && r["ARN"].as_str().is_some_and(|arn| {
                    data.values.iter().flatten().any(|prefix| {
                        prefix == "arn:aws:s3"
                            || prefix == "arn:aws:s3:::"
                            || arn.starts_with(prefix.as_str())
                    })
                })
        })
    })
}

/// Whether the trail logs this event (already parsed from its record).
pub fn trail_logs(trail: &TrailRecord, event: &Value) -> bool {
    if !trail.covers_region(event["awsRegion"].as_str().unwrap_or_default()) {
        return false;
    }
    let source = event["eventSource"].as_str().unwrap_or_default();
    if !trail.include_global_service_events && source == "iam.amazonaws.com" {
        return false;
    }
    if !trail.recursive_logging && event["userIdentity"]["invokedBy"].as_str() == Some(CLOUDTRAIL) {
        return false;
    }
    if let Some(advanced) = &trail.advanced_event_selectors {
        return advanced.iter().any(|selector| {
            selector
                .field_selectors
                .iter()
                .flatten()
                .all(|f| field_matches(event, f))
        });
    }
    match &trail.event_selectors {
        Some(selectors) => selectors.iter().any(|s| basic_matches(s, event)),
        None => event["managementEvent"].as_bool().unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataResource;
    use serde_json::json;

    fn trail() -> TrailRecord {
        TrailRecord {
            name: "t".into(),
            account_id: "111122223333".into(),
            home_region: "us-east-1".into(),
            include_global_service_events: true,
            recursive_logging: true,
            ..Default::default()
        }
    }

    fn kms_event(read_only: bool) -> Value {
        json!({"eventSource": "kms.amazonaws.com", "awsRegion": "us-east-1",
               "readOnly": read_only, "managementEvent": true, "eventCategory": "Management",
               "eventName": "GenerateDataKey", "userIdentity": {"arn": "arn:aws:iam::111122223333:root"}})
    }

    fn s3_put(key: &str) -> Value {
        json!({"eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1", "readOnly": false,
               "managementEvent": false, "eventCategory": "Data", "eventName": "PutObject",
               "resources": [{"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::logs/{key}")},
                             {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs"}]})
    }

    #[test]
    fn by_default_every_management_event_and_no_data_event() {
        let t = trail();
        assert!(trail_logs(&t, &kms_event(true)));
        assert!(trail_logs(&t, &kms_event(false)));
        assert!(!trail_logs(&t, &s3_put("a")));
        let mut other_region = kms_event(true);
        other_region["awsRegion"] = "eu-west-1".into();
        assert!(!trail_logs(&t, &other_region));
        let multi = TrailRecord {
            is_multi_region_trail: true,
            ..trail()
        };
        assert!(trail_logs(&multi, &other_region));
    }

    #[test]
    fn basic_selectors_choose_read_write_sources_and_data() {
        let selectors = vec![EventSelector {
            read_write_type: Some("WriteOnly".into()),
            include_management_events: Some(true),
            data_resources: Some(vec![DataResource {
                r#type: Some("AWS::S3::Object".into()),
                values: Some(vec!["arn:aws:s3:::logs/important/".into()]),
            }]),
            exclude_management_event_sources: Some(vec!["kms.amazonaws.com".into()]),
        }];
        validate_basic(&selectors).unwrap();
        let t = TrailRecord {
            event_selectors: Some(selectors),
            ..trail()
        };
        assert!(!trail_logs(&t, &kms_event(false)), "KMS excluded");
        assert!(trail_logs(&t, &s3_put("important/x")));
        assert!(!trail_logs(&t, &s3_put("other/x")));
        let mut read = s3_put("important/x");
        read["readOnly"] = true.into();
        assert!(!trail_logs(&t, &read), "write only");
    }

    #[test]
    fn advanced_selectors_and_fields_or_values() {
        let selectors = vec![AdvancedEventSelector {
            name: Some("kms writes and s3 puts".into()),
            field_selectors: Some(vec![
                AdvancedFieldSelector {
                    field: Some("eventCategory".into()),
                    equals: Some(vec!["Management".into(), "Data".into()]),
                    ..Default::default()
                },
                AdvancedFieldSelector {
                    field: Some("eventName".into()),
                    starts_with: Some(vec!["Generate".into(), "Put".into()]),
                    ..Default::default()
                },
                AdvancedFieldSelector {
                    field: Some("resources.ARN".into()),
                    not_starts_with: Some(vec!["arn:aws:s3:::logs/private/".into()]),
                    ..Default::default()
                },
            ]),
        }];
        validate_advanced(&selectors).unwrap();
        let t = TrailRecord {
            advanced_event_selectors: Some(selectors),
            ..trail()
        };
        assert!(trail_logs(&t, &kms_event(true)));
        assert!(trail_logs(&t, &s3_put("public/a")));
        assert!(!trail_logs(&t, &s3_put("private/a")));
        let mut other = kms_event(true);
        other["eventName"] = "Decrypt".into();
        assert!(!trail_logs(&t, &other));

        let no_category = vec![AdvancedEventSelector {
            name: None,
            field_selectors: Some(vec![AdvancedFieldSelector {
                field: Some("eventName".into()),
                equals: Some(vec!["PutObject".into()]),
                ..Default::default()
            }]),
        }];
        assert!(validate_advanced(&no_category).is_err());
    }
}
