//! OTLP names to Prometheus names, by the OpenTelemetry "Prometheus and OpenMetrics
//! compatibility" rules: metric names with unit and `_total` suffixes, label names sanitised.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// The Prometheus metric name for an OTLP metric.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    if let Some(u) = unit_word(main, false)
        && !tokens.contains(&u)
    {
        tokens.push(u);
    }
    if let Some(p) = per.and_then(|p| unit_word(p, true))
        && !tokens.contains(&p)
    {
        tokens.push("per".into());
        tokens.push(p);
    }
    if kind == Kind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The word a UCUM unit contributes to a name; units in braces are annotations and dropped.
pub(super) fn unit_word(u: &str, per: bool) -> Option<String> {
    if u.is_empty() || u.contains('{') || u.contains('}') {
        return None;
    }
    let mapped = if per {
        match u {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            "w" => "week",
            "mo" => "month",
            "y" => "year",
            other => other,
        }
    } else {
        match u {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "TiBy" => "tibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "TBy" => "terabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "%" => "percent",
            "1" => return None,
            other => other,
        }
    };
    let clean: String = mapped
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_string();
    (!clean.is_empty()).then_some(clean)
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "key_");
    } else if s.starts_with('_') && !s.starts_with("__") {
        s.insert_str(0, "key");
    }
    s
}
