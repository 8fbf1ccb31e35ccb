//! Who the agent is to a registry: credentials (from the configuration's
//! `[server.registries."HOST"]`, else a docker or containers `config.json`,
//! as `docker login` and `skopeo login` write them, or the credential
//! helper it names) and the registry's `WWW-Authenticate` challenge
//! (Bearer with a token service, or Basic).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use base64::Engine as _;

/// A user name and password for one registry.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (never printed).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization: Basic …` value.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Largest auth file read, bytes.
const MAX_AUTH_FILE: u64 = 1 << 20;

/// Where credentials are looked for when none is configured: the
/// containers' `REGISTRY_AUTH_FILE` and `auth.json`, then docker's.
pub fn default_auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    files.extend(env("REGISTRY_AUTH_FILE"));
    if let Some(run) = env("XDG_RUNTIME_DIR") {
        files.push(run.join("containers/auth.json"));
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        files.push(d.join("config.json"));
    }
    if let Some(h) = env("HOME") {
        files.push(h.join(".docker/config.json"));
    }
    files
}

mod helper;

/// The credentials for `registry` (`host[:port]`) in a docker-format
/// auth file, if it names that registry: its `credHelpers` entry for the
/// registry, else its `auths` entry, else its `credsStore` (a credential
/// helper, given at most `timeout`).
pub fn from_auth_file(
    path: &Path,
    registry: &str,
    timeout: Duration,
) -> anyhow::Result<Option<Credentials>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_AUTH_FILE {
        return Err(anyhow!("{} is larger than 1 MiB", path.display()));
    }
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct File {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
        creds_store: Option<String>,
        #[serde(default)]
        cred_helpers: BTreeMap<String, String>,
    }
    let file: File = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a docker config.json", path.display()))?;
    let bare = |k: &str| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or_default().to_string()
    };
    let via = |name: &str, key: &str| {
        helper::get(name, registry, timeout)
            .with_context(|| format!("{}: the `{key}` credential helper", path.display()))
    };
    if let Some((_, name)) = file.cred_helpers.iter().find(|(k, _)| bare(k) == registry) {
        return via(name, "credHelpers");
    }
    let entry = file.auths.iter().find(|(k, _)| bare(k) == registry);
    let Some(e) = entry
        .map(|(_, e)| e)
        .filter(|e| e.auth.is_some() || e.username.is_some())
    else {
        // `docker login` with a store leaves `{}` under `auths`.
        return match &file.creds_store {
            Some(name) if !name.is_empty() => via(name, "credsStore"),
            _ => Ok(None),
        };
    };
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    let Some(auth) = &e.auth else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| anyhow!("{}: the `auth` of {registry} is not base64", path.display()))?;
    let raw = String::from_utf8(raw)
        .map_err(|_| anyhow!("{}: the `auth` of {registry} is not text", path.display()))?;
    let (u, p) = raw.split_once(':').ok_or_else(|| {
        anyhow!(
            "{}: the `auth` of {registry} is not user:password",
            path.display()
        )
    })?;
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercased).
    pub scheme: String,
    /// Its parameters (`realm`, `service`, `scope`).
    pub params: BTreeMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    // Parameters that do not parse end the list: the scheme still says
    // what is asked.
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let Some(end) = q.find('"') else {
                break;
            };
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), v.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_auth_files_are_read() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.params["realm"].as_str()),
            ("basic", "Registry Realm")
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(&f, r#"{"auths":{"https://127.0.0.1:5000/v1/":{"auth":"YWxpY2U6czNjcmV0"},"other:1":{"username":"u","password":"p"}}}"#).unwrap();
        let t = Duration::from_secs(5);
        let c = from_auth_file(&f, "127.0.0.1:5000", t).unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            from_auth_file(&f, "other:1", t).unwrap().unwrap().password,
            "p"
        );
        assert!(from_auth_file(&f, "nowhere", t).unwrap().is_none());
    }
}
