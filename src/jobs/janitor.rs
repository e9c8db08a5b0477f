//! The janitor: on start, every `janitor_interval` and whenever a job ends here, looks at every
//! record in the store and (a) starts here the oldest unfinished jobs nobody holds a claim on —
//! its worker died, or never started it, or it waits for a slot elsewhere — as many as this
//! process has free slots, settling the death of a render whose worker died (blamed if it ran
//! alone, else a bystander; see `Job::settle_death`) and failing a job that kills its worker;
//! (b) removes finished jobs older than `retention`, PDF included.
//!
//! Store I/O is blocking, so each sweep runs on a blocking thread; the loop itself only waits.

use std::pin::pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::job::{Death, MAX_BYSTANDER_CRASHES, now_ms};
use super::runner::{Inner, JobCounts, Pending, Runner};
use super::{Job, JobId, State, StoreError};

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
        }
    }
}

impl Inner {
    /// One pass over the store. Returns the jobs it claimed and that should start here: the
    /// oldest unfinished jobs nobody holds, no more than this process has free slots for
    /// (`free_slots`), so that queued work goes to whichever worker has room.
    pub(super) fn sweep(self: &Arc<Self>) -> Vec<Pending> {
        let ids = match self.store.scan() {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("janitor: {e}");
                return Vec::new();
            }
        };
        // Forget corrupt records that are gone, so the set cannot grow without bound.
        self.corrupt_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id| ids.binary_search(id).is_ok());
        let now = now_ms();
        // (created, id) of unfinished jobs not live here.
        let mut waiting = Vec::new();
        let mut counts = JobCounts::default();
        for id in ids {
            if self.is_closing() {
                return Vec::new();
            }
            if self.is_live(id) {
                continue;
            }
            match self.load_reporting_corrupt(id) {
                Ok(Some(job)) if job.state.is_final() => match self.expire_if_old(&job, now) {
                    Ok(true) => {}
                    Ok(false) => counts.add(job.state),
                    Err(e) => {
                        counts.add(job.state);
                        log::error!("job {id}: janitor: {e}");
                    }
                },
                Ok(Some(job)) => {
                    counts.add(job.state);
                    waiting.push((job.created_ms, id));
                }
                Ok(None) => {}
                Err(e) => log::error!("job {id}: janitor: {e}"),
            }
        }
        *self.swept.lock().unwrap_or_else(PoisonError::into_inner) = counts;
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

    /// Claims an unfinished job to start it here. A job whose record says running lost its
    /// worker mid-render: the death is settled first (`Job::settle_death`), and the job is
    /// failed instead if that was one death too many.
    fn take(self: &Arc<Self>, id: JobId) -> Result<Option<Pending>, StoreError> {
        let Some(claim) = self.store.claim(id)? else {
            // Its worker is alive and on it.
            return Ok(None);
        };
        // Its worker may have finished it and let go between our scan and our claim.
        let Some(mut job) = self.load_reporting_corrupt(id)? else {
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
        let Some(slot) = self.reserve(id, pages, job.is_suspect()) else {
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

    /// Removes a finished job past its retention; true if it did.
    fn expire_if_old(&self, job: &Job, now: u64) -> Result<bool, StoreError> {
        let retention = u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX);
        let finished = job.finished_ms.unwrap_or(job.created_ms);
        if now.saturating_sub(finished) < retention {
            return Ok(false);
        }
        // Whoever holds the claim may still be writing the record; a final job's claim is only
        // held for moments, so skipping it costs one interval.
        if let Some(claim) = self.store.claim(job.id)? {
            self.store.remove(job.id)?;
            drop(claim);
            log::info!("job {}: expired, removed", job.id);
            return Ok(true);
        }
        Ok(false)
    }

    /// Loads a record; a corrupt one is logged the first time it is seen and then skipped.
    fn load_reporting_corrupt(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        match self.store.load(id) {
            Err(e @ StoreError::Corrupt { .. }) => {
                let first = self
                    .corrupt_seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
                if first {
                    log::error!("job {id}: skipped by the janitor: {e}");
                }
                Ok(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
#[path = "janitor_tests.rs"]
mod tests;
