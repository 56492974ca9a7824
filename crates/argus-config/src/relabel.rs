//! `relabel_configs` entries (the engine that applies them lives in `argus-scrape`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

fn default_separator() -> String {
    ";".into()
}
fn default_regex() -> String {
    "(.*)".into()
}
/// `regex:` with no value means the default, as in Prometheus.
fn null_regex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(default_regex))
}

fn default_replacement() -> String {
    "$1".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_regex", deserialize_with = "null_regex")]
    pub regex: String,
    #[serde(default)]
    pub modulus: u64,
    #[serde(default)]
    pub target_label: String,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: RelabelAction,
}

impl RelabelConfig {
    /// Prometheus's `relabel.Config.Validate` checks, after the regex (which Prometheus compiles
    /// while decoding the YAML, so a bad one is reported first, in Go's words).
    pub fn validate(&self) -> Result<(), String> {
        use RelabelAction::*;
        argus_model::regex_go::compile_wrapped(&self.regex).map_err(|e| e.to_string())?;
        let action = format!("{:?}", self.action).to_lowercase();
        if self.modulus == 0 && self.action == HashMod {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            self.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && self.target_label.is_empty()
        {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        if matches!(self.action, KeepEqual | DropEqual)
            && (self.regex != default_regex()
                || self.modulus != 0
                || self.separator != default_separator()
                || self.replacement != default_replacement())
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(self.action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != default_separator()
                || self.replacement != default_replacement())
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}
