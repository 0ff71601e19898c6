//! End-to-end tests: the local server on a real loopback socket, a real SQLite file, tokens
//! signed like `hourbridge token` signs them.

mod aws;
mod aws_basecamp;
mod aws_common;
mod aws_secret_reads;
mod aws_timelog;
mod aws_tripletex;
mod blackbox;
mod coalesce;
mod error_codes;
mod functions;
mod harness;
mod host_api;
mod infra;
mod limits;
mod oauth_callback;
mod preview;
mod provider_errors;
mod webhook_fuzz;
mod worklog_sync;
mod workspace_status;
