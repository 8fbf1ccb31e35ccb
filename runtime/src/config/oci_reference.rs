//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`: where a component
//! is in a registry, parsed and checked once (the distribution spec's
//! grammar for repositories, tags and digests). A configuration value (a
//! `component`), so it lives here; [`crate::oci`] re-exports it as
//! `oci::reference`.

use std::fmt;

/// A component's place in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, as written (a bracketed IPv6 address stays bracketed).
    pub registry: String,
    /// The repository (`team/collector`).
    pub repository: String,
    /// The tag, when one was given.
    pub tag: Option<String>,
    /// `sha256:` and 64 lowercase hex digits, when one was given.
    pub digest: Option<String>,
}

/// Longest reference accepted, bytes.
const MAX_REFERENCE: usize = 512;

fn repository_ok(r: &str) -> bool {
    // path-component ::= [a-z0-9]+ (separator [a-z0-9]+)*,
    // separator ::= [_.] | __ | [-]*
    !r.is_empty()
        && r.len() <= 255
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
                && !c.contains("..")
                && !c.contains("___")
        })
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `d` is `sha256:` and 64 lowercase hex digits.
pub fn digest_ok(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn registry_ok(h: &str) -> bool {
    let (host, port) = split_port(h);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    port_ok && host_ok
}

/// `host[:port]` split (a bracketed IPv6 host keeps its brackets).
pub fn split_port(h: &str) -> (&str, Option<&str>) {
    match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], Some(&h[i + 1..])),
        _ => (h, None),
    }
}

impl Reference {
    /// Parses `oci://…`; the error says what is wrong and how it is written.
    pub fn parse(s: &str) -> Result<Reference, String> {
        const FORM: &str = "written oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]";
        if s.len() > MAX_REFERENCE {
            return Err(format!("a reference is at most {MAX_REFERENCE} bytes"));
        }
        let rest = s
            .strip_prefix("oci://")
            .ok_or_else(|| format!("{s:?} is not an OCI reference ({FORM})"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{s:?} names no repository ({FORM})"))?;
        if !registry_ok(registry) {
            return Err(format!(
                "{registry:?} is not a registry host[:port] ({FORM})"
            ));
        }
        let (name, digest) = match path.split_once('@') {
            Some((n, d)) => {
                let d = d.to_string();
                if !digest_ok(&d) {
                    return Err(format!(
                        "{d:?} is not a digest: sha256: and 64 lowercase hex digits"
                    ));
                }
                (n, Some(d))
            }
            None => (path, None),
        };
        // A tag's `:` comes after the last `/`.
        let (repository, tag) = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
            _ => (name, None),
        };
        if !repository_ok(repository) {
            return Err(format!(
                "{repository:?} is not a repository name (lowercase letters, digits, `.`, `_`, `-`, `/` between parts)"
            ));
        }
        if let Some(t) = &tag {
            if !tag_ok(t) {
                return Err(format!(
                    "{t:?} is not a tag (letters, digits, `_`, `.`, `-`; at most 128)"
                ));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(format!("{s:?} names neither a tag nor a digest ({FORM})"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What a manifest is fetched by: the digest if there is one, else the tag.
    pub fn manifest_key(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same place, by `digest` (and without a tag): what a
    /// configuration names.
    pub fn by_digest(&self, digest: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// `host[:port]/repository`: cosign's `docker-reference`.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is this machine (plain HTTP is allowed there).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(split_port(&self.registry).0)
    }
}

/// Whether `host` (a name or an address, IPv6 bracketed) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_and_print_back() {
        let r = Reference::parse("oci://127.0.0.1:5000/team/loadavg:1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/loadavg");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/team/loadavg:1.0");
        let d = Reference::parse(&format!("oci://registry.example.com/x@{D}")).unwrap();
        assert_eq!(d.digest.as_deref(), Some(D));
        assert_eq!(d.manifest_key(), D);
        assert!(!d.is_loopback());
        let v6 = Reference::parse("oci://[::1]:5000/x:latest").unwrap();
        assert!(v6.is_loopback());
        assert_eq!(split_port("[::1]:5000"), ("[::1]", Some("5000")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
    }

    #[test]
    fn bad_references_are_refused_with_the_form() {
        for bad in [
            "docker://x/y:1",
            "oci://host",
            "oci://host/Repo:1",
            "oci://host/repo",
            "oci://host/repo:bad tag",
            "oci://host/repo@sha256:abc",
            "oci://host:99999/repo:1",
            "oci://ho_st/repo:1",
            "oci://host/re//po:1",
            "oci://host/../etc:1",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(Reference::parse(&format!("oci://h/{}:1", "a".repeat(600))).is_err());
    }
}
