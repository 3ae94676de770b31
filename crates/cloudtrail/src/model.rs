//! The CloudTrail wire shapes (awsJson 1.1) of botocore's `cloudtrail/2013-11-01` model that
//! keytrail serves. Timestamps are epoch seconds.

use serde::{Deserialize, Serialize};

macro_rules! shape {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

shape!(Tag {
    key: String,
    value: String
});

shape!(CreateTrailRequest {
    name: String,
    s3_bucket_name: String,
    s3_key_prefix: String,
    sns_topic_name: String,
    include_global_service_events: bool,
    is_multi_region_trail: bool,
    enable_log_file_validation: bool,
    cloud_watch_logs_log_group_arn: String,
    cloud_watch_logs_role_arn: String,
    kms_key_id: String,
    is_organization_trail: bool,
    tags_list: Vec<Tag>,
    recursive_logging: bool,
});

shape!(UpdateTrailRequest {
    name: String,
    s3_bucket_name: String,
    s3_key_prefix: String,
    sns_topic_name: String,
    include_global_service_events: bool,
    is_multi_region_trail: bool,
    enable_log_file_validation: bool,
    cloud_watch_logs_log_group_arn: String,
    cloud_watch_logs_role_arn: String,
    kms_key_id: String,
    is_organization_trail: bool,
    recursive_logging: bool,
});

shape!(
    /// CreateTrail's and UpdateTrail's answer: the settings, the ARN.
    TrailSettings {
        name: String,
        s3_bucket_name: String,
        s3_key_prefix: String,
        sns_topic_name: String,
        sns_topic_a_r_n: String,
        include_global_service_events: bool,
        is_multi_region_trail: bool,
        trail_a_r_n: String,
        log_file_validation_enabled: bool,
        cloud_watch_logs_log_group_arn: String,
        cloud_watch_logs_role_arn: String,
        kms_key_id: String,
        is_organization_trail: bool,
        recursive_logging: bool,
    }
);

shape!(
    /// The `Trail` structure of DescribeTrails and GetTrail.
    Trail {
        name: String,
        s3_bucket_name: String,
        s3_key_prefix: String,
        sns_topic_name: String,
        sns_topic_a_r_n: String,
        include_global_service_events: bool,
        is_multi_region_trail: bool,
        home_region: String,
        trail_a_r_n: String,
        log_file_validation_enabled: bool,
        cloud_watch_logs_log_group_arn: String,
        cloud_watch_logs_role_arn: String,
        kms_key_id: String,
        has_custom_event_selectors: bool,
        has_insight_selectors: bool,
        is_organization_trail: bool,
        recursive_logging: bool,
    }
);

shape!(NameRequest { name: String });

/// DescribeTrails is the one operation whose members are camelCase on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DescribeTrailsRequest {
    #[serde(
        rename = "trailNameList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub trail_name_list: Option<Vec<String>>,
    #[serde(
        rename = "includeShadowTrails",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_shadow_trails: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DescribeTrailsResponse {
    #[serde(rename = "trailList")]
    pub trail_list: Vec<Trail>,
}

shape!(GetTrailResponse { trail: Trail });

shape!(ListTrailsRequest { next_token: String });
shape!(TrailInfo {
    trail_a_r_n: String,
    name: String,
    home_region: String,
});
shape!(ListTrailsResponse {
    trails: Vec<TrailInfo>,
    next_token: String,
});

shape!(GetTrailStatusResponse {
    is_logging: bool,
    latest_delivery_error: String,
    latest_notification_error: String,
    latest_delivery_time: f64,
    latest_notification_time: f64,
    start_logging_time: f64,
    stop_logging_time: f64,
    latest_cloud_watch_logs_delivery_error: String,
    latest_cloud_watch_logs_delivery_time: f64,
    latest_digest_delivery_time: f64,
    latest_digest_delivery_error: String,
    latest_delivery_attempt_time: String,
    latest_notification_attempt_time: String,
    latest_notification_attempt_succeeded: String,
    latest_delivery_attempt_succeeded: String,
    time_logging_started: String,
    time_logging_stopped: String,
});

shape!(DataResource {
    r#type: String,
    values: Vec<String>,
});

shape!(EventSelector {
    read_write_type: String,
    include_management_events: bool,
    data_resources: Vec<DataResource>,
    exclude_management_event_sources: Vec<String>,
});

shape!(AdvancedFieldSelector {
    field: String,
    equals: Vec<String>,
    starts_with: Vec<String>,
    ends_with: Vec<String>,
    not_equals: Vec<String>,
    not_starts_with: Vec<String>,
    not_ends_with: Vec<String>,
});

shape!(AdvancedEventSelector {
    name: String,
    field_selectors: Vec<AdvancedFieldSelector>,
});

shape!(PutEventSelectorsRequest {
    trail_name: String,
    event_selectors: Vec<EventSelector>,
    advanced_event_selectors: Vec<AdvancedEventSelector>,
});
shape!(EventSelectorsResponse {
    trail_a_r_n: String,
    event_selectors: Vec<EventSelector>,
    advanced_event_selectors: Vec<AdvancedEventSelector>,
});
shape!(GetEventSelectorsRequest { trail_name: String });

shape!(TagsRequest {
    resource_id: String,
    tags_list: Vec<Tag>,
});
shape!(ListTagsRequest {
    resource_id_list: Vec<String>,
    next_token: String,
});
shape!(ResourceTag {
    resource_id: String,
    tags_list: Vec<Tag>,
});
shape!(ListTagsResponse {
    resource_tag_list: Vec<ResourceTag>,
    next_token: String,
});

shape!(LookupAttribute {
    attribute_key: String,
    attribute_value: String,
});
shape!(LookupEventsRequest {
    lookup_attributes: Vec<LookupAttribute>,
    start_time: f64,
    end_time: f64,
    event_category: String,
    max_results: i64,
    next_token: String,
});
shape!(LookupResource {
    resource_type: String,
    resource_name: String,
});
shape!(Event {
    event_id: String,
    event_name: String,
    read_only: String,
    access_key_id: String,
    event_time: f64,
    event_source: String,
    username: String,
    resources: Vec<LookupResource>,
    cloud_trail_event: String,
});
shape!(LookupEventsResponse {
    events: Vec<Event>,
    next_token: String,
});

shape!(Empty {});

shape!(ListPublicKeysRequest {
    start_time: f64,
    end_time: f64,
    next_token: String,
});
shape!(PublicKey {
    value: String,
    validity_start_time: f64,
    validity_end_time: f64,
    fingerprint: String,
});
shape!(ListPublicKeysResponse {
    public_key_list: Vec<PublicKey>,
    next_token: String,
});
