//! The `publish`, `install` and `keygen` commands: their arguments
//! resolved once and handed to [`wdiamond::install`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use wdiamond::config::{Config, RegistryConfig};
use wdiamond::oci::{Access, Reference, Store, Trust};
use wdiamond::redact::redact;

/// How to reach the registry (beside `[server.registries."HOST"]` of
/// `--config`, which these override).
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Trust these CAs (PEM) for the registry's TLS instead of the system's.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for the registry's TLS.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// A docker `config.json` holding the registry's credentials (default:
    /// $REGISTRY_AUTH_FILE, containers' auth.json, $DOCKER_CONFIG,
    /// ~/.docker/config.json).
    #[arg(long)]
    auth_file: Option<PathBuf>,
    /// Seconds the whole transfer may take.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

impl RegistryArgs {
    fn access(&self, config: Option<&Config>, r: &Reference) -> Access {
        let mut registry: RegistryConfig = config
            .and_then(|c| c.server.oci.registries.get(&r.registry).cloned())
            .unwrap_or_default();
        if self.tls_ca.is_some() {
            registry.tls.ca = self.tls_ca.clone();
        }
        if self.tls_cert.is_some() {
            registry.tls.cert = self.tls_cert.clone();
            registry.tls.key = self.tls_key.clone();
        }
        if self.auth_file.is_some() {
            registry.auth_file = self.auth_file.clone();
        }
        registry.insecure |= self.insecure;
        Access {
            registry,
            timeout: Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0)),
        }
    }
}

fn reference(s: &str) -> Result<Reference, ExitCode> {
    Reference::parse(s).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn failed(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {}", redact(&format!("{e:#}")));
    ExitCode::FAILURE
}

fn config(path: Option<&std::path::Path>) -> Result<Option<Config>, ExitCode> {
    path.map(|p| {
        wdiamond::config::load(p).map_err(|e| {
            eprint!("{e}");
            ExitCode::from(crate::EX_CONFIG)
        })
    })
    .transpose()
}

/// `wdiamond publish`'s arguments.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The component file.
    file: PathBuf,
    /// Where: oci://HOST[:PORT]/REPOSITORY:TAG.
    to: String,
    /// Sign with this private key (PEM PKCS#8, P-256: `wdiamond keygen`;
    /// or cosign's encrypted `cosign.key`, its password in COSIGN_PASSWORD).
    #[arg(long)]
    key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `wdiamond publish FILE oci://HOST/REPO:TAG [--key KEY]`.
pub fn publish(a: &PublishArgs) -> Result<ExitCode, ExitCode> {
    let r = reference(&a.to)?;
    let runtime = crate::runtime(&wdiamond::config::default_cache_dir())?;
    let file = std::fs::canonicalize(&a.file).unwrap_or_else(|_| a.file.clone());
    let report = wdiamond::install::publish(
        &runtime,
        &file,
        &r,
        &a.registry.access(None, &r),
        a.key.as_deref(),
    )
    .map_err(failed)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `wdiamond install`'s arguments.
#[derive(clap::Args)]
pub struct InstallArgs {
    /// oci://HOST[:PORT]/REPOSITORY:TAG or …@sha256:DIGEST.
    reference: String,
    /// The configuration: its trusted keys, registries and plugin cache,
    /// and the section the report compares against.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The section's name (default: the component's own).
    #[arg(long = "as")]
    as_name: Option<String>,
    /// Trust this public key (PEM) besides `[server] trusted_keys`.
    #[arg(long)]
    trusted_key: Vec<PathBuf>,
    /// Install this manifest digest even unsigned or signed by no trusted
    /// key.
    #[arg(long)]
    allow_unsigned: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `wdiamond install oci://… [--config C] [--as NAME] …`.
pub fn install(i: &InstallArgs) -> Result<ExitCode, ExitCode> {
    let r = reference(&i.reference)?;
    for d in &i.allow_unsigned {
        if !wdiamond::oci::reference::digest_ok(d) {
            eprintln!("error: --allow-unsigned {d:?}: a manifest digest (sha256: and 64 lowercase hex digits) is needed, not a tag");
            return Err(ExitCode::from(2));
        }
    }
    let config = config(i.config.as_deref())?;
    let oci = config
        .as_ref()
        .map(|c| c.server.oci.clone())
        .unwrap_or_default();
    let cache = config
        .as_ref()
        .map(|c| c.server.plugin_cache_dir.clone())
        .unwrap_or_else(wdiamond::config::default_cache_dir);
    let trust = Trust::load(&oci, &i.trusted_key, &i.allow_unsigned).map_err(failed)?;
    let runtime = crate::runtime(&cache)?;
    let report = wdiamond::install::install(
        &runtime,
        &r,
        &i.registry.access(config.as_ref(), &r),
        &trust,
        &Store::new(&cache),
        config.as_ref(),
        i.as_name.as_deref(),
    )
    .map_err(failed)?;
    print!("{}", redact(&report));
    Ok(ExitCode::SUCCESS)
}

/// `wdiamond keygen [PREFIX]`.
pub fn keygen(prefix: &std::path::Path) -> Result<ExitCode, ExitCode> {
    let report = wdiamond::install::keygen(prefix).map_err(failed)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `[server] pull = "missing"`: what the configuration names from
/// registries and the store lacks, pulled (verified) before loading.
pub fn pull_missing(config: &Config) -> Result<(), ExitCode> {
    if config.server.oci.pull != wdiamond::config::Pull::Missing {
        return Ok(());
    }
    let wanted: Vec<(String, Reference)> = config
        .collectors
        .iter()
        .map(|c| &c.plugin)
        .chain(config.handlers.iter().map(|h| &h.plugin))
        .filter_map(|p| match &p.component {
            wdiamond::config::ComponentRef::Oci(r) => Some((p.section.clone(), r.clone())),
            _ => None,
        })
        .collect();
    let failed = wdiamond::oci::transfer::pull_missing(
        &wanted,
        &config.server.oci,
        &Store::new(&config.server.plugin_cache_dir),
        Duration::from_secs(120),
    );
    for (section, e) in &failed {
        eprintln!(
            "error: [{section}] component: pulling it (pull = \"missing\"): {}",
            redact(e)
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ExitCode::FAILURE)
    }
}
