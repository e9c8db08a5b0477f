//! Tests of the public `pdf` API: page arithmetic, rendering, cancellation, and (when the
//! binaries are installed) what `qpdf --check` and `pdftotext` make of the output.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

const PAPERS: [Paper; 2] = [Paper::A4, Paper::Letter];
const ORIENTATIONS: [Orientation; 2] = [Orientation::Portrait, Orientation::Landscape];

fn report(title: &str, rows: u32, paper: Paper, orientation: Orientation) -> Report<'_> {
    Report {
        title,
        rows,
        paper,
        orientation,
        // 2024-05-06 07:08:09 UTC
        generated_at: UNIX_EPOCH + Duration::from_secs(1_714_979_289),
    }
}

fn render_to_vec(r: &Report<'_>) -> (Vec<u8>, Rendered, Vec<(u32, u32)>) {
    let mut calls = Vec::new();
    let mut out = Vec::new();
    let rendered = render(
        r,
        &mut |done, total| {
            calls.push((done, total));
            true
        },
        &mut out,
    )
    .unwrap_or_else(|e| panic!("render of {} rows failed: {e}", r.rows));
    (out, rendered, calls)
}

/// Row counts around every page boundary of every paper/orientation.
fn interesting_rows(c: Capacity) -> Vec<u32> {
    let mut v = vec![0, 1, 2, 39, 40, 41, 79, 80, 81, 1_000];
    for k in 0..4 {
        let edge = c.first + k * c.rest;
        v.extend([edge - 1, edge, edge + 1]);
    }
    v
}

#[test]
fn names_round_trip() {
    for p in PAPERS {
        assert_eq!(p.as_str().parse::<Paper>(), Ok(p));
    }
    for o in ORIENTATIONS {
        assert_eq!(o.as_str().parse::<Orientation>(), Ok(o));
    }
    // serde uses the same lowercase names (job records store them).
    assert_eq!(
        serde_json::to_string(&Paper::Letter).ok().as_deref(),
        Some("\"letter\"")
    );
    assert_eq!(
        serde_json::from_str::<Orientation>("\"landscape\"").ok(),
        Some(Orientation::Landscape)
    );
    assert!(serde_json::from_str::<Paper>("\"A4\"").is_err());
    for bad in ["A4", "Letter", "", "a4 ", "legal", "Portrait"] {
        assert!(bad.parse::<Paper>().is_err(), "{bad:?}");
        assert!(bad.parse::<Orientation>().is_err(), "{bad:?}");
    }
}

#[test]
fn page_plan_covers_every_row_once() {
    for paper in PAPERS {
        for orientation in ORIENTATIONS {
            let c = Capacity::of(paper, orientation);
            for rows in interesting_rows(c)
                .into_iter()
                .chain([u32::MAX - 1, u32::MAX])
            {
                let pages = page_count(rows, paper, orientation);
                let mut next = 1u64;
                // Walking u32::MAX rows page by page is ~100M iterations; spot-check instead.
                let walk = if rows > 100_000 {
                    [1, pages - 1, pages].to_vec()
                } else {
                    (1..=pages).collect()
                };
                for p in walk {
                    let (first, count) = c.rows_on(p, rows);
                    if rows <= 100_000 {
                        assert_eq!(
                            u64::from(first),
                            next,
                            "{paper:?} {orientation:?} rows={rows} page {p}"
                        );
                    }
                    assert!(
                        count > 0 || rows == 0,
                        "{paper:?} {orientation:?} rows={rows}: page {p} is empty"
                    );
                    next = u64::from(first) + u64::from(count);
                }
                assert_eq!(
                    next,
                    u64::from(rows) + 1,
                    "{paper:?} {orientation:?} rows={rows}: rows left over"
                );
                assert_eq!(c.rows_on(pages.saturating_add(1), rows).1, 0);
            }
        }
    }
}

#[test]
fn a4_portrait_shape() {
    let c = Capacity::of(Paper::A4, Orientation::Portrait);
    assert_eq!(c.rest, ROWS_PER_PAGE);
    let first = c.first;
    assert_eq!(page_count(0, Paper::A4, Orientation::Portrait), 1);
    assert_eq!(page_count(1, Paper::A4, Orientation::Portrait), 1);
    assert_eq!(page_count(first, Paper::A4, Orientation::Portrait), 1);
    assert_eq!(page_count(first + 1, Paper::A4, Orientation::Portrait), 2);
    assert_eq!(page_count(first + 40, Paper::A4, Orientation::Portrait), 2);
    assert_eq!(page_count(first + 41, Paper::A4, Orientation::Portrait), 3);
    assert!(page_count(u32::MAX, Paper::A4, Orientation::Portrait) > 100_000_000);
}

#[test]
fn rendered_pages_agree_with_page_count() {
    for paper in PAPERS {
        for orientation in ORIENTATIONS {
            let c = Capacity::of(paper, orientation);
            let mut rows_list = interesting_rows(c);
            rows_list.retain(|&r| r <= 200);
            for rows in rows_list {
                let want = page_count(rows, paper, orientation);
                let (bytes, rendered, calls) =
                    render_to_vec(&report("T", rows, paper, orientation));
                assert_eq!(
                    rendered.pages, want,
                    "{paper:?} {orientation:?} rows={rows}"
                );
                let expected_calls: Vec<(u32, u32)> = (1..=want).map(|p| (p, want)).collect();
                assert_eq!(
                    calls, expected_calls,
                    "{paper:?} {orientation:?} rows={rows}"
                );
                assert!(bytes.starts_with(b"%PDF-"));
                // Every page object is written once (lopdf writes "/Type/Page" for pages and
                // "/Type/Pages" for the tree root).
                let page_objects = count(&bytes, b"/Type/Page") - count(&bytes, b"/Type/Pages");
                assert_eq!(
                    page_objects, want as usize,
                    "{paper:?} {orientation:?} rows={rows}"
                );
            }
        }
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[test]
fn small_report_is_a_pdf() {
    let (bytes, rendered, _) = render_to_vec(&report("Hello", 3, Paper::A4, Orientation::Portrait));
    assert!(
        bytes.starts_with(b"%PDF-"),
        "starts with {:?}",
        &bytes[..bytes.len().min(8)]
    );
    assert_eq!(rendered.pages, 1);
    // Stripped fonts keep a small report small (the two DejaVu faces are ~1.4 MB whole).
    assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
}

#[test]
fn odd_titles_do_not_panic() {
    let long = "Ж".repeat(5_000);
    for title in ["", " ", "\n\t\0", "🙂 emoji outside DejaVu", long.as_str()] {
        let (bytes, _, _) = render_to_vec(&report(title, 2, Paper::Letter, Orientation::Landscape));
        assert!(bytes.starts_with(b"%PDF-"));
    }
}

#[test]
fn cancel_stops_the_render() {
    let mut out = Vec::new();
    let mut seen = 0;
    let r = report("T", 500, Paper::A4, Orientation::Portrait);
    let res = render(
        &r,
        &mut |done, _| {
            seen = done;
            done < 3
        },
        &mut out,
    );
    assert!(matches!(res, Err(RenderError::Cancelled)), "got {res:?}");
    assert_eq!(seen, 3);
    assert!(
        out.is_empty(),
        "a cancelled render wrote {} bytes",
        out.len()
    );
}

#[test]
fn write_errors_are_io_errors() {
    struct Broken;
    impl io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let res = render(
        &report("T", 1, Paper::A4, Orientation::Portrait),
        &mut |_, _| true,
        &mut Broken,
    );
    match res {
        Err(RenderError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
        other => panic!("expected Io(StorageFull), got {other:?}"),
    }
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
        let (bytes, rendered, _) = render_to_vec(&report(title, rows, paper, orientation));
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
                "Category".to_string(),
                "Amount".to_string(),
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

/// Issue #4: pages are drawn straight into deflated content streams and added to printpdf's
/// document one by one; a many-page file must still be one that qpdf and poppler accept, with
/// every page present, compressed, and its text extractable through the fonts' `/ToUnicode`.
#[test]
fn issue_4_streamed_pages_make_a_valid_document() {
    let rows = 2_000;
    let r = report("Streamed Ω", rows, Paper::A4, Orientation::Portrait);
    let (bytes, rendered, calls) = render_to_vec(&r);
    let want = page_count(rows, Paper::A4, Orientation::Portrait);
    assert_eq!(rendered.pages, want);
    assert_eq!(calls.len(), want as usize);
    let page_objects = count(&bytes, b"/Type/Page") - count(&bytes, b"/Type/Pages");
    assert_eq!(page_objects, want as usize);
    // One content stream per page, plus the font programs and CMaps, all deflated.
    assert!(
        count(&bytes, b"/FlateDecode") > want as usize,
        "{} deflated streams for {want} pages",
        count(&bytes, b"/FlateDecode")
    );
    // Compressed pages stay small: ~2.6 KB each at the fast level, on top of the fonts.
    let (one_page, _, _) =
        render_to_vec(&report("Streamed Ω", 1, Paper::A4, Orientation::Portrait));
    let per_page = (bytes.len() - one_page.len()) / (want as usize - 1);
    assert!(per_page < 3_600, "{per_page} bytes per page");

    let path = temp_pdf("issue-4", &bytes);
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
        assert!(text.contains(&format!("Page {want} of {want}")));
        assert!(text.contains("Streamed Ω"));
    }
    let _ = std::fs::remove_file(&path);
}
