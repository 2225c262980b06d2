//! The one integration test binary (every extra binary would link DataFusion again).
// Tests set tables up and look at them with std::fs directly.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod support;

mod bad_input;
mod cache;
mod checksum_laws;
mod checksum_vectors;
mod cli_output;
mod conformance;
mod copied_columns;
mod diff;
mod discovery;
mod fanout;
mod kept_rows;
mod report;
mod roundtrip;
mod run;
mod s3;
mod safety;
mod sliced;
mod verify;
mod writers;
