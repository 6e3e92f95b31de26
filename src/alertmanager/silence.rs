//! Silences as Alertmanager 0.25 keeps them: validation, the pending / active / expired states,
//! updates in place where they do not rewrite history (otherwise the old silence is expired and
//! a new one created), expiry, and retention after the end (`silence_retention`, 120h).

use super::matcher::{LabelSet, MatchType, Matcher, all_match};

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    /// ns since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Active,
    Pending,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Pending => "pending",
            State::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: i64) -> State {
        if now < self.starts_at {
            State::Pending
        } else if now > self.ends_at {
            State::Expired
        } else {
            State::Active
        }
    }

    pub fn matches(&self, ls: &LabelSet) -> bool {
        all_match(&self.matchers, ls)
    }

    /// Alertmanager's `validateSilence` (the ID is set by then).
    pub fn validate(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("at least one matcher required".into());
        }
        let mut all_empty = true;
        for (i, m) in self.matchers.iter().enumerate() {
            if !super::alert::valid_label_name(&m.name) {
                return Err(format!(
                    "invalid label matcher {i}: invalid label name {:?}",
                    m.name
                ));
            }
            all_empty &= m.matches_empty();
        }
        if all_empty {
            return Err("at least one matcher must not match the empty string".into());
        }
        if self.starts_at == 0 {
            return Err("invalid zero start timestamp".into());
        }
        if self.ends_at == 0 {
            return Err("invalid zero end timestamp".into());
        }
        if self.ends_at < self.starts_at {
            return Err("end time must not be before start time".into());
        }
        Ok(())
    }

    pub fn to_json(&self, now: i64) -> serde_json::Value {
        let t = super::rfc3339;
        serde_json::json!({
            "id": self.id,
            "status": {"state": self.state(now).as_str()},
            "updatedAt": t(self.updated_at),
            "comment": self.comment,
            "createdBy": self.created_by,
            "endsAt": t(self.ends_at),
            "matchers": self.matchers.iter().map(Matcher::to_json).collect::<Vec<_>>(),
            "startsAt": t(self.starts_at),
        })
    }
}

/// Whether `a` may be changed to `b` in place (same matchers; times changed only as history
/// allows).
pub fn can_update(a: &Silence, b: &Silence, now: i64) -> bool {
    if a.matchers != b.matchers {
        return false;
    }
    match a.state(now) {
        State::Active => {
            b.starts_at.div_euclid(1_000_000_000) == a.starts_at.div_euclid(1_000_000_000)
                && b.ends_at >= now
        }
        State::Pending => b.starts_at >= now,
        State::Expired => false,
    }
}

/// A random (version 4) UUID.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let t = crate::base::clock::now_ns() as u128 ^ ((std::process::id() as u128) << 64);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The API filter on silences: every filter matcher must appear among the silence's matchers
/// with the same name, type and value.
pub fn matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && m.kind == f.kind && m.value == f.value)
    })
}

/// API v2 matcher JSON -> matcher (`isEqual` defaults to true).
pub fn matcher_from_json(v: &serde_json::Value) -> Result<Matcher, String> {
    let name = v
        .get("name")
        .and_then(|x| x.as_str())
        .ok_or("matchers.name in body is required")?;
    let value = v
        .get("value")
        .and_then(|x| x.as_str())
        .ok_or("matchers.value in body is required")?;
    let is_regex = v
        .get("isRegex")
        .and_then(|x| x.as_bool())
        .ok_or("matchers.isRegex in body is required")?;
    let is_equal = v.get("isEqual").and_then(|x| x.as_bool()).unwrap_or(true);
    let kind = match (is_equal, is_regex) {
        (true, false) => MatchType::Equal,
        (false, false) => MatchType::NotEqual,
        (true, true) => MatchType::Regexp,
        (false, true) => MatchType::NotRegexp,
    };
    Matcher::new(kind, name, value).map_err(|e| format!("invalid label matcher: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alertmanager::matcher::parse_matchers;

    fn sil(m: &str, s: i64, e: i64) -> Silence {
        Silence {
            id: new_id(),
            matchers: parse_matchers(m).unwrap(),
            starts_at: s,
            ends_at: e,
            updated_at: s,
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    #[test]
    fn states_and_validation() {
        let s = sil(r#"alertname="x""#, 10, 20);
        assert_eq!(s.state(5), State::Pending);
        assert_eq!(s.state(15), State::Active);
        assert_eq!(s.state(21), State::Expired);
        assert!(s.validate().is_ok());
        assert!(sil(r#"a=~".*""#, 10, 20).validate().is_err());
        assert!(sil(r#"a="x""#, 20, 10).validate().is_err());
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn updates_in_place_only_without_rewriting_history() {
        let a = sil(r#"a="x""#, 0, 100 * 1_000_000_000);
        let mut b = a.clone();
        b.ends_at += 1_000_000_000;
        assert!(can_update(&a, &b, 50 * 1_000_000_000));
        b.starts_at += 5_000_000_000;
        assert!(!can_update(&a, &b, 50 * 1_000_000_000));
        let mut c = a.clone();
        c.matchers = parse_matchers(r#"a="y""#).unwrap();
        assert!(!can_update(&a, &c, 50 * 1_000_000_000));
    }
}
