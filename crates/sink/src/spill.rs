//! Arrow batches waiting on disk instead of in memory: an owner-only Arrow IPC stream, written a
//! batch at a time and read back once, in order. The Parquet sink's rows past its memory budget
//! ([`crate::ParquetSink`]) and `current/`'s bucket rows of a big table wait in these: reading
//! one back costs a copy, where a Parquet part read back costs a decode (and writing one, an
//! encode).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;

use crate::Error;

/// A spill file being written.
pub(crate) struct SpillFile {
    path: PathBuf,
    writer: Box<StreamWriter<BufWriter<File>>>,
}

impl SpillFile {
    /// Creates `path` (owner-only: the rows are claims) for batches of `schema`.
    pub(crate) fn create(path: PathBuf, schema: &SchemaRef) -> Result<Self, Error> {
        let file = claimline_model::create_private(&path).map_err(Error::io(&path))?;
        let writer = StreamWriter::try_new(BufWriter::with_capacity(256 << 10, file), schema)
            .map_err(Error::parquet(&path))?;
        Ok(SpillFile {
            path,
            writer: Box::new(writer),
        })
    }

    /// Appends `batch`.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.writer.write(batch).map_err(Error::parquet(&self.path))
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Ends the stream and reads it back from its first batch; the file is removed once the
    /// reader is dropped (or now, when it cannot be read back).
    pub(crate) fn read_back(mut self) -> Result<SpillReader, Error> {
        self.writer.finish().map_err(Error::parquet(&self.path))?;
        let path = std::mem::take(&mut self.path);
        drop(self);
        let reader = File::open(&path)
            .map_err(Error::io(&path))
            .and_then(|file| {
                StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None)
                    .map_err(Error::parquet(&path))
            });
        match reader {
            Ok(reader) => Ok(SpillReader { path, reader }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

/// A spill file read back ([`SpillFile::read_back`]): its batches in the order they were written.
pub(crate) struct SpillReader {
    path: PathBuf,
    reader: StreamReader<BufReader<File>>,
}

impl SpillReader {
    /// The file read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for SpillReader {
    type Item = Result<RecordBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.path;
        self.reader
            .next()
            .map(|b| b.map_err(|e| Error::parquet(path)(e)))
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Abandoned before it was read back (a failed run): its rows go with it. (Read back, the
        // path was taken and the reader removes the file.)
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn batches_come_back_in_order_and_the_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "n",
            arrow_schema::DataType::Int64,
            true,
        )]));
        let batch = |from: i64, n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(arrow_array::Int64Array::from_iter(
                    (from..from + n).map(|i| (i % 5 != 0).then_some(i)),
                ))],
            )
            .expect("batch")
        };
        let path = dir.path().join("t.arrows");
        let mut spill = SpillFile::create(path.clone(), &schema).expect("create");
        let written = [batch(0, 10), batch(10, 3), batch(13, 100)];
        for b in &written {
            spill.write(b).expect("write");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back: Vec<RecordBatch> = spill
            .read_back()
            .expect("read back")
            .collect::<Result<_, _>>()
            .expect("batches");
        assert_eq!(back, written);
        assert!(!path.exists(), "removed once read");
        // Abandoned unread, it goes too.
        let abandoned = SpillFile::create(path.clone(), &schema).expect("create");
        drop(abandoned);
        assert!(!path.exists());
    }
}
