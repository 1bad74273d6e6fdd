//! A run's claim history, held to the end of the scan within a memory budget: each EOB's claim
//! event ([`ClaimEvent`]) and what the load keeps of it until the rule decides (a record `R`)
//! stay in memory up to the budget; past it they wait on disk, in runs sorted by claim group,
//! and come back merged, a batch of whole groups at a time, in the order the rule and
//! `_claimline_claims` read them ([`claimline_link::group_order`]). What a load holds of its
//! claim history no longer grows with its input.
//!
//! The files are owner-only, in `DIR/.claimline-history/` (claim keys and ids are PHI), each
//! removed once read back or abandoned; the folder goes at the end of the load, and one that a
//! killed load left is removed by the next command's recovery ([`crate::output::recover`]).

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use claimline_link::{Action, ClaimEvent, VersionMode};
use claimline_model::CompactString;
use claimline_ndjson::ApiVersion;

use crate::LoadError;

/// The folder of an output's claim-history files (`DIR/.claimline-history`).
pub(crate) fn history_dir(out: &Path) -> PathBuf {
    out.join(".claimline-history")
}

/// The claim history's folder of a load, removed when dropped if empty (its files are removed as
/// they are read back, or when the load fails).
pub(crate) struct HistoryFolder(pub(crate) PathBuf);

impl Drop for HistoryFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What the load keeps of an EOB beside its claim event, written to and read from the spool's
/// files.
pub(crate) trait Record: Sized + Sync {
    /// Bytes it holds besides its own size (on the heap).
    fn heap_bytes(&self) -> usize;
    /// Appends it to `w`.
    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()>;
    /// Reads one written by [`Record::write_to`].
    fn read_from(r: &mut impl Read) -> std::io::Result<Self>;
}

/// An EOB's claim event and its record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry<R> {
    pub(crate) event: ClaimEvent,
    pub(crate) record: R,
}

impl<R: Record> Entry<R> {
    /// Memory it holds.
    fn bytes(&self) -> usize {
        std::mem::size_of::<R>() + event_bytes(&self.event) + self.record.heap_bytes()
    }
}

/// Memory an event holds: its own and its strings' past what is held inline.
fn event_bytes(e: &ClaimEvent) -> usize {
    let heap = |s: &CompactString| if s.is_heap_allocated() { s.len() } else { 0 };
    std::mem::size_of::<ClaimEvent>() + heap(&e.claim_key) + heap(&e.resource_id)
}

/// An API version as one byte of the spool's files (0 for none).
pub(crate) fn api_byte(api: Option<ApiVersion>) -> u8 {
    match api {
        None => 0,
        Some(ApiVersion::V1) => 1,
        Some(ApiVersion::V2) => 2,
        Some(ApiVersion::V3) => 3,
    }
}

/// The API version [`api_byte`] wrote.
pub(crate) fn api_of_byte(b: u8) -> std::io::Result<Option<ApiVersion>> {
    match b {
        0 => Ok(None),
        1 => Ok(Some(ApiVersion::V1)),
        2 => Ok(Some(ApiVersion::V2)),
        3 => Ok(Some(ApiVersion::V3)),
        _ => Err(invalid("an API version")),
    }
}

/// The default budget: a load's claim history holds up to 32 MiB in memory (some 260,000 EOBs,
/// 6.5 GB of seven-year NDJSON) before it waits on disk.
pub(crate) const DEFAULT_BUDGET: usize = 32 << 20;

/// The events and records of a run, as the scan meets them ([`HistorySpool::push`]).
pub(crate) struct HistorySpool<R> {
    mode: VersionMode,
    dir: PathBuf,
    budget: usize,
    buffer: Vec<Entry<R>>,
    held: usize,
    /// Sorted runs on disk, each with its level: 0 for a budget's worth, one more for each
    /// merge of [`FAN`] runs of a level into one (the levels never grow toward the end).
    runs: Vec<(u32, Spilled)>,
    /// Files made so far (each names its file).
    made: usize,
    /// Merges of runs made so far.
    merges: usize,
}

/// A file of the spool, removed when dropped.
pub(crate) struct Spilled {
    path: PathBuf,
    /// Entries written to it: a file that ends before as many are read back is cut short.
    count: u64,
}

impl Drop for Spilled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl<R: Record> HistorySpool<R> {
    /// A spool for a run under `mode`, writing past `budget` bytes into `dir`
    /// ([`history_dir`]), which it creates only then.
    pub(crate) fn new(mode: VersionMode, dir: PathBuf, budget: usize) -> Self {
        HistorySpool {
            mode,
            dir,
            budget,
            buffer: Vec::new(),
            held: 0,
            runs: Vec::new(),
            made: 0,
            merges: 0,
        }
    }

    /// Adds an EOB's event and record, in input order (their places, [`ClaimEvent::position`],
    /// growing).
    ///
    /// # Errors
    /// A failed write of the history to disk.
    pub(crate) fn push(&mut self, event: ClaimEvent, record: R) -> Result<(), LoadError> {
        let entry = Entry { event, record };
        self.held += entry.bytes();
        self.buffer.push(entry);
        if self.held >= self.budget || self.buffer.len() >= claimline_link::MAX_EVENTS {
            self.spill()?;
        }
        Ok(())
    }

    /// How many entries it holds, in memory and on disk.
    pub(crate) fn len(&self) -> u64 {
        self.buffer.len() as u64 + self.runs.iter().map(|(_, s)| s.count).sum::<u64>()
    }

    /// A new file of the spool, `<what>-<n>.bin`.
    fn create(&mut self, what: &str) -> Result<(File, Spilled), LoadError> {
        let path = self.dir.join(format!("{what}-{:06}.bin", self.made));
        self.made += 1;
        let file = claimline_model::create_private(&path).map_err(|e| LoadError::io(&path, e))?;
        Ok((file, Spilled { path, count: 0 }))
    }

    /// Writes the buffer, sorted, as a run of its own.
    fn spill(&mut self) -> Result<(), LoadError> {
        claimline_model::create_private_dir(&self.dir).map_err(|e| LoadError::io(&self.dir, e))?;
        let (file, mut spilled) = self.create("run")?;
        claimline_fault::point("load.history-spill")
            .map_err(|e| LoadError::io(&spilled.path, e))?;
        let order =
            claimline_link::sort_by_group(self.mode, self.buffer.len(), |i| &self.buffer[i].event);
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let written = order
            .iter()
            .try_for_each(|&i| write_entry(&mut w, &self.buffer[i as usize]))
            .and_then(|()| w.flush());
        written.map_err(|e| LoadError::io(&spilled.path, e))?;
        spilled.count = order.len() as u64;
        self.runs.push((0, spilled));
        // Its room kept for the next run: not grown (and copied) again as it fills.
        self.buffer.clear();
        self.held = 0;
        // As a counter in base FAN: FAN runs of a level make one of the next.
        while let Some(&(level, _)) = self.runs.last() {
            let same = self
                .runs
                .iter()
                .rev()
                .take_while(|(l, _)| *l == level)
                .count();
            if same < FAN {
                break;
            }
            let runs: Vec<Spilled> = self
                .runs
                .split_off(self.runs.len() - FAN)
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            let merged = self.merge_runs(runs)?;
            self.runs.push((level + 1, merged));
        }
        Ok(())
    }

    /// The run's entries in [`claimline_link::group_order`]: the buffer sorted in memory,
    /// merged with the runs on disk.
    ///
    /// # Errors
    /// A spilled run that cannot be opened.
    pub(crate) fn finish(self) -> Result<Groups<R>, LoadError> {
        let order =
            claimline_link::sort_by_group(self.mode, self.buffer.len(), |i| &self.buffer[i].event);
        // In place: an `Option` of an entry is no bigger than the entry.
        let slots: Vec<Option<Entry<R>>> = self.buffer.into_iter().map(Some).collect();
        let memory = Memory {
            order: order.into_iter(),
            slots,
        };
        let runs = self.runs.into_iter().map(|(_, s)| s).collect();
        Groups::merge(self.mode, memory, runs)
    }

    /// Merges `runs` into one run (the runs removed once read): each entry is written again
    /// once per level, and fewer than [`FAN`] runs of each level are ever open at once.
    fn merge_runs(&mut self, runs: Vec<Spilled>) -> Result<Spilled, LoadError> {
        let (file, mut merged) = self.create("merged")?;
        self.merges += 1;
        let mut all: Groups<R> = Groups::merge(self.mode, Memory::empty(), runs)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        while let Some(e) = all.next.take() {
            write_entry(&mut w, &e).map_err(|e| LoadError::io(&merged.path, e))?;
            merged.count += 1;
            all.next = all.pull()?;
        }
        w.flush().map_err(|e| LoadError::io(&merged.path, e))?;
        Ok(merged)
    }
}

/// Runs of a level merged into one of the next ([`HistorySpool::spill`]): each entry is
/// written about `log16` of the runs times, and at most 15 runs of each level wait.
const FAN: usize = 16;

/// The buffer, read in sorted order.
struct Memory<R> {
    order: std::vec::IntoIter<u32>,
    slots: Vec<Option<Entry<R>>>,
}

impl<R> Memory<R> {
    fn empty() -> Self {
        Memory {
            order: Vec::new().into_iter(),
            slots: Vec::new(),
        }
    }

    fn next(&mut self) -> Option<Entry<R>> {
        let i = self.order.next()?;
        self.slots[i as usize].take()
    }
}

/// A spilled run, read back in its order.
struct RunReader {
    reader: BufReader<File>,
    spilled: Spilled,
    /// Entries read back so far.
    read: u64,
}

impl RunReader {
    fn next<R: Record>(&mut self) -> Result<Option<Entry<R>>, LoadError> {
        let path = &self.spilled.path;
        let next = read_entry(&mut self.reader).map_err(|e| LoadError::io(path, e))?;
        match next {
            Some(_) => self.read += 1,
            // Cut between two entries: as much an error as cut inside one.
            None if self.read != self.spilled.count => {
                return Err(LoadError::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the claim history's run ends after {} of its {} entries",
                            self.read, self.spilled.count
                        ),
                    ),
                ));
            }
            None => {}
        }
        Ok(next)
    }
}

/// The least entry of a source, in the merge.
struct Head<R> {
    mode: VersionMode,
    entry: Entry<R>,
    /// `None` for the buffer, else the run.
    source: Option<usize>,
}

impl<R> Head<R> {
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        claimline_link::group_order(self.mode, &self.entry.event, &other.entry.event)
    }
}

impl<R> PartialEq for Head<R> {
    fn eq(&self, other: &Self) -> bool {
        self.order(other).is_eq()
    }
}

impl<R> Eq for Head<R> {}

impl<R> PartialOrd for Head<R> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<R> Ord for Head<R> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The least first: `BinaryHeap` pops its greatest.
        other.order(self)
    }
}

/// A run's entries in [`claimline_link::group_order`], a batch of whole groups at a time
/// ([`Groups::next_batch`]).
pub(crate) struct Groups<R> {
    mode: VersionMode,
    memory: Memory<R>,
    files: Vec<RunReader>,
    /// With runs on disk, each source's least entry not taken yet.
    heap: BinaryHeap<Head<R>>,
    /// The next entry.
    next: Option<Entry<R>>,
}

impl<R: Record> Groups<R> {
    /// The entries of `memory` and of the `runs` on disk, merged.
    fn merge(mode: VersionMode, memory: Memory<R>, runs: Vec<Spilled>) -> Result<Self, LoadError> {
        let mut files = Vec::with_capacity(runs.len());
        for run in runs {
            let file = File::open(&run.path).map_err(|e| LoadError::io(&run.path, e))?;
            files.push(RunReader {
                reader: BufReader::with_capacity(64 << 10, file),
                spilled: run,
                read: 0,
            });
        }
        let mut groups = Groups {
            mode,
            memory,
            files,
            heap: BinaryHeap::new(),
            next: None,
        };
        if !groups.files.is_empty() {
            if let Some(e) = groups.memory.next() {
                groups.heap.push(Head {
                    mode,
                    entry: e,
                    source: None,
                });
            }
            for s in 0..groups.files.len() {
                if let Some(e) = groups.files[s].next()? {
                    groups.heap.push(Head {
                        mode,
                        entry: e,
                        source: Some(s),
                    });
                }
            }
        }
        groups.next = groups.pull()?;
        Ok(groups)
    }

    /// The next entry in order.
    fn pull(&mut self) -> Result<Option<Entry<R>>, LoadError> {
        if self.files.is_empty() {
            return Ok(self.memory.next());
        }
        let Some(Head { entry, source, .. }) = self.heap.pop() else {
            return Ok(None);
        };
        let refill = match source {
            None => self.memory.next(),
            Some(s) => self.files[s].next()?,
        };
        if let Some(e) = refill {
            self.heap.push(Head {
                mode: self.mode,
                entry: e,
                source,
            });
        }
        Ok(Some(entry))
    }

    /// Replaces `entries` with the next whole groups, `at_least` entries or up to the last
    /// group, and `starts` with where each group starts in `entries` (and `entries`' length
    /// last). False once every group was given.
    ///
    /// # Errors
    /// A spilled run that cannot be read back.
    pub(crate) fn next_batch(
        &mut self,
        entries: &mut Vec<Entry<R>>,
        starts: &mut Vec<usize>,
        at_least: usize,
    ) -> Result<bool, LoadError> {
        entries.clear();
        starts.clear();
        while let Some(e) = self.next.take() {
            let new_group = entries
                .last()
                .is_none_or(|l: &Entry<R>| l.event.group(self.mode) != e.event.group(self.mode));
            if new_group {
                if !entries.is_empty() && entries.len() >= at_least {
                    self.next = Some(e);
                    break;
                }
                starts.push(entries.len());
            }
            entries.push(e);
            self.next = self.pull()?;
        }
        starts.push(entries.len());
        Ok(!entries.is_empty())
    }
}

/// Bytes of an entry: the event (the offset of its line, version, action, `lastUpdated`, file,
/// claim key, resource id), then the record.
fn write_entry<R: Record>(w: &mut impl Write, e: &Entry<R>) -> std::io::Result<()> {
    let ev = &e.event;
    w.write_all(&ev.position.1.to_le_bytes())?;
    let api = api_byte(ev.api_version);
    let action = match ev.action {
        Action::Version => 0u8,
        Action::Cancel => 1,
    };
    w.write_all(&[api, action, u8::from(ev.last_updated.is_some())])?;
    w.write_all(&ev.last_updated.unwrap_or(0).to_le_bytes())?;
    w.write_all(&(ev.position.0 as u64).to_le_bytes())?;
    write_str(w, &ev.claim_key)?;
    write_str(w, &ev.resource_id)?;
    e.record.write_to(w)
}

/// An entry [`write_entry`] wrote; `None` at the end of the file (a file cut inside an entry is
/// an error).
fn read_entry<R: Record>(r: &mut impl Read) -> std::io::Result<Option<Entry<R>>> {
    let mut offset = [0u8; 8];
    // The end of the file comes only before an entry.
    let mut got = 0;
    while got < offset.len() {
        match r.read(&mut offset[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let [api, action, has_time] = read_array(r)?;
    let api_version = api_of_byte(api)?;
    let action = match action {
        0 => Action::Version,
        1 => Action::Cancel,
        _ => return Err(invalid("an action")),
    };
    let time = i64::from_le_bytes(read_array(r)?);
    let file = u64::from_le_bytes(read_array(r)?);
    let claim_key = read_str(r)?;
    let resource_id = read_str(r)?;
    let record = R::read_from(r)?;
    Ok(Some(Entry {
        event: ClaimEvent {
            api_version,
            claim_key,
            resource_id,
            last_updated: (has_time != 0).then_some(time),
            action,
            position: (
                usize::try_from(file).map_err(|_| invalid("a file number"))?,
                u64::from_le_bytes(offset),
            ),
        },
        record,
    }))
}

/// What a file of the spool does not hold where it should.
pub(crate) fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not {what} where the claim history wrote one"),
    )
}

/// `N` bytes.
pub(crate) fn read_array<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// A string: its length (4 bytes) and its bytes.
pub(crate) fn write_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    let n = u32::try_from(s.len()).map_err(|_| invalid("a string under 4 GiB"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// A string [`write_str`] wrote.
pub(crate) fn read_str(r: &mut impl Read) -> std::io::Result<CompactString> {
    let n = u32::from_le_bytes(read_array(r)?) as usize;
    // A claim key or id fits on the stack: read without a buffer of its own (and held inline,
    // with no allocation at all, up to 24 bytes).
    let mut short = [0u8; 64];
    if let Some(b) = short.get_mut(..n) {
        r.read_exact(b)?;
        return std::str::from_utf8(b)
            .map(CompactString::from)
            .map_err(|_| invalid("UTF-8"));
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    CompactString::from_utf8(b).map_err(|_| invalid("UTF-8"))
}

/// `_claimline_claims`' rows of a run, in order: held in memory up to a limit, past it (the
/// rows held first) in a file beside the history's runs (`claims.bin`).
pub(crate) struct Recorded {
    dir: PathBuf,
    limit: usize,
    held: Vec<ClaimEvent>,
    held_bytes: usize,
    file: Option<(BufWriter<File>, Spilled)>,
}

impl Recorded {
    /// Rows held up to `limit` bytes, past it written to a file in `dir` ([`history_dir`]),
    /// which it creates only then.
    pub(crate) fn new(dir: PathBuf, limit: usize) -> Self {
        Recorded {
            dir,
            limit,
            held: Vec::new(),
            held_bytes: 0,
            file: None,
        }
    }

    /// Room for the rows of `events` events, as many as its limit holds in memory: the list
    /// grown from empty was copied at every doubling, into fresh pages each time (a third of
    /// the claim history's phase of a header view's load).
    pub(crate) fn reserve_rows(&mut self, events: u64) {
        let fits = self.limit / std::mem::size_of::<ClaimEvent>() + 1;
        let n = usize::try_from(events).unwrap_or(usize::MAX).min(fits);
        self.held.reserve_exact(n.saturating_sub(self.held.len()));
    }

    /// Appends a row's event.
    pub(crate) fn push(&mut self, e: &ClaimEvent) -> Result<(), LoadError> {
        if let Some(file) = &mut self.file {
            return write_row(file, e.clone());
        }
        self.held_bytes += event_bytes(e);
        self.held.push(e.clone());
        if self.held_bytes < self.limit {
            return Ok(());
        }
        claimline_model::create_private_dir(&self.dir).map_err(|e| LoadError::io(&self.dir, e))?;
        let path = self.dir.join("claims.bin");
        let file = claimline_model::create_private(&path).map_err(|e| LoadError::io(&path, e))?;
        let file = self.file.insert((
            BufWriter::with_capacity(1 << 20, file),
            Spilled { path, count: 0 },
        ));
        std::mem::take(&mut self.held)
            .into_iter()
            .try_for_each(|e| write_row(file, e))
    }

    /// The rows' events in order, `at_once` at a time, to `each`.
    pub(crate) fn read_back(
        self,
        at_once: usize,
        mut each: impl FnMut(&[ClaimEvent]) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        let Some((mut writer, spilled)) = self.file else {
            return self.held.chunks(at_once).try_for_each(each);
        };
        writer
            .flush()
            .map_err(|e| LoadError::io(&spilled.path, e))?;
        drop(writer);
        let file = File::open(&spilled.path).map_err(|e| LoadError::io(&spilled.path, e))?;
        let mut reader = RunReader {
            reader: BufReader::with_capacity(256 << 10, file),
            spilled,
            read: 0,
        };
        let mut chunk = Vec::with_capacity(at_once);
        while let Some(e) = reader.next::<()>()? {
            chunk.push(e.event);
            if chunk.len() == at_once {
                each(&chunk)?;
                chunk.clear();
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        each(&chunk)
    }
}

/// Appends a `_claimline_claims` row's event to `file`, as an entry without a record.
fn write_row(
    (writer, spilled): &mut (BufWriter<File>, Spilled),
    event: ClaimEvent,
) -> Result<(), LoadError> {
    spilled.count += 1;
    write_entry(writer, &Entry { event, record: () }).map_err(|e| LoadError::io(&spilled.path, e))
}

impl Record for () {
    fn heap_bytes(&self) -> usize {
        0
    }

    fn write_to(&self, _: &mut impl Write) -> std::io::Result<()> {
        Ok(())
    }

    fn read_from(_: &mut impl Read) -> std::io::Result<Self> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test record: a number, and a string to carry through the files.
    #[derive(Debug, Clone, PartialEq)]
    struct Tag(u32, String);

    impl Record for Tag {
        fn heap_bytes(&self) -> usize {
            self.1.len()
        }

        fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
            w.write_all(&self.0.to_le_bytes())?;
            write_str(w, &self.1)
        }

        fn read_from(r: &mut impl Read) -> std::io::Result<Self> {
            Ok(Tag(
                u32::from_le_bytes(read_array(r)?),
                read_str(r)?.to_string(),
            ))
        }
    }

    /// `n` events over a few dozen groups: every API version and none, keys that share their
    /// first 19 bytes, keys past 24 bytes (held on the heap), cancels, equal and missing times.
    fn events(n: usize) -> Vec<ClaimEvent> {
        let long = "1234567890123456789";
        let keys = [
            format!("{long}b"),
            format!("{long}a{}", "x".repeat(30)),
            long.to_owned(),
            "12".to_owned(),
            "1".to_owned(),
            String::new(),
            "-99999999999".to_owned(),
        ];
        let apis = [
            None,
            Some(ApiVersion::V1),
            Some(ApiVersion::V2),
            Some(ApiVersion::V3),
        ];
        (0..n)
            .map(|i| {
                // A fixed scramble: the groups do not come in order.
                let j = i * 7919 % 1009;
                ClaimEvent {
                    api_version: apis[j % apis.len()],
                    claim_key: keys[j / 4 % keys.len()].as_str().into(),
                    resource_id: format!("eob-{}{}", j % 11, "r".repeat(j % 3 * 12)).into(),
                    last_updated: (j % 5 != 0).then_some((j % 13) as i64),
                    action: if j % 6 == 0 {
                        Action::Cancel
                    } else {
                        Action::Version
                    },
                    position: (j % 3, i as u64 * 100),
                }
            })
            .collect()
    }

    /// Every entry of `groups`, with the batches' group starts checked.
    fn drain(mode: VersionMode, mut groups: Groups<Tag>, at_least: usize) -> Vec<Entry<Tag>> {
        let (mut batch, mut starts) = (Vec::new(), Vec::new());
        let mut all = Vec::new();
        while groups
            .next_batch(&mut batch, &mut starts, at_least)
            .expect("batch")
        {
            assert_eq!(starts.first(), Some(&0));
            assert_eq!(starts.last(), Some(&batch.len()));
            for w in starts.windows(2) {
                assert!(w[0] < w[1], "a group has an entry");
                let key = batch[w[0]].event.group(mode);
                assert!(batch[w[0]..w[1]].iter().all(|e| e.event.group(mode) == key));
                if w[1] < batch.len() {
                    assert_ne!(batch[w[1]].event.group(mode), key, "a group starts");
                }
            }
            // A batch ends where a group does (the next batch's first group is new).
            if let Some(next) = &groups.next {
                assert_ne!(
                    next.event.group(mode),
                    batch[batch.len() - 1].event.group(mode)
                );
            }
            all.append(&mut batch);
        }
        all
    }

    #[test]
    fn entries_come_back_in_group_order_whatever_the_budget() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tmp = tmp.path();
        let events = events(700);
        for mode in [VersionMode::Current, VersionMode::All] {
            let want: Vec<u64> = claimline_link::sort_by_group(mode, events.len(), |i| &events[i])
                .into_iter()
                .map(u64::from)
                .collect();
            // One byte: a run an entry, merged every 64; 2 KiB: a dozen entries a run; all.
            for budget in [1, 2 << 10, 64 << 10, usize::MAX] {
                let dir = tmp.join(format!("h-{budget}"));
                let mut spool = HistorySpool::new(mode, dir.clone(), budget);
                for (i, e) in events.iter().enumerate() {
                    spool
                        .push(e.clone(), Tag(i as u32, format!("t{i}")))
                        .expect("push");
                }
                assert_eq!(!spool.runs.is_empty(), budget < usize::MAX, "{budget}");
                if budget == 1 {
                    // 700 runs: 2 of level 2, 11 of level 1, 12 of level 0.
                    assert_eq!(spool.merges, 2 + 43, "runs merged on the way");
                    let levels: Vec<u32> = spool.runs.iter().map(|(l, _)| *l).collect();
                    assert_eq!(levels, [&[2; 2][..], &[1; 11], &[0; 12]].concat());
                }
                let got = drain(mode, spool.finish().expect("finish"), 50);
                assert_eq!(
                    got.iter()
                        .map(|e| u64::from(e.record.0))
                        .collect::<Vec<_>>(),
                    want,
                    "{budget}"
                );
                for e in &got {
                    let i = e.record.0 as usize;
                    assert_eq!(e.event, events[i]);
                    assert_eq!(e.record, Tag(i as u32, format!("t{i}")));
                }
                // Every file removed once read back.
                let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
                assert_eq!(left, 0, "{budget}");
            }
        }
    }

    #[test]
    fn a_batch_holds_whole_groups() {
        let events = events(300);
        let mode = VersionMode::Current;
        let tmp = tempfile::tempdir().expect("tempdir");
        for at_least in [1, 7, 1000] {
            let mut spool = HistorySpool::new(mode, tmp.path().join("h"), 4 << 10);
            for (i, e) in events.iter().enumerate() {
                spool
                    .push(e.clone(), Tag(i as u32, String::new()))
                    .expect("push");
            }
            let got = drain(mode, spool.finish().expect("finish"), at_least);
            assert_eq!(got.len(), events.len());
        }
    }

    #[test]
    fn a_run_cut_short_is_an_error_that_names_its_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cut");
        let mut spool = HistorySpool::new(VersionMode::Current, dir.clone(), 1 << 10);
        for (i, e) in events(100).into_iter().enumerate() {
            spool.push(e, Tag(i as u32, String::new())).expect("push");
        }
        let run = dir.join("run-000000.bin");
        let len = std::fs::metadata(&run).expect("run").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&run)
            .and_then(|f| f.set_len(len - 3))
            .expect("cut");
        let mut groups = spool.finish().expect("finish");
        let (mut batch, mut starts) = (Vec::new(), Vec::new());
        let err = loop {
            match groups.next_batch(&mut batch, &mut starts, 10) {
                Ok(true) => continue,
                Ok(false) => panic!("read to the end of a cut run"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("run-000000.bin"), "{err}");

        // Cut between two entries (here, before the first): an error too, never fewer entries.
        let dir = tmp.path().join("emptied");
        let mut spool = HistorySpool::new(VersionMode::Current, dir.clone(), 1 << 10);
        for (i, e) in events(100).into_iter().enumerate() {
            spool.push(e, Tag(i as u32, String::new())).expect("push");
        }
        std::fs::write(dir.join("run-000001.bin"), b"").expect("empty");
        // (The merge reads each run's first entry as it starts.)
        let err = match spool.finish() {
            Err(e) => e,
            Ok(mut groups) => loop {
                match groups.next_batch(&mut batch, &mut starts, 10) {
                    Ok(true) => continue,
                    Ok(false) => panic!("read to the end of an emptied run"),
                    Err(e) => break e,
                }
            },
        };
        let text = err.to_string();
        assert!(
            text.contains("run-000001.bin") && text.contains("of its"),
            "{text}"
        );
    }

    #[test]
    fn recorded_rows_come_back_in_order_from_memory_and_from_a_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("rec");
        let events = events(250);
        // Held, past the limit from the first row, and from the hundredth.
        for limit in [usize::MAX, 1, 100 * std::mem::size_of::<ClaimEvent>()] {
            let mut r = Recorded::new(dir.clone(), limit);
            // Room for every row, as much of it as the limit holds in memory.
            r.reserve_rows(events.len() as u64);
            let fits = limit / std::mem::size_of::<ClaimEvent>() + 1;
            assert!(r.held.capacity() >= events.len().min(fits));
            for e in &events {
                r.push(e).expect("push");
            }
            let mut back = Vec::new();
            r.read_back(40, |chunk| {
                assert!(chunk.len() <= 40);
                back.extend_from_slice(chunk);
                Ok(())
            })
            .expect("read back");
            assert_eq!(back, events);
            assert!(!dir.join("claims.bin").exists());
        }
    }
}
