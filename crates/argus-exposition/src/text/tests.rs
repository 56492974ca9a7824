use proptest::prelude::*;

use super::*;

/// Every entry of a body as (kind, text) lines, samples with their built label sets.
fn parse_all(body: &str, media: MediaType) -> Result<Vec<String>> {
    let mut parser = Parser::new(body.as_bytes(), media);
    let mut out = Vec::new();
    while let Some(entry) = parser.next() {
        match entry? {
            Entry::Help { name, help } => out.push(format!("help {name} {help:?}")),
            Entry::Type { name, metric_type } => {
                out.push(format!("type {name} {}", metric_type.as_str()))
            }
            Entry::Unit { name, unit } => out.push(format!("unit {name} {unit}")),
            Entry::Histogram { .. } => unreachable!("text formats carry no native histograms"),
            Entry::Series {
                value,
                timestamp_ms,
                ..
            } => {
                let labels = parser.labels()?;
                let mut line = format!(
                    "{labels} {} {timestamp_ms:?}",
                    argus_model::gofmt::format_g(value)
                );
                if let Some(e) = parser.exemplar() {
                    line.push_str(&format!(
                        " # {} {} {:?}",
                        e.labels,
                        argus_model::gofmt::format_g(e.value),
                        e.timestamp_ms
                    ));
                }
                out.push(line);
            }
        }
    }
    Ok(out)
}

fn text(body: &str) -> Result<Vec<String>> {
    parse_all(body, MediaType::PromText)
}

fn om(body: &str) -> Result<Vec<String>> {
    parse_all(body, MediaType::OpenMetrics)
}

#[test]
fn text_format_entries() {
    let body = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds_sum 1.8652e-02
# Hello, a comment.
#HELP not metadata
# TYPE untyped_metric untyped

  some:aggregate:rate5m{a_b="c"}	1.5	1234567
	with_escapes{a="x\"y\\z\nw\t"} +Inf
nan_metric NaN
neg_inf -Inf
lower_inf inf
no_labels{} -3e2
spaced { a = "1" , b = "2" } 2
"#;
    assert_eq!(
        text(body).unwrap(),
        vec![
            "help go_gc_duration_seconds \"A summary of the GC invocation durations.\"",
            "type go_gc_duration_seconds summary",
            "{__name__=\"go_gc_duration_seconds\", quantile=\"0.0\"} 4.9351e-05 None",
            "{__name__=\"go_gc_duration_seconds\", quantile=\"0.25\"} 7.424100000000001e-05 None",
            "{__name__=\"go_gc_duration_seconds_sum\"} 0.018652 None",
            "type untyped_metric unknown",
            "{__name__=\"some:aggregate:rate5m\", a_b=\"c\"} 1.5 Some(1234567)",
            "{__name__=\"with_escapes\", a=\"x\\\"y\\\\z\\nw\\\\t\"} +Inf None",
            "{__name__=\"nan_metric\"} NaN None",
            "{__name__=\"neg_inf\"} -Inf None",
            "{__name__=\"lower_inf\"} +Inf None",
            "{__name__=\"no_labels\"} -300 None",
            "{__name__=\"spaced\", a=\"1\", b=\"2\"} 2 None",
        ]
    );
}

#[test]
fn help_text_escapes_and_empty_help() {
    assert_eq!(
        text("# HELP m a\\\\b\\nc\\\"d\n# HELP e\n").unwrap(),
        vec!["help m \"a\\\\b\\nc\\\\\\\"d\"", "help e \"\""]
    );
    assert_eq!(
        om("# HELP m a\\\"b\n# EOF\n").unwrap(),
        vec!["help m \"a\\\"b\""]
    );
}

#[test]
fn quoted_utf8_names() {
    let body = "{\"my.metric\",\"label.with.dots\"=\"v\",plain=\"w\"} 1\n\
                {plain=\"x\", \"other.metric\"} 2 17\n\
                # TYPE \"my.metric\" gauge\n";
    assert_eq!(
        text(body).unwrap(),
        vec![
            "{__name__=\"my.metric\", label.with.dots=\"v\", plain=\"w\"} 1 None",
            "{__name__=\"other.metric\", plain=\"x\"} 2 Some(17)",
            "type my.metric gauge",
        ]
    );
    let err = text("{\"a\",\"b\"} 1\n").unwrap_err().to_string();
    assert!(
        err.starts_with("metric name already set while parsing"),
        "{err}"
    );
    let err = text("{a=\"b\"} 1\n").unwrap_err().to_string();
    assert_eq!(err, "metric name not set while parsing: \"{a=\\\"b\\\"}\"");
}

#[test]
fn bucket_and_quantile_values_are_normalised_only_for_their_types() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                h_bucket{le=\"0.5e1\"} 3\nh_bucket{le=\"junk\"} 4\n\
                # TYPE g gauge\ng{le=\"1\",quantile=\"1\"} 5\n";
    assert_eq!(
        text(body).unwrap(),
        vec![
            "type h histogram",
            "{__name__=\"h_bucket\", le=\"1.0\"} 1 None",
            "{__name__=\"h_bucket\", le=\"+Inf\"} 2 None",
            "{__name__=\"h_bucket\", le=\"5.0\"} 3 None",
            "{__name__=\"h_bucket\", le=\"junk\"} 4 None",
            "type g gauge",
            "{__name__=\"g\", le=\"1\", quantile=\"1\"} 5 None",
        ]
    );
}

#[test]
fn empty_label_values_mean_no_label_and_duplicates_fail() {
    assert_eq!(
        text("m{a=\"\",b=\"1\"} 1\n").unwrap(),
        vec!["{__name__=\"m\", b=\"1\"} 1 None"]
    );
    let err = text("m{a=\"1\",a=\"2\"} 1\n").unwrap_err().to_string();
    assert_eq!(err, "label name \"a\" is not unique: invalid sample");
}

#[test]
fn text_errors_read_like_prometheus() {
    let cases = [
        (
            "metric",
            "expected value after metric, got \"\" (\"EOF\") while parsing: \"metric\"",
        ),
        (
            "metric\n",
            "expected value after metric, got \"\\n\" (\"LINEBREAK\") while parsing: \"metric\\n\"",
        ),
        (
            "a{b='c'} 1\n",
            "expected label value, got \"'c'}\" (\"INVALID\") while parsing: \"a{b='\"",
        ),
        (
            "a{b=\"c\"} x\n",
            "strconv.ParseFloat: parsing \"x\": invalid syntax while parsing: \"a{b=\\\"c\\\"} x\"",
        ),
        (
            "a 1 2 3\n",
            "expected next entry after timestamp, got \"3\" (\"INVALID\") while parsing: \"a 1 2 3\"",
        ),
        (
            "a 1 1.5\n",
            "strconv.ParseInt: parsing \"1.5\": invalid syntax while parsing: \"a 1 1.5\"",
        ),
        ("# TYPE a foo\n", "invalid metric type \"foo\""),
        (
            "a 0x1p3\n",
            "unsupported character in float while parsing: \"a 0x1p3\"",
        ),
        (
            "a 1_000\n",
            "unsupported character in float while parsing: \"a 1_000\"",
        ),
        (
            "a 1e400\n",
            "strconv.ParseFloat: parsing \"1e400\": value out of range while parsing: \"a 1e400\"",
        ),
        (
            "a -NaN\n",
            "strconv.ParseFloat: parsing \"-NaN\": invalid syntax while parsing: \"a -NaN\"",
        ),
        (
            "=1\n",
            "expected a valid start token, got \"=1\" (\"INVALID\") while parsing: \"=\"",
        ),
        (
            "a{1=\"b\"} 1\n",
            "expected label name, got \"1=\\\"b\\\"}\" (\"INVALID\") while parsing: \"a{1\"",
        ),
        (
            "a{b\"c\"} 1\n",
            "expected equal, got \"\\\"c\\\"}\" (\"INVALID\") while parsing: \"a{b\\\"\"",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(text(body).unwrap_err().to_string(), want, "body {body:?}");
    }
    let bad_utf8 = b"a{b=\"\xff\"} 1\n";
    let mut parser = Parser::new(bad_utf8, MediaType::PromText);
    let err = parser.next().unwrap().unwrap_err().to_string();
    assert!(err.starts_with("invalid UTF-8 label value"), "{err}");
}

#[test]
fn errors_stop_the_parser() {
    let mut parser = Parser::new(b"a 1\nb x\nc 3\n", MediaType::PromText);
    assert!(matches!(parser.next(), Some(Ok(Entry::Series { .. }))));
    assert!(matches!(parser.next(), Some(Err(_))));
    assert!(parser.next().is_none());
}

#[test]
fn series_bytes_identify_series() {
    let body = b"a{x=\"1\"} 1 5\na{x=\"1\"}\t2\n";
    let mut parser = Parser::new(body, MediaType::PromText);
    let mut keys = Vec::new();
    while let Some(Ok(Entry::Series { series, .. })) = parser.next() {
        keys.push(series.to_vec());
    }
    assert_eq!(keys, vec![b"a{x=\"1\"}".to_vec(), b"a{x=\"1\"}".to_vec()]);
}

#[test]
fn openmetrics_entries() {
    let body = "# TYPE foo_seconds counter\n\
                # UNIT foo_seconds seconds\n\
                # HELP foo_seconds Some help.\n\
                foo_seconds_total{a=\"b\"} 1 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                foo_seconds_created{a=\"b\"} 1520430000.123\n\
                # TYPE h histogram\n\
                h_bucket{le=\"1\"} 0 # {id=\"x\"} 0.5 123.0\n\
                h_bucket{le=\"+Inf\"} 2\n\
                # TYPE s stateset\n\
                s{s=\"a\"} 1\n\
                # EOF\n";
    assert_eq!(
        om(body).unwrap(),
        vec![
            "type foo_seconds counter",
            "unit foo_seconds seconds",
            "help foo_seconds \"Some help.\"",
            "{__name__=\"foo_seconds_total\", a=\"b\"} 1 Some(1520879607789) # {trace_id=\"KOO5S4vxi0o\"} 0.67 None",
            "{__name__=\"foo_seconds_created\", a=\"b\"} 1.520430000123e+09 None",
            "type h histogram",
            "{__name__=\"h_bucket\", le=\"1.0\"} 0 None # {id=\"x\"} 0.5 Some(123000)",
            "{__name__=\"h_bucket\", le=\"+Inf\"} 2 None",
            "type s stateset",
            "{__name__=\"s\", s=\"a\"} 1 None",
        ]
    );
    // Without a trailing newline after # EOF too.
    assert_eq!(om("a 1\n# EOF").unwrap().len(), 1);
}

#[test]
fn openmetrics_errors() {
    let cases = [
        ("a 1\n", "data does not end with # EOF"),
        ("a 1\n# EOF\nb 2\n", "unexpected data after # EOF"),
        ("a 1\n# EOF\n\n", "unexpected data after # EOF"),
        (
            "a\t1\n# EOF\n",
            "expected value after metric, got \"\\t\" (\"INVALID\") while parsing: \"a\\t\"",
        ),
        (
            "a  1\n# EOF\n",
            "expected value after metric, got \" \" (\"INVALID\") while parsing: \"a  \"",
        ),
        (
            "# comment\n# EOF\n",
            "expected a valid start token, got \"#\" (\"INVALID\") while parsing: \"#\"",
        ),
        (
            "# UNIT foo_seconds bytes\n# EOF\n",
            "unit \"bytes\" not a suffix of metric \"foo_seconds\"",
        ),
        (
            "# TYPE a untyped\n# EOF\n",
            "invalid metric type \"untyped\"",
        ),
        ("a 1 NaN\n# EOF\n", "invalid timestamp NaN"),
        (
            "a{b=\"c\" } 1\n# EOF\n",
            "expected comma or brace close, got \" \" (\"INVALID\") while parsing: \"a{b=\\\"c\\\" \"",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(om(body).unwrap_err().to_string(), want, "body {body:?}");
    }
    let long = format!("a 1 # {{id=\"{}\"}} 1\n# EOF\n", "x".repeat(200));
    assert!(
        om(&long)
            .unwrap_err()
            .to_string()
            .contains("exceeding the limit of 128")
    );
}

#[test]
fn typed_family_membership() {
    let mut parser = Parser::new(
        b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nother 1\n",
        MediaType::PromText,
    );
    parser.next();
    parser.next();
    assert!(parser.in_typed_family());
    parser.next();
    assert!(!parser.in_typed_family());
}

#[test]
fn go_float_spellings() {
    for (s, v) in [
        ("1", 1.0),
        ("-1.5e-3", -0.0015),
        (".5", 0.5),
        ("5.", 5.0),
        ("+Inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("Infinity", f64::INFINITY),
        ("+3", 3.0),
    ] {
        assert_eq!(parse_go_float(s), Ok(v), "{s}");
    }
    assert!(parse_go_float("NaN").unwrap().is_nan());
    assert!(parse_go_float("nan").unwrap().is_nan());
    for bad in ["", "+", "1e", "abc", "+nan", "0x10", "1,5", "in", "1e5x"] {
        assert!(parse_go_float(bad).is_err(), "{bad}");
    }
    assert_eq!(format_openmetrics_float(1.0), "1.0");
    assert_eq!(format_openmetrics_float(0.25), "0.25");
    assert_eq!(format_openmetrics_float(1e21), "1e+21");
    assert_eq!(format_openmetrics_float(100.0), "100.0");
    assert_eq!(format_openmetrics_float(f64::INFINITY), "+Inf");
}

fn drain(body: &[u8], media: MediaType) {
    let mut parser = Parser::new(body, media);
    let mut guard = 0;
    while let Some(entry) = parser.next() {
        if entry.is_ok() {
            let _ = parser.labels();
            let _ = parser.metric_name();
        }
        guard += 1;
        assert!(guard <= body.len() + 1, "parser does not advance");
    }
}

const SEED: &str = "# HELP a help\n# TYPE a histogram\na_bucket{le=\"1\",x=\"y\\\"\"} 1 2\n\
                    {\"q.n\",b=\"c\"} NaN # {t=\"1\"} 2 3.5\n# UNIT a_s s\n# EOF\n";

proptest! {
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        drain(&body, MediaType::PromText);
        drain(&body, MediaType::OpenMetrics);
    }

    #[test]
    fn mutated_bodies_never_panic(
        edits in proptest::collection::vec((0usize..SEED.len(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut body = SEED.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.min(body.len());
            match op {
                0 => body.insert(at, byte),
                1 if at < body.len() => { body.remove(at); }
                _ if at < body.len() => body[at] = byte,
                _ => {}
            }
        }
        drain(&body, MediaType::PromText);
        drain(&body, MediaType::OpenMetrics);
    }

    #[test]
    fn written_samples_read_back(
        names in proptest::collection::vec("[a-z_][a-z0-9_]{0,8}", 1..5),
        values in proptest::collection::vec(any::<f64>(), 1..5),
        label in "[^\\x00]{0,12}",
    ) {
        let mut body = String::new();
        let mut want = Vec::new();
        for (i, (name, value)) in names.iter().zip(&values).enumerate() {
            let escaped = label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            body.push_str(&format!(
                "{name}{{l=\"{escaped}\",i=\"{i}\"}} {} {i}\n",
                argus_model::gofmt::format_g(*value)
            ));
            want.push((name.clone(), *value, i as i64));
        }
        let mut parser = Parser::new(body.as_bytes(), MediaType::PromText);
        for (name, value, ts) in want {
            match parser.next() {
                Some(Ok(Entry::Series { value: got, timestamp_ms, .. })) => {
                    prop_assert!(got.to_bits() == value.to_bits() || (got.is_nan() && value.is_nan()));
                    prop_assert_eq!(timestamp_ms, Some(ts));
                    let labels = parser.labels().unwrap();
                    prop_assert_eq!(labels.metric_name(), name.as_str());
                    prop_assert_eq!(labels.get("l").unwrap_or(""), label.as_str());
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert!(parser.next().is_none());
    }
}
