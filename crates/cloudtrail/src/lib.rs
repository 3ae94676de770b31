//! AWS CloudTrail for keytrail: trails, log-file delivery to S3 under SSE-KMS, digest files and
//! event lookup over the audit journal.
//!
//! Empty at this stage on purpose: the CloudTrail issue brings the operations. Until then the
//! server answers every CloudTrail call with `UnknownOperationException`, and audits it.
