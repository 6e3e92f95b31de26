//! `sightline check config FILE`: what `promtool check config` checks beyond loading the file.

use std::path::{Path, PathBuf};

use super::config::{TargetGroup, load_file};

/// `promtool check config` for one file: the file loads, the files it names exist (rule files
/// without a `*`, authorization credential files, client certificates and keys), every file
/// discovery file that exists parses, and every static or file target passes target creation.
/// Returns the rule files to check next, and warnings (file discovery patterns matching
/// nothing).
pub fn check_file(path: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let cfg = load_file(path)?;
    let mut warnings = Vec::new();
    let mut rule_files = Vec::new();
    for rf in &cfg.rule_files {
        let found = crate::scrape::discovery::expand(rf);
        if !rf.contains('*') && found.is_empty() {
            return Err(format!("{rf:?} does not point to an existing file"));
        }
        rule_files.extend(found);
    }
    let exists = |what: &str, p: &Option<PathBuf>| -> Result<(), String> {
        match p {
            Some(p) => std::fs::metadata(p).map(|_| ()).map_err(|e| {
                format!(
                    "error checking {what} {:?}: stat {}: {e}",
                    p.display().to_string(),
                    p.display()
                )
            }),
            None => Ok(()),
        }
    };
    for job in &cfg.jobs {
        if let Some(a) = &job.http.authorization {
            exists(
                "authorization credentials or bearer token file",
                &a.credentials_file,
            )?;
        }
        let tls = &job.http.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(c), None) => {
                return Err(format!(
                    "client cert file {:?} specified without client key file",
                    c.display().to_string()
                ));
            }
            (None, Some(k)) => {
                return Err(format!(
                    "client key file {:?} specified without client cert file",
                    k.display().to_string()
                ));
            }
            _ => {}
        }
        exists("client cert file", &tls.cert_file)?;
        exists("client key file", &tls.key_file)?;
        let check_groups = |groups: &[TargetGroup]| -> Result<(), String> {
            for g in groups {
                for p in crate::scrape::target::from_groups([g], job) {
                    if let crate::scrape::target::Populated::Failed(e) = p {
                        return Err(e);
                    }
                }
            }
            Ok(())
        };
        for f in &job.file_sd {
            for pattern in &f.files {
                let files = crate::scrape::discovery::expand(pattern);
                if files.is_empty() {
                    warnings.push(format!(
                        "file {pattern:?} for file_sd in scrape job {:?} does not exist",
                        job.name
                    ));
                }
                for file in files {
                    let groups = crate::scrape::discovery::read_file_groups(&file)
                        .map_err(|e| format!("checking SD file {pattern:?}: {e}"))?;
                    check_groups(&groups)?;
                }
            }
        }
        check_groups(&job.static_configs)?;
    }
    Ok((rule_files, warnings))
}
