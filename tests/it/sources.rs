//! Row sources against real databases (src/reports/source): SQLite files, and PostgreSQL and
//! MariaDB servers from `dbs`. Each behaviour is written once and run for every kind; the
//! expected numbers come from the database's own client, not from the code under test.
//!
//! One PostgreSQL and one MariaDB server are shared by the tests that run at the same time
//! (each test uses its own tables); a test that stops a server starts its own.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pdfworker::reports::source::{self, Binding, SourceError};
use pdfworker::reports::{DatabaseRef, ParamType, ParamValue, SourceDef, SourceKind, Value};

use crate::dbs::{Mariadb, PASSWORD, Postgres, Sqlite};

/// A database a behaviour runs against: how to reach it, and its own client for setup and
/// for the expected answers.
trait TestDb {
    fn kind(&self) -> SourceKind;
    fn database(&self) -> DatabaseRef;
    /// Runs SQL with the database's CLI; rows one a line, columns separated by `|`.
    fn exec(&self, sql: &str) -> String;
    /// `s` as an SQL string literal.
    fn literal(&self, s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }
}

impl TestDb for Postgres {
    fn kind(&self) -> SourceKind {
        SourceKind::Postgres
    }
    fn database(&self) -> DatabaseRef {
        DatabaseRef::Url(self.url())
    }
    fn exec(&self, sql: &str) -> String {
        self.psql(sql)
    }
}

impl TestDb for Mariadb {
    fn kind(&self) -> SourceKind {
        SourceKind::Mysql
    }
    fn database(&self) -> DatabaseRef {
        DatabaseRef::Url(self.url())
    }
    fn exec(&self, sql: &str) -> String {
        self.sql(sql).replace('\t', "|")
    }
    fn literal(&self, s: &str) -> String {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    }
}

impl TestDb for Sqlite {
    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }
    fn database(&self) -> DatabaseRef {
        DatabaseRef::Path(self.path().to_path_buf())
    }
    fn exec(&self, sql: &str) -> String {
        self.sql(sql)
    }
}

fn pg() -> Option<Arc<Postgres>> {
    crate::dbs::shared_postgres()
}

fn maria() -> Option<Arc<Mariadb>> {
    crate::dbs::shared_mariadb()
}

/// A table name no other test uses.
fn table(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t_{tag}_{}", N.fetch_add(1, Ordering::SeqCst))
}

fn def(db: &dyn TestDb, query: &str) -> SourceDef {
    SourceDef {
        kind: db.kind(),
        database: db.database(),
        query: query.to_owned(),
        count_query: None,
        timeout: Duration::from_secs(10),
    }
}

fn bind(name: &str, kind: ParamType, value: ParamValue) -> Binding {
    Binding {
        name: name.to_owned(),
        kind,
        value,
    }
}

fn text(name: &str, value: &str) -> Binding {
    bind(name, ParamType::Text, ParamValue::Text(value.to_owned()))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Every row of `source` as owned values.
fn rows(
    source: &SourceDef,
    bindings: &[Binding],
    fields: &[&str],
) -> Result<Vec<Vec<Value>>, SourceError> {
    let mut out = Vec::new();
    source::stream(source, bindings, &strings(fields), &mut |row| {
        out.push(row.to_vec());
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// A decimal's value in hundredths, exactly (`-12.3` → -1230).
fn cents(s: &str) -> i128 {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(
        frac.len() <= 2 || frac[2..].bytes().all(|b| b == b'0'),
        "{s}"
    );
    let frac = format!("{:0<2}", &frac[..frac.len().min(2)]);
    let value =
        int.parse::<i128>().expect("integer part") * 100 + frac.parse::<i128>().expect("fraction");
    if neg { -value } else { value }
}

fn value_cents(v: &Value) -> i128 {
    match v {
        Value::Int(n) => i128::from(*n) * 100,
        Value::Numeric(s) => cents(s),
        other => panic!("not an exact number: {other:?}"),
    }
}

// ---- a million rows ----------------------------------------------------------------------

const MILLION: i64 = 1_000_000;

fn streams_a_million_rows(db: &dyn TestDb, t: &str) {
    let server_sum = db.exec(&format!("SELECT sum(amount) FROM {t}"));
    let mut source = def(db, &format!("SELECT id, amount FROM {t} ORDER BY id"));
    source.count_query = Some(format!("SELECT count(*) FROM {t}"));
    assert_eq!(
        source::count(&source, &[]).expect("count"),
        Some(MILLION as u64)
    );
    let (mut next_id, mut sum) = (1i64, 0i128);
    let started = Instant::now();
    let n = source::stream(&source, &[], &strings(&["id", "amount"]), &mut |row| {
        assert_eq!(
            row[0],
            Value::Int(next_id),
            "rows arrive in the query's order"
        );
        next_id += 1;
        sum += value_cents(&row[1]);
        ControlFlow::Continue(())
    })
    .expect("stream");
    eprintln!("{:?}: {n} rows in {:?}", db.kind(), started.elapsed());
    assert_eq!(n, MILLION as u64);
    assert_eq!(next_id, MILLION + 1);
    assert_eq!(
        sum,
        cents(&server_sum),
        "sum of amount vs the server's {server_sum}"
    );
}

#[test]
fn sqlite_streams_a_million_rows_summing_like_the_database() {
    let Some(db) = Sqlite::create() else { return };
    let t = table("million");
    db.exec(&format!(
        "CREATE TABLE {t} (id INTEGER PRIMARY KEY, amount INTEGER);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {MILLION})
         INSERT INTO {t} SELECT i, (i * 7919) % 200001 - 100000 FROM c;"
    ));
    streams_a_million_rows(&db, &t);
}

#[test]
fn postgres_streams_a_million_rows_summing_like_the_server() {
    let Some(db) = pg() else { return };
    let t = table("million");
    db.exec(&format!(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, amount numeric(12,2));
         INSERT INTO {t} SELECT i, ((i::bigint * 7919) % 200001 - 100000) / 100.0
         FROM generate_series(1, {MILLION}) i;"
    ));
    streams_a_million_rows(&*db, &t);
}

#[test]
fn mariadb_streams_a_million_rows_summing_like_the_server() {
    let Some(db) = maria() else { return };
    let t = table("million");
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, amount DECIMAL(12,2)) ENGINE=MyISAM;
         INSERT INTO {t} SELECT seq, ((CAST(seq AS SIGNED) * 7919) % 200001 - 100000) / 100
         FROM seq_1_to_{MILLION};"
    ));
    streams_a_million_rows(&*db, &t);
}

// ---- NULLs ---------------------------------------------------------------------------------

fn nulls_arrive_as_null(db: &dyn TestDb, create: &str, t: &str) {
    db.exec(create);
    db.exec(&format!(
        "INSERT INTO {t} VALUES (1, NULL, 'a', NULL); INSERT INTO {t} VALUES (2, 2.5, NULL, '2024-02-29');"
    ));
    let source = def(db, &format!("SELECT * FROM {t} ORDER BY id"));
    let got = rows(&source, &[], &["ID", "n", "s", "d"]).expect("rows");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0][0], Value::Int(1));
    assert_eq!(got[0][1], Value::Null);
    assert_eq!(got[0][2], Value::Text("a".into()));
    assert_eq!(got[0][3], Value::Null);
    assert_eq!(got[1][2], Value::Null);
    assert!(
        got[1][1] != Value::Null && got[1][3] != Value::Null,
        "{:?}",
        got[1]
    );
}

#[test]
fn sqlite_nulls_arrive_as_null() {
    let Some(db) = Sqlite::create() else { return };
    let t = table("nulls");
    let create = format!("CREATE TABLE {t} (id INTEGER, n REAL, s TEXT, d TEXT)");
    nulls_arrive_as_null(&db, &create, &t);
}

#[test]
fn postgres_nulls_arrive_as_null() {
    let Some(db) = pg() else { return };
    let t = table("nulls");
    let create = format!("CREATE TABLE {t} (id int, n numeric(6,2), s text, d date)");
    nulls_arrive_as_null(&*db, &create, &t);
}

#[test]
fn mariadb_nulls_arrive_as_null() {
    let Some(db) = maria() else { return };
    let t = table("nulls");
    let create = format!("CREATE TABLE {t} (id INT, n DECIMAL(6,2), s TEXT, d DATE)");
    nulls_arrive_as_null(&*db, &create, &t);
}

// ---- injection -------------------------------------------------------------------------------

const TRICKY: [&str; 9] = [
    "O'Brien",
    "a;b",
    "x -- y",
    "100%",
    "a_b",
    "back\\slash",
    "'; DELETE FROM names; --",
    "\\'; SELECT 1; --",
    "plain",
];

fn parameter_values_select_exactly_their_rows(db: &dyn TestDb, create: &str, t: &str) {
    db.exec(create);
    let values: Vec<String> = TRICKY
        .iter()
        .chain(["axb", "a%b"].iter())
        .map(|v| db.literal(v))
        .collect();
    for v in &values {
        db.exec(&format!("INSERT INTO {t} (s) VALUES ({v})"));
    }
    let source = def(db, &format!("SELECT s FROM {t} WHERE s = :v ORDER BY s"));
    for value in TRICKY {
        let got = rows(&source, &[text("v", value)], &["s"]).expect(value);
        assert_eq!(got, vec![vec![Value::Text(value.into())]], "for {value:?}");
    }
    match rows(&source, &[text("v", "a\0b")], &["s"]) {
        Ok(got) => assert!(got.is_empty(), "a NUL byte matched {got:?}"),
        Err(SourceError::Query(_)) => {}
        Err(other) => panic!("a NUL byte: {other:?}"),
    }
    assert_eq!(db.exec(&format!("SELECT count(*) FROM {t}")), "11");
}

#[test]
fn sqlite_parameter_values_select_exactly_the_rows_they_name() {
    let Some(db) = Sqlite::create() else { return };
    let t = table("names");
    parameter_values_select_exactly_their_rows(&db, &format!("CREATE TABLE {t} (s TEXT)"), &t);
}

#[test]
fn postgres_parameter_values_select_exactly_the_rows_they_name() {
    let Some(db) = pg() else { return };
    let t = table("names");
    parameter_values_select_exactly_their_rows(&*db, &format!("CREATE TABLE {t} (s text)"), &t);
}

#[test]
fn mariadb_parameter_values_select_exactly_the_rows_they_name() {
    let Some(db) = maria() else { return };
    let t = table("names");
    let create = format!("CREATE TABLE {t} (s VARCHAR(100) COLLATE utf8mb4_bin)");
    parameter_values_select_exactly_their_rows(&*db, &create, &t);
}

// ---- writes --------------------------------------------------------------------------------

fn queries_that_write_fail(db: &dyn TestDb, create: &str, t: &str, writes: &[String]) {
    db.exec(create);
    db.exec(&format!(
        "INSERT INTO {t} (id) VALUES (1); INSERT INTO {t} (id) VALUES (2)"
    ));
    let before = db.exec(&format!("SELECT count(*), sum(id) FROM {t}"));
    assert_eq!(before, "2|3");
    for query in writes {
        match rows(&def(db, query), &[], &["id"]) {
            Err(SourceError::Query(m)) => eprintln!("{query}: {m}"),
            other => panic!("{query}: expected a query error, got {other:?}"),
        }
    }
    assert_eq!(
        db.exec(&format!("SELECT count(*), sum(id) FROM {t}")),
        before
    );
}

fn writes(t: &str, extra: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!("INSERT INTO {t} (id) VALUES (99) RETURNING id"),
        format!("DELETE FROM {t} RETURNING id"),
        format!("UPDATE {t} SET id = 0"),
        format!("DELETE FROM {t}"),
        format!("SELECT id FROM {t}; DELETE FROM {t}"),
    ];
    all.extend(extra.iter().map(|q| q.replace("{t}", t)));
    all
}

#[test]
fn sqlite_queries_that_write_fail_and_leave_the_table_unchanged() {
    let Some(db) = Sqlite::create() else { return };
    let t = table("w");
    let extra = ["UPDATE {t} SET id = 0 RETURNING id", "DROP TABLE {t}"];
    queries_that_write_fail(
        &db,
        &format!("CREATE TABLE {t} (id INTEGER)"),
        &t,
        &writes(&t, &extra),
    );
}

#[test]
fn postgres_queries_that_write_fail_and_leave_the_table_unchanged() {
    let Some(db) = pg() else { return };
    let t = table("w");
    let extra = [
        "UPDATE {t} SET id = 0 RETURNING id",
        "WITH d AS (DELETE FROM {t} RETURNING id) SELECT id FROM d",
        "SELECT count(*) AS id FROM (SELECT set_config('transaction_read_only', 'off', true)) s",
    ];
    queries_that_write_fail(
        &*db,
        &format!("CREATE TABLE {t} (id int)"),
        &t,
        &writes(&t, &extra),
    );
}

#[test]
fn mariadb_queries_that_write_fail_and_leave_the_table_unchanged() {
    let Some(db) = maria() else { return };
    let t = table("w");
    let extra = ["COMMIT", "DROP TABLE {t}"];
    let create = format!("CREATE TABLE {t} (id INT) ENGINE=InnoDB");
    queries_that_write_fail(&*db, &create, &t, &writes(&t, &extra));
}

// ---- time limits ---------------------------------------------------------------------------

fn a_statement_past_its_time_limit_is_stopped(db: &dyn TestDb, query: &str) {
    let mut source = def(db, query);
    source.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = rows(&source, &[], &["x"]);
    let took = started.elapsed();
    match result {
        Err(e @ SourceError::Timeout(_)) => {
            assert_eq!(
                e.to_string(),
                "the query ran longer than 1 second and was stopped"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(4), "stopped after {took:?}");
}

#[test]
fn sqlite_a_statement_past_its_time_limit_is_stopped() {
    let Some(db) = Sqlite::create() else { return };
    let endless = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) \
                   SELECT count(*) AS x FROM c";
    a_statement_past_its_time_limit_is_stopped(&db, endless);
}

#[test]
fn postgres_a_statement_past_its_time_limit_is_stopped() {
    let Some(db) = pg() else { return };
    a_statement_past_its_time_limit_is_stopped(&*db, "SELECT 1 AS x FROM pg_sleep(5)");
}

#[test]
fn mariadb_a_statement_past_its_time_limit_is_stopped() {
    let Some(db) = maria() else { return };
    a_statement_past_its_time_limit_is_stopped(&*db, "SELECT SLEEP(5) AS x");
}

// ---- missing columns -------------------------------------------------------------------------

fn a_missing_field_lists_the_columns_there_are(db: &dyn TestDb) {
    let source = def(db, "SELECT 1 AS a, 2 AS b, 3 AS c");
    match rows(&source, &[], &["a", "amount"]) {
        Err(e @ SourceError::MissingColumn { .. }) => assert_eq!(
            e.to_string(),
            "the query returns no column \"amount\" (it returns: a, b, c)"
        ),
        other => panic!("expected MissingColumn, got {other:?}"),
    }
}

#[test]
fn sqlite_a_missing_field_lists_the_columns_there_are() {
    let Some(db) = Sqlite::create() else { return };
    a_missing_field_lists_the_columns_there_are(&db);
}

#[test]
fn postgres_a_missing_field_lists_the_columns_there_are() {
    let Some(db) = pg() else { return };
    a_missing_field_lists_the_columns_there_are(&*db);
}

#[test]
fn mariadb_a_missing_field_lists_the_columns_there_are() {
    let Some(db) = maria() else { return };
    a_missing_field_lists_the_columns_there_are(&*db);
}

// ---- typed parameters, count, options, check -----------------------------------------------

fn typed_parameters_filter_rows(db: &dyn TestDb, create: &str, t: &str) {
    db.exec(create);
    for (id, amount, day, name) in [
        (1, "1.50", 1, "a"),
        (2, "2.50", 2, "b"),
        (3, "3.50", 3, "a"),
    ] {
        db.exec(&format!(
            "INSERT INTO {t} VALUES ({id}, {amount}, '2024-03-0{day}', '{name}')"
        ));
    }
    let query = format!(
        "SELECT id FROM {t} WHERE id <= :hi AND amount >= :min AND d >= :from \
         AND (:name IS NULL OR name = :name) ORDER BY id"
    );
    let mut source = def(db, &query);
    source.count_query = Some(format!("SELECT count(*) FROM {t} WHERE id <= :hi"));
    let date = ParamValue::Date {
        year: 2024,
        month: 3,
        day: 2,
    };
    let mut params = vec![
        bind("hi", ParamType::Integer, ParamValue::Integer(3)),
        bind("min", ParamType::Decimal, ParamValue::Decimal("2.0".into())),
        bind("from", ParamType::Date, date),
        bind("name", ParamType::Choice, ParamValue::Null),
    ];
    let ids =
        |params: &[Binding]| -> Vec<Vec<Value>> { rows(&source, params, &["id"]).expect("rows") };
    assert_eq!(ids(&params), vec![vec![Value::Int(2)], vec![Value::Int(3)]]);
    params[3].value = ParamValue::Text("a".into());
    assert_eq!(ids(&params), vec![vec![Value::Int(3)]]);
    assert_eq!(
        source::count(&source, &params[..1]).expect("count"),
        Some(3)
    );
    let options = source::options(
        &source,
        &format!("SELECT DISTINCT name FROM {t} ORDER BY name"),
    );
    assert_eq!(options.expect("options"), strings(&["a", "b"]));
    source::check(&source).expect("check");
}

#[test]
fn sqlite_typed_parameters_count_options_and_check() {
    let Some(db) = Sqlite::create() else { return };
    let t = table("typed");
    let create = format!("CREATE TABLE {t} (id INTEGER, amount REAL, d TEXT, name TEXT)");
    typed_parameters_filter_rows(&db, &create, &t);
}

#[test]
fn postgres_typed_parameters_count_options_and_check() {
    let Some(db) = pg() else { return };
    let t = table("typed");
    let create = format!("CREATE TABLE {t} (id int, amount numeric(6,2), d date, name text)");
    typed_parameters_filter_rows(&*db, &create, &t);
    let source = def(&*db, "SELECT 1");
    let many = source::options(&source, "SELECT generate_series(1, 5000)").expect("options");
    assert_eq!(many.len(), 1000);
    assert_eq!(many[999], "1000");
}

#[test]
fn mariadb_typed_parameters_count_options_and_check() {
    let Some(db) = maria() else { return };
    let t = table("typed");
    let create = format!("CREATE TABLE {t} (id INT, amount DECIMAL(6,2), d DATE, name TEXT)");
    typed_parameters_filter_rows(&*db, &create, &t);
}

// ---- cell types ------------------------------------------------------------------------------

fn date(year: i32, month: u8, day: u8) -> Value {
    Value::Date { year, month, day }
}

#[test]
fn postgres_cells_decode_every_supported_type() {
    let Some(db) = pg() else { return };
    let query = "SELECT true AS b, 7::int2 AS s, -8::int4 AS i, 9000000000::int8 AS l, \
        1.5::float4 AS f, 2.25::float8 AS d, -1234.5600::numeric AS n, 0.000012::numeric AS m, \
        12345678901234567890.1::numeric AS big, 'v'::varchar AS v, 'ab'::char(3) AS c, \
        'nm'::name AS nm, DATE '2024-02-29' AS dt, DATE '1999-12-31' AS old, \
        TIMESTAMP '2024-02-29 13:14:15.5' AS ts, \
        '00000000-0000-0000-0000-00000000000a'::uuid AS u, NULL::text AS z";
    let fields = [
        "b", "s", "i", "l", "f", "d", "n", "m", "big", "v", "c", "nm", "dt", "old", "ts", "u", "z",
    ];
    let got = rows(&def(&*db, query), &[], &fields).expect("rows");
    let want = vec![
        Value::Bool(true),
        Value::Int(7),
        Value::Int(-8),
        Value::Int(9_000_000_000),
        Value::Float(1.5),
        Value::Float(2.25),
        Value::Numeric("-1234.5600".into()),
        Value::Numeric("0.000012".into()),
        Value::Numeric("12345678901234567890.1".into()),
        Value::Text("v".into()),
        Value::Text("ab ".into()),
        Value::Text("nm".into()),
        date(2024, 2, 29),
        date(1999, 12, 31),
        Value::Text("2024-02-29 13:14:15".into()),
        Value::Text("00000000-0000-0000-0000-00000000000a".into()),
        Value::Null,
    ];
    assert_eq!(got, vec![want]);
}

#[test]
fn postgres_types_it_cannot_print_are_named() {
    let Some(db) = pg() else { return };
    let cases = [
        ("SELECT point(1, 2) AS x", "point"),
        ("SELECT 'NaN'::numeric AS x", "NaN"),
        ("SELECT 'infinity'::date AS x", "infinity"),
    ];
    for (query, word) in cases {
        match rows(&def(&*db, query), &[], &["x"]) {
            Err(e @ SourceError::Unsupported { .. }) => {
                let m = e.to_string();
                assert!(m.contains(word) && m.contains("CAST"), "{m}");
            }
            other => panic!("{query}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn mariadb_cells_decode_every_supported_type() {
    let Some(db) = maria() else { return };
    let t = table("types");
    db.exec(&format!(
        "CREATE TABLE {t} (i INT, u BIGINT UNSIGNED, f FLOAT, d DOUBLE, n DECIMAL(10,2), \
         s VARCHAR(10), dt DATE, ts DATETIME, b BLOB, z INT);
         INSERT INTO {t} VALUES (-5, 18446744073709551615, 1.5, 2.25, -12.50, 'héllo', \
         '2024-02-29', '2024-02-29 13:14:15', x'00ff', NULL)"
    ));
    let query = format!("SELECT * FROM {t}");
    let fields = ["i", "u", "f", "d", "n", "s", "dt", "ts", "b", "z"];
    let got = rows(&def(&*db, &query), &[], &fields).expect("rows");
    let want = vec![
        Value::Int(-5),
        Value::Numeric("18446744073709551615".into()),
        Value::Float(1.5),
        Value::Float(2.25),
        Value::Numeric("-12.50".into()),
        Value::Text("héllo".into()),
        date(2024, 2, 29),
        Value::Text("2024-02-29 13:14:15".into()),
        Value::Bytes(2),
        Value::Null,
    ];
    assert_eq!(got, vec![want]);
}

// ---- connection failures ---------------------------------------------------------------------

fn assert_connect_error(source: &SourceDef, secret: &str) {
    match rows(source, &[], &["x"]) {
        Err(e @ SourceError::Connect(_)) => {
            let m = e.to_string();
            assert!(m.starts_with("the database could not be reached: "), "{m}");
            assert!(
                !secret.is_empty() && !m.contains(secret),
                "{m} shows {secret}"
            );
            assert!(!format!("{e:?}").contains(secret), "{e:?} shows {secret}");
            eprintln!("{m}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(matches!(
        source::check(source),
        Err(SourceError::Connect(_))
    ));
}

fn source_at(kind: SourceKind, url: String) -> SourceDef {
    SourceDef {
        kind,
        database: DatabaseRef::Url(url),
        query: "SELECT 1 AS x".into(),
        count_query: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn postgres_a_wrong_password_or_socket_is_a_connect_error_that_hides_the_password() {
    let Some(db) = pg() else { return };
    let wrong = "Wr0ng-p4ss";
    assert_connect_error(
        &source_at(SourceKind::Postgres, db.url_with_password(wrong)),
        wrong,
    );
    let nowhere = format!("postgresql://postgres:{PASSWORD}@/postgres?host=/nonexistent/pdfworker");
    assert_connect_error(&source_at(SourceKind::Postgres, nowhere), PASSWORD);
}

#[test]
fn mariadb_a_wrong_password_or_socket_is_a_connect_error_that_hides_the_password() {
    let Some(db) = maria() else { return };
    let wrong = "Wr0ng-p4ss";
    assert_connect_error(
        &source_at(SourceKind::Mysql, db.url_with_password(wrong)),
        wrong,
    );
    let nowhere = format!("mysql://root:{PASSWORD}@localhost/test?socket=/nonexistent/m.sock");
    assert_connect_error(&source_at(SourceKind::Mysql, nowhere), PASSWORD);
}

#[test]
fn sqlite_a_missing_file_is_a_connect_error() {
    let source = SourceDef {
        kind: SourceKind::Sqlite,
        database: DatabaseRef::Path("/nonexistent/pdfworker/reports.db".into()),
        query: "SELECT 1 AS x".into(),
        count_query: None,
        timeout: Duration::from_secs(5),
    };
    assert_connect_error(&source, "unused-secret");
}

#[test]
fn an_unset_url_variable_is_a_connect_error_naming_it() {
    let var = "PDFWORKER_TEST_SURELY_UNSET_DB_URL";
    for kind in [SourceKind::Postgres, SourceKind::Mysql] {
        let mut source = source_at(kind, String::new());
        source.database = DatabaseRef::UrlEnv(var.into());
        match source::check(&source) {
            Err(e @ SourceError::Connect(_)) => assert!(e.to_string().contains(var), "{e}"),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}

// ---- the server stops mid-stream -------------------------------------------------------------

/// Streams `query` and stops the server (with `stop`) at the first row: the stream must end
/// in an error, promptly.
fn a_server_stopped_mid_stream_is_an_error(source: &SourceDef, stop: &mut dyn FnMut()) {
    let started = Instant::now();
    let mut delivered = 0u64;
    let result = source::stream(source, &[], &strings(&["id", "pad"]), &mut |_| {
        delivered += 1;
        if delivered == 1 {
            stop();
        }
        ControlFlow::Continue(())
    });
    match result {
        Err(SourceError::Lost(m) | SourceError::Query(m)) => {
            eprintln!("after {delivered} rows: {m}");
        }
        other => panic!("expected Lost or Query, got {other:?} after {delivered} rows"),
    }
    assert!(
        delivered < 300_000,
        "all rows arrived although the server stopped"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn postgres_server_stopped_mid_stream_is_an_error() {
    let Some(mut db) = Postgres::start() else {
        return;
    };
    db.psql(
        "CREATE TABLE big AS SELECT i AS id, repeat('x', 100) AS pad \
         FROM generate_series(1, 300000) i",
    );
    let source = def(&db, "SELECT id, pad FROM big");
    a_server_stopped_mid_stream_is_an_error(&source, &mut || db.stop());
}

#[test]
fn mariadb_server_stopped_mid_stream_is_an_error() {
    let Some(mut db) = Mariadb::start() else {
        return;
    };
    db.sql(
        "CREATE TABLE big ENGINE=MyISAM AS SELECT seq AS id, REPEAT('x', 100) AS pad \
         FROM seq_1_to_300000",
    );
    let source = def(&db, "SELECT id, pad FROM big");
    a_server_stopped_mid_stream_is_an_error(&source, &mut || db.stop());
}
