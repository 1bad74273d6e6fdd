//! Owner-only files and folders: everything claimline writes is PHI, so every file is created
//! 0600 and every folder 0700, and files that hold state are replaced atomically.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// Creates a folder (and its parents) readable by its owner only; every folder it creates is
/// 0700, and an existing one is tightened to 0700.
///
/// # Errors
/// The underlying I/O error.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates (or truncates) a file readable and writable by its owner only (0600, also when it
/// existed with another mode).
///
/// # Errors
/// The underlying I/O error.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        // The mode above applies only to a new file; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Opens a file for appending: created owner-only (0600); an existing regular file of this
/// user's loses what others than its owner and group may do (a log left `0644` by a umask goes
/// on as `0640`: a log shipper's group keeps reading it). A file of another owner (a shared
/// log), or one that is not a regular file (`/dev/stderr`, a pipe), keeps its mode.
///
/// # Errors
/// The file cannot be opened.
pub fn append_private(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    if let Ok(meta) = file.metadata()
        && meta.is_file()
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o007 != 0 {
            // Best effort: only the owner may change the mode, and a log of another owner is
            // that owner's to keep as it is.
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7770));
        }
    }
    Ok(file)
}

/// The bytes of the file at `path`; `Ok(None)` only when nothing is there. For a state file,
/// whose absence means "nothing yet": a link to nothing (a file moved or a disk not mounted)
/// is an error, never read as absent, so a command never starts the state afresh over it.
///
/// # Errors
/// The file cannot be read; [`std::io::ErrorKind::NotFound`] with "a link to nothing" for a
/// symbolic link whose target is gone.
pub fn read_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a link to nothing (its target is gone)",
                ))
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

/// Restricts an existing file to its owner (0600).
///
/// # Errors
/// The underlying I/O error.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Flushes a folder's entries (its renames, new and removed files) to disk, so they survive a
/// power loss. A file system that cannot sync a folder (`EINVAL`) is not an error: its renames
/// are still atomic.
///
/// # Errors
/// The underlying I/O error.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    sync_file(&File::open(dir)?)
}

/// Syncs files to disk on threads of its own while their writer goes on: [`Syncer::add`] hands
/// over a file that is complete, [`Syncer::wait`] returns once every file handed over before
/// and during the wait has been synced (or failed to). Each `fsync` mostly waits for the disk,
/// so the writer's CPU work (encoding the next file) goes on meanwhile, and a file system such
/// as ext4 commits concurrent ones together: a folder of many small files is durable in a
/// fraction of the time one after the other takes. Folders may be handed over too (opened as
/// files), to make their new entries durable; as in [`sync_dir`], a folder its file system
/// cannot sync (`EINVAL`) is not an error. A failed sync is reported by every later `wait`:
/// what was to be durable is not.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let syncer = claimline_model::Syncer::new();
/// for name in ["a", "b"] {
///     let path = dir.path().join(name);
///     let file = claimline_model::create_private(&path)?;
///     syncer.add(path, file);
/// }
/// syncer.add_folder(dir.path())?;
/// syncer.wait().map_err(|(_, e)| e)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Syncer {
    queue: Option<std::sync::mpsc::Sender<(PathBuf, File)>>,
    jobs: Arc<Mutex<std::sync::mpsc::Receiver<(PathBuf, File)>>>,
    state: Arc<(Mutex<SyncState>, Condvar)>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Files handed over and not synced yet, and the failures.
#[derive(Default)]
struct SyncState {
    pending: usize,
    /// The first failure not reported yet.
    failed: Option<(PathBuf, std::io::Error)>,
    /// A failure reported already: its file and kind, for every later `wait`.
    reported: Option<(PathBuf, std::io::ErrorKind)>,
}

/// Threads of a [`Syncer`] at most: enough `fsync`s at once for the file system to commit them
/// together.
const SYNC_THREADS: usize = 8;

impl Default for Syncer {
    fn default() -> Self {
        Self::new()
    }
}

impl Syncer {
    /// A syncer with no thread yet: they start as files are handed over, up to eight.
    pub fn new() -> Syncer {
        let (queue, jobs) = std::sync::mpsc::channel();
        Syncer {
            queue: Some(queue),
            jobs: Arc::new(Mutex::new(jobs)),
            state: Arc::default(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Hands over `file` (at `path`, named in a failure), complete: it is synced on a thread of
    /// the syncer, or here when no thread can be started.
    pub fn add(&self, path: PathBuf, file: File) {
        lock(&self.state.0).pending += 1;
        let started = {
            let mut threads = lock(&self.threads);
            if threads.len() < SYNC_THREADS {
                let (jobs, state) = (self.jobs.clone(), self.state.clone());
                // A thread that cannot be started leaves the work to those that could.
                if let Ok(t) = std::thread::Builder::new()
                    .name("claimline-sync".into())
                    .spawn(move || sync_jobs(&jobs, &state))
                {
                    threads.push(t);
                }
            }
            !threads.is_empty()
        };
        match &self.queue {
            Some(queue) if started => {
                if let Err(std::sync::mpsc::SendError((path, file))) = queue.send((path, file)) {
                    finish(&self.state, path, sync_file(&file));
                }
            }
            _ => {
                let result = sync_file(&file);
                finish(&self.state, path, result);
            }
        }
    }

    /// Hands over folder `dir` (opened here), to make its new entries durable.
    ///
    /// # Errors
    /// The error opening it.
    pub fn add_folder(&self, dir: &Path) -> std::io::Result<()> {
        let folder = File::open(dir)?;
        self.add(dir.to_owned(), folder);
        Ok(())
    }

    /// Waits until every file handed over has been synced.
    ///
    /// # Errors
    /// The path and error of the first sync that failed; once reported, that file's path and
    /// error kind again at every later call (the others are still synced).
    pub fn wait(&self) -> Result<(), (PathBuf, std::io::Error)> {
        let (lock_state, done) = &*self.state;
        let mut state = lock(lock_state);
        while state.pending > 0 {
            state = done
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if let Some((path, e)) = state.failed.take() {
            state.reported = Some((path.clone(), e.kind()));
            return Err((path, e));
        }
        match &state.reported {
            Some((path, kind)) => Err((
                path.clone(),
                std::io::Error::new(*kind, "this file could not be synced"),
            )),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // The threads sync what is queued, then see the queue closed and end.
        drop(self.queue.take());
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

/// A syncer thread: syncs queued files until the queue closes.
fn sync_jobs(
    jobs: &Mutex<std::sync::mpsc::Receiver<(PathBuf, File)>>,
    state: &(Mutex<SyncState>, Condvar),
) {
    /// A job taken: counted as done (failed) should its thread stop before finishing it, so
    /// that `wait` never waits for it forever.
    struct Taken<'a> {
        state: &'a (Mutex<SyncState>, Condvar),
        path: Option<PathBuf>,
    }
    impl Drop for Taken<'_> {
        fn drop(&mut self) {
            if let Some(path) = self.path.take() {
                finish(
                    self.state,
                    path,
                    Err(std::io::Error::other("the thread syncing it stopped")),
                );
            }
        }
    }
    loop {
        let job = lock(jobs).recv();
        let Ok((path, file)) = job else {
            return;
        };
        let mut taken = Taken {
            state,
            path: Some(path),
        };
        let result = sync_file(&file);
        drop(file);
        if let Some(path) = taken.path.take() {
            finish(state, path, result);
        }
    }
}

/// Records one file synced (or not) and wakes [`Syncer::wait`] when none is left.
fn finish(state: &(Mutex<SyncState>, Condvar), path: PathBuf, result: std::io::Result<()>) {
    let mut s = lock(&state.0);
    if let Err(e) = result
        && s.reported.is_none()
    {
        s.failed.get_or_insert((path, e));
    }
    s.pending -= 1;
    if s.pending == 0 {
        state.1.notify_all();
    }
}

/// `fsync`s a file, or a folder as [`sync_dir`] does.
fn sync_file(file: &File) -> std::io::Result<()> {
    match file.sync_all() {
        Err(e)
            if e.kind() == std::io::ErrorKind::InvalidInput
                && file.metadata().is_ok_and(|m| m.is_dir()) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// A mutex's guard, also after a thread panicked holding it: every value these mutexes guard
/// (the counts, the queue's receiving end, the threads' handles) is whole between statements.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Replaces `path` with `bytes` atomically: an owner-only temporary file beside it
/// (`.<name>.tmp`), synced, renamed over it, the folder synced ([`sync_dir`]). On failure (a
/// full disk) the previous file is left as it was and the temporary file is removed.
///
/// # Errors
/// The underlying I/O error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = create_private(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn files_sync_together_and_a_failure_names_its_file() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        for i in 0..20 {
            let path = dir.path().join(format!("f{i}"));
            let mut f = create_private(&path).expect("create");
            f.write_all(b"x").expect("write");
            files.push((path, f));
        }
        // Folders too.
        let sub = dir.path().join("sub");
        create_private_dir(&sub).expect("folder");
        files.push((sub.clone(), File::open(&sub).expect("open folder")));
        files.push((dir.path().to_owned(), File::open(dir.path()).expect("open")));
        let syncer = Syncer::new();
        assert!(syncer.wait().is_ok(), "nothing handed over");
        let again: Vec<(PathBuf, File)> = files
            .iter()
            .map(|(p, f)| (p.clone(), f.try_clone().expect("clone")))
            .collect();
        for (path, file) in files {
            syncer.add(path, file);
        }
        assert!(syncer.wait().is_ok());
        // A pipe cannot be synced (EINVAL): the error comes back with its name, among files
        // that sync, and every later wait says so again.
        let (_reader, writer) = std::io::pipe().expect("pipe");
        let pipe = File::from(std::os::fd::OwnedFd::from(writer));
        for (i, (path, file)) in again.into_iter().enumerate() {
            if i == 7 {
                syncer.add(dir.path().join("the-pipe"), pipe.try_clone().expect("pipe"));
            }
            syncer.add(path, file);
        }
        let (path, e) = syncer.wait().expect_err("a pipe does not sync");
        assert_eq!(path, dir.path().join("the-pipe"));
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let (path, e) = syncer.wait().expect_err("still not synced");
        assert_eq!(path, dir.path().join("the-pipe"));
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // Dropped with files still queued: they are synced and the threads end.
        for i in 0..50 {
            let path = dir.path().join(format!("f{}", i % 20));
            syncer.add(path.clone(), File::open(&path).expect("open"));
        }
        drop(syncer);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_appended_to_is_closed_to_others() {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("run.log");
        std::fs::write(&log, b"earlier\n").expect("write");
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut f = append_private(&log).expect("append");
        f.write_all(b"later\n").expect("write");
        let mode = std::fs::metadata(&log).expect("meta").permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o640,
            "others lose their access, the group keeps its own"
        );
        assert_eq!(std::fs::read(&log).expect("read"), b"earlier\nlater\n");
        let new = dir.path().join("new.log");
        append_private(&new).expect("create");
        let mode = std::fs::metadata(&new).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn files_and_folders_are_owner_only_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).expect("dirs");
        for d in [dir.path().join("a"), sub.clone()] {
            let mode = std::fs::metadata(&d).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
        let f = sub.join("state.json");
        write_atomic(&f, b"one").expect("write");
        write_atomic(&f, b"two").expect("write");
        assert_eq!(std::fs::read(&f).expect("read"), b"two");
        let mode = std::fs::metadata(&f).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!sub.join(".state.json.tmp").exists());
    }
}
