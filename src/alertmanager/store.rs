//! The built-in Alertmanager's durable state in SQLite (`data_dir/alertmanager/state.db`, schema
//! in `migrations/alertmanager/`): alerts, silences and the notification log. Every write is
//! committed (WAL, `synchronous=FULL`) before the change it records is acted on.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};

use super::alert::Alert;
use super::silence::{Silence, matcher_from_json};

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/alertmanager/0001_init.sql")];

/// `application_id` marking the file as Sightline's Alertmanager state ("SLAM").
const APPLICATION_ID: i64 = 0x534c_414d;

#[derive(Debug, Clone, PartialEq)]
pub struct NflogEntry {
    pub firing: Vec<u64>,
    pub resolved: Vec<u64>,
    /// ns.
    pub timestamp: i64,
    pub expires_at: i64,
}

pub struct Store {
    conn: Connection,
}

fn json_map(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn hashes(s: &str) -> Vec<u64> {
    serde_json::from_str::<Vec<String>>(s)
        .unwrap_or_default()
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect()
}

fn hashes_text(h: &[u64]) -> String {
    serde_json::to_string(&h.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app != 0 && app != APPLICATION_ID {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "{} is not a Sightline Alertmanager state file",
                path.display()
            )));
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store { conn })
    }

    pub fn put_alerts(&mut self, alerts: &[Alert]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO alerts (fingerprint, labels, annotations, starts_at, ends_at, generator_url, updated_at, timeout) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for a in alerts {
                st.execute(params![
                    a.fingerprint() as i64,
                    serde_json::to_string(&a.labels).unwrap_or_default(),
                    serde_json::to_string(&a.annotations).unwrap_or_default(),
                    a.starts_at,
                    a.ends_at,
                    a.generator_url,
                    a.updated_at,
                    a.timeout as i64
                ])?;
            }
        }
        tx.commit()
    }

    pub fn delete_alerts(&mut self, fps: &[u64]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM alerts WHERE fingerprint = ?1")?;
            for fp in fps {
                st.execute([*fp as i64])?;
            }
        }
        tx.commit()
    }

    pub fn load_alerts(&self) -> rusqlite::Result<Vec<Alert>> {
        let mut st = self.conn.prepare(
            "SELECT labels, annotations, starts_at, ends_at, generator_url, updated_at, timeout FROM alerts",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Alert {
                labels: json_map(&r.get::<_, String>(0)?),
                annotations: json_map(&r.get::<_, String>(1)?),
                starts_at: r.get(2)?,
                ends_at: r.get(3)?,
                generator_url: r.get(4)?,
                updated_at: r.get(5)?,
                timeout: r.get::<_, i64>(6)? != 0,
            })
        })?;
        rows.collect()
    }

    pub fn put_silence(&mut self, s: &Silence) -> rusqlite::Result<()> {
        let ms: Vec<serde_json::Value> = s.matchers.iter().map(|m| m.to_json()).collect();
        self.conn.execute(
            "INSERT OR REPLACE INTO silences (id, matchers, starts_at, ends_at, updated_at, created_by, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.id,
                serde_json::to_string(&ms).unwrap_or_default(),
                s.starts_at,
                s.ends_at,
                s.updated_at,
                s.created_by,
                s.comment
            ],
        )?;
        Ok(())
    }

    pub fn load_silences(&self) -> rusqlite::Result<Vec<Silence>> {
        let mut st = self.conn.prepare(
            "SELECT id, matchers, starts_at, ends_at, updated_at, created_by, comment FROM silences",
        )?;
        let rows = st.query_map([], |r| {
            let ms: Vec<serde_json::Value> =
                serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default();
            Ok(Silence {
                id: r.get(0)?,
                matchers: ms
                    .iter()
                    .filter_map(|m| matcher_from_json(m).ok())
                    .collect(),
                starts_at: r.get(2)?,
                ends_at: r.get(3)?,
                updated_at: r.get(4)?,
                created_by: r.get(5)?,
                comment: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    pub fn put_nflog(
        &mut self,
        group_key: &str,
        receiver: &str,
        e: &NflogEntry,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO nflog (group_key, receiver, firing, resolved, timestamp, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                group_key,
                receiver,
                hashes_text(&e.firing),
                hashes_text(&e.resolved),
                e.timestamp,
                e.expires_at
            ],
        )?;
        Ok(())
    }

    pub fn load_nflog(&self) -> rusqlite::Result<Vec<(String, String, NflogEntry)>> {
        let mut st = self.conn.prepare(
            "SELECT group_key, receiver, firing, resolved, timestamp, expires_at FROM nflog",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                NflogEntry {
                    firing: hashes(&r.get::<_, String>(2)?),
                    resolved: hashes(&r.get::<_, String>(3)?),
                    timestamp: r.get(4)?,
                    expires_at: r.get(5)?,
                },
            ))
        })?;
        rows.collect()
    }

    /// Drops expired log entries and silences past their retention.
    pub fn gc(&mut self, now: i64, silence_retention_ns: i64) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM nflog WHERE expires_at <= ?1", [now])?;
        self.conn.execute(
            "DELETE FROM silences WHERE ends_at + ?2 <= ?1",
            [now, silence_retention_ns],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.db");
        let a = Alert {
            labels: [("alertname".to_string(), "X".to_string())].into(),
            annotations: BTreeMap::new(),
            starts_at: 1,
            ends_at: 0,
            generator_url: "http://g".into(),
            updated_at: 2,
            timeout: true,
        };
        let e = NflogEntry {
            firing: vec![u64::MAX, 3],
            resolved: vec![],
            timestamp: 5,
            expires_at: 100,
        };
        {
            let mut s = Store::open(&p).unwrap();
            s.put_alerts(std::slice::from_ref(&a)).unwrap();
            s.put_nflog("{}:{}", "r/webhook/0", &e).unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.load_alerts().unwrap(), vec![a]);
        assert_eq!(s.load_nflog().unwrap()[0].2, e);
    }
}
