//! `/metrics` in the format the client asks for. The metrics library writes OpenMetrics;
//! Prometheus's own `/metrics` answers in the Prometheus text format (0.0.4) unless told
//! otherwise, which is what `curl | promtool check metrics` and older scrapers expect.

/// The text format's content type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics' content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus's scrapers do first).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            part.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/openmetrics-text")
            })
        })
    })
}

/// Rewrites an OpenMetrics exposition in the Prometheus text format: a counter family's
/// `# HELP`/`# TYPE` name gets the `_total` its samples carry, `unknown` becomes `untyped`,
/// and what the text format has no place for goes (`# UNIT`, `# EOF`, counters' `_created`
/// samples, exemplars).
pub fn openmetrics_to_text(om: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(om.len());
    // The family being written and whether it is a counter.
    let mut family = String::new();
    let mut counter = false;
    let mut pending_help: Option<(String, String)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name.to_string(), help.to_string()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            family = name.to_string();
            counter = kind == "counter";
            let shown = if counter && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((help_name, help)) = pending_help.take() {
                let help_name = if help_name == name {
                    &shown
                } else {
                    &help_name
                };
                let _ = writeln!(out, "# HELP {help_name} {help}");
            }
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                _ => "untyped",
            };
            let _ = writeln!(out, "# TYPE {shown} {kind}");
            continue;
        }
        if let Some((name, help)) = pending_help.take() {
            let _ = writeln!(out, "# HELP {name} {help}");
        }
        if line.starts_with('#') {
            // `# UNIT`, `# EOF` and any other comment.
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or("");
        if counter && sample_name.strip_prefix(family.as_str()) == Some("_created") {
            continue;
        }
        // An exemplar follows ` # ` after the value (label values are quoted and cannot
        // hold an unescaped `"` before it, so the first ` # ` outside quotes starts it).
        out.push_str(strip_exemplar(line));
        out.push('\n');
    }
    if let Some((name, help)) = pending_help {
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    out
}

/// A sample line without its exemplar.
fn strip_exemplar(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted && line[..i].ends_with(' ') => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_the_text_format() {
        let om = "# HELP a_seconds Time spent.\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\n\
                  a_seconds_total{x=\"1 # 2\"} 3.0 # {trace=\"t\"} 1.0\na_seconds_created{x=\"1\"} 17.0\n\
                  # HELP b Things.\n# TYPE b gauge\nb 1\n# TYPE c unknown\nc 2\n\
                  # HELP d_total Already named.\n# TYPE d_total counter\nd_total 4\n\
                  # HELP e_created Series created.\n# TYPE e_created counter\ne_created_total 5\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a_seconds_total Time spent.\n# TYPE a_seconds_total counter\n\
             a_seconds_total{x=\"1 # 2\"} 3.0\n\
             # HELP b Things.\n# TYPE b gauge\nb 1\n# TYPE c untyped\nc 2\n\
             # HELP d_total Already named.\n# TYPE d_total counter\nd_total 4\n\
             # HELP e_created_total Series created.\n# TYPE e_created_total counter\ne_created_total 5\n"
        );
    }

    #[test]
    fn accept_headers() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
    }
}
