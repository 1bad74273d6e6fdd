//! What a read of a memory-mapped file that another program cuts short does: a clear message
//! naming the file and exit code 4 (a damaged input, nothing committed), not a bare `SIGBUS`.
//!
//! A map's pages past the end of a file that shrank after it was mapped cannot be read: the
//! kernel answers the read with `SIGBUS`, which by default kills the process with no word (no
//! file named, exit 135). Every map [`crate::map_file`] makes is noted here (its address range
//! and the file's name), and a `SIGBUS` handler looks the faulting address up: inside a noted map,
//! it writes `claimline: <file>: …` on stderr and ends the process with [`EXIT_SHRUNK`]; anywhere
//! else it gives the signal its default action. The process ends where it stood, as a kill would:
//! the staged outputs are cleaned or finished by the next command's recovery, and nothing was
//! committed (a load commits only after its last read).
//!
//! The handler does only what a signal handler may: atomic loads, `write(2)` and `_exit(2)`. The
//! notes are a fixed table of slots written with atomics, each held while its map lives
//! ([`crate::FileMap`] gives its slot back when it is dropped, before it unmaps); names are
//! leaked, so a name a slot points to is never freed. (Changed in the thirty-first round, found by
//! a review: the slots were a ring of 1,024 that later maps overwrote while a big file was still
//! read.)

#[cfg(unix)]
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// The exit code of a process whose input shrank under its read: a damaged input file.
pub const EXIT_SHRUNK: i32 = 4;

/// Notes `len` bytes at `start`, a map of the file `name`, until [`forget`] is given the slot
/// this returns (`None`: every slot is held, and the map is not noted).
pub(crate) fn note(start: *const u8, len: usize, name: &std::path::Path) -> Option<usize> {
    #[cfg(unix)]
    return imp::note(start as usize, len, name);
    #[cfg(not(unix))]
    {
        let _ = (start, len, name);
        None
    }
}

/// Gives back the slot of a map that is about to be unmapped.
pub(crate) fn forget(slot: usize) {
    #[cfg(unix)]
    imp::forget(slot);
    #[cfg(not(unix))]
    let _ = slot;
}

#[cfg(unix)]
mod imp {
    use super::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    /// Maps noted at once. A scan holds a map for each file whose chunks are in flight, at most
    /// `4 × MAX_THREADS` of them.
    const SLOTS: usize = 8192;
    /// A slot being written (taken, not yet readable).
    const WRITING: u64 = u64::MAX;

    struct Slot {
        /// Which note this is (0: the slot is free; `WRITING`: it is being written).
        seq: AtomicU64,
        start: AtomicUsize,
        len: AtomicUsize,
        name: AtomicPtr<u8>,
        name_len: AtomicUsize,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        seq: AtomicU64::new(0),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        name: AtomicPtr::new(std::ptr::null_mut()),
        name_len: AtomicUsize::new(0),
    };
    static NOTES: [Slot; SLOTS] = [EMPTY; SLOTS];
    static NEXT: AtomicU64 = AtomicU64::new(1);

    pub(super) fn note(start: usize, len: usize, name: &std::path::Path) -> Option<usize> {
        install();
        let (index, slot) = NOTES.iter().enumerate().find(|(_, slot)| {
            slot.seq
                .compare_exchange(0, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        let name: &'static mut [u8] =
            Box::leak(name.display().to_string().into_bytes().into_boxed_slice());
        slot.start.store(start, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.name_len.store(name.len(), Ordering::Relaxed);
        slot.name.store(name.as_mut_ptr(), Ordering::Relaxed);
        slot.seq
            .store(NEXT.fetch_add(1, Ordering::Relaxed), Ordering::Release);
        Some(index)
    }

    pub(super) fn forget(index: usize) {
        if let Some(slot) = NOTES.get(index) {
            slot.seq.store(0, Ordering::Release);
        }
    }

    /// The name of the latest noted map holding `addr`.
    fn lookup(addr: usize) -> Option<&'static [u8]> {
        let mut best: Option<(u64, &'static [u8])> = None;
        for slot in &NOTES {
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == 0 || seq == WRITING || best.is_some_and(|(b, _)| b > seq) {
                continue;
            }
            let start = slot.start.load(Ordering::Relaxed);
            let len = slot.len.load(Ordering::Relaxed);
            if !(start..start.saturating_add(len)).contains(&addr) {
                continue;
            }
            let ptr = slot.name.load(Ordering::Relaxed);
            let name_len = slot.name_len.load(Ordering::Relaxed);
            // Written before `seq` (Release), read after it (Acquire); re-read so a slot that
            // was noted again meanwhile is not taken half old, half new.
            if ptr.is_null() || slot.seq.load(Ordering::Acquire) != seq {
                continue;
            }
            // SAFETY: `ptr` and `name_len` are those of a leaked, never-freed name, stored
            // together under `seq`, which did not change while they were read.
            let name = unsafe { std::slice::from_raw_parts(ptr, name_len) };
            best = Some((seq, name));
        }
        best.map(|(_, n)| n)
    }

    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: a zeroed `sigaction` is a valid start (no flags, empty mask), and the
            // handler only does what a signal handler may (see the module's documentation).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_sigbus as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            }
        });
    }

    fn write_all(bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            // SAFETY: writes the bytes of a live slice to stderr; async-signal-safe.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel hands a SA_SIGINFO handler a valid `siginfo_t`.
        let addr = unsafe { (*info).si_addr() } as usize;
        if let Some(name) = lookup(addr) {
            write_all(b"claimline: ");
            write_all(name);
            write_all(
                b": the file shrank while it was being read (another program cut it short or \
                  replaced it); nothing was committed\n",
            );
            // SAFETY: ends the process at once, as the module's documentation says.
            unsafe { libc::_exit(super::EXIT_SHRUNK) };
        }
        // Not a map of ours: the signal's default action (the process ends as it would have).
        // SAFETY: both calls are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_note_names_its_map_until_it_is_forgotten_however_many_come_after() {
            let a = [0u8; 64];
            let name = |n: &str| std::path::PathBuf::from(n);
            let first =
                super::note(a.as_ptr() as usize, 64, &name("first.ndjson")).expect("a slot");
            let second =
                super::note(a.as_ptr() as usize + 32, 16, &name("second.ndjson")).expect("a slot");
            let at = |k: usize| super::lookup(a.as_ptr() as usize + k);
            assert_eq!(at(0), Some(&b"first.ndjson"[..]));
            assert_eq!(at(40), Some(&b"second.ndjson"[..]));
            assert_eq!(at(63), Some(&b"first.ndjson"[..]));
            // Maps that come and go after it (more than the slots) leave the first one named.
            let b = [0u8; 8];
            for _ in 0..2 * super::SLOTS {
                let k = super::note(b.as_ptr() as usize, 8, &name("brief")).expect("a slot");
                super::forget(k);
            }
            assert_eq!(at(0), Some(&b"first.ndjson"[..]));
            super::forget(second);
            assert_eq!(at(40), Some(&b"first.ndjson"[..]));
            super::forget(first);
            assert_eq!(at(0), None);
            // Address 1 is never mapped.
            assert_eq!(super::lookup(1), None);
        }
    }
}
