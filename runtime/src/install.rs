//! `wdiamond install oci://…` and `wdiamond publish FILE oci://…`: a
//! component taken from, or put into, an OCI registry ([`crate::oci`]),
//! and `wdiamond keygen`, the key pair that signs what is published.

use std::path::Path;

use crate::agent::overlay;
use crate::check::review_one;
use crate::config::{ComponentRef, Config};
use crate::logging::guest_text;
use crate::oci::artifact::About;
use crate::oci::sign::PrivateKey;
use crate::oci::{Access, Reference, Store, Trust};
use crate::plugin::Runtime;

/// Installs `r`: pulled verified into the store, described, and the
/// section to add printed (beside `config`'s section `as_name`, when it
/// has one). Returns the report.
pub fn install(
    runtime: &Runtime,
    r: &Reference,
    access: &Access,
    trust: &Trust,
    store: &Store,
    config: Option<&Config>,
    as_name: Option<&str>,
) -> anyhow::Result<String> {
    let pulled = crate::oci::pull(r, access, trust, store)?;
    let path = store.blob_path(&format!("sha256:{}", pulled.sha256));
    let mut inspection = crate::inspect::inspect(runtime, &path).map_err(anyhow::Error::msg)?;
    inspection.file = pulled.reference.to_string();
    let name = as_name.unwrap_or(&inspection.name).to_string();
    let mut out = format!("installed {}\n", pulled.reference);
    match &pulled.signed_by {
        Some(k) => out.push_str(&format!("  signature verified with {k}\n")),
        None => out.push_str(
            "  NOT signed by a trusted key: installed because its digest is on the allow-list\n",
        ),
    }
    out.push_str(&format!("  stored in {}\n\n", path.display()));
    let text = inspection.text();
    // The report's body is inspect's, minus its closing section (printed
    // below under the chosen name).
    let body = text.split("\nTo run it, pinned").next().unwrap_or(&text);
    out.push_str(body);
    let section = config.and_then(|c| {
        let key = format!("{}s.{name}", inspection.world);
        c.collectors
            .iter()
            .map(|c| &c.plugin)
            .chain(c.handlers.iter().map(|h| &h.plugin))
            .find(|p| p.section == key)
    });
    match section {
        Some(p) => {
            let d = crate::inspect::description(runtime, &path).map_err(anyhow::Error::msg)?;
            let entries = overlay(&d, Vec::new(), &p.options);
            let was = match &p.component {
                ComponentRef::Oci(old) if old == &pulled.reference => {
                    "it already loads this digest".to_string()
                }
                other => format!("it loads {other} now"),
            };
            out.push_str(&format!(
                "\nAgainst [{}] of the configuration ({was}):\n",
                p.section
            ));
            // As if the section loaded the new component.
            let mut as_new = p.clone();
            as_new.component = ComponentRef::Oci(pulled.reference.clone());
            as_new.sha256 = Some(pulled.sha256.clone());
            if let Some((review, _)) = review_one(&as_new, &d, &entries, &p.grants) {
                for l in review.lines().skip(1) {
                    out.push_str(&format!("{l}\n"));
                }
            }
            out.push_str(&format!(
                "\nTo load it, set in [{}]:\n\n  component = \"{}\"\n  sha256 = \"{}\"\n",
                p.section, pulled.reference, pulled.sha256
            ));
        }
        None => {
            out.push_str("\nTo run it (add to the config):\n\n");
            for l in inspection.section_named(&name).lines() {
                out.push_str(&format!("  {}\n", guest_text(l)));
            }
        }
    }
    Ok(out)
}

/// Publishes the component `file` to `r` (a tag), signed with `key` when
/// given. Returns the report.
pub fn publish(
    runtime: &Runtime,
    file: &Path,
    r: &Reference,
    access: &Access,
    key: Option<&Path>,
) -> anyhow::Result<String> {
    if crate::plugin::python::is_script(&file.to_string_lossy()) {
        anyhow::bail!(
            "{}: publish takes a component (.wasm); a Python script is installed as a file",
            file.display()
        );
    }
    let key = key.map(PrivateKey::read).transpose()?;
    let i = crate::inspect::inspect(runtime, file).map_err(anyhow::Error::msg)?;
    let about = About {
        world: i.world.to_string(),
        contract: i.contract.clone(),
        name: i.name.clone(),
        version: i.version.clone(),
        summary: i.summary.clone(),
        options: i
            .options
            .iter()
            .map(|o| format!("{} = {}", o.key, o.default))
            .collect(),
        asks: i
            .capabilities
            .iter()
            .map(|a| format!("{} {}", a.kind, a.value))
            .collect(),
    };
    let wasm = crate::plugin::read_component_file(file)?;
    let pushed = crate::oci::push(r, access, &wasm, &about, key.as_ref())?;
    let by_digest = r.by_digest(&pushed.digest);
    let mut out = format!(
        "published {} ({} {}) to {r}\n  manifest digest {}\n  component sha256 {}\n",
        file.display(),
        guest_text(&i.name),
        guest_text(&i.version),
        pushed.digest,
        i.sha256
    );
    match &pushed.signature {
        Some(tag) => out.push_str(&format!("  signed: {tag} (cosign's format)\n")),
        None => out.push_str(
            "  not signed (--key signs it): installs only where its digest is allowed unsigned\n",
        ),
    }
    out.push_str(&format!(
        "\nInstall it with:\n\n  wdiamond install {by_digest}\n"
    ));
    Ok(out)
}

/// Writes a new key pair, `PREFIX.key` (the private key, mode 0600) and
/// `PREFIX.pub`; never over an existing file.
pub fn keygen(prefix: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (private, public) = crate::oci::sign::generate()?;
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (key, pubkey) = (with(".key"), with(".pub"));
    for p in [&key, &pubkey] {
        if p.exists() {
            anyhow::bail!(
                "{} exists: not overwritten (choose another prefix)",
                p.display()
            );
        }
    }
    let write = |p: &Path, text: &str, mode: u32| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(())
    };
    write(&key, &private, 0o600)?;
    write(&pubkey, &public, 0o644)?;
    Ok(format!(
        "wrote {} (private: sign with `wdiamond publish … --key {}`; keep it secret)\nwrote {} (public: operators list it in [server] trusted_keys)\n",
        key.display(),
        key.display(),
        pubkey.display()
    ))
}
