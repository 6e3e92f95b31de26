-- Sightline trace store, schema version 2: read positions of collected log files
-- ([[logs.files]]). A position is written in the same transaction as the log records read up
-- to it, so after a crash a file resumes exactly after the last stored line.
CREATE TABLE file_positions (
    file_id     TEXT    PRIMARY KEY,  -- "device:inode" of the file when it was read
    path        TEXT    NOT NULL,     -- where it was last seen
    fingerprint BLOB    NOT NULL,     -- its first bytes (up to 256), to tell a reused inode
    offset      INTEGER NOT NULL,     -- bytes consumed: everything before is stored
    updated     INTEGER NOT NULL      -- unix ns of the write
) WITHOUT ROWID;
