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
            ExitCode::from(super::EX_CONFIG)
        })
    })
    .transpose()
}

/// `wdiamond publish FILE oci://HOST/REPO:TAG [--key KEY]`.
pub fn publish(
    file: &std::path::Path,
    to: &str,
    key: Option<&std::path::Path>,
    args: &RegistryArgs,
) -> Result<ExitCode, ExitCode> {
    let r = reference(to)?;
    let runtime = super::runtime(&wdiamond::config::default_cache_dir())?;
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let report = wdiamond::install::publish(&runtime, &file, &r, &args.access(None, &r), key)
        .map_err(failed)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// What `install` is told besides the reference.
pub struct InstallArgs<'a> {
    /// `--config`.
    pub config: Option<&'a std::path::Path>,
    /// `--as`.
    pub as_name: Option<&'a str>,
    /// `--trusted-key`.
    pub trusted_keys: &'a [PathBuf],
    /// `--allow-unsigned`.
    pub allow_unsigned: &'a [String],
}

/// `wdiamond install oci://… [--config C] [--as NAME] …`.
pub fn install(what: &str, i: InstallArgs<'_>, args: &RegistryArgs) -> Result<ExitCode, ExitCode> {
    let r = reference(what)?;
    for d in i.allow_unsigned {
        if !wdiamond::oci::reference::digest_ok(d) {
            eprintln!("error: --allow-unsigned {d:?}: a manifest digest (sha256: and 64 lowercase hex digits) is needed, not a tag");
            return Err(ExitCode::from(2));
        }
    }
    let config = config(i.config)?;
    let oci = config.as_ref().map(|c| c.server.oci.clone()).unwrap_or_default();
    let cache = config
        .as_ref()
        .map(|c| c.server.plugin_cache_dir.clone())
        .unwrap_or_else(wdiamond::config::default_cache_dir);
    let trust = Trust::load(&oci, i.trusted_keys, i.allow_unsigned).map_err(failed)?;
    let runtime = super::runtime(&cache)?;
    let report = wdiamond::install::install(
        &runtime,
        &r,
        &args.access(config.as_ref(), &r),
        &trust,
        &Store::new(&cache),
        config.as_ref(),
        i.as_name,
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
        eprintln!("error: [{section}] component: pulling it (pull = \"missing\"): {}", redact(e));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ExitCode::FAILURE)
    }
}
