//! Composition: the defaults list (group options and extended experiment
//! files) layered with figment in order, the file's own keys last, then the
//! command-line overrides, interpolation, and the typed schema.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Source};

use super::interpolate::interpolate;
use super::overrides::{Override, OverrideKind, OverrideValue};
use super::provider::OverrideProvider;
use super::schema::{schema_keys, Config};
use super::suggest::nearest_key;
use super::sweep_value::SweepSpec;
use super::ConfigError;

/// A composed, resolved and validated configuration with where it came from.
#[derive(Clone, Debug)]
pub struct Composed {
    pub config: Config,
    /// The files layered, in order (the experiment file last).
    pub files: Vec<PathBuf>,
    /// The overrides as given, normalised.
    pub overrides: Vec<String>,
    /// Sweep axes from the command line (only when sweeps were allowed).
    pub sweeps: Vec<(String, SweepSpec)>,
}

impl Composed {
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.config).expect("a Config always serialises to TOML")
    }
}

/// Composes `file` with `overrides`. Sweep values are refused unless
/// `allow_sweeps`, in which case they are returned in `Composed::sweeps` and
/// the configuration is composed without them.
pub fn compose(
    file: &Path,
    overrides: &[Override],
    allow_sweeps: bool,
) -> Result<Composed, ConfigError> {
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut sweeps = Vec::new();
    let mut groups = GroupChoices::default();
    let mut key_overrides = Vec::new();
    for o in overrides {
        if let Some(OverrideValue::Sweep(spec)) = &o.value {
            if !allow_sweeps {
                return Err(ConfigError::SweepOutsideSweep {
                    text: o.to_string(),
                });
            }
            sweeps.push((o.key.clone(), spec.clone()));
            continue;
        }
        if is_group(&root, &o.key) {
            groups.take(o)?;
        } else {
            key_overrides.push(o);
        }
    }

    let mut layers = collect_layers(file, &root, &groups, false)?;
    if let Some(missing) = groups.unused_swap(&layers.used) {
        match missing.kind {
            OverrideKind::Upsert => layers = collect_layers(file, &root, &groups, true)?,
            _ => {
                return Err(ConfigError::GroupNotInDefaults {
                    group: missing.key.clone(),
                    text: missing.to_string(),
                })
            }
        }
    }

    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    for layer in &layers.files {
        figment = figment.merge(Toml::file_exact(layer));
    }
    let mut deletions = Vec::new();
    let known = schema_keys();
    for o in key_overrides {
        let text = o.to_string();
        if o.key == "defaults" {
            return Err(ConfigError::BadOverride {
                text,
                why: "`defaults` cannot be overridden; swap groups with group=option".into(),
            });
        }
        let set_in = file_setting(&figment, &o.key);
        match o.kind {
            OverrideKind::Set if !figment.contains(&o.key) && !known.contains(&o.key) => {
                return Err(ConfigError::UnknownOverrideKey {
                    text,
                    key: o.key.clone(),
                    suggestion: nearest_key(&o.key),
                });
            }
            OverrideKind::Add if set_in.is_some() => {
                return Err(ConfigError::AlreadySet {
                    text,
                    key: o.key.clone(),
                    file: set_in.unwrap_or_default(),
                });
            }
            OverrideKind::Delete => {
                if !figment.contains(&o.key) {
                    return Err(ConfigError::DeleteMissing { key: o.key.clone() });
                }
                deletions.push(o.key.clone());
                continue;
            }
            _ => {}
        }
        let value = o
            .plain_value()?
            .cloned()
            .expect("only deletions lack a value");
        figment = figment.merge(OverrideProvider {
            key: o.key.clone(),
            value,
            text,
        });
    }

    let mut table: toml::Table = figment.extract().map_err(|e| ConfigError::BadOverride {
        text: "(composition)".into(),
        why: e.to_string(),
    })?;
    table.remove("defaults");
    // A deleted key falls back to the schema's default, which interpolation may use.
    let schema_defaults: toml::Table =
        toml::Table::try_from(Config::default()).expect("the schema serialises to TOML");
    for key in &deletions {
        remove_path(&mut table, key);
        if let Some(default) = find_path(&schema_defaults, key) {
            set_path(&mut table, key, default.clone());
        }
    }
    interpolate(&mut table)?;
    let mut config: Config = Figment::from(Serialized::defaults(&table))
        .extract()
        .map_err(|e| typed_error(e, &figment))?;
    if file_setting(&figment, "name").is_none() && !overrides.iter().any(|o| o.key == "name") {
        if let Some(stem) = file.file_stem() {
            config.name = stem.to_string_lossy().into_owned();
        }
    }
    config.validate()?;
    Ok(Composed {
        config,
        files: layers.files,
        overrides: overrides
            .iter()
            .filter(|o| !matches!(o.value, Some(OverrideValue::Sweep(_))))
            .map(Override::to_string)
            .collect(),
        sweeps,
    })
}

fn is_group(root: &Path, key: &str) -> bool {
    !key.contains('.') && root.join(key).is_dir()
}

/// The file that sets `key`, if a file (not the schema or an override) does.
fn file_setting(figment: &Figment, key: &str) -> Option<String> {
    match &figment.find_metadata(key)?.source {
        Some(Source::File(path)) => Some(path.display().to_string()),
        _ => None,
    }
}

fn source_name(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(m) => match &m.source {
            Some(Source::File(path)) => path.display().to_string(),
            _ => m.name.to_string(),
        },
        None => "the config".into(),
    }
}

fn find_path<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((head, rest)) => find_path(table.get(head)?.as_table()?, rest),
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = table
                .entry(head.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

fn remove_path(table: &mut toml::Table, key: &str) {
    match key.split_once('.') {
        None => {
            table.remove(key);
        }
        Some((head, rest)) => {
            if let Some(toml::Value::Table(t)) = table.get_mut(head) {
                remove_path(t, rest);
            }
        }
    }
}

/// Turns a serde error from the typed extraction into one naming key and source.
fn typed_error(e: figment::Error, provenance: &Figment) -> ConfigError {
    use figment::error::Kind;
    let path = e.path.join(".");
    // figment's path sometimes already ends with the offending field.
    let join = |leaf: &str| {
        if path.is_empty() {
            leaf.to_string()
        } else if e.path.last().is_some_and(|l| l == leaf) {
            path.clone()
        } else {
            format!("{path}.{leaf}")
        }
    };
    match &e.kind {
        Kind::UnknownField(found, _) => {
            let key = join(found);
            ConfigError::UnknownKey {
                source_name: source_name(provenance, &key),
                suggestion: nearest_key(&key),
                key,
            }
        }
        Kind::InvalidType(actual, expected) => ConfigError::WrongType {
            source_name: source_name(provenance, &path),
            key: path,
            expected: humanize_expected(expected),
            found: actual.to_string(),
        },
        Kind::UnknownVariant(found, expected) => ConfigError::InvalidValue {
            key: path,
            value: format!("\"{found}\""),
            why: format!("expected one of {}", expected.join(", ")),
        },
        Kind::InvalidValue(actual, expected) => ConfigError::InvalidValue {
            key: path,
            value: actual.to_string(),
            why: format!("expected {}", humanize_expected(expected)),
        },
        other => ConfigError::InvalidValue {
            key: path,
            value: String::new(),
            why: other.to_string(),
        },
    }
}

fn humanize_expected(expected: &str) -> String {
    match expected {
        "u8" => "a non-negative integer up to 255".into(),
        "u16" => "a non-negative integer up to 65535".into(),
        "u32" => format!("a non-negative integer up to {}", u32::MAX),
        "u64" | "usize" => format!("a non-negative integer up to {}", u64::MAX),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        s if s.starts_with("struct ") || s == "a map" => "a table".into(),
        s => s.to_string(),
    }
}

/// Group options chosen on the command line.
#[derive(Default)]
struct GroupChoices {
    /// group → (option, the override that chose it)
    swaps: BTreeMap<String, (String, Override)>,
    /// `+group=option`: appended to the experiment file's defaults.
    appended: Vec<String>,
    /// `~group`: dropped from the defaults.
    removed: BTreeSet<String>,
}

impl GroupChoices {
    fn take(&mut self, o: &Override) -> Result<(), ConfigError> {
        if o.kind == OverrideKind::Delete {
            self.removed.insert(o.key.clone());
            return Ok(());
        }
        let option = match o.plain_value()? {
            Some(toml::Value::String(s)) => s.clone(),
            _ => {
                return Err(ConfigError::BadOverride {
                    text: o.to_string(),
                    why: format!("`{}` is a config group: give an option name", o.key),
                })
            }
        };
        match o.kind {
            OverrideKind::Add => self.appended.push(format!("{}/{option}", o.key)),
            _ => {
                self.swaps.insert(o.key.clone(), (option, o.clone()));
            }
        }
        Ok(())
    }

    fn unused_swap(&self, used: &BTreeSet<String>) -> Option<&Override> {
        self.swaps
            .iter()
            .find(|(g, _)| !used.contains(*g))
            .map(|(_, (_, o))| o)
    }
}

struct Layers {
    files: Vec<PathBuf>,
    /// Groups met in the defaults lists.
    used: BTreeSet<String>,
}

fn collect_layers(
    file: &Path,
    root: &Path,
    groups: &GroupChoices,
    append_unused: bool,
) -> Result<Layers, ConfigError> {
    let mut extra = groups.appended.clone();
    if append_unused {
        // Groups only met when the tree is walked; walk once to learn them.
        let probe = collect_layers(file, root, groups, false)?;
        for (g, (option, _)) in &groups.swaps {
            if !probe.used.contains(g) {
                extra.push(format!("{g}/{option}"));
            }
        }
    }
    let mut walker = Walker {
        root,
        groups,
        stack: Vec::new(),
        done: HashMap::new(),
        used: BTreeSet::new(),
    };
    let files = walker.visit(file, None, &extra)?;
    Ok(Layers {
        files,
        used: walker.used,
    })
}

/// How deep defaults may include files that include files.
const MAX_DEPTH: usize = 64;

struct Walker<'a> {
    root: &'a Path,
    groups: &'a GroupChoices,
    stack: Vec<(PathBuf, String)>,
    /// Each file already walked → its layers (a file included from many
    /// places is read and walked once).
    done: HashMap<PathBuf, Vec<PathBuf>>,
    used: BTreeSet<String>,
}

/// Keeps the last of each repeated layer: layering a file again re-sets its
/// keys, so only its last place decides them (and a diamond of defaults
/// stays as long as its distinct files, not 2^depth).
fn last_of_each(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut kept: Vec<PathBuf> = files
        .into_iter()
        .rev()
        .filter(|f| seen.insert(f.clone()))
        .collect();
    kept.reverse();
    kept
}

impl Walker<'_> {
    /// The layers of `path`: its defaults' layers, then itself.
    fn visit(
        &mut self,
        path: &Path,
        from: Option<&Path>,
        extra: &[String],
    ) -> Result<Vec<PathBuf>, ConfigError> {
        let canonical = path.canonicalize().map_err(|_| ConfigError::MissingFile {
            path: path.to_path_buf(),
            included_from: from.map(Path::to_path_buf),
        })?;
        if let Some(pos) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let mut chain: Vec<String> = self.stack[pos..].iter().map(|(_, s)| s.clone()).collect();
            chain.push(path.display().to_string());
            return Err(ConfigError::DefaultsCycle { chain });
        }
        if extra.is_empty() {
            if let Some(files) = self.done.get(&canonical) {
                return Ok(files.clone());
            }
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(ConfigError::DefaultsTooDeep {
                path: path.to_path_buf(),
                max: MAX_DEPTH,
            });
        }
        let table = read_toml(path)?;
        let mut entries = match table.get("defaults") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ConfigError::BadDefaults {
                    path: path.to_path_buf(),
                })?,
            Some(_) => {
                return Err(ConfigError::BadDefaults {
                    path: path.to_path_buf(),
                })
            }
        };
        entries.extend_from_slice(extra);
        self.stack
            .push((canonical.clone(), path.display().to_string()));
        let mut files = Vec::new();
        for entry in &entries {
            if let Some(child) = self.resolve(path, entry)? {
                files.extend(self.visit(&child, Some(path), &[])?);
            }
        }
        self.stack.pop();
        files.push(path.to_path_buf());
        let files = last_of_each(files);
        if extra.is_empty() {
            self.done.insert(canonical, files.clone());
        }
        Ok(files)
    }

    /// A defaults entry → the file it names (None for a removed group).
    fn resolve(&mut self, from: &Path, entry: &str) -> Result<Option<PathBuf>, ConfigError> {
        let group_entry = entry.split_once('/').filter(|_| !entry.ends_with(".toml"));
        let Some((group, option)) = group_entry else {
            let name = if entry.ends_with(".toml") {
                entry.to_string()
            } else {
                format!("{entry}.toml")
            };
            let dir = from.parent().unwrap_or(Path::new(""));
            return Ok(Some(dir.join(name)));
        };
        if self.groups.removed.contains(group) {
            return Ok(None);
        }
        let dir = self.root.join(group);
        if !dir.is_dir() {
            return Err(ConfigError::UnknownGroup {
                group: group.to_string(),
                root: if self.root.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    self.root.to_path_buf()
                },
                available: list_dir(self.root, |p| p.is_dir()),
            });
        }
        self.used.insert(group.to_string());
        let option = match self.groups.swaps.get(group) {
            Some((chosen, _)) => chosen.as_str(),
            None => option,
        };
        let file = dir.join(format!("{option}.toml"));
        if !file.is_file() {
            return Err(ConfigError::UnknownGroupOption {
                group: group.to_string(),
                option: option.to_string(),
                available: list_dir(&dir, |p| p.extension().is_some_and(|e| e == "toml")),
            });
        }
        Ok(Some(file))
    }
}

/// Reads and parses a TOML file; syntax errors carry file:line:column.
pub(crate) fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ConfigError::MissingFile {
            path: path.to_path_buf(),
            included_from: None,
        },
        _ => ConfigError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    toml::from_str(&text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })
}

fn list_dir(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}
