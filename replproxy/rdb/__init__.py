"""RDB snapshots: the shared value model, the streaming reader and the writer.

`model` holds the values and events; `reader` turns RDB bytes into those events
(`RDBReader`, `read_file`, `iter_file`) and decodes single DUMP-style values
(`decode_value`); `decoders` holds the per-type value decoders it uses, `scanner` the
resumable scanner that finds where a record cut by a chunk boundary ends, `encodings` the
blob decoders (ziplist, listpack, intset, zipmap, LZF, CRC64). `writer`/`encode` write RDB
files and DUMP payloads (`dump`). `cli` is the `replproxy rdb` command group (imported on
demand, not here).
"""

from replproxy.rdb.decoders import module_name, type_encoding_name
from replproxy.rdb.model import (
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    KeyMeta,
    ModuleAux,
    ModuleValue,
    RDBChecksumError,
    RDBError,
    RDBUnsupportedError,
    ResizeDB,
    SelectDB,
    SlotImport,
    SlotInfo,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamIdmp,
    StreamPendingEntry,
    StreamValue,
    Value,
    ZSetValue,
    type_name,
)
from replproxy.rdb.reader import (
    RDBReader,
    decode_value,
    decode_value_prefix,
    iter_file,
    read_file,
)

__all__ = [
    "RDB_VERSION_MAX_REDIS",
    "RDB_VERSION_VALKEY_9",
    "Aux",
    "End",
    "Event",
    "Function",
    "HashValue",
    "Header",
    "KeyEntry",
    "KeyMeta",
    "ModuleAux",
    "ModuleValue",
    "RDBChecksumError",
    "RDBError",
    "RDBReader",
    "RDBUnsupportedError",
    "ResizeDB",
    "SelectDB",
    "SlotImport",
    "SlotInfo",
    "StreamConsumer",
    "StreamGroup",
    "StreamID",
    "StreamIdmp",
    "StreamPendingEntry",
    "StreamValue",
    "Value",
    "ZSetValue",
    "decode_value",
    "decode_value_prefix",
    "iter_file",
    "module_name",
    "read_file",
    "type_encoding_name",
    "type_name",
]
