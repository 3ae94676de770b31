//! A trail as stored: its configuration, its event selectors, its tags and its logging status,
//! and the rules for its name and ARN (§5.3).

use serde::{Deserialize, Serialize};

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::model::{AdvancedEventSelector, EventSelector, Trail, TrailSettings};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrailRecord {
    pub name: String,
    pub account_id: String,
    pub home_region: String,
    pub s3_bucket_name: String,
    pub s3_key_prefix: Option<String>,
    pub sns_topic_name: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub log_file_validation_enabled: bool,
    pub cloud_watch_logs_log_group_arn: Option<String>,
    pub cloud_watch_logs_role_arn: Option<String>,
    /// The key's ARN, however the user named it.
    pub kms_key_id: Option<String>,
    pub is_organization_trail: bool,
    pub recursive_logging: bool,
    pub event_selectors: Option<Vec<EventSelector>>,
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
    pub tags: Vec<(String, String)>,
    pub status: TrailStatus,
    /// The journal position when the trail was created: its first StartLogging delivers from
    /// here, so the trail's own creation (and its key's validation call) are in its logs.
    #[serde(default)]
    pub created_seq: i64,
}

/// What GetTrailStatus reports, kept up to date by the API and by delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrailStatus {
    pub is_logging: bool,
    pub start_logging_ms: Option<i64>,
    pub stop_logging_ms: Option<i64>,
    pub latest_delivery_ms: Option<i64>,
    pub latest_delivery_attempt_ms: Option<i64>,
    pub latest_delivery_succeeded_ms: Option<i64>,
    pub latest_delivery_error: Option<String>,
    /// After StopLogging, events up to this time are still delivered (then it is cleared).
    pub drain_until_ms: Option<i64>,
    #[serde(default)]
    pub latest_digest_delivery_ms: Option<i64>,
    #[serde(default)]
    pub latest_digest_delivery_error: Option<String>,
}

impl TrailRecord {
    pub fn arn(&self) -> String {
        trail_arn(&self.home_region, &self.account_id, &self.name)
    }

    /// `[<prefix>/]AWSLogs/<account>/` — where every object of the trail goes.
    pub fn logs_prefix(&self) -> String {
        match self.s3_key_prefix.as_deref() {
            Some(prefix) if !prefix.is_empty() => {
                format!("{prefix}/AWSLogs/{}/", self.account_id)
            }
            _ => format!("AWSLogs/{}/", self.account_id),
        }
    }

    pub fn covers_region(&self, region: &str) -> bool {
        self.is_multi_region_trail || self.home_region == region
    }

    pub fn trail(&self) -> Trail {
        Trail {
            name: Some(self.name.clone()),
            s3_bucket_name: Some(self.s3_bucket_name.clone()),
            // Omitted when empty: `aws cloudtrail validate-logs` relies on it.
            s3_key_prefix: self.s3_key_prefix.clone().filter(|p| !p.is_empty()),
            sns_topic_name: self.sns_topic_name.clone(),
            sns_topic_a_r_n: self.sns_topic_arn(),
            include_global_service_events: Some(self.include_global_service_events),
            is_multi_region_trail: Some(self.is_multi_region_trail),
            home_region: Some(self.home_region.clone()),
            trail_a_r_n: Some(self.arn()),
            log_file_validation_enabled: Some(self.log_file_validation_enabled),
            cloud_watch_logs_log_group_arn: self.cloud_watch_logs_log_group_arn.clone(),
            cloud_watch_logs_role_arn: self.cloud_watch_logs_role_arn.clone(),
            kms_key_id: self.kms_key_id.clone(),
            has_custom_event_selectors: Some(
                self.event_selectors.is_some() || self.advanced_event_selectors.is_some(),
            ),
            has_insight_selectors: Some(false),
            is_organization_trail: Some(self.is_organization_trail),
            recursive_logging: Some(self.recursive_logging),
        }
    }

    pub fn settings(&self) -> TrailSettings {
        let trail = self.trail();
        TrailSettings {
            name: trail.name,
            s3_bucket_name: trail.s3_bucket_name,
            s3_key_prefix: trail.s3_key_prefix,
            sns_topic_name: trail.sns_topic_name,
            sns_topic_a_r_n: trail.sns_topic_a_r_n,
            include_global_service_events: trail.include_global_service_events,
            is_multi_region_trail: trail.is_multi_region_trail,
            trail_a_r_n: trail.trail_a_r_n,
            log_file_validation_enabled: trail.log_file_validation_enabled,
            cloud_watch_logs_log_group_arn: trail.cloud_watch_logs_log_group_arn,
            cloud_watch_logs_role_arn: trail.cloud_watch_logs_role_arn,
            kms_key_id: trail.kms_key_id,
            is_organization_trail: trail.is_organization_trail,
            recursive_logging: trail.recursive_logging,
        }
    }

    fn sns_topic_arn(&self) -> Option<String> {
        self.sns_topic_name.as_ref().map(|topic| {
            if topic.starts_with("arn:") {
                topic.clone()
            } else {
                format!(
                    "arn:aws:sns:{}:{}:{topic}",
                    self.home_region, self.account_id
                )
            }
        })
    }
}

pub fn trail_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account_id}:trail/{name}")
}

/// `arn:aws:cloudtrail:<region>:<account>:trail/<name>` → (region, account, name).
pub fn parse_trail_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:cloudtrail:")?;
    let mut parts = rest.splitn(3, ':');
    let region = parts.next()?;
    let account = parts.next()?;
    let name = parts.next()?.strip_prefix("trail/")?;
    (!region.is_empty() && account.len() == 12 && !name.is_empty())
        .then_some((region, account, name))
}

/// 3–128 characters of letters, digits, `.`, `_`, `-`; starting and ending with a letter or
/// digit; no two punctuation marks side by side; not an IP address.
pub fn validate_trail_name(name: &str) -> CloudTrailResult<()> {
    let invalid = || {
        CloudTrailError::new(
            "InvalidTrailNameException",
            format!(
                "Trail name {name} is invalid. Trail names must contain only ASCII letters (a-z, \
                 A-Z), numbers (0-9), periods (.), underscores (_), or dashes (-); start with a \
                 letter or number, and end with a letter or number; be between 3 and 128 \
                 characters; not have adjacent periods, underscores or dashes; and not be in IP \
                 address format."
            ),
        )
    };
    let bytes = name.as_bytes();
    let punctuation = |b: u8| b == b'.' || b == b'_' || b == b'-';
    let ok = (3..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || punctuation(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bytes
            .windows(2)
            .any(|w| punctuation(w[0]) && punctuation(w[1]))
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if ok { Ok(()) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_names_follow_aws_rules() {
        for good in ["abc", "my-trail", "a.b_c-d", "Trail1", &"a".repeat(128)] {
            assert!(validate_trail_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "my--x",
            "my-_x",
            "a b c",
            "10.0.0.1",
            &"a".repeat(129),
            "tráil",
        ] {
            assert!(validate_trail_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns_round_trip() {
        let arn = trail_arn("us-east-1", "111122223333", "main");
        assert_eq!(arn, "arn:aws:cloudtrail:us-east-1:111122223333:trail/main");
        assert_eq!(
            parse_trail_arn(&arn),
            Some(("us-east-1", "111122223333", "main"))
        );
        assert_eq!(
            parse_trail_arn("arn:aws:cloudtrail:us-east-1:1:trail/x"),
            None
        );
        assert_eq!(parse_trail_arn("main"), None);
    }

    #[test]
    fn the_prefix_is_omitted_when_empty() {
        let mut record = TrailRecord {
            name: "t".into(),
            account_id: "111122223333".into(),
            home_region: "us-east-1".into(),
            s3_key_prefix: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(record.trail().s3_key_prefix, None);
        assert_eq!(record.logs_prefix(), "AWSLogs/111122223333/");
        record.s3_key_prefix = Some("audit".into());
        assert_eq!(record.logs_prefix(), "audit/AWSLogs/111122223333/");
    }
}
