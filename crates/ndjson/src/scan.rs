//! The parallel scanner: files → line-aligned chunks → rayon workers → results in input order.
//!
//! Threads: the caller's thread collects (it reorders finished chunks, writes rejects, and hands
//! batches to the consumer in input order); one feeder thread maps plain files and cuts them into
//! line-aligned chunks (or receives newline-aligned blocks from one gzip decoder thread) and spawns
//! one rayon task per chunk. At most `max_in_flight` chunks exist at once, so memory stays bounded
//! whatever the input size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use memmap2::Mmap;

use crate::detect::ApiVersion;
use crate::error::Error;
use crate::input::{Compression, InputFile};
use crate::parse::LineParser;
use crate::prune::Pruning;
use crate::reject::{Reject, RejectKind, RejectTarget, RejectWriter};
use crate::tape::{Cursor, Kind};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most worker threads a scan is given ([`ScanOptions::threads`]): far more than any
/// machine's cores, and few enough that a pool is made at once (100,000 took minutes).
pub const MAX_THREADS: usize = 1024;

/// Why rayon's own thread count from the environment cannot be used (`None`: none set, or
/// within [`MAX_THREADS`]). rayon reads `RAYON_NUM_THREADS` when it is a number (0: one per
/// core), else the older `RAYON_RS_NUM_CPUS`, as this does; the count sizes the pools a scan
/// with `threads: 0` and the sinks' encodes use, and one past the bound would have rayon start
/// that many threads (100,000 hung a load). Check it before anything starts a pool.
pub fn rayon_threads_refused() -> Option<String> {
    let number = |name: &str| std::env::var(name).ok()?.parse::<usize>().ok();
    let (name, n) = match number("RAYON_NUM_THREADS") {
        Some(0) => return None,
        Some(n) => ("RAYON_NUM_THREADS", n),
        None => ("RAYON_RS_NUM_CPUS", number("RAYON_RS_NUM_CPUS")?),
    };
    (n > MAX_THREADS).then(|| {
        format!("{name} is {n}: at most {MAX_THREADS} threads (or leave it unset: one per core)")
    })
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Target chunk size in bytes (a chunk always ends at a newline, so it can be larger).
    pub chunk_bytes: usize,
    /// Most chunks read but not yet handed to the consumer.
    pub max_in_flight: usize,
    /// Stop at the first rejected line ([`Error::Strict`]).
    pub strict: bool,
    /// Where rejected lines go.
    pub rejects: RejectTarget,
    /// Worker threads: 0 uses rayon's global pool (one per core), n > 0 a pool of n.
    pub threads: usize,
    /// Number lines within each chunk instead of within the file: [`Resource::line`] counts
    /// from the chunk's first line, and the consumer adds [`Batch::line_offset`] to every line
    /// number `map` saw. This saves counting the newlines of every chunk before it is handed
    /// out (one extra read of all the input: about a seventh of a simple load's time). Rejects
    /// and summaries always carry file line numbers.
    pub lines_in_batch: bool,
    /// Unmap each file once read on a thread of the scan's own, 16 MB at a time, instead of
    /// where its last chunk ends, so that a caller with work after the scan (a load) does not
    /// wait for it. The blocks of the file have left the page tables as their chunks were done
    /// (`release_bytes`), so what is left is small; a scan that ends the process does without.
    pub unmap_aside: bool,
    /// A mapped file's pages leave the page tables in blocks of this many bytes (rounded up to a
    /// multiple of 64 KiB, a multiple of every page size Linux uses), each once the chunks over
    /// it are done: peak RSS holds the blocks being read, and the kernel interrupts the other
    /// cores once per block.
    pub release_bytes: usize,
    /// Parse only the root members a consumer reads, per resource type (see [`crate::prune`]):
    /// every line is still checked whole, and accepted or refused as without it.
    pub pruning: Option<Arc<Pruning>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            chunk_bytes: 4 << 20,
            max_in_flight: 4 * rayon::current_num_threads().max(1),
            strict: false,
            rejects: RejectTarget::Memory,
            threads: 0,
            lines_in_batch: false,
            unmap_aside: false,
            release_bytes: RELEASE_BLOCK,
            pruning: None,
        }
    }
}

/// One resource, parsed, as a callback on a worker thread sees it.
pub struct Resource<'a> {
    /// The file it came from.
    pub file: &'a InputFile,
    /// That file's index in the scan's input list.
    pub file_index: usize,
    /// 1-based line number in the file; with [`ScanOptions::lines_in_batch`], in the chunk
    /// (add [`Batch::line_offset`]).
    pub line: u64,
    /// Byte offset of the line in the (decompressed) file.
    pub offset: u64,
    /// `resourceType`.
    pub resource_type: &'a str,
    /// `id`, when present.
    pub id: Option<&'a str>,
    /// From the manifest, else detected from the resource's shape, else `None`.
    pub api_version: Option<ApiVersion>,
    /// The resource's root object on the tape.
    pub root: Cursor<'a>,
    /// The line's bytes (PHI: never log them).
    pub raw: &'a [u8],
}

/// Results of one chunk, handed to the consumer in input order.
pub struct Batch<T> {
    /// Index of the file the chunk belongs to.
    pub file_index: usize,
    /// One result per resource, in line order.
    pub items: Vec<T>,
    /// Bytes of the file this chunk covered on disk (compressed bytes for gzip), for progress.
    pub disk_bytes: u64,
    /// What to add to a line number `map` saw to get the file's: 0 unless
    /// [`ScanOptions::lines_in_batch`].
    pub line_offset: u64,
}

/// What a scan saw in one file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// Size on disk.
    pub bytes: u64,
    /// Bytes of NDJSON (after decompression).
    pub ndjson_bytes: u64,
    /// Lines, blank ones included.
    pub lines: u64,
    /// Blank lines (skipped).
    pub blank_lines: u64,
    /// Resources per `resourceType`.
    pub resources: BTreeMap<String, u64>,
    /// Resources per API version (`v1`, `v2`, `v3`, `unknown`).
    pub api_versions: BTreeMap<String, u64>,
    /// Rejected lines.
    pub rejects: u64,
    /// The gzip stream ended early or was corrupt (the reject says where).
    pub truncated: bool,
    /// The file could not be read to its end: what is after the damage is lost. A damaged file
    /// is not a rejected line: a load does not commit it unless told to accept it.
    pub damaged: Option<Damage>,
}

/// How a file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// The gzip stream ends early (a cut file, a download that stopped).
    TruncatedGzip,
    /// The gzip stream holds bad data (a bad block or checksum).
    CorruptGzip,
    /// The file is named `.gz` but is not gzip at all.
    NotGzip,
    /// A plain file whose size changed while it was read (another program cut it short or
    /// wrote to it): what was read of it cannot be trusted.
    ChangedWhileRead,
}

impl DamageKind {
    /// A short stable name (`truncated_gzip`, `corrupt_gzip`, `not_gzip`).
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::TruncatedGzip => "truncated_gzip",
            DamageKind::CorruptGzip => "corrupt_gzip",
            DamageKind::NotGzip => "not_gzip",
            DamageKind::ChangedWhileRead => "changed_while_read",
        }
    }

    /// Whether what was read before damage of this kind can be trusted ([`Damage::read_is_trusted`]):
    /// not from a corrupt stream, nor from a file that changed while it was read.
    pub fn read_is_trusted(self) -> bool {
        !matches!(self, DamageKind::CorruptGzip | DamageKind::ChangedWhileRead)
    }

    /// The reject kind of the line (or the rest of the file) the damage cuts off.
    fn reject_kind(self) -> RejectKind {
        match self {
            DamageKind::TruncatedGzip => RejectKind::TruncatedGzip,
            DamageKind::CorruptGzip => RejectKind::CorruptGzip,
            DamageKind::NotGzip => RejectKind::NotGzip,
            // A line the shrink cut.
            DamageKind::ChangedWhileRead => RejectKind::TruncatedLine,
        }
    }
}

/// Where and how a file is damaged (see [`FileSummary::damaged`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// How.
    pub kind: DamageKind,
    /// The decoder's words.
    pub reason: String,
    /// Bytes of the file on disk read before the damage.
    pub disk_bytes_read: u64,
    /// NDJSON bytes decoded before the damage.
    pub ndjson_bytes_read: u64,
    /// The first line lost (1-based): every line from here on is missing.
    pub first_lost_line: u64,
    /// Resources read from the file before the damage.
    pub resources_read: u64,
    /// What was read before the damage can be trusted: false for a corrupt stream (bad data,
    /// or a checksum that does not match), whose decoder may have given altered lines before
    /// it found out; a load then commits nothing of it, `--accept-rejects` or not.
    pub read_is_trusted: bool,
}

impl Damage {
    /// One sentence for a person: which file, how it is damaged, how far it was read and what
    /// is lost. Names no value from the file.
    pub fn describe(&self, path: &std::path::Path) -> String {
        let lost = if self.read_is_trusted {
            format!("every line from line {} on is lost", self.first_lost_line)
        } else {
            format!(
                "every line from line {} on is lost, and the lines read cannot be trusted \
                 either (a corrupt stream may give altered data before it is found out): \
                 nothing of it is committed, even with --accept-rejects",
                self.first_lost_line
            )
        };
        format!(
            "{}: damaged ({}: {}): read {} bytes of it ({} bytes of NDJSON, {} resources); {lost}",
            path.display(),
            self.kind.as_str(),
            self.reason,
            self.disk_bytes_read,
            self.ndjson_bytes_read,
            self.resources_read,
        )
    }
}

impl FileSummary {
    /// The API version most of the file's resources have, if any was decided.
    pub fn api_version(&self) -> Option<ApiVersion> {
        self.api_versions
            .iter()
            .filter(|(k, _)| k.as_str() != "unknown")
            .max_by_key(|(_, n)| **n)
            .and_then(|(k, _)| ApiVersion::parse(k))
    }
}

/// What a whole scan saw.
#[derive(Debug, Default)]
pub struct ScanSummary {
    /// Per file, in input order.
    pub files: Vec<FileSummary>,
    /// Total rejected lines.
    pub reject_count: u64,
    /// The rejects file, if one was written.
    pub rejects_file: Option<PathBuf>,
    /// The rejected lines themselves when the target was [`RejectTarget::Memory`].
    pub rejects: Vec<Reject>,
    /// Wall time.
    pub elapsed: Duration,
    /// The workers that parsed and evaluated: [`ScanOptions::threads`], or rayon's global
    /// pool's when that is 0 or a pool of its own could not be made.
    pub workers: usize,
}

impl ScanSummary {
    /// Resources per `resourceType` over all files.
    pub fn resources(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            for (k, v) in &f.resources {
                *out.entry(k.clone()).or_insert(0) += v;
            }
        }
        out
    }

    /// Bytes on disk over all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// NDJSON bytes over all files.
    pub fn ndjson_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.ndjson_bytes).sum()
    }

    /// The files that could not be read to their end.
    pub fn damaged(&self) -> impl Iterator<Item = (&FileSummary, &Damage)> {
        self.files
            .iter()
            .filter_map(|f| f.damaged.as_ref().map(|d| (f, d)))
    }

    /// Lines over all files.
    pub fn lines(&self) -> u64 {
        self.files.iter().map(|f| f.lines).sum()
    }
}

/// The `resourceType` of a parsed line, or why the line is not a resource (a reject).
fn resource_type_of<'a>(root: Cursor<'a>) -> Result<&'a str, (RejectKind, String)> {
    let Kind::Object(_) = root.kind() else {
        return Err((
            RejectKind::NotAnObject,
            "the line is valid JSON but not an object".to_owned(),
        ));
    };
    let name = root
        .get("resourceType")
        .and_then(|c| c.as_str())
        .ok_or_else(|| {
            (
                RejectKind::NoResourceType,
                "field `resourceType` is missing or not a string".to_owned(),
            )
        })?;
    // A resource type is counted and reported by name: text that is not a FHIR type name (an
    // upper-case letter, then letters; the longest FHIR name has 33) could be anything, an MBI
    // among others, and is never shown.
    if !claimline_model::is_resource_type_name(name) {
        return Err((
            RejectKind::NoResourceType,
            format!(
                "field `resourceType` is not a resource type name ({})",
                claimline_model::RESOURCE_TYPE_NAME_RULE
            ),
        ));
    }
    Ok(name)
}

/// Parses NDJSON lines a caller holds (not a file the scanner reads: a batch handed over by
/// another engine, with the file and line each came from) into [`Resource`]s as the scanner
/// does: `f` gets each resource (its `file_index` is 0, its version detected from its shape
/// unless `file` gives one), and each line that is not a resource comes back as a [`Reject`].
pub fn parse_lines<'a>(
    file: &InputFile,
    lines: impl IntoIterator<Item = (u64, &'a [u8])>,
    mut f: impl FnMut(&Resource<'_>),
) -> Vec<Reject> {
    let mut parser = LineParser::new();
    let mut rejects = Vec::new();
    for (line_no, raw) in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reject = |kind, message: String| Reject {
            file_index: 0,
            line: line_no,
            offset: 0,
            kind,
            message,
            raw: line.to_vec(),
        };
        let parsed = parser.parse(line, |doc| {
            let root = doc.root();
            let resource_type = resource_type_of(root)?;
            f(&Resource {
                file,
                file_index: 0,
                line: line_no,
                offset: 0,
                resource_type,
                id: root.get("id").and_then(|c| c.as_str()),
                api_version: file.version_of(root),
                root,
                raw: line,
            });
            Ok(())
        });
        match parsed {
            Ok(Ok(())) => {}
            Ok(Err((kind, message))) => rejects.push(reject(kind, message)),
            Err(_) => {
                let (at, why) = crate::parse::explain_invalid(line);
                rejects.push(reject(
                    RejectKind::InvalidJson,
                    format!("invalid JSON at byte {at} of the line: {why}"),
                ));
            }
        }
    }
    rejects
}

/// Scans `files`, calling `map` for every resource on a worker thread (with per-thread state
/// made by `init`), and hands the results to `consume` on the calling thread in input order.
///
/// # Errors
/// [`Error::Read`] when a file cannot be opened; [`Error::Strict`] on the first reject when
/// `opts.strict`; [`Error::WriteRejects`]; [`Error::Consumer`] when `consume` fails.
pub fn scan<S, T, I, F, C>(
    files: &[InputFile],
    opts: &ScanOptions,
    init: I,
    map: F,
    mut consume: C,
) -> Result<ScanSummary, Error>
where
    T: Send,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &Resource<'_>) -> T + Sync,
    C: FnMut(Batch<T>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let abort = AtomicBool::new(false);
    let slots = Slots::new(opts.max_in_flight.max(1));
    let workers = Workers {
        files,
        init: &init,
        map: &map,
        parsers: Mutex::new(Vec::new()),
        next_seq: AtomicU64::new(0),
        items_hint: files.iter().map(|_| AtomicUsize::new(0)).collect(),
        pruning: opts.pruning.clone().filter(|p| !p.is_empty()),
    };
    let (tx, rx) = channel::<(u64, Msg<T>)>();
    let mut collector = Collector::new(files, opts);

    let result = std::thread::scope(|scope| {
        let feeder = scope.spawn(|| feed(files, opts, &workers, &slots, &abort, tx));
        let collected = collector.run(rx, &slots, &abort, &mut consume);
        let fed = feeder.join().map_err(|_| Error::WorkerLost);
        collected.and(fed.and_then(|r| r))
    });
    let mut summary = collector.finish()?;
    summary.elapsed = started.elapsed();
    result.map(|workers| ScanSummary { workers, ..summary })
}

/// Scans `files` and returns every result in input order with the summary.
///
/// # Errors
/// As [`scan`].
pub fn scan_collect<T, F>(
    files: &[InputFile],
    opts: &ScanOptions,
    map: F,
) -> Result<(Vec<T>, ScanSummary), Error>
where
    T: Send,
    F: Fn(&Resource<'_>) -> T + Sync,
{
    let mut out = Vec::new();
    let summary = scan(
        files,
        opts,
        || (),
        |(), r| map(r),
        |batch| {
            out.extend(batch.items);
            Ok(())
        },
    )?;
    Ok((out, summary))
}

/// Bounds the chunks in flight: the feeder takes a slot per chunk, the collector gives it back
/// once the chunk has been delivered in order.
struct Slots {
    free: Mutex<usize>,
    cond: Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            free: Mutex::new(n),
            cond: Condvar::new(),
        }
    }

    fn acquire(&self, abort: &AtomicBool) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            if abort.load(Ordering::Relaxed) {
                return false;
            }
            free = self
                .cond
                .wait_timeout(free, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        *free -= 1;
        true
    }

    fn release(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.cond.notify_one();
    }
}

enum ChunkBytes {
    /// A range of a memory-mapped file or of a file held in memory.
    Mapped(Arc<dyn Source>, Range<usize>),
    Owned(Vec<u8>),
}

impl ChunkBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            ChunkBytes::Mapped(m, r) => &(**m).as_ref()[r.clone()],
            ChunkBytes::Owned(v) => v,
        }
    }
}

struct Chunk {
    file_index: usize,
    /// Line number of the chunk's first line (`None`: not counted; lines are numbered within
    /// the chunk and the collector adds the offset).
    first_line: Option<u64>,
    /// Byte offset of the chunk in the decompressed file.
    offset: u64,
    bytes: ChunkBytes,
    disk_bytes: u64,
    /// The gzip stream broke right after this chunk.
    truncated: Option<(DamageKind, String)>,
}

struct ChunkResult<T> {
    file_index: usize,
    /// Lines were numbered from 1 within the chunk.
    relative: bool,
    /// Lines that ended with a newline (the next chunk starts that many lines later).
    newlines: u64,
    items: Vec<T>,
    stats: ChunkStats,
    rejects: Vec<Reject>,
    disk_bytes: u64,
}

#[derive(Default)]
struct ChunkStats {
    bytes: u64,
    lines: u64,
    blank: u64,
    types: Vec<(String, u64)>,
    versions: [u64; 4],
    /// The file's damage (kind, reason) and the chunk line number of the first line lost.
    damage: Option<(DamageKind, String, u64)>,
}

enum Msg<T> {
    FileStart { file_index: usize, bytes: u64 },
    Chunk(ChunkResult<T>),
    FileError(Error),
}

struct Workers<'a, I, F> {
    files: &'a [InputFile],
    init: &'a I,
    map: &'a F,
    parsers: Mutex<Vec<LineParser>>,
    next_seq: AtomicU64,
    /// Per file, the most items a chunk of it has produced so far: the next chunk's results are
    /// allocated at that size at once instead of growing to it (each growth copies, into fresh
    /// memory). Per file, as files of short lines make many more items per chunk.
    items_hint: Vec<AtomicUsize>,
    /// [`ScanOptions::pruning`].
    pruning: Option<Arc<Pruning>>,
}

impl<I, F> Workers<'_, I, F> {
    fn seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }
}

fn feed<S, T, I, F>(
    files: &[InputFile],
    opts: &ScanOptions,
    workers: &Workers<'_, I, F>,
    slots: &Slots,
    abort: &AtomicBool,
    tx: Sender<(u64, Msg<T>)>,
) -> Result<usize, Error>
where
    T: Send,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &Resource<'_>) -> T + Sync,
{
    let states: Mutex<Vec<S>> = Mutex::new(Vec::new());
    let pool = match opts.threads {
        0 => None,
        n => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("claimline-scan-{i}"))
            .build()
            .ok(),
    };
    // With `unmap_aside`, a thread of its own unmaps the files once read (what their chunks
    // did not release), which the worker that read a file's last chunk would otherwise do while
    // the caller waits for the scan to end. The thread ends when the last map is gone; nothing
    // waits for it.
    let maps = files
        .iter()
        .any(|f| f.compression == Compression::None && f.data.is_none());
    let unmapper = (opts.unmap_aside && maps)
        .then(channel::<FileMap>)
        .and_then(|(tx, rx)| {
            std::thread::Builder::new()
                .name("claimline-unmap".into())
                .spawn(move || rx.into_iter().for_each(unmap))
                .ok()
                .map(|_| tx)
        });
    let feeder = Feeder {
        files,
        opts,
        workers,
        states: &states,
        slots,
        abort,
        tx: &tx,
        unmapper: unmapper.as_ref(),
    };
    match &pool {
        Some(pool) => pool.in_place_scope(|scope| feeder.run(scope)),
        None => rayon::in_place_scope(|scope| feeder.run(scope)),
    }
    Ok(pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads()))
}

/// What the feeder thread needs to cut files into chunks and spawn their tasks.
struct Feeder<'a, S, T, I, F> {
    files: &'a [InputFile],
    opts: &'a ScanOptions,
    workers: &'a Workers<'a, I, F>,
    states: &'a Mutex<Vec<S>>,
    slots: &'a Slots,
    abort: &'a AtomicBool,
    tx: &'a Sender<(u64, Msg<T>)>,
    /// Where the files' memory maps go to be unmapped (see [`Unmapped`]); none: where their
    /// last chunk ends.
    unmapper: Option<&'a Sender<FileMap>>,
}

impl<'a, S, T, I, F> Feeder<'a, S, T, I, F>
where
    T: Send,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &Resource<'_>) -> T + Sync,
{
    fn run(&self, scope: &rayon::Scope<'a>) {
        let (workers, states) = (self.workers, self.states);
        let mut spawn = |chunk: Chunk| -> bool {
            if !self.slots.acquire(self.abort) {
                return false;
            }
            let seq = workers.seq();
            let tx = self.tx.clone();
            scope.spawn(move |_| {
                let result = process_chunk(workers, states, chunk);
                // The collector may have gone on an error; nothing to do then.
                let _ = tx.send((seq, Msg::Chunk(result)));
            });
            true
        };
        for (file_index, file) in self.files.iter().enumerate() {
            if self.abort.load(Ordering::Relaxed) {
                break;
            }
            if let Some(data) = &file.data {
                let _ = self.tx.send((
                    workers.seq(),
                    Msg::FileStart {
                        file_index,
                        bytes: data.len() as u64,
                    },
                ));
                feed_bytes(file_index, data.clone(), self.opts, &mut spawn);
                continue;
            }
            let opened = File::open(&file.path).and_then(|f| {
                let len = f.metadata()?.len();
                Ok((f, len))
            });
            let (handle, len) = match opened {
                Ok(x) => x,
                Err(source) => {
                    let err = Error::Read {
                        path: file.path.clone(),
                        source,
                    };
                    let _ = self.tx.send((workers.seq(), Msg::FileError(err)));
                    break;
                }
            };
            let _ = self.tx.send((
                workers.seq(),
                Msg::FileStart {
                    file_index,
                    bytes: len,
                },
            ));
            let fed = match file.compression {
                Compression::None => feed_mapped(
                    file_index,
                    file,
                    handle,
                    len,
                    self.opts,
                    self.unmapper,
                    &mut spawn,
                ),
                Compression::Gzip => feed_gzip(file_index, handle, self.opts, &mut spawn),
            };
            if let Err(err) = fed {
                let _ = self.tx.send((workers.seq(), Msg::FileError(err)));
                break;
            }
        }
    }
}

fn feed_mapped(
    file_index: usize,
    file: &InputFile,
    handle: File,
    len: u64,
    opts: &ScanOptions,
    unmapper: Option<&Sender<FileMap>>,
    spawn: &mut dyn FnMut(Chunk) -> bool,
) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    let map = map_file(&handle, &file.path).map_err(|source| Error::Read {
        path: file.path.clone(),
        source,
    })?;
    let blocks = Blocks::new(map.len(), opts.release_bytes);
    let map: Arc<dyn Source> = match unmapper {
        Some(to) => Arc::new(Unmapped {
            map: Some(map),
            to: to.clone(),
            blocks,
        }),
        None => Arc::new(Mapped { map, blocks }),
    };
    feed_bytes(file_index, map, opts, spawn);
    Ok(())
}

/// Unmaps a file's map that nothing reads any more, 16 MB at a time. Its chunks' pages have
/// left already ([`Blocks`]); what is left (the blocks of chunks that were not done, as when a
/// scan stops early) goes in steps: an `munmap` of a big file in one piece
/// holds the process's memory-map lock while it clears every page-table entry left, and the
/// other threads' allocations that ask the kernel for memory wait for it.
fn unmap(map: FileMap) {
    let mut at = 0;
    while at < map.len() {
        let n = RELEASE_BLOCK.min(map.len() - at);
        drop_pages(&map, at..at + n);
        at += n;
    }
    drop(map);
}

/// The bytes chunks are cut from: a file's memory map, or a file held in memory.
trait Source: AsRef<[u8]> + Send + Sync {
    /// The chunk of `range` is done: nothing reads its bytes again. A map lets go of its pages
    /// ([`Blocks`]); bytes in memory stay.
    fn done_with(&self, _range: Range<usize>) {}
}

impl Source for Vec<u8> {}

impl Source for Mapped {
    fn done_with(&self, range: Range<usize>) {
        self.blocks
            .done(range, |block| drop_pages(&self.map, block));
    }
}

impl Source for Unmapped {
    fn done_with(&self, range: Range<usize>) {
        if let Some(map) = &self.map {
            self.blocks.done(range, |block| drop_pages(map, block));
        }
    }
}

/// The size of the blocks a map's pages leave the page tables by ([`ScanOptions::release_bytes`]).
const RELEASE_BLOCK: usize = 16 << 20;

/// A map's blocks, each with how many of its bytes the chunks done so far cover. A block's
/// pages leave the page tables once every chunk over it is done, so a scan's peak RSS holds the
/// blocks being read, not every page of its input read so far, and the last unmapping has
/// little left. One `madvise` per block, not per chunk: each makes the kernel interrupt the
/// other cores running the process to flush their TLBs (16 MB blocks, four times fewer than
/// 4 MB chunks: a 1 GB header load 2% faster).
struct Blocks {
    done: Vec<AtomicUsize>,
    len: usize,
    size: usize,
}

impl Blocks {
    /// The blocks of a map of `len` bytes, of `size` bytes each rounded up to a multiple of
    /// 64 KiB (the last one shorter): no page of one block is in another.
    fn new(len: usize, size: usize) -> Self {
        let size = size.max(1).next_multiple_of(64 << 10);
        Blocks {
            done: (0..len.div_ceil(size))
                .map(|_| AtomicUsize::new(0))
                .collect(),
            len,
            size,
        }
    }

    /// Counts `range` (a chunk's, which no other chunk overlaps) done, and hands `release` the
    /// range of each block that this completes.
    fn done(&self, range: Range<usize>, mut release: impl FnMut(Range<usize>)) {
        let mut at = range.start;
        while at < range.end.min(self.len) {
            let b = at / self.size;
            let block = b * self.size..((b + 1) * self.size).min(self.len);
            let end = block.end.min(range.end);
            let n = end - at;
            let done = self.done[b].fetch_add(n, Ordering::AcqRel) + n;
            debug_assert!(done <= block.len(), "a block counted past its length");
            if done == block.len() {
                release(block);
            }
            at = end;
        }
    }
}

/// `MADV_DONTNEED` on `range` of `map`, a read-only map shared with its file: the pages leave
/// the page tables, the file and the page cache are untouched. (memmap2 rounds a start that is
/// not page-aligned down to its page.)
fn drop_pages(map: &FileMap, range: Range<usize>) {
    #[cfg(unix)]
    {
        // SAFETY: `MADV_DONTNEED` on a read-only shared file map cannot change what a read
        // returns: a later read of these bytes (none is expected: the caller is done with them)
        // faults them in again from the page cache, unchanged. No reference is invalidated.
        let _ = unsafe {
            map.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                range.end - range.start,
            )
        };
    }
    #[cfg(not(unix))]
    let _ = (map, range);
}

/// A file's memory map that, when its last chunk is done with it, is sent to the scan's
/// unmapping thread instead of being unmapped where that chunk ends (unmapped there when the
/// thread is gone).
struct Unmapped {
    map: Option<FileMap>,
    to: Sender<FileMap>,
    blocks: Blocks,
}

/// A file's memory map, unmapped where its last chunk ends (a `scan`: nothing follows).
struct Mapped {
    map: FileMap,
    blocks: Blocks,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl AsRef<[u8]> for Unmapped {
    fn as_ref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

impl Drop for Unmapped {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            // A send fails only when the thread is gone: the map is then dropped here.
            let _ = self.to.send(map);
        }
    }
}

/// Maps a whole file read-only, for a sequential read: the one memory map of claimline's
/// readers (NDJSON here, CCLF files in `load`). `path` names the file should another program
/// cut it short while it is read: the process then ends with a message naming it and exit code
/// 4 (see [`crate::guard`]), not a bare `SIGBUS`.
///
/// # Errors
/// The operating system's refusal (an empty file cannot be mapped).
pub fn map_file(handle: &File, path: &std::path::Path) -> std::io::Result<FileMap> {
    // SAFETY: the map is read-only. A concurrent writer can only change bytes we parse, and
    // every byte goes through full validation (JSON, or a CCLF field's picture); a file cut
    // short under the map ends the process with its name said (`guard`).
    let map = unsafe { Mmap::map(handle) }?;
    let note = crate::guard::note(map.as_ptr(), map.len(), path);
    let map = FileMap { map, note };
    #[cfg(unix)]
    let _ = map.map.advise(memmap2::Advice::Sequential);
    // Pages not yet in the page cache are read in huge (2 MiB) folios, not in the read-ahead
    // window's small ones: a load of a file that is not cached makes a third fewer page faults
    // and spends a third of the system time (cold, a 1 GB header load 0.97 -> 0.71 s, every
    // table of a 582 MB export 1.08 -> 0.88 s; thirty-seventh round). Pages already cached are
    // mapped as they are (no change). Advice only: a kernel without transparent huge pages
    // refuses it, and that is ignored here.
    #[cfg(target_os = "linux")]
    let _ = map.map.advise(memmap2::Advice::HugePage);
    claimline_fault::point("scan.mapped")?;
    Ok(map)
}

/// A file's read-only memory map ([`map_file`]), noted for the `SIGBUS` guard while it lives
/// (see [`crate::guard`]): its bytes by `Deref`.
pub struct FileMap {
    map: Mmap,
    note: Option<usize>,
}

impl std::ops::Deref for FileMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // Before the map goes (the field is dropped after this): no read of it follows.
        if let Some(note) = self.note.take() {
            crate::guard::forget(note);
        }
    }
}

/// Cuts a file's bytes (mapped or in memory) into chunks at line ends.
fn feed_bytes(
    file_index: usize,
    map: Arc<dyn Source>,
    opts: &ScanOptions,
    spawn: &mut dyn FnMut(Chunk) -> bool,
) {
    let bytes: &[u8] = (*map).as_ref();
    let total = bytes.len();
    let mut start = 0usize;
    let mut line = 1u64;
    while start < total {
        let target = (start + opts.chunk_bytes).min(total);
        let end = if target >= total {
            total
        } else {
            memchr::memchr(b'\n', &bytes[target - 1..]).map_or(total, |i| target + i)
        };
        let newlines = if opts.lines_in_batch {
            0
        } else {
            memchr::memchr_iter(b'\n', &bytes[start..end]).count() as u64
        };
        let chunk = Chunk {
            file_index,
            first_line: (!opts.lines_in_batch).then_some(line),
            offset: start as u64,
            bytes: ChunkBytes::Mapped(map.clone(), start..end),
            disk_bytes: (end - start) as u64,
            truncated: None,
        };
        if !spawn(chunk) {
            return;
        }
        line += newlines;
        start = end;
    }
}

/// Counts the compressed bytes the decoder has consumed, for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Block {
    Data(Vec<u8>, u64),
    Broken(Vec<u8>, u64, DamageKind, String),
}

/// What a decoder error says about the file: `decoded` bytes came out before it.
fn gzip_fault(e: &std::io::Error, decoded: u64) -> DamageKind {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => DamageKind::TruncatedGzip,
        // flate2 says "invalid gzip header" when the first member does not start like gzip.
        _ if decoded == 0 && e.to_string().contains("header") => DamageKind::NotGzip,
        _ => DamageKind::CorruptGzip,
    }
}

fn decode_gzip(handle: File, block_bytes: usize, tx: SyncSender<Block>) {
    let count = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: BufReader::with_capacity(1 << 20, handle),
        count: count.clone(),
    };
    let mut decoder = flate2::read::MultiGzDecoder::new(reader);
    let mut pending: Vec<u8> = Vec::new();
    let mut decoded = 0u64;
    let mut reported = 0u64;
    let mut disk_delta = || {
        let now = count.load(Ordering::Relaxed);
        let d = now - reported;
        reported = now;
        d
    };
    loop {
        let mut buf = std::mem::take(&mut pending);
        buf.reserve(block_bytes);
        // `read_to_end` grows the buffer without zero-filling it on every short read.
        let eof = match (&mut decoder)
            .take(block_bytes as u64)
            .read_to_end(&mut buf)
        {
            Ok(n) => n < block_bytes,
            Err(e) => {
                // What was decoded before the error is in `buf`.
                let kind = gzip_fault(&e, decoded + buf.len() as u64);
                let _ = tx.send(Block::Broken(buf, disk_delta(), kind, e.to_string()));
                return;
            }
        };
        decoded += buf.len() as u64;
        if eof {
            if !buf.is_empty() {
                let _ = tx.send(Block::Data(buf, disk_delta()));
            }
            return;
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => {
                pending = buf[i + 1..].to_vec();
                buf.truncate(i + 1);
                if tx.send(Block::Data(buf, disk_delta())).is_err() {
                    return;
                }
            }
            // One line longer than the block: keep reading until it ends.
            None => pending = buf,
        }
    }
}

fn feed_gzip(
    file_index: usize,
    handle: File,
    opts: &ScanOptions,
    spawn: &mut dyn FnMut(Chunk) -> bool,
) -> Result<(), Error> {
    let (tx, rx): (SyncSender<Block>, Receiver<Block>) = sync_channel(2);
    let block_bytes = opts.chunk_bytes.max(1);
    std::thread::scope(|s| {
        s.spawn(move || decode_gzip(handle, block_bytes, tx));
        let mut line = 1u64;
        let mut offset = 0u64;
        for block in rx {
            let (bytes, disk_bytes, truncated) = match block {
                Block::Data(b, d) => (b, d, None),
                Block::Broken(b, d, k, e) => (b, d, Some((k, e))),
            };
            let newlines = if opts.lines_in_batch {
                0
            } else {
                memchr::memchr_iter(b'\n', &bytes).count() as u64
            };
            let len = bytes.len() as u64;
            let chunk = Chunk {
                file_index,
                first_line: (!opts.lines_in_batch).then_some(line),
                offset,
                bytes: ChunkBytes::Owned(bytes),
                disk_bytes,
                truncated,
            };
            if !spawn(chunk) {
                // Dropping the receiver ends the decoder at its next send.
                break;
            }
            line += newlines;
            offset += len;
        }
    });
    Ok(())
}

/// How many `\n` `bytes` starts with.
#[cold]
#[inline(never)]
fn empty_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| **b == b'\n').count()
}

/// How a damaged gzip file is described to a person.
fn damage_words(kind: DamageKind) -> &'static str {
    match kind {
        DamageKind::TruncatedGzip => "the gzip stream ends early: the file is cut",
        DamageKind::CorruptGzip => "the gzip stream is corrupt",
        DamageKind::NotGzip => "the file is named .gz but is not gzip",
        DamageKind::ChangedWhileRead => "the file changed size while it was read",
    }
}

fn process_chunk<S, T, I, F>(
    workers: &Workers<'_, I, F>,
    states: &Mutex<Vec<S>>,
    chunk: Chunk,
) -> ChunkResult<T>
where
    I: Fn() -> S,
    F: Fn(&mut S, &Resource<'_>) -> T,
{
    let mut parser = workers
        .parsers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    let mut state = states
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_else(|| (workers.init)());
    let file = &workers.files[chunk.file_index];
    let bytes = chunk.bytes.as_slice();
    let hint = &workers.items_hint[chunk.file_index];
    let mut items = Vec::with_capacity(hint.load(Ordering::Relaxed));
    let mut rejects = Vec::new();
    let mut stats = ChunkStats {
        bytes: bytes.len() as u64,
        ..ChunkStats::default()
    };
    // A file of one type that is parsed whole goes straight to the whole parse: checking its
    // lines first would find nothing to leave out.
    let pruning = workers.pruning.as_deref().filter(|p| {
        file.expected_type
            .as_deref()
            .is_none_or(|t| p.needs(t, file.api_version.is_none()).is_some())
    });
    let mut pos = 0usize;
    let mut line_no = chunk.first_line.unwrap_or(1);
    let mut newlines = 0u64;
    while pos < bytes.len() {
        // A run of empty lines (the gaps `InputFile::in_memory` data holds between the lines it
        // was given) counted at once, not line by line; out of the way of every other line.
        if bytes[pos] == b'\n' && bytes.get(pos + 1) == Some(&b'\n') {
            let empty = empty_run(&bytes[pos..]);
            let n = empty as u64;
            newlines += n;
            stats.lines += n;
            stats.blank += n;
            line_no += n;
            pos += empty;
            continue;
        }
        let (end, next) = match memchr::memchr(b'\n', &bytes[pos..]) {
            Some(i) => (pos + i, pos + i + 1),
            None => (bytes.len(), bytes.len()),
        };
        let has_newline = next > end;
        newlines += u64::from(has_newline);
        let mut line = &bytes[pos..end];
        let offset = chunk.offset + pos as u64;
        stats.lines += 1;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line_no == 1
            && chunk.offset == 0
            && let Some(stripped) = line.strip_prefix(BOM)
        {
            line = stripped;
        }
        let cut_by_gzip = !has_newline && chunk.truncated.is_some();
        if line.iter().all(u8::is_ascii_whitespace) {
            stats.blank += 1;
        } else {
            let reject = |kind, message: String| Reject {
                file_index: chunk.file_index,
                line: line_no,
                offset,
                kind,
                message,
                raw: line.to_vec(),
            };
            let on_doc = |doc: &crate::Document<'_>| {
                let root = doc.root();
                let resource_type = resource_type_of(root)?;
                if let Some(expected) = &file.expected_type
                    && expected != resource_type
                {
                    return Err((
                        RejectKind::WrongResourceType,
                        format!(
                            "field `resourceType` is `{resource_type}` but the manifest says this file holds `{expected}`"
                        ),
                    ));
                }
                let api_version = file.version_of(root);
                let resource = Resource {
                    file,
                    file_index: chunk.file_index,
                    line: line_no,
                    offset,
                    resource_type,
                    id: root.get("id").and_then(|c| c.as_str()),
                    api_version,
                    root,
                    raw: line,
                };
                let item = (workers.map)(&mut state, &resource);
                Ok((item, resource_type.to_owned(), api_version))
            };
            let parsed = match pruning {
                Some(pruning) => {
                    parser.parse_pruned(line, pruning, file.api_version.is_none(), on_doc)
                }
                None => parser.parse(line, on_doc),
            };
            match parsed {
                Ok(Ok((item, resource_type, version))) => {
                    items.push(item);
                    match stats.types.iter_mut().find(|(t, _)| *t == resource_type) {
                        Some((_, n)) => *n += 1,
                        None => stats.types.push((resource_type, 1)),
                    }
                    let v = match version {
                        Some(ApiVersion::V1) => 1,
                        Some(ApiVersion::V2) => 2,
                        Some(ApiVersion::V3) => 3,
                        None => 0,
                    };
                    stats.versions[v] += 1;
                }
                Ok(Err((kind, message))) => rejects.push(reject(kind, message)),
                Err(e) => {
                    let (kind, message) = if let (true, Some((fault, why))) =
                        (cut_by_gzip, &chunk.truncated)
                    {
                        (
                            fault.reject_kind(),
                            format!(
                                "{} ({why}); this last line is cut and the rest of the file is lost",
                                damage_words(*fault)
                            ),
                        )
                    } else {
                        let _ = e;
                        let (at, why) = crate::parse::explain_invalid(line);
                        if has_newline {
                            (
                                RejectKind::InvalidJson,
                                format!("invalid JSON at byte {at} of the line: {why}"),
                            )
                        } else {
                            (
                                RejectKind::TruncatedLine,
                                format!(
                                    "the file ends mid-line (no final newline): invalid JSON at byte {at} of the line: {why}"
                                ),
                            )
                        }
                    };
                    rejects.push(reject(kind, message));
                }
            }
        }
        pos = next;
        line_no += 1;
    }
    if let Some((fault, e)) = &chunk.truncated {
        // A stream broken exactly at a line boundary leaves no partial line: the damage (the
        // file's `damaged` entry) says what is lost, and no line is rejected (changed in the
        // thirty-first round: an empty reject of a line that is not there was counted, so
        // lines and rejects did not add up), but for a file that is not gzip at all.
        let last_was_cut = bytes.last().is_some_and(|b| *b != b'\n');
        let first_lost = if last_was_cut { line_no - 1 } else { line_no };
        stats.damage = Some((*fault, e.clone(), first_lost));
        // A file that is no gzip at all gave no line: its one reject stands for all of them.
        if *fault == DamageKind::NotGzip && !last_was_cut {
            rejects.push(Reject {
                file_index: chunk.file_index,
                line: line_no,
                offset: chunk.offset + bytes.len() as u64,
                kind: fault.reject_kind(),
                message: format!(
                    "{} ({e}); none of its lines can be read",
                    damage_words(*fault)
                ),
                raw: Vec::new(),
            });
        }
    }
    hint.fetch_max(items.len(), Ordering::Relaxed);
    if let ChunkBytes::Mapped(source, range) = &chunk.bytes {
        source.done_with(range.clone());
    }
    workers
        .parsers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(parser);
    states.lock().unwrap_or_else(|e| e.into_inner()).push(state);
    ChunkResult {
        file_index: chunk.file_index,
        relative: chunk.first_line.is_none(),
        newlines,
        items,
        stats,
        rejects,
        disk_bytes: chunk.disk_bytes,
    }
}

struct Collector<'a> {
    files: &'a [InputFile],
    summaries: Vec<FileSummary>,
    strict: bool,
    writer: Option<RejectWriter>,
    rejects_file: Option<PathBuf>,
    kept: Vec<Reject>,
    reject_count: u64,
    error: Option<Error>,
    /// Per file, the line number the next chunk starts at.
    next_line: Vec<u64>,
    /// Per file, the bytes on disk its chunks covered so far.
    disk_read: Vec<u64>,
}

impl<'a> Collector<'a> {
    fn new(files: &'a [InputFile], opts: &ScanOptions) -> Self {
        let (writer, rejects_file) = match &opts.rejects {
            RejectTarget::Memory => (None, None),
            RejectTarget::File(p) => (Some(RejectWriter::new(p.clone())), Some(p.clone())),
        };
        Collector {
            files,
            summaries: files
                .iter()
                .map(|f| FileSummary {
                    path: f.path.clone(),
                    ..FileSummary::default()
                })
                .collect(),
            strict: opts.strict,
            writer,
            rejects_file,
            kept: Vec::new(),
            reject_count: 0,
            error: None,
            next_line: vec![1; files.len()],
            disk_read: vec![0; files.len()],
        }
    }

    fn run<T, C>(
        &mut self,
        rx: Receiver<(u64, Msg<T>)>,
        slots: &Slots,
        abort: &AtomicBool,
        consume: &mut C,
    ) -> Result<(), Error>
    where
        C: FnMut(Batch<T>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut pending: BTreeMap<u64, Msg<T>> = BTreeMap::new();
        let mut next = 0u64;
        for (seq, msg) in rx {
            pending.insert(seq, msg);
            while let Some(msg) = pending.remove(&next) {
                next += 1;
                let is_chunk = matches!(msg, Msg::Chunk(_));
                if self.error.is_none()
                    && let Err(e) = self.handle(msg, consume)
                {
                    self.error = Some(e);
                    abort.store(true, Ordering::Relaxed);
                }
                if is_chunk {
                    slots.release();
                }
            }
        }
        if !pending.is_empty() && self.error.is_none() {
            self.error = Some(Error::WorkerLost);
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn handle<T, C>(&mut self, msg: Msg<T>, consume: &mut C) -> Result<(), Error>
    where
        C: FnMut(Batch<T>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
    {
        match msg {
            Msg::FileStart { file_index, bytes } => {
                self.summaries[file_index].bytes = bytes;
                Ok(())
            }
            Msg::FileError(e) => Err(e),
            Msg::Chunk(mut c) => {
                let next_line = &mut self.next_line[c.file_index];
                let line_offset = if c.relative { *next_line - 1 } else { 0 };
                *next_line += c.newlines;
                self.disk_read[c.file_index] += c.disk_bytes;
                for r in &mut c.rejects {
                    r.line += line_offset;
                }
                let s = &mut self.summaries[c.file_index];
                s.ndjson_bytes += c.stats.bytes;
                s.lines += c.stats.lines;
                s.blank_lines += c.stats.blank;
                for (t, n) in c.stats.types {
                    *s.resources.entry(t).or_insert(0) += n;
                }
                if let Some((kind, reason, first_lost)) = c.stats.damage {
                    s.truncated = true;
                    s.damaged = Some(Damage {
                        kind,
                        reason,
                        disk_bytes_read: self.disk_read[c.file_index],
                        ndjson_bytes_read: s.ndjson_bytes,
                        first_lost_line: first_lost + line_offset,
                        resources_read: s.resources.values().sum(),
                        read_is_trusted: kind.read_is_trusted(),
                    });
                }
                for (i, n) in c.stats.versions.iter().enumerate() {
                    if *n > 0 {
                        let k = ["unknown", "v1", "v2", "v3"][i];
                        *s.api_versions.entry(k.to_owned()).or_insert(0) += n;
                    }
                }
                s.rejects += c.rejects.len() as u64;
                self.reject_count += c.rejects.len() as u64;
                let path = &self.files[c.file_index].path;
                let first = c.rejects.first().map(|r| (r.line, r.message.clone()));
                for r in c.rejects {
                    match &mut self.writer {
                        Some(w) => w.write(path, &r)?,
                        None => self.kept.push(r),
                    }
                }
                if let (true, Some((line, message))) = (self.strict, first) {
                    return Err(Error::Strict {
                        path: path.clone(),
                        line,
                        message,
                    });
                }
                consume(Batch {
                    file_index: c.file_index,
                    items: c.items,
                    disk_bytes: c.disk_bytes,
                    line_offset,
                })
                .map_err(Error::Consumer)
            }
        }
    }

    fn finish(mut self) -> Result<ScanSummary, Error> {
        let wrote = match &mut self.writer {
            Some(w) => w.finish()?,
            None => false,
        };
        // A plain file cut short (or written to) while its map was read: the bytes past its new
        // end read as zeros when they stay within the map's last page, with no `SIGBUS` (found
        // by a review: the load committed them). Its size now says so.
        for (f, s) in self.files.iter().zip(&mut self.summaries) {
            if f.compression != Compression::None || f.data.is_some() || s.damaged.is_some() {
                continue;
            }
            // Since it was found (a pre-pass may have read it before this scan opened it).
            let found = f.size.unwrap_or(s.bytes);
            let now = std::fs::metadata(&f.path).map(|m| m.len()).ok();
            if now != Some(found) || s.bytes != found {
                s.truncated = true;
                s.damaged = Some(Damage {
                    kind: DamageKind::ChangedWhileRead,
                    reason: match now {
                        Some(n) => {
                            format!("{found} bytes when it was found, {n} after it was read")
                        }
                        None => "gone after it was read".to_owned(),
                    },
                    disk_bytes_read: s.bytes,
                    ndjson_bytes_read: s.ndjson_bytes,
                    first_lost_line: 1,
                    resources_read: s.resources.values().sum(),
                    read_is_trusted: DamageKind::ChangedWhileRead.read_is_trusted(),
                });
            }
        }
        Ok(ScanSummary {
            files: self.summaries,
            reject_count: self.reject_count,
            rejects_file: if wrote { self.rejects_file } else { None },
            rejects: self.kept,
            elapsed: Duration::ZERO,
            workers: 0,
        })
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
