# Sourced by the benchmark scripts: a new output path for every timed run (`fresh_out NAME`),
# and the removal of all of them once the timed runs are over (`fresh_out_clear`), never
# between two timed runs.
#
# Why: this VM's root filesystem is ext4 without a journal. ext4 then passes over the inodes
# freed in the last minute (six while their inode table block is dirty) when it
# allocates one, reading the inode table for each (`recently_deleted` in fs/ext4/ialloc.c). A
# load makes a few hundred files and folders (the run's parts, 16 bucket folders per table in
# `current/`), so an `rm -rf` of the previous run's output just before it was charged to the
# load (every table → Parquet, 582 MB export: 0.40 s of system time against 0.31 s into a new
# folder, of 2.2 s of CPU), and not to DuckDB, which writes one file. A user's load into a new
# or kept folder does not pay it. Needs $WORK.
fresh_out() { # NAME: prints a path under $WORK/runs that does not exist yet
  mkdir -p "$WORK/runs"
  mktemp -u "$WORK/runs/$1.XXXXXXXX"
}
fresh_out_clear() { rm -rf "$WORK/runs"; }
