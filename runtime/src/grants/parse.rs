//! Parsing `[…grants]` entries into their typed form (once, at load): path
//! globs, argv patterns, socket grants, and the `run_as` user.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path};

use glob::Pattern;

use super::{ArgPattern, CommandGrant, Grants, HostPattern, SocketGrant};

/// Looks a user name (or a numeric uid) up in the password database.
pub fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    if let Ok(uid) = name.parse::<u32>() {
        return Ok((uid, uid));
    }
    let c = std::ffi::CString::new(name).map_err(|_| format!("{name:?} is not a user name"))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("no user {name:?} on this host"));
    }
    // SAFETY: pw is non-null and points to a passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Parses a glob of `grants.files` / `grants.statvfs`.
pub fn parse_path_glob(s: &str) -> Result<Pattern, String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} must be an absolute path"));
    }
    if Path::new(s).components().any(|c| c == Component::ParentDir) {
        return Err(format!("{s:?} must not contain `..`"));
    }
    Pattern::new(s).map_err(|e| format!("{s:?} is not a valid glob: {e}"))
}

/// The same glob with its literal leading directories canonicalised, when
/// that differs (`/var/run/ceph/*` -> `/run/ceph/*`); `None` otherwise.
pub fn canonical_variant(glob: &str) -> Option<String> {
    let parts: Vec<&str> = glob.split('/').collect();
    let literal = parts
        .iter()
        .take_while(|p| !p.contains(['*', '?', '[', ']']))
        .count();
    for n in (2..=literal).rev() {
        let prefix = parts[..n].join("/");
        if let Ok(c) = std::fs::canonicalize(&prefix) {
            let c = c.to_string_lossy().into_owned();
            if c == prefix {
                return None;
            }
            let rest = parts[n..].join("/");
            return Some(if rest.is_empty() {
                c
            } else {
                format!("{c}/{rest}")
            });
        }
    }
    None
}

/// Parses one `grants.commands` entry (an argv pattern).
pub fn parse_command(argv: &[String]) -> Result<CommandGrant, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("a command pattern needs at least the program".into());
    };
    if !program.starts_with('/') {
        return Err(format!("the program {program:?} must be an absolute path"));
    }
    // `/dir//*` (a directory key ending in `/`, filled into `{key}/*`).
    let mut program = program.clone();
    while program.contains("//") {
        program = program.replace("//", "/");
    }
    let program_glob = if program.contains(['*', '?', '[']) {
        let pattern = parse_path_glob(&program).map_err(|e| format!("the program {e}"))?;
        let canonical = canonical_variant(&program).and_then(|v| Pattern::new(&v).ok());
        Some(ArgPattern { pattern, canonical })
    } else {
        None
    };
    let (args, rest) = match args.split_last() {
        Some((last, init)) if last == "**" => (init, true),
        _ => (args, false),
    };
    let args = args
        .iter()
        .map(|a| {
            if a.starts_with('/') && Path::new(a).components().any(|c| c == Component::ParentDir) {
                return Err(format!("argument pattern {a:?} must not contain `..`"));
            }
            let pattern = Pattern::new(a).map_err(|e| format!("argument pattern {a:?}: {e}"))?;
            let canonical = a
                .starts_with('/')
                .then(|| canonical_variant(a))
                .flatten()
                .and_then(|v| Pattern::new(&v).ok());
            Ok(ArgPattern { pattern, canonical })
        })
        .collect::<Result<_, String>>()?;
    Ok(CommandGrant {
        program,
        program_glob,
        args,
        rest,
    })
}

/// Parses one `grants.connect` entry: `tcp:host:port`, `udp:[::1]:53`,
/// `tcp:10.0.0.0/8:*`, `unix:/run/redis.sock`.
pub fn parse_socket(s: &str) -> Result<SocketGrant, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        return parse_path_glob(path).map(SocketGrant::Unix);
    }
    let (proto, rest) = if let Some(r) = s.strip_prefix("tcp:") {
        ("tcp", r)
    } else if let Some(r) = s.strip_prefix("udp:") {
        ("udp", r)
    } else {
        return Err(format!("{s:?} must start with tcp:, udp: or unix:"));
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} needs a port (or `*`) after the host"))?;
    let port = match port {
        "*" => None,
        p => Some(
            p.parse::<u16>()
                .map_err(|_| format!("{s:?}: bad port {p:?}"))?,
        ),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if let Some((addr, bits)) = host.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: bad address {addr:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{s:?}: bad prefix length {bits:?}"))?;
        HostPattern::Cidr(addr, bits)
    } else if let Ok(addr) = host.parse::<IpAddr>() {
        HostPattern::Cidr(addr, if addr.is_ipv4() { 32 } else { 128 })
    } else if host.is_empty() {
        return Err(format!("{s:?} needs a host"));
    } else {
        HostPattern::Name(host.to_ascii_lowercase())
    };
    Ok(SocketGrant::Net { proto, host, port })
}

impl Grants {
    /// No grants yet, for the plugin of config section `section`.
    pub fn for_section(section: &str) -> Self {
        Grants {
            section: section.to_string(),
            ..Grants::default()
        }
    }

    /// Adds a `files` glob; a glob under a symlinked directory (`/var/run`
    /// -> `/run`) also grants the same glob under the link's target, since
    /// paths are checked after canonicalisation.
    pub fn allow_files(&mut self, glob: &str) -> Result<(), String> {
        self.files.push(parse_path_glob(glob)?);
        if let Some(v) = canonical_variant(glob) {
            self.files.push(parse_path_glob(&v)?);
        }
        Ok(())
    }

    /// Adds a `statvfs` glob.
    pub fn allow_statvfs(&mut self, glob: &str) -> Result<(), String> {
        self.statvfs.push(parse_path_glob(glob)?);
        Ok(())
    }

    /// Adds a `commands` argv pattern.
    pub fn allow_command(&mut self, argv: &[String]) -> Result<(), String> {
        self.commands.push(parse_command(argv)?);
        Ok(())
    }

    /// Adds a `connect` entry; a Unix socket under a symlinked directory
    /// also under the link's target.
    pub fn allow_connect(&mut self, entry: &str) -> Result<(), String> {
        self.connect.push(parse_socket(entry)?);
        if let Some(v) = entry.strip_prefix("unix:").and_then(canonical_variant) {
            self.connect.push(parse_socket(&format!("unix:{v}"))?);
        }
        Ok(())
    }

    /// Adds a `listen` address (`IP:PORT`).
    pub fn allow_listen(&mut self, entry: &str) -> Result<(), String> {
        self.listen.push(parse_listen(entry)?);
        Ok(())
    }

    /// Sets `run_as` to a user name (or numeric uid) of this host.
    pub fn run_as_user(&mut self, name: &str) -> Result<(), String> {
        self.run_as = Some(lookup_user(name)?);
        Ok(())
    }
}

/// An address to serve on: `IP:PORT` (`[IPv6]:PORT`), an address, not a
/// name (no lookup decides where the agent listens); port 1-65535.
pub fn parse_listen(entry: &str) -> Result<SocketAddr, String> {
    match entry.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        Ok(_) => Err(format!("{entry:?}: the port must be 1-65535")),
        Err(_) if entry.starts_with(':') => Err(format!(
            "{entry:?} is not IP:PORT: write the address too, \"127.0.0.1{entry}\" (this host only) or \"0.0.0.0{entry}\" (every interface)"
        )),
        Err(_) => Err(format!(
            "{entry:?} is not IP:PORT (e.g. \"127.0.0.1:9108\", \"[::1]:9108\"; a host name is not taken)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::grants;
    use super::*;

    #[test]
    fn grants_follow_symlinked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        let glob = format!("{}/link/*.asok", dir.path().display());
        assert_eq!(
            canonical_variant(&glob),
            Some(format!("{}/*.asok", real.display()))
        );
        assert_eq!(canonical_variant("/proc/stat"), None);
        assert_eq!(canonical_variant("/no/such/dir/*"), None);
    }

    #[test]
    fn commands_match_argv_patterns() {
        let mut g = grants(&[]);
        g.commands.push(
            parse_command(&[
                "/usr/bin/ceph".into(),
                "--admin-daemon".into(),
                "/run/ceph/*.asok".into(),
                "perf".into(),
                "dump".into(),
            ])
            .unwrap(),
        );
        let ok: Vec<String> = [
            "/usr/bin/ceph",
            "--admin-daemon",
            "/run/ceph/osd.0.asok",
            "perf",
            "dump",
        ]
        .map(String::from)
        .to_vec();
        assert!(g.check_command(&ok).is_ok());
        let bad: Vec<String> = [
            "/usr/bin/ceph",
            "--admin-daemon",
            "/run/ceph/osd.0.asok",
            "perf",
            "dump",
            "x",
        ]
        .map(String::from)
        .to_vec();
        assert!(g.check_command(&bad).is_err());
        assert!(parse_command(&["ceph".into()]).is_err());
    }

    #[test]
    fn a_program_glob_admits_the_directorys_files_without_arguments_only() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("scripts");
        std::fs::create_dir_all(scripts.join("sub")).unwrap();
        for f in ["scripts/a.sh", "scripts/sub/b.sh", "outside.sh"] {
            std::fs::write(dir.path().join(f), "#!/bin/sh\n").unwrap();
        }
        std::os::unix::fs::symlink(dir.path().join("outside.sh"), scripts.join("out")).unwrap();
        std::os::unix::fs::symlink(scripts.join("a.sh"), scripts.join("in")).unwrap();
        let s = scripts.display().to_string();
        let mut g = grants(&[]);
        // `{scripts_path}/*` with a trailing `/` in the key gives `//*`.
        g.allow_command(&[format!("{s}//*")]).unwrap();
        let run = |argv: &[&str]| {
            g.check_command(&argv.iter().map(|a| a.to_string()).collect::<Vec<_>>())
                .is_ok()
        };
        assert!(run(&[&format!("{s}/a.sh")]));
        assert!(run(&[&format!("{s}/in")]), "a link within the directory");
        assert!(!run(&[&format!("{s}/a.sh"), "-c"]), "an argument");
        assert!(!run(&[&format!("{s}/sub/b.sh")]), "`*` crossed `/`");
        assert!(!run(&[&format!("{s}/sub")]), "a directory");
        assert!(!run(&[&format!("{s}/out")]), "a link out of the directory");
        assert!(!run(&[&format!("{s}/../outside.sh")]), "`..`");
        assert!(!run(&[&format!("{s}/missing")]), "a file that is not there");
        assert!(!run(&["/bin/sh"]));
        assert!(parse_command(&["scripts/*".into()]).is_err());
        assert!(parse_command(&[format!("{s}/../*")]).is_err());
    }

    #[test]
    fn sockets_by_name_address_and_cidr() {
        let mut g = grants(&[]);
        g.connect = vec![
            parse_socket("tcp:localhost:2003").unwrap(),
            parse_socket("udp:10.0.0.0/8:*").unwrap(),
            parse_socket("tcp:[::1]:6379").unwrap(),
        ];
        assert!(g.check_connect_name("tcp", "localhost", 2003).is_ok());
        assert!(g.check_connect_name("tcp", "localhost", 2004).is_err());
        assert!(g.check_connect_name("udp", "10.1.2.3", 53).is_ok());
        assert!(g.check_connect_name("tcp", "10.1.2.3", 53).is_err());
        assert!(g.check_connect_name("tcp", "::1", 6379).is_ok());
        let e = g.check_connect_name("tcp", "evil.example", 80).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("add \"tcp:evil.example:80\" to [collectors.test.grants] connect"));
        assert!(parse_socket("tcp:host").is_err());
        assert!(parse_socket("sctp:a:1").is_err());
    }

    #[test]
    fn argv_wildcards_do_not_cross_slashes_or_climb() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("zone");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(zone.join("ok"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), zone.join("link")).unwrap();
        let z = zone.display().to_string();
        let mut g = grants(&[]);
        g.commands
            .push(parse_command(&["/bin/cat".into(), format!("{z}/*")]).unwrap());
        g.commands
            .push(parse_command(&["/bin/echo".into(), "*".into()]).unwrap());
        let run = |args: &[&str]| {
            g.check_command(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .is_ok()
        };
        assert!(run(&["/bin/cat", &format!("{z}/ok")]));
        assert!(!run(&["/bin/cat", &format!("{z}/../secret")]), "`..`");
        assert!(
            !run(&["/bin/cat", &format!("{z}/sub/x")]),
            "`*` crossed `/`"
        );
        assert!(!run(&["/bin/cat", &format!("{z}/link")]), "a link out");
        assert!(
            run(&["/bin/echo", "a/b"]),
            "a plain `*` is any one argument"
        );
        assert!(parse_command(&["/bin/cat".into(), "/run/../etc/*".into()]).is_err());
    }
}
