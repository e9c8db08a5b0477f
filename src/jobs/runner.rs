//! The runner: admits jobs (page cap, memory budget, queue limit), runs each render on a
//! blocking thread under a slot and a memory reservation, publishes the PDF, records the end,
//! and drains on shutdown. The janitor (`janitor.rs`) feeds it jobs found on disk.
//!
//! Concurrency rules: the live map is behind a std `Mutex` that is only held for map
//! operations, never across an `.await` or a render; renders report progress through atomics,
//! so `progress()` never waits on one.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, SemaphorePermit, watch};

use super::index::Index;
use super::store::free_bytes;
use super::{Claim, Job, JobId, Request, State, Store, StoreError};

/// Draws a PDF: `(request, progress, out)`. Runs on a thread of its own and may block.
///
/// `progress(done, total)` reports pages laid out so far; `total` is 0 while the render does not
/// know it yet. It returns `false` when the render must stop (deadline, shutdown, too many
/// pages); the render should then return `Err(RenderFailure::Stopped)` soon. The runner owns
/// `out`'s path: it removes the file on failure and publishes it on success.
///
/// # Errors
/// `RenderFailure::Stopped` after `progress` said stop; `RenderFailure::Failed` when no PDF
/// can be made, with a sentence for the user and the details for the log.
pub type RenderFn = Arc<
    dyn Fn(
            &Request,
            &mut dyn FnMut(u32, u32) -> bool,
            &mut File,
        ) -> Result<RenderOutcome, RenderFailure>
        + Send
        + Sync,
>;

/// What a successful render reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOutcome {
    /// Pages in the file.
    pub pages: u32,
    /// Rows the report printed.
    pub rows: u64,
    /// Sentences about things that went wrong but did not stop the PDF (e.g. "12 characters
    /// the fonts lack were printed as �"). The runner logs each at WARN with the job id.
    pub warnings: Vec<String>,
}

/// Why a render produced no PDF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderFailure {
    /// `progress` returned false (deadline, shutdown, later cancel); the runner knows why.
    Stopped,
    /// `user` goes into the record and is shown to people; `detail` goes to the log only.
    Failed { user: String, detail: String },
}

/// How many pages a job will have, computed cheaply (no rendering); 0 means "unknown until the
/// render counts its rows". Used for the page cap and the memory reservation at admission.
pub type EstimateFn = Arc<dyn Fn(&Request) -> u32 + Send + Sync>;

/// How one render ended, told to the [`RenderObserver`] once its end is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderEnd {
    /// Where the job went: `Done`, `Failed`, or `Queued` when a shutdown handed it back.
    pub state: State,
    /// From the start of the render to its end, publishing included.
    pub elapsed: Duration,
    /// Pages of the published PDF; 0 unless done.
    pub pages: u32,
}

/// Told about every render's end, on the render thread: it must be quick and must not block.
/// Metrics plug in here, so `jobs` knows nothing of how they are exported.
pub type RenderObserver = Arc<dyn Fn(&RenderEnd) + Send + Sync>;

/// What this process's renders hold now, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Jobs of this process waiting for a render slot (or for room in the memory budget).
    pub queued: usize,
    /// Render slots taken, of `slots` (a job that runs alone takes them all).
    pub slots_in_use: usize,
    pub slots: usize,
    /// Bytes of the memory budget reserved by admitted renders, of `memory_budget`.
    pub memory_in_use: u64,
    pub memory_budget: u64,
}

/// Limits of one runner. All of them are per process.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Renders at once.
    pub slots: usize,
    /// Jobs queued or running in this process; more are refused with `SubmitError::Busy`.
    pub queue_limit: usize,
    /// Pages a job may have: more are refused with `SubmitError::TooManyPages`, and a render
    /// that grows past it (its estimate was unknown or low) is stopped and its job failed.
    /// Renders stream pages to the file, so this guards the disk, not memory.
    pub max_pages: u32,
    /// Bytes all running renders may use together, by estimate.
    pub memory_budget: u64,
    /// Bytes reserved for every running render whatever its size: fonts, the page being laid
    /// out, the database driver's buffers.
    pub render_memory: u64,
    /// Bytes reserved per estimated page on top of `render_memory`: a streaming render keeps
    /// only each page's object offsets until the file is finished.
    pub bytes_per_page: u64,
    /// A render still running after this long is stopped and its job failed.
    pub render_deadline: Duration,
    /// A job whose render died with its worker this many times while it was the only render
    /// in that process is failed, not retried: it kills its worker. Deaths beside other
    /// renders are not counted (see `Job::settle_death`).
    pub max_attempts: u32,
    /// How often the janitor looks at the store.
    pub janitor_interval: Duration,
    /// How long finished and failed jobs and their PDFs are kept.
    pub retention: Duration,
    /// Jobs one client may have queued or running across the pool (0: no cap); more are
    /// refused with `SubmitError::ClientBusy`.
    pub max_jobs_per_client: usize,
    /// Bytes the finished and coming PDFs of the data dir may take together (0: no budget);
    /// a job whose estimated file does not fit is refused (`SubmitError::NoRoom`).
    pub max_data_bytes: u64,
    /// Bytes the file system must keep free beyond a new job's estimated file.
    pub min_free_bytes: u64,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_limit: 64,
            max_pages: 100_000,
            memory_budget: 512 * MIB,
            render_memory: 32 * MIB,
            bytes_per_page: 64,
            render_deadline: Duration::from_secs(30 * 60),
            max_attempts: 3,
            janitor_interval: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 60 * 60),
            max_jobs_per_client: 8,
            max_data_bytes: 0,
            min_free_bytes: 100 * MIB,
        }
    }
}

/// Why a job was not accepted.
#[derive(Debug)]
pub enum SubmitError {
    /// The parameters break a limit every job must respect (e.g. the title is too long).
    Invalid { reason: String },
    /// The job would have more pages than allowed.
    TooManyPages { pages: u32, max: u32 },
    /// The job alone would need more memory than the whole budget (`pages` = 0: unknown, the
    /// fixed share of one render is already too much).
    TooLarge { pages: u32, bytes: u64, budget: u64 },
    /// The queue is full (or the process is shutting down); try again later.
    Busy { retry_after: Duration },
    /// The job could not be recorded.
    Store(StoreError),
    /// The idempotency key came before with other content.
    KeyReused,
    /// Another request with the same idempotency key is still creating its job.
    KeyInFlight,
    /// This client has `jobs` queued or running already, its cap.
    ClientBusy { jobs: usize, retry_after: Duration },
    /// The job's file would not fit: in the data budget (`budget`), or on the disk.
    NoRoom { budget: bool, need: u64, free: u64 },
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Invalid { reason } => f.write_str(reason),
            SubmitError::TooManyPages { pages, max } => {
                write!(
                    f,
                    "the report would have {pages} pages; at most {max} are allowed"
                )
            }
            SubmitError::TooLarge {
                pages,
                bytes,
                budget,
            } => {
                if *pages > 0 {
                    write!(f, "the report would have {pages} pages and ")?;
                } else {
                    f.write_str("the report would ")?;
                }
                write!(
                    f,
                    "need about {} MiB; at most {} MiB are available",
                    bytes.div_ceil(MIB),
                    budget / MIB
                )
            }
            SubmitError::Busy { retry_after } => write!(
                f,
                "too many reports are being made right now; try again in {}",
                human(*retry_after)
            ),
            SubmitError::Store(e) => write!(f, "the job could not be recorded: {e}"),
            SubmitError::KeyReused => f.write_str(
                "this Idempotency-Key was used before with a different request; use a new key",
            ),
            SubmitError::NoRoom { budget, need, free } => write!(
                f,
                "the report's file (about {} MiB) does not fit: {} MiB are free {}",
                need.div_ceil(MIB),
                free / MIB,
                if *budget {
                    "in this server's budget for reports"
                } else {
                    "on its disk"
                }
            ),
            SubmitError::ClientBusy { jobs, .. } => write!(
                f,
                "you have {jobs} reports waiting or being made, as many as one person may; \
                 try again when one is done"
            ),
            SubmitError::KeyInFlight => f.write_str(
                "a request with this Idempotency-Key is still being recorded; try again in a moment",
            ),
        }
    }
}

impl std::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> SubmitError {
        SubmitError::Store(e)
    }
}

/// What `Runner::cancel` did.
#[derive(Debug)]
pub enum Cancel {
    /// The job is cancelled: its record as saved.
    Now(Job),
    /// A render holds the job and stops at its next page: the record as it was.
    Stopping(Job),
}

/// Why `Runner::cancel` did nothing.
#[derive(Debug)]
pub enum CancelError {
    /// No such job (or it expired).
    NotFound,
    /// It ended already, in this state.
    Final(State),
    Store(StoreError),
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::NotFound => f.write_str("there is no such job"),
            CancelError::Final(state) => write!(f, "the job is {state} already"),
            CancelError::Store(e) => write!(f, "the cancel could not be recorded: {e}"),
        }
    }
}

impl std::error::Error for CancelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CancelError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for CancelError {
    fn from(e: StoreError) -> CancelError {
        CancelError::Store(e)
    }
}

/// Live view of a job this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub state: State,
    pub pages_done: u32,
    pub pages_total: u32,
}

/// A job that is durably recorded and claimed by this process but not started yet. Hand it to
/// `Runner::start`; dropping it instead releases the claim and leaves the job queued on disk
/// for the janitor (of any process) to start.
pub struct Pending {
    pub(super) job: Job,
    pub(super) claim: Claim,
    pub(super) slot: Reservation,
}

impl Pending {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// The job as recorded.
    pub fn job(&self) -> &Job {
        &self.job
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.job.id)
            .finish_non_exhaustive()
    }
}

/// Renders jobs in this process. Cheap to clone; clones share limits and state.
#[derive(Clone)]
pub struct Runner {
    pub(super) inner: Arc<Inner>,
}

/// What `Busy` suggests: long enough for a few renders to finish, short enough for a person.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(10);
/// What a job whose PDF size was not known at admission is counted as by the disk budget.
pub const UNKNOWN_FILE_BYTES: u64 = 16 * MIB;

/// How often a render looks for a cancel marker written by another process.
const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Progress is written to the record at most this often, so other processes can show it.
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// The memory semaphore counts KiB: `acquire_many` takes a `u32`, and bytes would cap the
/// budget at 4 GiB.
const MEMORY_UNIT: u64 = 1024;
const MIB: u64 = 1024 * 1024;

pub(super) struct Inner {
    pub(super) store: Store,
    render: RenderFn,
    pub(super) estimate: EstimateFn,
    pub(super) config: RunnerConfig,
    slots: Semaphore,
    memory: Semaphore,
    memory_units: u64,
    /// Jobs queued or running in this process, by id. Its size is what `queue_limit` bounds.
    live: Mutex<HashMap<JobId, Arc<Live>>>,
    /// Becomes `true` once, when `drain` begins.
    closing: watch::Sender<bool>,
    /// Job tasks spawned by `start` that have not ended.
    tasks: AtomicUsize,
    tasks_done: Notify,
    /// What the janitor knows of the records in the store (`index.rs`). Only a sweep locks
    /// it, for the whole sweep, so two sweeps never overlap; nothing else waits on it.
    pub(super) index: Mutex<Index>,
    /// Woken when a job task ends here: a slot may be free, so the janitor looks again.
    pub(super) sweep_soon: Notify,
    /// Records by state as the janitor last saw them (jobs live here excluded; `job_counts`
    /// adds those from `live`).
    pub(super) swept: Mutex<JobCounts>,
    /// Bytes of the data dir's PDFs, finished and coming (by estimate), not counting this
    /// process's own queued and running jobs, as the janitor last saw them.
    pub(super) swept_disk: Mutex<u64>,
    /// Unfinished jobs not live here by client, as the janitor last saw them.
    pub(super) swept_clients: Mutex<HashMap<String, usize>>,
    /// Told about each render's end (`observe_renders`).
    observer: OnceLock<RenderObserver>,
}

/// How many job records there are in each state, across the data directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl JobCounts {
    /// Counts one more job in `state`.
    pub fn add(&mut self, state: State) {
        *self.of(state) += 1;
    }

    /// Counts one job fewer in `state`.
    pub(super) fn remove(&mut self, state: State) {
        let n = self.of(state);
        *n = n.saturating_sub(1);
    }

    fn of(&mut self, state: State) -> &mut u64 {
        match state {
            State::Queued => &mut self.queued,
            State::Running => &mut self.running,
            State::Done => &mut self.done,
            State::Failed => &mut self.failed,
            State::Cancelled => &mut self.cancelled,
        }
    }
}

/// Shared between a render thread (writer) and `progress()` (reader).
#[derive(Debug)]
pub(super) struct Live {
    /// The job needs every slot: no other render runs here beside it.
    exclusive: bool,
    /// It waits for a slot without its claim, so any worker with room may take it; the
    /// record, not this entry, then says where it stands.
    unclaimed: AtomicBool,
    state: AtomicU8,
    pages_done: AtomicU32,
    pages_total: AtomicU32,
    stop: AtomicU8,
    /// Woken by `request_stop`: a job waiting for a slot need not wait any longer.
    stopped: Notify,
    /// Who asked for it (`Job::client`), for the per-client cap.
    client: Option<Arc<str>>,
    /// Its PDF's expected size, for the disk budget.
    expected_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    Deadline = 1,
    Shutdown = 2,
    /// The render went past `max_pages` (its estimate was unknown or too low).
    TooManyPages = 3,
    /// Someone cancelled the job (`Runner::cancel`, or a cancel marker on disk).
    Cancelled = 4,
}

const GO: u8 = 0;

impl Live {
    fn new(pages_total: u32, exclusive: bool) -> Live {
        Live {
            exclusive,
            unclaimed: AtomicBool::new(false),
            state: AtomicU8::new(state_code(State::Queued)),
            pages_done: AtomicU32::new(0),
            pages_total: AtomicU32::new(pages_total),
            stop: AtomicU8::new(GO),
            stopped: Notify::new(),
            client: None,
            expected_bytes: UNKNOWN_FILE_BYTES,
        }
    }

    fn set_state(&self, state: State) {
        self.state.store(state_code(state), Ordering::Release);
    }

    fn set_pages(&self, done: u32, total: u32) {
        self.pages_done.store(done, Ordering::Relaxed);
        self.pages_total.store(total, Ordering::Relaxed);
    }

    fn progress(&self) -> Progress {
        Progress {
            state: state_from_code(self.state.load(Ordering::Acquire)),
            pages_done: self.pages_done.load(Ordering::Relaxed),
            pages_total: self.pages_total.load(Ordering::Relaxed),
        }
    }

    /// Asks the render to stop. The first reason wins; returns whether this one did.
    fn request_stop(&self, reason: StopReason) -> bool {
        let first = self
            .stop
            .compare_exchange(GO, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.stopped.notify_one();
        }
        first
    }

    fn stop_reason(&self) -> Option<StopReason> {
        match self.stop.load(Ordering::Acquire) {
            1 => Some(StopReason::Deadline),
            2 => Some(StopReason::Shutdown),
            3 => Some(StopReason::TooManyPages),
            4 => Some(StopReason::Cancelled),
            _ => None,
        }
    }
}

fn state_code(state: State) -> u8 {
    match state {
        State::Queued => 0,
        State::Running => 1,
        State::Done => 2,
        State::Failed => 3,
        State::Cancelled => 4,
    }
}

fn state_from_code(code: u8) -> State {
    match code {
        1 => State::Running,
        2 => State::Done,
        3 => State::Failed,
        4 => State::Cancelled,
        _ => State::Queued,
    }
}

/// A place in this process's queue; gives it back on drop.
pub(super) struct Reservation {
    inner: Arc<Inner>,
    id: JobId,
    live: Arc<Live>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.live_map().remove(&self.id);
    }
}

/// Counts a spawned job task; `drain` waits until none is left.
struct TaskGuard(Arc<Inner>);

impl TaskGuard {
    fn new(inner: Arc<Inner>) -> TaskGuard {
        inner.tasks.fetch_add(1, Ordering::SeqCst);
        TaskGuard(inner)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.tasks_done.notify_waiters();
        }
    }
}

impl Runner {
    /// A runner over `store` with the given render and estimate functions.
    pub fn new(
        store: Store,
        render: RenderFn,
        estimate: EstimateFn,
        config: RunnerConfig,
    ) -> Runner {
        let memory_units = (config.memory_budget / MEMORY_UNIT).min(Semaphore::MAX_PERMITS as u64);
        let inner = Inner {
            store,
            render,
            estimate,
            slots: Semaphore::new(config.slots.max(1)),
            // Cannot truncate: capped at MAX_PERMITS, which is a usize, just above.
            memory: Semaphore::new(usize::try_from(memory_units).unwrap_or(Semaphore::MAX_PERMITS)),
            memory_units,
            config,
            live: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
            tasks: AtomicUsize::new(0),
            tasks_done: Notify::new(),
            index: Mutex::new(Index::new()),
            sweep_soon: Notify::new(),
            swept: Mutex::new(JobCounts::default()),
            swept_clients: Mutex::new(HashMap::new()),
            swept_disk: Mutex::new(0),
            observer: OnceLock::new(),
        };
        Runner {
            inner: Arc::new(inner),
        }
    }

    /// The store this runner records jobs in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Checks the job against the limits, records it durably as queued and claims it. Does not
    /// wait for anything but the record's fsync.
    ///
    /// # Errors
    /// `Invalid`, `TooManyPages`, `TooLarge` for jobs that will never be accepted; `Busy` when
    /// the queue is full or the process is shutting down; `Store` if the record cannot be
    /// written.
    pub fn enqueue(&self, request: Request) -> Result<Pending, SubmitError> {
        self.enqueue_job(Job::new(request, 0))
    }

    /// [`Runner::enqueue`] for a job made by the caller (`Job::new`), which may carry a
    /// chosen id and keys. Its page estimate is set here.
    ///
    /// # Errors
    /// As `enqueue`.
    pub fn enqueue_job(&self, mut job: Job) -> Result<Pending, SubmitError> {
        job.request
            .validate()
            .map_err(|reason| SubmitError::Invalid { reason })?;
        let pages = (self.inner.estimate)(&job.request);
        self.inner.check_size(pages)?;
        self.inner.check_disk(job.expected_bytes)?;
        job.pages_total = pages;
        let id = job.id;
        let slot = self.inner.reserve_for(id, pages, false, &job, true)?;
        // Claim before the record exists: once it does, any janitor may try to take the job.
        let claim = match self.inner.store.claim(id)? {
            Some(claim) => claim,
            None => {
                return Err(StoreError::Io {
                    path: self.inner.store.pdf_path(id),
                    source: io::Error::new(io::ErrorKind::WouldBlock, "a new job's lock is held"),
                }
                .into());
            }
        };
        // Noted before the record: a job whose record exists always has its notes.
        if let Some(owner) = &job.owner
            && let Err(e) = self.inner.store.note_owner(owner, id)
        {
            return Err(e.into());
        }
        if job.webhook.is_some()
            && let Err(e) = self.inner.store.mark_delivery(id)
        {
            return Err(e.into());
        }
        if let Err(e) = self.inner.store.create(&job) {
            let _ = self.inner.store.remove(id);
            return Err(e.into());
        }
        log::info!("job {id}: queued, {}", about_pages(pages));
        Ok(Pending { job, claim, slot })
    }

    /// Starts rendering the job in this process: a task waits for a slot and for room in the
    /// memory budget, then renders on a blocking thread. Returns at once. If the runner is
    /// draining, the job is left queued on disk for another process.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self, pending: Pending) {
        if self.inner.is_closing() {
            log::info!(
                "job {}: not started, shutting down; left queued",
                pending.id()
            );
            return;
        }
        let guard = TaskGuard::new(Arc::clone(&self.inner));
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let _guard = guard;
            Arc::clone(&inner).run(pending).await;
            inner.sweep_soon.notify_one();
        });
    }

    /// Job records by state: what the janitor's last sweep found, with this process's own
    /// queued and running jobs as they are now. At most one janitor interval old.
    pub fn job_counts(&self) -> JobCounts {
        let mut counts = *self
            .inner
            .swept
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for live in self.inner.live_map().values() {
            counts.add(live.progress().state);
        }
        counts
    }

    /// The data budget (`RunnerConfig::max_data_bytes`; 0: none).
    pub fn max_data_bytes(&self) -> u64 {
        self.inner.config.max_data_bytes
    }

    /// What this process's renders hold now: jobs waiting, slots and memory taken.
    pub fn usage(&self) -> Usage {
        let inner = &self.inner;
        let queued = inner
            .live_map()
            .values()
            .filter(|l| l.progress().state == State::Queued)
            .count();
        let slots = inner.slot_count();
        // Permits count KiB; the budget as the semaphore holds it, capped and rounded down.
        let free_units = u64::try_from(inner.memory.available_permits()).unwrap_or(u64::MAX);
        Usage {
            queued,
            slots_in_use: slots.saturating_sub(inner.slots.available_permits()),
            slots,
            memory_in_use: inner.memory_units.saturating_sub(free_units) * MEMORY_UNIT,
            memory_budget: inner.memory_units * MEMORY_UNIT,
        }
    }

    /// Tells `observer` about every render that ends from now on. One observer per runner:
    /// returns false (and keeps the first) when one is already set.
    pub fn observe_renders(&self, observer: RenderObserver) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// The job's live state if this process has it queued or running; `None` otherwise (the
    /// record on disk is then the answer).
    pub fn progress(&self, id: JobId) -> Option<Progress> {
        let live = self.inner.live_map().get(&id).cloned()?;
        if live.unclaimed.load(Ordering::Acquire) {
            return None;
        }
        Some(live.progress())
    }

    /// Cancels a job, wherever it is. Blocking (record I/O): call it from a blocking thread.
    ///
    /// The wish is recorded on disk first (`Store::request_cancel`), so it survives a crash
    /// and reaches whichever process holds the job. A job nobody holds — queued, or waiting
    /// for a slot here — is cancelled at once; a render, here or in another process, stops
    /// at its next page (`Cancelling`) and its temporary file is removed.
    ///
    /// # Errors
    /// `NotFound` without a record, `Final` for a job that already ended, `Store` if the
    /// record or the marker cannot be read or written.
    pub fn cancel(&self, id: JobId) -> Result<Cancel, CancelError> {
        let store = &self.inner.store;
        let job = store.load(id)?.ok_or(CancelError::NotFound)?;
        if job.state.is_final() {
            return Err(CancelError::Final(job.state));
        }
        store.request_cancel(id)?;
        let live = self.inner.live_map().get(&id).cloned();
        if let Some(live) = &live {
            live.request_stop(StopReason::Cancelled);
        }
        let Some(claim) = store.claim(id)? else {
            // A render holds it; it sees the stop (here) or the marker (elsewhere) within a
            // page.
            log::info!("job {id}: cancel asked for; its render stops at the next page");
            return Ok(Cancel::Stopping(job));
        };
        let Some(mut job) = store.load(id)? else {
            store.clear_cancel(id);
            return Err(CancelError::NotFound);
        };
        if job.state.is_final() {
            store.clear_cancel(id);
            return Err(CancelError::Final(job.state));
        }
        job.cancel();
        store.save(&job)?;
        store.clear_cancel(id);
        if let Some(live) = &live {
            live.set_state(State::Cancelled);
        }
        drop(claim);
        log::info!("job {id}: cancelled before its render started");
        Ok(Cancel::Now(job))
    }

    /// Stops starting renders (jobs submitted from now on are recorded and left queued for
    /// another process), waits up to `grace` for running ones, then asks the rest to stop.
    /// A render stopped this way goes back to `Queued` on disk with its claim released, so
    /// the next process picks it up. Returns when every job task has ended — which relies
    /// on renders calling `progress` now and then.
    pub async fn drain(&self, grace: Duration) {
        let inner = &self.inner;
        inner.closing.send_replace(true);
        let running = inner.tasks.load(Ordering::SeqCst);
        if running > 0 {
            log::info!(
                "runner: draining, waiting up to {} for {running} jobs",
                human(grace)
            );
        }
        if tokio::time::timeout(grace, inner.all_done()).await.is_err() {
            let live: Vec<Arc<Live>> = inner.live_map().values().cloned().collect();
            let stopped = live
                .iter()
                .filter(|l| l.request_stop(StopReason::Shutdown))
                .count();
            log::warn!("runner: grace period over, stopping {stopped} renders; they stay queued");
            inner.all_done().await;
        }
        log::info!("runner: drained");
    }
}

impl Inner {
    /// The live map, even if a thread panicked while holding it: every operation on it is a
    /// single insert/remove/lookup, so it is never left half-changed.
    pub(super) fn live_map(&self) -> MutexGuard<'_, HashMap<JobId, Arc<Live>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    pub(super) fn closing_watch(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub(super) fn is_live(&self, id: JobId) -> bool {
        self.live_map().contains_key(&id)
    }

    /// What a render of `pages` pages (0 = unknown) is expected to need: a fixed share plus a
    /// little per page, since pages are streamed to the file.
    fn memory_bytes_for(&self, pages: u32) -> u64 {
        u64::from(pages)
            .saturating_mul(self.config.bytes_per_page)
            .saturating_add(self.config.render_memory)
    }

    /// Refuses a job whose file would not fit: in `max_data_bytes` with the finished PDFs and
    /// every queued or running job's expected file (the pool's as of the last sweep, this
    /// process's as they are now), or on the disk above `min_free_bytes`. A job of unknown
    /// size counts as [`UNKNOWN_FILE_BYTES`].
    pub(super) fn check_disk(&self, expected: Option<u64>) -> Result<(), SubmitError> {
        let need = expected.unwrap_or(UNKNOWN_FILE_BYTES);
        let budget = self.config.max_data_bytes;
        if budget > 0 {
            let here: u64 = self.live_map().values().map(|l| l.expected_bytes).sum();
            let used = here.saturating_add(
                *self
                    .swept_disk
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if used.saturating_add(need) > budget {
                return Err(SubmitError::NoRoom {
                    budget: true,
                    need,
                    free: budget.saturating_sub(used),
                });
            }
        }
        let floor = self.config.min_free_bytes;
        if floor > 0
            && let Ok(free) = free_bytes(self.store.jobs_dir())
            && free < floor.saturating_add(need)
        {
            return Err(SubmitError::NoRoom {
                budget: false,
                need,
                free: free.saturating_sub(floor),
            });
        }
        Ok(())
    }

    /// `memory_bytes_for` in the memory semaphore's units, rounded up.
    fn memory_units_for(&self, pages: u32) -> u64 {
        self.memory_bytes_for(pages).div_ceil(MEMORY_UNIT)
    }

    /// Refuses jobs that can never run under this process's limits. An unknown page count (0)
    /// passes the page cap; the render is held to it as it goes.
    pub(super) fn check_size(&self, pages: u32) -> Result<(), SubmitError> {
        let max = self.config.max_pages;
        if pages > max {
            return Err(SubmitError::TooManyPages { pages, max });
        }
        let units = self.memory_units_for(pages);
        if units > self.memory_units || units > u64::from(u32::MAX) {
            return Err(SubmitError::TooLarge {
                pages,
                bytes: self.memory_bytes_for(pages),
                budget: self.config.memory_budget,
            });
        }
        Ok(())
    }

    /// Takes a place in the queue for `id`; `None` if the queue is full, the runner is closing,
    /// or the job is already live here.
    /// Slots this process could start renders in right now: `slots` less what its queued and
    /// running jobs take (a job that runs alone takes them all), and no more than the queue
    /// has places. The janitor claims no more than this.
    pub(super) fn free_slots(&self) -> usize {
        let slots = self.slot_count();
        let map = self.live_map();
        let taken: usize = map
            .values()
            .map(|l| if l.exclusive { slots } else { 1 })
            .sum();
        slots
            .saturating_sub(taken)
            .min(self.config.queue_limit.saturating_sub(map.len()))
    }

    fn slot_count(&self) -> usize {
        self.config.slots.max(1)
    }

    /// `exclusive`: the job must run alone (see `Job::is_suspect`).
    pub(super) fn reserve(
        self: &Arc<Self>,
        id: JobId,
        pages_total: u32,
        exclusive: bool,
        job: &Job,
    ) -> Option<Reservation> {
        self.reserve_for(id, pages_total, exclusive, job, false)
            .ok()
    }

    /// [`Inner::reserve`], refusing with `ClientBusy` when `capped` and `client` has its
    /// share of jobs already: those queued or running here (counted under the same lock as
    /// the insert, so two requests cannot both take the last place) and those the last
    /// sweep found unfinished elsewhere in the pool.
    pub(super) fn reserve_for(
        self: &Arc<Self>,
        id: JobId,
        pages_total: u32,
        exclusive: bool,
        job: &Job,
        capped: bool,
    ) -> Result<Reservation, SubmitError> {
        let client = job.client.as_deref();
        let busy = SubmitError::Busy {
            retry_after: BUSY_RETRY_AFTER,
        };
        let mut map = self.live_map();
        // A closing runner takes no job for itself (the janitor's, `capped` false), but still
        // records one a request brings (`start` then leaves it queued on disk for another
        // instance): nginx sends requests on a kept-alive connection until the moment the
        // connection closes, and a rolling restart must fail none of them.
        let closing = self.is_closing() && !capped;
        if closing || map.len() >= self.config.queue_limit || map.contains_key(&id) {
            return Err(busy);
        }
        let cap = self.config.max_jobs_per_client;
        if let Some(client) = client.filter(|_| capped && cap > 0) {
            let here = map
                .values()
                .filter(|l| l.client.as_deref() == Some(client))
                .count();
            let elsewhere = self
                .swept_clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(client)
                .copied()
                .unwrap_or(0);
            let jobs = here + elsewhere;
            if jobs >= cap {
                return Err(SubmitError::ClientBusy {
                    jobs,
                    retry_after: BUSY_RETRY_AFTER,
                });
            }
        }
        let mut live = Live::new(pages_total, exclusive);
        live.client = client.map(Arc::from);
        live.expected_bytes = job.expected_bytes.unwrap_or(UNKNOWN_FILE_BYTES);
        let live = Arc::new(live);
        map.insert(id, Arc::clone(&live));
        drop(map);
        Ok(Reservation {
            inner: Arc::clone(self),
            id,
            live,
        })
    }

    async fn all_done(&self) {
        loop {
            let mut notified = pin!(self.tasks_done.notified());
            // Registered before the check, so a task ending in between still wakes us.
            notified.as_mut().enable();
            if self.tasks.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Waits for a slot, then for the job's share of the memory budget. Slot first: a task
    /// holding a slot waits only for running renders to free memory, never the other way.
    async fn admit(&self, pages: u32, slots: u32) -> (SemaphorePermit<'_>, SemaphorePermit<'_>) {
        let slot = self
            .slots
            .acquire_many(slots)
            .await
            .expect("the runner never closes its semaphores");
        // `check_size` ran first, so this fits in a u32 and within the semaphore's permits.
        let units = u32::try_from(self.memory_units_for(pages)).unwrap_or(u32::MAX);
        let memory = self
            .memory
            .acquire_many(units)
            .await
            .expect("the runner never closes its semaphores");
        (slot, memory)
    }

    /// Takes a slot (all of them for `slots` = all) and the memory for `pages` if both are
    /// free now.
    fn try_admit(
        &self,
        pages: u32,
        slots: u32,
    ) -> Option<(SemaphorePermit<'_>, SemaphorePermit<'_>)> {
        let slot = self.slots.try_acquire_many(slots).ok()?;
        let units = u32::try_from(self.memory_units_for(pages)).unwrap_or(u32::MAX);
        let memory = self.memory.try_acquire_many(units).ok()?;
        Some((slot, memory))
    }

    /// One job from admission to its end. Runs as a task spawned by `start`.
    ///
    /// A job that cannot start at once lets go of its claim while it waits, so that a worker
    /// with a free slot may take it (queued work flows to whoever has room); once admitted it
    /// claims the job again and goes on only if the record still says queued.
    async fn run(self: Arc<Self>, pending: Pending) {
        let Pending { job, claim, slot } = pending;
        let id = job.id;
        // The estimate may differ from the one recorded: a recovered job was recorded by
        // another process, perhaps under other limits.
        let pages = (self.estimate)(&job.request);
        slot.live.set_pages(0, pages);
        let all = self.slot_count();
        let alone = slot.live.exclusive || all == 1;
        let ctx = |job: Job, claim: Claim| RunCtx {
            store: self.store.clone(),
            render: Arc::clone(&self.render),
            job,
            claim,
            live: Arc::clone(&slot.live),
            pages,
            max_pages: self.config.max_pages,
            deadline: self.config.render_deadline,
            alone,
            observer: self.observer.get().cloned(),
        };
        if let Err(e) = self.check_size(pages) {
            let message = e.to_string();
            let ctx = ctx(job, claim);
            let _ = tokio::task::spawn_blocking(move || ctx.fail_now(&message)).await;
            return;
        }
        // `slots` is capped by the configuration, far below u32::MAX.
        let wanted = u32::try_from(if slot.live.exclusive { all } else { 1 }).unwrap_or(u32::MAX);
        let (permits, ctx) = if let Some(permits) = self.try_admit(pages, wanted) {
            (permits, ctx(job, claim))
        } else {
            slot.live.unclaimed.store(true, Ordering::Release);
            drop(claim);
            let mut closing = self.closing.subscribe();
            let admitted = tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => None,
                // Cancelled meanwhile (`Runner::cancel` has recorded it), or otherwise stopped.
                () = slot.live.stopped.notified() => {
                    log::info!("job {id}: stopped while it waited for a slot");
                    return;
                }
                permits = self.admit(pages, wanted) => Some(permits),
            };
            // Checked again after admission: drain may have begun while we were waiting.
            let Some(permits) = admitted.filter(|_| !self.is_closing()) else {
                log::info!("job {id}: shutting down before it started; left queued");
                return;
            };
            let store = self.store.clone();
            let Ok(Some((job, claim))) =
                tokio::task::spawn_blocking(move || reclaim(&store, job)).await
            else {
                return;
            };
            slot.live.unclaimed.store(false, Ordering::Release);
            (permits, ctx(job, claim))
        };
        let live = Arc::clone(&slot.live);
        // The render gets a thread of its own, which the pool thread waits for: the render
        // function may lower its thread's priority (so request handling wins the CPU), and
        // that must not stick to a pooled thread that later records a job. Going through
        // spawn_blocking keeps the runtime aware that work is in flight (paused-time tests).
        let mut render = tokio::task::spawn_blocking(move || {
            let spawned = std::thread::Builder::new()
                .name("render".into())
                .spawn(move || ctx.run());
            match spawned {
                Ok(thread) => {
                    if thread.join().is_err() {
                        log::error!("job {id}: render thread panicked outside the render");
                    }
                }
                // The claim went with the closure: the janitor retries the job later.
                Err(e) => log::error!("job {id}: could not start a render thread: {e}"),
            }
        });
        let result = tokio::select! {
            result = &mut render => result,
            () = tokio::time::sleep(self.config.render_deadline) => {
                if live.request_stop(StopReason::Deadline) {
                    log::warn!("job {id}: past its deadline, asking the render to stop");
                }
                render.await
            }
        };
        if let Err(e) = result {
            // Render panics are caught inside; this is a bug in the runner itself.
            log::error!("job {id}: render task ended abnormally: {e}");
        }
        drop(permits);
        drop(slot);
    }
}

/// Claims a job that waited for a slot without its claim, and reads its record again: `None`
/// if another worker holds it or has moved it on (started, finished, removed) meanwhile.
fn reclaim(store: &Store, waited: Job) -> Option<(Job, Claim)> {
    let id = waited.id;
    let claim = match store.claim(id) {
        Ok(Some(claim)) => claim,
        Ok(None) => {
            log::info!("job {id}: taken by another worker while it waited here");
            return None;
        }
        Err(e) => {
            log::error!("job {id}: {e}");
            return None;
        }
    };
    match store.load(id) {
        Ok(Some(job)) if job.state == State::Queued => Some((job, claim)),
        Ok(Some(job)) => {
            log::info!(
                "job {id}: {} by another worker while it waited here",
                job.state
            );
            None
        }
        Ok(None) => None,
        Err(e) => {
            log::error!("job {id}: {e}");
            None
        }
    }
}

/// Everything a render thread needs; owns the claim, so the claim lasts exactly as long as the
/// thread works on the job.
struct RunCtx {
    store: Store,
    render: RenderFn,
    job: Job,
    claim: Claim,
    live: Arc<Live>,
    /// The estimate this run started with (0 = unknown).
    pages: u32,
    max_pages: u32,
    deadline: Duration,
    /// This render holds every slot of its process.
    alone: bool,
    observer: Option<RenderObserver>,
}

/// How a render ended, when not with a published PDF.
enum Ending {
    Stopped(StopReason),
    /// `user` goes into the record; `detail` into the log.
    Failed {
        user: String,
        detail: String,
    },
}

struct Published {
    pages: u32,
    rows: u64,
    size: u64,
    warnings: Vec<String>,
}

/// The runner's own sentence when a render ends without one.
const COULD_NOT_MAKE: &str = "the PDF could not be made";

impl RunCtx {
    /// Marks the job running, renders, publishes, records the end. Blocking.
    fn run(mut self) {
        let id = self.job.id;
        if self.store.cancel_requested(id) || self.live.stop_reason() == Some(StopReason::Cancelled)
        {
            self.job.cancel();
            match self.store.save(&self.job) {
                Ok(()) => self.store.clear_cancel(id),
                Err(e) => log::error!("job {id}: could not record its cancel: {e}"),
            }
            self.live.set_state(State::Cancelled);
            log::info!("job {id}: cancelled before its render started");
            return;
        }
        self.job.begin_attempt(self.pages, self.alone);
        // Counting the attempt on disk before rendering is what lets a worker that dies on
        // this job be noticed (max_attempts).
        if let Err(e) = self.store.save(&self.job) {
            log::error!("job {id}: could not mark it running, not rendering: {e}");
            return;
        }
        self.live.set_state(State::Running);
        log::info!(
            "job {id}: started, attempt {}, {}{}",
            self.job.attempts,
            about_pages(self.pages),
            if self.job.is_suspect() { ", alone" } else { "" }
        );
        let started = Instant::now();
        let ending = self.render_and_publish();
        let elapsed = started.elapsed();
        self.record_end(ending, elapsed);
        // The PDF is already in place, so a record saying done is never ahead of its file.
        match self.store.save(&self.job) {
            Ok(()) if self.job.state.is_final() => self.store.clear_cancel(id),
            Ok(()) => {}
            Err(e) => log::error!("job {id}: could not record the end of the render: {e}"),
        }
        self.live.set_state(self.job.state);
        if let Some(observe) = &self.observer {
            let done = self.job.state == State::Done;
            observe(&RenderEnd {
                state: self.job.state,
                elapsed,
                pages: if done { self.job.pages_total } else { 0 },
            });
        }
        drop(self.claim);
    }

    /// Applies how the render ended to the job (not yet saved) and logs it.
    fn record_end(&mut self, ending: Result<Published, Ending>, elapsed: Duration) {
        let id = self.job.id;
        match ending {
            Ok(Published {
                pages,
                rows,
                size,
                warnings,
            }) => {
                for warning in &warnings {
                    // One line each, whatever the render put in the sentence.
                    log::warn!("job {id}: {}", warning.replace(['\r', '\n'], " "));
                }
                let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                self.job.complete(pages, size, ms);
                self.live.set_pages(pages, pages);
                log::info!("job {id}: done, {pages} pages, {rows} rows, {size} bytes in {ms} ms");
            }
            Err(Ending::Stopped(StopReason::Shutdown)) => {
                self.job.requeue_after_shutdown();
                log::info!("job {id}: stopped by shutdown, back in the queue");
            }
            Err(Ending::Stopped(StopReason::Deadline)) => {
                let limit = human(self.deadline);
                log::warn!("job {id}: failed, still rendering after {limit}");
                self.job.fail(&format!(
                    "the PDF took longer than {limit} to make and was stopped; try fewer rows"
                ));
            }
            Err(Ending::Stopped(StopReason::Cancelled)) => {
                self.job.cancel();
                // How far it got stays visible.
                let reached = self.live.progress();
                self.job.pages_done = reached.pages_done;
                self.job.pages_total = reached.pages_total;
                log::info!(
                    "job {id}: cancelled at page {}, its partial file removed",
                    self.live.progress().pages_done
                );
            }
            Err(Ending::Stopped(StopReason::TooManyPages)) => {
                let max = self.max_pages;
                log::warn!("job {id}: failed, grew past {max} pages");
                self.job.fail(&format!(
                    "the report grew past {max} pages, the most allowed, and was stopped; try \
                     fewer rows"
                ));
            }
            Err(Ending::Failed { user, detail }) => {
                log::warn!("job {id}: failed: {detail}");
                self.job.fail(&user);
            }
        }
    }

    /// Records a job that cannot run here as failed (e.g. over this process's limits).
    fn fail_now(mut self, message: &str) {
        let id = self.job.id;
        log::warn!("job {id}: failed before starting: {message}");
        self.job.fail(message);
        if let Err(e) = self.store.save(&self.job) {
            log::error!("job {id}: could not record the failure: {e}");
        }
        self.live.set_state(State::Failed);
    }

    fn render_and_publish(&self) -> Result<Published, Ending> {
        let tmp = self.store.pdf_tmp_path(self.job.id);
        let result = self.render_to(&tmp);
        if result.is_err() {
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "job {}: could not remove {}: {e}",
                    self.job.id,
                    tmp.display()
                ),
            }
        }
        result
    }

    /// Renders into `tmp`, then makes it the job's PDF (fsync, rename, fsync dir).
    fn render_to(&self, tmp: &Path) -> Result<Published, Ending> {
        let id = self.job.id;
        // Never through a link someone left at the temporary name (issue #11).
        let mut file = super::store::create_fresh(tmp).map_err(|e| io_failed(tmp, e))?;
        let outcome = self.draw(&mut file)?;
        file.sync_all().map_err(|e| io_failed(tmp, e))?;
        drop(file);
        let pdf = self.store.pdf_path(id);
        fs::rename(tmp, &pdf).map_err(|e| io_failed(&pdf, e))?;
        self.store.sync_files_dir().map_err(|e| Ending::Failed {
            user: NOT_SAVED.to_owned(),
            detail: e.to_string(),
        })?;
        let size = fs::metadata(&pdf).map_err(|e| io_failed(&pdf, e))?.len();
        Ok(Published {
            pages: outcome.pages,
            rows: outcome.rows,
            size,
            warnings: outcome.warnings,
        })
    }

    /// Calls the render function with a progress callback that feeds the live view, writes
    /// the record now and then, and says stop when asked to or past the page cap.
    fn draw(&self, file: &mut File) -> Result<RenderOutcome, Ending> {
        let id = self.job.id;
        let mut snapshot = self.job.clone();
        let mut last_persist = Instant::now();
        let mut last_cancel_check = Instant::now();
        let mut progress = |done: u32, total: u32| -> bool {
            self.live.set_pages(done, total);
            if done > self.max_pages || total > self.max_pages {
                self.live.request_stop(StopReason::TooManyPages);
            }
            // A cancel asked for in another process arrives as a marker on disk: one stat
            // every few pages' time, not per page.
            if last_cancel_check.elapsed() >= CANCEL_CHECK_EVERY {
                last_cancel_check = Instant::now();
                if self.store.cancel_requested(id) {
                    self.live.request_stop(StopReason::Cancelled);
                }
            }
            if self.live.stop_reason().is_some() {
                return false;
            }
            // The last page is recorded at once: writing the file can take longer than the
            // layout, and other workers' status pages should say so meanwhile. With the total
            // unknown (0) there is no last page to tell, so only the clock writes.
            let laid_out = total > 0 && done >= total;
            if last_persist.elapsed() >= PERSIST_EVERY || laid_out {
                last_persist = Instant::now();
                snapshot.pages_done = done;
                snapshot.pages_total = total;
                if let Err(e) = self.store.save(&snapshot) {
                    log::warn!("job {id}: could not record progress: {e}");
                }
            }
            true
        };
        let rendered = panic::catch_unwind(AssertUnwindSafe(|| {
            (self.render)(&self.job.request, &mut progress, file)
        }));
        self.ending_of(rendered)
    }

    /// What the render's answer (or its panic) means for the job. A `Stopped` is trusted only
    /// when the runner did ask for a stop, and the runner says why; a `Failed` is a failure
    /// even if a stop was asked for meanwhile (the type says what happened, not side state).
    fn ending_of(
        &self,
        rendered: std::thread::Result<Result<RenderOutcome, RenderFailure>>,
    ) -> Result<RenderOutcome, Ending> {
        match rendered {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(RenderFailure::Stopped)) => Err(match self.live.stop_reason() {
                Some(reason) => Ending::Stopped(reason),
                None => Ending::Failed {
                    user: COULD_NOT_MAKE.to_owned(),
                    detail: "the render said it was stopped, but nothing asked it to stop"
                        .to_owned(),
                },
            }),
            Ok(Err(RenderFailure::Failed { user, detail })) => Err(Ending::Failed {
                user: if user.trim().is_empty() {
                    COULD_NOT_MAKE.to_owned()
                } else {
                    user
                },
                detail,
            }),
            Err(payload) => {
                let detail = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Ending::Failed {
                    user: format!("{COULD_NOT_MAKE}: the renderer crashed"),
                    detail: format!("render panicked: {detail}"),
                })
            }
        }
    }
}

/// What the user reads when the file could not be written or published.
const NOT_SAVED: &str = "the PDF could not be saved on the server";

fn io_failed(path: &Path, e: io::Error) -> Ending {
    Ending::Failed {
        user: NOT_SAVED.to_owned(),
        detail: StoreError::Io {
            path: path.to_owned(),
            source: e,
        }
        .to_string(),
    }
}

/// "about 12 pages", or "page count unknown" for an estimate of 0.
fn about_pages(pages: u32) -> String {
    if pages == 0 {
        "page count unknown".to_owned()
    } else {
        format!("about {pages} pages")
    }
}

/// "30 minutes", "2 hours", "90 seconds", "250 milliseconds".
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s == 0 {
        (u64::try_from(d.as_millis()).unwrap_or(0), "millisecond")
    } else if s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
pub(super) mod tests;
