//! Diamond's `hostname_method`s: how the host name in metric paths is found.

use std::ffi::{CStr, CString};

/// A `hostname_method` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostnameMethod {
    /// `fqdn_short`, unless that is `localhost`; then `hostname_short`.
    Smart,
    /// First label of the fully qualified name.
    FqdnShort,
    /// The fully qualified name with `.` replaced by `_`.
    Fqdn,
    /// The fully qualified name's labels reversed.
    FqdnRev,
    /// First label of `uname -n`.
    UnameShort,
    /// `uname -n` labels reversed.
    UnameRev,
    /// `gethostname()` as is.
    Hostname,
    /// First label of `gethostname()`.
    HostnameShort,
    /// `gethostname()` labels reversed.
    HostnameRev,
    /// No host name in the path.
    None,
}

impl HostnameMethod {
    /// Every accepted name, for error messages.
    pub const NAMES: &'static str = "smart, fqdn_short, fqdn, fqdn_rev, uname_short, uname_rev, hostname, hostname_short, hostname_rev, none";

    /// Parses a method name (case-insensitive, as Diamond).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "smart" => Self::Smart,
            "fqdn_short" => Self::FqdnShort,
            "fqdn" => Self::Fqdn,
            "fqdn_rev" => Self::FqdnRev,
            "uname_short" => Self::UnameShort,
            "uname_rev" => Self::UnameRev,
            "hostname" => Self::Hostname,
            "hostname_short" => Self::HostnameShort,
            "hostname_rev" => Self::HostnameRev,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// `gethostname()`.
pub fn gethostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "localhost".into();
    }
    CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `uname -n`.
pub fn uname_nodename() -> String {
    // SAFETY: uname fills the struct; zeroed is a valid initial value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return gethostname();
    }
    // SAFETY: nodename is NUL-terminated by uname.
    unsafe { CStr::from_ptr(u.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Python's `socket.getfqdn()`, approximated with the resolver's canonical
/// name for `gethostname()`.
pub fn getfqdn() -> String {
    let name = gethostname();
    let Ok(c) = CString::new(name.clone()) else {
        return name;
    };
    // SAFETY: hints is zeroed then set; res is freed with freeaddrinfo.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 || res.is_null() {
            return name;
        }
        let canon = if (*res).ai_canonname.is_null() {
            None
        } else {
            Some(
                CStr::from_ptr((*res).ai_canonname)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        libc::freeaddrinfo(res);
        match canon {
            Some(c) if c.contains('.') => c,
            _ => name,
        }
    }
}

fn short(s: &str) -> String {
    s.split('.').next().unwrap_or_default().to_string()
}

fn rev(s: &str) -> String {
    s.split('.').rev().collect::<Vec<_>>().join(".")
}

/// Resolves a method to the host name (`None` for `none`).
pub fn resolve(method: HostnameMethod) -> Option<String> {
    Some(match method {
        HostnameMethod::Smart => {
            let h = short(&getfqdn());
            if h != "localhost" {
                h
            } else {
                short(&gethostname())
            }
        }
        HostnameMethod::FqdnShort => short(&getfqdn()),
        HostnameMethod::Fqdn => getfqdn().replace('.', "_"),
        HostnameMethod::FqdnRev => rev(&getfqdn()),
        HostnameMethod::UnameShort => short(&uname_nodename()),
        HostnameMethod::UnameRev => rev(&uname_nodename()),
        HostnameMethod::Hostname => gethostname(),
        HostnameMethod::HostnameShort => short(&gethostname()),
        HostnameMethod::HostnameRev => rev(&gethostname()),
        HostnameMethod::None => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_transform() {
        assert_eq!(
            HostnameMethod::parse("FQDN_short"),
            Some(HostnameMethod::FqdnShort)
        );
        assert_eq!(HostnameMethod::parse("shell"), None);
        assert_eq!(rev("a.b.c"), "c.b.a");
        assert_eq!(short("web1.example.com"), "web1");
        assert_eq!(resolve(HostnameMethod::None), None);
        assert_eq!(resolve(HostnameMethod::Hostname), Some(gethostname()));
    }
}
