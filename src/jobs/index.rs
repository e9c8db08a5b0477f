//! The janitor's index: what this process knows of each record in the store, so that a sweep
//! reads only the records that can need work and its cost follows the work, not the archive.
//!
//! A finished record (done or failed) never changes again except by its removal, and ids are
//! never reused; so once read, it is kept here as its state and its expiry instant, in expiry
//! order, and never read again: the sweep only touches those that are due. Unfinished records
//! are the work: they are read on every sweep, as before. New and removed records are found by
//! listing the jobs directory, which the sweep skips while the directory's stamp (mtime) says
//! nothing was added or removed since the last listing (`needs_listing`). Corrupt records are
//! reported once and read again only at the periodic recheck.
//!
//! Per process: several workers share one data directory, and each keeps its own index.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use super::runner::JobCounts;
use super::store::DirStamp;
use super::{JobId, State};

/// A directory stamp this close to the moment it was read is not trusted: a change in the
/// same tick of the file system's coarse clock would leave the mtime as it was. The next sweep
/// lists again, and by then the stamp is old enough to be trusted.
pub(super) const MTIME_SLACK: Duration = Duration::from_secs(2);

/// The directory is listed, and corrupt records read again, at least this often whatever its
/// stamp says: a safety net for file systems whose mtime misleads (e.g. cached attributes),
/// and the way a repaired record is noticed.
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// What the index knows of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// Queued or running when last read, or not read yet (just listed, or live here): read on
    /// every sweep.
    Unfinished,
    /// Done or failed: never read again; removed once `expires_ms` (Unix ms) has passed.
    Final {
        state: State,
        expires_ms: u64,
        /// Size of its PDF (0 without one).
        bytes: u64,
    },
    /// Would not load as a record; reported once, read again only at a recheck.
    Corrupt,
}

/// The last listing of the jobs directory.
#[derive(Clone, Copy, Debug)]
struct Listing {
    /// The directory's stamp, read just before the listing.
    stamp: DirStamp,
    /// False when the stamp was too recent to tell a later change apart (`MTIME_SLACK`).
    trusted: bool,
}

/// Records by id, unfinished ones apart, finished ones in expiry order. Kept by the janitor of
/// one `Runner`; only a sweep uses it.
#[derive(Debug)]
pub(super) struct Index {
    known: HashMap<JobId, Known>,
    /// Ids whose `Known` is `Unfinished`.
    unfinished: BTreeSet<JobId>,
    /// `(expires_ms, id)` of every `Final` record, soonest first.
    expiry: BTreeSet<(u64, JobId)>,
    /// Final records by state (queued and running stay 0).
    finals: JobCounts,
    /// Bytes of the finished records' PDFs together.
    final_bytes: u64,
    listing: Option<Listing>,
    /// When the directory was last listed and corrupt records read whatever the stamp said.
    rechecked: Instant,
}

impl Default for Index {
    fn default() -> Index {
        Index::new()
    }
}

impl Index {
    /// An empty index: the first sweep lists the directory and reads every record once.
    pub(super) fn new() -> Index {
        Index {
            known: HashMap::new(),
            unfinished: BTreeSet::new(),
            expiry: BTreeSet::new(),
            finals: JobCounts::default(),
            final_bytes: 0,
            listing: None,
            rechecked: Instant::now(),
        }
    }

    /// Whether the directory must be listed to find records added or removed since the last
    /// listing: never listed, its stamp changed, the last stamp was too recent to trust, or a
    /// recheck is due (`recheck_due`).
    pub(super) fn needs_listing(&self, stamp: &DirStamp, now: Instant) -> bool {
        match &self.listing {
            None => true,
            Some(last) => !last.trusted || last.stamp != *stamp || self.recheck_due(now),
        }
    }

    /// Whether it is time for the periodic recheck (`RECHECK_EVERY`).
    pub(super) fn recheck_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.rechecked) >= RECHECK_EVERY
    }

    /// Takes in a listing of the directory: `ids` sorted, as `Store::scan` returns them, after
    /// `stamp` was read at `read_at` (system clock). Records no longer listed are forgotten,
    /// new ones are added as unfinished, to be read by this sweep. Returns how many were added
    /// and how many forgotten.
    pub(super) fn listed(
        &mut self,
        ids: &[JobId],
        stamp: DirStamp,
        read_at: SystemTime,
    ) -> (usize, usize) {
        let before = self.known.len();
        let gone: Vec<JobId> = self
            .known
            .keys()
            .filter(|id| ids.binary_search(id).is_err())
            .copied()
            .collect();
        for &id in &gone {
            self.forget(id);
        }
        let mut added = 0;
        for &id in ids {
            if let Entry::Vacant(entry) = self.known.entry(id) {
                entry.insert(Known::Unfinished);
                self.unfinished.insert(id);
                added += 1;
            }
        }
        debug_assert_eq!(self.known.len(), before - gone.len() + added);
        // A stamp from the future (a clock step back) is not trusted either.
        let trusted = stamp
            .modified()
            .checked_add(MTIME_SLACK)
            .is_some_and(|settled| settled <= read_at);
        self.listing = Some(Listing { stamp, trusted });
        (added, gone.len())
    }

    /// Starts a recheck at `now`: corrupt records become unfinished again, to be read by this
    /// sweep. Returns them, so that the sweep does not report them again if they still are.
    pub(super) fn recheck(&mut self, now: Instant) -> Vec<JobId> {
        self.rechecked = now;
        let corrupt: Vec<JobId> = self
            .known
            .iter()
            .filter(|(_, known)| **known == Known::Corrupt)
            .map(|(id, _)| *id)
            .collect();
        for &id in &corrupt {
            self.set(id, Known::Unfinished);
        }
        corrupt
    }

    /// Ids to read this sweep: the unfinished ones and those not read yet, in id order.
    pub(super) fn unfinished(&self) -> Vec<JobId> {
        self.unfinished.iter().copied().collect()
    }

    /// Ids of finished records whose expiry instant (Unix ms) is at or before `now_ms`,
    /// soonest first.
    pub(super) fn due(&self, now_ms: u64) -> Vec<JobId> {
        self.expiry
            .iter()
            .take_while(|(expires_ms, _)| *expires_ms <= now_ms)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Records that `id` was read and is finished: never read again, removed after
    /// `expires_ms`.
    pub(super) fn set_final(&mut self, id: JobId, state: State, expires_ms: u64, bytes: u64) {
        self.set(
            id,
            Known::Final {
                state,
                expires_ms,
                bytes,
            },
        );
    }

    /// Bytes of the finished jobs' PDFs, as their records say.
    pub(super) fn final_bytes(&self) -> u64 {
        self.final_bytes
    }

    /// Records that `id` would not load. True the first time, when it should be reported.
    pub(super) fn set_corrupt(&mut self, id: JobId) -> bool {
        let first = self.known.get(&id) != Some(&Known::Corrupt);
        self.set(id, Known::Corrupt);
        first
    }

    /// Forgets a record that is gone (removed here or elsewhere).
    pub(super) fn forget(&mut self, id: JobId) {
        if let Some(known) = self.known.remove(&id) {
            self.unlink(id, known);
        }
    }

    /// Finished records by state: done and failed, the rest 0.
    pub(super) fn final_counts(&self) -> JobCounts {
        self.finals
    }

    /// How many records are known as corrupt.
    #[cfg(test)]
    pub(super) fn corrupt_count(&self) -> usize {
        self.known
            .values()
            .filter(|k| **k == Known::Corrupt)
            .count()
    }

    /// Makes the next `recheck_due` true, as if `RECHECK_EVERY` had passed.
    #[cfg(test)]
    pub(super) fn expire_recheck(&mut self) {
        self.rechecked = Instant::now()
            .checked_sub(RECHECK_EVERY)
            .unwrap_or(self.rechecked);
    }

    fn set(&mut self, id: JobId, known: Known) {
        if let Some(old) = self.known.insert(id, known) {
            self.unlink(id, old);
        }
        match known {
            Known::Unfinished => {
                self.unfinished.insert(id);
            }
            Known::Final {
                state,
                expires_ms,
                bytes,
            } => {
                self.expiry.insert((expires_ms, id));
                self.finals.add(state);
                self.final_bytes = self.final_bytes.saturating_add(bytes);
            }
            Known::Corrupt => {}
        }
    }

    /// Takes `id` out of the side structures `known` puts it in.
    fn unlink(&mut self, id: JobId, known: Known) {
        match known {
            Known::Unfinished => {
                self.unfinished.remove(&id);
            }
            Known::Final {
                state,
                expires_ms,
                bytes,
            } => {
                self.expiry.remove(&(expires_ms, id));
                self.finals.remove(state);
                self.final_bytes = self.final_bytes.saturating_sub(bytes);
            }
            Known::Corrupt => {}
        }
    }
}
