//! AWS KMS for keytrail: symmetric keys, data keys and encryption context, with real
//! cryptography and every key wrapped under the root key at rest.
//!
//! Empty at this stage on purpose: the KMS issue brings the operations. Until then the server
//! answers every `TrentService.*` call with `UnknownOperationException`, and audits it.
