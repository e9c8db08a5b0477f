//! Integration tests, one binary with a module per area (house style). They start the real
//! `pdfworker` binary, and real nginx where the area needs it.

mod api;
mod browser;
mod cli;
mod dbs;
mod frontends;
mod jobs;
mod listen;
mod metrics;
mod nginx;
mod pool;
mod prefix;
mod protocol;
mod reports;
mod restart;
mod security;
mod sendfile;
mod sources;
mod util;
mod watchers;
mod webhooks;
