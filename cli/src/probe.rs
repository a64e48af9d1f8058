//! `probe URL`: a health check for images without curl. GETs an `http://` URL and succeeds
//! only on a 2xx answer.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// `probe`: GET an http:// URL, exit 0 on a 2xx status.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// e.g. http://127.0.0.1:8000/v2/health/ready
    pub url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// The status code `url` answers a GET with.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let address = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("{address}: {e}"))?;
    let io = |e: std::io::Error| format!("{address}: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(io)?;
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{address}: not an HTTP answer"))
}

/// Runs `probe` and prints the outcome; the exit code is what health checks read.
pub fn run_probe(args: &ProbeArgs) -> std::process::ExitCode {
    match probe(&args.url, Duration::from_millis(args.timeout_ms)) {
        Ok(status) if (200..300).contains(&status) => {
            println!("{status}");
            std::process::ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{}: answered {status}", args.url);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("probe failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_of_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // The request may arrive in pieces: read up to the end of its head.
            let (mut request, mut buf) = (Vec::new(), [0u8; 256]);
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&request).starts_with("GET /ready HTTP/1.1"));
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap();
        });
        let status = probe(
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(2),
        );
        server.join().unwrap();
        assert_eq!(status, Ok(503));
        assert!(probe("https://x/", Duration::from_secs(1)).is_err());
    }
}
