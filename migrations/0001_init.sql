-- Sightline trace store, schema version 1.
-- Spans and log records are stored in chunks: one row holds a zstd-compressed protobuf TracesData
-- or LogsData (see src/traces/chunk.rs for the blob layout). Rows are appended in commit order, so
-- the integer primary key is the only B-tree the hot insert path grows, and it grows at its end.
-- Lookups by trace id go through the Tantivy index (index/), which maps ids to chunk ids.

CREATE TABLE chunks (
    -- Commit order. AUTOINCREMENT: ids are never reused, even after retention deletes the newest
    -- chunk, because the search index's watermark ("indexed through id N") depends on it.
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    signal   INTEGER NOT NULL,        -- 1 spans, 2 logs
    min_time INTEGER NOT NULL,        -- unix ns, earliest span start / log time in the chunk
    max_time INTEGER NOT NULL,        -- unix ns, latest span end / log time in the chunk
    items    INTEGER NOT NULL,        -- spans or log records in the chunk
    data     BLOB    NOT NULL
);
-- One entry per chunk (about a thousand spans), so this index costs little to keep.
CREATE INDEX chunks_by_max_time ON chunks (max_time);

-- Every (service, span name, kind) seen: answers /api/services and the operations endpoints.
CREATE TABLE operations (
    service TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    kind    INTEGER NOT NULL,
    PRIMARY KEY (service, name, kind)
) WITHOUT ROWID;

-- Calls from a span of one service to a child span of another, per minute of the child's start.
CREATE TABLE dependency_calls (
    minute INTEGER NOT NULL,          -- unix minutes
    parent TEXT    NOT NULL,
    child  TEXT    NOT NULL,
    calls  INTEGER NOT NULL,
    PRIMARY KEY (minute, parent, child)
) WITHOUT ROWID;
