//! What a plugin may touch outside its sandbox: typed, deny-by-default
//! allow-lists, parsed once when the config is loaded.
//!
//! Every check returns `Err(Denial)` whose message names the exact config
//! line that would allow the call, e.g.
//! `add "/proc/diskstats" to [collectors.diskusage.grants] files`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// A refused host call: the text tells the operator what to add.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} is not granted: add {suggestion} to [{section}.grants] {key}")]
pub struct Denial {
    /// What was asked, e.g. `reading /etc/shadow`.
    pub what: String,
    /// The value to add, quoted as TOML.
    pub suggestion: String,
    /// The plugin's config section, e.g. `collectors.cpu`.
    pub section: String,
    /// The grants key, e.g. `files`.
    pub key: &'static str,
}

/// One argv pattern of `grants.commands`: the program by absolute path,
/// then one glob per argument (`*` matches one argument, a trailing `**`
/// any number of further arguments).
///
/// The program may be a glob itself (`/etc/diamond/user_scripts/*`: any
/// file in that directory): then `*` never crosses `/`, and the program
/// must exist as a regular file whose real path (symlinks resolved)
/// matches too, so a link out of the directory is not a way out.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandGrant {
    program: String,
    /// `program` as a path glob, when it has glob characters.
    program_glob: Option<ArgPattern>,
    args: Vec<ArgPattern>,
    rest: bool,
}

impl CommandGrant {
    /// The program, by absolute path.
    pub fn program(&self) -> &str {
        &self.program
    }

    fn admits_program(&self, program: &str) -> bool {
        match &self.program_glob {
            None => program == self.program,
            Some(glob) => {
                std::fs::metadata(program).is_ok_and(|m| m.is_file()) && glob.matches(program)
            }
        }
    }
}

/// One argument pattern; a path-like one (starting with `/`) also in the
/// form its literal leading directories canonicalise to.
#[derive(Debug, Clone, PartialEq)]
struct ArgPattern {
    pattern: Pattern,
    canonical: Option<Pattern>,
}

impl ArgPattern {
    fn path_like(&self) -> bool {
        self.pattern.as_str().starts_with('/')
    }

    /// For a path-like pattern, `*` never crosses `/`, the argument must be
    /// an absolute path without `..`, and if it exists, what it resolves to
    /// must match too. A plain pattern matches as a plain glob.
    fn matches(&self, arg: &str) -> bool {
        if !self.path_like() {
            // A plain pattern (`*`: any one argument) is not a path.
            return self.pattern.matches(arg);
        }
        if !self.pattern.matches_with(arg, MATCH) {
            return false;
        }
        let p = Path::new(arg);
        if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        match std::fs::canonicalize(p) {
            Ok(real) => {
                self.pattern.matches_path_with(&real, MATCH)
                    || self
                        .canonical
                        .as_ref()
                        .is_some_and(|c| c.matches_path_with(&real, MATCH))
            }
            Err(_) => true,
        }
    }
}

/// One entry of `grants.connect`.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketGrant {
    /// `tcp:` or `udp:` to a host (name, address or CIDR) and port (or `*`).
    Net {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// Where to.
        host: HostPattern,
        /// Port, or any.
        port: Option<u16>,
    },
    /// `unix:/path` (a glob; `*` never crosses `/`).
    Unix(Pattern),
}

/// The host part of a socket grant.
#[derive(Debug, Clone, PartialEq)]
pub enum HostPattern {
    /// A name, resolved only when it is asked for.
    Name(String),
    /// An address range.
    Cidr(IpAddr, u8),
}

/// Everything one plugin may do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// The plugin's config section, for denial messages.
    pub section: String,
    /// Readable paths (`grants.files`).
    pub files: Vec<Pattern>,
    /// Paths allowed for statvfs (`grants.statvfs`).
    pub statvfs: Vec<Pattern>,
    /// Commands (`grants.commands`).
    pub commands: Vec<CommandGrant>,
    /// Sockets (`grants.connect`).
    pub connect: Vec<SocketGrant>,
    /// Directories preopened read-write (`grants.directories`).
    pub directories: Vec<PathBuf>,
    /// Addresses the host may serve an exporter's page on
    /// (`grants.listen`).
    pub listen: Vec<SocketAddr>,
    /// The user (uid, gid) commands run as (`grants.run_as`).
    pub run_as: Option<(u32, u32)>,
}

fn in_cidr(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a4| in_cidr(IpAddr::V4(a4), net, bits)),
        _ => false,
    }
}

/// The name a /proc path is granted under: `/proc/<our pid>/...` is
/// `/proc/self/...`, and the kernel's links `/proc/net` and `/proc/mounts`
/// (into `/proc/self`) are granted as `/proc/net/...` and `/proc/mounts`.
/// So `/proc/net/dev` still matches its grant after canonicalisation,
/// while `/proc/1/...` does not.
fn proc_alias(path: &Path) -> PathBuf {
    static OWN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| Path::new("/proc").join(std::process::id().to_string()));
    let path = match path.strip_prefix(own) {
        Ok(rest) => Path::new("/proc/self").join(rest),
        Err(_) => path.to_path_buf(),
    };
    if let Ok(rest) = path.strip_prefix("/proc/self/net") {
        return Path::new("/proc/net").join(rest);
    }
    if path == Path::new("/proc/self/mounts") {
        return PathBuf::from("/proc/mounts");
    }
    path
}

mod parse;

pub use parse::{
    canonical_variant, lookup_user, parse_command, parse_listen, parse_path_glob, parse_socket,
};

impl Grants {
    fn matches(patterns: &[Pattern], path: &Path) -> bool {
        let alt = proc_alias(path);
        patterns
            .iter()
            .any(|p| p.matches_path_with(path, MATCH) || p.matches_path_with(&alt, MATCH))
    }

    fn deny(&self, what: String, suggestion: String, key: &'static str) -> Denial {
        Denial {
            what,
            suggestion,
            section: self.section.clone(),
            key,
        }
    }

    /// Checks that `requested` (as the guest wrote it) and `canonical` (what
    /// was opened, symlinks resolved, relative to the real root) are both
    /// granted for reading. A directory may also be listed (`dir`) when it
    /// is one whose entries a grant can match: the parent of what a glob
    /// names, or the directory above a wildcard component (`/sys/block` and
    /// `/sys/block/sda` for `/sys/block/*/stat`; never `/` or `/sys`).
    pub fn check_read(&self, requested: &Path, canonical: &Path, dir: bool) -> Result<(), Denial> {
        let ok = |p: &Path| {
            Self::matches(&self.files, p)
                || (dir
                    && self
                        .files
                        .iter()
                        .any(|g| listable(g, p) || listable(g, &proc_alias(p))))
        };
        if ok(requested) && ok(canonical) {
            Ok(())
        } else {
            let shown = if ok(requested) { canonical } else { requested };
            Err(self.deny(
                format!("reading {}", shown.display()),
                format!("{:?}", shown.display().to_string()),
                "files",
            ))
        }
    }

    /// Checks a file that only an exact grant reaches (a FIFO, a device, a
    /// secret under /proc): some `files` entry must be its path, written
    /// without wildcards, as requested and as opened.
    pub fn check_exact(&self, requested: &Path, opened: &Path, why: &str) -> Result<(), Denial> {
        let exact = |p: &Path| {
            let alt = proc_alias(p);
            self.files.iter().any(|g| {
                !g.as_str().contains(['*', '?', '['])
                    && (Path::new(g.as_str()) == p || Path::new(g.as_str()) == alt)
            })
        };
        if exact(requested) && exact(opened) {
            return Ok(());
        }
        let shown = if exact(requested) { opened } else { requested };
        Err(self.deny(
            format!(
                "reading {} ({why}; wildcards do not grant it)",
                shown.display()
            ),
            format!("{:?}", shown.display().to_string()),
            "files",
        ))
    }

    /// Checks a statvfs call on `path`.
    pub fn check_statvfs(&self, path: &Path) -> Result<(), Denial> {
        if Self::matches(&self.statvfs, path) {
            Ok(())
        } else {
            Err(self.deny(
                format!("statvfs of {}", path.display()),
                format!("{:?}", path.display().to_string()),
                "statvfs",
            ))
        }
    }

    /// Checks a command's argv against `grants.commands`.
    pub fn check_command(&self, argv: &[String]) -> Result<(), Denial> {
        let allowed = self.commands.iter().any(|g| {
            let Some((program, args)) = argv.split_first() else {
                return false;
            };
            if !g.admits_program(program)
                || args.len() < g.args.len()
                || (!g.rest && args.len() != g.args.len())
            {
                return false;
            }
            g.args.iter().zip(args).all(|(p, a)| p.matches(a))
        });
        if allowed {
            Ok(())
        } else {
            Err(self.deny(format!("running {argv:?}"), format!("{argv:?}"), "commands"))
        }
    }

    /// Checks a connection before name resolution: is `host` named by a
    /// grant, or might it be inside a granted range?
    pub fn check_connect_name(&self, proto: &str, host: &str, port: u16) -> Result<(), Denial> {
        let host_l = host.to_ascii_lowercase();
        let literal: Option<IpAddr> = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok();
        let ok = self.connect.iter().any(|g| match g {
            SocketGrant::Net {
                proto: p,
                host: h,
                port: gp,
            } => {
                *p == proto
                    && gp.is_none_or(|gp| gp == port)
                    && match (h, literal) {
                        (HostPattern::Name(n), None) => *n == host_l,
                        (HostPattern::Cidr(net, bits), Some(a)) => in_cidr(a, *net, *bits),
                        _ => false,
                    }
            }
            SocketGrant::Unix(_) => false,
        });
        if ok {
            Ok(())
        } else {
            let h = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            Err(self.deny(
                format!("connecting to {proto}:{h}:{port}"),
                format!("\"{proto}:{h}:{port}\""),
                "connect",
            ))
        }
    }

    /// Checks a resolved address for a name that was granted: any address
    /// a granted name resolves to is allowed.
    pub fn check_connect_addr(
        &self,
        proto: &str,
        name: &str,
        addr: SocketAddr,
    ) -> Result<(), Denial> {
        if self.check_connect_name(proto, name, addr.port()).is_ok() {
            return Ok(());
        }
        self.check_connect_name(proto, &addr.ip().to_string(), addr.port())
    }

    /// Checks the address an exporter's page is to be served on.
    pub fn check_listen(&self, addr: SocketAddr) -> Result<(), Denial> {
        if self.listen.contains(&addr) {
            return Ok(());
        }
        Err(Denial {
            what: format!("serving its page on {addr}"),
            suggestion: format!("\"{addr}\""),
            section: self.section.clone(),
            key: "listen",
        })
    }

    /// Checks a Unix socket path: as the guest wrote it, and (called again
    /// by the host) as the kernel names the socket that was opened.
    pub fn check_unix(&self, path: &Path) -> Result<(), Denial> {
        let ok = self
            .connect
            .iter()
            .any(|g| matches!(g, SocketGrant::Unix(p) if p.matches_path_with(path, MATCH)));
        if ok {
            Ok(())
        } else {
            Err(self.deny(
                format!("connecting to unix:{}", path.display()),
                format!("\"unix:{}\"", path.display()),
                "connect",
            ))
        }
    }
}

/// Whether `dir` is a directory whose entries glob `g` can match: it
/// matches the glob's first k components where component k+1 is the last
/// one or holds a wildcard (see [`Grants::check_read`]).
fn listable(g: &Pattern, dir: &Path) -> bool {
    let depth = dir.components().count() - 1; // "/" counts as one
    let parts: Vec<&str> = g.as_str().split('/').skip(1).collect();
    if depth >= parts.len() {
        return false;
    }
    let next = parts[depth];
    let wild = |p: &str| p.contains(['*', '?', '[']);
    if depth + 1 != parts.len() && !wild(next) {
        return false;
    }
    let prefix = format!("/{}", parts[..depth].join("/"));
    Pattern::new(&prefix).is_ok_and(|p| p.matches_path_with(dir, MATCH))
}

#[cfg(test)]
mod tests;
