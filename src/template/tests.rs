//! Expected outputs are what Go's text/template with Prometheus 2.42's functions prints.

use std::collections::BTreeMap;

use super::*;

struct FakeQuery;

impl QueryFn for FakeQuery {
    fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        if expr != "up" {
            return Err(format!("unexpected query {expr}"));
        }
        Ok(["b", "a"]
            .iter()
            .enumerate()
            .map(|(i, inst)| Sample {
                labels: BTreeMap::from([
                    ("__name__".to_string(), "up".to_string()),
                    ("instance".to_string(), inst.to_string()),
                ]),
                value: 1234.5 * (i + 1) as f64,
            })
            .collect())
    }
}

fn run(text: &str, value: f64) -> Result<String, TemplateError> {
    let labels = BTreeMap::from([
        ("instance".to_string(), "node-1:9100".to_string()),
        ("job".to_string(), "node".to_string()),
        ("severity".to_string(), "page".to_string()),
    ]);
    let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
    let data = alert_data(&labels, &ext, "http://sl:8080", value);
    let t = Template::parse("__alert_Test", &alert_text(text))?;
    t.execute(
        &data,
        &Env {
            query: &FakeQuery,
            external_url: "http://sl:8080",
            path_prefix: "",
            limits: Limits::default(),
            defs: None,
            escape_html: false,
            line: None,
        },
    )
}

#[test]
fn expands_as_prometheus_does() {
    let cases: &[(&str, f64, &str)] = &[
        ("{{ $labels.instance }} is down", 1.0, "node-1:9100 is down"),
        ("{{ $value }}", 1e6, "1e+06"),
        ("{{ $value }}", 0.5, "0.5"),
        ("{{ $value }}", 3.0, "3"),
        ("{{ $value }}", 123456.0, "123456"),
        ("{{ .Value }}", f64::NAN, "NaN"),
        ("{{ $labels.missing }}|", 1.0, "|"),
        ("{{ $externalLabels.cluster }}", 1.0, "eu1"),
        ("{{ $externalURL }}", 1.0, "http://sl:8080"),
        ("{{ humanize $value }}", 1234567.0, "1.235M"),
        ("{{ humanize $value }}", 0.001234, "1.234m"),
        ("{{ humanize $value }}", 0.0, "0"),
        ("{{ humanize $value }}", 1000.0, "1k"),
        ("{{ humanize 12.5 }}", 0.0, "12.5"),
        ("{{ humanize1024 $value }}", 1024.0, "1ki"),
        ("{{ humanize1024 $value }}", 1_572_864.0, "1.5Mi"),
        ("{{ humanize1024 $value }}", 0.5, "0.5"),
        ("{{ humanizeDuration $value }}", 3661.0, "1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 90061.0, "1d 1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 0.0015, "1.5ms"),
        ("{{ humanizeDuration $value }}", 59.5, "59.5s"),
        ("{{ humanizeDuration $value }}", 0.0, "0s"),
        ("{{ humanizePercentage $value }}", 0.1234, "12.34%"),
        ("{{ humanizePercentage $value }}", 0.5, "50%"),
        (
            "{{ humanizeTimestamp $value }}",
            1_700_000_000.5,
            "2023-11-14 22:13:20.5 +0000 UTC",
        ),
        ("{{ printf \"%.2f\" $value }}", 2.71901, "2.72"),
        ("{{ printf \"%5.1f|\" $value }}", 2.71901, "  2.7|"),
        ("{{ printf \"%d items\" 5 }}", 0.0, "5 items"),
        ("{{ printf \"%s-%s\" \"a\" \"b\" }}", 0.0, "a-b"),
        ("{{ printf \"%d\" \"x\" }}", 0.0, "%!d(string=x)"),
        ("{{ printf \"%v\" $value }}", 2.5, "2.5"),
        ("{{ printf \"%.3g\" $value }}", 1234.5, "1.23e+03"),
        ("{{ printf \"%q\" $labels.job }}", 0.0, "\"node\""),
        ("{{ printf \"%-6s|\" \"ab\" }}", 0.0, "ab    |"),
        ("{{ printf \"%05d\" 42 }}", 0.0, "00042"),
        ("{{ printf \"%.1e\" 12345.0 }}", 0.0, "1.2e+04"),
        (
            "{{ if gt $value 80.0 }}high{{ else }}low{{ end }}",
            90.0,
            "high",
        ),
        (
            "{{ if gt $value 80.0 }}high{{ else }}low{{ end }}",
            10.0,
            "low",
        ),
        (
            "{{ if lt $value 10.0 }}a{{ else if lt $value 20.0 }}b{{ else }}c{{ end }}",
            15.0,
            "b",
        ),
        (
            "{{ if eq $labels.severity \"warn\" \"page\" }}yes{{ end }}",
            0.0,
            "yes",
        ),
        (
            "{{ if and $labels.job (not $labels.missing) }}ok{{ end }}",
            0.0,
            "ok",
        ),
        ("{{ or $labels.missing \"default\" }}", 0.0, "default"),
        (
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
            0.0,
            "instance=node-1:9100,job=node,severity=page,",
        ),
        ("{{ range $i, $e := 3 }}{{ $i }}{{ end }}", 0.0, "012"),
        (
            "{{ range $i := 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}",
            0.0,
            "012",
        ),
        (
            "{{ with $labels.job }}job={{ . }}{{ end }}",
            0.0,
            "job=node",
        ),
        (
            "{{ with $labels.missing }}x{{ else }}none{{ end }}",
            0.0,
            "none",
        ),
        ("a  {{- \"1\" -}}  b", 0.0, "a1b"),
        ("a {{/* a comment */}}b", 0.0, "a b"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", 0.0, "2"),
        ("{{ \"x\" | toUpper }}{{ toLower \"Y\" }}", 0.0, "Xy"),
        ("{{ title \"hello big world\" }}", 0.0, "Hello Big World"),
        (
            "{{ reReplaceAll \"(a+)\" \"<$1>\" \"baaac\" }}",
            0.0,
            "b<aaa>c",
        ),
        ("{{ match \"^node\" $labels.job }}", 0.0, "true"),
        ("{{ stripPort $labels.instance }}", 0.0, "node-1"),
        ("{{ len $labels }}", 0.0, "3"),
        ("{{ index $labels \"job\" }}", 0.0, "node"),
        ("{{ print 1 2 \"a\" 3 }}", 0.0, "1 2a3"),
        ("{{ html \"<b>&'\" }}", 0.0, "&lt;b&gt;&amp;&#39;"),
        ("{{ urlquery \"a b&c\" }}", 0.0, "a+b%26c"),
        (
            "{{ graphLink \"up == 0\" }}",
            0.0,
            "/graph?g0.expr=up+%3D%3D+0&g0.tab=0",
        ),
        ("{{ (args 1 \"x\").arg1 }}", 0.0, "x"),
        (
            "{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}",
            0.0,
            "1.234k",
        ),
        (
            "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}",
            0.0,
            "a=2469 b=1234.5 ",
        ),
        ("{{ query \"up\" | first | label \"instance\" }}", 0.0, "b"),
        ("{{ parseDuration \"1m30s\" }}", 0.0, "90"),
    ];
    for (text, value, want) in cases {
        match run(text, *value) {
            Ok(got) => assert_eq!(&got, want, "template {text:?} with $value = {value}"),
            Err(e) => panic!("template {text:?}: {e}"),
        }
    }
}

#[test]
fn errors_as_go_reports_them() {
    let parse_errors: &[(&str, &str)] = &[
        ("{{ $x }}", "undefined variable \"$x\""),
        ("{{ bogus 1 }}", "function \"bogus\" not defined"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ if 1 }}x", "unexpected EOF"),
        ("{{ \"unterminated }}", "unterminated quoted string"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ template \"x\" }}", "not supported"),
    ];
    for (text, want) in parse_errors {
        let e = run(text, 0.0).expect_err(text);
        assert!(e.to_string().contains(want), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with("template: __alert_Test:1: "),
            "{e}"
        );
    }
    // Execution errors: an int compared with a float64, a query with no result.
    let e = run("{{ if gt $value 80 }}x{{ end }}", 90.0).unwrap_err();
    assert!(e.msg.contains("incompatible types for comparison"), "{e}");
    let e = run("{{ query \"nothing\" | first }}", 0.0).unwrap_err();
    assert!(e.msg.contains("unexpected query"), "{e}");
}

#[test]
fn runaway_templates_are_bounded() {
    let e = run(
        "{{ range $i := 1000 }}{{ range $j := 1000 }}x{{ end }}{{ end }}",
        0.0,
    )
    .unwrap_err();
    assert!(e.msg.contains("steps"), "{e}");
    let e = run(
        "{{ range $i := 90000 }}{{ printf \"%0500d\" 1 }}{{ end }}",
        0.0,
    )
    .unwrap_err();
    assert!(e.msg.contains("bytes") || e.msg.contains("steps"), "{e}");
    assert!(Template::parse("t", &"x".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
}

#[test]
fn go_float_formats() {
    let cases: &[(f64, char, Option<usize>, &str)] = &[
        (123456.0, 'g', None, "123456"),
        (1234567.0, 'g', None, "1.234567e+06"),
        (0.0001, 'g', None, "0.0001"),
        (0.00001, 'g', None, "1e-05"),
        (12345.0, 'g', Some(4), "1.234e+04"),
        (1000.0, 'g', Some(4), "1000"),
        (0.0001234, 'g', Some(4), "0.0001234"),
        (1.5, 'g', Some(4), "1.5"),
        (-2.0, 'g', None, "-2"),
        (2.5, 'f', Some(0), "2"),
        (1e21, 'g', None, "1e+21"),
        (f64::INFINITY, 'g', None, "+Inf"),
    ];
    for (v, verb, prec, want) in cases {
        assert_eq!(
            &go_format_float(*v, *verb, *prec),
            want,
            "{v} {verb} {prec:?}"
        );
    }
}
