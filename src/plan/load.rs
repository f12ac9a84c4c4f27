//! Reading Journey manifests from a directory, a git revision of the working repository, or
//! standard input (e.g. `kustomize build` output).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is neither a directory nor a git revision of this repository: {detail}")]
    NotFound { what: String, detail: String },
    #[error("parsing {what}: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Every Journey in `source`, keyed `namespace/name` (namespace `default` when unset).
pub fn journeys(source: &str, repo: &Path) -> Result<Vec<(String, Value)>, LoadError> {
    let documents = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| LoadError::Io {
                what: "standard input".into(),
                source,
            })?;
        vec![("standard input".to_string(), text)]
    } else if Path::new(source).is_dir() {
        from_directory(Path::new(source))?
    } else {
        from_git(source, repo)?
    };
    let mut out = Vec::new();
    for (what, text) in documents {
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).map_err(|source| LoadError::Yaml {
                what: what.clone(),
                source,
            })?;
            collect(value, &mut out);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn collect(value: Value, out: &mut Vec<(String, Value)>) {
    if value.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for item in items {
                collect(item.clone(), out);
            }
        }
        return;
    }
    let is_journey = value.get("kind").and_then(Value::as_str) == Some("Journey")
        && value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("journey.dev/"));
    if !is_journey {
        return;
    }
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    out.push((format!("{namespace}/{name}"), value));
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn from_directory(dir: &Path) -> Result<Vec<(String, String)>, LoadError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Io {
        what: dir.display().to_string(),
        source,
    })?;
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            out.extend(from_directory(&path)?);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_yaml)
        {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                what: path.display().to_string(),
                source,
            })?;
            out.push((path.display().to_string(), text));
        }
    }
    Ok(out)
}

fn git(repo: &Path, args: &[&str]) -> Result<String, LoadError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|source| LoadError::Io {
            what: "git".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(LoadError::NotFound {
            what: args.last().copied().unwrap_or_default().to_string(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn from_git(revision: &str, repo: &Path) -> Result<Vec<(String, String)>, LoadError> {
    let listing = git(repo, &["ls-tree", "-r", "--name-only", revision])?;
    let mut out = Vec::new();
    for path in listing.lines().filter(|p| is_yaml(p)) {
        let text = git(repo, &["show", &format!("{revision}:{path}")])?;
        if text.contains("journey.dev/") {
            out.push((format!("{revision}:{path}"), text));
        }
    }
    Ok(out)
}
