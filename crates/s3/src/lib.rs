//! Amazon S3 for keytrail: buckets and objects, encrypted at rest with SSE-S3 or SSE-KMS.
//!
//! Empty at this stage on purpose: the S3 issue brings the operations. Until then the server
//! routes S3 requests through s3s (signatures verified) and answers `NotImplemented`, and audits
//! them.
