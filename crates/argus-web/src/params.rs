//! Request parameters from the query string and, for POST, a form body — multi-valued keys
//! such as `match[]` included — and their Prometheus parsing rules.

use argus_model::Matcher;

use crate::api::ApiError;

#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Params {
    /// Parses `a=1&b=2` pairs and appends them.
    pub fn extend_from_urlencoded(&mut self, text: &str) {
        for part in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            self.0.push((decode(k), decode(v)));
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `time` or a `start`/`end` of a lookup (series, labels, exemplars): missing means
    /// `default`. A bad value is refused as Prometheus's `parseTimeParam` words it, which
    /// `query_range`'s own `start`/`end` (read by [`crate::query::range_params`]) do not use.
    pub fn time(&self, key: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => argus_model::time::parse_api_time(v).map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{key}\": invalid time value for '{key}': cannot parse \"{v}\" to a valid timestamp"
                ))
            }),
        }
    }

    /// `match[]` selectors, each parsed (by the PromQL parser, as Prometheus does) into
    /// matchers; a set whose matchers all match the empty string is refused. The error is
    /// Prometheus's `parseMatchersParam` message, which `/api/v1/series` prefixes with the
    /// parameter's name ([`Self::matchers`]) and the label endpoints report as it is.
    pub fn matcher_sets(&self) -> Result<Vec<Vec<Matcher>>, String> {
        let sets = self
            .get_all("match[]")
            .into_iter()
            .map(|s| argus_promql::parse_metric_selector(s).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if sets.iter().any(|set| set.iter().all(|m| m.matches_empty())) {
            return Err("match[] must contain at least one non-empty matcher".into());
        }
        Ok(sets)
    }

    /// [`Self::matcher_sets`], refused as `invalid parameter "match[]": …`.
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.matcher_sets()
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))
    }

    /// `limit` (Prometheus's `parseLimitParam`): 0 or missing means no limit.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let invalid = |e: String| ApiError::bad_data(format!("invalid parameter \"limit\": {e}"));
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(n as usize),
                Ok(_) => Err(invalid("limit must be non-negative".into())),
                Err(e) => Err(invalid(format!(
                    "strconv.Atoi: parsing {}: {}",
                    argus_model::gofmt::quote(v),
                    if matches!(
                        e.kind(),
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                    ) {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    }
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_selectors() {
        let mut p = Params::default();
        p.extend_from_urlencoded(
            "match[]=up%7Bjob%3D%22a%22%2Cx%3D~%27b.*%27%7D&match[]=%7B%22my.metric%22%7D",
        );
        let sets = p.matchers().unwrap();
        let shown: Vec<String> = sets[0].iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, vec![r#"__name__="up""#, r#"job="a""#, r#"x=~"b.*""#]);
        assert_eq!(sets[1][0].to_string(), r#"__name__="my.metric""#);
        for bad in [
            "%7Ba%3D%22%22%7D",
            "up%20%2B%201",
            "up%7B",
            "rate(x%5B5m%5D)",
        ] {
            let mut p = Params::default();
            p.extend_from_urlencoded(&format!("match[]={bad}"));
            let err = p.matchers().unwrap_err();
            assert!(
                err.message.starts_with("invalid parameter \"match[]\""),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn urlencoded_pairs() {
        let mut p = Params::default();
        p.extend_from_urlencoded("match%5B%5D=up%7Bjob%3D%22a%22%7D&match[]=b+c&x=%zz&y=%4");
        assert_eq!(p.get_all("match[]"), vec!["up{job=\"a\"}", "b c"]);
        assert_eq!(p.get("x"), Some("%zz"));
        assert_eq!(p.get("y"), Some("%4"));
    }
}
