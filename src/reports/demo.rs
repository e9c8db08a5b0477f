//! The demo database the shipped example reports read (`reports/demo.sqlite`): the ledger
//! that was pdfworker's built-in sample (`pdf::sample_row`, same rows as before issue #7) and
//! a table of sales per region and day for the grouped example. Made by
//! `pdfworker demo-data`, which `./deploy/serve` and the tests run on first use.
//!
//! Depends on `pdf`'s sample data and rusqlite.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::pdf::sample_row;

/// Regions of the sales table, in the order the grouped report lists them.
pub const REGIONS: [&str; 4] = ["East", "North", "South", "West"];
const PRODUCTS: [&str; 6] = [
    "Widgets",
    "Gadgets",
    "Sprockets",
    "Cables (2 m)",
    "Adapters – USB-C",
    "Service plan, yearly, including on-site visits within 48 hours",
];

/// Creates `path` (replacing a file of that name) with `ledger_rows` ledger rows and the
/// 2024 sales table; written to `<path>.tmp` and renamed, so a reader never sees half a file.
///
/// # Errors
/// A sentence naming the file when SQLite cannot write it.
pub fn create(path: &Path, ledger_rows: u32) -> Result<(), String> {
    let tmp = path.with_extension("sqlite.tmp");
    let _ = std::fs::remove_file(&tmp);
    let fail = |e: rusqlite::Error| format!("{}: {e}", tmp.display());
    let mut db = Connection::open(&tmp).map_err(fail)?;
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE ledger (idx INTEGER PRIMARY KEY, booked_on TEXT NOT NULL,
             description TEXT NOT NULL, category TEXT NOT NULL, amount NUMERIC NOT NULL);
         CREATE TABLE sales (id INTEGER PRIMARY KEY, region TEXT NOT NULL, day TEXT NOT NULL,
             product TEXT NOT NULL, quantity INTEGER, amount REAL);
         CREATE INDEX sales_region_day ON sales (region, day);",
    )
    .map_err(fail)?;
    let tx = db.transaction().map_err(fail)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO ledger VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(fail)?;
        for i in 1..=ledger_rows {
            let r = sample_row(i);
            // Exact cents as text: SQLite's NUMERIC affinity keeps 12.34 as the REAL 12.34,
            // and the report sums the shortest decimal of each value exactly.
            let amount = format!(
                "{}{}.{:02}",
                if r.amount_cents < 0 { "-" } else { "" },
                r.amount_cents.unsigned_abs() / 100,
                r.amount_cents.unsigned_abs() % 100
            );
            insert
                .execute(params![i, r.date, r.description, r.category, amount])
                .map_err(fail)?;
        }
        let mut insert = tx
            .prepare("INSERT INTO sales (region, day, product, quantity, amount) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(fail)?;
        for n in 0..2_920u32 {
            let region = REGIONS[(n % 4) as usize];
            let day = n / 8; // two lines per region and day, 365 days
            let date = crate::pdf::sample_row(day * 3 + 1).date;
            let h = n.wrapping_mul(2_654_435_761);
            let product = PRODUCTS[(h >> 7) as usize % PRODUCTS.len()];
            // Some lines have no quantity or amount yet: NULL, left out of the totals.
            let quantity = (h % 23 != 0).then_some(1 + (h >> 11) % 40);
            let amount = (h % 17 != 0).then(|| f64::from(100 + (h >> 5) % 99_900) / 100.0);
            insert
                .execute(params![region, date, product, quantity, amount])
                .map_err(fail)?;
        }
    }
    tx.commit().map_err(fail)?;
    drop(db);
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
