//! The contract a component was built against: which world it implements
//! (read from what it exports) and which version of the WIT package
//! `wdiamond:plugin` (the plugin ABI), checked against this agent's before
//! anything of it runs.
//!
//! The rule (semver, as the README states it): a component built against
//! an older version of the same major loads; a major bump (for `0.x`, a
//! minor bump) breaks the ABI and is refused; a component built against a
//! newer contract than the agent's is refused too (it may call what this
//! agent does not have).

use std::fmt;
use std::sync::OnceLock;

use wasmtime::component::Component;

/// The WIT package every plugin interface belongs to.
pub const PACKAGE: &str = "wdiamond:plugin";

/// A `major.minor.patch` version of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Breaking changes (while 0: the minor is the breaking part).
    pub major: u64,
    /// Additions.
    pub minor: u64,
    /// Fixes and documentation.
    pub patch: u64,
}

impl Version {
    /// Parses `1.2.3` (a pre-release or build suffix is not a contract
    /// version).
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.split('.').map(|p| {
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse().ok()
            }
        });
        let v = Version {
            major: it.next()??,
            minor: it.next()??,
            patch: it.next()??,
        };
        it.next().is_none().then_some(v)
    }

    /// Why a plugin built against `self` cannot run on an agent of `host`,
    /// or `None` when it can.
    pub fn incompatibility(self, host: Version) -> Option<&'static str> {
        let track = |v: Version| {
            if v.major == 0 {
                (0, v.minor)
            } else {
                (v.major, 0)
            }
        };
        if track(self) != track(host) {
            Some("a different major version of the contract (for 0.x: a different minor) is a different ABI; rebuild the plugin against this agent's SDK (`wdiamond new` writes it)")
        } else if self > host {
            Some("the plugin is newer than this agent and may call what it does not have; upgrade wdiamond")
        } else {
            None
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// This agent's contract version: the `package` line of `wit/wdiamond.wit`.
pub fn host_version() -> Version {
    static V: OnceLock<Version> = OnceLock::new();
    *V.get_or_init(|| {
        let wit = include_str!("../../../wit/wdiamond.wit");
        wit.lines()
            .find_map(|l| l.trim().strip_prefix("package wdiamond:plugin@"))
            .and_then(|v| Version::parse(v.trim_end_matches(';')))
            .expect("wit/wdiamond.wit declares `package wdiamond:plugin@X.Y.Z;`")
    })
}

/// What a component says about its contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// `collector` or `handler`.
    pub world: &'static str,
    /// The contract version it was built against.
    pub version: Version,
    /// Every import, as named in the component (WASI's too).
    pub imports: Vec<String>,
    /// Every export.
    pub exports: Vec<String>,
    /// Whether it is an exporter: a handler that also exports
    /// `exposition` (the page the host serves for it).
    pub serves: bool,
}

/// Whether a compiled component exports `exposition` (of a version this
/// agent can call: the lookup follows semver, as the linker's does).
pub fn exports_exposition(component: &Component) -> bool {
    component
        .get_export_index(None, format!("{PACKAGE}/exposition@{}", host_version()))
        .is_some()
}

/// Why a component cannot be loaded as a plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContractError {
    /// It exports neither plugin interface.
    #[error("it is not a wdiamond plugin: it exports neither `{PACKAGE}/collector` nor `{PACKAGE}/handler` (its exports: {0})")]
    NotAPlugin(String),
    /// It exports both, or the interfaces of two versions.
    #[error("it exports {0}: a plugin implements exactly one world")]
    Ambiguous(String),
    /// It implements the other world.
    #[error("it is a {found} component, but a {wanted} is configured here (a {found} goes in a [{found}s.NAME] section)")]
    WrongWorld {
        /// What it is.
        found: &'static str,
        /// What the section needs.
        wanted: &'static str,
    },
    /// Its contract version cannot run on this agent.
    #[error("it was built against contract {PACKAGE}@{plugin}, and this agent implements {PACKAGE}@{host}: {why}")]
    Incompatible {
        /// The plugin's contract.
        plugin: Version,
        /// The agent's.
        host: Version,
        /// Which rule it breaks.
        why: &'static str,
    },
}

/// The name's `wdiamond:plugin/IFACE@VERSION` parts.
fn plugin_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Reads the contract of a compiled component.
pub fn read(component: &Component) -> Result<Contract, ContractError> {
    let ty = component.component_type();
    let engine = component.engine();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let worlds: Vec<(&'static str, &str)> = exports
        .iter()
        .filter_map(|e| plugin_interface(e))
        .filter_map(|(iface, v)| match iface {
            "collector" => Some(("collector", v)),
            "handler" => Some(("handler", v)),
            _ => None,
        })
        .collect();
    let shown = |l: &[String]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let (world, version) = match worlds.as_slice() {
        [] => return Err(ContractError::NotAPlugin(shown(&exports))),
        [one] => *one,
        _ => {
            let both: Vec<String> = worlds
                .iter()
                .map(|(w, v)| format!("{PACKAGE}/{w}@{v}"))
                .collect();
            return Err(ContractError::Ambiguous(both.join(" and ")));
        }
    };
    let serves = exports
        .iter()
        .filter_map(|e| plugin_interface(e))
        .any(|(iface, _)| iface == "exposition");
    if serves && world != "handler" {
        return Err(ContractError::Ambiguous(format!(
            "{PACKAGE}/{world} and {PACKAGE}/exposition (only a handler can be an exporter)"
        )));
    }
    let host = host_version();
    let version = Version::parse(version).ok_or(ContractError::Incompatible {
        plugin: Version {
            major: u64::MAX,
            minor: 0,
            patch: 0,
        },
        host,
        why: "its version is not major.minor.patch",
    })?;
    // Every contract interface it imports or exports must be of a loadable
    // version too (a component could mix them).
    for (_, v) in imports
        .iter()
        .chain(exports.iter())
        .filter_map(|i| plugin_interface(i))
    {
        let v = Version::parse(v).unwrap_or(Version {
            major: u64::MAX,
            minor: 0,
            patch: 0,
        });
        if let Some(why) = v.incompatibility(host) {
            return Err(ContractError::Incompatible {
                plugin: v,
                host,
                why,
            });
        }
    }
    if let Some(why) = version.incompatibility(host) {
        return Err(ContractError::Incompatible {
            plugin: version,
            host,
            why,
        });
    }
    Ok(Contract {
        world,
        version,
        imports,
        exports,
        serves,
    })
}

impl Contract {
    /// Checks that the component implements world `wanted`.
    pub fn expect(&self, wanted: &'static str) -> Result<(), ContractError> {
        if self.world == wanted {
            Ok(())
        } else {
            Err(ContractError::WrongWorld {
                found: self.world,
                wanted,
            })
        }
    }
}

/// What a file's first bytes say it is, before any compiler sees it: an
/// error for anything but a component.
pub fn check_component_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(
            "it is not a WebAssembly file (it does not start with the `\\0asm` header)".into(),
        );
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err("it is a core WebAssembly module, not a component: build the plugin for `wasm32-wasip2` (its output is a component), or wrap a module with `wasm-tools component new`".into()),
        _ => Err("it is a WebAssembly file of an unknown version or layer, not a component".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            v("0.1.3"),
            Version {
                major: 0,
                minor: 1,
                patch: 3
            }
        );
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3-rc1",
            "01.2.3 ",
            "-1.0.0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_compatibility_rule() {
        // 0.x: the minor is the breaking part.
        assert_eq!(v("0.1.0").incompatibility(v("0.1.2")), None);
        assert_eq!(v("0.1.1").incompatibility(v("0.1.2")), None);
        assert_eq!(v("0.1.2").incompatibility(v("0.1.2")), None);
        assert!(v("0.1.3").incompatibility(v("0.1.2")).is_some());
        assert!(v("0.2.0").incompatibility(v("0.1.2")).is_some());
        assert!(v("0.0.9").incompatibility(v("0.1.2")).is_some());
        assert!(v("1.0.0").incompatibility(v("0.1.2")).is_some());
        // From 1.0: same major, not newer.
        assert_eq!(v("1.0.3").incompatibility(v("1.2.0")), None);
        assert!(v("1.3.0").incompatibility(v("1.2.0")).is_some());
        assert!(v("2.0.0").incompatibility(v("1.2.0")).is_some());
    }

    #[test]
    fn the_host_version_is_the_wit_package() {
        let wit = include_str!("../../../wit/wdiamond.wit");
        assert!(wit.contains(&format!("package wdiamond:plugin@{};", host_version())));
    }

    #[test]
    fn file_kinds() {
        assert!(check_component_bytes(b"\0asm\x0d\0\x01\0rest").is_ok());
        let core = check_component_bytes(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(core.contains("core WebAssembly module"), "{core}");
        let junk = check_component_bytes(b"#!/bin/sh\necho").unwrap_err();
        assert!(junk.contains("not a WebAssembly file"), "{junk}");
        assert!(check_component_bytes(b"").is_err());
    }
}
