//! Shared nothing: the tests live in tests/.
