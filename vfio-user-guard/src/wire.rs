//! vfio-user framing: the 16-byte header, whole messages and the fds that
//! travel with them (SCM_RIGHTS on the header's bytes, as QEMU and the
//! `vfio_user` crate send them).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use libc::{c_void, iovec};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

pub const HEADER_SIZE: usize = 16;

/// Bits 0-3 of `flags`: what kind of message this is.
pub const TYPE_MASK: u32 = 0xf;
pub const TYPE_COMMAND: u32 = 0;
pub const TYPE_REPLY: u32 = 1;
/// The sender wants no reply.
pub const FLAG_NO_REPLY: u32 = 1 << 4;
/// A reply whose `error` field holds an errno.
pub const FLAG_ERROR: u32 = 1 << 5;

/// The kernel never passes more fds in one message (SCM_MAX_FD), so a
/// receive buffer this big is never truncated: a truncated receive loses
/// the bytes it read and with them the framing.
const RECEIVE_FDS: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub message_id: u16,
    pub command: u16,
    /// Of the whole message, header included.
    pub message_size: u32,
    pub flags: u32,
    pub error: u32,
}

impl Header {
    /// vfio-user uses the host's byte order.
    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Self {
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Self {
            message_id: u16_at(0),
            command: u16_at(2),
            message_size: u32_at(4),
            flags: u32_at(8),
            error: u32_at(12),
        }
    }

    pub fn to_bytes(self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0; HEADER_SIZE];
        bytes[0..2].copy_from_slice(&self.message_id.to_ne_bytes());
        bytes[2..4].copy_from_slice(&self.command.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.message_size.to_ne_bytes());
        bytes[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        bytes[12..16].copy_from_slice(&self.error.to_ne_bytes());
        bytes
    }

    pub fn message_type(&self) -> u32 {
        self.flags & TYPE_MASK
    }

    pub fn wants_reply(&self) -> bool {
        self.flags & FLAG_NO_REPLY == 0
    }

    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    /// Bytes after the header, by the header's own account (0 when it
    /// claims to be shorter than itself).
    pub fn body_size(&self) -> usize {
        (self.message_size as usize).saturating_sub(HEADER_SIZE)
    }

    /// The reply that refuses this command with `errno`.
    pub fn error_reply(&self, errno: i32) -> Header {
        Header {
            message_id: self.message_id,
            command: self.command,
            message_size: HEADER_SIZE as u32,
            flags: TYPE_REPLY | FLAG_ERROR,
            error: errno.unsigned_abs(),
        }
    }
}

/// One whole message.
#[derive(Debug)]
pub struct Message {
    pub header: Header,
    /// Exactly `header.message_size - 16` bytes.
    pub body: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// What arrived where a header was expected.
pub enum Received {
    Header(Header, Vec<OwnedFd>),
    /// The peer closed the connection between messages.
    Closed,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Receives a header and the fds sent with it. A read timeout on `stream`
/// (there is one on the client's side) is not an error while no byte of the
/// header has come: the peer is merely idle. Once one has, the rest must
/// follow within the timeout.
pub fn recv_header(stream: &UnixStream) -> io::Result<Received> {
    let mut bytes = [0u8; HEADER_SIZE];
    let mut fds: Vec<RawFd> = vec![-1; RECEIVE_FDS];
    let (received, fd_count) = loop {
        let mut iov = [iovec {
            iov_base: bytes.as_mut_ptr().cast::<c_void>(),
            iov_len: bytes.len(),
        }];
        // SAFETY: the iovec points at `bytes`, which lives across the call
        // and may hold any byte values; `fds` has room for RECEIVE_FDS fds.
        match unsafe { stream.recv_with_fds(&mut iov, &mut fds) } {
            Ok(got) => break got,
            Err(e) => {
                let e = io::Error::from(e);
                if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        }
    };
    let fds: Vec<OwnedFd> = fds[..fd_count]
        .iter()
        // SAFETY: recv_with_fds says the first `fd_count` entries are fds
        // it received for us, open and owned by nobody else.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if received == 0 {
        return Ok(Received::Closed);
    }
    let mut reader = stream;
    reader
        .read_exact(&mut bytes[received..])
        .map_err(|e| mid_message(e, "header"))?;
    Ok(Received::Header(Header::from_bytes(&bytes), fds))
}

/// Names a failure to read the rest of a message.
fn mid_message(e: io::Error, part: &str) -> io::Error {
    if is_timeout(&e) {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer stalled in the middle of a message's {part}"),
        )
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the peer closed the connection in the middle of a message's {part}"),
        )
    } else {
        e
    }
}

/// Reads the body `header` announces (bounded by the caller).
pub fn read_body(stream: &UnixStream, header: &Header) -> io::Result<Vec<u8>> {
    let mut body = vec![0; header.body_size()];
    let mut reader = stream;
    reader
        .read_exact(&mut body)
        .map_err(|e| mid_message(e, "body"))?;
    Ok(body)
}

/// Reads and drops `len` bytes without holding them all, showing each
/// chunk to `seen` first.
pub fn discard(stream: &UnixStream, mut len: usize, mut seen: impl FnMut(&[u8])) -> io::Result<()> {
    let mut chunk = vec![0; len.min(64 << 10)];
    let mut reader = stream;
    while len > 0 {
        let take = len.min(chunk.len());
        reader
            .read_exact(&mut chunk[..take])
            .map_err(|e| mid_message(e, "body"))?;
        seen(&chunk[..take]);
        len -= take;
    }
    Ok(())
}

/// Sends `header` and `body` as one message, with `fds` on its first bytes.
pub fn send(stream: &UnixStream, header: &Header, body: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_SIZE + body.len());
    bytes.extend_from_slice(&header.to_bytes());
    bytes.extend_from_slice(body);
    let raw_fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let sent = loop {
        match stream.send_with_fds(&[&bytes[..]], &raw_fds) {
            Ok(sent) => break sent,
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The fds went with the first bytes; a short send only leaves bytes.
    let mut writer = stream;
    writer.write_all(&bytes[sent..])
}

/// Sends a header-only reply.
pub fn send_header(stream: &UnixStream, header: &Header) -> io::Result<()> {
    send(stream, header, &[], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_host_byte_order() {
        let header = Header {
            message_id: 0x0102,
            command: 9,
            message_size: 0x0304_0506,
            flags: FLAG_NO_REPLY,
            error: 7,
        };
        let bytes = header.to_bytes();
        assert_eq!(&bytes[0..2], &0x0102u16.to_ne_bytes());
        assert_eq!(&bytes[4..8], &0x0304_0506u32.to_ne_bytes());
        assert_eq!(Header::from_bytes(&bytes), header);
        assert!(!header.wants_reply());
    }

    #[test]
    fn error_replies_keep_the_id_and_command() {
        let command = Header {
            message_id: 42,
            command: 99,
            message_size: 116,
            flags: TYPE_COMMAND,
            error: 0,
        };
        let reply = command.error_reply(libc::ENOTSUP);
        assert_eq!(
            reply,
            Header {
                message_id: 42,
                command: 99,
                message_size: 16,
                flags: TYPE_REPLY | FLAG_ERROR,
                error: libc::ENOTSUP as u32,
            }
        );
    }

    #[test]
    fn a_header_split_across_writes_is_reassembled_with_its_fds() {
        let (a, b) = UnixStream::pair().unwrap();
        let header = Header {
            message_id: 1,
            command: 2,
            message_size: 16,
            flags: 0,
            error: 0,
        };
        let bytes = header.to_bytes();
        let file = tempfile::tempfile().unwrap();
        a.send_with_fds(&[&bytes[..5]], &[file.as_raw_fd()])
            .unwrap();
        (&a).write_all(&bytes[5..]).unwrap();
        let Received::Header(got, fds) = recv_header(&b).unwrap() else {
            panic!("closed")
        };
        assert_eq!(got, header);
        assert_eq!(fds.len(), 1);
        drop(a);
        assert!(matches!(recv_header(&b).unwrap(), Received::Closed));
    }
}
