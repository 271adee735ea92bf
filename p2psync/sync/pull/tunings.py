"""The pull's tuning numbers in one value: passed in, so a test changes them for one puller
instead of patching module constants."""

from __future__ import annotations

from dataclasses import dataclass

MIN_FREE_BYTES = 16 * 1024 * 1024  # never fill a disk to the last byte


@dataclass(frozen=True)
class PullTunings:
    # fetch: block requests one big file keeps in flight (16 MiB, at least 16 requests)
    bytes_in_flight_per_file: int = 16 * 1024 * 1024
    min_requests_in_flight_per_file: int = 16
    # fetch: local copies of a big file's blocks are split over this many threads
    fill_threads: int = 2
    fill_split_min_blocks: int = 256  # files with fewer blocks are copied on one thread
    # assemble: temp files this large get their space reserved first,
    preallocate_min: int = 4 * 1024 * 1024
    preallocate_room: int = 4  # when the disk has room for this many of them
    bypass_cache_min: int = 16 * 1024 * 1024  # written around the page cache from this size
    # commit: free space kept next to every file in flight, and how often a file waiting
    # for space held by others looks again
    min_free_bytes: int = MIN_FREE_BYTES
    space_wait_poll: float = 0.5
    # plan: small files go in batches (small_files.py)
    small_file_max: int = 1024 * 1024  # eight blocks at the smallest block size
    batch_bytes: int = 8 * 1024 * 1024  # a batch's data is held in memory until written
    small_files_per_batch: int = 64
    batch_requests_in_flight: int = 64  # blocks per request_many of a batch
    # the round: units of work in flight
    files_in_parallel: int = 64
    batches_in_flight: int = 2  # batches checking, fetching or writing
    batches_unrecorded: int = 4  # and batches whose records are still being stored

    def requests_in_flight(self, block_size: int) -> int:
        """How many block requests one file keeps in flight: small blocks need more of
        them to keep the same amount of data moving."""
        return max(
            self.min_requests_in_flight_per_file,
            self.bytes_in_flight_per_file // max(block_size, 1),
        )


DEFAULT_TUNINGS = PullTunings()
