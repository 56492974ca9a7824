//! `argus tool check …`: what `promtool check config` and `promtool check metrics` do.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use argus_exposition::{Entry, MediaType, MetricType, Parser};

/// `check config FILE...`: loads each file as the server would (including the scrape layer's
/// own checks). Exit 1 if any file is bad.
pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        println!("Checking {}", file.display());
        match check_config_file(file) {
            Ok(config) => {
                if !config.rule_files.is_empty() {
                    println!(
                        "  WARNING: {} rule file patterns not checked (rules are not supported yet)",
                        config.rule_files.len()
                    );
                }
                for feature in config.unsupported() {
                    println!(
                        "  WARNING: {feature} is not supported by this version and will be ignored"
                    );
                }
                println!(
                    " SUCCESS: {} is valid prometheus config file syntax",
                    file.display()
                );
            }
            Err(e) => {
                failed = true;
                println!("  FAILED: {e}");
            }
        }
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads a config file and checks it as the server's reload does (scrape settings, TLS
/// files and HTTP clients included).
fn check_config_file(file: &std::path::Path) -> Result<argus_config::Config, String> {
    let config = argus_config::load_file(file).map_err(|e| e.to_string())?;
    argus_scrape::manager::prepare_jobs(&config)?;
    Ok(config)
}

#[derive(Default)]
struct Family {
    metric_type: Option<MetricType>,
    help: bool,
    label_names: Vec<String>,
    /// Whether any sample of the family was seen.
    has_series: bool,
}

/// The first unit word in a metric name (with an SI prefix or not) and its base unit.
fn metric_unit(name: &str) -> Option<(&str, &'static str)> {
    const UNITS: [(&str, &str); 24] = [
        ("amperes", "amperes"),
        ("bytes", "bytes"),
        ("celsius", "celsius"),
        ("grams", "grams"),
        ("joules", "joules"),
        ("kelvin", "kelvin"),
        ("meters", "meters"),
        ("metres", "metres"),
        ("seconds", "seconds"),
        ("volts", "volts"),
        ("minutes", "seconds"),
        ("hours", "seconds"),
        ("days", "seconds"),
        ("weeks", "seconds"),
        ("kelvins", "kelvin"),
        ("fahrenheit", "celsius"),
        ("rankine", "celsius"),
        ("inches", "meters"),
        ("yards", "meters"),
        ("miles", "meters"),
        ("bits", "bytes"),
        ("calories", "joules"),
        ("pounds", "grams"),
        ("ounces", "grams"),
    ];
    const PREFIXES: [&str; 18] = [
        "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
        "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
    ];
    let base_of = |word: &str| UNITS.iter().find(|(u, _)| *u == word).map(|(_, b)| *b);
    for part in name.split('_') {
        if let Some(base) = base_of(part) {
            return Some((part, base));
        }
        for prefix in PREFIXES {
            if let Some(rest) = part.strip_prefix(prefix)
                && let Some(base) = base_of(rest)
            {
                return Some((part, base));
            }
        }
    }
    None
}

/// promlint's rules on one family, as `(family, problem)`.
fn lint_family(name: &str, family: &Family, out: &mut Vec<(String, String)>) {
    let mut problem = |text: &str| out.push((name.to_string(), text.to_string()));
    if !family.help {
        problem("no help text");
    }
    let camel = |s: &str| {
        s.as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
    };
    if camel(name) {
        problem("metric names should be written in 'snake_case' not 'camelCase'");
    }
    if family.label_names.iter().any(|l| camel(l)) {
        problem("label names should be written in 'snake_case' not 'camelCase'");
    }
    if let Some((unit, base)) = metric_unit(name)
        && unit != base
    {
        problem(&format!("use base unit {base:?} instead of {unit:?}"));
    }
    if name.contains(':') {
        problem("metric names should not contain ':'");
    }
    let t = family.metric_type.unwrap_or(MetricType::Unknown);
    let is_counter = t == MetricType::Counter;
    if is_counter && !name.ends_with("_total") {
        problem("counter metrics should have \"_total\" suffix");
    }
    if !is_counter && t != MetricType::Unknown && name.ends_with("_total") {
        problem("non-counter metrics should not have \"_total\" suffix");
    }
    for type_name in ["counter", "gauge", "histogram", "summary"] {
        if name.contains(&format!("_{type_name}")) {
            problem(&format!(
                "metric name should not include type '{type_name}'"
            ));
        }
    }
    if t != MetricType::Unknown {
        let histogram = matches!(t, MetricType::Histogram | MetricType::GaugeHistogram);
        let summary = t == MetricType::Summary;
        if !histogram && name.ends_with("_bucket") {
            problem("non-histogram metrics should not have \"_bucket\" suffix");
        }
        if !histogram && !summary && name.ends_with("_count") {
            problem("non-histogram and non-summary metrics should not have \"_count\" suffix");
        }
        if !histogram && !summary && name.ends_with("_sum") {
            problem("non-histogram and non-summary metrics should not have \"_sum\" suffix");
        }
        if !histogram && family.label_names.iter().any(|l| l == "le") {
            problem("non-histogram metrics should not have \"le\" label");
        }
        if !summary && family.label_names.iter().any(|l| l == "quantile") {
            problem("non-summary metrics should not have \"quantile\" label");
        }
    }
}

/// Lints an exposition body; `Err` when it does not parse.
pub fn lint_metrics(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut parser = Parser::new(body, MediaType::PromText);
    let mut typed: Option<String> = None;
    while let Some(entry) = parser.next() {
        match entry.map_err(|e| e.to_string())? {
            Entry::Help { name, .. } => families.entry(name.into_owned()).or_default().help = true,
            Entry::Type { name, metric_type } => {
                families.entry(name.to_string()).or_default().metric_type = Some(metric_type);
                typed = Some(name.into_owned());
            }
            Entry::Unit { .. } | Entry::Histogram { .. } => {}
            Entry::Series { .. } => {
                let family_name = match &typed {
                    Some(t) if parser.in_typed_family() => t.clone(),
                    _ => parser
                        .metric_name()
                        .map_err(|e| e.to_string())?
                        .into_owned(),
                };
                let labels = parser.labels().map_err(|e| e.to_string())?;
                let family = families.entry(family_name).or_default();
                for l in labels.iter().filter(|l| l.name != "__name__") {
                    if !family.label_names.iter().any(|n| n == l.name) {
                        family.label_names.push(l.name.to_string());
                    }
                }
                family.has_series = true;
            }
        }
    }
    let mut problems = Vec::new();
    for (name, family) in &families {
        if !family.has_series && family.metric_type.is_none() {
            continue;
        }
        lint_family(name, family, &mut problems);
    }
    problems.sort();
    Ok(problems)
}

/// `check metrics`: lints the exposition on stdin like promtool (exit 3 on lint problems,
/// 1 when it does not parse).
pub fn check_metrics() -> ExitCode {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("error while reading metrics: {e}");
        return ExitCode::FAILURE;
    }
    match lint_metrics(&body) {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            for (metric, text) in problems {
                eprintln!("{metric} {text}");
            }
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error while linting: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lints_like_promtool() {
        // promtool 2.42 on this body prints exactly these lines.
        let body = b"# HELP foo_bar A.\n# TYPE foo_bar counter\nfoo_bar 1\nBadName 2\nx_seconds_total{le=\"1\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n";
        let got: Vec<String> = lint_metrics(body)
            .unwrap()
            .into_iter()
            .map(|(m, t)| format!("{m} {t}"))
            .collect();
        assert_eq!(
            got,
            vec![
                "BadName metric names should be written in 'snake_case' not 'camelCase'",
                "BadName no help text",
                "foo_bar counter metrics should have \"_total\" suffix",
                "h no help text",
                "x_seconds_total no help text",
            ]
        );
        let clean = b"# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# HELP g G.\n# TYPE g gauge\ng{le=\"1\"} 2\n";
        let got = lint_metrics(clean).unwrap();
        assert_eq!(
            got,
            vec![(
                "g".to_string(),
                "non-histogram metrics should not have \"le\" label".to_string()
            )]
        );
        assert!(lint_metrics(b"a{ 1\n").is_err());
    }

    /// `check config` refuses what a reload refuses, TLS files included.
    #[test]
    fn check_config_builds_the_scrape_clients() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yml");
        let missing = dir.path().join("missing-ca.pem");
        std::fs::write(
            &file,
            format!(
                "scrape_configs:\n  - job_name: a\n    tls_config:\n      ca_file: {}\n",
                missing.display()
            ),
        )
        .unwrap();
        let err = check_config_file(&file).unwrap_err();
        assert!(err.starts_with("unable to load specified CA cert"), "{err}");
        std::fs::write(&file, "scrape_configs:\n  - job_name: a\n").unwrap();
        assert!(check_config_file(&file).is_ok());
    }
}
