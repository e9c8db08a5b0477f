//! One askama struct per page (templates in `templates/`), and the small formatters they use.
//! Values are escaped by askama; nothing here builds HTML by hand.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;

use crate::jobs::{Job, State};

/// `GET /`: the reports this site offers.
#[derive(Template, Debug)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub reports: Vec<ReportLink>,
    /// The user the web server authenticated, if any, and their latest jobs.
    pub user: Option<String>,
    pub recent: Vec<RecentJob>,
}

/// One of a signed-in user's jobs, on the list of reports.
#[derive(Debug, Clone)]
pub struct RecentJob {
    pub id: String,
    pub title: String,
    pub state: &'static str,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct ReportLink {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// One form field, generated from a report parameter.
#[derive(Debug, Clone, Default)]
pub struct FieldView {
    pub name: String,
    pub label: String,
    /// `text`, `number`, `date` or `select`.
    pub input: &'static str,
    pub value: String,
    pub min: Option<String>,
    pub max: Option<String>,
    /// `any` for decimals (the browser's default step is 1).
    pub step: Option<&'static str>,
    pub maxlength: Option<u32>,
    pub required: bool,
    /// For `select`: (value, label) pairs.
    pub options: Vec<(String, String)>,
    pub error: Option<String>,
}

/// `GET /reports/<id>` and a re-shown form after `POST /reports/<id>` with errors.
#[derive(Template, Debug)]
#[template(path = "form.html")]
pub struct FormPage {
    pub name: String,
    pub description: String,
    pub action: String,
    pub fields: Vec<FieldView>,
    pub general_error: Option<String>,
}

impl FormPage {
    /// The field named `name`, to attach an error to.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut FieldView> {
        self.fields.iter_mut().find(|f| f.name == name)
    }

    /// Whether any field shows an error.
    pub fn has_errors(&self) -> bool {
        self.fields.iter().any(|f| f.error.is_some())
    }
}

/// `GET /jobs/<id>`: pending, done, failed or cancelled.
#[derive(Template, Debug)]
#[template(path = "job.html")]
pub struct JobPage {
    pub id: String,
    pub title: String,
    /// Where to make another report of the same kind.
    pub form_link: String,
    pub state: &'static str,
    pub is_final: bool,
    pub pages_done: u32,
    pub pages_total: u32,
    /// False while the page count is not known yet (no count query, or it has not run).
    pub total_known: bool,
    pub percent: u32,
    /// Every page is laid out and the file is being written (compression takes a while).
    pub writing: bool,
    pub size: String,
    pub render_time: String,
    pub error: String,
    pub created: String,
}

impl JobPage {
    /// The page for `job`, with live progress from the runner when it has any.
    pub fn new(job: &Job, live: Option<(State, u32, u32)>) -> JobPage {
        let (state, done, total) = live.unwrap_or((job.state, job.pages_done, job.pages_total));
        let percent = if total == 0 {
            0
        } else {
            (u64::from(done.min(total)) * 100 / u64::from(total)) as u32
        };
        JobPage {
            id: job.id.to_string(),
            title: if job.request.title.trim().is_empty() {
                "Report".to_owned()
            } else {
                job.request.title.clone()
            },
            form_link: super::url(&format!("/reports/{}", job.request.report)),
            state: state.as_str(),
            is_final: state.is_final(),
            pages_done: done,
            pages_total: total.max(1),
            total_known: total > 0,
            percent,
            writing: state == State::Running && total > 0 && done >= total,
            size: job.size_bytes.map(human_bytes).unwrap_or_default(),
            render_time: job
                .render_ms
                .map(|ms| human_duration(Duration::from_millis(ms)))
                .unwrap_or_default(),
            error: job.error.clone().unwrap_or_else(|| "unknown error".into()),
            created: utc_datetime(UNIX_EPOCH + Duration::from_millis(job.created_ms)),
        }
    }
}

/// Any page that is a heading, a sentence and maybe a link: errors, "not ready yet".
#[derive(Template, Debug)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub heading: String,
    pub message: String,
    pub link: Option<String>,
    pub link_text: String,
}

/// `1536` → `"1.5 KB"`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// `1.234 s`, `2 min 5 s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// `2026-11-30 02:36:37 UTC`.
pub fn utc_datetime(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let c = Civil::of(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// A moment in UTC as calendar fields: the one conversion behind every date the pages, the
/// API and the downloads write.
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    /// 0 = Thursday (1970-01-01), 1 = Friday, …
    pub weekday_from_thursday: u64,
}

impl Civil {
    /// `secs` since the Unix epoch.
    pub(crate) fn of(secs: u64) -> Civil {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = crate::pdf::civil_from_days(i64::try_from(days).unwrap_or(0));
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
            weekday_from_thursday: days % 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_table() {
        for (n, want) in [
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1536, "1.5 KB"),
            (5 * 1024 * 1024, "5.0 MB"),
        ] {
            assert_eq!(human_bytes(n), want);
        }
    }

    #[test]
    fn utc_datetime_known_points() {
        assert_eq!(utc_datetime(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3661); // 2024-02-29 01:01:01
        assert_eq!(utc_datetime(t), "2024-02-29 01:01:01 UTC");
    }

    #[test]
    fn form_escapes_values() {
        let page = FormPage {
            name: "<b>n</b>".into(),
            description: String::new(),
            action: "/reports/x".into(),
            fields: vec![FieldView {
                name: "title".into(),
                label: "Title".into(),
                input: "text",
                value: "<script>alert(1)</script>".into(),
                ..FieldView::default()
            }],
            general_error: None,
        };
        let html = page.render().unwrap();
        assert!(
            !html.contains("<script>alert(1)") && !html.contains("<b>n"),
            "values must be escaped:\n{html}"
        );
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}
