//! `Store`: job records and finished PDFs under one data directory, and the claims that keep
//! two renders of one job from running at once — across processes and within one.
//!
//! Layout:
//! ```text
//! <data>/jobs/<id>.json       the record (written as <id>.json.tmp, fsynced, renamed; a new
//!                             one renamed, then fsynced: `Store::create`)
//! <data>/jobs/<id>.lock       an empty file; an exclusive flock on it is the job's claim
//! <data>/jobs/<id>.cancel     present while a cancel is asked for and not yet carried out
//! <data>/files/<id>.pdf       the finished PDF (written as <id>.pdf.tmp by the runner)
//! <data>/keys/<digest>.json   an `Idempotency-Key` taken: its job and the body it came with
//! <data>/reuse/<digest>.json  the latest job of a request a report reuses (`reuse_for`)
//! <data>/deliveries/<id>      an empty file per job whose webhook is not settled yet
//! <data>/users/<digest>/<id>  an empty file per job of an authenticated user (their list)
//! ```
//! Only one holder of a job's claim writes its record, so `<id>.json.tmp` needs no unique name.
//!
//! All I/O here is blocking; async callers run it in `spawn_blocking`.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::job::is_digest;
use super::{Job, JobId};

/// A store operation failed. Always names the file involved.
#[derive(Debug)]
pub enum StoreError {
    /// The file system refused.
    Io { path: PathBuf, source: io::Error },
    /// A record exists but cannot be one we wrote (unparsable, wrong id, out of limits).
    Corrupt { path: PathBuf, reason: String },
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Io { path, .. } | StoreError::Corrupt { path, .. } => path,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Corrupt { path, reason } => {
                write!(f, "{}: corrupt job record: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { .. } => None,
        }
    }
}

/// The largest job record `load` reads; a record is well under 2 KB.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Job records, claims and PDFs under one data directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    jobs: PathBuf,
    files: PathBuf,
    keys: PathBuf,
    reuse: PathBuf,
    deliveries: PathBuf,
    users: PathBuf,
    /// Tests count the reads of this store and its clones (`loads`, `scans`).
    #[cfg(test)]
    reads: Arc<Reads>,
}

/// How often a store (and its clones) read records and listed them; tests only.
#[cfg(test)]
#[derive(Debug, Default)]
struct Reads {
    loads: AtomicUsize,
    scans: AtomicUsize,
}

/// The jobs directory's identity and last change, as `Store::records_stamp` reads it. Every
/// record written, replaced or removed changes it: records are written as a temporary file
/// renamed into place, and both the creation and the rename change the directory's mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirStamp {
    dev: u64,
    ino: u64,
    modified: SystemTime,
}

impl DirStamp {
    /// When the directory last changed, by the file system's clock (which may lag the system
    /// clock by a tick or run ahead of it).
    pub(crate) fn modified(&self) -> SystemTime {
        self.modified
    }
}

/// Which index of digests → jobs a key file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `Idempotency-Key`s: taken once, never replaced while their job is kept.
    Idempotency,
    /// Identical requests of a report with `reuse_for`: the latest job wins.
    Reuse,
}

/// What a key file says: the job made under the key, a digest of the request it was made
/// for (so a reuse of the key with another request is noticed), and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub job: JobId,
    pub request: String,
    pub created_ms: u64,
}

/// What `bind_key` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyBinding {
    /// The key was free and is now this job's.
    Bound,
    /// Someone took it first (in this process or another): their entry.
    Taken(KeyEntry),
}

/// The exclusive right to work on one job: an flock held on `jobs/<id>.lock`.
///
/// Dropping it closes the file, which releases the lock; so does the death of the process,
/// which is how a crashed worker's jobs become claimable again. Locks belong to the open file
/// description, so a second `claim` of the same job fails even inside the same process.
#[derive(Debug)]
pub struct Claim {
    id: JobId,
    _file: File,
}

impl Claim {
    /// The claimed job.
    pub fn id(&self) -> JobId {
        self.id
    }
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/jobs` and `<data_dir>/files`.
    ///
    /// # Errors
    /// `StoreError::Io` if a directory cannot be created.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let store = Store {
            jobs: data_dir.join("jobs"),
            files: data_dir.join("files"),
            keys: data_dir.join("keys"),
            reuse: data_dir.join("reuse"),
            deliveries: data_dir.join("deliveries"),
            users: data_dir.join("users"),
            #[cfg(test)]
            reads: Arc::default(),
        };
        let dirs = [
            &store.jobs,
            &store.files,
            &store.keys,
            &store.reuse,
            &store.deliveries,
            &store.users,
        ];
        for dir in dirs {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(store)
    }

    /// Writes a new job's record durably. The caller should hold the job's claim, or another
    /// process's janitor may claim the job before the caller does.
    ///
    /// Unlike [`Store::save`], the record is renamed into place before it is synced: there is
    /// no older content a crash could destroy, and a job is acknowledged (303, 202) only
    /// after both syncs, so a crash in between leaves at most an unacknowledged record that
    /// the next reader quarantines. On ext4 this makes the file's sync commit the name too,
    /// and the directory's sync finds nothing left to commit: one journal commit per new job
    /// instead of two, which is what a POST waits for while renders write.
    ///
    /// # Errors
    /// `StoreError::Io` if the record cannot be written and synced.
    pub fn create(&self, job: &Job) -> Result<(), StoreError> {
        self.write_record(job, Replacing::Nothing)
    }

    /// Replaces a job's record atomically: readers see the old record or the new, whole.
    /// Only the holder of the job's claim may call it.
    ///
    /// # Errors
    /// `StoreError::Io` if the record cannot be written, synced or renamed.
    pub fn save(&self, job: &Job) -> Result<(), StoreError> {
        self.write_record(job, Replacing::Something)
    }

    fn write_record(&self, job: &Job, replacing: Replacing) -> Result<(), StoreError> {
        let path = self.record_path(job.id);
        let tmp = self.jobs.join(format!("{}.json.tmp", job.id));
        // Serializing plain data to a Vec cannot fail; a map with non-string keys could, and
        // `Job` has none.
        let bytes = serde_json::to_vec_pretty(job).expect("a Job always serializes");
        write_durably(&tmp, &path, &bytes, replacing)
    }

    /// Reads a job's record; `None` if there is none.
    ///
    /// # Errors
    /// `StoreError::Corrupt` if the file does not parse, names another id, or breaks a limit;
    /// `StoreError::Io` if it cannot be read.
    pub fn load(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        #[cfg(test)]
        self.reads.loads.fetch_add(1, Ordering::Relaxed);
        let path = self.record_path(id);
        let checked = match read_regular(&path, MAX_RECORD_BYTES) {
            Ok(None) => return Ok(None),
            Ok(Some(bytes)) => parse_record(&bytes, id),
            Err(ReadError::Io(e)) => return Err(StoreError::io(&path, e)),
            Err(ReadError::Unfit(reason)) => Err(reason),
        };
        match checked {
            Ok(job) => Ok(Some(job)),
            Err(reason) => {
                // Out of the way, once: it answers 404 from now on, and is kept for a person
                // to look at.
                self.quarantine(id, &path, &reason);
                Err(StoreError::Corrupt { path, reason })
            }
        }
    }

    /// Moves a damaged record to `<data>/quarantine/` (one WARN), so that it is neither read
    /// again nor served.
    fn quarantine(&self, id: JobId, path: &Path, reason: &str) {
        let dir = self.jobs.with_file_name("quarantine");
        let to = dir.join(format!("{id}.json"));
        let moved = fs::create_dir_all(&dir).and_then(|()| fs::rename(path, &to));
        match moved {
            Ok(()) => log::warn!(
                "job {id}: damaged record ({reason}) moved to {}",
                to.display()
            ),
            // Someone moved or replaced it meanwhile: nothing left to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("job {id}: damaged record ({reason}) not moved: {e}"),
        }
    }

    /// Tries to take the job's claim without waiting. `None` if someone else holds it.
    ///
    /// # Errors
    /// `StoreError::Io` if the lock file cannot be opened or locked for another reason.
    pub fn claim(&self, id: JobId) -> Result<Option<Claim>, StoreError> {
        let path = self.jobs.join(format!("{id}.lock"));
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
        };
        let file = match open() {
            // A link where the lock file should be is not ours: it goes, and is never
            // followed.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                log::warn!("job {id}: {} was a symbolic link; removed", path.display());
                remove_file_if_any(&path)?;
                open()
            }
            other => other,
        }
        .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Claim { id, _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
        }
    }

    /// Where the finished PDF of a job lives once it is complete.
    pub fn pdf_path(&self, id: JobId) -> PathBuf {
        self.files.join(format!("{id}.pdf"))
    }

    /// Where a render writes before the PDF is complete.
    pub(crate) fn pdf_tmp_path(&self, id: JobId) -> PathBuf {
        self.files.join(format!("{id}.pdf.tmp"))
    }

    /// Makes renames in `files/` durable.
    pub(crate) fn sync_files_dir(&self) -> Result<(), StoreError> {
        sync_dir(&self.files)
    }

    /// Ids of all records, sorted. Files whose names are not `<id>.json` are ignored: temporary
    /// files, lock files, and anything an operator left there.
    ///
    /// # Errors
    /// `StoreError::Io` if the directory cannot be listed.
    pub fn scan(&self) -> Result<Vec<JobId>, StoreError> {
        #[cfg(test)]
        self.reads.scans.fetch_add(1, Ordering::Relaxed);
        let entries = fs::read_dir(&self.jobs).map_err(|e| StoreError::io(&self.jobs, e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.jobs, e))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse().ok());
            if let Some(id) = id {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The jobs directory's stamp: read it before `scan`, and while it stays the same (and
    /// the change it records is not too recent for the file system's clock granularity, see
    /// the janitor) no record has been added or removed since.
    ///
    /// # Errors
    /// `StoreError::Io` if the directory cannot be examined.
    pub(crate) fn records_stamp(&self) -> Result<DirStamp, StoreError> {
        let meta = fs::metadata(&self.jobs).map_err(|e| StoreError::io(&self.jobs, e))?;
        let modified = meta.modified().map_err(|e| StoreError::io(&self.jobs, e))?;
        Ok(DirStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            modified,
        })
    }

    /// The jobs directory (also the file system whose free space counts).
    pub(crate) fn jobs_dir(&self) -> &Path {
        &self.jobs
    }

    /// Records this store and its clones have read (`load` calls) since it was opened.
    #[cfg(test)]
    pub(crate) fn loads(&self) -> usize {
        self.reads.loads.load(Ordering::Relaxed)
    }

    /// Directory listings (`scan` calls) by this store and its clones since it was opened.
    #[cfg(test)]
    pub(crate) fn scans(&self) -> usize {
        self.reads.scans.load(Ordering::Relaxed)
    }

    /// Deletes everything of a job: PDF (and leftovers of an interrupted render), record, lock
    /// file. Missing files are fine. The caller should hold the claim.
    ///
    /// The PDF goes first: if we die half-way, a record without its PDF is found and expired
    /// again, while a PDF without a record would never be found.
    ///
    /// # Errors
    /// `StoreError::Io` for the first file that exists but cannot be removed.
    pub fn remove(&self, id: JobId) -> Result<(), StoreError> {
        // The keys that name this job go with it (a record that cannot be read has none we
        // can find; `bind_key` replaces a key whose job is gone).
        let (keys, owner) = match self.load(id) {
            Ok(Some(job)) => (
                [
                    job.idempotency_key.map(|d| (KeyKind::Idempotency, d)),
                    job.dedup_key.map(|d| (KeyKind::Reuse, d)),
                ],
                job.owner,
            ),
            _ => ([None, None], None),
        };
        if let Some(owner) = owner {
            remove_file_if_any(&self.user_dir(&owner).join(id.to_string()))?;
        }
        remove_file_if_any(&self.pdf_path(id))?;
        for (kind, digest) in keys.into_iter().flatten() {
            self.remove_key(kind, &digest, id)?;
        }
        let paths = [
            self.pdf_tmp_path(id),
            self.cancel_path(id),
            self.deliveries.join(id.to_string()),
            self.record_path(id),
            self.jobs.join(format!("{id}.json.tmp")),
            self.jobs.join(format!("{id}.lock")),
        ];
        for path in paths {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        Ok(())
    }

    fn record_path(&self, id: JobId) -> PathBuf {
        self.jobs.join(format!("{id}.json"))
    }

    fn cancel_path(&self, id: JobId) -> PathBuf {
        self.jobs.join(format!("{id}.cancel"))
    }

    /// Records durably that someone asked to cancel the job, for whichever process holds
    /// it (or recovers it) to carry out.
    ///
    /// # Errors
    /// `StoreError::Io` if the marker cannot be written.
    pub fn request_cancel(&self, id: JobId) -> Result<(), StoreError> {
        let path = self.cancel_path(id);
        create_fresh(&path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(&self.jobs)
    }

    /// Whether a cancel of the job is asked for and not yet carried out. An unreadable
    /// directory counts as no.
    pub fn cancel_requested(&self, id: JobId) -> bool {
        self.cancel_path(id).try_exists().unwrap_or(false)
    }

    /// Forgets a cancel request once the job is final. Only the holder of the claim calls it.
    pub fn clear_cancel(&self, id: JobId) {
        let path = self.cancel_path(id);
        if let Err(e) = remove_file_if_any(&path) {
            log::warn!("job {id}: {e}");
        }
    }

    /// Files of the data dir that belong to no job record and were last changed before
    /// `cutoff`: PDFs (finished or partial) in `files/`, lock files, cancel markers and
    /// temporary records in `jobs/`, delivery notes. A file whose name is no job id's is
    /// left alone (it is not ours to judge).
    ///
    /// # Errors
    /// `StoreError::Io` if a folder cannot be listed.
    pub fn orphans(&self, cutoff: SystemTime) -> Result<Vec<(JobId, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        let kinds: [(&Path, &[&str]); 3] = [
            (&self.files, &[".pdf", ".pdf.tmp"]),
            (&self.jobs, &[".lock", ".cancel", ".json.tmp"]),
            (&self.deliveries, &[""]),
        ];
        for (dir, suffixes) in kinds {
            let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(dir, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let id = suffixes.iter().find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .and_then(|stem| stem.parse::<JobId>().ok())
                });
                let Some(id) = id else { continue };
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                let recorded = fs::symlink_metadata(self.record_path(id)).is_ok();
                if old && !recorded {
                    out.push((id, entry.path()));
                }
            }
        }
        Ok(out)
    }

    fn user_dir(&self, user: &str) -> PathBuf {
        self.users.join(
            super::digest(&[b"user", user.as_bytes()])
                .get(..32)
                .unwrap_or(""),
        )
    }

    /// Notes the job in its owner's list, before its record exists.
    ///
    /// # Errors
    /// `StoreError::Io` if the note cannot be written.
    pub fn note_owner(&self, user: &str, id: JobId) -> Result<(), StoreError> {
        let dir = self.user_dir(user);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = dir.join(id.to_string());
        create_fresh(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok(())
    }

    /// The jobs noted in `user`'s list, newest first (by when they were noted), at most
    /// `max`.
    ///
    /// # Errors
    /// `StoreError::Io` if the list cannot be read.
    pub fn jobs_of(&self, user: &str, max: usize) -> Result<Vec<JobId>, StoreError> {
        let dir = self.user_dir(user);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<JobId>().ok())
            else {
                continue;
            };
            let noted = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((noted, id));
        }
        found.sort_unstable_by(|a, b| b.cmp(a));
        Ok(found.into_iter().take(max).map(|(_, id)| id).collect())
    }

    /// Notes durably that the job has a webhook to deliver, before its record exists: the
    /// deliverer looks only at the jobs noted here, however many records are kept.
    ///
    /// # Errors
    /// `StoreError::Io` if the note cannot be written.
    pub fn mark_delivery(&self, id: JobId) -> Result<(), StoreError> {
        let path = self.deliveries.join(id.to_string());
        create_fresh(&path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(&self.deliveries)
    }

    /// Jobs with a webhook not settled yet, with when each was noted (epoch ms).
    ///
    /// # Errors
    /// `StoreError::Io` if the folder cannot be listed.
    pub fn pending_deliveries(&self) -> Result<Vec<(JobId, u64)>, StoreError> {
        let dir = &self.deliveries;
        let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let noted = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            out.push((id, noted));
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Forgets a job's webhook once it is settled (delivered or given up).
    pub fn clear_delivery(&self, id: JobId) {
        let path = self.deliveries.join(id.to_string());
        if let Err(e) = remove_file_if_any(&path) {
            log::warn!("job {id}: {e}");
        }
    }

    fn key_path(&self, kind: KeyKind, digest: &str) -> PathBuf {
        let dir = match kind {
            KeyKind::Idempotency => &self.keys,
            KeyKind::Reuse => &self.reuse,
        };
        dir.join(format!("{digest}.json"))
    }

    /// Takes `digest` for `entry.job` if nobody has it: written in full to a file of its own,
    /// then hard-linked to its name, which fails if the name exists. So of two racing
    /// callers, in one process or two, exactly one binds, and the other reads a whole entry.
    ///
    /// # Errors
    /// `StoreError::Io` if the file system refuses; `StoreError::Corrupt` if the entry
    /// found cannot be read.
    pub fn bind_key(
        &self,
        kind: KeyKind,
        digest: &str,
        entry: &KeyEntry,
    ) -> Result<KeyBinding, StoreError> {
        let path = self.key_path(kind, digest);
        let tmp = path.with_extension(format!("{}.tmp", JobId::new()));
        let bytes = serde_json::to_vec(entry).expect("a KeyEntry always serializes");
        let linked = (|| {
            let mut file = create_fresh(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            file.write_all(&bytes)
                .map_err(|e| StoreError::io(&tmp, e))?;
            file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
            // An entry removed between a failed link and the read is tried again; expiry
            // removes one entry at a time, so this settles at once.
            for _ in 0..3 {
                match fs::hard_link(&tmp, &path) {
                    Ok(()) => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if let Some(found) = self.load_key(kind, digest)? {
                            return Ok(Some(found));
                        }
                    }
                    Err(e) => return Err(StoreError::io(&path, e)),
                }
            }
            Err(StoreError::io(
                &path,
                io::Error::other("the key kept vanishing while it was taken"),
            ))
        })();
        let _ = fs::remove_file(&tmp);
        match linked? {
            None => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(KeyBinding::Bound)
            }
            Some(found) => Ok(KeyBinding::Taken(found)),
        }
    }

    /// Writes `entry` under `digest` whatever was there: for a reuse entry (the latest job
    /// wins) or an idempotency key whose job is gone.
    ///
    /// # Errors
    /// `StoreError::Io` if the entry cannot be written and synced.
    pub fn bind_key_replacing(
        &self,
        kind: KeyKind,
        digest: &str,
        entry: &KeyEntry,
    ) -> Result<(), StoreError> {
        let path = self.key_path(kind, digest);
        let tmp = path.with_extension(format!("{}.tmp", JobId::new()));
        let bytes = serde_json::to_vec(entry).expect("a KeyEntry always serializes");
        write_durably(&tmp, &path, &bytes, Replacing::Something)
    }

    /// The entry under `digest`, if any.
    ///
    /// # Errors
    /// `StoreError::Io` if it cannot be read, `StoreError::Corrupt` if it does not parse.
    pub fn load_key(&self, kind: KeyKind, digest: &str) -> Result<Option<KeyEntry>, StoreError> {
        if !is_digest(digest) {
            return Ok(None);
        }
        let path = self.key_path(kind, digest);
        let bytes = match read_regular(&path, MAX_RECORD_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(ReadError::Io(e)) => return Err(StoreError::io(&path, e)),
            Err(ReadError::Unfit(reason)) => return Err(StoreError::Corrupt { path, reason }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Removes the entry under `digest` if it still names job `id` (a reuse entry may name a
    /// newer job by now). Only called with the job's claim held.
    ///
    /// # Errors
    /// `StoreError::Io` if it exists and cannot be removed.
    pub fn remove_key(&self, kind: KeyKind, digest: &str, id: JobId) -> Result<(), StoreError> {
        match self.load_key(kind, digest) {
            Ok(Some(entry)) if entry.job == id => {}
            Ok(_) => return Ok(()),
            // Unreadable: it cannot serve anyone, so it goes too.
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        remove_file_if_any(&self.key_path(kind, digest))
    }
}

/// Bytes free for unprivileged users on the file system holding `path` (statvfs(3)).
///
/// # Errors
/// The system call's error.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;

    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `st` points to writable
    // memory of the struct statvfs(3) fills, read only after it returned 0.
    #[allow(unsafe_code)]
    let st = unsafe {
        if libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        st.assume_init()
    };
    let (blocks, block_size): (u64, u64) = (st.f_bavail, st.f_frsize);
    Ok(blocks.saturating_mul(block_size))
}

/// Mode of every file the store creates: the worker's user reads and writes, its group (the
/// web server's) reads, nobody else — whatever umask the worker was started with.
const FILE_MODE: u32 = 0o640;

/// Creates `path` afresh for writing: whatever is there (a stale temporary file, or a link
/// someone planted) is removed first — removing a link never touches its target — and the
/// new file is made with `O_EXCL | O_NOFOLLOW`, so no link is ever written through.
pub(crate) fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // The mode above is cut by the umask; set it whole, however the worker was started.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Why a small file could not be read as one of ours.
enum ReadError {
    Io(io::Error),
    /// A link, a FIFO, a device, a directory, or more than the limit: never one we wrote.
    Unfit(String),
}

/// Reads a small regular file: a link is not followed (`O_NOFOLLOW`), a FIFO is not waited
/// on (`O_NONBLOCK`, then checked to be a regular file before reading), and nothing past
/// `max` bytes is read. `None` if there is no file.
fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Unfit("a symbolic link, not a file".into()));
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Unfit("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(ReadError::Unfit(format!("larger than {max} bytes")));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::Unfit(format!("larger than {max} bytes")));
    }
    Ok(Some(bytes))
}

/// A record's bytes as the job `id`, checked as user input would be.
fn parse_record(bytes: &[u8], id: JobId) -> Result<Job, String> {
    let job: Job = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if job.id != id {
        return Err(format!("it names job {}", job.id));
    }
    job.validate()?;
    Ok(job)
}

fn remove_file_if_any(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Whether a durable write may replace content that must survive a crash.
#[derive(Clone, Copy, PartialEq)]
enum Replacing {
    /// `path` may hold content a crash must not lose: sync the new file before renaming.
    Something,
    /// A new name (see `Store::create`): rename first, then sync file and folder, which on
    /// ext4 is one journal commit instead of two.
    Nothing,
}

/// Writes `bytes` to `tmp` and renames it to `path`, syncing file and directory before it
/// returns: after a crash `path` holds either its old content or all of the new (with
/// [`Replacing::Nothing`], possibly a partial new file, for a write never acknowledged).
fn write_durably(
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
    replacing: Replacing,
) -> Result<(), StoreError> {
    let result = (|| {
        let mut file = create_fresh(tmp).map_err(|e| StoreError::io(tmp, e))?;
        file.write_all(bytes).map_err(|e| StoreError::io(tmp, e))?;
        if replacing == Replacing::Something {
            file.sync_all().map_err(|e| StoreError::io(tmp, e))?;
        }
        fs::rename(tmp, path).map_err(|e| StoreError::io(path, e))?;
        Ok(file)
    })();
    let file = match result {
        Ok(file) => file,
        Err(e) => {
            // Best effort: a stale tmp file is harmless (scan ignores it), just untidy.
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
    };
    if replacing == Replacing::Nothing {
        file.sync_all().map_err(|e| StoreError::io(path, e))?;
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Fsyncs a directory so that a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::job::tests::request;
    use crate::jobs::test_util::TempDir;
    use crate::jobs::{MAX_TITLE_CHARS, State};

    fn store() -> (TempDir, Store) {
        let dir = TempDir::new();
        let store = Store::open(&dir.0).expect("open store");
        (dir, store)
    }

    #[test]
    fn open_creates_directories() {
        let dir = TempDir::new();
        let nested = dir.0.join("a/b");
        Store::open(&nested).expect("open");
        assert!(nested.join("jobs").is_dir() && nested.join("files").is_dir());
    }

    #[test]
    fn open_reports_the_path_it_failed_on() {
        let dir = TempDir::new();
        let blocker = dir.0.join("not-a-dir");
        fs::write(&blocker, b"x").expect("write");
        let err = Store::open(&blocker).expect_err("a file is not a data dir");
        assert!(err.path().starts_with(&blocker), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn create_then_load_and_save_replace() {
        let (_dir, store) = store();
        let mut job = Job::new(request("report", 10), 2);
        store.create(&job).expect("create");
        assert_eq!(store.load(job.id).expect("load"), Some(job.clone()));
        job.state = State::Running;
        job.attempts = 1;
        store.save(&job).expect("save");
        assert_eq!(store.load(job.id).expect("load"), Some(job.clone()));
        let leftovers: Vec<_> = fs::read_dir(&store.jobs)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "tmp files left: {leftovers:?}");
    }

    #[test]
    fn load_missing_is_none() {
        let (_dir, store) = store();
        assert_eq!(store.load(JobId::new()).expect("load"), None);
    }

    #[test]
    fn load_rejects_bad_records() {
        let (_dir, store) = store();
        let good = serde_json::to_value(Job::new(request("t", 1), 1)).expect("value");
        let other = JobId::new().to_string();
        let with = |key: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[key] = value;
            v.to_string()
        };
        let with_request = |key: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v["request"][key] = value;
            v.to_string()
        };
        let cases: Vec<(&str, String)> = vec![
            ("empty file", String::new()),
            ("not json", "{{{".into()),
            ("truncated", good.to_string()[..20].to_owned()),
            ("other id", with("id", serde_json::json!(other))),
            ("path id", with("id", serde_json::json!("../../etc/passwd"))),
            (
                "unknown state",
                with("state", serde_json::json!("exploded")),
            ),
            ("negative pages", with("pages_total", serde_json::json!(-3))),
            (
                "title too long",
                with_request("title", serde_json::json!("x".repeat(MAX_TITLE_CHARS + 1))),
            ),
            (
                "report id that is a path",
                with_request("report", serde_json::json!("../x")),
            ),
            (
                "value too long",
                with_request("values", serde_json::json!({"rows": "9".repeat(20_000)})),
            ),
            ("missing request", {
                let mut v = good.clone();
                v.as_object_mut().expect("object").remove("request");
                v.to_string()
            }),
        ];
        for (name, text) in cases {
            let id = JobId::new();
            let path = store.record_path(id);
            let text = text.replace(
                &good["id"].as_str().expect("id").to_owned(),
                &id.to_string(),
            );
            fs::write(&path, text).expect("write");
            match store.load(id) {
                Err(StoreError::Corrupt { path: p, reason }) => {
                    assert_eq!(p, path, "{name}: {reason}");
                }
                other => panic!("{name}: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn claim_is_exclusive_until_dropped() {
        let (dir, store) = store();
        let id = JobId::new();
        let first = store.claim(id).expect("claim").expect("free at first");
        assert_eq!(first.id(), id);
        assert!(
            store.claim(id).expect("claim").is_none(),
            "same store, second handle"
        );
        let other = Store::open(&dir.0).expect("second store");
        assert!(other.claim(id).expect("claim").is_none(), "second store");
        assert!(
            store.claim(JobId::new()).expect("claim").is_some(),
            "other jobs are free"
        );
        drop(first);
        assert!(other.claim(id).expect("claim").is_some(), "free after drop");
    }

    #[test]
    fn scan_lists_only_records() {
        let (_dir, store) = store();
        let mut ids: Vec<JobId> = (0..3).map(|_| JobId::new()).collect();
        for &id in &ids {
            store
                .create(&Job {
                    id,
                    ..Job::new(request("t", 1), 1)
                })
                .expect("create");
        }
        let junk = [
            format!("{}.json.tmp", JobId::new()),
            format!("{}.lock", JobId::new()),
            "README.json".to_owned(),
            format!("{}.json", JobId::new().to_string().to_uppercase()),
            "notes.txt".to_owned(),
        ];
        for name in junk {
            fs::write(store.jobs.join(name), b"{}").expect("write junk");
        }
        fs::create_dir(store.jobs.join("subdir")).expect("mkdir");
        ids.sort();
        assert_eq!(store.scan().expect("scan"), ids);
    }

    #[test]
    fn remove_deletes_everything_and_tolerates_missing_files() {
        let (_dir, store) = store();
        let job = Job::new(request("t", 1), 1);
        store.create(&job).expect("create");
        let claim = store.claim(job.id).expect("claim").expect("free");
        fs::write(store.pdf_path(job.id), b"%PDF").expect("pdf");
        fs::write(store.pdf_tmp_path(job.id), b"%PD").expect("pdf tmp");
        store.remove(job.id).expect("remove");
        drop(claim);
        assert_eq!(store.load(job.id).expect("load"), None);
        assert!(!store.pdf_path(job.id).exists());
        assert!(!store.pdf_tmp_path(job.id).exists());
        assert!(!store.jobs.join(format!("{}.lock", job.id)).exists());
        assert!(store.scan().expect("scan").is_empty());
        store.remove(job.id).expect("removing twice is fine");
    }

    #[test]
    fn save_error_names_the_path() {
        let (_dir, store) = store();
        let job = Job::new(request("t", 1), 1);
        // A directory where the record should go makes the rename fail.
        fs::create_dir(store.record_path(job.id)).expect("mkdir");
        fs::write(store.record_path(job.id).join("x"), b"x").expect("fill dir");
        match store.save(&job) {
            Err(StoreError::Io { path, .. }) => assert_eq!(path, store.record_path(job.id)),
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(
            !store.jobs.join(format!("{}.json.tmp", job.id)).exists(),
            "tmp cleaned up"
        );
    }
}
