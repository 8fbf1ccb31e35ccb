//! MySQL's and MariaDB's client/server protocol: the v10 handshake,
//! `mysql_native_password` and `caching_sha2_password` (its fast path; the
//! full path needs TLS or RSA, which this client does not do), an
//! authentication switch, and `COM_QUERY` with text results.

use super::{Reader, Rows, Transport, MAX_MESSAGE, MAX_RESULT, MAX_ROWS};

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 4;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;

/// What a session needs to start.
#[derive(Debug, Clone, Default)]
pub struct Login<'a> {
    /// The user.
    pub user: &'a str,
    /// The password (empty: none).
    pub password: &'a str,
    /// The default database, if any.
    pub database: Option<&'a str>,
}

/// The server's greeting, as far as the client needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Greeting {
    /// `server_version` (MariaDB's starts `5.5.5-` before its own).
    pub version: String,
    /// The 20-byte scramble.
    pub scramble: Vec<u8>,
    /// The authentication plugin the server starts with.
    pub plugin: String,
    /// The server's capability flags.
    pub capabilities: u32,
}

fn cstr(b: &[u8], at: &mut usize) -> Result<String, String> {
    let rest = b.get(*at..).ok_or("a truncated packet")?;
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    let s = String::from_utf8_lossy(&rest[..end]).into_owned();
    *at += end + 1;
    Ok(s)
}

/// The text of an ERR packet (`0xFF`, code, `#` state, message).
pub fn error_text(p: &[u8]) -> String {
    let code = p
        .get(1..3)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .unwrap_or(0);
    let mut msg = p.get(3..).unwrap_or_default();
    let mut state = String::new();
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        state = String::from_utf8_lossy(&msg[1..6]).into_owned();
        msg = &msg[6..];
    }
    let msg: String = String::from_utf8_lossy(msg).chars().take(512).collect();
    format!("ERROR {code} ({state}): {msg}")
}

/// Parses the server's greeting (protocol 10).
pub fn greeting(p: &[u8]) -> Result<Greeting, String> {
    match p.first() {
        Some(0xff) => return Err(error_text(p)),
        Some(10) => {}
        Some(v) => {
            return Err(format!(
                "the server does not speak MySQL's protocol 10 (a greeting starting 0x{v:02x})"
            ))
        }
        None => return Err("an empty greeting".into()),
    }
    let mut at = 1;
    let version = cstr(p, &mut at)?;
    at += 4; // connection id
    let mut scramble = p.get(at..at + 8).ok_or("a truncated greeting")?.to_vec();
    at += 9;
    let low = p.get(at..at + 2).ok_or("a truncated greeting")?;
    let mut capabilities = u32::from(u16::from_le_bytes([low[0], low[1]]));
    at += 2;
    let mut plugin = "mysql_native_password".to_string();
    if let Some(rest) = p.get(at..at + 16) {
        capabilities |= u32::from(u16::from_le_bytes([rest[3], rest[4]])) << 16;
        let data_len = rest[5] as usize;
        at += 16;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part = p.get(at..at + n).ok_or("a truncated greeting")?;
            scramble.extend_from_slice(&part[..12.min(part.len())]);
            at += n;
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 && at < p.len() {
            plugin = cstr(p, &mut at)?;
        }
    }
    Ok(Greeting {
        version,
        scramble,
        plugin,
        capabilities,
    })
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The authentication response of `plugin` for `password` and `scramble`.
pub fn auth_response(plugin: &str, password: &str, scramble: &[u8]) -> Result<Vec<u8>, String> {
    if password.is_empty() {
        return Ok(Vec::new());
    }
    let pw = password.as_bytes();
    match plugin {
        "mysql_native_password" => {
            let stage1 = sha1(&[pw]);
            let stage2 = sha1(&[&stage1]);
            let mix = sha1(&[scramble, &stage2]);
            Ok(stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect())
        }
        "caching_sha2_password" => {
            let stage1 = sha256(&[pw]);
            let stage2 = sha256(&[&stage1]);
            let mix = sha256(&[&stage2, scramble]);
            Ok(stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect())
        }
        other => Err(format!(
            "the server asks for the authentication plugin {other:?}; wdiamond speaks mysql_native_password and caching_sha2_password"
        )),
    }
}

fn capabilities(login: &Login, tls: bool) -> u32 {
    let mut caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    if login.database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    if tls {
        caps |= CLIENT_SSL;
    }
    caps
}

/// The SSL request: the first 32 bytes of a handshake response.
pub fn ssl_request(login: &Login) -> Vec<u8> {
    let mut p = capabilities(login, true).to_le_bytes().to_vec();
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p
}

/// The client's handshake response.
pub fn handshake_response(login: &Login, g: &Greeting, tls: bool) -> Result<Vec<u8>, String> {
    let caps = capabilities(login, tls);
    let plugin = match g.plugin.as_str() {
        "caching_sha2_password" => "caching_sha2_password",
        _ => "mysql_native_password",
    };
    let auth = auth_response(plugin, login.password, &g.scramble)?;
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(login.user.as_bytes());
    p.push(0);
    p.push(auth.len() as u8);
    p.extend_from_slice(&auth);
    if let Some(db) = login.database {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    Ok(p)
}

/// A length-encoded integer at `at`.
fn lenenc(p: &[u8], at: &mut usize) -> Result<u64, String> {
    let first = *p.get(*at).ok_or("a truncated packet")?;
    let n = match first {
        0..=0xfa => {
            *at += 1;
            return Ok(u64::from(first));
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return Err(format!("a bad length-encoded integer 0x{first:02x}")),
    };
    let b = p.get(*at + 1..*at + 1 + n).ok_or("a truncated packet")?;
    *at += 1 + n;
    Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}

fn lenenc_str(p: &[u8], at: &mut usize) -> Result<String, String> {
    let n = lenenc(p, at)? as usize;
    let s = p
        .get(*at..at.saturating_add(n))
        .ok_or("a truncated packet")?;
    *at += n;
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// The name of a column definition packet (protocol 41).
pub fn column_name(p: &[u8]) -> Result<String, String> {
    let mut at = 0;
    for _ in 0..4 {
        lenenc_str(p, &mut at)?; // catalog, schema, table, org_table
    }
    lenenc_str(p, &mut at)
}

/// The values of a text result row.
pub fn text_row(p: &[u8], columns: usize) -> Result<Vec<Option<String>>, String> {
    let mut at = 0;
    let mut out = Vec::with_capacity(columns.min(1024));
    for _ in 0..columns {
        if p.get(at) == Some(&0xfb) {
            at += 1;
            out.push(None);
        } else {
            out.push(Some(lenenc_str(p, &mut at)?));
        }
    }
    if at != p.len() {
        return Err("a result row longer than its columns".into());
    }
    Ok(out)
}

/// An authenticated session.
pub struct Client<T: Transport> {
    r: Reader<T>,
    /// The server's greeting.
    pub greeting: Greeting,
    seq: u8,
}

impl<T: Transport> Client<T> {
    /// Reads the greeting and authenticates; with `tls`, asks for TLS
    /// after the greeting (the SSL request) and has the transport start it.
    pub fn connect(transport: T, login: &Login, tls: bool) -> Result<Self, String> {
        let mut c = Client {
            r: Reader::new(transport),
            greeting: Greeting {
                version: String::new(),
                scramble: Vec::new(),
                plugin: String::new(),
                capabilities: 0,
            },
            seq: 0,
        };
        let first = c.read()?;
        c.greeting = greeting(&first)?;
        if c.greeting.capabilities & CLIENT_PROTOCOL_41 == 0 {
            return Err("the server is older than MySQL 4.1".into());
        }
        if tls {
            if c.greeting.capabilities & CLIENT_SSL == 0 {
                return Err("the server does not offer TLS (no ssl_cert configured?)".into());
            }
            c.write(&ssl_request(login))?;
            if c.r.buffered() > 0 {
                return Err("the server sent data before the TLS handshake; refused".into());
            }
            c.r.transport.start_tls()?;
        }
        let resp = handshake_response(login, &c.greeting, tls)?;
        c.write(&resp)?;
        let mut plugin = match c.greeting.plugin.as_str() {
            "caching_sha2_password" => "caching_sha2_password".to_string(),
            _ => "mysql_native_password".to_string(),
        };
        loop {
            let p = c.read()?;
            match p.first() {
                Some(0x00) => return Ok(c),
                Some(0xff) => return Err(error_text(&p)),
                Some(0xfe) => {
                    let mut at = 1;
                    plugin = cstr(&p, &mut at)?;
                    let mut data = p.get(at..).unwrap_or_default().to_vec();
                    if data.last() == Some(&0) {
                        data.pop();
                    }
                    let resp = auth_response(&plugin, login.password, &data)?;
                    c.write(&resp)?;
                }
                Some(0x01) if plugin == "caching_sha2_password" => match p.get(1) {
                    Some(3) => {} // fast authentication succeeded; OK follows
                    // Over TLS the password itself may go (what libmysql does).
                    Some(4) if tls => {
                        let mut pw = login.password.as_bytes().to_vec();
                        pw.push(0);
                        c.write(&pw)?;
                    }
                    Some(4) => {
                        return Err("caching_sha2_password asks for full authentication, which needs TLS (`tls = true`) or RSA: set tls, log in once with the mysql client (that fills the server's cache), or give the user mysql_native_password".into())
                    }
                    _ => return Err("an unknown caching_sha2_password answer".into()),
                },
                _ => return Err("an unexpected packet during authentication".into()),
            }
        }
    }

    fn write(&mut self, payload: &[u8]) -> Result<(), String> {
        self.seq = self.seq.wrapping_add(1);
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(self.seq);
        p.extend_from_slice(payload);
        self.r.transport.send(&p)
    }

    /// The next packet's payload, its length bounded.
    pub fn read(&mut self) -> Result<Vec<u8>, String> {
        let head = self.r.take(4)?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        if len > MAX_MESSAGE {
            return Err(format!(
                "the server announced a packet of {len} bytes (at most {MAX_MESSAGE})"
            ));
        }
        self.seq = head[3];
        self.r.take(len)
    }

    /// Runs one statement; its rows as text (empty for a statement
    /// without a result set).
    pub fn query(&mut self, sql: &str) -> Result<Rows, String> {
        self.seq = 0xff; // the command is packet 0
        let mut p = vec![0x03];
        p.extend_from_slice(sql.as_bytes());
        self.write(&p)?;
        let first = self.read()?;
        match first.first() {
            Some(0x00) => return Ok(Rows::default()),
            Some(0xff) => return Err(error_text(&first)),
            Some(0xfb) => return Err("the server asks for a local file; refused".into()),
            None => return Err("an empty result packet".into()),
            _ => {}
        }
        let mut at = 0;
        let n = lenenc(&first, &mut at)? as usize;
        if n == 0 || n > 4096 {
            return Err(format!("a result of {n} columns"));
        }
        let mut rows = Rows::default();
        let mut size = 0;
        for _ in 0..n {
            let p = self.read()?;
            size += p.len();
            rows.columns.push(column_name(&p)?);
        }
        let mut eof_seen = false;
        loop {
            let p = self.read()?;
            size += p.len();
            if size > MAX_RESULT {
                return Err(format!("the result is larger than {MAX_RESULT} bytes"));
            }
            match p.first() {
                Some(0xfe) if p.len() < 9 => {
                    if eof_seen {
                        return Ok(rows);
                    }
                    eof_seen = true; // the end of the column definitions
                }
                Some(0xff) => return Err(error_text(&p)),
                _ => {
                    if rows.rows.len() >= MAX_ROWS {
                        return Err(format!("the result has more than {MAX_ROWS} rows"));
                    }
                    rows.rows.push(text_row(&p, n)?);
                }
            }
        }
    }

    /// Ends the session (`COM_QUIT`).
    pub fn close(mut self) {
        self.seq = 0xff;
        let _ = self.write(&[0x01]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Script;
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    /// A MariaDB 10.11 greeting (captured shape; scramble 1..=20).
    fn maria_greeting() -> Vec<u8> {
        let mut g = vec![10];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        g.push(0);
        g.extend_from_slice(&0xf7feu16.to_le_bytes());
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x81bfu16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0]);
        g.extend_from_slice(b"mysql_native_password\0");
        g
    }

    fn lenc(s: &str) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn coldef(name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for s in ["def", "", "", "", name, name] {
            p.extend(lenc(s));
        }
        p.extend_from_slice(&[0x0c, 0x21, 0, 0, 1, 0, 0xfd, 0, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn greeting_and_native_password() {
        let g = greeting(&maria_greeting()).unwrap();
        assert_eq!(g.scramble, (1..=20).collect::<Vec<u8>>());
        assert_eq!(g.plugin, "mysql_native_password");
        assert!(g.version.contains("MariaDB"));
        // MySQL's documented formula, checked with a known value: the
        // scramble of "password" with 20 zero bytes.
        let r = auth_response("mysql_native_password", "password", &[0; 20]).unwrap();
        let stage1 = sha1(&[b"password"]);
        assert_eq!(
            super::super::hex(&stage1),
            "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"
        );
        let mix = sha1(&[&[0u8; 20][..], &sha1(&[&stage1])]);
        assert_eq!(
            r,
            stage1
                .iter()
                .zip(mix)
                .map(|(a, b)| a ^ b)
                .collect::<Vec<_>>()
        );
        assert!(auth_response("mysql_native_password", "", &[0; 20])
            .unwrap()
            .is_empty());
        assert!(auth_response("client_ed25519", "x", &[0; 20])
            .unwrap_err()
            .contains("client_ed25519"));
    }

    #[test]
    fn login_switch_and_a_query() {
        let mut switch = vec![0xfe];
        switch.extend_from_slice(b"mysql_native_password\0");
        switch.extend_from_slice(&[7; 20]);
        switch.push(0);
        let result = [
            packet(1, &[2]),
            packet(2, &coldef("Variable_name")),
            packet(3, &coldef("Value")),
            packet(4, &[0xfe, 0, 0, 2, 0]),
            packet(5, &[lenc("Uptime"), lenc("42")].concat()),
            packet(6, &[lenc("Nothing"), vec![0xfb]].concat()),
            packet(7, &[0xfe, 0, 0, 2, 0]),
        ]
        .concat();
        let mut script = Script::new(vec![
            packet(0, &maria_greeting()),
            packet(2, &switch),
            packet(4, &[0, 0, 0, 2, 0, 0, 0]),
            result[..9].to_vec(),
            result[9..].to_vec(),
        ]);
        let login = Login {
            user: "wd",
            password: "pw",
            database: None,
        };
        let mut c = Client::connect(&mut script, &login, false).unwrap();
        let rows = c.query("SHOW GLOBAL STATUS").unwrap();
        assert_eq!(rows.columns, vec!["Variable_name", "Value"]);
        assert_eq!(rows.rows[0], vec![Some("Uptime".into()), Some("42".into())]);
        assert_eq!(rows.rows[1], vec![Some("Nothing".into()), None]);
        // The response to the switch is packet 3, with the new scramble.
        let sent = &script.sent;
        assert_eq!(sent[1][3], 3);
        assert_eq!(
            sent[1][4..],
            auth_response("mysql_native_password", "pw", &[7; 20]).unwrap()[..]
        );
        assert_eq!(sent[2][3], 0);
        assert_eq!(&sent[2][4..], b"\x03SHOW GLOBAL STATUS");
    }

    #[test]
    fn tls_after_the_greeting_then_full_caching_sha2() {
        let mut g = maria_greeting();
        // caching_sha2_password as the server's plugin, and CLIENT_SSL.
        let plugin_at = g.len() - b"mysql_native_password\0".len();
        g.truncate(plugin_at);
        g.extend_from_slice(b"caching_sha2_password\0");
        let caps_at = g.windows(2).position(|w| w == [0xfe, 0xf7]).unwrap();
        g[caps_at + 1] |= 0x08; // CLIENT_SSL
        let mut script = Script::new(vec![
            packet(0, &g),
            packet(3, &[0x01, 4]),
            packet(5, &[0, 0, 0, 2, 0, 0, 0]),
        ]);
        let login = Login {
            user: "wd",
            password: "pw",
            database: None,
        };
        Client::connect(&mut script, &login, true).unwrap();
        let sent = &script.sent;
        assert_eq!(sent[0][3], 1);
        assert_eq!(sent[0].len(), 4 + 32);
        let caps = u32::from_le_bytes([sent[0][4], sent[0][5], sent[0][6], sent[0][7]]);
        assert!(caps & CLIENT_SSL != 0);
        assert_eq!(sent[1], b"<start-tls>");
        assert_eq!(sent[2][3], 2);
        assert_eq!(&sent[3][4..], b"pw\0", "the password, over TLS only");
        // Without TLS the full path is refused, saying why.
        let mut script = Script::new(vec![packet(0, &g), packet(2, &[0x01, 4])]);
        let e = Client::connect(&mut script, &login, false).err().unwrap();
        assert!(e.contains("needs TLS"), "{e}");
    }

    #[test]
    fn errors_and_hostile_servers() {
        let err = |replies: Vec<Vec<u8>>| {
            let mut s = Script::new(replies);
            let login = Login {
                user: "wd",
                password: "pw",
                database: Some("mysql"),
            };
            Client::connect(&mut s, &login, false).err().unwrap()
        };
        let mut denied = vec![0xff, 0x15, 0x04, b'#'];
        denied.extend_from_slice(
            b"28000Access denied for user 'wd'@'localhost' (using password: YES)",
        );
        assert_eq!(
            err(vec![packet(0, &maria_greeting()), packet(2, &denied)]),
            "ERROR 1045 (28000): Access denied for user 'wd'@'localhost' (using password: YES)"
        );
        assert!(err(vec![vec![0xff, 0xff, 0xff, 0]]).contains("at most"));
        assert!(err(vec![packet(0, b"SSH-2.0-OpenSSH\r\n")]).contains("protocol 10"));
        assert!(err(vec![maria_greeting()[..3].to_vec()]).contains("closed the connection"));
        assert!(err(vec![packet(0, &maria_greeting()[..20])]).contains("truncated"));
        assert!(
            err(vec![packet(0, &maria_greeting()), packet(2, &[0x01, 4])]).contains("unexpected")
        );
        assert!(text_row(&[5, b'a'], 1).is_err());
        assert!(text_row(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 1).is_err());
        assert!(column_name(&[3, b'd']).is_err());
    }
}
