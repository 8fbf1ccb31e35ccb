//! docker's credential helpers, as `docker login` leaves credentials with
//! a `credsStore` or `credHelpers` entry: `docker-credential-NAME get`,
//! the registry's address on its stdin, `{"Username": …, "Secret": …}` on
//! its stdout. The helper is the operator's program, found on `PATH`; it
//! is bounded all the same: its name is a plain word (never a path), its
//! answer at most 64 KiB, its time the operation's (then it is killed).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::Credentials;
use crate::oci::http::shown;

/// Largest answer read from a helper (stdout, and stderr apart), bytes.
const MAX_ANSWER: u64 = 64 << 10;

/// What a helper prints when it holds nothing for the address.
const NOT_FOUND: &str = "credentials not found";

/// The credentials helper `name` keeps for `registry` (`host[:port]`);
/// `None` when it holds none.
pub fn get(name: &str, registry: &str, timeout: Duration) -> anyhow::Result<Option<Credentials>> {
    check_name(name)?;
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!(
                "{program} is not on PATH (install it, or give the credentials in an auth file or [server.registries.\"{registry}\"] username and password)"
            ),
            _ => anyhow!("starting {program}: {e}"),
        })?;
    let deadline = Instant::now() + timeout;
    // Both outputs read aside, each bounded: a helper that fills its pipes
    // or leaves a child holding them cannot block this thread.
    let read_aside = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        if let Some(r) = r {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let _ = r.take(MAX_ANSWER + 1).read_to_end(&mut out);
                let _ = tx.send(out);
            });
        }
        rx
    };
    let stdout = read_aside(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = read_aside(child.stderr.take().map(|s| Box::new(s) as _));
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that does not read its stdin is answered by its exit.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let status = loop {
        if let Some(status) = child.try_wait().context(program.clone())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} get did not answer within {timeout:?} (it was stopped)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let left = || deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(100);
    let out = stdout.recv_timeout(left()).unwrap_or_default();
    if out.len() as u64 > MAX_ANSWER {
        bail!("{program} get answered more than 64 KiB");
    }
    if !status.success() {
        let err = stderr.recv_timeout(left()).unwrap_or_default();
        let said = String::from_utf8_lossy(if err.is_empty() { &out } else { &err }).into_owned();
        if said.to_ascii_lowercase().contains(NOT_FOUND)
            || String::from_utf8_lossy(&out)
                .to_ascii_lowercase()
                .contains(NOT_FOUND)
        {
            return Ok(None);
        }
        bail!("{program} get failed ({status}): {}", shown(said.trim()));
    }
    parse(&out, &program, registry).map(Some)
}

/// A helper's name: letters, digits, `-`, `_`, `.`; never a path.
fn check_name(name: &str) -> anyhow::Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        bail!(
            "{} is not a credential helper's name (letters, digits, `-`, `_`, `.`)",
            shown(name)
        );
    }
    Ok(())
}

/// The helper's answer, `{"ServerURL": …, "Username": …, "Secret": …}`.
fn parse(out: &[u8], program: &str, registry: &str) -> anyhow::Result<Credentials> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    // serde's message may quote the answer, which holds a secret: not shown.
    let a: Answer = serde_json::from_slice(out).map_err(|_| {
        anyhow!("{program} get answered something other than {{\"Username\": …, \"Secret\": …}}")
    })?;
    if a.username == "<token>" {
        bail!("{program} holds an identity token for {registry}, which wdiamond does not exchange: give a user name and password (an auth file, or [server.registries.\"{registry}\"] username and password)");
    }
    Ok(Credentials {
        username: a.username,
        password: a.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_answers_are_checked() {
        for bad in ["", "../x", "/bin/sh", "a b", ".hidden", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("ecr-login").unwrap();
        check_name("desktop.exe").unwrap();
        let c = parse(
            br#"{"ServerURL":"r:5000","Username":"alice","Secret":"s3cret"}"#,
            "h",
            "r:5000",
        )
        .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        let e = format!(
            "{:#}",
            parse(br#"{"Username":"<token>","Secret":"t"}"#, "h", "r").unwrap_err()
        );
        assert!(e.contains("identity token"), "{e}");
        let e = format!("{:#}", parse(b"s3cret plain", "h", "r").unwrap_err());
        assert!(
            e.contains("something other") && !e.contains("s3cret"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            parse(br#"{"Username":"a","Secret":["s3cret"]}"#, "h", "r").unwrap_err()
        );
        assert!(!e.contains("s3cret"), "{e}");
    }
}
