//! Runner tests with fake render functions. Shared helpers are `pub(crate)` for the janitor's
//! tests.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use super::*;
use crate::jobs::MAX_TITLE_CHARS;
use crate::jobs::job::tests::request;
use crate::jobs::test_util::{TempDir, capture_warnings};

/// The `rows` value of a test request (see `job::tests::request`).
pub(crate) fn rows(r: &Request) -> u32 {
    r.values
        .get("rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Pages = rows: easy to reason about in tests.
pub(crate) fn estimate_rows() -> EstimateFn {
    Arc::new(|r: &Request| rows(r))
}

/// An estimate that never knows: every job's page count is found out by its render.
fn estimate_unknown() -> EstimateFn {
    Arc::new(|_: &Request| 0)
}

fn io_failure(e: io::Error) -> RenderFailure {
    RenderFailure::Failed {
        user: "the test render could not write".into(),
        detail: e.to_string(),
    }
}

/// A successful render of `pages` pages, one row each.
pub(crate) fn outcome(pages: u32) -> RenderOutcome {
    RenderOutcome {
        pages,
        rows: u64::from(pages),
        warnings: Vec::new(),
    }
}

pub(crate) fn config() -> RunnerConfig {
    RunnerConfig {
        slots: 2,
        janitor_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

pub(crate) fn runner(dir: &TempDir, render: RenderFn, config: RunnerConfig) -> Runner {
    runner_with(dir, render, estimate_rows(), config)
}

fn runner_with(
    dir: &TempDir,
    render: RenderFn,
    estimate: EstimateFn,
    config: RunnerConfig,
) -> Runner {
    let store = Store::open(&dir.0).expect("open store");
    Runner::new(store, render, estimate, config)
}

/// Writes one line per page and reports each page, with the total known.
pub(crate) fn pages_render() -> RenderFn {
    lines_render(true)
}

/// Writes one line per page and reports each page, with the total known or not (0).
fn lines_render(total_known: bool) -> RenderFn {
    Arc::new(
        move |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            let rows = rows(r);
            let total = if total_known { rows } else { 0 };
            for page in 1..=rows {
                writeln!(out, "page {page}").map_err(io_failure)?;
                if !progress(page, total) {
                    return Err(RenderFailure::Stopped);
                }
            }
            Ok(outcome(rows))
        },
    )
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Started(String),
    Stopped(String),
}

/// Lets a test hold renders (by job title) until it opens them.
#[derive(Clone, Default)]
pub(crate) struct Gate {
    open: Arc<Mutex<HashSet<String>>>,
    all: Arc<AtomicBool>,
}

impl Gate {
    pub(crate) fn open(&self, title: &str) {
        self.open.lock().expect("gate").insert(title.to_owned());
    }

    pub(crate) fn open_all(&self) {
        self.all.store(true, Ordering::SeqCst);
    }

    fn is_open(&self, title: &str) -> bool {
        self.all.load(Ordering::SeqCst) || self.open.lock().expect("gate").contains(title)
    }
}

/// Writes a partial PDF, then reports progress every 2 ms until its gate opens (then finishes)
/// or progress says stop (then returns `Stopped`).
pub(crate) fn gated_render(gate: Gate) -> (RenderFn, mpsc::UnboundedReceiver<Event>) {
    gated_render_with_total(gate, true)
}

/// `gated_render`, reporting the total as unknown (0) unless `total_known`.
fn gated_render_with_total(
    gate: Gate,
    total_known: bool,
) -> (RenderFn, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let render: RenderFn = Arc::new(
        move |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            let total = if total_known { rows(r) } else { 0 };
            let _ = tx.send(Event::Started(r.title.clone()));
            out.write_all(b"%PDF-1.7 first half").map_err(io_failure)?;
            loop {
                if !progress(1, total) {
                    let _ = tx.send(Event::Stopped(r.title.clone()));
                    return Err(RenderFailure::Stopped);
                }
                if gate.is_open(&r.title) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            out.write_all(b" second half %%EOF").map_err(io_failure)?;
            Ok(outcome(rows(r)))
        },
    );
    (render, rx)
}

/// Polls until the job's record is final; panics after about 10 s of polls.
pub(crate) async fn wait_final(store: &Store, id: JobId) -> Job {
    for _ in 0..2_000 {
        if let Some(job) = store.load(id).expect("load")
            && job.state.is_final()
        {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("job {id} never became final: {:?}", store.load(id));
}

/// Polls until `cond` holds; panics after about 10 s of polls.
pub(crate) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn expect_event(rx: &mut mpsc::UnboundedReceiver<Event>, want: Event) {
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(got.ok().flatten(), Some(want));
}

fn tmp_files(store: &Store) -> Vec<String> {
    let dir = store
        .pdf_path(JobId::new())
        .parent()
        .expect("files dir")
        .to_owned();
    fs::read_dir(dir)
        .expect("list files")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_job_renders_to_done_with_its_pdf() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let pending = runner.enqueue(request("report", 4)).expect("enqueue");
    let id = pending.id();
    let queued = runner
        .store()
        .load(id)
        .expect("load")
        .expect("recorded at enqueue");
    assert_eq!(
        (queued.state, queued.pages_total, queued.attempts),
        (State::Queued, 4, 0)
    );
    assert_eq!(
        runner.progress(id),
        Some(Progress {
            state: State::Queued,
            pages_done: 0,
            pages_total: 4
        })
    );

    runner.start(pending);
    let job = wait_final(runner.store(), id).await;
    assert_eq!(job.state, State::Done, "{job:?}");
    assert_eq!((job.pages_done, job.pages_total, job.attempts), (4, 4, 1));
    let pdf = fs::read_to_string(runner.store().pdf_path(id)).expect("pdf is there");
    assert_eq!(pdf, "page 1\npage 2\npage 3\npage 4\n");
    assert_eq!(job.size_bytes, Some(pdf.len() as u64));
    assert!(job.render_ms.is_some() && job.started_ms.is_some() && job.finished_ms.is_some());
    assert_eq!(job.error, None);
    assert!(tmp_files(runner.store()).is_empty());
    wait_until("the job leaves the live map", || {
        runner.progress(id).is_none()
    })
    .await;
    assert!(
        runner.store().claim(id).expect("claim").is_some(),
        "claim released at the end"
    );
}

#[test]
fn enqueue_refuses_what_cannot_run() {
    let dir = TempDir::new();
    // Each render: 10 KiB fixed plus 1 KiB per page; 60 KiB in all.
    let config = RunnerConfig {
        max_pages: 100,
        render_memory: 10 * 1024,
        bytes_per_page: 1024,
        memory_budget: 60 * 1024,
        queue_limit: 10,
        ..config()
    };
    let runner = runner(&dir, pages_render(), config);
    let outside = Request {
        report: "../x".into(),
        ..request("t", 1)
    };
    type Check = fn(&SubmitError) -> bool;
    let cases: Vec<(&str, Request, Check)> = vec![
        ("too many pages", request("t", 101), |e| {
            matches!(
                e,
                SubmitError::TooManyPages {
                    pages: 101,
                    max: 100
                }
            )
        }),
        ("over the memory budget", request("t", 51), |e| {
            matches!(
                e,
                SubmitError::TooLarge {
                    pages: 51,
                    bytes: 62_464,
                    budget: 61_440
                }
            )
        }),
        (
            "title too long",
            request(&"x".repeat(MAX_TITLE_CHARS + 1), 1),
            |e| matches!(e, SubmitError::Invalid { .. }),
        ),
        ("report id that is a path", outside, |e| {
            matches!(e, SubmitError::Invalid { .. })
        }),
    ];
    for (name, r, check) in cases {
        match runner.enqueue(r) {
            Err(e) => assert!(check(&e), "{name}: wrong error {e:?}"),
            Ok(p) => panic!("{name}: accepted as {:?}", p.id()),
        }
    }
    assert!(
        runner.store().scan().expect("scan").is_empty(),
        "refused jobs leave no record"
    );
    let fits = runner
        .enqueue(request("t", 50))
        .expect("exactly the budget fits");
    let at_cap = runner.enqueue(request("t", 100));
    assert!(
        matches!(at_cap, Err(SubmitError::TooLarge { .. })),
        "{at_cap:?}"
    );
    let unknown = runner
        .enqueue(request("t", 0))
        .expect("an unknown page count (0) is accepted");
    assert_eq!(unknown.job().pages_total, 0);
    drop((fits, unknown));
}

#[test]
fn a_budget_below_one_render_refuses_even_unknown_page_counts() {
    let dir = TempDir::new();
    let config = RunnerConfig {
        render_memory: 64 * MIB,
        memory_budget: 32 * MIB,
        ..config()
    };
    let runner = runner_with(&dir, pages_render(), estimate_unknown(), config);
    match runner.enqueue(request("t", 5)) {
        Err(e @ SubmitError::TooLarge { pages: 0, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("need about 64 MiB; at most 32 MiB") && !text.contains("0 pages"),
                "{text}"
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn default_limits_reserve_a_fixed_share_and_little_per_page() {
    let config = RunnerConfig::default();
    assert_eq!(
        (
            config.render_memory,
            config.bytes_per_page,
            config.max_pages
        ),
        (32 * MIB, 64, 100_000)
    );
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config);
    let inner = &runner.inner;
    assert_eq!(inner.memory_bytes_for(0), 32 * MIB);
    assert_eq!(inner.memory_bytes_for(100_000), 32 * MIB + 6_400_000);
    assert_eq!(inner.memory_units_for(1), (32 * MIB + 64).div_ceil(1024));
    inner.check_size(0).expect("unknown fits");
    inner
        .check_size(100_000)
        .expect("the cap fits the default budget");
}

#[test]
fn queue_limit_makes_enqueue_busy_until_a_place_frees() {
    let dir = TempDir::new();
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            queue_limit: 2,
            ..config()
        },
    );
    let a = runner.enqueue(request("a", 1)).expect("first");
    let _b = runner.enqueue(request("b", 1)).expect("second");
    match runner.enqueue(request("c", 1)) {
        Err(SubmitError::Busy { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected Busy, got {other:?}"),
    }
    drop(a);
    runner
        .enqueue(request("c", 1))
        .expect("a place is free again");
}

#[test]
fn a_pending_job_holds_its_claim_and_dropping_it_leaves_it_queued() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let pending = runner.enqueue(request("t", 1)).expect("enqueue");
    let id = pending.id();
    let other = Store::open(&dir.0).expect("second store");
    assert!(
        other.claim(id).expect("claim").is_none(),
        "claimed by enqueue"
    );
    drop(pending);
    assert!(
        other.claim(id).expect("claim").is_some(),
        "released on drop"
    );
    assert_eq!(
        other.load(id).expect("load").map(|j| j.state),
        Some(State::Queued)
    );
    assert_eq!(runner.progress(id), None);
}

#[tokio::test]
async fn progress_is_live_and_the_pdf_appears_only_complete() {
    let dir = TempDir::new();
    let gate = Gate::default();
    let (render, mut events) = gated_render(gate.clone());
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(request("held", 10)).expect("enqueue");
    let id = pending.id();
    runner.start(pending);
    expect_event(&mut events, Event::Started("held".into())).await;
    wait_until("progress shows page 1", || {
        runner.progress(id)
            == Some(Progress {
                state: State::Running,
                pages_done: 1,
                pages_total: 10,
            })
    })
    .await;
    let store = runner.store();
    assert!(
        !store.pdf_path(id).exists(),
        "half a PDF must not be visible"
    );
    assert!(store.pdf_tmp_path(id).exists(), "it is being written aside");
    let running = store.load(id).expect("load").expect("record");
    assert_eq!((running.state, running.attempts), (State::Running, 1));
    assert!(
        Store::open(&dir.0)
            .expect("store")
            .claim(id)
            .expect("claim")
            .is_none(),
        "claimed while running"
    );

    gate.open("held");
    // Whenever the record says done, the whole file must already be in place.
    loop {
        let job = store.load(id).expect("load").expect("record");
        if job.state == State::Done {
            let pdf = fs::read(store.pdf_path(id)).expect("pdf there when done");
            assert_eq!(pdf, b"%PDF-1.7 first half second half %%EOF");
            break;
        }
        assert!(!job.state.is_final(), "{job:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_failing_render_fails_the_job_with_the_users_sentence_as_is() {
    // (title → what the render returns, the record's error)
    let cases = [
        (
            "changed",
            "the report \"ledger\" changed since it was asked for; ask for it again",
        ),
        ("blank", "the PDF could not be made"),
        ("stopped unasked", "the PDF could not be made"),
    ];
    let dir = TempDir::new();
    let render: RenderFn = Arc::new(
        |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            out.write_all(b"%PDF partial").map_err(io_failure)?;
            progress(1, 2);
            Err(match r.title.as_str() {
                "changed" => RenderFailure::Failed {
                    user: "the report \"ledger\" changed since it was asked for; ask for it \
                           again"
                        .into(),
                    detail: "definition hash test, now 9f3e (secret.toml)".into(),
                },
                "blank" => RenderFailure::Failed {
                    user: "  ".into(),
                    detail: "secret detail".into(),
                },
                _ => RenderFailure::Stopped,
            })
        },
    );
    let runner = runner(&dir, render, config());
    for (title, want) in cases {
        let pending = runner.enqueue(request(title, 2)).expect("enqueue");
        let id = pending.id();
        runner.start(pending);
        let job = wait_final(runner.store(), id).await;
        assert_eq!(job.state, State::Failed, "{title}");
        assert_eq!(job.error.as_deref(), Some(want), "{title}");
        assert!(!runner.store().pdf_path(id).exists(), "{title}");
        assert_eq!(job.size_bytes, None, "{title}");
    }
    assert!(tmp_files(runner.store()).is_empty(), "tmp files removed");
}

#[tokio::test]
async fn a_panicking_render_marks_the_job_failed_and_the_runner_lives_on() {
    let dir = TempDir::new();
    let render: RenderFn = Arc::new(
        |r: &Request, _: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            if r.title == "bad" {
                panic!("renderer bug");
            }
            Ok(outcome(1))
        },
    );
    let runner = runner(&dir, render, config());
    let bad = runner.enqueue(request("bad", 1)).expect("enqueue");
    let bad_id = bad.id();
    runner.start(bad);
    let job = wait_final(runner.store(), bad_id).await;
    assert_eq!(job.state, State::Failed);
    let error = job.error.as_deref().unwrap_or("");
    assert!(
        error.contains("crashed") && !error.contains("renderer bug"),
        "{job:?}"
    );
    let good = runner.enqueue(request("good", 1)).expect("enqueue");
    let good_id = good.id();
    runner.start(good);
    assert_eq!(wait_final(runner.store(), good_id).await.state, State::Done);
}

#[tokio::test]
async fn warnings_are_logged_one_line_each_and_the_job_is_done() {
    let dir = TempDir::new();
    let render: RenderFn = Arc::new(
        |_: &Request, _: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            out.write_all(b"%PDF").map_err(io_failure)?;
            Ok(RenderOutcome {
                pages: 2,
                rows: 70,
                warnings: vec![
                    "12 characters the fonts lack were printed as �".into(),
                    "a value was cut\nto fit its column".into(),
                ],
            })
        },
    );
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(request("t", 2)).expect("enqueue");
    let id = pending.id();
    let logs = capture_warnings();
    runner.start(pending);
    let job = wait_final(runner.store(), id).await;
    assert_eq!(
        (job.state, job.pages_total, job.error),
        (State::Done, 2, None)
    );
    let prefix = format!("job {id}: ");
    let ours: Vec<String> = logs
        .lock()
        .expect("logs")
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    assert_eq!(
        ours,
        [
            "12 characters the fonts lack were printed as �",
            "a value was cut to fit its column"
        ]
    );
}

/// A render that counts how many run at once, holding each for a moment.
fn counting_render(now: Arc<AtomicUsize>, max: Arc<AtomicUsize>) -> RenderFn {
    Arc::new(
        move |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            progress(rows(r), rows(r));
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(outcome(rows(r)))
        },
    )
}

#[tokio::test]
async fn concurrency_is_bounded_by_slots_and_by_the_memory_budget() {
    // In KiB: each render reserves `fixed` plus 1 per page.
    // (slots, fixed, pages per job, budget, expected peak)
    let cases = [
        (2, 0, 1, 100, 2),
        (4, 0, 5, 10, 2),
        (4, 0, 6, 10, 1),
        (1, 0, 1, 100, 1),
        (3, 0, 0, 0, 3),
        (4, 4, 1, 10, 2),
        (4, 10, 0, 25, 2),
        (4, 10, 0, 19, 1),
    ];
    for (slots, fixed, pages, budget, peak) in cases {
        let dir = TempDir::new();
        let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let config = RunnerConfig {
            slots,
            render_memory: fixed * 1024,
            bytes_per_page: 1024,
            memory_budget: budget * 1024,
            ..config()
        };
        let runner = runner(&dir, counting_render(now, Arc::clone(&max)), config);
        let ids: Vec<JobId> = (0..6)
            .map(|i| {
                let pending = runner
                    .enqueue(request(&format!("job {i}"), pages))
                    .expect("enqueue");
                let id = pending.id();
                runner.start(pending);
                id
            })
            .collect();
        for id in ids {
            assert_eq!(wait_final(runner.store(), id).await.state, State::Done);
        }
        let case = (slots, fixed, pages, budget);
        assert_eq!(
            max.load(Ordering::SeqCst),
            peak,
            "peak renders for {case:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_render_past_its_deadline_is_stopped_and_failed() {
    let dir = TempDir::new();
    let (render, mut events) = gated_render(Gate::default());
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(request("slow", 3)).expect("enqueue");
    let id = pending.id();
    runner.start(pending);
    expect_event(&mut events, Event::Started("slow".into())).await;
    tokio::time::advance(Duration::from_secs(29 * 60)).await;
    assert_eq!(
        runner.progress(id).map(|p| p.state),
        Some(State::Running),
        "not yet"
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    expect_event(&mut events, Event::Stopped("slow".into())).await;
    let job = wait_final(runner.store(), id).await;
    assert_eq!(job.state, State::Failed);
    let error = job.error.expect("a message");
    assert!(error.contains("took longer than 30 minutes"), "{error}");
    assert!(!runner.store().pdf_path(id).exists());
    assert!(tmp_files(runner.store()).is_empty());
}

#[tokio::test]
async fn progress_reaches_the_record_about_once_a_second() {
    let dir = TempDir::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let gate = Gate::default();
    let held = gate.clone();
    let render: RenderFn = Arc::new(
        move |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            progress(1, 3);
            let _ = tx.send(1);
            std::thread::sleep(PERSIST_EVERY + Duration::from_millis(100));
            progress(2, 3);
            let _ = tx.send(2);
            while !held.is_open(&r.title) {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(outcome(3))
        },
    );
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(request("t", 3)).expect("enqueue");
    let id = pending.id();
    runner.start(pending);
    assert_eq!(rx.recv().await, Some(1));
    let early = runner.store().load(id).expect("load").expect("record");
    assert_eq!(
        (early.state, early.pages_done),
        (State::Running, 0),
        "not written on every page"
    );
    assert_eq!(rx.recv().await, Some(2));
    let later = runner.store().load(id).expect("load").expect("record");
    assert_eq!(
        (later.state, later.pages_done, later.pages_total),
        (State::Running, 2, 3)
    );
    gate.open_all();
    assert_eq!(wait_final(runner.store(), id).await.state, State::Done);
}

#[tokio::test]
async fn the_last_page_reaches_the_record_at_once_only_when_the_total_is_known() {
    // (total the estimate and the render know, what the record shows while the file is
    // written: pages done and total)
    for (total, recorded) in [(3, (3, 3)), (0, (0, 0))] {
        let dir = TempDir::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = Gate::default();
        let held = gate.clone();
        let render: RenderFn = Arc::new(
            move |r: &Request, progress: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
                progress(1, total);
                progress(3, total);
                let _ = tx.send(());
                // "Writing the file": well under PERSIST_EVERY since the render began.
                while !held.is_open(&r.title) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(outcome(3))
            },
        );
        let estimate: EstimateFn = Arc::new(move |_: &Request| total);
        let runner = runner_with(&dir, render, estimate, config());
        let pending = runner.enqueue(request("t", 3)).expect("enqueue");
        let id = pending.id();
        runner.start(pending);
        assert_eq!(rx.recv().await, Some(()));
        let writing = runner.store().load(id).expect("load").expect("record");
        assert_eq!(
            (writing.state, (writing.pages_done, writing.pages_total)),
            (State::Running, recorded),
            "total {total}"
        );
        gate.open_all();
        let done = wait_final(runner.store(), id).await;
        assert_eq!(
            (done.state, done.pages_done, done.pages_total),
            (State::Done, 3, 3)
        );
    }
}

#[tokio::test]
async fn an_unknown_page_count_shows_done_pages_and_the_record_learns_the_total() {
    let dir = TempDir::new();
    let gate = Gate::default();
    let (render, mut events) = gated_render_with_total(gate.clone(), false);
    let runner = runner_with(&dir, render, estimate_unknown(), config());
    let pending = runner.enqueue(request("counting", 7)).expect("enqueue");
    let id = pending.id();
    let queued = runner.store().load(id).expect("load").expect("record");
    assert_eq!((queued.state, queued.pages_total), (State::Queued, 0));
    runner.start(pending);
    expect_event(&mut events, Event::Started("counting".into())).await;
    wait_until("progress shows page 1 of an unknown total", || {
        runner.progress(id)
            == Some(Progress {
                state: State::Running,
                pages_done: 1,
                pages_total: 0,
            })
    })
    .await;
    gate.open("counting");
    let job = wait_final(runner.store(), id).await;
    assert_eq!(
        (job.state, job.pages_done, job.pages_total),
        (State::Done, 7, 7),
        "{job:?}"
    );
}

#[tokio::test]
async fn a_render_that_grows_past_the_page_cap_is_stopped_and_failed() {
    let dir = TempDir::new();
    let config = RunnerConfig {
        max_pages: 5,
        ..config()
    };
    // The estimate cannot know; the render counts 9 pages.
    let runner = runner_with(&dir, lines_render(false), estimate_unknown(), config);
    let pending = runner
        .enqueue(request("long", 9))
        .expect("accepted: unknown");
    let id = pending.id();
    runner.start(pending);
    let job = wait_final(runner.store(), id).await;
    assert_eq!(job.state, State::Failed, "{job:?}");
    let error = job.error.expect("a message");
    assert!(error.contains("past 5 pages"), "{error}");
    assert!(!runner.store().pdf_path(id).exists());
    assert!(tmp_files(runner.store()).is_empty());
}

#[tokio::test]
async fn drain_waits_for_renders_that_finish_within_the_grace_period() {
    let dir = TempDir::new();
    let gate = Gate::default();
    let (render, mut events) = gated_render(gate.clone());
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(request("quick", 2)).expect("enqueue");
    let id = pending.id();
    runner.start(pending);
    expect_event(&mut events, Event::Started("quick".into())).await;
    let draining = tokio::spawn({
        let runner = runner.clone();
        async move { runner.drain(Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !draining.is_finished(),
        "drain waits for the running render"
    );
    gate.open("quick");
    tokio::time::timeout(Duration::from_secs(10), draining)
        .await
        .expect("drain ends")
        .expect("join");
    assert_eq!(
        runner.store().load(id).expect("load").map(|j| j.state),
        Some(State::Done)
    );
}

#[tokio::test]
async fn drain_past_grace_puts_running_jobs_back_in_the_queue() {
    let dir = TempDir::new();
    let (render, mut events) = gated_render(Gate::default());
    let runner = runner(
        &dir,
        render,
        RunnerConfig {
            slots: 1,
            ..config()
        },
    );
    let running = runner.enqueue(request("running", 2)).expect("enqueue");
    let waiting = runner.enqueue(request("waiting", 2)).expect("enqueue");
    let (running_id, waiting_id) = (running.id(), waiting.id());
    runner.start(running);
    runner.start(waiting);
    expect_event(&mut events, Event::Started("running".into())).await;

    tokio::time::timeout(
        Duration::from_secs(10),
        runner.drain(Duration::from_millis(50)),
    )
    .await
    .expect("drain ends once the render stops");
    expect_event(&mut events, Event::Stopped("running".into())).await;
    assert!(events.try_recv().is_err(), "the waiting job never started");

    let store = Store::open(&dir.0).expect("next process's store");
    for id in [running_id, waiting_id] {
        let job = store.load(id).expect("load").expect("record");
        assert_eq!(job.state, State::Queued, "{job:?}");
        assert_eq!(job.attempts, 0, "a clean stop is not an attempt: {job:?}");
        assert_eq!(job.error, None);
        assert!(
            store.claim(id).expect("claim").is_some(),
            "claim released for the next process"
        );
        assert!(!store.pdf_path(id).exists());
    }
    assert!(tmp_files(&store).is_empty());
    assert_eq!(runner.progress(running_id), None);
}

#[tokio::test]
async fn after_drain_new_jobs_are_recorded_for_another_process_and_nothing_starts_here() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let early = runner
        .enqueue(request("early", 1))
        .expect("enqueue before drain");
    runner.drain(Duration::from_secs(1)).await;
    // A request that arrives on a connection still open: its job is recorded, not refused.
    let late = runner
        .enqueue(request("late", 1))
        .expect("a job submitted while draining is recorded");
    let ids = [early.id(), late.id()];
    runner.start(early);
    runner.start(late);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in ids {
        let job = runner.store().load(id).expect("load").expect("record");
        assert_eq!((job.state, job.attempts), (State::Queued, 0), "{id}");
        assert!(
            runner.store().claim(id).expect("claim").is_some(),
            "{id} is free for the next process"
        );
    }
}

#[tokio::test]
async fn drain_with_nothing_running_returns_at_once() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    tokio::time::timeout(
        Duration::from_secs(1),
        runner.drain(Duration::from_secs(3600)),
    )
    .await
    .expect("nothing to wait for");
}

#[test]
fn human_durations() {
    let cases = [
        (Duration::from_secs(30 * 60), "30 minutes"),
        (Duration::from_secs(60), "1 minute"),
        (Duration::from_secs(7200), "2 hours"),
        (Duration::from_secs(90), "90 seconds"),
        (Duration::from_secs(1), "1 second"),
        (Duration::from_millis(250), "250 milliseconds"),
    ];
    for (d, text) in cases {
        assert_eq!(human(d), text, "{d:?}");
    }
}

#[test]
fn submit_errors_read_well() {
    let cases = [
        (
            SubmitError::TooManyPages {
                pages: 6000,
                max: 5000,
            },
            "6000 pages; at most 5000",
        ),
        (
            SubmitError::Busy {
                retry_after: Duration::from_secs(10),
            },
            "try again in 10 seconds",
        ),
        (
            SubmitError::TooLarge {
                pages: 30_000,
                bytes: 30_000 * 110 * 1024,
                budget: 2 << 30,
            },
            "about 3223 MiB; at most 2048 MiB",
        ),
        (
            SubmitError::TooLarge {
                pages: 0,
                bytes: 64 * MIB,
                budget: 32 * MIB,
            },
            "the report would need about 64 MiB; at most 32 MiB",
        ),
    ];
    for (error, text) in cases {
        assert!(error.to_string().contains(text), "{error} lacks {text:?}");
    }
}
