//! Claim history: which version of a claim a run keeps, and what it does to earlier runs.
//!
//! v1/v2 (BFD/CCW) send every version of a claim under one claim-group identifier
//! (`_claim_key`); a correction arrives as a new version (a new EOB id) and its predecessor comes
//! back `cancelled`. The rule, the same in SQLite and in the README's Parquet query:
//!
//! - **The head** of a claim group is its `active` version with the greatest
//!   (`meta.lastUpdated`, run id); within one run, ties go to the later line of the input. A
//!   missing `lastUpdated` sorts first.
//! - The group's rows are the head's rows, **unless a cancel names that very version** (same
//!   resource id), in this run or an earlier one: then the group has no rows. A cancel of any
//!   other version is stale and changes nothing.
//! - v3 rows follow CCLF semantics: every EOB is its own claim (`_claim_key` = the EOB id) with
//!   its own `CLM_ADJSMT_TYPE_CD`, so `status` never cancels anything; the same EOB loaded twice
//!   (Group/all and Group/runout) still keeps one copy.
//! - `--all-versions` ([`VersionMode::All`]): every version is kept, keyed by `_resource_id`
//!   (cancelled versions too, as rows); a version loaded twice keeps one copy.
//!
//! [`RunVersions`] applies the rule within a run (so Parquet, append-only, holds one version per
//! group per run); [`decide`] applies it against the state an earlier run left in SQLite.

use claimline_model::CompactString;
use claimline_ndjson::{ApiVersion, Resource};

/// Which versions of a claim are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionMode {
    /// One current version per claim group (the default).
    #[default]
    Current,
    /// Every version, keyed by resource id (`--all-versions`).
    All,
}

/// What an EOB is to the history rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A version that may become the head of its group.
    Version,
    /// A v1/v2 `cancelled` version: removes the group only if it is the head.
    Cancel,
}

impl Action {
    /// `version` or `cancel`, as stored in `_claimline_claims._action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Version => "version",
            Action::Cancel => "cancel",
        }
    }
}

/// What a group of versions is told by ([`ClaimEvent::group`]): the API version; the claim key,
/// or the resource id with [`VersionMode::All`]; and with [`VersionMode::All`] the claim key.
pub type GroupKey<'a> = (Option<ApiVersion>, &'a str, Option<&'a str>);

/// One EOB seen by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    /// The API version.
    pub api_version: Option<ApiVersion>,
    /// `_claim_key` (held inline up to 24 bytes, as a cell's text: no allocation per EOB).
    pub claim_key: CompactString,
    /// The EOB id (inline up to 24 bytes).
    pub resource_id: CompactString,
    /// `meta.lastUpdated` in µs since the epoch, when valid.
    pub last_updated: Option<i64>,
    /// Version or cancel.
    pub action: Action,
    /// (file index, byte offset of the line) in the run's input, for ties within a run (a
    /// later line has a greater offset; offsets, unlike line numbers, are known on every
    /// worker without counting the lines before).
    pub position: (usize, u64),
}

impl ClaimEvent {
    /// The key versions compete under: the claim key, or with [`VersionMode::All`] the
    /// resource id and the claim key (an EOB id seen under two claim keys is two groups, as
    /// Parquet's rule, `current/` and SQLite's replace key have it).
    pub fn group(&self, mode: VersionMode) -> GroupKey<'_> {
        match mode {
            VersionMode::Current => (self.api_version, &self.claim_key, None),
            VersionMode::All => (self.api_version, &self.resource_id, Some(&self.claim_key)),
        }
    }
}

/// The history event of an EOB (`None` for other resources, or an EOB without id or key: a v3
/// EOB's id may be its `uc` identifier, as its `_claim_key`).
pub fn claim_event(r: &Resource<'_>, mode: VersionMode) -> Option<ClaimEvent> {
    if r.resource_type != "ExplanationOfBenefit" {
        return None;
    }
    event_of(r, mode, crate::claim_columns(r), crate::last_updated(r))
}

/// [`claim_event`] of an EOB `r` from what was read of it already: its `_claim_key` and
/// `_status` cells ([`crate::claim_columns`]) and its `meta.lastUpdated`
/// ([`crate::last_updated`]).
pub(crate) fn event_of(
    r: &Resource<'_>,
    mode: VersionMode,
    [key, status]: [claimline_model::Cell; 2],
    last_updated: Option<i64>,
) -> Option<ClaimEvent> {
    let claimline_model::Cell::Text(claim_key) = key else {
        return None;
    };
    let cancelled = matches!(&status, claimline_model::Cell::Text(s) if s == "cancelled");
    let action =
        if cancelled && mode == VersionMode::Current && r.api_version != Some(ApiVersion::V3) {
            Action::Cancel
        } else {
            Action::Version
        };
    Some(ClaimEvent {
        api_version: r.api_version,
        claim_key,
        resource_id: crate::eob_id(r)?.into(),
        last_updated,
        action,
        position: (r.file_index, r.offset),
    })
}

/// The order the rule reads a run's events in: by group ([`ClaimEvent::group`]), then by their
/// place in the input ([`ClaimEvent::position`], one EOB's alone). The order of
/// `_claimline_claims`' rows, of [`RunVersions::groups`], and of the runs a load that holds its
/// history on disk sorts and merges.
pub fn group_order(mode: VersionMode, a: &ClaimEvent, b: &ClaimEvent) -> std::cmp::Ordering {
    a.group(mode)
        .cmp(&b.group(mode))
        .then(a.position.cmp(&b.position))
}

/// The numbers of `n` events (`event(i)` the `i`th, in the run's order) in [`group_order`]
/// (then by number): the permutation that sorts them, on every core.
///
/// Sorted first by the API version and the leading bytes of each group's key, taken out of the
/// events once and packed into integers (each comparison of the events themselves reads every
/// string's inline-or-heap header again, and one of byte arrays calls `memcmp`: most of the
/// sort, a serial step of every load), then, where those are equal, by the whole group and the
/// place. 24 bytes an entry, where the whole keys took 80: the sort is held beside every other
/// EOB of the run.
///
/// # Panics
///
/// If `n` is past [`MAX_EVENTS`].
pub fn sort_by_group<'a>(
    mode: VersionMode,
    n: usize,
    event: impl Fn(usize) -> &'a ClaimEvent + Sync,
) -> Vec<u32> {
    assert!(
        n <= MAX_EVENTS,
        "at most {MAX_EVENTS} claim events are sorted at once"
    );
    let mut keyed: Vec<SortEntry> = (0..n)
        .map(|i| {
            let (api, key, _) = event(i).group(mode);
            let (high, middle, low) = sort_key(api, key);
            // Fits: n <= MAX_EVENTS.
            (high, middle, low, i as u32)
        })
        .collect();
    use rayon::slice::ParallelSliceMut as _;
    keyed.par_sort_unstable_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then_with(|| group_order(mode, event(a.3 as usize), event(b.3 as usize)))
            // Events of one place (not a scan's: its EOBs each have their own) in their order.
            .then(a.3.cmp(&b.3))
    });
    keyed.into_iter().map(|(.., i)| i).collect()
}

/// The rule applied within one run, held in memory: per group the winning version and the
/// cancels.
///
/// Each group is decided by [`RunGroup::of`], from the run's events sorted by
/// [`sort_by_group`]; a load holds the events of a big run on disk instead, sorted and merged in
/// the same order (`claimline-load`), and decides each group the same way.
#[derive(Debug, Default)]
pub struct RunVersions {
    mode: VersionMode,
    events: Vec<ClaimEvent>,
    /// The events' numbers in [`group_order`].
    order: Vec<u32>,
    /// Where each group starts in `order` (and `order`'s length last).
    starts: Vec<usize>,
    /// Per event: its rows stay (see [`RunVersions::kept`]).
    keeps: Vec<bool>,
}

/// The most events one [`RunVersions`] holds, or one [`sort_by_group`] sorts (they are
/// numbered in 32 bits).
pub const MAX_EVENTS: usize = u32::MAX as usize;

impl RunVersions {
    /// Applies the rule to a run's events (any order).
    ///
    /// # Panics
    ///
    /// If there are more than [`MAX_EVENTS`] events.
    pub fn new(mode: VersionMode, events: Vec<ClaimEvent>) -> Self {
        let order = sort_by_group(mode, events.len(), |i| &events[i]);
        let mut starts = Vec::new();
        for (at, &i) in order.iter().enumerate() {
            let same = at > 0
                && events[order[at - 1] as usize].group(mode) == events[i as usize].group(mode);
            if !same {
                starts.push(at);
            }
        }
        starts.push(order.len());
        let mut keeps = vec![false; events.len()];
        for w in starts.windows(2) {
            let members: Vec<&ClaimEvent> = order[w[0]..w[1]]
                .iter()
                .map(|&i| &events[i as usize])
                .collect();
            let group = RunGroup::of(mode, &members);
            for &i in &order[w[0]..w[1]] {
                keeps[i as usize] = group.keeps(&events[i as usize]);
            }
        }
        RunVersions {
            mode,
            events,
            order,
            starts,
            keeps,
        }
    }

    /// The mode.
    pub fn mode(&self) -> VersionMode {
        self.mode
    }

    /// The run's events, in the order [`RunVersions::new`] got them, each with whether its rows
    /// stay ([`RunGroup::keeps`]). (An EOB with no claim key or id has no event:
    /// [`crate::Plan::evaluate_with_event`] leaves its claim rows out.)
    pub fn kept(&self) -> impl ExactSizeIterator<Item = (&ClaimEvent, bool)> {
        self.events.iter().zip(self.keeps.iter().copied())
    }

    /// The run's winner of each group, and its cancels: what `_claimline_claims` records, in a
    /// stable order (group, then resource id: [`RunGroup::recorded`] group by group).
    pub fn recorded(&self) -> Vec<&ClaimEvent> {
        self.groups().iter().flat_map(RunGroup::recorded).collect()
    }

    /// Groups of this run ([`RunGroup::of`]), ordered by group.
    pub fn groups(&self) -> Vec<RunGroup<'_>> {
        self.starts
            .windows(2)
            .map(|w| {
                let members: Vec<&ClaimEvent> = self.order[w[0]..w[1]]
                    .iter()
                    .map(|&i| &self.events[i as usize])
                    .collect();
                RunGroup::of(self.mode, &members)
            })
            .collect()
    }
}

/// A group's API version and the leading 19 bytes of its key, zero-padded, big-endian in three
/// integers (20 bytes): ordered as the (version, key) pairs are wherever they differ (the
/// version first, as `Option<ApiVersion>` orders; then a key's first differing byte decides,
/// and a key that ends early is a prefix of the other, so comes first either way); equal
/// prefixes say nothing.
type SortKey = (u64, u64, u32);

/// A [`SortKey`] flat beside its event's number: 24 bytes (the key nested in a tuple would be
/// padded to 32).
type SortEntry = (u64, u64, u32, u32);

fn sort_key(api: Option<ApiVersion>, key: &str) -> SortKey {
    // 20 bytes and 4 of zeros, read as three big-endian words.
    let mut b = [0u8; 24];
    // `None` below every version, the versions in their order (the enum's, as its `Ord`).
    b[0] = api.map_or(0, |v| v as u8 + 1);
    let n = key.len().min(19);
    b[1..=n].copy_from_slice(&key.as_bytes()[..n]);
    let word = |at: usize| u64::from_be_bytes(std::array::from_fn(|i| b[at + i]));
    (word(0), word(8), (word(16) >> 32) as u32)
}

/// A group as one run sees it: the rule within the run applied to the group's events.
#[derive(Debug)]
pub struct RunGroup<'a> {
    /// API version.
    pub api_version: Option<ApiVersion>,
    /// Claim key (resource id with [`VersionMode::All`]).
    pub key: &'a str,
    /// With [`VersionMode::All`], the claim key the versions are under (see
    /// [`ClaimEvent::group`]); `None` otherwise.
    pub claim_key: Option<&'a str>,
    /// The run's winning version: its version with the greatest (`lastUpdated`, place in the
    /// input).
    pub head: Option<&'a ClaimEvent>,
    /// The run's cancels: for each resource id it cancels, its first cancel; by resource id.
    pub cancels: Vec<&'a ClaimEvent>,
}

impl<'a> RunGroup<'a> {
    /// The group of `events`: the events of one group ([`ClaimEvent::group`] equal), at least
    /// one, in the order the run met them.
    ///
    /// # Panics
    ///
    /// If `events` is empty.
    pub fn of(mode: VersionMode, events: &[&'a ClaimEvent]) -> RunGroup<'a> {
        let (api_version, key, claim_key) = events[0].group(mode);
        let head = events
            .iter()
            .copied()
            .filter(|e| e.action == Action::Version)
            // The first of equal ones (a scan's EOBs each have a place of their own).
            .fold(None, |head: Option<&ClaimEvent>, e| match head {
                Some(h) if (e.last_updated, e.position) <= (h.last_updated, h.position) => Some(h),
                _ => Some(e),
            });
        let mut cancels: Vec<&ClaimEvent> = events
            .iter()
            .copied()
            .filter(|e| e.action == Action::Cancel)
            .collect();
        // Stable: the first of each resource id stays.
        cancels.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        cancels.dedup_by(|b, a| a.resource_id == b.resource_id);
        RunGroup {
            api_version,
            key,
            claim_key,
            head,
            cancels,
        }
    }

    /// The run cancels resource `id` of this group.
    pub fn is_cancelled(&self, id: &str) -> bool {
        self.cancels
            .binary_search_by(|c| c.resource_id.as_str().cmp(id))
            .is_ok()
    }

    /// Whether `e` (one of the events the group was made [`of`](RunGroup::of)) keeps its rows:
    /// it is the version the group keeps (its head) and no cancel of this run names it.
    pub fn keeps(&self, e: &ClaimEvent) -> bool {
        e.action == Action::Version
            && self.head.is_some_and(|h| std::ptr::eq(h, e))
            && !self.is_cancelled(&e.resource_id)
    }

    /// What `_claimline_claims` records of the group: its head and its cancels, by (resource
    /// id, action).
    pub fn recorded(&self) -> impl Iterator<Item = &'a ClaimEvent> + use<'a, '_> {
        // The head after the cancels of its own id ("cancel" < "version"), before the next
        // id's; read in place (a group is most often its head alone: a list per group was an
        // allocation per EOB of the claim history's phase).
        let at = self.head.map_or(self.cancels.len(), |h| {
            self.cancels
                .partition_point(|c| c.resource_id <= h.resource_id)
        });
        let (before, after) = self.cancels.split_at(at);
        before
            .iter()
            .copied()
            .chain(self.head)
            .chain(after.iter().copied())
    }
}

/// The head an earlier run left for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    /// Its resource id.
    pub resource_id: String,
    /// Its `meta.lastUpdated` (µs).
    pub last_updated: Option<i64>,
    /// An earlier run cancelled it.
    pub cancelled: bool,
}

/// What a run does to a group in a table that holds earlier runs (SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The run's version replaces the group's rows.
    Write,
    /// The group's rows go (its head was cancelled).
    Delete,
    /// The stored rows stay; the run's rows for the group are stale.
    Keep,
}

/// The rule across runs: the run's winner against the earlier head.
///
/// `run_head_cancelled_before` says whether an earlier run already cancelled the run's winner.
pub fn decide(
    group: &RunGroup<'_>,
    stored: Option<&StoredHead>,
    run_head_cancelled_before: bool,
) -> Decision {
    match (group.head, stored) {
        (Some(h), s) if s.is_none_or(|s| h.last_updated >= s.last_updated) => {
            if group.is_cancelled(&h.resource_id) || run_head_cancelled_before {
                Decision::Delete
            } else {
                Decision::Write
            }
        }
        (_, Some(s)) if !s.cancelled && group.is_cancelled(&s.resource_id) => Decision::Delete,
        _ => Decision::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held for every claim group of a run in the history phase, where a load's memory peaks.
    #[test]
    fn a_sort_entry_stays_small() {
        assert_eq!(std::mem::size_of::<SortEntry>(), 24);
    }

    #[test]
    fn sort_keys_order_as_the_version_and_the_keys_first_bytes() {
        // Every version, and keys of every length up to past the 19 bytes packed, so that two
        // keys first differ at every byte of each of the three integers.
        let apis = [
            None,
            Some(ApiVersion::V1),
            Some(ApiVersion::V2),
            Some(ApiVersion::V3),
        ];
        // (UTF-8 of one to four bytes: every byte value's high bit, both ways.)
        let ends = [
            '\0',
            '\u{1}',
            '\u{7f}',
            '\u{80}',
            'é',
            '\u{ffff}',
            '\u{10ffff}',
        ];
        let mut keys = vec![String::new()];
        for n in 0..=26 {
            for c in ends {
                keys.push(format!("{}{c}", "5".repeat(n)));
            }
        }
        let padded = |k: &str| {
            let mut p = [0u8; 19];
            let n = k.len().min(19);
            p[..n].copy_from_slice(&k.as_bytes()[..n]);
            p
        };
        for a in apis {
            for b in apis {
                for k in &keys {
                    for l in &keys {
                        assert_eq!(
                            sort_key(a, k).cmp(&sort_key(b, l)),
                            (a, padded(k)).cmp(&(b, padded(l))),
                            "{a:?} {k:?} against {b:?} {l:?}"
                        );
                    }
                }
            }
        }
    }

    fn ev(id: &str, lu: i64, action: Action, line: u64) -> ClaimEvent {
        ClaimEvent {
            api_version: Some(ApiVersion::V2),
            claim_key: "G".into(),
            resource_id: id.into(),
            last_updated: Some(lu),
            action,
            position: (0, line),
        }
    }

    /// The rule applied to one run's `events`, one current version per claim group.
    fn current(events: Vec<ClaimEvent>) -> RunVersions {
        RunVersions::new(VersionMode::Current, events)
    }

    fn head(id: &str, lu: i64, cancelled: bool) -> StoredHead {
        StoredHead {
            resource_id: id.into(),
            last_updated: Some(lu),
            cancelled,
        }
    }

    #[test]
    fn the_latest_version_wins_within_a_run_and_stale_cancels_do_nothing() {
        let run = current(vec![
            ev("X", 2, Action::Cancel, 1),
            ev("Y", 3, Action::Version, 2),
            ev("X", 1, Action::Version, 3),
        ]);
        let groups = run.groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].head.map(|h| h.resource_id.as_str()), Some("Y"));
        assert_eq!(decide(&groups[0], None, false), Decision::Write);
        assert_eq!(
            decide(&groups[0], Some(&head("X", 1, false)), false),
            Decision::Write
        );
        // A newer version is already stored: this run's is stale.
        assert_eq!(
            decide(&groups[0], Some(&head("Z", 9, false)), false),
            Decision::Keep
        );
        assert_eq!(run.recorded().len(), 2);
    }

    #[test]
    fn a_cancel_removes_the_group_only_if_it_names_the_head() {
        let run = current(vec![ev("X", 5, Action::Cancel, 1)]);
        let g = &run.groups()[0];
        assert_eq!(
            decide(g, Some(&head("X", 1, false)), false),
            Decision::Delete
        );
        assert_eq!(decide(g, Some(&head("Y", 1, false)), false), Decision::Keep);
        assert_eq!(decide(g, None, false), Decision::Keep);
        // An older version arriving after the head was cancelled does not come back.
        let late = current(vec![ev("W", 0, Action::Version, 1)]);
        assert_eq!(
            decide(&late.groups()[0], Some(&head("X", 1, true)), false),
            Decision::Keep
        );
        // A run whose own winner an earlier run cancelled.
        let again = current(vec![ev("X", 1, Action::Version, 1)]);
        assert_eq!(decide(&again.groups()[0], None, true), Decision::Delete);
    }

    #[test]
    fn of_equal_versions_at_one_place_the_first_heads_and_alone_is_kept() {
        // Events that no scan made (every one at the same place): the first of equal versions
        // heads its group, as the rule met them, and only that one keeps its rows.
        let run = current(vec![
            ev("A", 1, Action::Version, 0),
            ev("B", 1, Action::Version, 0),
            ev("C", 0, Action::Version, 0),
        ]);
        let kept: Vec<(&str, bool)> = run
            .kept()
            .map(|(e, keep)| (e.resource_id.as_str(), keep))
            .collect();
        assert_eq!(kept, vec![("A", true), ("B", false), ("C", false)]);
    }

    #[test]
    fn kept_marks_only_heads_no_cancel_names() {
        let mut other = ev("Z", 1, Action::Version, 5);
        other.claim_key = "H".into();
        let run = current(vec![
            ev("X", 1, Action::Version, 1),
            ev("Y", 2, Action::Version, 2),
            ev("Y", 2, Action::Cancel, 3),
            ev("W", 2, Action::Version, 4),
            other,
        ]);
        let kept: Vec<(&str, bool)> = run
            .kept()
            .map(|(e, keep)| (e.resource_id.as_str(), keep))
            .collect();
        // W ties Y on lastUpdated and comes later: W heads G; the cancel of Y is stale.
        assert_eq!(
            kept,
            vec![
                ("X", false),
                ("Y", false),
                ("Y", false),
                ("W", true),
                ("Z", true)
            ]
        );
        // A cancel naming the head leaves the group nothing.
        let run = current(vec![
            ev("Y", 2, Action::Version, 1),
            ev("Y", 2, Action::Cancel, 2),
        ]);
        assert!(run.kept().all(|(_, keep)| !keep));
        assert_eq!(run.groups().len(), 1);
        assert_eq!(run.recorded().len(), 2);
    }

    #[test]
    fn recorded_is_in_the_order_of_whole_keys_where_their_first_bytes_agree() {
        // Keys that share their first 19 bytes and differ after, a key that is another's
        // prefix, NUL bytes (the padding of a short key's prefix), and every API version.
        let long = "1234567890123456789";
        let keys = [
            format!("{long}b"),
            format!("{long}a"),
            long.to_owned(),
            format!("{long}\0"),
            "12".to_owned(),
            "12\0".to_owned(),
            "12\0\0x".to_owned(),
            "1".to_owned(),
            String::new(),
            "9".to_owned(),
        ];
        let apis = [
            None,
            Some(ApiVersion::V1),
            Some(ApiVersion::V2),
            Some(ApiVersion::V3),
        ];
        let mut events = Vec::new();
        let mut line = 0;
        for (k, key) in keys.iter().enumerate() {
            for (a, api) in apis.iter().enumerate() {
                for (id, action) in [
                    ("X", Action::Version),
                    ("Y", Action::Cancel),
                    ("W", Action::Cancel),
                ] {
                    line += 1;
                    // Shuffled: the events do not come in key order.
                    let mut e = ev(&format!("{id}{}", (k * 7 + a * 3) % 5), 1, action, line);
                    e.claim_key = key.as_str().into();
                    e.api_version = *api;
                    events.push(e);
                }
            }
        }
        events.reverse();
        events.rotate_left(17);
        for mode in [VersionMode::Current, VersionMode::All] {
            let run = RunVersions::new(mode, events.clone());
            let got: Vec<&ClaimEvent> = run.recorded();
            let whole = |e: &ClaimEvent| {
                let (api, key, other) = e.group(mode);
                (
                    api,
                    key.to_owned(),
                    other.map(str::to_owned),
                    e.resource_id.to_string(),
                    e.action.as_str(),
                )
            };
            let mut want: Vec<_> = got.iter().map(|e| whole(e)).collect();
            want.sort();
            assert_eq!(got.iter().map(|e| whole(e)).collect::<Vec<_>>(), want);
            assert_eq!(
                got.len(),
                run.groups().len()
                    + if mode == VersionMode::Current {
                        2 * 40
                    } else {
                        0
                    }
            );
        }
    }

    #[test]
    fn all_versions_keys_by_resource_id() {
        let run = RunVersions::new(
            VersionMode::All,
            vec![
                ev("X", 1, Action::Version, 1),
                ev("Y", 2, Action::Version, 2),
                ev("Y", 2, Action::Version, 3),
            ],
        );
        let groups = run.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].head.map(|h| h.position), Some((0, 3)));
    }
}
