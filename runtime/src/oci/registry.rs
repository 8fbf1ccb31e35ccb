//! The distribution API a component travels by: a repository's manifests
//! and blobs, read by digest and checked against it, and pushed. One
//! [`Registry`] per repository and operation; it settles the scheme once
//! (HTTPS, or plain HTTP where [`super::http`] allows it) and answers the
//! registry's auth challenge once.

use std::sync::Mutex;

use anyhow::{anyhow, bail, Context};

use super::auth::{parse_challenge, Credentials};
use super::http::{redacted, shown, Request, Response, Transport};
use super::reference::Reference;

/// Largest token answer, bytes.
const MAX_TOKEN: u64 = 64 << 10;
/// Largest error or small answer, bytes.
const MAX_SMALL: u64 = 64 << 10;

/// The manifest types asked for, OCI's first.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Where a registry's credentials come from: asked only when the
/// registry challenges (a public registry never runs a credential helper).
pub type CredentialSource = Box<dyn Fn() -> anyhow::Result<Option<Credentials>> + Send + Sync>;

/// One repository of one registry.
pub struct Registry {
    transport: Transport,
    base: url::Url,
    repository: String,
    source: CredentialSource,
    credentials: std::sync::OnceLock<Option<Credentials>>,
    push: bool,
    authorization: Mutex<Option<String>>,
}

/// A manifest as fetched: its digest (computed), bytes and media type.
pub struct Fetched {
    /// `sha256:…` of the bytes.
    pub digest: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its `Content-Type`.
    pub media_type: Option<String>,
}

/// `sha256:` and the hex of `b`'s SHA-256.
pub fn digest_of(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

impl Registry {
    /// Reaches `r`'s registry: HTTPS, else (on a loopback host or with
    /// `insecure`) plain HTTP, settled by `GET /v2/`.
    pub fn connect(
        r: &Reference,
        transport: Transport,
        source: CredentialSource,
        push: bool,
    ) -> anyhow::Result<Registry> {
        let https = url::Url::parse(&format!("https://{}/", r.registry))
            .with_context(|| format!("{}: not a registry address", r.registry))?;
        let mut reg = Registry {
            transport,
            base: https,
            repository: r.repository.clone(),
            source,
            credentials: std::sync::OnceLock::new(),
            push,
            authorization: Mutex::new(None),
        };
        match reg.ping() {
            Ok(()) => Ok(reg),
            Err(tls) if r.is_loopback() || reg.transport.insecure => {
                reg.base = url::Url::parse(&format!("http://{}/", r.registry))?;
                reg.ping().map_err(|plain| {
                    anyhow!(
                        "{} answers neither over HTTPS ({tls:#}) nor over plain HTTP ({plain:#})",
                        r.registry
                    )
                })?;
                Ok(reg)
            }
            Err(e) => Err(e.context(format!(
                "{reg} over HTTPS (plain HTTP is tried only for this machine's registries, or with [server.registries.\"{reg}\"] insecure = true, or --insecure)",
                reg = r.registry
            ))),
        }
    }

    fn ping(&self) -> anyhow::Result<()> {
        let resp = self.raw("GET", "/v2/", vec![], &[], MAX_SMALL)?;
        match resp.status {
            200 | 401 => Ok(()),
            s => bail!(
                "GET /v2/ answered {s}: not a registry ({})",
                resp.body_excerpt()
            ),
        }
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        max_body: u64,
    ) -> anyhow::Result<Response> {
        let url = self.base.join(path)?;
        self.transport.send(Request {
            method,
            url,
            headers,
            body,
            max_body,
        })
    }

    /// A request with the authorization settled so far; on a 401, the
    /// challenge answered and the request sent once more.
    fn request(
        &self,
        method: &str,
        url: url::Url,
        mut headers: Vec<(String, String)>,
        body: &[u8],
        max_body: u64,
    ) -> anyhow::Result<Response> {
        let with_auth = |headers: &Vec<(String, String)>| {
            let mut h = headers.clone();
            if let Some(a) = self
                .authorization
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                h.push(("Authorization".into(), a));
            }
            h
        };
        let send = |h: Vec<(String, String)>| {
            self.transport.send(Request {
                method,
                url: url.clone(),
                headers: h,
                body,
                max_body,
            })
        };
        let resp = send(with_auth(&headers))?;
        if resp.status != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .header("www-authenticate")
            .and_then(parse_challenge)
            .ok_or_else(|| {
                anyhow!(
                    "{} {}: 401 without a WWW-Authenticate challenge",
                    method,
                    redacted(&url)
                )
            })?;
        let authorization = self.answer(&challenge.scheme, &challenge.params)?;
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(authorization);
        headers = with_auth(&headers);
        let again = send(headers)?;
        if again.status == 401 || again.status == 403 {
            bail!(
                "{} {}: the registry refused the credentials ({}: {})",
                method,
                redacted(&url),
                again.status,
                again.body_excerpt()
            );
        }
        Ok(again)
    }

    /// The credentials, looked up at the first challenge.
    fn credentials(&self) -> anyhow::Result<Option<&Credentials>> {
        if let Some(c) = self.credentials.get() {
            return Ok(c.as_ref());
        }
        let found = (self.source)()?;
        Ok(self.credentials.get_or_init(|| found).as_ref())
    }

    fn no_credentials(&self) -> anyhow::Error {
        let host = self.base.host_str().unwrap_or_default();
        anyhow!("the registry asks for credentials and none is known for {host}: `docker login`/`skopeo login` write them to a config.json read here, or set [server.registries.\"{}\"] username and password",
            &self.base[url::Position::BeforeHost..url::Position::AfterPort])
    }

    fn answer(
        &self,
        scheme: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<String> {
        match scheme {
            "basic" => Ok(self
                .credentials()?
                .ok_or_else(|| self.no_credentials())?
                .basic()),
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| anyhow!("a Bearer challenge without a realm"))?;
                let mut url = url::Url::parse(realm)
                    .map_err(|_| anyhow!("the token realm {} is not a URL", shown(realm)))?;
                let actions = if self.push { "pull,push" } else { "pull" };
                let scope = format!("repository:{}:{actions}", self.repository);
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = params.get("service") {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", &scope);
                }
                let mut headers = Vec::new();
                let credentials = self.credentials()?;
                if let Some(c) = credentials {
                    headers.push(("Authorization".to_string(), c.basic()));
                }
                let resp = self
                    .transport
                    .send(Request {
                        method: "GET",
                        url: url.clone(),
                        headers,
                        body: &[],
                        max_body: MAX_TOKEN,
                    })
                    .context("asking the token service")?;
                if resp.status == 401 || resp.status == 403 {
                    if credentials.is_none() {
                        return Err(self.no_credentials());
                    }
                    bail!(
                        "the token service {} refused the credentials ({})",
                        redacted(&url),
                        resp.status
                    );
                }
                if resp.status != 200 {
                    bail!(
                        "the token service {} answered {}",
                        redacted(&url),
                        resp.status
                    );
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&resp.body).map_err(|_| {
                    anyhow!("the token service's answer is not a token (JSON with `token`)")
                })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or_else(|| anyhow!("the token service's answer holds no usable token"))?;
                Ok(format!("Bearer {token}"))
            }
            s => bail!(
                "the registry asks for an authentication scheme wdiamond does not speak ({})",
                shown(s)
            ),
        }
    }

    fn url(&self, tail: &str) -> anyhow::Result<url::Url> {
        Ok(self.base.join(&format!("/v2/{}/{tail}", self.repository))?)
    }

    /// The manifest `key` (a tag or a digest), at most `max` bytes, with
    /// its digest computed from its bytes; a digest the registry names
    /// (`Docker-Content-Digest`) must be that one. `Ok(None)`: 404.
    pub fn manifest(&self, key: &str, max: u64) -> anyhow::Result<Option<Fetched>> {
        let resp = self.request(
            "GET",
            self.url(&format!("manifests/{key}"))?,
            vec![("Accept".into(), ACCEPT.into())],
            &[],
            max,
        )?;
        match resp.status {
            200 => {}
            404 => return Ok(None),
            s => bail!(
                "the manifest {key}: the registry answered {s} ({})",
                resp.body_excerpt()
            ),
        }
        let digest = digest_of(&resp.body);
        if let Some(named) = resp.header("docker-content-digest") {
            if named != digest {
                bail!(
                    "the manifest {key}: the registry says its digest is {}, but its bytes' digest is {digest}; refused",
                    shown(named)
                );
            }
        }
        if key.starts_with("sha256:") && key != digest {
            bail!("the manifest asked for by {key} has the digest {digest}; refused");
        }
        let media_type = resp.header("content-type").map(str::to_string);
        Ok(Some(Fetched {
            digest,
            bytes: resp.body,
            media_type,
        }))
    }

    /// The blob `digest`, which must be `size` bytes (at most `max`) and
    /// hash to `digest`.
    pub fn blob(&self, digest: &str, size: u64, max: u64) -> anyhow::Result<Vec<u8>> {
        if size > max {
            bail!("the blob {digest} is {size} bytes, more than the {max} allowed");
        }
        let resp = self.request(
            "GET",
            self.url(&format!("blobs/{digest}"))?,
            vec![],
            &[],
            size,
        )?;
        if resp.status != 200 {
            bail!(
                "the blob {digest}: the registry answered {} ({})",
                resp.status,
                resp.body_excerpt()
            );
        }
        if resp.body.len() as u64 != size {
            bail!(
                "the blob {digest} is {} bytes, its manifest says {size}; refused",
                resp.body.len()
            );
        }
        let got = digest_of(&resp.body);
        if got != digest {
            bail!(
                "the blob {digest} has the digest {got}: it was tampered with or damaged; refused"
            );
        }
        Ok(resp.body)
    }

    /// Pushes `bytes` as a blob (skipped when the registry has it).
    pub fn push_blob(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = digest_of(bytes);
        let head = self.request(
            "HEAD",
            self.url(&format!("blobs/{digest}"))?,
            vec![],
            &[],
            0,
        )?;
        if head.status == 200 {
            return Ok(digest);
        }
        let start = self.request("POST", self.url("blobs/uploads/")?, vec![], &[], MAX_SMALL)?;
        if start.status != 202 {
            bail!(
                "starting an upload: the registry answered {} ({})",
                start.status,
                start.body_excerpt()
            );
        }
        let location = start
            .header("location")
            .ok_or_else(|| anyhow!("starting an upload: no Location in the answer"))?;
        let mut put = start.url.join(location)?;
        put.query_pairs_mut().append_pair("digest", &digest);
        let done = self.request(
            "PUT",
            put,
            vec![("Content-Type".into(), "application/octet-stream".into())],
            bytes,
            MAX_SMALL,
        )?;
        if done.status != 201 {
            bail!(
                "uploading {digest}: the registry answered {} ({})",
                done.status,
                done.body_excerpt()
            );
        }
        Ok(digest)
    }

    /// Pushes a manifest under `tag`; returns its digest.
    pub fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> anyhow::Result<String> {
        let resp = self.request(
            "PUT",
            self.url(&format!("manifests/{tag}"))?,
            vec![("Content-Type".into(), media_type.into())],
            bytes,
            MAX_SMALL,
        )?;
        if resp.status != 201 {
            bail!(
                "pushing the manifest {tag}: the registry answered {} ({})",
                resp.status,
                resp.body_excerpt()
            );
        }
        Ok(digest_of(bytes))
    }
}
