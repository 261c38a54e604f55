//! End-to-end scenarios over real HTTP against an in-process all-in-one server (one test binary, one module
//! per area).

mod artifacts;
mod bad_input;
mod compact_ingest;
mod ingest;
mod live;
mod persistence;
mod runs;
