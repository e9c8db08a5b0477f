//! Runner tests with fake render functions. Shared helpers are `pub(crate)` for the janitor's
//! tests.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use super::*;
use crate::jobs::job::tests::params;
use crate::jobs::test_util::TempDir;

/// Pages = rows: easy to reason about in tests.
pub(crate) fn estimate_rows() -> EstimateFn {
    Arc::new(|p: &Params| p.rows)
}

pub(crate) fn config() -> RunnerConfig {
    RunnerConfig {
        slots: 2,
        janitor_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

pub(crate) fn runner(dir: &TempDir, render: RenderFn, config: RunnerConfig) -> Runner {
    let store = Store::open(&dir.0).expect("open store");
    Runner::new(store, render, estimate_rows(), config)
}

/// Writes one line per page and reports each page.
pub(crate) fn pages_render() -> RenderFn {
    Arc::new(
        |p: &Params, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            for page in 1..=p.rows {
                writeln!(out, "page {page}").map_err(|e| e.to_string())?;
                if !progress(page, p.rows) {
                    return Err("stopped".into());
                }
            }
            Ok(RenderOutcome { pages: p.rows })
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
/// or progress says stop (then fails with "stopped").
pub(crate) fn gated_render(gate: Gate) -> (RenderFn, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let render: RenderFn = Arc::new(
        move |p: &Params, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            let _ = tx.send(Event::Started(p.title.clone()));
            out.write_all(b"%PDF-1.7 first half")
                .map_err(|e| e.to_string())?;
            loop {
                if !progress(1, p.rows) {
                    let _ = tx.send(Event::Stopped(p.title.clone()));
                    return Err("stopped".into());
                }
                if gate.is_open(&p.title) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            out.write_all(b" second half %%EOF")
                .map_err(|e| e.to_string())?;
            Ok(RenderOutcome { pages: p.rows })
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
    let pending = runner.enqueue(params("report", 4)).expect("enqueue");
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
    let config = RunnerConfig {
        max_pages: 100,
        bytes_per_page: 1024,
        memory_budget: 50 * 1024,
        queue_limit: 10,
        ..config()
    };
    let runner = runner(&dir, pages_render(), config);
    type Check = fn(&SubmitError) -> bool;
    let cases: Vec<(&str, Params, Check)> = vec![
        ("too many pages", params("t", 101), |e| {
            matches!(
                e,
                SubmitError::TooManyPages {
                    pages: 101,
                    max: 100
                }
            )
        }),
        ("over the memory budget", params("t", 51), |e| {
            matches!(
                e,
                SubmitError::TooLarge {
                    pages: 51,
                    bytes: 52_224,
                    budget: 51_200
                }
            )
        }),
        ("title too long", params(&"x".repeat(201), 1), |e| {
            matches!(e, SubmitError::Invalid { .. })
        }),
    ];
    for (name, p, check) in cases {
        match runner.enqueue(p) {
            Err(e) => assert!(check(&e), "{name}: wrong error {e:?}"),
            Ok(p) => panic!("{name}: accepted as {:?}", p.id()),
        }
    }
    assert!(
        runner.store().scan().expect("scan").is_empty(),
        "refused jobs leave no record"
    );
    let fits = runner
        .enqueue(params("t", 50))
        .expect("exactly the budget fits");
    let at_cap = runner.enqueue(params("t", 100));
    assert!(
        matches!(at_cap, Err(SubmitError::TooLarge { .. })),
        "{at_cap:?}"
    );
    drop(fits);
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
    let a = runner.enqueue(params("a", 1)).expect("first");
    let _b = runner.enqueue(params("b", 1)).expect("second");
    match runner.enqueue(params("c", 1)) {
        Err(SubmitError::Busy { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected Busy, got {other:?}"),
    }
    drop(a);
    runner
        .enqueue(params("c", 1))
        .expect("a place is free again");
}

#[test]
fn a_pending_job_holds_its_claim_and_dropping_it_leaves_it_queued() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let pending = runner.enqueue(params("t", 1)).expect("enqueue");
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
    let pending = runner.enqueue(params("held", 10)).expect("enqueue");
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
async fn a_failing_render_marks_the_job_failed_with_its_message() {
    let dir = TempDir::new();
    let render: RenderFn = Arc::new(
        |_: &Params, progress: &mut dyn FnMut(u32, u32) -> bool, out: &mut File| {
            out.write_all(b"%PDF partial").map_err(|e| e.to_string())?;
            progress(1, 2);
            Err("the font is missing".into())
        },
    );
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(params("t", 2)).expect("enqueue");
    let id = pending.id();
    runner.start(pending);
    let job = wait_final(runner.store(), id).await;
    assert_eq!(job.state, State::Failed);
    let error = job.error.expect("a message");
    assert!(error.contains("the font is missing"), "{error}");
    assert!(!runner.store().pdf_path(id).exists());
    assert!(tmp_files(runner.store()).is_empty(), "tmp file removed");
    assert_eq!(job.size_bytes, None);
}

#[tokio::test]
async fn a_panicking_render_marks_the_job_failed_and_the_runner_lives_on() {
    let dir = TempDir::new();
    let render: RenderFn = Arc::new(
        |p: &Params, _: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            if p.title == "bad" {
                panic!("renderer bug");
            }
            Ok(RenderOutcome { pages: 1 })
        },
    );
    let runner = runner(&dir, render, config());
    let bad = runner.enqueue(params("bad", 1)).expect("enqueue");
    let bad_id = bad.id();
    runner.start(bad);
    let job = wait_final(runner.store(), bad_id).await;
    assert_eq!(job.state, State::Failed);
    assert!(
        job.error.as_deref().unwrap_or("").contains("crashed"),
        "{job:?}"
    );
    let good = runner.enqueue(params("good", 1)).expect("enqueue");
    let good_id = good.id();
    runner.start(good);
    assert_eq!(wait_final(runner.store(), good_id).await.state, State::Done);
}

/// A render that counts how many run at once, holding each for a moment.
fn counting_render(now: Arc<AtomicUsize>, max: Arc<AtomicUsize>) -> RenderFn {
    Arc::new(
        move |p: &Params, progress: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            progress(p.rows, p.rows);
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(RenderOutcome { pages: p.rows })
        },
    )
}

#[tokio::test]
async fn concurrency_is_bounded_by_slots_and_by_the_memory_budget() {
    // (slots, pages per job, budget in pages, expected peak)
    let cases = [
        (2, 1, 100, 2),
        (4, 5, 10, 2),
        (4, 6, 10, 1),
        (1, 1, 100, 1),
        (3, 0, 0, 3),
    ];
    for (slots, pages, budget_pages, peak) in cases {
        let dir = TempDir::new();
        let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let config = RunnerConfig {
            slots,
            bytes_per_page: 1024,
            memory_budget: budget_pages * 1024,
            ..config()
        };
        let runner = runner(&dir, counting_render(now, Arc::clone(&max)), config);
        let ids: Vec<JobId> = (0..6)
            .map(|i| {
                let pending = runner
                    .enqueue(params(&format!("job {i}"), pages))
                    .expect("enqueue");
                let id = pending.id();
                runner.start(pending);
                id
            })
            .collect();
        for id in ids {
            assert_eq!(wait_final(runner.store(), id).await.state, State::Done);
        }
        let case = (slots, pages, budget_pages);
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
    let pending = runner.enqueue(params("slow", 3)).expect("enqueue");
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
        move |p: &Params, progress: &mut dyn FnMut(u32, u32) -> bool, _: &mut File| {
            progress(1, 3);
            let _ = tx.send(1);
            std::thread::sleep(PERSIST_EVERY + Duration::from_millis(100));
            progress(2, 3);
            let _ = tx.send(2);
            while !held.is_open(&p.title) {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(RenderOutcome { pages: 3 })
        },
    );
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(params("t", 3)).expect("enqueue");
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
async fn drain_waits_for_renders_that_finish_within_the_grace_period() {
    let dir = TempDir::new();
    let gate = Gate::default();
    let (render, mut events) = gated_render(gate.clone());
    let runner = runner(&dir, render, config());
    let pending = runner.enqueue(params("quick", 2)).expect("enqueue");
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
    let running = runner.enqueue(params("running", 2)).expect("enqueue");
    let waiting = runner.enqueue(params("waiting", 2)).expect("enqueue");
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
async fn after_drain_nothing_new_is_accepted_or_started() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let early = runner
        .enqueue(params("early", 1))
        .expect("enqueue before drain");
    let id = early.id();
    runner.drain(Duration::from_secs(1)).await;
    assert!(matches!(
        runner.enqueue(params("late", 1)),
        Err(SubmitError::Busy { .. })
    ));
    runner.start(early);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let job = runner.store().load(id).expect("load").expect("record");
    assert_eq!((job.state, job.attempts), (State::Queued, 0));
    assert!(runner.store().claim(id).expect("claim").is_some());
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
    ];
    for (error, text) in cases {
        assert!(error.to_string().contains(text), "{error} lacks {text:?}");
    }
}
