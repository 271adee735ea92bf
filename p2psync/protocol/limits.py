"""Hard limits of the wire protocol: anything larger is a RemoteProtocolError.

They bound the memory one peer can make us use and are checked before data is buffered
or decoded. Senders batch well below them (see INDEX_BATCH_*).
"""

from __future__ import annotations

from .fileinfo import MAX_BLOCK_SIZE
from .names import MAX_NAME_BYTES

MAGIC = 0x50325301  # b"P2S\x01": p2psync, wire version 1
SYNCTHING_MAGIC = 0x2EA7D90B  # BEP's Hello magic: recognised only to say so in the error

MAX_HELLO_SIZE = 32767
MAX_FRAME_SIZE = MAX_BLOCK_SIZE + 1024 * 1024  # type byte + payload; a full block + headroom
MAX_REQUEST_SIZE = MAX_BLOCK_SIZE

MAX_FILES_PER_INDEX = 10_000
MAX_BLOCKS_PER_FILE = 65_536  # files up to 1 TiB at the 16 MiB block size
MAX_COUNTERS = 1_000  # counters in one version vector
MAX_FOLDERS = 4_096
MAX_DEVICES_PER_FOLDER = 1_000
MAX_ADDRESSES = 64
MAX_PROGRESS_UPDATES = MAX_FILES_PER_INDEX
MAX_OUTSTANDING_REQUESTS = 4_096  # per direction

MAX_SYMLINK_TARGET_BYTES = 4096
MAX_ID_BYTES = 256  # folder IDs
MAX_LABEL_BYTES = 1024
MAX_SHORT_STRING_BYTES = 256  # device names, client name/version, cert names
MAX_ADDRESS_BYTES = 512
MAX_REASON_BYTES = 1024
MAX_STRUCT_KEYS = 64  # known fields plus room for fields added later

# What a well-behaved sender puts in one Index/IndexUpdate (Syncthing's batch sizes).
INDEX_BATCH_FILES = 1_000
INDEX_BATCH_BLOCKS = 5_000

INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

# Decoded size. Per-object limits do not bound what a frame becomes in memory: 16 MiB of
# empty maps (one byte each) unpack into 1.2 GB of dicts. A frame larger than
# UNMETERED_PAYLOAD is unpacked with hooks that add up the cost below for every array
# and map as it is built, and the frame is refused once the sum passes MAX_DECODED_COST.
# The costs are CPython 3.11 sizes rounded up to pymalloc's 16-byte classes: an array is
# a tuple (48 bytes) and a map a dict (184 bytes with its first key table, then about 40
# per key); each entry is charged a pointer plus room for a scalar (an int, float, short
# str or bin: 56 bytes) whether or not it is one. The largest legitimate frames cost 6.8x
# (an Index of big files) to 9.9x (an Index of small files) their size, so a full 17 MiB
# frame of block lists fits; a frame of anything else is refused at 128 MiB. Frames up to
# UNMETERED_PAYLOAD unpack without the hooks (no overhead on the usual Index batches and
# Requests): whatever they hold, they cannot grow past about 40 MB (72 bytes per byte).
UNMETERED_PAYLOAD = 512 * 1024
MAX_DECODED_COST = 128 * 1024 * 1024
DECODED_ARRAY_COST = 48
DECODED_MAP_COST = 184
DECODED_MAP_KEY_COST = 40
DECODED_ENTRY_COST = 64

# Per-object limits handed to msgpack: no single string/array/map/bin may exceed these.
MSGPACK_LIMITS = {
    "max_str_len": max(MAX_NAME_BYTES, MAX_SYMLINK_TARGET_BYTES),
    "max_bin_len": MAX_BLOCK_SIZE,
    "max_array_len": max(MAX_FILES_PER_INDEX, MAX_BLOCKS_PER_FILE, MAX_FOLDERS),
    "max_map_len": MAX_STRUCT_KEYS,
    "max_ext_len": 0,
}
