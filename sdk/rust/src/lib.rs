//! The Rust SDK for Ember functions: it speaks the invocation protocol
//! (proto/invoke.h, docs/function-abi.md) on stdin and stdout, so a handler
//! author writes one function:
//!
//! ```no_run
//! fn handle(req: &ember::Request) -> Result<Vec<u8>, ember::Error> {
//!     Ok(req.payload.to_vec())
//! }
//! fn main() { std::process::exit(ember::main(handle)) }
//! ```
//!
//! The program initialises once (everything before `main`/`run`), then
//! serves invocations in a loop; in Ember's micro guest the snapshot is
//! taken when the loop first waits for work, so initialised state is what
//! clones start from. The same binary runs as a plain process
//! (`ember-invoke --exec`). Standard library only; link it statically
//! (`-C target-feature=+crt-static`, docs/runtimes.md). One invocation at a
//! time; the handler may use threads freely.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::io::FromRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

const HDR_SIZE: usize = 24;
const MAGIC: u32 = 0x4642_4d45; // "EMBF"
const VERSION: u8 = 1;
/// INVOKE and RESULT payload limit (6 MiB).
pub const MAX_PAYLOAD: u32 = 6_291_456;
const MAX_ERROR: usize = 1024;
const MAX_PING: u32 = 256;

const T_READY: u8 = 1;
const T_INVOKE: u8 = 2;
const T_RESULT: u8 = 3;
const T_LOG: u8 = 4;
const T_ERROR: u8 = 5;
const T_PING: u8 = 6;
const T_PONG: u8 = 7;

const ERR_PROTOCOL: u32 = 4;
const ERR_TOO_LARGE: u32 = 5;

/// Buffers above this are dropped after each invocation, so an idle
/// handler (what a snapshot captures) stays small.
const KEEP_MAX: usize = 1 << 20;

/// One invocation.
pub struct Request<'a> {
    /// The request id, for logs.
    pub id: u64,
    /// The request bytes.
    pub payload: &'a [u8],
    /// What the caller allows (None: no deadline).
    pub deadline: Option<Duration>,
}

/// A function error: the RESULT's status (non-zero) and its description,
/// which becomes the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: u32,
    pub message: String,
}

impl Error {
    /// A function error with status 1.
    pub fn new(message: impl Into<String>) -> Error {
        Error { status: 1, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    typ: u8,
    flags: u16,
    arg: u32,
    length: u32,
    id: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum HeaderError {
    Magic,
    Version,
    Type,
    Reserved,
    TooBig,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Magic => "bad magic",
            HeaderError::Version => "unsupported version",
            HeaderError::Type => "unknown frame type",
            HeaderError::Reserved => "reserved flag or argument set",
            HeaderError::TooBig => "payload over the type's limit",
        })
    }
}

fn max_len(typ: u8) -> u32 {
    match typ {
        T_INVOKE | T_RESULT => MAX_PAYLOAD,
        T_LOG => 16384,
        T_ERROR => MAX_ERROR as u32,
        _ => MAX_PING,
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates a header in the order docs/function-abi.md prescribes, before
/// any payload is read.
fn decode_header(b: &[u8; HDR_SIZE]) -> (Header, Result<(), HeaderError>) {
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[16..24]);
    let h = Header {
        typ: b[5],
        flags: u16::from_le_bytes([b[6], b[7]]),
        arg: le32(&b[8..]),
        length: le32(&b[12..]),
        id: u64::from_le_bytes(id),
    };
    let check = || {
        if le32(b) != MAGIC {
            return Err(HeaderError::Magic);
        }
        if b[4] != VERSION {
            return Err(HeaderError::Version);
        }
        if !(T_READY..=T_PONG).contains(&h.typ) {
            return Err(HeaderError::Type);
        }
        let allowed = if h.typ == T_LOG { 1 } else { 0 };
        let arg_ok = match h.typ {
            T_INVOKE | T_RESULT | T_ERROR => true,
            T_LOG => h.arg == 1 || h.arg == 2,
            _ => h.arg == 0,
        };
        if h.flags & !allowed != 0 || !arg_ok {
            return Err(HeaderError::Reserved);
        }
        if h.length > max_len(h.typ) {
            return Err(HeaderError::TooBig);
        }
        Ok(())
    };
    (h, check())
}

fn put_header(out: &mut Vec<u8>, typ: u8, arg: u32, len: usize, id: u64) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(typ);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&arg.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
}

struct Server<R: Read, W: Write> {
    input: R,
    output: W,
    req: Vec<u8>,
    frame: Vec<u8>,
}

impl<R: Read, W: Write> Server<R, W> {
    fn send(&mut self, typ: u8, arg: u32, id: u64, payload: &[u8]) -> io::Result<()> {
        let mut f = Vec::with_capacity(HDR_SIZE + payload.len());
        put_header(&mut f, typ, arg, payload.len(), id);
        f.extend_from_slice(payload);
        self.output.write_all(&f)?;
        self.output.flush()
    }

    fn send_error(&mut self, code: u32, id: u64, msg: &str) -> io::Result<()> {
        let b = msg.as_bytes();
        self.send(T_ERROR, code, id, &b[..b.len().min(MAX_ERROR)])
    }

    fn skip(&mut self, n: u32) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.input).take(n as u64), &mut io::sink())?;
        if copied != n as u64 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stdin ended inside a frame"));
        }
        Ok(())
    }

    fn serve<F>(&mut self, f: &mut F, h: Header) -> io::Result<()>
    where
        F: FnMut(&Request) -> Result<Vec<u8>, Error>,
    {
        self.req.resize(h.length as usize, 0);
        self.input.read_exact(&mut self.req).map_err(|e| {
            io::Error::new(e.kind(), format!("stdin ended inside a request: {}", e))
        })?;
        let req = Request {
            id: h.id,
            payload: &self.req,
            deadline: if h.arg == 0 { None } else { Some(Duration::from_millis(h.arg as u64)) },
        };
        // A panic is one bad request, not the end of an instance that
        // serves many: it becomes a function error.
        let result = match panic::catch_unwind(AssertUnwindSafe(|| f(&req))) {
            Ok(r) => r,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_string());
                Err(Error::new(format!("handler panicked: {}", what)))
            }
        };
        let (status, body) = match result {
            Ok(b) => (0, b),
            Err(e) => (if e.status == 0 { 1 } else { e.status }, e.message.into_bytes()),
        };
        if body.len() > MAX_PAYLOAD as usize {
            let msg = format!("response of {} bytes over the {}-byte limit", body.len(), MAX_PAYLOAD);
            self.send_error(ERR_TOO_LARGE, h.id, &msg)?;
        } else {
            // One write per RESULT (each system call is dear in a VM).
            self.frame.clear();
            put_header(&mut self.frame, T_RESULT, status, body.len(), h.id);
            self.frame.extend_from_slice(&body);
            self.output.write_all(&self.frame)?;
            self.output.flush()?;
        }
        if self.req.capacity() > KEEP_MAX {
            self.req = Vec::new();
        }
        if self.frame.capacity() > KEEP_MAX {
            self.frame = Vec::new();
        }
        Ok(())
    }

    /// Serves frames until end of file between frames.
    fn run<F>(&mut self, mut f: F) -> io::Result<()>
    where
        F: FnMut(&Request) -> Result<Vec<u8>, Error>,
    {
        loop {
            let mut hb = [0u8; HDR_SIZE];
            let mut got = 0;
            while got < HDR_SIZE {
                match self.input.read(&mut hb[got..]) {
                    Ok(0) if got == 0 => return Ok(()), // the clean end
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "stdin ended inside a frame header",
                        ))
                    }
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let (h, check) = decode_header(&hb);
            match check {
                Err(HeaderError::TooBig) if h.typ == T_INVOKE => {
                    // Sound but too long: skip it and refuse this request;
                    // the stream stays in sync.
                    let msg = format!("request of {} bytes over the {}-byte limit", h.length, MAX_PAYLOAD);
                    log(&format!("ember-sdk: {}", msg));
                    self.skip(h.length)?;
                    self.send_error(ERR_TOO_LARGE, h.id, &msg)?;
                    continue;
                }
                Err(e) => {
                    let msg = format!("bad frame on stdin: {}", e);
                    let _ = self.send_error(ERR_PROTOCOL, 0, &msg);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
                }
                Ok(()) => {}
            }
            match h.typ {
                T_INVOKE => self.serve(&mut f, h)?,
                T_PING => {
                    let mut p = vec![0u8; h.length as usize];
                    self.input.read_exact(&mut p)?;
                    self.send(T_PONG, 0, h.id, &p)?;
                }
                _ => self.skip(h.length)?,
            }
        }
    }
}

extern "C" {
    fn dup(fd: i32) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
    fn close(fd: i32) -> i32;
}

/// Moves the frame stream off fd 1: frames go to a private duplicate and
/// fd 1 becomes a copy of fd 2, so stray `println!`s land in the log
/// instead of corrupting the stream. EMBER_SDK_KEEP_STDOUT keeps fd 1.
fn protect_stdout() -> File {
    // SAFETY: plain descriptor calls; the duplicate is owned by the File.
    unsafe {
        if std::env::var_os("EMBER_SDK_KEEP_STDOUT").is_none() {
            let fd = dup(1);
            if fd >= 0 {
                if dup2(2, 1) == 1 {
                    return File::from_raw_fd(fd);
                }
                close(fd);
            }
        }
        File::from_raw_fd(dup(1))
    }
}

/// Serves invocations on stdin/stdout until stdin ends between frames
/// (Ok), or a protocol or I/O error (Err).
pub fn run<F>(f: F) -> io::Result<()>
where
    F: FnMut(&Request) -> Result<Vec<u8>, Error>,
{
    // SAFETY: fd 0 is the invocation stream; nothing else reads it.
    let stdin = unsafe { File::from_raw_fd(0) };
    let mut s = Server {
        input: BufReader::with_capacity(64 << 10, stdin),
        output: protect_stdout(),
        req: Vec::new(),
        frame: Vec::new(),
    };
    let r = s.run(f);
    std::mem::forget(s.input.into_inner()); // fd 0 stays open
    r
}

/// `run` as a main function's exit status: 0 at the end of the stream, 2
/// on a protocol or I/O error (logged).
pub fn main<F>(f: F) -> i32
where
    F: FnMut(&Request) -> Result<Vec<u8>, Error>,
{
    match run(f) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("ember-sdk: {}", e));
            2
        }
    }
}

/// Writes one line to the function's log (stderr, which the runtime turns
/// into LOG frames).
pub fn log(line: &str) {
    let _ = writeln!(io::stderr(), "{}", line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(typ: u8, arg: u32, id: u64, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        put_header(&mut f, typ, arg, payload.len(), id);
        f.extend_from_slice(payload);
        f
    }

    fn frames(mut b: &[u8]) -> Vec<Header> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let mut hb = [0u8; HDR_SIZE];
            hb.copy_from_slice(&b[..HDR_SIZE]);
            let (h, check) = decode_header(&hb);
            assert_eq!(check, Ok(()));
            v.push(h);
            b = &b[HDR_SIZE + h.length as usize..];
        }
        v
    }

    fn serve(input: Vec<u8>, f: impl FnMut(&Request) -> Result<Vec<u8>, Error>) -> (io::Result<()>, Vec<u8>) {
        let mut s = Server { input: &input[..], output: Vec::new(), req: Vec::new(), frame: Vec::new() };
        let r = s.run(f);
        (r, s.output)
    }

    #[test]
    fn serves_invoke_ping_errors_and_panics() {
        let mut input = frame(T_INVOKE, 1000, 1, b"hello");
        input.extend(frame(T_PING, 0, 9, b"p"));
        input.extend(frame(T_INVOKE, 0, 2, b"fail"));
        input.extend(frame(T_INVOKE, 0, 3, b"panic"));
        let (r, out) = serve(input, |req| match req.payload {
            b"fail" => Err(Error { status: 7, message: "nope".into() }),
            b"panic" => panic!("boom"),
            p => {
                assert_eq!(req.deadline, if req.id == 1 { Some(Duration::from_millis(1000)) } else { None });
                Ok([b"echo:", p].concat())
            }
        });
        r.unwrap();
        let hs = frames(&out);
        let got: Vec<(u8, u32, u64, u32)> = hs.iter().map(|h| (h.typ, h.arg, h.id, h.length)).collect();
        assert_eq!(got, vec![(T_RESULT, 0, 1, 10), (T_PONG, 0, 9, 1), (T_RESULT, 7, 2, 4), (T_RESULT, 1, 3, 22)]);
    }

    #[test]
    fn hostile_headers() {
        let good = frame(T_INVOKE, 0, 1, b"");
        let cases: Vec<(fn(&mut Vec<u8>), HeaderError)> = vec![
            (|b| b[0] ^= 1, HeaderError::Magic),
            (|b| b[4] = 2, HeaderError::Version),
            (|b| b[5] = 0, HeaderError::Type),
            (|b| b[5] = 8, HeaderError::Type),
            (|b| b[6] = 1, HeaderError::Reserved),
            (|b| { b[5] = T_PING; b[8] = 1 }, HeaderError::Reserved),
            (|b| b[12..16].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes()), HeaderError::TooBig),
        ];
        for (m, want) in cases {
            let mut b = good.clone();
            m(&mut b);
            let mut hb = [0u8; HDR_SIZE];
            hb.copy_from_slice(&b[..HDR_SIZE]);
            assert_eq!(decode_header(&hb).1, Err(want));
        }
    }

    #[test]
    fn too_large_keeps_sync_and_truncation_fails() {
        let mut big = frame(T_INVOKE, 0, 1, b"");
        big[12..16].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        big.extend(vec![0u8; MAX_PAYLOAD as usize + 1]);
        big.extend(frame(T_INVOKE, 0, 2, b"ok"));
        let (r, out) = serve(big, |req| Ok(req.payload.to_vec()));
        r.unwrap();
        let hs = frames(&out);
        assert_eq!(hs.len(), 2);
        assert_eq!((hs[0].typ, hs[0].arg), (T_ERROR, ERR_TOO_LARGE));
        assert_eq!((hs[1].typ, hs[1].id), (T_RESULT, 2));
        let cut = frame(T_INVOKE, 0, 1, b"abc")[..HDR_SIZE + 1].to_vec();
        assert!(serve(cut, |_| Ok(Vec::new())).0.is_err());
    }
}
