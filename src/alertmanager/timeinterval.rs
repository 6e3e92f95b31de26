//! Alertmanager's time intervals (`time_intervals`, `mute_time_intervals`): times of day,
//! weekdays, days of the month (negative counts from the end), months, years and a location,
//! each list a union and the fields an intersection. Time zones come from the system's tz
//! database or jiff's bundled copy.

use serde::Deserialize;

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTimeInterval {
    times: Option<Vec<RawTimeRange>>,
    weekdays: Option<Vec<String>>,
    days_of_month: Option<Vec<String>>,
    months: Option<Vec<String>>,
    years: Option<Vec<String>>,
    location: Option<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawTimeRange {
    #[serde(default)]
    start_time: String,
    #[serde(default)]
    end_time: String,
}

#[derive(Debug, Clone)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    times: Option<Vec<(i32, i32)>>,
    weekdays: Option<Vec<(i32, i32)>>,
    days_of_month: Option<Vec<(i32, i32)>>,
    months: Option<Vec<(i32, i32)>>,
    years: Option<Vec<(i32, i32)>>,
    location: Option<jiff::tz::TimeZone>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn atoi(s: &str) -> Result<i32, String> {
    s.parse::<i32>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
}

fn range(s: &str, member: &dyn Fn(&str) -> Result<i32, String>) -> Result<(i32, i32), String> {
    let s = s.to_lowercase();
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 2 {
            return Err(format!("couldn't parse range {s}, invalid format"));
        }
        Ok((member(parts[0])?, member(parts[1])?))
    } else {
        let v = member(&s)?;
        Ok((v, v))
    }
}

fn clock(s: &str) -> Result<i32, String> {
    let b = s.as_bytes();
    let ok = s == "24:00"
        || (b.len() == 5
            && b[2] == b':'
            && b[0].is_ascii_digit()
            && b[1].is_ascii_digit()
            && b[3].is_ascii_digit()
            && b[4].is_ascii_digit()
            && (b[0] < b'2' || (b[0] == b'2' && b[1] <= b'3'))
            && b[3] <= b'5');
    if !ok {
        return Err(format!("couldn't parse timestamp {s}, invalid format"));
    }
    Ok(atoi(&s[..2])? * 60 + atoi(&s[3..])?)
}

impl TimeInterval {
    pub fn from_raw(r: &RawTimeInterval) -> Result<TimeInterval, String> {
        let times = match &r.times {
            None => None,
            Some(ts) => {
                let mut out = Vec::new();
                for t in ts {
                    if t.start_time.is_empty() || t.end_time.is_empty() {
                        return Err("both start and end times must be provided".into());
                    }
                    let (a, b) = (clock(&t.start_time)?, clock(&t.end_time)?);
                    if a >= b {
                        return Err("start time cannot be equal or greater than end time".into());
                    }
                    out.push((a, b));
                }
                Some(out)
            }
        };
        let weekdays = match &r.weekdays {
            None => None,
            Some(ws) => {
                let mut out = Vec::new();
                for w in ws {
                    let (a, b) = range(w, &|d| {
                        WEEKDAYS
                            .iter()
                            .position(|x| *x == d)
                            .map(|i| i as i32)
                            .ok_or_else(|| format!("{d} is not a valid weekday"))
                    })?;
                    if a > b {
                        return Err("start day cannot be before end day".into());
                    }
                    out.push((a, b));
                }
                Some(out)
            }
        };
        let days_of_month = match &r.days_of_month {
            None => None,
            Some(ds) => {
                let mut out = Vec::new();
                for d in ds {
                    let (a, b) = range(d, &atoi)?;
                    for v in [a, b] {
                        if v == 0 || !(-31..=31).contains(&v) {
                            return Err(format!(
                                "{v} is not a valid day of the month: out of range"
                            ));
                        }
                    }
                    if a < 0 && b > 0 {
                        return Err("end day must be negative if start day is negative".into());
                    }
                    let ca = if a < 0 { 28 + a } else { a };
                    let cb = if b < 0 { 28 + b } else { b };
                    if ca > cb {
                        return Err(format!("end day {b} is always before start day {a}"));
                    }
                    out.push((a, b));
                }
                Some(out)
            }
        };
        let months = match &r.months {
            None => None,
            Some(ms) => {
                let mut out = Vec::new();
                for m in ms {
                    let (a, b) = range(m, &|x| {
                        MONTHS
                            .iter()
                            .position(|n| *n == x)
                            .map(|i| i as i32 + 1)
                            .or_else(|| x.parse::<i32>().ok())
                            .ok_or_else(|| format!("{x} is not a valid month"))
                    })?;
                    if a > b {
                        let n = |i: i32| MONTHS.get((i - 1).max(0) as usize).copied().unwrap_or("");
                        return Err(format!("end month {} is before start month {}", n(b), n(a)));
                    }
                    out.push((a, b));
                }
                Some(out)
            }
        };
        let years = match &r.years {
            None => None,
            Some(ys) => {
                let mut out = Vec::new();
                for y in ys {
                    let (a, b) = range(y, &atoi)?;
                    if a > b {
                        return Err(format!("end year {b} is before start year {a}"));
                    }
                    out.push((a, b));
                }
                Some(out)
            }
        };
        let location = match r.location.as_deref() {
            None => None,
            Some("" | "UTC") => Some(jiff::tz::TimeZone::UTC),
            Some("Local") => Some(jiff::tz::TimeZone::system()),
            Some(name) => Some(
                jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))?,
            ),
        };
        Ok(TimeInterval {
            times,
            weekdays,
            days_of_month,
            months,
            years,
            location,
        })
    }

    /// Whether the instant (ns since the epoch) falls inside the interval.
    pub fn contains(&self, ns: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_nanosecond(ns as i128) else {
            return false;
        };
        let tz = self.location.clone().unwrap_or(jiff::tz::TimeZone::UTC);
        let z = ts.to_zoned(tz);
        let minute = z.hour() as i32 * 60 + z.minute() as i32;
        if let Some(ts) = &self.times
            && !ts.iter().any(|&(a, b)| minute >= a && minute < b)
        {
            return false;
        }
        if let Some(ds) = &self.days_of_month {
            let dim = z.days_in_month() as i32;
            let day = z.day() as i32;
            let hit = ds.iter().any(|&(a, b)| {
                let begin = if a < 0 { dim + a + 1 } else { a };
                let end = if b < 0 { dim + b + 1 } else { b };
                if begin > dim {
                    return false;
                }
                let clamp = |n: i32| n.clamp(-dim, dim);
                day >= clamp(begin) && day <= clamp(end)
            });
            if !hit {
                return false;
            }
        }
        if let Some(ms) = &self.months {
            let m = z.month() as i32;
            if !ms.iter().any(|&(a, b)| m >= a && m <= b) {
                return false;
            }
        }
        if let Some(ws) = &self.weekdays {
            let wd = z.weekday().to_sunday_zero_offset() as i32;
            if !ws.iter().any(|&(a, b)| wd >= a && wd <= b) {
                return false;
            }
        }
        if let Some(ys) = &self.years {
            let y = z.year() as i32;
            if !ys.iter().any(|&(a, b)| y >= a && y <= b) {
                return false;
            }
        }
        true
    }
}

/// Whether `ns` is inside any interval of any of the named lists.
pub fn in_intervals(
    ns: i64,
    all: &std::collections::BTreeMap<String, Vec<TimeInterval>>,
    names: &[String],
) -> bool {
    names
        .iter()
        .filter_map(|n| all.get(n))
        .any(|list| list.iter().any(|ti| ti.contains(ns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(yaml: &str) -> Result<TimeInterval, String> {
        let r: RawTimeInterval = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        TimeInterval::from_raw(&r)
    }

    // 2026-12-07 is a Monday.
    const MON_1030_UTC: i64 = 1_796_639_400_000_000_000;

    #[test]
    fn fields_intersect_and_lists_unite() {
        let t =
            ti("times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']")
                .unwrap();
        assert!(t.contains(MON_1030_UTC));
        assert!(!t.contains(MON_1030_UTC + 7 * 3_600_000_000_000));
        let sat = ti("weekdays: [saturday, sunday]").unwrap();
        assert!(!sat.contains(MON_1030_UTC));
        let last = ti("days_of_month: ['-31:-25']\nmonths: [december]").unwrap();
        assert!(last.contains(MON_1030_UTC));
        let tz = ti("times: [{start_time: '11:00', end_time: '12:00'}]\nlocation: Europe/Berlin")
            .unwrap();
        assert!(tz.contains(MON_1030_UTC));
    }

    #[test]
    fn refuses_bad_ranges() {
        for bad in [
            "times: [{start_time: '10:00', end_time: '09:00'}]",
            "times: [{start_time: '25:00', end_time: '26:00'}]",
            "weekdays: [funday]",
            "weekdays: ['friday:monday']",
            "days_of_month: ['0']",
            "days_of_month: ['-1:5']",
            "months: ['march:january']",
            "years: ['2022:2020']",
            "location: Mars/Olympus",
        ] {
            assert!(ti(bad).is_err(), "{bad}");
        }
    }
}
