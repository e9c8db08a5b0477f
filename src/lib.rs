//! pdfworker: a FastCGI responder that answers a browser at once and keeps rendering the PDF
//! it was asked for after the response is finished, in the same process.
//!
//! # Module map
//!
//! | module   | owns                                                        | may import                      |
//! |----------|-------------------------------------------------------------|---------------------------------|
//! | `fastcgi`| records, name-value pairs, connections, listeners, limits   | std, tokio, log only            |
//! | `pdf`    | the report document: sample data in, PDF bytes out          | std, printpdf (and its lopdf, flate2), log |
//! | `jobs`   | job ids, durable job records, claims, the render runner     | std, tokio, serde; `pdf`'s `Paper`/`Orientation` as data |
//! | `web`    | CGI params → routes, forms, pages, errors, SSE              | `fastcgi`, `jobs`, `pdf`        |
//! | `config` | command-line flags and environment variables                | std, the config structs of `fastcgi` and `jobs` |
//! | `shutdown`| the one future that fires on SIGTERM/SIGINT                | tokio                           |
//! | `webhooks`| signed deliveries of job events, retries, destination checks | `jobs`, `web::api` (a job as JSON), tokio, rustls |
//!
//! `fastcgi` imports nothing from the rest of the crate, so it could become its own crate
//! unchanged. `jobs` does not know how a PDF is drawn: it is handed a render function.

pub mod config;
pub mod fastcgi;
pub mod jobs;
pub mod pdf;
pub mod reports;
pub mod shutdown;
pub mod web;
pub mod webhooks;
