//! Relabeling, exactly as Prometheus applies `relabel_configs`: one engine for targets,
//! scraped samples (`metric_relabel_configs`), and later alerts and remote write.
//!
//! Regexes are Go RE2 patterns, anchored (`^(?s:RE)$`), translated by
//! `argus_model::regex_go`; `$1`, `${1}`, `$name` in `target_label` and `replacement` expand
//! like Go's `Regexp.Expand` (Rust's `Captures::expand` reads `$1x` as the group `1x`, as Go
//! does).

use argus_config::relabel::{RelabelAction, RelabelConfig};
use argus_model::{Labels, LabelsBuilder};
use regex::Regex;

use crate::error::{Error, Result};

/// A relabel rule with its regex compiled.
#[derive(Debug, Clone)]
pub struct Relabel {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    default_regex: bool,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: RelabelAction,
}

impl Relabel {
    pub fn compile(config: &RelabelConfig) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let regex = argus_model::regex_go::compile_wrapped(&config.regex)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            source_labels: config.source_labels.clone(),
            separator: config.separator.clone(),
            regex,
            default_regex: config.regex == "(.*)",
            modulus: config.modulus,
            target_label: config.target_label.clone(),
            replacement: config.replacement.clone(),
            action: config.action,
        })
    }

    pub fn compile_all(configs: &[RelabelConfig]) -> Result<Vec<Self>> {
        configs.iter().map(Self::compile).collect()
    }

    /// Applies this rule; false when the label set is to be dropped.
    pub fn apply(&self, builder: &mut LabelsBuilder) -> bool {
        let value = if self.source_labels.len() == 1 {
            builder
                .get(&self.source_labels[0])
                .unwrap_or("")
                .to_string()
        } else {
            let values: Vec<&str> = self
                .source_labels
                .iter()
                .map(|name| builder.get(name).unwrap_or(""))
                .collect();
            values.join(&self.separator)
        };
        match self.action {
            RelabelAction::Drop => {
                if self.regex.is_match(&value) {
                    return false;
                }
            }
            RelabelAction::Keep => {
                if !self.regex.is_match(&value) {
                    return false;
                }
            }
            RelabelAction::DropEqual => {
                if builder.get(&self.target_label).unwrap_or("") == value {
                    return false;
                }
            }
            RelabelAction::KeepEqual => {
                if builder.get(&self.target_label).unwrap_or("") != value {
                    return false;
                }
            }
            RelabelAction::Replace => {
                // Prometheus's fast path: set (or delete) a constant.
                if value.is_empty()
                    && self.default_regex
                    && !self.target_label.contains('$')
                    && !self.replacement.contains('$')
                {
                    builder.set(&self.target_label, &self.replacement);
                    return true;
                }
                let Some(captures) = self.regex.captures(&value) else {
                    return true;
                };
                let mut target = String::new();
                argus_model::regex_go::expand(&captures, &self.target_label, &mut target);
                if target.is_empty() {
                    return true;
                }
                let mut result = String::new();
                argus_model::regex_go::expand(&captures, &self.replacement, &mut result);
                // An empty result deletes the label (set with "" does).
                builder.set(&target, &result);
            }
            RelabelAction::Lowercase => {
                builder.set(&self.target_label, &value.to_lowercase());
            }
            RelabelAction::Uppercase => {
                builder.set(&self.target_label, &value.to_uppercase());
            }
            RelabelAction::HashMod => {
                use md5::Digest;
                let digest = md5::Md5::digest(value.as_bytes());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&digest[8..16]);
                let modulo = u64::from_be_bytes(tail) % self.modulus.max(1);
                builder.set(&self.target_label, &modulo.to_string());
            }
            RelabelAction::LabelMap => {
                for (name, label_value) in builder_pairs(builder) {
                    if self.regex.is_match(&name) {
                        let new_name = self.regex.replace_all(&name, self.replacement.as_str());
                        builder.set(&new_name, &label_value);
                    }
                }
            }
            RelabelAction::LabelDrop => {
                for (name, _) in builder_pairs(builder) {
                    if self.regex.is_match(&name) {
                        builder.delete(&name);
                    }
                }
            }
            RelabelAction::LabelKeep => {
                for (name, _) in builder_pairs(builder) {
                    if !self.regex.is_match(&name) {
                        builder.delete(&name);
                    }
                }
            }
        }
        true
    }
}

/// A snapshot of the builder's pairs (the map and drop actions edit while they walk).
fn builder_pairs(builder: &LabelsBuilder) -> Vec<(String, String)> {
    builder
        .pairs()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Applies every rule in order; `None` when one of them drops the set.
pub fn process(labels: &Labels, rules: &[Relabel]) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels.clone());
    }
    let mut builder = labels.to_builder();
    process_builder(&mut builder, rules).then(|| builder.build())
}

/// Like [`process`], on a builder; false when the set is dropped.
pub fn process_builder(builder: &mut LabelsBuilder, rules: &[Relabel]) -> bool {
    rules.iter().all(|rule| rule.apply(builder))
}

#[cfg(test)]
mod tests;
