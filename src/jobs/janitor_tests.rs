//! Janitor tests: recovery of orphaned jobs, the attempt limit, expiry, corrupt records.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::*;
use crate::jobs::job::tests::request;
use crate::jobs::runner::tests::{
    Event, Gate, config, gated_render, pages_render, runner, wait_final, wait_until,
};
use crate::jobs::test_util::{TempDir, capture_warnings};
use crate::jobs::{JobCounts, RenderFn, RunnerConfig, State, Store};

const HOUR_MS: u64 = 60 * 60 * 1000;

/// Writes a record as a worker that died mid-render would have left it: `attempts` renders
/// begun and none ended (0: queued, never started), the last one beside other renders.
fn orphan(store: &Store, title: &str, attempts: u32) -> Job {
    orphan_with(store, title, attempts, |_| {})
}

/// `orphan`, with the record changed by `change` before it is written.
fn orphan_with(store: &Store, title: &str, attempts: u32, change: impl FnOnce(&mut Job)) -> Job {
    let mut job = Job::new(request(title, 3), 3);
    for _ in 0..attempts {
        job.begin_attempt(3, false);
    }
    change(&mut job);
    store.create(&job).expect("create");
    if attempts > 0 {
        fs::write(store.pdf_tmp_path(job.id), b"%PDF half").expect("leftover tmp");
    }
    job
}

fn finished(store: &Store, state: State, age_ms: u64) -> Job {
    let mut job = Job::new(request("old", 1), 1);
    job.begin_attempt(1, false);
    if state == State::Done {
        job.complete(1, 4, 10);
        fs::write(store.pdf_path(job.id), b"%PDF").expect("pdf");
    } else {
        job.fail("it broke");
    }
    job.finished_ms = Some(now_ms() - age_ms);
    store.create(&job).expect("create");
    job
}

/// Counts renders, so tests can say "never rendered".
fn counted(render: RenderFn) -> (RenderFn, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let wrapped: RenderFn = Arc::new(move |p, progress, out| {
        seen.fetch_add(1, Ordering::SeqCst);
        render(p, progress, out)
    });
    (wrapped, count)
}

#[tokio::test]
async fn a_job_whose_worker_died_is_picked_up_once_its_claim_is_free() {
    let dir = TempDir::new();
    // "Process A": its store, its claim, a half-done job.
    let store_a = Store::open(&dir.0).expect("store a");
    let job = orphan(&store_a, "orphan", 1);
    let claim_a = store_a.claim(job.id).expect("claim").expect("free");

    // "Process B" on the same data dir.
    let (render, renders) = counted(pages_render());
    let runner_b = runner(&dir, render, config());
    let (stop, stopped) = oneshot::channel::<()>();
    let janitor = tokio::spawn({
        let runner_b = runner_b.clone();
        async move {
            runner_b
                .run_janitor(async { stopped.await.unwrap_or(()) })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(renders.load(Ordering::SeqCst), 0, "A still holds the claim");
    assert_eq!(
        store_a.load(job.id).expect("load"),
        Some(job.clone()),
        "untouched"
    );

    drop(claim_a); // A dies: the kernel drops its flock.
    let done = wait_final(runner_b.store(), job.id).await;
    assert_eq!(done.state, State::Done, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(
        fs::read_to_string(runner_b.store().pdf_path(job.id)).expect("pdf"),
        "page 1\npage 2\npage 3\n"
    );
    assert!(
        !runner_b.store().pdf_tmp_path(job.id).exists(),
        "A's leftover replaced and renamed"
    );
    assert_eq!(renders.load(Ordering::SeqCst), 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), janitor)
        .await
        .expect("janitor stops")
        .expect("join");
}

#[tokio::test(start_paused = true)]
async fn the_first_sweep_runs_at_start() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let job = orphan(&store, "left by a restart", 0);
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            janitor_interval: Duration::from_secs(3600),
            ..config()
        },
    );
    let janitor = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run_janitor(std::future::pending()).await }
    });
    assert_eq!(wait_final(&store, job.id).await.state, State::Done);
    runner.drain(Duration::from_secs(1)).await;
    tokio::time::timeout(Duration::from_secs(5), janitor)
        .await
        .expect("drain stops the janitor")
        .expect("join");
}

#[test]
fn two_workers_sweeping_at_once_start_an_orphan_only_once() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let job = orphan(&store, "contested", 1);
    let a = runner(&dir, pages_render(), config());
    let b = runner(&dir, pages_render(), config());
    let found_a = a.inner.sweep();
    let found_b = b.inner.sweep();
    assert_eq!(
        found_a.iter().map(Pending::id).collect::<Vec<_>>(),
        vec![job.id]
    );
    assert!(
        found_b.is_empty(),
        "B must not get a job A holds: {found_b:?}"
    );
    drop(found_a);
    let found_b = b.inner.sweep();
    assert_eq!(found_b.len(), 1, "free again once A lets go");
}

#[test]
fn a_death_counts_against_a_job_only_when_it_rendered_alone() {
    // (crashes and bystander deaths before, the dying render ran alone,
    //  expected: failed, crashes, bystander deaths after)
    let cases = [
        (0, 0, false, false, 0, 1),
        (0, 5, false, false, 0, 6),
        (1, 0, true, false, 2, 0),
        (2, 0, true, true, 3, 0),
        (2, 0, false, false, 2, 1),
        (
            0,
            MAX_BYSTANDER_CRASHES - 1,
            false,
            true,
            0,
            MAX_BYSTANDER_CRASHES,
        ),
    ];
    for (crashes, bystander, alone, fail, crashes_after, bystander_after) in cases {
        let dir = TempDir::new();
        let store = Store::open(&dir.0).expect("store");
        let job = orphan_with(&store, "maybe poison", 1 + crashes + bystander, |job| {
            job.crashes = crashes;
            job.bystander_crashes = bystander;
            job.alone = alone;
        });
        let (render, renders) = counted(pages_render());
        let runner = runner(
            &dir,
            render,
            RunnerConfig {
                max_attempts: 3,
                ..config()
            },
        );
        let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
        let now = store.load(job.id).expect("load").expect("record");
        let case = format!("{:?}: {now:?}", (crashes, bystander, alone));
        assert_eq!(
            (now.crashes, now.bystander_crashes),
            (crashes_after, bystander_after),
            "{case}"
        );
        if fail {
            assert_eq!(now.state, State::Failed, "{case}");
            let error = now.error.clone().unwrap_or_default();
            let want = if alone {
                "failed repeatedly"
            } else {
                "interrupted"
            };
            assert!(error.contains(want), "{case}");
            assert!(found.is_empty(), "{case}");
        } else {
            assert_eq!(
                now.state,
                State::Queued,
                "settled, left for a retry: {case}"
            );
            assert_eq!(found, vec![job.id], "{case}");
            // Settled once: a second sweep finds the job queued and counts nothing more.
            runner.inner.sweep();
            let again = store.load(job.id).expect("load").expect("record");
            assert_eq!(
                (again.crashes, again.bystander_crashes),
                (crashes_after, bystander_after),
                "{case}"
            );
        }
        assert_eq!(renders.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn a_sweep_claims_only_as_many_jobs_as_there_are_free_slots_oldest_first() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let jobs: Vec<Job> = (0..5u64)
        .map(|i| orphan_with(&store, "queued", 0, |job| job.created_ms = 1_000 + i))
        .collect();
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            slots: 2,
            ..config()
        },
    );
    // A job of its own, enqueued from a POST, takes a slot: it is never refused for that.
    let own = runner.enqueue(request("own", 1)).expect("enqueue");
    let found = runner.inner.sweep();
    assert_eq!(
        found.iter().map(Pending::id).collect::<Vec<_>>(),
        vec![jobs[0].id],
        "one free slot, the oldest job"
    );
    let other = Store::open(&dir.0).expect("other worker");
    for job in &jobs[1..] {
        assert!(
            other.claim(job.id).expect("claim").is_some(),
            "left free for other workers"
        );
    }
    assert!(runner.inner.sweep().is_empty(), "no slot free");
    // Still, POSTs are accepted beyond the slots.
    let more: Vec<Pending> = (0..3)
        .map(|_| runner.enqueue(request("post", 1)).expect("enqueue"))
        .collect();
    drop((own, more));
    drop(found);
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![jobs[0].id, jobs[1].id]);
}

#[test]
fn a_job_that_witnessed_a_death_takes_every_slot() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let suspect = orphan_with(&store, "suspect", 1, |job| job.created_ms = 1);
    let _plain = orphan_with(&store, "plain", 0, |job| job.created_ms = 2);
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            slots: 3,
            ..config()
        },
    );
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![suspect.id], "nothing beside a suspect");
}

#[tokio::test]
async fn a_suspect_renders_alone_and_its_record_says_so() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let suspect = orphan(&store, "suspect", 1);
    let gate = Gate::default();
    let (render, mut events) = gated_render(gate.clone());
    let runner = runner(
        &dir,
        render,
        RunnerConfig {
            slots: 2,
            ..config()
        },
    );
    for pending in runner.inner.sweep() {
        runner.start(pending);
    }
    assert_eq!(events.recv().await, Some(Event::Started("suspect".into())));
    let running = store.load(suspect.id).expect("load").expect("record");
    assert!(running.alone, "{running:?}");
    // A POST is accepted, but waits until the suspect is done.
    let post = runner.enqueue(request("post", 3)).expect("enqueue");
    let post_id = post.id();
    runner.start(post);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        events.try_recv().is_err(),
        "nothing starts beside a suspect"
    );
    gate.open_all();
    assert_eq!(wait_final(&store, suspect.id).await.state, State::Done);
    let post = wait_final(&store, post_id).await;
    assert_eq!(post.state, State::Done);
    assert!(!post.alone, "an ordinary job shares the slots");
}

#[tokio::test]
async fn a_job_waiting_for_a_slot_can_be_taken_by_a_worker_with_room() {
    let dir = TempDir::new();
    let gate = Gate::default();
    let (render_a, mut events_a) = gated_render(gate.clone());
    let a = runner(
        &dir,
        render_a,
        RunnerConfig {
            slots: 1,
            ..config()
        },
    );
    let first = a.enqueue(request("first", 3)).expect("enqueue");
    let first_id = first.id();
    a.start(first);
    assert_eq!(events_a.recv().await, Some(Event::Started("first".into())));
    let second = a
        .enqueue(request("second", 3))
        .expect("accepted though busy");
    let second_id = second.id();
    a.start(second);
    let (render_b, renders_b) = counted(pages_render());
    let b = runner(&dir, render_b, config());
    let mut taken = Vec::new();
    wait_until("B takes the waiting job", || {
        taken.extend(b.inner.sweep());
        !taken.is_empty()
    })
    .await;
    assert_eq!(
        taken.iter().map(Pending::id).collect::<Vec<_>>(),
        vec![second_id]
    );
    assert_eq!(a.progress(second_id), None, "A no longer speaks for it");
    for pending in taken {
        b.start(pending);
    }
    assert_eq!(wait_final(b.store(), second_id).await.state, State::Done);
    assert_eq!(renders_b.load(Ordering::SeqCst), 1);
    gate.open_all();
    assert_eq!(wait_final(a.store(), first_id).await.state, State::Done);
    wait_until("A lets go of both", || {
        a.progress(first_id).is_none() && a.inner.free_slots() == 1
    })
    .await;
    assert!(
        events_a.try_recv().is_err(),
        "A did not render the second job again"
    );
    let second = a.store().load(second_id).expect("load").expect("record");
    assert_eq!(second.attempts, 1, "{second:?}");
}

#[test]
fn old_finished_jobs_expire_and_everything_else_stays() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            retention: Duration::from_secs(24 * 3600),
            ..config()
        },
    );
    // (job, expected to be removed)
    let cases = [
        (finished(&store, State::Done, 25 * HOUR_MS), true),
        (finished(&store, State::Failed, 25 * HOUR_MS), true),
        (finished(&store, State::Done, HOUR_MS), false),
        (finished(&store, State::Failed, 0), false),
    ];
    let held = finished(&store, State::Done, 48 * HOUR_MS);
    let claim = store.claim(held.id).expect("claim").expect("free");
    let found = runner.inner.sweep();
    assert!(found.is_empty());
    for (job, removed) in &cases {
        assert_eq!(
            store.load(job.id).expect("load").is_none(),
            *removed,
            "{:?} {:?}",
            job.state,
            job.finished_ms
        );
        if job.state == State::Done {
            assert_eq!(store.pdf_path(job.id).exists(), !removed);
        }
    }
    assert!(
        store.load(held.id).expect("load").is_some(),
        "skipped while someone holds it"
    );
    drop(claim);
    runner.inner.sweep();
    assert!(
        store.load(held.id).expect("load").is_none(),
        "removed on a later sweep"
    );
}

#[test]
fn a_corrupt_record_is_quarantined_and_the_good_job_still_found() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let bad = JobId::new();
    let jobs_dir = store.jobs_dir().to_path_buf();
    fs::write(jobs_dir.join(format!("{bad}.json")), b"{ not json").expect("write");
    let good = orphan(&store, "fine", 0);
    let runner = runner(&dir, pages_render(), config());
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![good.id], "the good job is still found");
    assert!(!jobs_dir.join(format!("{bad}.json")).exists(), "moved out");
    let kept = dir.0.join("quarantine").join(format!("{bad}.json"));
    assert_eq!(fs::read(&kept).expect("kept for a person"), b"{ not json");
    assert_eq!(store.load(bad).expect("gone"), None, "answers as no job");
    runner.inner.sweep();
    assert_eq!(runner.inner.index.lock().expect("index").corrupt_count(), 0);
}

#[tokio::test]
async fn the_janitor_respects_the_queue_limit() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let first = orphan(&store, "first", 0);
    let second = orphan(&store, "second", 0);
    let gate = Gate::default();
    let (render, mut events) = gated_render(gate.clone());
    let runner = runner(
        &dir,
        render,
        RunnerConfig {
            queue_limit: 1,
            ..config()
        },
    );
    let found = runner.inner.sweep();
    assert_eq!(found.len(), 1, "one place in the queue");
    let taken = found[0].id();
    let other = if taken == first.id {
        second.id
    } else {
        first.id
    };
    assert!(
        store.claim(other).expect("claim").is_some(),
        "the other is left free for other workers"
    );
    for pending in found {
        runner.start(pending);
    }
    let title = match events.recv().await {
        Some(Event::Started(title)) => title,
        other => panic!("expected a start, got {other:?}"),
    };
    assert!(runner.inner.sweep().is_empty(), "still full");
    gate.open(&title);
    assert_eq!(wait_final(&store, taken).await.state, State::Done);
    wait_until("the place frees", || runner.progress(taken).is_none()).await;
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![other]);
}

#[tokio::test]
async fn a_ready_shutdown_ends_the_janitor() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    tokio::time::timeout(Duration::from_secs(5), runner.run_janitor(async {}))
        .await
        .expect("returns when shutdown fires");
}

#[tokio::test]
async fn recovered_jobs_over_this_workers_limits_fail_instead_of_running() {
    // A record written by a worker with a larger page cap.
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let big = Job::new(request("huge", 500), 500);
    store.create(&big).expect("create");
    let (render, renders) = counted(pages_render());
    let runner = runner(
        &dir,
        render,
        RunnerConfig {
            max_pages: 100,
            ..config()
        },
    );
    for pending in runner.inner.sweep() {
        runner.start(pending);
    }
    let job = wait_final(&store, big.id).await;
    assert_eq!(job.state, State::Failed);
    assert!(
        job.error.as_deref().unwrap_or("").contains("at most 100"),
        "{job:?}"
    );
    assert_eq!(renders.load(Ordering::SeqCst), 0);
}

/// Writes a record as `Store::save` would, without the fsyncs: for tests that need thousands.
fn write_quickly(store: &Store, job: &Job) {
    let bytes = serde_json::to_vec_pretty(job).expect("serialize");
    fs::write(store.jobs_dir().join(format!("{}.json", job.id)), bytes).expect("write record");
}

/// A finished record, `age_ms` after its end, written with `write_quickly`.
fn finished_quickly(store: &Store, state: State, age_ms: u64) -> Job {
    let mut job = Job::new(request("archived", 1), 1);
    job.begin_attempt(1, false);
    if state == State::Done {
        job.complete(1, 4, 10);
    } else {
        job.fail("it broke");
    }
    job.finished_ms = Some(now_ms() - age_ms);
    write_quickly(store, &job);
    job
}

/// Sets the jobs directory's mtime an hour back, as if nothing had changed in it for an hour,
/// so that the janitor may trust it (a fresh mtime is always listed again).
fn settle(store: &Store) {
    let dir = fs::File::open(store.jobs_dir()).expect("open jobs dir");
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    dir.set_modified(past).expect("set mtime");
}

/// (records read, directory listings) by the runner's store during `f`.
fn reads_during<T>(store: &Store, f: impl FnOnce() -> T) -> ((usize, usize), T) {
    let (loads, scans) = (store.loads(), store.scans());
    let out = f();
    ((store.loads() - loads, store.scans() - scans), out)
}

fn counts(queued: u64, running: u64, done: u64, failed: u64) -> JobCounts {
    JobCounts {
        queued,
        running,
        done,
        failed,
        cancelled: 0,
    }
}

#[test]
fn an_idle_sweep_over_thousands_of_finished_records_reads_none_of_them() {
    let dir = TempDir::new();
    let other = Store::open(&dir.0).expect("another worker's store");
    for i in 0..3000 {
        let state = if i % 3 == 0 {
            State::Failed
        } else {
            State::Done
        };
        finished_quickly(&other, state, HOUR_MS);
    }
    let waiting = orphan_with(&other, "waits for a slot", 0, |_| {});
    let runner = runner(&dir, pages_render(), config());
    let store = runner.store().clone();
    // Whoever holds the claim keeps the job queued: it is read on every sweep, as work is.
    let claim = other.claim(waiting.id).expect("claim").expect("free");

    let (reads, found) = reads_during(&store, || runner.inner.sweep());
    assert!(found.is_empty());
    assert_eq!(reads, (3001, 1), "the first sweep reads everything once");
    assert_eq!(runner.job_counts(), counts(1, 0, 2000, 1000));

    settle(&other);
    let (reads, _) = reads_during(&store, || runner.inner.sweep());
    assert_eq!(
        reads,
        (1, 1),
        "listed again (the stamp changed), no record read again"
    );
    for _ in 0..3 {
        let (reads, _) = reads_during(&store, || runner.inner.sweep());
        assert_eq!(reads, (1, 0), "only the unfinished job, no listing");
    }
    assert_eq!(runner.job_counts(), counts(1, 0, 2000, 1000));
    drop(claim);
}

#[test]
fn a_record_another_worker_writes_after_a_sweep_is_found_by_the_next() {
    let dir = TempDir::new();
    let other = Store::open(&dir.0).expect("another worker's store");
    for _ in 0..50 {
        finished_quickly(&other, State::Done, HOUR_MS);
    }
    let runner = runner(&dir, pages_render(), config());
    let store = runner.store().clone();
    settle(&other);
    assert!(runner.inner.sweep().is_empty());
    let (reads, _) = reads_during(&store, || runner.inner.sweep());
    assert_eq!(reads, (0, 0), "nothing changed, nothing read");

    // Another worker takes a POST and dies before it starts it.
    let job = orphan(&other, "new elsewhere", 0);
    let (reads, found) = reads_during(&store, || runner.inner.sweep());
    assert_eq!(
        found.iter().map(Pending::id).collect::<Vec<_>>(),
        vec![job.id]
    );
    assert_eq!(reads.1, 1, "the new stamp made it list the directory");
    assert_eq!(
        reads.0, 2,
        "the new record read (and once more when claimed), no other"
    );
}

#[test]
fn a_change_in_the_same_instant_as_a_listing_is_not_missed() {
    let dir = TempDir::new();
    let other = Store::open(&dir.0).expect("another worker's store");
    let runner = runner(&dir, pages_render(), config());
    // The directory changed just now: a record written in the same tick of the file system's
    // clock would leave the same mtime, so that listing is not trusted.
    finished_quickly(&other, State::Done, HOUR_MS);
    runner.inner.sweep();
    let stamp = other.records_stamp().expect("stamp");
    let job = orphan(&other, "same tick", 0);
    // Put the mtime back to what the first listing saw, as a coarse clock would have.
    fs::File::open(other.jobs_dir())
        .expect("open jobs dir")
        .set_modified(stamp.modified())
        .expect("set mtime");
    assert_eq!(other.records_stamp().expect("stamp"), stamp);
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![job.id], "listed again all the same");
}

#[test]
fn a_record_another_worker_removes_leaves_the_counts() {
    let dir = TempDir::new();
    let other = Store::open(&dir.0).expect("another worker's store");
    let jobs: Vec<Job> = (0..3)
        .map(|_| finished_quickly(&other, State::Done, HOUR_MS))
        .collect();
    let runner = runner(&dir, pages_render(), config());
    settle(&other);
    runner.inner.sweep();
    assert_eq!(runner.job_counts(), counts(0, 0, 3, 0));
    other
        .remove(jobs[1].id)
        .expect("removed by the other worker's janitor");
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    assert_eq!(reads, (0, 1), "listed, nothing read");
    assert_eq!(runner.job_counts(), counts(0, 0, 2, 0));
}

#[test]
fn a_finished_job_expires_when_due_without_its_record_being_read_again() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let runner = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            retention: Duration::from_millis(400),
            ..config()
        },
    );
    let job = finished(&store, State::Done, 0);
    // Its record says it finished a minute from now, so it outlives the test.
    let mut kept = Job::new(request("kept", 1), 1);
    kept.fail("it broke");
    kept.finished_ms = Some(now_ms() + 60_000);
    store.create(&kept).expect("create");
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    assert_eq!(reads.0, 2);
    assert_eq!(runner.job_counts(), counts(0, 0, 1, 1));
    assert!(store.pdf_path(job.id).exists(), "not yet");

    std::thread::sleep(Duration::from_millis(500));
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    // Chosen by its expiry instant alone; the removal reads the record once to find the
    // keys that name it (idempotency, reuse), which go with it.
    assert_eq!(reads.0, 1, "removed by its expiry instant alone");
    assert_eq!(store.load(job.id).expect("load"), None);
    assert!(!store.pdf_path(job.id).exists(), "its PDF too");
    assert!(store.load(kept.id).expect("load").is_some());
    assert_eq!(runner.job_counts(), counts(0, 0, 0, 1));
}

#[test]
fn a_job_that_ends_here_is_counted_as_finished_after_one_more_read() {
    let dir = TempDir::new();
    let runner = runner(&dir, pages_render(), config());
    let pending = runner.enqueue(request("own", 1)).expect("enqueue");
    let id = pending.id();
    assert!(runner.inner.sweep().is_empty());
    assert_eq!(
        runner.job_counts(),
        counts(1, 0, 0, 0),
        "live here, counted once"
    );
    // Finished here (as `RunCtx::run` would), then let go.
    let mut job = pending.job().clone();
    job.begin_attempt(1, false);
    job.complete(1, 4, 10);
    runner.store().save(&job).expect("save");
    drop(pending);
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    assert_eq!(reads.0, 1);
    assert_eq!(runner.job_counts(), counts(0, 0, 1, 0));
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    assert_eq!(reads.0, 0, "{id} is not read again");
}

#[test]
fn a_corrupt_record_is_reported_once_and_never_read_again() {
    let logs = capture_warnings();
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let bad = orphan(&store, "to be broken", 0);
    let path = store.jobs_dir().join(format!("{}.json", bad.id));
    fs::write(&path, b"{ not json").expect("break it");
    let runner = runner(&dir, pages_render(), config());
    let reported = || {
        logs.lock()
            .expect("logs")
            .iter()
            .filter(|l| l.contains(&bad.id.to_string()))
            .count()
    };
    let (reads, found) = reads_during(runner.store(), || runner.inner.sweep());
    assert!(found.is_empty());
    assert_eq!(reads.0, 1);
    for _ in 0..3 {
        let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
        assert_eq!(reads.0, 0, "not read on every sweep");
    }
    runner.inner.index.lock().expect("index").expire_recheck();
    let (reads, _) = reads_during(runner.store(), || runner.inner.sweep());
    assert_eq!(
        reads,
        (0, 1),
        "the recheck lists, and it is not there to read"
    );
    assert_eq!(reported(), 1, "reported once");

    // An operator repairs it and puts it back (atomically, as the store writes).
    let tmp = store.jobs_dir().join("repair.tmp");
    fs::write(&tmp, serde_json::to_vec(&bad).expect("serialize")).expect("write");
    fs::rename(&tmp, &path).expect("rename");
    runner.inner.index.lock().expect("index").expire_recheck();
    let found: Vec<JobId> = runner.inner.sweep().iter().map(Pending::id).collect();
    assert_eq!(found, vec![bad.id], "found at the recheck once repaired");
    assert_eq!(reported(), 1);
}

/// PDFs, partial PDFs and lock files that no record names go once they are older than the
/// retention; the files of recorded jobs, and young orphans, stay.
#[test]
fn files_no_record_names_are_removed_after_the_retention() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0).expect("store");
    let lost = JobId::new();
    let orphans = [
        store.pdf_path(lost),
        store.pdf_tmp_path(lost),
        store.jobs_dir().join(format!("{lost}.lock")),
    ];
    for path in &orphans {
        fs::write(path, b"left over").expect("write");
    }
    let kept = finished(&store, State::Done, 0);
    let stranger = dir.0.join("files").join("notes.txt");
    fs::write(&stranger, b"an operator's").expect("write");
    let patient = runner(&dir, pages_render(), config());
    assert_eq!(
        patient.inner.remove_orphans(),
        0,
        "young orphans stay (24 h retention)"
    );
    let strict = runner(
        &dir,
        pages_render(),
        RunnerConfig {
            retention: Duration::ZERO,
            ..config()
        },
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(strict.inner.remove_orphans(), orphans.len());
    for path in &orphans {
        assert!(!path.exists(), "{} removed", path.display());
    }
    assert!(
        store.pdf_path(kept.id).exists(),
        "a recorded job's PDF stays"
    );
    assert!(store.load(kept.id).expect("load").is_some());
    assert!(
        stranger.exists(),
        "a file that is no job's is not ours to remove"
    );
}
