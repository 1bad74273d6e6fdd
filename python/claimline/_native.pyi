"""Type stubs of the native module (the Rust engine); use the functions of ``claimline``."""

from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa

class NativeError(Exception):
    """args: (code, message, file, line)."""

def load(inputs: List[str], out: str, views: List[str], format: str, strict: bool,
         run_id: Optional[str], threads: int, include_partial: bool, all_versions: bool,
         accept_rejects: bool) -> str: ...
def run(out: str, source: str, api: str, endpoint: str, types: List[str],
        since: Optional[str], views: List[str], keep: Optional[int], accept_rejects: bool,
        credentials: Optional[str]) -> str: ...
def read(inputs: List[str], views: List[str], all_versions: bool, include_partial: bool,
         threads: int, run_id: Optional[str]) -> Tuple[Dict[str, List[pa.RecordBatch]], str]: ...
def read_lines(files: pa.Array, lines: pa.Array, texts: pa.Array, views: List[str],
               all_versions: bool, include_partial: bool, threads: int,
               run_id: Optional[str],
               known: Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]],
               transaction_time: Optional[str],
               earlier: Optional[str]) -> Tuple[Dict[str, List[pa.RecordBatch]], str]: ...
def discover(inputs: List[str]) -> Tuple[
    List[Tuple[str, Optional[str], Optional[str], Optional[str]]], Optional[str]]: ...
def tables(views: List[str], include_partial: bool) -> Tuple[Dict[str, pa.Schema], str]: ...
def evaluate(lines: Any, file: str, first_line: int, views: List[str], run_id: str,
             api_version: Optional[str]) -> Tuple[Dict[str, pa.RecordBatch],
                                                  List[Dict[str, Any]]]: ...
