//! The janitor: on start, every `janitor_interval` and whenever a job ends here, looks at the
//! store and (a) starts here the oldest unfinished jobs nobody holds a claim on —
//! its worker died, or never started it, or it waits for a slot elsewhere — as many as this
//! process has free slots, settling the death of a render whose worker died (blamed if it ran
//! alone, else a bystander; see `Job::settle_death`) and failing a job that kills its worker;
//! (b) removes finished jobs older than `retention`, PDF included; (c) counts records by state
//! for `Runner::job_counts`; (d) every [`ORPHAN_EVERY`], removes files older than `retention`
//! that belong to no record (a PDF whose record was quarantined or lost, a lock file left by
//! a job that was never recorded).
//!
//! It keeps an index of the records (`index.rs`) so that a sweep reads only the unfinished
//! ones, lists the directory only when records came or went, and touches finished ones only
//! when they are due to expire: an idle worker over a large archive does next to nothing.
//!
//! Store I/O is blocking, so each sweep runs on a blocking thread; the loop itself only waits.

use std::pin::pin;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::time::MissedTickBehavior;

use super::index::Index;
use super::job::{Death, MAX_BYSTANDER_CRASHES, now_ms};
use super::runner::{Inner, JobCounts, Pending, Runner};
use super::{Job, JobId, State, StoreError};

/// How often the janitor looks for files that belong to no record: a listing of the files
/// folder, so not every sweep.
const ORPHAN_EVERY: Duration = Duration::from_secs(600);

/// `tokio::time::interval` panics on a zero period; a misconfigured zero means "often".
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl Runner {
    /// Runs the janitor until `shutdown` resolves or the runner drains. The first sweep runs at
    /// once, which is how jobs interrupted by a restart are resumed.
    pub async fn run_janitor(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut closing = self.inner.closing_watch();
        let mut ticks = tokio::time::interval(self.inner.config.janitor_interval.max(MIN_INTERVAL));
        // After a slow sweep, wait a full interval rather than sweeping again at once.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut orphans_looked = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = closing.wait_for(|c| *c) => break,
                _ = ticks.tick() => {}
                // A job ended here: a slot may be free, so look now rather than at the tick.
                () = self.inner.sweep_soon.notified() => {}
            }
            let inner = Arc::clone(&self.inner);
            match tokio::task::spawn_blocking(move || inner.sweep()).await {
                Ok(found) => {
                    for pending in found {
                        self.start(pending);
                    }
                }
                Err(e) => log::error!("janitor: sweep ended abnormally: {e}"),
            }
            if orphans_looked.elapsed() >= ORPHAN_EVERY {
                orphans_looked = Instant::now();
                let inner = Arc::clone(&self.inner);
                if let Err(e) = tokio::task::spawn_blocking(move || inner.remove_orphans()).await {
                    log::error!("janitor: orphan sweep ended abnormally: {e}");
                }
            }
        }
    }
}

impl Inner {
    /// Removes files older than `retention` that belong to no job record. Returns how many.
    pub(super) fn remove_orphans(&self) -> usize {
        let cutoff = SystemTime::now()
            .checked_sub(self.config.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let orphans = match self.store.orphans(cutoff) {
            Ok(orphans) => orphans,
            Err(e) => {
                log::error!("janitor: {e}");
                return 0;
            }
        };
        let mut removed = 0;
        for (id, path) in orphans {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    log::info!(
                        "job {id}: removed {}, which no record names",
                        path.display()
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("job {id}: {}: {e}", path.display()),
            }
        }
        removed
    }

    /// One pass over the store. Returns the jobs it claimed and that should start here: the
    /// oldest unfinished jobs nobody holds, no more than this process has free slots for
    /// (`free_slots`), so that queued work goes to whichever worker has room.
    ///
    /// Reads only what can need work (see `index.rs`): the unfinished records, the directory
    /// listing when records may have come or gone, and none of the finished ones but those
    /// due to expire.
    pub(super) fn sweep(self: &Arc<Self>) -> Vec<Pending> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let rechecked = match self.refresh(&mut index) {
            Ok(rechecked) => rechecked,
            Err(e) => {
                log::error!("janitor: {e}");
                return Vec::new();
            }
        };
        // (created, id) of unfinished jobs not live here.
        let mut waiting = Vec::new();
        let mut counts = JobCounts::default();
        let mut clients: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut unfinished_bytes = 0u64;
        for id in index.unfinished() {
            if self.is_closing() {
                return Vec::new();
            }
            // Its record changes under this process's hands; it is read once it is no longer
            // live here (and `job_counts` counts it meanwhile).
            if self.is_live(id) {
                continue;
            }
            match self.store.load(id) {
                Ok(Some(job)) if job.state.is_final() => {
                    index.set_final(
                        id,
                        job.state,
                        self.expires_ms(&job),
                        job.size_bytes.unwrap_or(0),
                    );
                }
                Ok(Some(job)) => {
                    counts.add(job.state);
                    unfinished_bytes = unfinished_bytes.saturating_add(
                        job.expected_bytes
                            .unwrap_or(super::runner::UNKNOWN_FILE_BYTES),
                    );
                    if let Some(client) = &job.client {
                        *clients.entry(client.clone()).or_default() += 1;
                    }
                    waiting.push((job.created_ms, id));
                }
                Ok(None) => index.forget(id),
                Err(e @ StoreError::Corrupt { .. }) => {
                    let first = index.set_corrupt(id);
                    // The store has moved it to quarantine/ with its one WARN.
                    if first && rechecked.binary_search(&id).is_err() {
                        log::debug!("job {id}: skipped by the janitor: {e}");
                    }
                }
                Err(e) => log::error!("job {id}: janitor: {e}"),
            }
        }
        self.expire_due(&mut index, now_ms());
        let finals = index.final_counts();
        counts.done = finals.done;
        counts.failed = finals.failed;
        counts.cancelled = finals.cancelled;
        *self
            .swept_disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            index.final_bytes().saturating_add(unfinished_bytes);
        *self.swept.lock().unwrap_or_else(PoisonError::into_inner) = counts;
        *self
            .swept_clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = clients;
        waiting.sort_unstable();
        let mut found = Vec::new();
        for (_, id) in waiting {
            if self.is_closing() || self.free_slots() == 0 {
                break;
            }
            match self.take(id) {
                Ok(Some(pending)) => found.push(pending),
                Ok(None) => {}
                Err(e) => log::error!("job {id}: janitor: {e}"),
            }
        }
        found
    }

    /// Brings the index up to date with the jobs directory: lists it only when its stamp says
    /// records may have been added or removed since the last listing, or at the periodic
    /// recheck. Returns the corrupt records the recheck reads again (sorted), which were
    /// reported already.
    fn refresh(&self, index: &mut Index) -> Result<Vec<JobId>, StoreError> {
        let now = Instant::now();
        let stamp = self.store.records_stamp()?;
        if !index.needs_listing(&stamp, now) {
            return Ok(Vec::new());
        }
        // Taken after the stamp: a change after this moment gets a later mtime, unless the
        // stamp itself is recent, which `Index::listed` then does not trust.
        let read_at = SystemTime::now();
        let ids = self.store.scan()?;
        let (added, gone) = index.listed(&ids, stamp, read_at);
        if added > 0 || gone > 0 {
            log::debug!(
                "janitor: {added} new records, {gone} gone, {} in all",
                ids.len()
            );
        }
        let mut rechecked = if index.recheck_due(now) {
            index.recheck(now)
        } else {
            Vec::new()
        };
        rechecked.sort_unstable();
        Ok(rechecked)
    }

    /// When a finished job's record and PDF go (Unix ms): `retention` after it finished.
    fn expires_ms(&self, job: &Job) -> u64 {
        let retention = u64::try_from(self.config.retention.as_millis())
            .unwrap_or(u64::MAX)
            // A report may keep its jobs for less (`retention` in its file).
            .min(job.retention_ms.unwrap_or(u64::MAX));
        job.finished_ms
            .unwrap_or(job.created_ms)
            .saturating_add(retention)
    }

    /// Removes the finished jobs whose retention has passed by `now` (Unix ms), PDF included,
    /// without reading their records: a finished record never changes. One whose claim is held
    /// stays for a later sweep.
    fn expire_due(&self, index: &mut Index, now: u64) {
        for id in index.due(now) {
            if self.is_closing() {
                return;
            }
            if self.is_live(id) {
                continue;
            }
            match self.expire(id) {
                Ok(true) => index.forget(id),
                Ok(false) => {}
                Err(e) => log::error!("job {id}: janitor: {e}"),
            }
        }
    }

    /// Claims an unfinished job to start it here. A job whose record says running lost its
    /// worker mid-render: the death is settled first (`Job::settle_death`), and the job is
    /// failed instead if that was one death too many.
    fn take(self: &Arc<Self>, id: JobId) -> Result<Option<Pending>, StoreError> {
        let Some(claim) = self.store.claim(id)? else {
            // Its worker is alive and on it.
            return Ok(None);
        };
        // Its worker may have finished it and let go between our scan and our claim.
        let Some(mut job) = self.store.load(id)? else {
            return Ok(None);
        };
        if job.state.is_final() {
            return Ok(None);
        }
        if job.state == State::Running {
            let death = job.settle_death();
            let max = self.config.max_attempts;
            if job.crashes >= max {
                job.fail(&format!(
                    "the render failed repeatedly (its worker died {} times while it was the \
                     only render running) and was given up; try fewer rows",
                    job.crashes
                ));
                log::warn!(
                    "job {id}: failed, its worker died {} times while it rendered alone",
                    job.crashes
                );
            } else if job.bystander_crashes >= MAX_BYSTANDER_CRASHES {
                job.fail(&format!(
                    "the render was interrupted {} times and was given up; try again later",
                    job.bystander_crashes
                ));
                log::warn!(
                    "job {id}: failed, its worker died {} times while it rendered",
                    job.bystander_crashes
                );
            } else {
                log::info!(
                    "job {id}: its worker died while rendering it ({}); {} deaths counted \
                     against it, {} beside other renders",
                    match death {
                        Death::Blamed => "it ran alone: counted",
                        Death::Bystander => "other renders ran beside it: not counted",
                    },
                    job.crashes,
                    job.bystander_crashes
                );
            }
            // Saved before anything else happens: the death is settled exactly once.
            self.store.save(&job)?;
            if job.state.is_final() {
                return Ok(None);
            }
        }
        let pages = (self.estimate)(&job.request);
        let Some(slot) = self.reserve(id, pages, job.is_suspect(), &job) else {
            // Queue full here: the claim drops, another worker (or a later sweep) takes it.
            return Ok(None);
        };
        log::info!(
            "job {id}: recovered ({}, {} attempts so far{})",
            job.state,
            job.attempts,
            if job.is_suspect() { ", runs alone" } else { "" }
        );
        Ok(Some(Pending { job, claim, slot }))
    }

    /// Removes a finished job past its retention; true if it did (or it was gone already).
    fn expire(&self, id: JobId) -> Result<bool, StoreError> {
        // Whoever holds the claim may still be writing the record; a final job's claim is only
        // held for moments, so skipping it costs one interval.
        let Some(claim) = self.store.claim(id)? else {
            return Ok(false);
        };
        self.store.remove(id)?;
        drop(claim);
        log::info!("job {id}: expired, removed");
        Ok(true)
    }
}

#[cfg(test)]
#[path = "janitor_tests.rs"]
mod tests;
