//! Tests of the public `pdf` API: the table writer's pages, wrapping, groups, totals,
//! missing glyphs, cancellation, and (when the binaries are installed) what `qpdf --check`
//! and `pdftotext` make of the output.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn col(heading: &str, align: Align, width: f32) -> ColumnSpec {
    ColumnSpec {
        heading: heading.into(),
        align,
        width,
        wrap: true,
    }
}

/// The demo ledger's shape: #, Date, Description, Category, Amount.
fn ledger_spec(title: &str, paper: Paper, orientation: Orientation) -> TableSpec {
    TableSpec {
        title: title.into(),
        info: vec!["Generated 2024-05-06 07:08:09 UTC".into()],
        paper,
        orientation,
        columns: vec![
            col("#", Align::Right, 0.6),
            col("Date", Align::Left, 0.8),
            col("Description", Align::Left, 2.6),
            col("Category", Align::Left, 0.9),
            col("Amount", Align::Right, 1.0),
        ],
        // 2024-05-06 07:08:09 UTC
        generated_at: UNIX_EPOCH + Duration::from_secs(1_714_979_289),
        fonts: None,
        max_pages: 100_000,
    }
}

/// Renders `rows` sample rows and a total; returns the bytes, the facts and the progress calls.
fn render_ledger(spec: &TableSpec, rows: u32) -> (Vec<u8>, Rendered, Vec<(u32, u32)>) {
    let mut calls = Vec::new();
    let mut out = Vec::new();
    let mut progress = |done, total| {
        calls.push((done, total));
        true
    };
    let mut w = TableWriter::new(spec, &mut out, &mut progress).expect("writer");
    w.expect_rows(u64::from(rows));
    for i in 1..=rows {
        let r = sample_row(i);
        let index = r.index.to_string();
        let amount = format_amount(r.amount_cents);
        w.row(&[&index, &r.date, &r.description, r.category, &amount])
            .expect("row");
    }
    let total = format_amount(sample_total_cents(rows));
    let rendered = w
        .finish(Some(&["Total", "", "", "", &total]))
        .expect("finish");
    (out, rendered, calls)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[test]
fn names_round_trip() {
    for p in [Paper::A4, Paper::Letter] {
        assert_eq!(p.as_str().parse::<Paper>(), Ok(p));
    }
    for o in [Orientation::Portrait, Orientation::Landscape] {
        assert_eq!(o.as_str().parse::<Orientation>(), Ok(o));
    }
    assert_eq!(
        serde_json::to_string(&Paper::Letter).ok().as_deref(),
        Some("\"letter\"")
    );
    assert!("A4".parse::<Paper>().is_err());
}

#[test]
fn every_row_lands_on_exactly_one_page_and_progress_counts_pages() {
    let spec = ledger_spec("T", Paper::A4, Orientation::Portrait);
    let (bytes, rendered, calls) = render_ledger(&spec, 500);
    assert_eq!(rendered.rows, 500);
    assert_eq!(calls.len(), rendered.pages as usize);
    assert_eq!(calls.last().map(|c| c.0), Some(rendered.pages));
    // With the row count known, the estimate is never below what is done.
    assert!(calls.iter().all(|&(done, est)| est >= done), "{calls:?}");
    let per_page = rows_per_page(Paper::A4, Orientation::Portrait);
    assert!(
        rendered.pages >= 500 / per_page && rendered.pages <= 500 / (per_page - 6) + 1,
        "{} pages for 500 rows at ~{per_page} per page",
        rendered.pages
    );
    assert_eq!(
        count(&bytes, b"/Type/Page/"),
        rendered.pages as usize,
        "one page dictionary per page"
    );
}

#[test]
fn a_report_without_rows_is_one_page_with_its_headings() {
    let spec = ledger_spec("Empty", Paper::A4, Orientation::Landscape);
    let (bytes, rendered, _) = render_ledger(&spec, 0);
    assert_eq!((rendered.pages, rendered.rows), (1, 0));
    let path = temp_pdf("empty", &bytes);
    qpdf_check(&path);
    if let Some(text) = pdftotext(&path) {
        assert!(
            text.contains("Description") && text.contains("Page 1 of 1"),
            "{text}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn cancel_stops_the_render() {
    let spec = ledger_spec("T", Paper::A4, Orientation::Portrait);
    let mut out = Vec::new();
    let mut pages = 0;
    let mut progress = |done, _| {
        pages = done;
        done < 2
    };
    let mut w = TableWriter::new(&spec, &mut out, &mut progress).expect("writer");
    let mut result = Ok(());
    for i in 1..=10_000 {
        let r = sample_row(i);
        result = w.row(&["1", &r.date, &r.description, r.category, "1.00"]);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(RenderError::Cancelled)), "{result:?}");
    drop(w);
    assert_eq!(pages, 2);
}

#[test]
fn the_page_cap_stops_a_report_that_grows_past_it() {
    let mut spec = ledger_spec("T", Paper::A4, Orientation::Portrait);
    spec.max_pages = 3;
    let mut out = Vec::new();
    let mut progress = |_, _| true;
    let mut w = TableWriter::new(&spec, &mut out, &mut progress).expect("writer");
    let failed = (1..=10_000).find_map(|_| w.row(&["1", "d", "x", "c", "1"]).err());
    assert!(
        matches!(failed, Some(RenderError::TooManyPages { max: 3 })),
        "{failed:?}"
    );
}

#[test]
fn write_errors_are_io_errors() {
    struct Broken;
    impl io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
    }
    let spec = ledger_spec("T", Paper::A4, Orientation::Portrait);
    let mut out = Broken;
    let mut progress = |_, _| true;
    let result = TableWriter::new(&spec, &mut out, &mut progress).and_then(|mut w| {
        for _ in 0..5_000 {
            w.row(&["1", "d", "x", "c", "1"])?;
        }
        w.finish(None)
    });
    assert!(matches!(result, Err(RenderError::Io(_))), "{result:?}");
}

#[test]
fn generated_line_format() {
    assert_eq!(
        format_utc(UNIX_EPOCH + Duration::from_secs(1_714_979_289)),
        "2024-05-06 07:08:09 UTC"
    );
    assert_eq!(
        format_utc(UNIX_EPOCH - Duration::from_secs(1)),
        "1969-12-31 23:59:59 UTC"
    );
}

/// `None` (and a note on stderr) when `tool` is not installed.
fn tool(name: &str) -> Option<Command> {
    match Command::new(name).arg("--version").output() {
        Ok(_) => Some(Command::new(name)),
        Err(_) => {
            eprintln!("note: {name} not installed; skipping its checks");
            None
        }
    }
}

/// `qpdf --check` passes on `path` (skipped with a note where qpdf is missing).
fn qpdf_check(path: &std::path::Path) {
    if let Some(mut qpdf) = tool("qpdf") {
        let out = qpdf.arg("--check").arg(path).output().expect("run qpdf");
        assert!(
            out.status.success(),
            "qpdf --check failed for {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The text of `path` as `pdftotext -layout` sees it (`None` where pdftotext is missing).
fn pdftotext(path: &std::path::Path) -> Option<String> {
    let out = tool("pdftotext")?
        .arg("-layout")
        .arg(path)
        .arg("-")
        .output()
        .expect("run pdftotext");
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn temp_pdf(tag: &str, bytes: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("pdfworker-test-{}-{tag}.pdf", std::process::id()));
    std::fs::write(&path, bytes).expect("write temp pdf");
    path
}

#[test]
fn external_tools_accept_the_output() {
    let title = "Report – Ελληνικά – Кириллица ✓ €";
    for (rows, paper, orientation) in [
        (85, Paper::A4, Orientation::Portrait),
        (40, Paper::Letter, Orientation::Landscape),
        (0, Paper::A4, Orientation::Landscape),
    ] {
        let spec = ledger_spec(title, paper, orientation);
        let (bytes, rendered, _) = render_ledger(&spec, rows);
        let path = temp_pdf(
            &format!("{rows}-{}-{}", paper.as_str(), orientation.as_str()),
            &bytes,
        );
        qpdf_check(&path);
        if let Some(text) = pdftotext(&path) {
            let total = format_amount(sample_total_cents(rows));
            let n = rendered.pages;
            for want in [
                title.to_string(),
                "Description".to_string(),
                "Generated 2024-05-06 07:08:09 UTC".to_string(),
                format!("Page 1 of {n}"),
                format!("Page {n} of {n}"),
            ] {
                assert!(
                    text.contains(&want),
                    "pdftotext output lacks {want:?}:\n{text}"
                );
            }
            let total_line = text.lines().find(|l| l.trim_start().starts_with("Total"));
            assert!(
                total_line.is_some_and(|l| l.trim_end().ends_with(&total)),
                "no 'Total … {total}' line in:\n{text}"
            );
            if rows > 0 {
                let last = sample_row(rows);
                assert!(
                    text.contains(&last.description),
                    "last row missing:\n{text}"
                );
            }
        }
        if let Some(mut pdfinfo) = tool("pdfinfo") {
            let out = pdfinfo.arg(&path).output().expect("run pdfinfo");
            let info = String::from_utf8_lossy(&out.stdout);
            assert!(
                info.contains(&format!("Pages:           {}", rendered.pages)),
                "{info}"
            );
            assert!(info.contains(title), "title metadata missing:\n{info}");
            assert!(
                info.contains(concat!("pdfworker ", env!("CARGO_PKG_VERSION"))),
                "{info}"
            );
            assert!(info.contains("2024"), "creation date missing:\n{info}");
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// Issue #7: pages go to the file as they are drawn; a many-page file must still be one that
/// qpdf and poppler accept, every row extractable, the total page count on every footer.
#[test]
fn streamed_pages_make_a_valid_document_with_the_page_count_on_every_page() {
    let rows = 2_000;
    let spec = ledger_spec("Streamed Ω", Paper::A4, Orientation::Portrait);
    let (bytes, rendered, _) = render_ledger(&spec, rows);
    let n = rendered.pages;
    let (one, _, _) = render_ledger(&spec, 1);
    let per_page = (bytes.len() - one.len()) / (n as usize - 1);
    assert!(per_page < 3_600, "{per_page} bytes per page");
    let path = temp_pdf("streamed", &bytes);
    qpdf_check(&path);
    if let Some(text) = pdftotext(&path) {
        for i in [1, 2, 1_000, rows] {
            let row = sample_row(i);
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(&row.index.to_string()))
                .unwrap_or_else(|| panic!("row {i} missing"));
            for cell in [
                &row.date,
                &row.description,
                &format_amount(row.amount_cents),
            ] {
                assert!(
                    line.contains(cell.as_str()),
                    "row {i}: {line:?} lacks {cell:?}"
                );
            }
        }
        for page in [1, n / 2, n] {
            assert!(text.contains(&format!("Page {page} of {n}")), "page {page}");
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Issue #7: long cells wrap inside their column, groups get headings (repeated after a page
/// break) and subtotals, and characters DejaVu lacks print as a visible replacement.
#[test]
fn groups_wrapping_and_missing_glyphs_show_in_the_text() {
    let mut spec = ledger_spec("Groups", Paper::A4, Orientation::Portrait);
    spec.columns = vec![
        col("Name", Align::Left, 1.0),
        col("Amount", Align::Right, 1.0),
    ];
    let mut out = Vec::new();
    let mut progress = |_, _| true;
    let mut w = TableWriter::new(&spec, &mut out, &mut progress).expect("writer");
    let long = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau";
    w.group_heading("Region North").expect("heading");
    w.row(&[long, "1.00"]).expect("row");
    for _ in 0..60 {
        w.row(&["filler", "2.00"]).expect("row");
    }
    w.row(&["漢字 and 🦀", "3.00"]).expect("row");
    w.subtotal(&["Subtotal North", "123.00"]).expect("subtotal");
    let rendered = w.finish(Some(&["Total", "123.00"])).expect("finish");
    assert_eq!(
        rendered.missing_glyphs,
        vec!['字', '漢', '🦀'],
        "sorted by code point"
    );
    assert_eq!(rendered.missing_count, 3);
    let path = temp_pdf("groups", &out);
    qpdf_check(&path);
    if let Some(text) = pdftotext(&path) {
        assert!(text.contains("Region North (continued)"), "{text}");
        assert!(text.contains("Subtotal North"), "{text}");
        assert!(text.contains("\u{FFFD}\u{FFFD} and \u{FFFD}"), "{text}");
        assert!(
            text.contains("alpha beta") && text.contains("omicron"),
            "{text}"
        );
        let wrapped = text
            .lines()
            .position(|l| l.contains("alpha beta"))
            .and_then(|i| text.lines().nth(i + 1))
            .unwrap_or_default();
        assert!(
            !wrapped.contains("2.00"),
            "second line of the long cell: {wrapped:?}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn odd_text_does_not_panic() {
    let spec = ledger_spec(
        "\u{0}\u{7}\u{202E}evil\u{FEFF}",
        Paper::Letter,
        Orientation::Portrait,
    );
    let mut out = Vec::new();
    let mut progress = |_, _| true;
    let mut w = TableWriter::new(&spec, &mut out, &mut progress).expect("writer");
    for cell in [
        "",
        "\n\n\n",
        "\u{0}",
        &"W".repeat(5_000),
        "a\u{301}\u{200D}b",
        "\r\t",
    ] {
        w.row(&[cell, cell, cell, cell, cell]).expect("row");
    }
    w.row(&[]).expect("no cells");
    w.finish(None).expect("finish");
}
