//! Reading kubeconfig files the way kubectl does — several documents per file, the
//! `KUBECONFIG` list merged (first file wins), paths relative to the file made absolute —
//! with the YAML parser the agent already links (`serde_norway`, for sdk-go MQTT
//! configs) instead of kube-rs' own: one YAML parser in the binary, not two (the second
//! cost ~1 MB of a binary meant for small devices; BENCHMARKS.md "Kubernetes target").

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;
use serde::Deserialize;

/// Larger kubeconfigs are refused: the file is read whole into memory.
pub const MAX_KUBECONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Why a kubeconfig could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_KUBECONFIG_BYTES`].
    #[error("{path} is larger than {MAX_KUBECONFIG_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a kubeconfig.
    #[error("{path} is not a valid kubeconfig: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
}

/// `path` relative to `dir` when it is relative; `None` when nothing changes.
fn absolute(dir: &Path, path: &str) -> Option<String> {
    let p = Path::new(path);
    if p.is_relative() {
        dir.join(p).to_str().map(str::to_owned)
    } else {
        None
    }
}

fn make_absolute(field: &mut Option<String>, dir: &Path) {
    if let Some(abs) = field.as_deref().and_then(|p| absolute(dir, p)) {
        *field = Some(abs);
    }
}

/// Files a kubeconfig names relative to itself are relative to its directory (as
/// client-go resolves them); exec commands only when they contain a path separator (a
/// bare name is looked up on `PATH`).
fn resolve_paths(config: &mut Kubeconfig, dir: &Path) {
    for named in &mut config.clusters {
        if let Some(cluster) = &mut named.cluster {
            make_absolute(&mut cluster.certificate_authority, dir);
        }
    }
    for named in &mut config.auth_infos {
        if let Some(auth) = &mut named.auth_info {
            make_absolute(&mut auth.client_certificate, dir);
            make_absolute(&mut auth.client_key, dir);
            make_absolute(&mut auth.token_file, dir);
            if let Some(exec) = &mut auth.exec
                && exec
                    .command
                    .as_deref()
                    .is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
            {
                make_absolute(&mut exec.command, dir);
            }
        }
    }
}

/// Parses kubeconfig text (one or more YAML documents, merged in order).
pub fn parse(text: &str, path: &Path) -> Result<Kubeconfig, KubeconfigFileError> {
    let parse_error = |reason: String| KubeconfigFileError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let mut merged: Option<Kubeconfig> = None;
    for document in serde_norway::Deserializer::from_str(text) {
        let value =
            serde_norway::Value::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        if value.is_null() {
            continue; // an empty document
        }
        let mut config: Kubeconfig =
            serde_norway::from_value(value).map_err(|e| parse_error(e.to_string()))?;
        if let Some(dir) = path.parent() {
            resolve_paths(&mut config, dir);
        }
        merged = Some(match merged {
            Some(m) => m.merge(config).map_err(|e| parse_error(e.to_string()))?,
            None => config,
        });
    }
    Ok(merged.unwrap_or_default())
}

/// Reads one kubeconfig file.
pub fn read(path: &Path) -> Result<Kubeconfig, KubeconfigFileError> {
    let read_error = |source| KubeconfigFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_error)?.len();
    if len > MAX_KUBECONFIG_BYTES {
        return Err(KubeconfigFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    // A UTF-8 byte order mark is allowed, as kubectl allows it.
    let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes));
    parse(&text, path)
}

/// The kubeconfig kubectl would use without `--kubeconfig`: the existing files of the
/// `KUBECONFIG` list merged (earlier files win), else `~/.kube/config` if it exists.
/// `Ok(None)`: neither (the caller tries the in-cluster service account).
pub fn read_default() -> Result<Option<Kubeconfig>, KubeconfigFileError> {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let mut merged: Option<Kubeconfig> = None;
        for path in std::env::split_paths(&list).filter(|p| p.is_file()) {
            let next = read(&path)?;
            merged = Some(match merged {
                Some(m) => m.merge(next).map_err(|e| KubeconfigFileError::Parse {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
                None => next,
            });
        }
        if merged.is_some() {
            return Ok(merged);
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".kube").join("config")) {
        Some(path) if path.is_file() => read(&path).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: a\n  cluster:\n    server: https://a.example:6443\n    certificate-authority: certs/ca.crt\ncontexts:\n- name: a\n  context:\n    cluster: a\n    user: a\nusers:\n- name: a\n  user:\n    client-certificate: /abs/client.crt\n    client-key: key.pem\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n";

    #[test]
    fn relative_files_are_relative_to_the_kubeconfig() {
        let c = parse(ONE, Path::new("/etc/kube/config")).unwrap();
        let cluster = c.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://a.example:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/etc/kube/certs/ca.crt")
        );
        let user = c.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate.as_deref(), Some("/abs/client.crt"));
        assert_eq!(user.client_key.as_deref(), Some("/etc/kube/key.pem"));
        // A bare command is looked up on PATH, not made absolute.
        assert_eq!(user.exec.as_ref().unwrap().command.as_deref(), Some("aws"));
        assert_eq!(c.current_context.as_deref(), Some("a"));
    }

    #[test]
    fn documents_merge_first_wins_and_empty_is_empty() {
        let two = format!(
            "{ONE}---\napiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: b\n  cluster:\n    server: https://b.example\n"
        );
        let c = parse(&two, Path::new("/k")).unwrap();
        assert_eq!(
            c.current_context.as_deref(),
            Some("a"),
            "the first file wins"
        );
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(parse("", Path::new("/k")).unwrap().clusters.len(), 0);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let e = parse("clusters: 5\n", Path::new("/k")).unwrap_err();
        assert!(matches!(e, KubeconfigFileError::Parse { .. }), "{e}");
        let e = parse("a: [", Path::new("/k")).unwrap_err();
        assert!(
            e.to_string().contains("/k is not a valid kubeconfig"),
            "{e}"
        );
        let missing = read(Path::new("/nonexistent/kubeconfig")).unwrap_err();
        assert!(matches!(missing, KubeconfigFileError::Read { .. }));
    }
}
