//! LookupEvents (§5.10): the management events of the caller's account and region, newest
//! first, from the journal's indexes (one per lookup attribute), 50 at most per page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keytrail_audit::CallContext;
use keytrail_store::{EventLookup, LookupAttribute};

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::model::{Event, LookupEventsRequest, LookupEventsResponse, LookupResource};
use crate::{CallOutcome, CloudTrail, epoch_seconds, now_ms};

const MAX_RESULTS: i64 = 50;

fn attribute(key: &str, value: String) -> CloudTrailResult<LookupAttribute> {
    Ok(match key {
        "EventId" => LookupAttribute::EventId(value),
        "EventName" => LookupAttribute::EventName(value),
        "ReadOnly" => match value.as_str() {
            "true" => LookupAttribute::ReadOnly(true),
            "false" => LookupAttribute::ReadOnly(false),
            other => {
                return Err(CloudTrailError::new(
                    "InvalidLookupAttributesException",
                    format!("ReadOnly must be true or false, not {other}."),
                ));
            }
        },
        "Username" => LookupAttribute::Username(value),
        "ResourceType" => LookupAttribute::ResourceType(value),
        "ResourceName" => LookupAttribute::ResourceName(value),
        "EventSource" => LookupAttribute::EventSource(value),
        "AccessKeyId" => LookupAttribute::AccessKeyId(value),
        other => {
            return Err(CloudTrailError::new(
                "InvalidLookupAttributesException",
                format!("Lookup attribute key {other} is not supported."),
            ));
        }
    })
}

fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn token(time_ms: i64, seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{time_ms}:{seq}"))
}

fn read_token(token: &str) -> CloudTrailResult<(i64, i64)> {
    let invalid = || CloudTrailError::new("InvalidNextTokenException", "Invalid NextToken.");
    let text = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let (time, seq) = text.split_once(':').ok_or_else(invalid)?;
    Ok((
        time.parse().map_err(|_| invalid())?,
        seq.parse().map_err(|_| invalid())?,
    ))
}

impl CloudTrail {
    pub(crate) async fn lookup_events(
        &self,
        ctx: &CallContext,
        input: LookupEventsRequest,
        _outcome: &mut CallOutcome,
    ) -> CloudTrailResult<LookupEventsResponse> {
        self.authorize(ctx, "cloudtrail:LookupEvents", "*").await?;
        let attributes = input.lookup_attributes.unwrap_or_default();
        if attributes.len() > 1 {
            return Err(CloudTrailError::new(
                "InvalidLookupAttributesException",
                "LookupAttributes takes at most one attribute.",
            ));
        }
        let attribute = match attributes.into_iter().next() {
            None => None,
            Some(a) => {
                let value = a.attribute_value.unwrap_or_default();
                if value.is_empty() || value.chars().count() > 2000 {
                    return Err(CloudTrailError::new(
                        "InvalidLookupAttributesException",
                        "AttributeValue must be 1 to 2000 characters.",
                    ));
                }
                Some(attribute(
                    a.attribute_key.as_deref().unwrap_or_default(),
                    value,
                )?)
            }
        };
        if let Some(category) = &input.event_category
            && category != "insight"
        {
            return Err(CloudTrailError::new(
                "InvalidEventCategoryException",
                format!("EventCategory {category} is not supported; only insight is."),
            ));
        }
        let limit = input.max_results.unwrap_or(MAX_RESULTS);
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(CloudTrailError::new(
                "InvalidMaxResultsException",
                format!("MaxResults must be between 1 and {MAX_RESULTS}."),
            ));
        }
        let end_ms = input.end_time.map_or_else(now_ms, seconds_to_ms);
        let retention_ms = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        let start_ms = input
            .start_time
            .map_or_else(|| now_ms().saturating_sub(retention_ms), seconds_to_ms);
        if start_ms > end_ms {
            return Err(CloudTrailError::new(
                "InvalidTimeRangeException",
                "StartTime must be before EndTime.",
            ));
        }
        let before = input.next_token.as_deref().map(read_token).transpose()?;
        // Insights events are not produced here: that category is always empty.
        if input.event_category.is_some() {
            return Ok(LookupEventsResponse {
                events: Some(Vec::new()),
                next_token: None,
            });
        }
        let limit = usize::try_from(limit).unwrap_or(50);
        // Event times have second precision; the end bound includes its whole second.
        let rows = self
            .store
            .lookup_events(EventLookup {
                account_id: ctx.principal.account_id.clone(),
                region: ctx.region.clone(),
                attribute,
                start_ms: start_ms - start_ms.rem_euclid(1000),
                end_ms: end_ms - end_ms.rem_euclid(1000) + 999,
                before,
                limit: limit + 1,
            })
            .await?;
        let next_token = (rows.len() > limit)
            .then(|| rows.get(limit - 1).map(|r| token(r.event_time_ms, r.seq)))
            .flatten();
        let events = rows
            .iter()
            .take(limit)
            .map(|row| {
                let record: serde_json::Value =
                    serde_json::from_str(&row.record_json).unwrap_or_default();
                let resources = record["resources"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|r| LookupResource {
                                resource_type: r["type"].as_str().map(str::to_string),
                                resource_name: r["ARN"].as_str().map(str::to_string),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Event {
                    event_id: Some(row.event_id.clone()),
                    event_name: Some(row.event_name.to_string()),
                    read_only: Some(row.read_only.to_string()),
                    access_key_id: row.access_key_id.clone(),
                    event_time: Some(epoch_seconds(row.event_time_ms)),
                    event_source: Some(row.event_source.to_string()),
                    username: row.username.clone(),
                    resources: Some(resources),
                    cloud_trail_event: Some(row.record_json.clone()),
                }
            })
            .collect();
        Ok(LookupEventsResponse {
            events: Some(events),
            next_token,
        })
    }

    /// Deletes events older than the retention period that every trail has delivered.
    pub(crate) async fn enforce_retention(&self) -> CloudTrailResult<usize> {
        let retention_ms = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(retention_ms);
        let mut delivered_up_to = i64::MAX;
        for row in self.store.list_trails(None).await? {
            let record = Self::parse_row(&row)?;
            if record.status.is_logging || record.status.drain_until_ms.is_some() {
                let cursor = self.store.get_trail_cursor(&record.arn()).await?;
                delivered_up_to = delivered_up_to.min(cursor.map_or(0, |c| c.delivered_seq));
            }
        }
        Ok(self
            .store
            .delete_events_before(cutoff, delivered_up_to)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tokens_round_trip_and_garbage_is_refused() {
        let t = token(1_764_000_000_000, 42);
        assert_eq!(read_token(&t).unwrap(), (1_764_000_000_000, 42));
        assert_eq!(
            read_token("not a token").unwrap_err().code,
            "InvalidNextTokenException"
        );
    }
}
