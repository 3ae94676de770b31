//! Black-box tests of keytrail: each test starts the real `keytrail` binary on an ephemeral
//! loopback port with a fresh data directory and talks to it with the AWS SDK for Rust or with
//! requests signed by `aws-sigv4`. The tests live in `tests/`; this library holds nothing.
