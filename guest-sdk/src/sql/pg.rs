//! PostgreSQL's frontend/backend protocol v3 (also PgBouncer's admin
//! console): startup, authentication (SCRAM-SHA-256, md5, cleartext, trust)
//! and simple queries whose results come back as text.

use super::scram::Scram;
use super::{hex, Reader, Rows, Transport, MAX_MESSAGE, MAX_RESULT, MAX_ROWS};

/// What a session needs to start.
#[derive(Debug, Clone, Default)]
pub struct Login<'a> {
    /// The role.
    pub user: &'a str,
    /// Its password; `None` for trust or peer authentication.
    pub password: Option<&'a str>,
    /// The database (`pgbouncer` for PgBouncer's console).
    pub database: &'a str,
}

/// An authenticated session.
pub struct Client<T: Transport> {
    r: Reader<T>,
    /// The server's `ParameterStatus` values (`server_version`, ...).
    params: Vec<(String, String)>,
}

/// One backend message: its type byte and body.
#[derive(Debug, PartialEq)]
pub struct Message {
    /// The type byte (`R`, `T`, `D`, `E`, ...).
    pub kind: u8,
    /// The body, without type and length.
    pub body: Vec<u8>,
}

/// The startup message.
pub fn startup(login: &Login) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [
        ("user", login.user),
        ("database", login.database),
        ("application_name", "wdiamond"),
        ("client_encoding", "UTF8"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A frontend message: `kind`, length, `body`.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.replace('\0', "").into_bytes();
    v.push(0);
    v
}

/// The md5 password message's text: `md5` + md5(md5(password + user) + salt).
pub fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    use md5::{Digest, Md5};
    let inner = hex(&Md5::digest(format!("{password}{user}")));
    let mut h = Md5::new();
    h.update(inner.as_bytes());
    h.update(salt);
    format!("md5{}", hex(&h.finalize()))
}

/// The text of an `ErrorResponse` (or notice) body: `SEVERITY: message (SQLSTATE code)`.
pub fn error_text(body: &[u8]) -> String {
    let (mut severity, mut code, mut text) = (String::new(), String::new(), String::new());
    let mut fields = body.split(|&b| b == 0);
    for f in fields.by_ref() {
        let Some((&t, v)) = f.split_first() else {
            break;
        };
        let v: String = String::from_utf8_lossy(v).chars().take(512).collect();
        match t {
            b'S' => severity = v,
            b'C' => code = v,
            b'M' => text = v,
            _ => {}
        }
    }
    if text.is_empty() {
        return "the server sent an error without a message".into();
    }
    format!("{severity}: {text} (SQLSTATE {code})")
}

fn be_u32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "a truncated message".to_string())
}

fn be_u16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "a truncated message".to_string())
}

/// Column names of a `RowDescription` body.
pub fn row_description(body: &[u8]) -> Result<Vec<String>, String> {
    let n = be_u16(body, 0)? as usize;
    let mut at = 2;
    let mut names = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let end = body[at.min(body.len())..]
            .iter()
            .position(|&b| b == 0)
            .ok_or("a truncated row description")?;
        names.push(String::from_utf8_lossy(&body[at..at + end]).into_owned());
        at += end + 1 + 18;
        if at > body.len() {
            return Err("a truncated row description".into());
        }
    }
    Ok(names)
}

/// The values of a `DataRow` body (text format; `None` for NULL).
pub fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, String> {
    let n = be_u16(body, 0)? as usize;
    let mut at = 2;
    let mut values = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = be_u32(body, at)? as i32;
        at += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let v = body
            .get(at..at + len as usize)
            .ok_or("a truncated data row")?;
        values.push(Some(String::from_utf8_lossy(v).into_owned()));
        at += len as usize;
    }
    Ok(values)
}

impl<T: Transport> Client<T> {
    /// Starts a session and authenticates; with `tls`, asks the server
    /// for TLS first (`SSLRequest`) and has the transport start it.
    pub fn connect(transport: T, login: &Login, nonce: &str, tls: bool) -> Result<Self, String> {
        let mut c = Client {
            r: Reader::new(transport),
            params: Vec::new(),
        };
        if tls {
            c.r.transport.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
            match c.r.take(1)?[0] {
                b'S' => {}
                b'N' => return Err("the server does not accept TLS (its `ssl` is off)".into()),
                b'E' => {
                    return Err(
                        "the server refused the TLS request with an error (older than 7.2?)".into(),
                    )
                }
                other => {
                    return Err(format!(
                        "the server answered the TLS request with 0x{other:02x}"
                    ))
                }
            }
            // Anything sent before the handshake was not protected by it.
            if c.r.buffered() > 0 {
                return Err("the server sent plaintext after agreeing to TLS; refused".into());
            }
            c.r.transport.start_tls()?;
        }
        c.r.transport.send(&startup(login))?;
        let mut scram: Option<Scram> = None;
        loop {
            let m = c.read()?;
            match m.kind {
                b'R' => {
                    let code = be_u32(&m.body, 0)?;
                    let data = &m.body[4..];
                    let password = || {
                        login.password.ok_or_else(|| {
                            format!(
                                "the server wants a password for {:?} and none is set",
                                login.user
                            )
                        })
                    };
                    match code {
                        0 => {}
                        3 => c.send(b'p', &cstring(password()?))?,
                        5 => {
                            let salt = data.get(..4).ok_or("a truncated md5 request")?;
                            c.send(b'p', &cstring(&md5_password(login.user, password()?, salt)))?
                        }
                        10 => {
                            let offered: Vec<String> = data
                                .split(|&b| b == 0)
                                .filter(|s| !s.is_empty())
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect();
                            if !offered.iter().any(|m| m == "SCRAM-SHA-256") {
                                return Err(format!(
                                    "the server offers SASL mechanisms {offered:?}; wdiamond speaks SCRAM-SHA-256"
                                ));
                            }
                            let s = Scram::new(password()?, nonce);
                            let first = s.client_first();
                            let mut body = cstring("SCRAM-SHA-256");
                            body.extend_from_slice(&(first.len() as u32).to_be_bytes());
                            body.extend_from_slice(first.as_bytes());
                            c.send(b'p', &body)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or("SCRAM: a continuation before the start")?;
                            let fin = s.client_final(data)?;
                            c.send(b'p', fin.as_bytes())?;
                        }
                        12 => scram
                            .as_ref()
                            .ok_or("SCRAM: a final message before the start")?
                            .verify(data)?,
                        2 | 6 | 7 | 8 | 9 => {
                            return Err(format!(
                                "the server asks for authentication method {code} (Kerberos, GSSAPI or SSPI), which wdiamond does not speak; use scram-sha-256 or md5 in pg_hba.conf"
                            ))
                        }
                        other => return Err(format!("unknown authentication request {other}")),
                    }
                }
                b'E' => return Err(error_text(&m.body)),
                b'Z' => return Ok(c),
                b'S' => {
                    let mut parts = m.body.split(|&b| b == 0);
                    if let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                        if c.params.len() < 64 {
                            c.params.push((
                                String::from_utf8_lossy(k).into_owned(),
                                String::from_utf8_lossy(v).chars().take(256).collect(),
                            ));
                        }
                    }
                }
                b'K' | b'N' => {}
                other => return Err(unexpected(other)),
            }
        }
    }

    /// A parameter the server reported at startup (`server_version`, say).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn send(&mut self, kind: u8, body: &[u8]) -> Result<(), String> {
        self.r.transport.send(&message(kind, body))
    }

    /// The next backend message, its length bounded.
    pub fn read(&mut self) -> Result<Message, String> {
        let head = self.r.take(5)?;
        let kind = head[0];
        if !kind.is_ascii_alphabetic() {
            return Err(format!(
                "the server does not speak PostgreSQL's protocol (a message of type 0x{kind:02x})"
            ));
        }
        let len = be_u32(&head, 1)? as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(format!(
                "the server announced a message of {len} bytes (at most {MAX_MESSAGE})"
            ));
        }
        let body = self.r.take(len - 4)?;
        Ok(Message { kind, body })
    }

    /// Runs one simple query; its rows as text. A statement without rows
    /// gives empty [`Rows`]; several statements give the last one's rows.
    pub fn query(&mut self, sql: &str) -> Result<Rows, String> {
        self.send(b'Q', &cstring(sql))?;
        let mut rows = Rows::default();
        let mut size = 0usize;
        let mut error = None;
        loop {
            let m = self.read()?;
            size += m.body.len();
            if size > MAX_RESULT {
                return Err(format!("the result is larger than {MAX_RESULT} bytes"));
            }
            match m.kind {
                b'T' => {
                    rows = Rows {
                        columns: row_description(&m.body)?,
                        rows: Vec::new(),
                    }
                }
                b'D' => {
                    if rows.rows.len() >= MAX_ROWS {
                        return Err(format!("the result has more than {MAX_ROWS} rows"));
                    }
                    let row = data_row(&m.body)?;
                    if row.len() != rows.columns.len() {
                        return Err("a data row does not match its description".into());
                    }
                    rows.rows.push(row);
                }
                b'E' => error = Some(error_text(&m.body)),
                b'Z' => break,
                b'C' | b'I' | b'N' | b'S' => {}
                other => return Err(unexpected(other)),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Ends the session (`Terminate`).
    pub fn close(mut self) {
        let _ = self.send(b'X', &[]);
    }
}

/// Connects to a server of PostgreSQL's protocol at `host` (a directory:
/// its Unix socket `.s.PGSQL.<port>`, as libpq reads it) and `port`, the
/// whole session within `timeout_ms`; with `tls` (the section's
/// `tls = true`; not over a Unix socket), TLS by the host after the
/// SSLRequest. An error names the address, database and user.
#[cfg(feature = "collector")]
pub fn connect_host(
    host: &str,
    port: u16,
    login: &Login,
    timeout_ms: u32,
    tls: bool,
) -> Result<Client<super::HostTransport>, String> {
    use super::HostTransport;
    let (unix, address) = if host.starts_with('/') {
        (
            true,
            format!("{}/.s.PGSQL.{port}", host.trim_end_matches('/')),
        )
    } else {
        (false, format!("{host}:{port}"))
    };
    let tls = tls && !unix;
    let t = if tls {
        HostTransport::open_upgradable(&address, timeout_ms)?
    } else {
        HostTransport::open(unix, &address, timeout_ms)?
    };
    Client::connect(t, login, &super::nonce()?, tls).map_err(|e| {
        format!(
            "{address}, database {:?}, user {:?}: {e}",
            login.database, login.user
        )
    })
}

fn unexpected(kind: u8) -> String {
    format!(
        "the server sent an unexpected message of type {:?}",
        kind as char
    )
}

#[cfg(test)]
mod tests {
    use super::super::Script;
    use super::*;

    fn backend(kind: u8, body: &[u8]) -> Vec<u8> {
        message(kind, body)
    }

    fn auth(code: u32, data: &[u8]) -> Vec<u8> {
        let mut b = code.to_be_bytes().to_vec();
        b.extend_from_slice(data);
        backend(b'R', &b)
    }

    fn ready() -> Vec<u8> {
        backend(b'Z', b"I")
    }

    fn login() -> Login<'static> {
        Login {
            user: "wd",
            password: Some("pw"),
            database: "postgres",
        }
    }

    #[test]
    fn md5_matches_libpq() {
        // psql's md5 of user "postgres", password "postgres", salt 01020304.
        assert_eq!(
            md5_password("postgres", "postgres", &[1, 2, 3, 4]),
            format!("md5{}", {
                use md5::{Digest, Md5};
                let inner = hex(&Md5::digest(b"postgrespostgres"));
                let mut h = Md5::new();
                h.update(inner.as_bytes());
                h.update([1, 2, 3, 4]);
                hex(&h.finalize())
            })
        );
        assert_eq!(
            hex(&{
                use md5::{Digest, Md5};
                Md5::digest(b"postgrespostgres")
            }),
            "3175bce1d3201d16594cebf9d7eb3f9d"
        );
    }

    #[test]
    fn md5_login_then_a_query() {
        let mut row_desc = 2u16.to_be_bytes().to_vec();
        for name in ["datname", "size"] {
            row_desc.extend_from_slice(name.as_bytes());
            row_desc.push(0);
            row_desc.extend_from_slice(&[0; 18]);
        }
        let mut row = 2u16.to_be_bytes().to_vec();
        row.extend_from_slice(&3u32.to_be_bytes());
        row.extend_from_slice(b"app");
        row.extend_from_slice(&(-1i32).to_be_bytes());
        let mut script = Script::new(vec![
            auth(5, &[9, 8, 7, 6]),
            [
                auth(0, &[]),
                backend(b'S', b"server_version\x0015.1\x00"),
                ready(),
            ]
            .concat(),
            // Split in the middle of a message: the reader waits for the rest.
            [backend(b'T', &row_desc), backend(b'D', &row)].concat()[..7].to_vec(),
            [
                backend(b'T', &row_desc),
                backend(b'D', &row),
                backend(b'C', b"SELECT 1\0"),
                ready(),
            ]
            .concat()[7..]
                .to_vec(),
        ]);
        let mut c = Client::connect(&mut script, &login(), "n0nce", false).unwrap();
        assert_eq!(c.parameter("server_version"), Some("15.1"));
        let rows = c.query("SELECT 1").unwrap();
        assert_eq!(rows.columns, vec!["datname", "size"]);
        assert_eq!(rows.rows, vec![vec![Some("app".to_string()), None]]);
        c.close();
        let sent = &script.sent;
        assert_eq!(
            sent[1],
            message(b'p', &cstring(&md5_password("wd", "pw", &[9, 8, 7, 6])))
        );
        assert_eq!(sent[2], message(b'Q', b"SELECT 1\0"));
    }

    #[test]
    fn errors_and_hostile_servers() {
        let err = |replies: Vec<Vec<u8>>| {
            let mut s = Script::new(replies);
            Client::connect(&mut s, &login(), "n", false).err().unwrap()
        };
        let fatal = backend(
            b'E',
            b"SFATAL\0C28P01\0Mpassword authentication failed for user \"wd\"\0\0",
        );
        assert_eq!(
            err(vec![auth(5, &[1, 2, 3, 4]), fatal]),
            "FATAL: password authentication failed for user \"wd\" (SQLSTATE 28P01)"
        );
        // A 4 GiB length, garbage, a stall (closed mid-message), Kerberos.
        let mut huge = vec![b'R'];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(err(vec![huge]).contains("announced a message of 4294967295 bytes"));
        assert!(
            err(vec![b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()]).contains("announced a message")
        );
        assert!(err(vec![b"\x16\x03\x01\x00\x05hello".to_vec()]).contains("does not speak"));
        assert!(err(vec![auth(0, &[])[..6].to_vec()]).contains("closed the connection"));
        assert!(err(vec![auth(2, &[])]).contains("Kerberos"));
        assert!(err(vec![auth(10, b"SCRAM-SHA-256-PLUS\0\0")]).contains("SCRAM-SHA-256"));
        let mut s = Script::new(vec![auth(3, &[])]);
        let nopw = Login {
            password: None,
            ..login()
        };
        assert!(Client::connect(&mut s, &nopw, "n", false)
            .err()
            .unwrap()
            .contains("none is set"));
    }

    #[test]
    fn scram_login_sends_rfc_messages() {
        // The server side of the exchange computed with the same keys.
        let mut script = Script::new(vec![
            auth(10, b"SCRAM-SHA-256\0\0"),
            auth(11, b"r=abcdefXYZ,s=QUJDRA==,i=4096"),
            // A wrong server signature fails the login.
            auth(12, b"v=AAAA"),
        ]);
        let e = Client::connect(&mut script, &login(), "abcdef", false)
            .err()
            .unwrap();
        assert!(e.contains("signature"), "{e}");
        let first = &script.sent[1];
        assert_eq!(first[0], b'p');
        assert!(first.ends_with(b"SCRAM-SHA-256\0\0\0\0\x0en,,n=,r=abcdef"));
        let fin = String::from_utf8_lossy(&script.sent[2][5..]).into_owned();
        assert!(fin.starts_with("c=biws,r=abcdefXYZ,p="), "{fin}");
    }

    #[test]
    fn tls_is_asked_for_first_and_injected_plaintext_refused() {
        let mut script = Script::new(vec![b"S".to_vec(), auth(0, &[]), ready()]);
        Client::connect(&mut script, &login(), "n", true).unwrap();
        assert_eq!(script.sent[0], vec![0, 0, 0, 8, 4, 210, 22, 47]);
        assert_eq!(script.sent[1], b"<start-tls>");
        assert_eq!(script.sent[2], startup(&login()));
        let mut script = Script::new(vec![b"N".to_vec()]);
        assert!(Client::connect(&mut script, &login(), "n", true)
            .err()
            .unwrap()
            .contains("does not accept TLS"));
        // CVE-2021-23222's shape: a reply smuggled in with the 'S'.
        let mut script = Script::new(vec![[b"S".to_vec(), auth(0, &[])].concat()]);
        assert!(Client::connect(&mut script, &login(), "n", true)
            .err()
            .unwrap()
            .contains("plaintext after"));
        assert_eq!(script.sent.len(), 1);
    }

    #[test]
    fn query_errors_and_bounds() {
        let mut script = Script::new(vec![
            auth(0, &[]),
            ready(),
            [
                backend(b'E', b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0\0"),
                ready(),
            ]
            .concat(),
        ]);
        let mut c = Client::connect(
            &mut script,
            &Login {
                password: None,
                ..login()
            },
            "n",
            false,
        )
        .unwrap();
        assert!(c
            .query("SELECT * FROM x")
            .unwrap_err()
            .contains("does not exist"));
        assert!(row_description(&[0, 1, b'a']).is_err());
        assert!(data_row(&[0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(data_row(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }
}
