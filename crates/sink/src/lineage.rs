//! Where each row of a table was read (`_source_file`, `_line`), kept in the order the rows were
//! written: what a drop of superseded versions needs of the Parquet sink's rows to decide which
//! go, without reading the rows themselves back. 12 bytes a row: in memory, or, for a table
//! spilled past the sink's memory budget, in an owner-only file beside its spill file, so that
//! it grows with the disk's rows and not with the process's memory. Read back once, in order, a
//! window of rows at a time ([`LineageReader::next`]). A file cut short, longer than its rows,
//! or naming a file number never given (changed while it waited) is an error naming it; like
//! the spill file beside it, it has no checksum: a line number changed in place goes unseen.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use arrow_array::{Array, Int64Array, StringArray};

use crate::Error;
use crate::names::FileNames;

/// The file number of a row whose file or line is null (a row no drop removes).
const NO_LINEAGE: u32 = u32::MAX;

/// Bytes a row takes: its file's number and its line, little-endian.
const ROW_BYTES: usize = 12;

/// The lineage of a table's rows, as they are written.
pub(crate) struct Lineage {
    /// The table's name (errors say it).
    table: String,
    /// The files named, each once.
    names: FileNames,
    /// The rows' lineage, [`ROW_BYTES`] each.
    rows: Rows,
    /// How many rows.
    count: usize,
}

enum Rows {
    Memory(Vec<u8>),
    Disk { path: PathBuf, out: BufWriter<File> },
}

impl Lineage {
    /// Rows of table `table` noted in memory.
    pub(crate) fn in_memory(table: &str) -> Self {
        Lineage {
            table: table.to_owned(),
            names: FileNames::default(),
            rows: Rows::Memory(Vec::new()),
            count: 0,
        }
    }

    /// Rows of table `table` noted in the owner-only file `path` (created now; removed once
    /// read back, or when dropped unread).
    pub(crate) fn on_disk(table: &str, path: PathBuf) -> Result<Self, Error> {
        let file = claimline_model::create_private(&path).map_err(Error::io(&path))?;
        Ok(Lineage {
            table: table.to_owned(),
            names: FileNames::default(),
            rows: Rows::Disk {
                path,
                out: BufWriter::with_capacity(64 << 10, file),
            },
            count: 0,
        })
    }

    /// Notes the rows whose files are `files` and lines `lines` (a row with either null: one no
    /// drop removes).
    pub(crate) fn add(&mut self, files: &StringArray, lines: &Int64Array) -> Result<(), Error> {
        let n = files.len().min(lines.len());
        let mut bytes = Vec::with_capacity(n * ROW_BYTES);
        for i in 0..n {
            let (number, line) = if files.is_valid(i) && lines.is_valid(i) {
                (self.names.number(files.value(i)), lines.value(i))
            } else {
                (NO_LINEAGE, 0)
            };
            bytes.extend_from_slice(&number.to_le_bytes());
            bytes.extend_from_slice(&line.to_le_bytes());
        }
        match &mut self.rows {
            Rows::Memory(rows) => rows.extend_from_slice(&bytes),
            Rows::Disk { path, out } => out.write_all(&bytes).map_err(Error::io(path))?,
        }
        self.count += n;
        Ok(())
    }

    /// The rows noted, to be read back in order.
    pub(crate) fn read_back(mut self) -> Result<LineageReader, Error> {
        let rows = std::mem::replace(&mut self.rows, Rows::Memory(Vec::new()));
        let input = match rows {
            Rows::Memory(rows) => Input::Memory(rows, 0),
            Rows::Disk { path, out } => {
                // Written out, then opened again to be read (the file is write-only).
                let opened = out.into_inner().map_err(|e| e.into_error()).and_then(|f| {
                    drop(f);
                    File::open(&path)
                });
                // Exactly its rows' bytes: more (another writer) is a file that was changed.
                let sized = opened.and_then(|file| {
                    let len = file.metadata()?.len();
                    let want = (self.count * ROW_BYTES) as u64;
                    if len == want {
                        Ok(file)
                    } else {
                        Err(std::io::Error::other(format!(
                            "holds {len} bytes of rows' lineage where {want} were written"
                        )))
                    }
                });
                match sized {
                    Ok(file) => Input::Disk(BufReader::with_capacity(64 << 10, file), path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        return Err(Error::io(&path)(e));
                    }
                }
            }
        };
        Ok(LineageReader {
            table: std::mem::take(&mut self.table),
            names: std::mem::take(&mut self.names),
            input,
            left: self.count,
            window: Vec::new(),
            bytes: Vec::new(),
        })
    }
}

/// A lineage never read back (its rows encoded without a drop) leaves no file behind.
impl Drop for Lineage {
    fn drop(&mut self) {
        if let Rows::Disk { path, .. } = &self.rows {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A table's lineage read back ([`Lineage::read_back`]); its file is removed when it is dropped.
pub(crate) struct LineageReader {
    table: String,
    names: FileNames,
    input: Input,
    /// Rows not read yet.
    left: usize,
    /// The last window read: (file number, line) per row.
    window: Vec<(u32, i64)>,
    /// Its bytes, as read.
    bytes: Vec<u8>,
}

enum Input {
    /// The rows' bytes, and how many of them were read.
    Memory(Vec<u8>, usize),
    Disk(BufReader<File>, PathBuf),
}

impl LineageReader {
    /// The next `n` rows' lineage: per row its file and line, `None` for a row no drop removes.
    /// An error when fewer rows were noted, or the file cannot be read.
    pub(crate) fn next(&mut self, n: usize) -> Result<Window<'_>, Error> {
        if n > self.left {
            return Err(Error::lineage(
                &self.table,
                format!("{n} rows' lineage asked for, {} left", self.left),
            ));
        }
        let bytes = &mut self.bytes;
        bytes.clear();
        bytes.resize(n * ROW_BYTES, 0);
        match &mut self.input {
            Input::Memory(rows, at) => {
                let end = *at + bytes.len();
                let Some(noted) = rows.get(*at..end) else {
                    return Err(Error::lineage(
                        &self.table,
                        "fewer rows' lineage than noted",
                    ));
                };
                bytes.copy_from_slice(noted);
                *at = end;
            }
            Input::Disk(file, path) => file.read_exact(bytes).map_err(Error::io(path))?,
        }
        self.left -= n;
        self.window.clear();
        self.window.extend(bytes.chunks_exact(ROW_BYTES).map(|row| {
            let mut number = [0u8; 4];
            let mut line = [0u8; 8];
            number.copy_from_slice(&row[..4]);
            line.copy_from_slice(&row[4..]);
            (u32::from_le_bytes(number), i64::from_le_bytes(line))
        }));
        // A file changed while it waited can hold any number: only those given are files.
        let files = self.names.len();
        if let Some(&(bad, _)) = self
            .window
            .iter()
            .find(|(number, _)| *number != NO_LINEAGE && *number as usize >= files)
        {
            let what = format!("a row's file number {bad} was never given (the file was changed)");
            return Err(match &self.input {
                Input::Disk(_, path) => Error::Parquet {
                    path: path.clone(),
                    message: what,
                },
                Input::Memory(..) => Error::lineage(&self.table, what),
            });
        }
        Ok(Window {
            names: &self.names,
            rows: &self.window,
        })
    }

    /// Rows not read yet.
    pub(crate) fn left(&self) -> usize {
        self.left
    }
}

impl Drop for LineageReader {
    fn drop(&mut self) {
        if let Input::Disk(_, path) = &self.input {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Rows of a [`LineageReader`] window.
pub(crate) struct Window<'a> {
    names: &'a FileNames,
    rows: &'a [(u32, i64)],
}

impl<'a> Window<'a> {
    /// Row `i`'s file and line (`None`: a row no drop removes).
    pub(crate) fn row(&self, i: usize) -> Option<(&'a str, i64)> {
        let (number, line) = self.rows[i];
        (number != NO_LINEAGE).then(|| (self.names.name(number), line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrays(rows: &[(Option<&str>, Option<i64>)]) -> (StringArray, Int64Array) {
        (
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }

    #[test]
    fn rows_come_back_in_order_from_memory_and_from_disk_and_the_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.lineage");
        let first = arrays(&[(Some("a"), Some(1)), (None, Some(2)), (Some("b"), Some(3))]);
        let second = arrays(&[(Some("a"), None), (Some("b"), Some(i64::MAX))]);
        let want = [
            Some(("a", 1)),
            None,
            Some(("b", 3)),
            None,
            Some(("b", i64::MAX)),
        ];
        for mut lineage in [
            Lineage::in_memory("t"),
            Lineage::on_disk("t", path.clone()).expect("create"),
        ] {
            lineage.add(&first.0, &first.1).expect("add");
            lineage.add(&second.0, &second.1).expect("add");
            let mut back = lineage.read_back().expect("read back");
            let mut got = Vec::new();
            for n in [2, 0, 3] {
                let w = back.next(n).expect("window");
                got.extend((0..n).map(|i| w.row(i).map(|(f, l)| (f.to_owned(), l))));
            }
            let want: Vec<_> = want
                .iter()
                .map(|r| r.map(|(f, l)| (f.to_owned(), l)))
                .collect();
            assert_eq!(got, want);
            assert_eq!(back.left(), 0);
            // Asking past the rows noted is an error, not a panic.
            assert!(back.next(1).is_err());
        }
        assert!(!path.exists(), "the lineage file is removed once read");
        // Claims data: owner-only, and gone when dropped unread.
        let lineage = Lineage::on_disk("t", path.clone()).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(lineage);
        assert!(!path.exists(), "a lineage dropped unread leaves no file");
    }

    /// A lineage of table `t` on disk, in a new folder, with `n` rows of file `a`.
    fn on_disk_with(n: i64) -> (tempfile::TempDir, PathBuf, Lineage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.lineage");
        let mut lineage = Lineage::on_disk("t", path.clone()).expect("create");
        let rows: Vec<(Option<&str>, Option<i64>)> =
            (1..=n).map(|i| (Some("a"), Some(i))).collect();
        let (files, lines) = arrays(&rows);
        lineage.add(&files, &lines).expect("add");
        (dir, path, lineage)
    }

    #[test]
    fn a_lineage_file_longer_than_its_rows_is_an_error_naming_it() {
        let (_dir, path, lineage) = on_disk_with(1);
        // Another writer grows the file while it waits (the noted row, still buffered, is
        // written over its first bytes when the read back flushes it).
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&[0u8; 2 * ROW_BYTES]))
            .expect("append");
        let err = lineage.read_back().err().expect("longer");
        assert!(err.to_string().contains("t.lineage"), "{err}");
        assert!(!path.exists(), "a file that cannot be read back is removed");
    }

    #[test]
    fn a_lineage_file_cut_short_is_an_error_naming_it() {
        let (_dir, path, lineage) = on_disk_with(2);
        let mut back = lineage.read_back().expect("read back");
        // Cut while it waits (a full disk, another process).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(ROW_BYTES as u64))
            .expect("cut");
        assert!(back.next(1).is_ok());
        let err = back.next(1).err().expect("short");
        assert!(err.to_string().contains("t.lineage"), "{err}");
    }

    #[test]
    fn a_lineage_file_naming_a_file_never_given_is_an_error_naming_it() {
        let (_dir, path, lineage) = on_disk_with(2);
        let mut back = lineage.read_back().expect("read back");
        // The second row's file number overwritten while it waits.
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.seek(SeekFrom::Start(ROW_BYTES as u64)).expect("seek");
        f.write_all(&7u32.to_le_bytes()).expect("write");
        drop(f);
        let err = back.next(2).err().expect("damaged");
        assert!(err.to_string().contains("t.lineage"), "{err}");
    }
}
