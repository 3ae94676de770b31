//! AWS CloudTrail for keytrail: trails, Event history (LookupEvents over the audit journal), and
//! log files delivered to S3 — through the S3 engine as `cloudtrail.amazonaws.com`, under the
//! bucket policy, encrypted with SSE-KMS under the trail's key with the trail and object ARNs as
//! encryption context — with every KMS call this causes journaled like any other.
//!
//! [`CloudTrail::execute`] runs one API call and journals it; [`CloudTrail::run_delivery`] is the
//! background task that writes log files and, for trails with log-file validation, the signed
//! digest files that chain them (`digest.rs`, keys in `signing.rs`). Delivery is exactly-once per trail: before writing, the
//! planned files (keys and the journal range they hold) are recorded; after writing, the cursor
//! moves past the range. A crash in between rewrites the same objects with the same content.

mod delivery;
mod digest;
mod error;
mod lookup;
pub mod model;
mod ops;
mod selectors;
mod signing;
mod trail;

use std::sync::Arc;
use std::time::Duration;

use keytrail_audit::{CallContext, EventCategory, EventRecord, Journal, Principal, Resource};
use keytrail_iam::Identities;
use keytrail_kms::Kms;
use keytrail_s3::S3Engine;
use keytrail_store::Store;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{CloudTrailError, CloudTrailResult};
pub use trail::{TrailRecord, parse_trail_arn, trail_arn};

pub const EVENT_SOURCE: &str = "cloudtrail.amazonaws.com";

/// How CloudTrail runs; the defaults are AWS's.
#[derive(Debug, Clone)]
pub struct CloudTrailConfig {
    /// How often logging trails deliver (AWS: about every 5 minutes).
    pub delivery_interval: Duration,
    /// How long Event history keeps management events (AWS: 90 days).
    pub retention: Duration,
    /// Records per log file; larger deliveries are split.
    pub max_records_per_file: usize,
    /// How long a digest file's window is (AWS: one hour).
    pub digest_interval: Duration,
    /// How long a region's digest-signing key signs before a new one replaces it.
    pub signing_key_rotation: Duration,
}

impl Default for CloudTrailConfig {
    fn default() -> Self {
        Self {
            delivery_interval: Duration::from_secs(300),
            retention: Duration::from_secs(90 * 86_400),
            max_records_per_file: 10_000,
            digest_interval: Duration::from_secs(3600),
            signing_key_rotation: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The CloudTrail service of one keytrail process.
pub struct CloudTrail {
    store: Arc<dyn Store>,
    kms: Arc<Kms>,
    s3: S3Engine,
    identities: Arc<Identities>,
    root_key: Arc<keytrail_crypto::RootKey>,
    journal: Journal,
    config: CloudTrailConfig,
    /// Trail changes and delivery status updates are read-modify-write of one record.
    mutations: tokio::sync::Mutex<()>,
    /// Deliveries run one at a time (the background loop, StopLogging's drain, tests).
    delivering: tokio::sync::Mutex<()>,
    /// Signing keys are created and rotated one region at a time.
    signing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for CloudTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTrail")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    keytrail_audit::clock::now_ms()
}

pub(crate) fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl CloudTrail {
    pub fn new(
        store: Arc<dyn Store>,
        kms: Arc<Kms>,
        s3: S3Engine,
        identities: Arc<Identities>,
        root_key: Arc<keytrail_crypto::RootKey>,
        journal: Journal,
        config: CloudTrailConfig,
    ) -> Self {
        Self {
            store,
            kms,
            s3,
            identities,
            root_key,
            journal,
            config,
            mutations: tokio::sync::Mutex::new(()),
            delivering: tokio::sync::Mutex::new(()),
            signing: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The context of a call CloudTrail makes itself for a trail: the service principal, with
    /// the trail as `aws:SourceArn` (the bucket and key policies of §5.11–5.12 check it).
    pub(crate) fn service_context(trail: &TrailRecord, region: &str) -> CallContext {
        CallContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            time: keytrail_audit::clock::now(),
            region: region.to_string(),
            principal: Principal::service(&trail.account_id, EVENT_SOURCE),
            source_ip: EVENT_SOURCE.into(),
            user_agent: EVENT_SOURCE.into(),
            invoked_by: None,
            source_arn: Some(trail.arn()),
            source_account: Some(trail.account_id.clone()),
            tls: None,
        }
    }

    /// Runs one CloudTrail API call (awsJson input) and journals it. `None` for operations
    /// keytrail does not serve.
    pub async fn execute(
        &self,
        ctx: &CallContext,
        operation: &str,
        body: &[u8],
    ) -> Option<CloudTrailResult<Vec<u8>>> {
        let mut outcome = CallOutcome::default();
        let result = match operation {
            "CreateTrail" => self.call(ctx, body, &mut outcome, Self::create_trail).await,
            "UpdateTrail" => self.call(ctx, body, &mut outcome, Self::update_trail).await,
            "DeleteTrail" => self.call(ctx, body, &mut outcome, Self::delete_trail).await,
            "GetTrail" => self.call(ctx, body, &mut outcome, Self::get_trail).await,
            "DescribeTrails" => {
                self.call(ctx, body, &mut outcome, Self::describe_trails)
                    .await
            }
            "ListTrails" => self.call(ctx, body, &mut outcome, Self::list_trails).await,
            "GetTrailStatus" => {
                self.call(ctx, body, &mut outcome, Self::get_trail_status)
                    .await
            }
            "StartLogging" => {
                self.call(ctx, body, &mut outcome, Self::start_logging)
                    .await
            }
            "StopLogging" => self.call(ctx, body, &mut outcome, Self::stop_logging).await,
            "PutEventSelectors" => {
                self.call(ctx, body, &mut outcome, Self::put_event_selectors)
                    .await
            }
            "GetEventSelectors" => {
                self.call(ctx, body, &mut outcome, Self::get_event_selectors)
                    .await
            }
            "AddTags" => self.call(ctx, body, &mut outcome, Self::add_tags).await,
            "RemoveTags" => self.call(ctx, body, &mut outcome, Self::remove_tags).await,
            "ListTags" => self.call(ctx, body, &mut outcome, Self::list_tags).await,
            "LookupEvents" => {
                self.call(ctx, body, &mut outcome, Self::lookup_events)
                    .await
            }
            "ListPublicKeys" => {
                self.call(ctx, body, &mut outcome, Self::list_public_keys)
                    .await
            }
            _ => return None,
        };
        let read_only = ["Get", "Describe", "List", "Lookup"]
            .iter()
            .any(|p| operation.starts_with(p));
        let mut record = EventRecord::new(
            ctx,
            EVENT_SOURCE,
            operation.to_owned(),
            read_only,
            EventCategory::Management,
        );
        record.request_parameters = outcome.request_parameters;
        if result.is_ok() {
            record.response_elements = outcome.response_elements;
        }
        if let Some(arn) = outcome.trail_arn {
            record.resources.push(Resource {
                account_id: Some(ctx.principal.account_id.clone()),
                resource_type: "AWS::CloudTrail::Trail".into(),
                arn,
            });
        }
        if let Err(e) = &result {
            record = record.failed(e.code, &e.message);
        }
        if let Err(e) = self.journal.record(record).await {
            return Some(Err(CloudTrailError::internal(e)));
        }
        if operation == "StopLogging" || operation == "StartLogging" {
            self.wake.notify_one();
        }
        Some(result)
    }

    async fn call<'a, I, O, F, Fut>(
        &'a self,
        ctx: &'a CallContext,
        body: &[u8],
        outcome: &'a mut CallOutcome,
        op: F,
    ) -> CloudTrailResult<Vec<u8>>
    where
        I: DeserializeOwned + Serialize + Default,
        O: Serialize,
        F: FnOnce(&'a Self, &'a CallContext, I, &'a mut CallOutcome) -> Fut,
        Fut: std::future::Future<Output = CloudTrailResult<O>> + 'a,
    {
        let input: I = if body.iter().all(u8::is_ascii_whitespace) {
            I::default()
        } else {
            serde_json::from_slice(body).map_err(|e| {
                CloudTrailError::new(
                    "SerializationException",
                    format!("The request body does not match the operation's input: {e}"),
                )
            })?
        };
        outcome.request_parameters = keytrail_audit::request_parameters(&input);
        let output = op(self, ctx, input, outcome).await?;
        serde_json::to_vec(&output).map_err(CloudTrailError::internal)
    }

    /// Authorizes `cloudtrail:<Operation>` by the caller's identity policies (trails have no
    /// resource policy).
    pub(crate) async fn authorize(
        &self,
        ctx: &CallContext,
        action: &str,
        resource: &str,
    ) -> CloudTrailResult<()> {
        let request = keytrail_iam::request_context(ctx, action, resource);
        let decision = self
            .identities
            .decide(
                ctx,
                &request,
                None,
                &ctx.principal.account_id,
                keytrail_policy::ResourceAuthority::Optional,
                false,
            )
            .await
            .map_err(CloudTrailError::internal)?;
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(CloudTrailError::new(
                "AccessDeniedException",
                keytrail_iam::denial_message(&request, &decision, false),
            ))
        }
    }
}

/// What a call adds to its event.
#[derive(Debug, Default)]
pub(crate) struct CallOutcome {
    pub request_parameters: Option<serde_json::Value>,
    pub response_elements: Option<serde_json::Value>,
    pub trail_arn: Option<String>,
}
