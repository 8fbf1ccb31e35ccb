//! What a third-party component may make the compiler do. Compiling is
//! the host's work, done before any of the plugin's limits applies (its
//! deadline, fuel and memory bound its *runs*), and cranelift's time and
//! memory grow faster than a function's size: here one function of 7.6 MB
//! (the most wasm allows) took 44 s and 3.8 GB to compile, ten of 1 MB
//! took 22 s and 1.3 GB, and a 512 MiB file holds 67 of the first. So
//! before a component that is not the agent's own is compiled, its
//! functions are measured (a parse, no compile): each body at most
//! [`MAX_FUNCTION_BODY`], all of them at most [`MAX_CODE`]. A compiler
//! writing plugins stays far below both (the largest function of the
//! built-in collectors is a few KiB, and their code a few hundred KiB).

/// Largest function body a third-party component may have, bytes.
pub const MAX_FUNCTION_BODY: usize = 1 << 20;
/// Most code (all function bodies of all its core modules) a
/// third-party component may have, bytes.
pub const MAX_CODE: usize = 32 << 20;

/// Checks `wasm`'s function bodies against the bounds. What does not parse
/// is left to the compiler, which parses it the same way and refuses it
/// before compiling anything.
pub fn check(wasm: &[u8]) -> Result<(), String> {
    let (mut total, mut functions) = (0usize, 0usize);
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        if let wasmparser::Payload::CodeSectionEntry(body) = payload {
            let size = body.range().len();
            functions += 1;
            if size > MAX_FUNCTION_BODY {
                return Err(format!(
                    "its function #{functions} has {} KiB of code, more than the {} KiB a plugin's function may have: compiling it could take minutes and gigabytes, so it is not compiled",
                    size >> 10,
                    MAX_FUNCTION_BODY >> 10
                ));
            }
            total += size;
            if total > MAX_CODE {
                return Err(format!(
                    "it has more than {} MiB of code (past its function #{functions}): compiling it could take minutes and gigabytes, so it is not compiled",
                    MAX_CODE >> 20
                ));
            }
        }
    }
    Ok(())
}

/// A component holding one core module of `n` functions, each about
/// `body` bytes of code (the tests' compile bombs): `local.get 0; i32.const 1; i32.add; local.set 0`.
#[doc(hidden)]
pub fn synthetic(n: usize, body: usize) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(payload.len(), out);
        out.extend_from_slice(payload);
    }
    let mut code = vec![0u8]; // no locals
    for _ in 0..body / 7 {
        code.extend_from_slice(&[0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00]);
    }
    code.extend_from_slice(&[0x20, 0x00, 0x0b]);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 1, 0x7f, 1, 0x7f], &mut module);
    let mut funcs = Vec::new();
    leb(n, &mut funcs);
    funcs.extend(std::iter::repeat_n(0u8, n));
    section(3, &funcs, &mut module);
    let mut bodies = Vec::new();
    leb(n, &mut bodies);
    for _ in 0..n {
        leb(code.len(), &mut bodies);
        bodies.extend_from_slice(&code);
    }
    section(10, &bodies, &mut module);
    let mut c = b"\0asm\x0d\0\x01\0".to_vec();
    section(1, &module, &mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_bodies_and_all_code_are_bounded() {
        check(&synthetic(3, 100_000)).unwrap();
        let e = check(&synthetic(1, 2 << 20)).unwrap_err();
        assert!(e.contains("function #1 has 2048 KiB"), "{e}");
        let e = check(&synthetic(40, 1 << 20)).unwrap_err();
        assert!(e.contains("more than 32 MiB of code"), "{e}");
        // Nested in a component (as every core module of a component is):
        // counted the same. Not wasm at all: left to the compiler.
        assert!(check(b"not wasm").is_ok());
    }
}
