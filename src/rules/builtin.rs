//! The shipped rules (`assets/rules/sightline.rules.yml`): GPU, host and Sightline's own health,
//! in Prometheus's format so users can copy the file and change thresholds.

use super::file::{self, GroupSpec};

/// The rule file's text, embedded in the binary.
pub const TEXT: &str = include_str!("../../assets/rules/sightline.rules.yml");

/// What `/api/v1/rules` shows as the built-in groups' file.
pub const FILE: &str = "builtin:sightline.rules.yml";

/// The built-in groups, parsed.
pub fn groups() -> Vec<GroupSpec> {
    match file::parse(FILE, TEXT) {
        Ok(f) => f.groups,
        Err(e) => unreachable!("the built-in rule file is checked by a test: {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_rules_parse() {
        let g = super::groups();
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["sightline-gpu", "sightline-host", "sightline-self"]);
        assert!(g.iter().map(|g| g.rules.len()).sum::<usize>() >= 15);
    }
}
