//! Watchers of jobs: the Server-Sent Events streams of `/jobs/<id>/events`.
//!
//! However many people watch one job, the process looks at that job once per tick: the first
//! watcher starts a *poller* task that reads the job's progress (live, or from its record
//! when another worker renders it) and publishes it on a `watch` channel; every stream of that
//! job waits on the channel and writes only when the value changes. The poller ends when the
//! job is final or when its last watcher has gone. A quiet stream costs one task, one channel
//! receiver and the FastCGI connection that carries it: no timer per stream but its deadline,
//! no file reads.
//!
//! Streams are capped (`max_streams`, below the FastCGI connection ceiling), so watchers can
//! never take the connections that pages need. A watcher beyond the cap is not refused: it
//! gets the current progress once and `retry:`, and its browser asks again after that delay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::jobs::{Job, JobId, Runner, State};

/// How often a poller looks at its job.
pub const TICK: Duration = Duration::from_millis(500);
/// What a watcher beyond the cap is told to wait before it asks again (the SSE `retry:` field,
/// in milliseconds); pages fall back to reloading if the stream fails outright.
pub const BUSY_RETRY_MS: u64 = 10_000;
/// The reconnection delay every admitted stream announces (`retry:`, milliseconds).
pub const RETRY_MS: u64 = 3_000;
/// A comment line every this often keeps a quiet stream (a queued job) from looking dead to
/// proxies and browsers, unless told otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// One published state of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The event's `id:`, which a reconnecting browser sends back as `Last-Event-ID`: the
    /// state and progress it stands for, so an unchanged job is not sent again.
    pub id: Arc<str>,
    /// The whole event (`id:`, `event:`, `data:`), as every stream of the job writes it:
    /// `progress` while the job is queued or running, then one terminal event, `done` or
    /// `failed`.
    pub event: Arc<[u8]>,
    /// Done or failed: nothing more will come.
    pub is_final: bool,
}

impl Snapshot {
    fn new(state: State, done: u32, total: u32, json: &str) -> Snapshot {
        let id = format!("{}-{done}-{total}", state.as_str());
        let kind = if state.is_final() {
            state.as_str()
        } else {
            "progress"
        };
        Snapshot {
            event: format!("id: {id}\nevent: {kind}\ndata: {json}\n\n")
                .into_bytes()
                .into(),
            id: id.into(),
            is_final: state.is_final(),
        }
    }
}

/// Streams of one job do not all write in the same instant: stream `n` waits
/// `(n % PHASES) * TICK / PHASES` after a change, so a job with thousands of watchers sends
/// its update in small batches over one tick instead of one burst that pages wait behind.
pub const PHASES: u32 = 10;

/// What a poller publishes: nothing yet, the job's state, or that the record is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Pending,
    Job(Snapshot),
    Gone,
}

/// Every watched job of this process, and the count of open streams.
pub struct Watchers {
    runner: Runner,
    jobs: Arc<Mutex<HashMap<JobId, watch::Receiver<Published>>>>,
    open: Arc<AtomicUsize>,
    max_streams: usize,
    /// Streams admitted so far, for their phase.
    admitted: AtomicUsize,
    heartbeat: Duration,
}

/// The watchers' levels, for `/metrics`.
#[derive(Clone)]
pub struct StreamGauges {
    open: Arc<AtomicUsize>,
    jobs: Arc<Mutex<HashMap<JobId, watch::Receiver<Published>>>>,
}

impl StreamGauges {
    /// Event streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Jobs that have a poller (at least one watcher) now.
    pub fn watched_jobs(&self) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// An open stream's place under the cap; dropping it frees the place.
pub struct StreamPermit<'a> {
    open: &'a AtomicUsize,
    /// How long this stream waits after a change before it writes (see [`PHASES`]).
    pub phase: Duration,
}

impl Drop for StreamPermit<'_> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Watchers {
    pub fn new(runner: Runner, max_streams: usize, heartbeat: Duration) -> Watchers {
        Watchers {
            runner,
            jobs: Arc::new(Mutex::new(HashMap::new())),
            open: Arc::new(AtomicUsize::new(0)),
            max_streams,
            admitted: AtomicUsize::new(0),
            heartbeat,
        }
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Sets the stream cap and the heartbeat (before any stream opens).
    pub fn configure(&mut self, max_streams: usize, heartbeat: Duration) {
        self.max_streams = max_streams;
        self.heartbeat = heartbeat;
    }

    /// What `/metrics` reads: streams open and jobs watched, now.
    pub fn gauges(&self) -> StreamGauges {
        StreamGauges {
            open: Arc::clone(&self.open),
            jobs: Arc::clone(&self.jobs),
        }
    }

    /// How often a stream sends a comment line when nothing else happened.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The stream ceiling of this process.
    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Jobs with a poller now.
    pub fn watched_jobs(&self) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A place for one more stream, or `None` at the cap.
    pub fn admit(&self) -> Option<StreamPermit<'_>> {
        let mut now = self.open.load(Ordering::Acquire);
        loop {
            if now >= self.max_streams {
                return None;
            }
            match self
                .open
                .compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let n = self.admitted.fetch_add(1, Ordering::Relaxed);
                    let slot = u32::try_from(n % PHASES as usize).unwrap_or(0);
                    let phase = TICK * slot / PHASES;
                    return Some(StreamPermit {
                        open: &self.open,
                        phase,
                    });
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// The job's published progress, starting its poller if nobody watches it yet.
    pub fn subscribe(&self, id: JobId) -> watch::Receiver<Published> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = jobs.get(&id)
            && rx.has_changed().is_ok()
        {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(Published::Pending);
        jobs.insert(id, rx.clone());
        drop(jobs);
        tokio::spawn(poll(id, self.runner.clone(), tx, Arc::clone(&self.jobs)));
        rx
    }

    /// The job's progress now, without a poller: for the answer beyond the cap. The record
    /// is read on a blocking thread.
    pub async fn snapshot(&self, id: JobId) -> Published {
        let runner = self.runner.clone();
        tokio::task::spawn_blocking(move || look(id, &runner))
            .await
            .unwrap_or(Published::Gone)
    }
}

/// Publishes the job's progress every [`TICK`] until it is final, its record is gone, or
/// nobody watches any more; then removes itself from `jobs`.
async fn poll(
    id: JobId,
    runner: Runner,
    tx: watch::Sender<Published>,
    jobs: Arc<Mutex<HashMap<JobId, watch::Receiver<Published>>>>,
) {
    // A job rendered by another worker has no live progress here: its record is read, and
    // once more when it has just ended. A record is only read while someone watches.
    loop {
        // Record reads are blocking I/O: off the request threads.
        let now = {
            let runner = runner.clone();
            match tokio::task::spawn_blocking(move || look(id, &runner)).await {
                Ok(now) => now,
                Err(e) => {
                    log::error!("job {id}: event poller: {e}");
                    Published::Gone
                }
            }
        };
        let end = !matches!(&now, Published::Job(s) if !s.is_final);
        tx.send_if_modified(|old| {
            if *old == now {
                false
            } else {
                *old = now;
                true
            }
        });
        {
            let mut jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            // The map holds one receiver; subscribers clone it under this lock, so the count
            // cannot grow between this check and the removal.
            if end || tx.receiver_count() <= 1 {
                if jobs
                    .get(&id)
                    .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
                {
                    jobs.remove(&id);
                }
                return;
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The job as a watcher should see it now: live progress when this process has it, else
/// its record.
fn look(id: JobId, runner: &Runner) -> Published {
    let live = runner.progress(id);
    if let Some(p) = live
        && !p.state.is_final()
    {
        // Live progress alone lacks what only the record has (size, render time, error),
        // and those are only shown once the job is final.
        let json = progress_json(id, p.state, p.pages_done, p.pages_total, None);
        return Published::Job(Snapshot::new(p.state, p.pages_done, p.pages_total, &json));
    }
    match runner.store().load(id) {
        Ok(Some(job)) => Published::Job(Snapshot::new(
            job.state,
            job.pages_done,
            job.pages_total,
            &record_json(&job),
        )),
        Ok(None) => Published::Gone,
        Err(e) => {
            log::warn!("job {id}: event stream cannot read the record: {e}");
            Published::Gone
        }
    }
}

/// The `progress` event of a job record.
pub fn record_json(job: &Job) -> String {
    progress_json(
        job.id,
        job.state,
        job.pages_done,
        job.pages_total,
        Some(job),
    )
}

pub(super) fn progress_json(
    id: JobId,
    state: State,
    done: u32,
    total: u32,
    record: Option<&Job>,
) -> String {
    let download = (state == State::Done).then(|| super::url(&format!("/jobs/{id}/download")));
    serde_json::json!({
        "id": id.to_string(),
        "state": state.as_str(),
        "pages_done": done,
        "pages_total": total,
        "size_bytes": record.and_then(|j| j.size_bytes),
        "render_ms": record.and_then(|j| j.render_ms),
        "error": record.and_then(|j| j.error.as_deref()),
        "download_url": download,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::jobs::{Request, RunnerConfig, Store};
    use crate::pdf::{Orientation, Paper};

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A runner that renders nothing, and a queued job recorded by "another worker": only
    /// its record says how it stands.
    fn setup() -> (Dir, Runner, Job) {
        let dir = Dir(std::env::temp_dir().join(format!("pdfworker-watch-{}", JobId::new())));
        let store = Store::open(&dir.0).expect("store");
        let render: crate::jobs::RenderFn =
            Arc::new(|_, _, _| Err(crate::jobs::RenderFailure::Stopped));
        let runner = Runner::new(
            store.clone(),
            render,
            Arc::new(|_| 0),
            RunnerConfig::default(),
        );
        let request = Request {
            report: "ledger".into(),
            definition_hash: "h".into(),
            title: "Watched".into(),
            values: BTreeMap::new(),
            paper: Paper::A4,
            orientation: Orientation::Portrait,
        };
        let job = Job::new(request, 7);
        store.create(&job).expect("record");
        (dir, runner, job)
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_watchers_of_one_job_share_one_poller_that_ends_with_them() {
        let (_dir, runner, job) = setup();
        let watchers = Watchers::new(runner, 10, DEFAULT_HEARTBEAT);
        let mut rxs: Vec<_> = (0..1000).map(|_| watchers.subscribe(job.id)).collect();
        assert_eq!(watchers.watched_jobs(), 1, "one poller for the job");
        rxs[0].changed().await.expect("the poller publishes");
        let Published::Job(first) = rxs[999].borrow().clone() else {
            panic!("a snapshot of the record")
        };
        let text = String::from_utf8_lossy(&first.event).into_owned();
        assert!(
            text.starts_with("id: queued-0-7\nevent: progress\ndata: {"),
            "{text}"
        );
        assert!(text.contains("\"state\":\"queued\"") && text.contains("\"pages_total\":7"));
        assert!(!first.is_final);
        rxs.clear();
        tokio::time::sleep(TICK * 3).await;
        assert_eq!(
            watchers.watched_jobs(),
            0,
            "the poller ended with its watchers"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_job_reaches_its_watchers_and_ends_the_poller() {
        let (_dir, runner, mut job) = setup();
        let store = runner.store().clone();
        let watchers = Watchers::new(runner, 10, DEFAULT_HEARTBEAT);
        let mut rx = watchers.subscribe(job.id);
        rx.changed().await.expect("first snapshot");
        job.fail("the database went away");
        store.save(&job).expect("save");
        rx.changed().await.expect("the final snapshot");
        let Published::Job(last) = rx.borrow_and_update().clone() else {
            panic!("a snapshot")
        };
        assert!(last.is_final);
        let text = String::from_utf8_lossy(&last.event).into_owned();
        assert!(
            text.starts_with("id: failed-0-7\nevent: failed\n"),
            "{text}"
        );
        assert!(text.contains("the database went away"), "{text}");
        assert!(rx.changed().await.is_err(), "nothing comes after the end");
        assert_eq!(watchers.watched_jobs(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_job_is_gone_for_its_watchers() {
        let (_dir, runner, job) = setup();
        let store = runner.store().clone();
        let watchers = Watchers::new(runner, 10, DEFAULT_HEARTBEAT);
        store.remove(job.id).expect("remove");
        let mut rx = watchers.subscribe(job.id);
        rx.changed().await.expect("a value");
        assert_eq!(*rx.borrow(), Published::Gone);
    }

    #[test]
    fn streams_past_the_cap_are_not_admitted_and_a_closed_one_frees_its_place() {
        let (_dir, runner, _) = setup();
        let watchers = Watchers::new(runner, 2, DEFAULT_HEARTBEAT);
        let a = watchers.admit().expect("first");
        let b = watchers.admit().expect("second");
        assert!(watchers.admit().is_none(), "third is over the cap");
        assert_eq!(watchers.open_streams(), 2);
        assert_ne!(a.phase, b.phase, "neighbours write at different moments");
        drop(a);
        assert!(
            watchers.admit().is_some(),
            "a closed stream frees its place"
        );
        drop(b);
    }
}
