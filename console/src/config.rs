//! The config file (TOML, `~/.config/baddybugs/console.toml` unless `--config`): defaults for
//! the command-line options and key bindings. Command-line flags and the environment win.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A key binding: one key or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Keys {
    One(String),
    Many(Vec<String>),
}

/// The file's contents; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) url: Option<String>,
    /// Every node's feed URL, to watch a fleet (`--url` given on the command line wins).
    pub(crate) fleet: Vec<String>,
    pub(crate) token: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) log_file: Option<PathBuf>,
    pub(crate) save_dir: Option<PathBuf>,
    pub(crate) ascii: Option<bool>,
    /// Action name → key(s), e.g. `freeze = "f"`.
    pub(crate) keys: BTreeMap<String, Keys>,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty config only when it is the default path.
    pub(crate) fn load(path: &Path, explicit: bool) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub(crate) fn key_overrides(&self) -> BTreeMap<String, Vec<String>> {
        self.keys
            .iter()
            .map(|(k, v)| {
                let list = match v {
                    Keys::One(s) => vec![s.clone()],
                    Keys::Many(l) => l.clone(),
                };
                (k.clone(), list)
            })
            .collect()
    }
}

/// `$HOME/<rest>`, when HOME is set.
pub(crate) fn home_path(rest: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rest))
}

/// The feed token from `<data_dir>/dev-credentials.json`.
pub(crate) fn token_from_data_dir(dir: &Path) -> Result<String, String> {
    let path = dir.join("dev-credentials.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    v.get("feed_token")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} has no feed_token", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_rejects_unknown_fields() {
        let c: FileConfig = toml::from_str(
            "url = \"ws://h:1/v1/feed\"\nascii = true\n[keys]\nfreeze = \"f\"\nquit = [\"q\", \"x\"]\n",
        )
        .unwrap();
        assert_eq!(c.url.as_deref(), Some("ws://h:1/v1/feed"));
        let o = c.key_overrides();
        assert_eq!(o["freeze"], vec!["f"]);
        assert_eq!(o["quit"], vec!["q", "x"]);
        assert!(toml::from_str::<FileConfig>("colour = 1").is_err());
    }

    #[test]
    fn missing_default_file_is_empty_but_explicit_is_an_error() {
        let p = Path::new("/nonexistent/console.toml");
        assert!(FileConfig::load(p, false).is_ok());
        assert!(FileConfig::load(p, true).is_err());
    }

    #[test]
    fn token_from_dev_credentials() {
        let dir = std::env::temp_dir().join(format!("bbc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("dev-credentials.json"),
            r#"{"api_key":"k","feed_token":"ft"}"#,
        )
        .unwrap();
        assert_eq!(token_from_data_dir(&dir).unwrap(), "ft");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(token_from_data_dir(Path::new("/nonexistent")).is_err());
    }
}
