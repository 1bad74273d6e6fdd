//! Owner-only files and folders: everything claimline writes is PHI, so every file is created
//! 0600 and every folder 0700, and files that hold state are replaced atomically.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

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

/// Opens a file for appending, creating it owner-only (0600) when it does not exist.
///
/// # Errors
/// The underlying I/O error.
pub fn append_private(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
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
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// Syncs `files` to disk, several at once: each `fsync` mostly waits for the disk, and a file
/// system such as ext4 commits concurrent ones together, so a folder of many small files is
/// durable in a fraction of the time one after the other takes. Folders may be among them
/// (opened as files), to make their new entries durable; as in [`sync_dir`], a folder its file
/// system cannot sync (`EINVAL`) is not an error.
///
/// # Errors
/// The path and error of a file that could not be synced (the others are still tried).
pub fn sync_files(
    files: &[(std::path::PathBuf, File)],
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    const AT_ONCE: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    let work = || {
        while let Some((path, file)) =
            files.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        {
            let result = match file.sync_all() {
                Err(e)
                    if e.kind() == std::io::ErrorKind::InvalidInput
                        && file.metadata().is_ok_and(|m| m.is_dir()) =>
                {
                    Ok(())
                }
                other => other,
            };
            if let Err(e) = result {
                let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert((path.clone(), e));
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..files.len().min(AT_ONCE) {
            // A thread that cannot be started leaves its share to the others (this one
            // always works), so a system short of threads syncs slower, never panics.
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(f) => Err(f),
        None => Ok(()),
    }
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
        assert!(sync_files(&files).is_ok());
        assert!(sync_files(&[]).is_ok());
        // A pipe cannot be synced (EINVAL): the error comes back with its name, among files
        // that sync.
        let (_reader, writer) = std::io::pipe().expect("pipe");
        let pipe = File::from(std::os::fd::OwnedFd::from(writer));
        files.insert(7, (dir.path().join("the-pipe"), pipe));
        let (path, e) = sync_files(&files).expect_err("a pipe does not sync");
        assert_eq!(path, dir.path().join("the-pipe"));
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
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
