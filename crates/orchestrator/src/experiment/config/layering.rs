//! How a config is resolved: the preset, the `--config` file, `--set KEY=VALUE` overrides,
//! merged as TOML tables (later wins), parsed strictly (unknown keys and wrong types are errors
//! naming the source, line and field) and validated; how a run folder's `config.toml` is read
//! back; and which experiment-defining fields two configs differ in.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ExperimentConfig, Preset};

impl ExperimentConfig {
    /// The resolved config as TOML text (what `<run>/config.toml` holds).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// Differences in the experiment-defining fields (all but `name` and `[runtime]`):
    /// `(dotted key, value in self, value in other)`, sorted by key.
    pub fn experiment_differences(
        &self,
        other: &Self,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let a = flatten(&experiment_value(self)?);
        let b = flatten(&experiment_value(other)?);
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        let absent = || "(absent)".to_string();
        Ok(keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                (
                    k.clone(),
                    a.get(k).cloned().unwrap_or_else(absent),
                    b.get(k).cloned().unwrap_or_else(absent),
                )
            })
            .collect())
    }
}

fn experiment_value(c: &ExperimentConfig) -> anyhow::Result<toml::Value> {
    let mut v = toml::Value::try_from(c)?;
    if let Some(t) = v.as_table_mut() {
        t.remove("runtime");
        t.remove("name");
    }
    Ok(v)
}

fn flatten(v: &toml::Value) -> BTreeMap<String, String> {
    fn go(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    go(&key, x, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    go("", v, &mut out);
    out
}

/// Deep-merges `overlay` into `base` (tables merge key by key; anything else replaces).
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Parses TOML text as a (partial) experiment config, so that unknown keys and wrong types
/// are reported with the file's line and column and the field's name.
fn check_partial(text: &str, source_name: &str) -> anyhow::Result<toml::Table> {
    if let Err(e) = toml::from_str::<ExperimentConfig>(text) {
        return Err(crate::error::UsageError(format!(
            "{source_name}: {}",
            one_line(&e.to_string())
        ))
        .into());
    }
    toml::from_str::<toml::Table>(text).map_err(|e| {
        crate::error::UsageError(format!("{source_name}: {}", one_line(&e.to_string()))).into()
    })
}

/// Joins a multi-line parser message into one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "|").collect::<Vec<_>>().join(" ")
}

/// Builds a one-key TOML document `a.b.c = value` from `a.b.c=value` (the value as TOML; a
/// bare word that is not valid TOML is taken as a string).
fn set_to_table(assignment: &str) -> anyhow::Result<toml::Table> {
    let (key, value) = assignment.split_once('=').ok_or_else(|| {
        crate::error::UsageError(format!(
            "--set {assignment:?}: expected KEY=VALUE, e.g. training.epochs=3"
        ))
    })?;
    let key = key.trim();
    let value = value.trim();
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let mut parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(
            crate::error::UsageError(format!("--set {assignment:?}: empty key segment")).into()
        );
    }
    let last = parts.pop().unwrap_or_default();
    let mut leaf = toml::Table::new();
    leaf.insert(last.to_string(), parsed);
    for p in parts.into_iter().rev() {
        let mut t = toml::Table::new();
        t.insert(p.to_string(), toml::Value::Table(leaf));
        leaf = t;
    }
    let text = toml::to_string(&leaf)?;
    check_partial(&text, &format!("--set {assignment}"))
}

/// Resolves preset + file + `--set` overrides into a validated config.
pub fn resolve(
    preset: Preset,
    file: Option<&Path>,
    sets: &[String],
) -> anyhow::Result<ExperimentConfig> {
    let mut table = toml::Table::try_from(preset.config())?;
    let mut sources = vec![format!("preset {preset:?}").to_lowercase()];
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::error::UsageError(format!(
                "{}: cannot read the config file: {e}",
                path.display()
            ))
        })?;
        merge(&mut table, check_partial(&text, &path.display().to_string())?);
        sources.push(path.display().to_string());
    }
    for s in sets {
        merge(&mut table, set_to_table(s)?);
        sources.push(format!("--set {s}"));
    }
    let config: ExperimentConfig =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            crate::error::UsageError(format!(
                "{}: {}",
                sources.join(" + "),
                one_line(&e.to_string())
            ))
        })?;
    config.validate().map_err(|mut e| {
        e.source_name = sources.join(" + ");
        crate::error::UsageError(e.to_string())
    })?;
    Ok(config)
}

/// Reads a run folder's `config.toml` (strictly: it must parse as a full config).
pub fn read_resolved(path: &Path) -> anyhow::Result<ExperimentConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::UsageError(format!("{}: cannot read: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        crate::error::UsageError(format!("{}: {}", path.display(), one_line(&e.to_string()))).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        for preset in [Preset::Default, Preset::Paper, Preset::Tiny] {
            let c = preset.config();
            c.validate().unwrap();
            let text = c.to_toml().unwrap();
            let back: ExperimentConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, c, "{preset:?}");
        }
    }

    #[test]
    fn spectrum_epochs_of_the_default_are_the_published_fractions() {
        assert_eq!(ExperimentConfig::default().spectrum_epochs(), vec![0, 1, 2, 5, 10]);
        assert_eq!(Preset::Tiny.config().spectrum_epochs(), vec![0, 1, 2]);
    }

    #[test]
    fn set_overrides_nested_fields_and_rejects_unknown_ones() {
        let c =
            resolve(Preset::Tiny, None, &["training.epochs=3".into(), "name=x".into()]).unwrap();
        assert_eq!(c.training.epochs, 3);
        assert_eq!(c.name, "x");
        let e = resolve(Preset::Tiny, None, &["training.epoch=3".into()]).unwrap_err().to_string();
        assert!(e.contains("--set training.epoch=3") && e.contains("epoch"), "{e}");
        let e = resolve(Preset::Tiny, None, &["training.epochs=0".into()]).unwrap_err().to_string();
        assert!(e.contains("training.epochs") && e.contains("got 0"), "{e}");
        let e = resolve(Preset::Tiny, None, &["runtime.device=\"tpu:0\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtime.device") && e.contains("tpu:0"), "{e}");
        let c = resolve(Preset::Tiny, None, &["runtime.device=\"cuda:1\"".into()]).unwrap();
        assert_eq!(c.runtime.device, "cuda:1");
    }

    #[test]
    fn differences_ignore_runtime_and_name() {
        let a = ExperimentConfig::default();
        let mut b = a.clone();
        b.runtime.workers = 7;
        b.name = "other".into();
        assert!(a.experiment_differences(&b).unwrap().is_empty());
        b.training.epochs = 3;
        let d = a.experiment_differences(&b).unwrap();
        assert_eq!(d, vec![("training.epochs".into(), "10".into(), "3".into())]);
    }
}
