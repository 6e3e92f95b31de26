//! Where dashboards live: uploaded ones as files under `<data_dir>/dashboards/<uid>.json`
//! (written to a temporary file, synced, renamed, the folder synced: an acknowledged upload
//! survives `kill -9`), provisioned ones read from `[dashboards] dirs` and read again whenever a
//! file there changes (Grafana's file provisioning). A provisioned dashboard cannot be deleted
//! from the UI (its file is the truth) and shadows an uploaded one with the same uid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use serde_json::Value;

use super::DashboardError;
use super::model;

/// Where a dashboard came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Uploaded,
    Provisioned(PathBuf),
}

/// One stored dashboard.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: String,
    pub title: String,
    pub tags: Vec<String>,
    pub origin: Origin,
    pub json: Arc<Value>,
}

#[derive(Default)]
struct Inner {
    uploaded: BTreeMap<String, Entry>,
    provisioned: BTreeMap<String, Entry>,
    /// Provisioned files that could not be read, with the reason.
    errors: Vec<(PathBuf, String)>,
    /// `(path, modified, length)` of every provisioned file at the last scan.
    stamp: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

/// The dashboards, cheap to clone.
#[derive(Clone)]
pub struct DashboardStore {
    dir: PathBuf,
    provision: Arc<Vec<PathBuf>>,
    inner: Arc<RwLock<Inner>>,
}

/// Files deeper than this under a provisioning folder are not read.
const MAX_DEPTH: usize = 8;
/// The most files read from the provisioning folders.
const MAX_FILES: usize = 2000;

impl DashboardStore {
    /// Opens `<data_dir>/dashboards` (created if missing) and reads the provisioning folders.
    pub fn open(
        data_dir: &Path,
        provision: Vec<PathBuf>,
    ) -> Result<DashboardStore, DashboardError> {
        let dir = data_dir.join("dashboards");
        std::fs::create_dir_all(&dir)?;
        let mut uploaded = BTreeMap::new();
        for e in std::fs::read_dir(&dir)? {
            let path = e?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(DashboardError::from)
                .and_then(|b| model::parse(&b))
            {
                Ok(d) => {
                    let e = entry(d, Origin::Uploaded);
                    uploaded.insert(e.uid.clone(), e);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stored dashboard unreadable")
                }
            }
        }
        let store = DashboardStore {
            dir,
            provision: Arc::new(provision),
            inner: Arc::new(RwLock::new(Inner {
                uploaded,
                ..Inner::default()
            })),
        };
        store.rescan();
        Ok(store)
    }

    /// Every dashboard, by title.
    pub fn list(&self) -> Vec<Entry> {
        let g = self.inner.read();
        let mut all: Vec<Entry> = g.provisioned.values().cloned().collect();
        all.extend(
            g.uploaded
                .values()
                .filter(|e| !g.provisioned.contains_key(&e.uid))
                .cloned(),
        );
        all.sort_by(|a, b| {
            a.title
                .to_lowercase()
                .cmp(&b.title.to_lowercase())
                .then(a.uid.cmp(&b.uid))
        });
        all
    }

    pub fn get(&self, uid: &str) -> Option<Entry> {
        let g = self.inner.read();
        g.provisioned
            .get(uid)
            .or_else(|| g.uploaded.get(uid))
            .cloned()
    }

    /// Provisioned files that failed to load, with why.
    pub fn errors(&self) -> Vec<(PathBuf, String)> {
        self.inner.read().errors.clone()
    }

    /// Stores an uploaded dashboard durably; the uid it is stored under. `overwrite`: whether an
    /// upload with the same uid is replaced; `None` takes the flag of Grafana's API envelope.
    pub fn import(&self, bytes: &[u8], overwrite: Option<bool>) -> Result<String, DashboardError> {
        let (d, in_body) = model::parse_request(bytes)?;
        let overwrite = overwrite.unwrap_or(in_body);
        let e = entry(d, Origin::Uploaded);
        if let Some(Origin::Provisioned(p)) = self.get(&e.uid).map(|x| x.origin) {
            return Err(DashboardError::Provisioned(e.uid, p));
        }
        if !overwrite && self.inner.read().uploaded.contains_key(&e.uid) {
            return Err(DashboardError::Exists(e.uid));
        }
        let body =
            serde_json::to_vec_pretty(&*e.json).map_err(|e| DashboardError::Json(e.to_string()))?;
        write_durably(&self.dir, &format!("{}.json", e.uid), &body)?;
        let uid = e.uid.clone();
        self.inner.write().uploaded.insert(uid.clone(), e);
        Ok(uid)
    }

    /// Deletes an uploaded dashboard.
    pub fn delete(&self, uid: &str) -> Result<(), DashboardError> {
        match self.get(uid).map(|e| e.origin) {
            None => return Err(DashboardError::NotFound(uid.to_string())),
            Some(Origin::Provisioned(p)) => {
                return Err(DashboardError::Provisioned(uid.to_string(), p));
            }
            Some(Origin::Uploaded) => {}
        }
        std::fs::remove_file(self.dir.join(format!("{uid}.json")))?;
        sync_dir(&self.dir)?;
        self.inner.write().uploaded.remove(uid);
        Ok(())
    }

    /// Reads the provisioning folders again if any file in them changed since the last scan.
    pub fn rescan(&self) {
        let files = self.provisioned_files();
        let stamp: Vec<_> = files
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok();
                (
                    p.clone(),
                    m.as_ref().and_then(|m| m.modified().ok()),
                    m.map_or(0, |m| m.len()),
                )
            })
            .collect();
        if self.inner.read().stamp == stamp && !stamp.is_empty() {
            return;
        }
        let mut provisioned = BTreeMap::new();
        let mut errors = Vec::new();
        for p in &files {
            match std::fs::read(p)
                .map_err(DashboardError::from)
                .and_then(|b| model::parse(&b))
            {
                Ok(d) => {
                    let e = entry(d, Origin::Provisioned(p.clone()));
                    if let Some(Entry {
                        origin: Origin::Provisioned(first),
                        ..
                    }) = provisioned.get(&e.uid)
                    {
                        errors.push((
                            p.clone(),
                            format!(
                                "uid {:?} is already provisioned from {}",
                                e.uid,
                                first.display()
                            ),
                        ));
                        continue;
                    }
                    provisioned.insert(e.uid.clone(), e);
                }
                Err(e) => errors.push((p.clone(), e.to_string())),
            }
        }
        for (p, e) in &errors {
            tracing::warn!(path = %p.display(), error = %e, "provisioned dashboard not loaded");
        }
        let mut g = self.inner.write();
        g.provisioned = provisioned;
        g.errors = errors;
        g.stamp = stamp;
    }

    fn provisioned_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in self.provision.iter() {
            walk(d, 0, &mut out);
        }
        out.sort();
        out.truncate(MAX_FILES);
        out
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH || out.len() >= MAX_FILES {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn entry(d: Value, origin: Origin) -> Entry {
    Entry {
        uid: model::uid_of(&d),
        title: model::title_of(&d),
        tags: model::tags_of(&d),
        origin,
        json: Arc::new(d),
    }
}

fn write_durably(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_delete_provision_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let prov = tmp.path().join("prov");
        std::fs::create_dir_all(prov.join("team")).unwrap();
        std::fs::write(
            prov.join("team/a.json"),
            br#"{"uid":"a","title":"A","panels":[]}"#,
        )
        .unwrap();
        std::fs::write(prov.join("broken.json"), b"{nope").unwrap();
        let s = DashboardStore::open(&tmp.path().join("data"), vec![prov.clone()]).unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.errors().len(), 1);
        let uid = s
            .import(br#"{"uid":"b","title":"B","panels":[]}"#, Some(false))
            .unwrap();
        assert_eq!(uid, "b");
        assert!(matches!(
            s.import(br#"{"uid":"b","title":"B2","panels":[]}"#, Some(false)),
            Err(DashboardError::Exists(_))
        ));
        s.import(br#"{"uid":"b","title":"B2","panels":[]}"#, Some(true))
            .unwrap();
        assert!(matches!(
            s.import(br#"{"uid":"a","title":"A","panels":[]}"#, Some(true)),
            Err(DashboardError::Provisioned(..))
        ));
        assert!(matches!(
            s.delete("a"),
            Err(DashboardError::Provisioned(..))
        ));
        // Reopened: the upload is still there; a changed provisioned file is read again.
        let s = DashboardStore::open(&tmp.path().join("data"), vec![prov.clone()]).unwrap();
        assert_eq!(s.get("b").unwrap().title, "B2");
        std::fs::write(
            prov.join("team/a.json"),
            br#"{"uid":"a","title":"A, edited","panels":[]}"#,
        )
        .unwrap();
        std::fs::remove_file(prov.join("broken.json")).unwrap();
        s.rescan();
        assert_eq!(s.get("a").unwrap().title, "A, edited");
        assert!(s.errors().is_empty());
        s.delete("b").unwrap();
        assert!(s.get("b").is_none());
        assert!(matches!(s.delete("b"), Err(DashboardError::NotFound(_))));
    }
}
