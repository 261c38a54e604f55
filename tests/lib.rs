//! End-to-end scenarios; the tests live in `scenarios/`.
