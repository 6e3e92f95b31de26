-- Sightline built-in Alertmanager state (data_dir/alertmanager/state.db), schema version 1.
-- Written before the state change it records is acted on: an alert before the POST that carried
-- it is answered, a notification log entry before the notification counts as sent, a silence
-- before its ID is returned. Times are unix ns.

-- Alerts as the API took them (Alertmanager keeps these in memory only; Sightline keeps them so
-- that a restart neither forgets a firing alert nor waits for the sender's next resend).
CREATE TABLE alerts (
    fingerprint   INTEGER PRIMARY KEY,   -- the label set's 64-bit fingerprint, as a signed integer
    labels        TEXT    NOT NULL,      -- JSON object
    annotations   TEXT    NOT NULL,      -- JSON object
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,      -- 0: unset
    generator_url TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    timeout       INTEGER NOT NULL       -- 1: ends_at came from resolve_timeout
);

CREATE TABLE silences (
    id         TEXT PRIMARY KEY,         -- UUID v4
    matchers   TEXT    NOT NULL,         -- JSON array of {name, value, isRegex, isEqual}
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    comment    TEXT    NOT NULL
);

-- The notification log: per aggregation group and integration, what was last notified.
CREATE TABLE nflog (
    group_key  TEXT    NOT NULL,
    receiver   TEXT    NOT NULL,         -- receiver/integration/index
    firing     TEXT    NOT NULL,         -- JSON array of alert hashes (decimal strings)
    resolved   TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (group_key, receiver)
);
