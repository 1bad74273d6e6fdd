//! Framing tests for the scanner: every way a line can start, end, or be broken.

use std::io::Write;
use std::path::Path;

use super::*;

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1"}"#;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> InputFile {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    InputFile::new(path)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Scans with small chunks so that chunk boundaries fall everywhere; returns (line, id) per
/// resource and the summary.
fn run(files: &[InputFile], chunk_bytes: usize) -> (Vec<(u64, String)>, ScanSummary) {
    let opts = ScanOptions {
        chunk_bytes,
        max_in_flight: 3,
        ..ScanOptions::default()
    };
    scan_collect(files, &opts, |r| {
        (r.line, r.id.unwrap_or_default().to_owned())
    })
    .expect("scan")
}

fn kinds(s: &ScanSummary) -> Vec<(u64, RejectKind)> {
    s.rejects.iter().map(|r| (r.line, r.kind)).collect()
}

#[test]
fn crlf_bom_blank_lines_and_no_final_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(br#"{"resourceType":"Patient","id":"a"}"#);
    bytes.extend_from_slice(b"\r\n\r\n   \n");
    bytes.extend_from_slice(br#"{"resourceType":"Patient","id":"b"}"#);
    let f = write(dir.path(), "x.ndjson", &bytes);
    for chunk in [1, 7, 1 << 20] {
        let (got, s) = run(std::slice::from_ref(&f), chunk);
        assert_eq!(got, [(1, "a".into()), (4, "b".into())], "chunk {chunk}");
        assert_eq!(s.files[0].lines, 4);
        assert_eq!(s.files[0].blank_lines, 2);
        assert_eq!(s.reject_count, 0);
    }
}

#[test]
fn empty_file_has_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "empty.ndjson", b"");
    let (got, s) = run(&[f], 1024);
    assert!(got.is_empty());
    assert_eq!(s.files[0].lines, 0);
}

#[test]
fn bad_lines_are_rejected_with_their_place_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: [&[u8]; 7] = [
        PATIENT.as_bytes(),
        br#"{"resourceType":"Patient","id":"#,
        b"[1,2,3]",
        br#"{"id":"no-type"}"#,
        br#"{"resourceType":42}"#,
        b"{\"resourceType\":\"Patient\",\"name\":\"\xff\"}",
        PATIENT.as_bytes(),
    ];
    let bytes = lines.join(&b'\n');
    let f = write(dir.path(), "bad.ndjson", &bytes);
    let (got, s) = run(&[f], 16);
    assert_eq!(got, [(1, "p1".into()), (7, "p1".into())]);
    assert_eq!(
        kinds(&s),
        [
            (2, RejectKind::InvalidJson),
            (3, RejectKind::NotAnObject),
            (4, RejectKind::NoResourceType),
            (5, RejectKind::NoResourceType),
            (6, RejectKind::InvalidJson),
        ]
    );
    assert_eq!(s.rejects[1].raw, b"[1,2,3]");
    assert!(s.rejects[2].message.contains("resourceType"));
    let line2_offset = (PATIENT.len() + 1) as u64;
    assert_eq!(s.rejects[0].offset, line2_offset);
}

#[test]
fn a_resource_type_that_is_not_a_type_name_is_a_reject_never_a_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: [&[u8]; 5] = [
        br#"{"resourceType":"9ZZ9ZZ9ZZ99 Canaryname","id":"p1"}"#,
        b"{\"resourceType\":\"Pat\\n1\",\"id\":\"p1\"}",
        br#"{"resourceType":"patient","id":"p1"}"#,
        br#"{"resourceType":"","id":"p1"}"#,
        PATIENT.as_bytes(),
    ];
    let f = write(dir.path(), "types.ndjson", &lines.join(&b'\n'));
    let (got, s) = run(&[f], 16);
    assert_eq!(got, [(5, "p1".into())]);
    assert_eq!(
        kinds(&s),
        (1..=4)
            .map(|l| (l, RejectKind::NoResourceType))
            .collect::<Vec<_>>()
    );
    assert!(s.rejects.iter().all(|r| !r.message.contains("9ZZ")));
    assert_eq!(s.files[0].resources.keys().collect::<Vec<_>>(), ["Patient"]);
}

#[test]
fn a_file_that_ends_mid_line_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "cut.ndjson",
        format!("{PATIENT}\n{{\"resourceType\":\"Pat").as_bytes(),
    );
    let (got, s) = run(&[f], 1 << 20);
    assert_eq!(got.len(), 1);
    assert_eq!(kinds(&s), [(2, RejectKind::TruncatedLine)]);
    assert!(s.rejects[0].message.contains("ends mid-line"));
}

#[test]
fn a_line_of_64_mib_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pad = "x".repeat(64 << 20);
    let big = format!(r#"{{"resourceType":"Binary","id":"big","data":"{pad}"}}"#);
    let f = write(
        dir.path(),
        "big.ndjson",
        format!("{PATIENT}\n{big}\n{PATIENT}\n").as_bytes(),
    );
    let (got, s) = run(&[f], 1 << 20);
    assert_eq!(got, [(1, "p1".into()), (2, "big".into()), (3, "p1".into())]);
    assert_eq!(s.files[0].resources["Binary"], 1);
}

#[test]
fn gzip_multi_member_matches_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plain = Vec::new();
    for i in 0..500 {
        plain.extend_from_slice(format!(r#"{{"resourceType":"Patient","id":"{i}"}}"#).as_bytes());
        plain.push(b'\n');
    }
    let (a, b) = plain.split_at(plain.len() / 2 + 3);
    let mut gz = gzip(a);
    gz.extend_from_slice(&gzip(b));
    let p = write(dir.path(), "p.ndjson", &plain);
    let g = write(dir.path(), "p.ndjson.gz", &gz);
    assert_eq!(g.compression, Compression::Gzip);
    let (plain_rows, _) = run(&[p], 100);
    let (gz_rows, s) = run(&[g], 100);
    assert_eq!(plain_rows, gz_rows);
    assert_eq!(gz_rows.len(), 500);
    assert_eq!(s.files[0].ndjson_bytes, plain.len() as u64);
    assert_eq!(s.files[0].bytes, gz.len() as u64);
    assert!(!s.files[0].truncated);
}

#[test]
fn truncated_gzip_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plain = Vec::new();
    for i in 0..2000 {
        plain.extend_from_slice(format!(r#"{{"resourceType":"Patient","id":"{i}"}}"#).as_bytes());
        plain.push(b'\n');
    }
    let gz = gzip(&plain);
    let f = write(dir.path(), "cut.ndjson.gz", &gz[..gz.len() / 2]);
    let (got, s) = run(&[f], 4096);
    assert!(!got.is_empty() && got.len() < 2000);
    assert!(s.files[0].truncated);
    assert_eq!(s.reject_count, 1);
    assert_eq!(s.rejects[0].kind, RejectKind::TruncatedGzip);
    // Every resource before the cut came through, numbered right.
    for (i, (line, id)) in got.iter().enumerate() {
        assert_eq!((*line, id.as_str()), (i as u64 + 1, i.to_string().as_str()));
    }
    // The file is reported as damaged: how far it was read, from which line on it is lost.
    let damage = s.files[0].damaged.clone().expect("damaged");
    assert_eq!(damage.kind, DamageKind::TruncatedGzip);
    assert_eq!(damage.resources_read, got.len() as u64);
    assert_eq!(damage.first_lost_line, got.len() as u64 + 1);
    assert_eq!(damage.disk_bytes_read, (gz.len() / 2) as u64);
    assert!(damage.ndjson_bytes_read < plain.len() as u64);
}

#[test]
fn a_file_named_gz_that_is_not_gzip_is_damaged_not_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "plain.ndjson.gz",
        format!("{PATIENT}\n{PATIENT}\n").as_bytes(),
    );
    let (got, s) = run(&[f], 4096);
    assert!(got.is_empty());
    let damage = s.files[0].damaged.clone().expect("damaged");
    assert_eq!(damage.kind, DamageKind::NotGzip);
    assert_eq!(damage.resources_read, 0);
    assert_eq!(kinds(&s), [(1, RejectKind::NotGzip)]);
}

#[test]
fn a_corrupt_gzip_block_is_damage_of_its_own_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plain = Vec::new();
    for i in 0..5000 {
        plain.extend_from_slice(format!(r#"{{"resourceType":"Patient","id":"{i}"}}"#).as_bytes());
        plain.push(b'\n');
    }
    let mut gz = gzip(&plain);
    // Flip bytes in the middle of the deflate data: the stream or its CRC no longer checks.
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0xA5;
    }
    let f = write(dir.path(), "bad.ndjson.gz", &gz);
    let (got, s) = run(&[f], 4096);
    assert!(got.len() < 5000);
    let damage = s.files[0].damaged.clone().expect("damaged");
    assert_eq!(damage.kind, DamageKind::CorruptGzip, "{damage:?}");
}

#[test]
fn manifest_type_mismatch_is_a_reject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = write(
        dir.path(),
        "Coverage.000.ndjson",
        format!("{PATIENT}\n").as_bytes(),
    );
    f.expected_type = Some("Coverage".into());
    let (got, s) = run(&[f], 1024);
    assert!(got.is_empty());
    assert_eq!(kinds(&s), [(1, RejectKind::WrongResourceType)]);
}

#[test]
fn order_is_input_order_across_files_and_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for f in 0..5 {
        let mut bytes = Vec::new();
        for i in 0..300 {
            let id = format!("{f}-{i}");
            bytes.extend_from_slice(
                format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#).as_bytes(),
            );
            bytes.push(b'\n');
            expected.push((i as u64 + 1, id));
        }
        let name = format!("f{f}.ndjson");
        files.push(if f % 2 == 0 {
            write(dir.path(), &name, &bytes)
        } else {
            write(dir.path(), &format!("{name}.gz"), &gzip(&bytes))
        });
    }
    let (got, s) = run(&files, 333);
    assert_eq!(got, expected);
    assert_eq!(s.resources()["Patient"], 1500);
    // rayon's global pool ran it, and the summary says how many workers that is.
    assert_eq!(s.workers, rayon::current_num_threads());
    // Private pools of one and of three workers give the same result, and say so.
    for threads in [1, 3] {
        let opts = ScanOptions {
            chunk_bytes: 333,
            threads,
            ..ScanOptions::default()
        };
        let (got, s) = scan_collect(&files, &opts, |r| {
            (r.line, r.id.unwrap_or_default().to_owned())
        })
        .expect("scan");
        assert_eq!(got, expected, "{threads}");
        assert_eq!(s.workers, threads);
    }
}

/// With `lines_in_batch`, a line number `map` saw plus the batch's offset is the file's line
/// number, in plain and gzip files, across chunk boundaries, blank lines and CRLF; rejects
/// carry file line numbers either way.
#[test]
fn lines_in_batch_add_up_to_file_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    for i in 0..400 {
        match i % 50 {
            7 => bytes.extend_from_slice(b"\r\n"),
            13 => bytes.extend_from_slice(b"{not json\n"),
            _ => bytes.extend_from_slice(
                format!("{{\"resourceType\":\"Patient\",\"id\":\"{i}\"}}\r\n").as_bytes(),
            ),
        }
    }
    let files = [
        write(dir.path(), "a.ndjson", &bytes),
        write(dir.path(), "b.ndjson.gz", &gzip(&bytes)),
        write(dir.path(), "c.ndjson", &bytes),
    ];
    let (exact, exact_summary) = run(&files, 301);
    let opts = ScanOptions {
        chunk_bytes: 301,
        max_in_flight: 3,
        lines_in_batch: true,
        ..ScanOptions::default()
    };
    let mut shifted = Vec::new();
    let mut offsets = 0;
    let summary = scan(
        &files,
        &opts,
        || (),
        |(), r| (r.line, r.id.unwrap_or_default().to_owned()),
        |batch| {
            offsets += u64::from(batch.line_offset > 0);
            shifted.extend(
                batch
                    .items
                    .into_iter()
                    .map(|(line, id)| (line + batch.line_offset, id)),
            );
            Ok(())
        },
    )
    .expect("scan");
    assert!(offsets > 10, "chunks were numbered within themselves");
    assert_eq!(shifted, exact);
    assert_eq!(exact.len(), 3 * (400 - 16));
    assert_eq!(kinds(&summary), kinds(&exact_summary));
    assert_eq!(summary.reject_count, 3 * 8);
}

#[test]
fn strict_stops_at_the_first_reject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "s.ndjson",
        format!("{PATIENT}\nnot json\n{PATIENT}\n").as_bytes(),
    );
    let opts = ScanOptions {
        strict: true,
        ..ScanOptions::default()
    };
    let err = scan_collect(&[f], &opts, |_| ()).expect_err("strict");
    assert!(matches!(err, Error::Strict { line: 2, .. }), "{err}");
}

#[test]
fn rejects_file_is_owner_only_and_holds_the_raw_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "r.ndjson", b"{\"oops\n");
    let rejects = dir.path().join("rejects.ndjson");
    let opts = ScanOptions {
        rejects: RejectTarget::File(rejects.clone()),
        ..ScanOptions::default()
    };
    let (_, s) = scan_collect(&[f], &opts, |_| ()).expect("scan");
    assert_eq!(s.rejects_file.as_deref(), Some(rejects.as_path()));
    let text = std::fs::read_to_string(&rejects).expect("rejects file");
    let rec: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(rec["raw"], "{\"oops");
    assert_eq!(rec["line"], 1);
    assert_eq!(rec["kind"], "invalid_json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&rejects)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn consumer_failure_stops_the_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "c.ndjson",
        format!("{PATIENT}\n").repeat(100).as_bytes(),
    );
    let opts = ScanOptions {
        chunk_bytes: 64,
        ..ScanOptions::default()
    };
    let mut seen = 0;
    let err = scan(
        &[f],
        &opts,
        || (),
        |(), _| (),
        |_| {
            seen += 1;
            if seen == 3 {
                Err("disk full".into())
            } else {
                Ok(())
            }
        },
    )
    .expect_err("consumer error");
    assert!(matches!(err, Error::Consumer(_)));
    assert_eq!(seen, 3);
}

/// Every kind of reject, each from a real bad input, with the message a person gets: where
/// (byte of the line, field, or file position) and why, in words; never the line's content.
#[test]
fn every_reject_kind_has_a_located_message_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "SECRET-MBI-1EG4TE5MK73";
    let mut many = Vec::new();
    for i in 0..3000 {
        many.extend_from_slice(
            format!(r#"{{"resourceType":"Patient","id":"{i}","x":"{secret}"}}"#).as_bytes(),
        );
        many.push(b'\n');
    }
    let gz = gzip(&many);
    let mut corrupt = gz.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 16] {
        *b ^= 0xA5;
    }
    let mut wrong = write(
        dir.path(),
        "Coverage.000.ndjson",
        format!("{PATIENT}\n").as_bytes(),
    );
    wrong.expected_type = Some("Coverage".into());
    let inputs: Vec<(RejectKind, InputFile, &str)> = vec![
        (
            RejectKind::InvalidJson,
            write(
                dir.path(),
                "a.ndjson",
                format!("{{\"resourceType\" \"{secret}\"}}\n").as_bytes(),
            ),
            "invalid JSON at byte 16 of the line: expected `:`",
        ),
        (
            RejectKind::NotAnObject,
            write(dir.path(), "b.ndjson", b"[1,2]\n"),
            "the line is valid JSON but not an object",
        ),
        (
            RejectKind::NoResourceType,
            write(dir.path(), "c.ndjson", b"{\"id\":\"x\"}\n"),
            "field `resourceType` is missing or not a string",
        ),
        (
            RejectKind::WrongResourceType,
            wrong,
            "field `resourceType` is `Patient` but the manifest says this file holds `Coverage`",
        ),
        (
            RejectKind::TruncatedLine,
            write(
                dir.path(),
                "d.ndjson",
                format!("{PATIENT}\n{{\"resourceType\":\"Patient\",\"x\":\"{secret}\"").as_bytes(),
            ),
            "the file ends mid-line (no final newline): invalid JSON at byte 54 of the line: the line ends inside an object",
        ),
        (
            RejectKind::TruncatedGzip,
            write(dir.path(), "e.ndjson.gz", &gz[..gz.len() / 2]),
            "the gzip stream ends early: the file is cut",
        ),
        (
            RejectKind::CorruptGzip,
            write(dir.path(), "f.ndjson.gz", &corrupt),
            "the gzip stream is corrupt",
        ),
        (
            RejectKind::NotGzip,
            write(dir.path(), "g.ndjson.gz", format!("{PATIENT}\n").as_bytes()),
            "the file is named .gz but is not gzip",
        ),
    ];
    for (kind, file, words) in inputs {
        // Adding a kind without a case here fails to compile.
        match kind {
            RejectKind::InvalidJson
            | RejectKind::NotAnObject
            | RejectKind::NoResourceType
            | RejectKind::WrongResourceType
            | RejectKind::TruncatedLine
            | RejectKind::TruncatedGzip
            | RejectKind::CorruptGzip
            | RejectKind::NotGzip => {}
        }
        let (_, s) = run(&[file], 4096);
        let r = s
            .rejects
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} reject: {:?}", s.rejects));
        assert!(
            r.message.starts_with(words),
            "{kind:?}: {:?} does not start with {words:?}",
            r.message
        );
        assert!(!r.message.contains(secret), "{kind:?} quotes the line");
        assert!(r.line >= 1, "{kind:?} has a line");
    }
}

/// A file held in memory is scanned like one on disk, under its name, and a line placed at its
/// original number (blank lines before it) keeps that number, in resources and rejects alike.
#[test]
fn in_memory_files_keep_their_name_and_line_numbers() {
    let mut bytes = b"\n\n".to_vec();
    bytes.extend_from_slice(br#"{"resourceType":"Patient","id":"a"}"#);
    bytes.extend_from_slice(b"\n\n\n\n{not json\n");
    bytes.extend_from_slice(br#"{"resourceType":"Patient","id":"b"}"#);
    let f = InputFile::in_memory("/nowhere/Patient.000.ndjson", bytes);
    for chunk in [1, 9, 1 << 20] {
        let (got, s) = run(std::slice::from_ref(&f), chunk);
        assert_eq!(got, [(3, "a".into()), (8, "b".into())], "chunk {chunk}");
        assert_eq!(kinds(&s), [(7, RejectKind::InvalidJson)], "chunk {chunk}");
        assert_eq!(s.files[0].path, Path::new("/nowhere/Patient.000.ndjson"));
    }
}

#[test]
fn a_read_file_map_goes_to_the_unmapping_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "p.ndjson", format!("{PATIENT}\n").as_bytes());
    let handle = File::open(&file.path).expect("open");
    let (to, received) = channel::<FileMap>();
    let map = map_file(&handle, &file.path).expect("map");
    let blocks = Blocks::new(map.len(), RELEASE_BLOCK);
    let map: Arc<dyn Source> = Arc::new(Unmapped {
        map: Some(map),
        to,
        blocks,
    });
    let chunk = Arc::clone(&map);
    drop(map);
    // Still read by a chunk: not sent yet.
    assert!(received.try_recv().is_err());
    assert_eq!((*chunk).as_ref(), format!("{PATIENT}\n").as_bytes());
    drop(chunk);
    let unmapped = received
        .try_recv()
        .expect("the map is sent when its last reader goes");
    assert_eq!(&unmapped[..], format!("{PATIENT}\n").as_bytes());
}

#[test]
fn files_unmapped_aside_scan_alike() {
    // Several mapped files of many chunks each (and a gzip one, never mapped): the same
    // resources, lines and rejects whether each map is unmapped where its last chunk ends or
    // on the unmapping thread, in steps.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for f in 0..3 {
        let mut bytes = Vec::new();
        for i in 0..2000 {
            if i % 97 == 5 {
                bytes.extend_from_slice(b"{broken\n");
            }
            bytes.extend_from_slice(
                format!(r#"{{"resourceType":"Patient","id":"f{f}-{i}"}}"#).as_bytes(),
            );
            bytes.push(b'\n');
        }
        files.push(write(dir.path(), &format!("p{f}.ndjson"), &bytes));
        if f == 1 {
            files.push(write(dir.path(), "p1.ndjson.gz", &gzip(&bytes)));
        }
    }
    let scan_with = |aside: bool| {
        let opts = ScanOptions {
            chunk_bytes: 1000,
            max_in_flight: 3,
            unmap_aside: aside,
            ..ScanOptions::default()
        };
        let (items, summary) = scan_collect(&files, &opts, |r| {
            (r.file_index, r.line, r.id.unwrap_or_default().to_owned())
        })
        .expect("scan");
        (items, kinds(&summary), summary.resources())
    };
    let inline = scan_with(false);
    assert_eq!(inline.0.len(), 4 * 2000);
    assert_eq!(scan_with(true), inline);
}

/// The resident KiB and the page size in KiB of the mapping that holds `addr`, from
/// `/proc/self/smaps`.
#[cfg(target_os = "linux")]
fn resident_kib(addr: usize) -> (u64, u64) {
    let fields = smaps_of(addr);
    let kib = |name: &str| -> u64 {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|f| f.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("a size in kB")
    };
    (kib("Rss:"), kib("KernelPageSize:"))
}

/// The fields `/proc/self/smaps` gives for the mapping that holds `addr`.
#[cfg(target_os = "linux")]
fn smaps_of(addr: usize) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let mut lines = smaps.lines().peekable();
    while let Some(line) = lines.next() {
        let range = line.split_whitespace().next().unwrap_or_default();
        let Some((from, to)) = range.split_once('-') else {
            continue;
        };
        let (Ok(from), Ok(to)) = (
            usize::from_str_radix(from, 16),
            usize::from_str_radix(to, 16),
        ) else {
            continue;
        };
        if !(from..to).contains(&addr) {
            continue;
        }
        // A mapping's fields run to the next mapping's range line (one without a colon in its
        // first word).
        let mut fields = Vec::new();
        while let Some(field) = lines.next_if(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.ends_with(':'))
        }) {
            fields.push(field.to_owned());
        }
        return fields;
    }
    panic!("no mapping holds {addr:#x}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_is_mapped_to_be_read_in_order_and_ahead_in_huge_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "p.ndjson", format!("{PATIENT}\n").as_bytes());
    let map = map_file(&File::open(&file.path).expect("open"), &file.path).expect("map");
    let fields = smaps_of(map.as_ptr() as usize);
    let flags: Vec<&str> = fields
        .iter()
        .find_map(|f| f.strip_prefix("VmFlags:"))
        .expect("the kernel lists the mapping's flags")
        .split_whitespace()
        .collect();
    // `sr`: MADV_SEQUENTIAL; `hg`: MADV_HUGEPAGE, which a kernel without transparent huge pages
    // refuses (then not asked of it here).
    assert!(flags.contains(&"sr"), "{flags:?}");
    if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        assert!(flags.contains(&"hg"), "{flags:?}");
    }
}

#[test]
fn a_block_is_released_once_when_the_chunks_over_it_are_done() {
    const BLOCK: usize = 64 << 10;
    // Four whole blocks and a short last one; chunks end anywhere, in any order.
    let len = 4 * BLOCK + 1000;
    let blocks = Blocks::new(len, BLOCK);
    let released = std::cell::RefCell::new(Vec::new());
    let done =
        |range: Range<usize>| blocks.done(range, |b| released.borrow_mut().push((b.start, b.end)));
    // Over four blocks: only the two whole ones in the middle are done.
    done(BLOCK - 10..3 * BLOCK + 10);
    assert_eq!(
        released.take(),
        [(BLOCK, 2 * BLOCK), (2 * BLOCK, 3 * BLOCK)]
    );
    // The last chunk, beyond the end of the map as a caller might cut it: the short last block.
    done(4 * BLOCK..len + 500);
    assert_eq!(released.take(), [(4 * BLOCK, len)]);
    done(3 * BLOCK + 10..4 * BLOCK);
    assert_eq!(released.take(), [(3 * BLOCK, 4 * BLOCK)]);
    // The first chunk, done last, completes block 0 (its last ten bytes were done first).
    done(0..BLOCK - 10);
    assert_eq!(released.take(), [(0, BLOCK)]);
    assert_eq!(
        (0..5)
            .map(|b| blocks.done[b].load(Ordering::SeqCst))
            .collect::<Vec<_>>(),
        [BLOCK, BLOCK, BLOCK, BLOCK, 1000]
    );
    // A size that is not a multiple of 64 KiB is rounded up: no page is in two blocks.
    assert_eq!(Blocks::new(len, 1).size, BLOCK);
    assert_eq!(Blocks::new(len, BLOCK + 1).size, 2 * BLOCK);
}

#[cfg(target_os = "linux")]
#[test]
fn a_block_leaves_the_page_tables_when_the_chunks_over_it_are_done() {
    const BLOCK: usize = 64 << 10;
    let dir = tempfile::tempdir().expect("temp dir");
    // Twenty 64 KiB blocks of lines, and a little more.
    let line = format!("{PATIENT}\n");
    let bytes = line.repeat((20 * BLOCK) / line.len() + 1);
    let file = write(dir.path(), "p.ndjson", bytes.as_bytes());
    let map = map_file(&File::open(&file.path).expect("open"), &file.path).expect("map");
    let addr = map.as_ptr() as usize;
    let touched: u64 = map.iter().map(|&b| u64::from(b)).sum();
    let blocks = Blocks::new(map.len(), BLOCK);
    let map = Mapped { map, blocks };
    let (before, page) = resident_kib(addr);
    assert_eq!(
        before,
        (bytes.len() as u64).div_ceil(page * 1024) * page,
        "every page read"
    );
    let gone = |kib: u64| kib / (BLOCK as u64 / 1024);
    // Chunks end at line ends, mid-block: the first covers blocks 0 to 4 whole and block 5 in
    // part; only the five whole ones go.
    map.done_with(0..5 * BLOCK + 100);
    let (after, _) = resident_kib(addr);
    assert_eq!(gone(before - after), 5);
    // The next chunk completes block 5 and covers 6; a chunk of the end, the last block.
    map.done_with(5 * BLOCK + 100..7 * BLOCK);
    map.done_with(20 * BLOCK..bytes.len());
    let (last, _) = resident_kib(addr);
    assert_eq!(
        before - last,
        7 * BLOCK as u64 / 1024
            + (bytes.len() - 20 * BLOCK).div_ceil(page as usize * 1024) as u64 * page
    );
    // The bytes are the file's, read again from the page cache.
    assert_eq!(map.map.iter().map(|&b| u64::from(b)).sum::<u64>(), touched);
    assert_eq!(&map.map[..], bytes.as_bytes());
}

#[cfg(target_os = "linux")]
#[test]
fn a_scan_lets_go_of_the_chunks_it_has_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = format!("{PATIENT}\n");
    let lines = (16 << 20) / line.len();
    let file = write(dir.path(), "p.ndjson", line.repeat(lines).as_bytes());
    // One worker, chunks and blocks of 1 MiB: when the last line is read, the chunks before it
    // are done.
    let opts = ScanOptions {
        chunk_bytes: 1 << 20,
        release_bytes: 1 << 20,
        max_in_flight: 2,
        threads: 1,
        ..ScanOptions::default()
    };
    let at_last = std::sync::Mutex::new(None);
    let (n, _) = scan_collect(&[file], &opts, |r| {
        if r.line == lines as u64 {
            *at_last.lock().expect("lock") = Some(resident_kib(r.raw.as_ptr() as usize).0);
        }
    })
    .expect("scan");
    assert_eq!(n.len(), lines);
    let resident = at_last
        .into_inner()
        .expect("lock")
        .expect("the last line was read");
    // The file is 16 MiB; what is still mapped is the chunks in flight (up to 2 MiB) and the
    // blocks they cover in part (up to 2 MiB), not the 16 MiB read.
    assert!(
        resident < 6 << 10,
        "{resident} KiB of the 16 MiB input still resident"
    );
}
