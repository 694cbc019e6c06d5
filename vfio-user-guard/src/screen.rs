//! What may reach the `vfio_user` crate's server.
//!
//! The crate reads each command as a fixed-size struct (plus REGION_WRITE's
//! data and VERSION's JSON) whatever `message_size` says, panics on a bad
//! VERSION, and refuses unknown commands without reading their bodies: any
//! of those leaves it out of step with the stream. So a message is passed on
//! only if its size is exactly what the crate will read, and everything the
//! crate would choke on is refused here, with a real errno.

use serde::{Deserialize, Serialize};
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_DATA_BOOL;
use vfio_user::Command;

use crate::wire::{Header, Message, HEADER_SIZE, TYPE_COMMAND, TYPE_REPLY};

/// The `max_data_xfer_size` the crate advertises to the client (its
/// default): no region access may move more.
pub const MAX_DATA_XFER: u32 = 1 << 20;
/// REGION_READ/WRITE: header, offset u64, region u32, count u32.
const REGION_ACCESS_SIZE: u32 = HEADER_SIZE as u32 + 16;
/// The largest message: a REGION_WRITE of MAX_DATA_XFER bytes.
pub const MAX_MESSAGE_SIZE: u32 = REGION_ACCESS_SIZE + MAX_DATA_XFER;
/// The crate's receive buffer holds 16 fds (the most SET_IRQS needs).
pub const MAX_FDS: usize = 16;
/// VERSION: header, major u16, minor u16, then NUL-terminated JSON.
const VERSION_FIXED_SIZE: u32 = HEADER_SIZE as u32 + 4;

/// Why a message is refused, and the errno its reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub errno: i32,
    pub reason: String,
}

fn reject(errno: i32, reason: impl Into<String>) -> Rejection {
    Rejection {
        errno,
        reason: reason.into(),
    }
}

/// What to do with a message once its header is in.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderVerdict {
    /// Read the body and screen the whole message.
    ReadBody,
    /// Refuse it (skipping whatever body it announced).
    Reject(Rejection),
    /// A reply from the client: we never send it commands, so there is
    /// nothing it could answer. Skip it; replying to a reply would only
    /// confuse the client further.
    Ignore(String),
}

/// The sizes of the device's regions, to bound region accesses.
#[derive(Debug, Clone)]
pub struct DeviceShape {
    pub region_sizes: Vec<u64>,
}

/// Decides on a message from its header alone.
pub fn screen_header(header: &Header) -> HeaderVerdict {
    match header.message_type() {
        TYPE_COMMAND => {}
        TYPE_REPLY => {
            return HeaderVerdict::Ignore(format!(
                "an unsolicited reply (command {}, id {})",
                header.command, header.message_id
            ))
        }
        other => {
            return HeaderVerdict::Reject(reject(
                libc::EINVAL,
                format!("message type {other} is neither command nor reply"),
            ))
        }
    }
    if (header.message_size as usize) < HEADER_SIZE {
        return HeaderVerdict::Reject(reject(
            libc::EINVAL,
            format!(
                "message_size {} is smaller than the header",
                header.message_size
            ),
        ));
    }
    if header.message_size > MAX_MESSAGE_SIZE {
        return HeaderVerdict::Reject(reject(
            libc::E2BIG,
            format!(
                "message_size {} is over the limit of {MAX_MESSAGE_SIZE}",
                header.message_size
            ),
        ));
    }
    match supported(header.command) {
        Ok(_) => HeaderVerdict::ReadBody,
        Err(rejection) => HeaderVerdict::Reject(rejection),
    }
}

/// The commands the crate serves; it fails the others without reading them.
fn supported(command: u16) -> Result<Command, Rejection> {
    match Command::n(command) {
        Some(
            command @ (Command::Version
            | Command::DmaMap
            | Command::DmaUnmap
            | Command::DeviceGetInfo
            | Command::DeviceGetRegionInfo
            | Command::GetIrqInfo
            | Command::SetIrqs
            | Command::RegionRead
            | Command::RegionWrite
            | Command::DeviceReset),
        ) => Ok(command),
        Some(command) => Err(reject(
            libc::ENOTSUP,
            format!("command {command:?} is not supported"),
        )),
        None => Err(reject(
            libc::ENOTSUP,
            format!("command {command} is unknown"),
        )),
    }
}

/// Checks a whole message (header screened, body read) and puts it in the
/// form the crate reads. VERSION's JSON is re-encoded from what was
/// validated, so the crate only ever parses JSON it accepts.
pub fn screen_message(message: &mut Message, shape: &DeviceShape) -> Result<(), Rejection> {
    if message.fds.len() > MAX_FDS {
        return Err(reject(
            libc::E2BIG,
            format!("{} fds, more than {MAX_FDS}", message.fds.len()),
        ));
    }
    let command = supported(message.header.command)?;
    let size = message.header.message_size;
    let exact = |expected: u32| {
        if size == expected {
            Ok(())
        } else {
            Err(reject(
                libc::EINVAL,
                format!("{command:?} of message_size {size}, expected {expected}"),
            ))
        }
    };
    match command {
        Command::Version => version(message)?,
        Command::DmaMap => {
            exact(HEADER_SIZE as u32 + 32)?;
            // Body: argsz, flags, offset, address, size.
            page_aligned(
                command,
                &message.body,
                &[("offset", 8), ("address", 16), ("size", 24)],
            )?;
            if message.fds.len() > 1 {
                return Err(reject(
                    libc::EINVAL,
                    format!("DmaMap with {} fds (at most 1)", message.fds.len()),
                ));
            }
        }
        Command::DmaUnmap => {
            exact(HEADER_SIZE as u32 + 24)?;
            // Body: argsz, flags, address, size.
            page_aligned(command, &message.body, &[("address", 8), ("size", 16)])?;
        }
        Command::DeviceGetInfo | Command::GetIrqInfo => exact(HEADER_SIZE as u32 + 16)?,
        Command::DeviceGetRegionInfo => exact(HEADER_SIZE as u32 + 32)?,
        Command::SetIrqs => {
            exact(HEADER_SIZE as u32 + 20)?;
            let flags = u32_at(&message.body, 4);
            if flags & VFIO_IRQ_SET_DATA_BOOL != 0 {
                return Err(reject(
                    libc::ENOTSUP,
                    "SetIrqs with DATA_BOOL is not supported",
                ));
            }
        }
        Command::RegionRead | Command::RegionWrite => region_access(message, command, shape)?,
        Command::DeviceReset => exact(HEADER_SIZE as u32)?,
        // `supported` lets no other command through.
        _ => return Err(reject(libc::ENOTSUP, format!("{command:?}"))),
    }
    // Only DMA_MAP and SET_IRQS take fds; the crate would close any others.
    if !matches!(command, Command::DmaMap | Command::SetIrqs) {
        message.fds.clear();
    }
    Ok(())
}

/// Callers have checked that `body` holds 4 bytes at `at`.
/// DMA maps are made of whole pages (guest RAM regions, BARs); an unaligned one would leave the
/// guest-RAM view unable to remap a split remainder, silently losing RAM.
fn page_aligned(command: Command, body: &[u8], fields: &[(&str, usize)]) -> Result<(), Rejection> {
    for &(name, at) in fields {
        let value = u64::from_ne_bytes(body[at..at + 8].try_into().unwrap_or([0xff; 8]));
        if value % 4096 != 0 {
            return Err(reject(
                libc::EINVAL,
                format!("{command:?} with {name} {value:#x} not 4 KiB aligned"),
            ));
        }
    }
    Ok(())
}

fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
}

fn region_access(
    message: &Message,
    command: Command,
    shape: &DeviceShape,
) -> Result<(), Rejection> {
    let size = message.header.message_size;
    if size < REGION_ACCESS_SIZE {
        return Err(reject(
            libc::EINVAL,
            format!("{command:?} of message_size {size}, shorter than its fields"),
        ));
    }
    let body = &message.body;
    let offset = u64::from(u32_at(body, 0)) | u64::from(u32_at(body, 4)) << 32;
    let region = u32_at(body, 8);
    let count = u32_at(body, 12);
    if count > MAX_DATA_XFER {
        return Err(reject(
            libc::E2BIG,
            format!("{command:?} of {count} bytes, over the limit of {MAX_DATA_XFER}"),
        ));
    }
    let expected = match command {
        Command::RegionWrite => REGION_ACCESS_SIZE + count,
        _ => REGION_ACCESS_SIZE,
    };
    if size != expected {
        return Err(reject(
            libc::EINVAL,
            format!(
                "{command:?} of {count} bytes in a message_size of {size}, expected {expected}"
            ),
        ));
    }
    let region_size = shape.region_sizes.get(region as usize).copied();
    let fits = region_size
        .zip(offset.checked_add(u64::from(count)))
        .is_some_and(|(region_size, end)| end <= region_size);
    if !fits {
        return Err(reject(
            libc::EINVAL,
            match region_size {
                None => format!("{command:?} of region {region}, which does not exist"),
                Some(region_size) => format!(
                    "{command:?} of {count} bytes at {offset:#x} in region {region} \
                     of {region_size:#x} bytes"
                ),
            },
        ));
    }
    Ok(())
}

/// VERSION's JSON, as strict as the crate's own types: anything it parses
/// the crate parses too. Every capability is optional (vfio-user spec);
/// absent ones take the crate's defaults.
#[derive(Debug, Default, Serialize, Deserialize)]
struct VersionData {
    #[serde(default)]
    capabilities: Capabilities,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_msg_fds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_data_xfer_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migration: Option<Migration>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Migration {
    pgsize: u32,
}

fn version(message: &mut Message) -> Result<(), Rejection> {
    let invalid = |why: String| reject(libc::EINVAL, format!("Version: {why}"));
    if message.header.message_size < VERSION_FIXED_SIZE {
        return Err(invalid(format!(
            "message_size {} is too short for major and minor",
            message.header.message_size
        )));
    }
    let json = &message.body[4..];
    let data = if json.is_empty() {
        VersionData::default()
    } else {
        let Some((0, text)) = json.split_last() else {
            return Err(invalid("the version data is not NUL-terminated".into()));
        };
        if text.contains(&0) {
            return Err(invalid(
                "the version data holds a NUL before its end".into(),
            ));
        }
        let text = std::str::from_utf8(text)
            .map_err(|e| invalid(format!("the version data is not UTF-8: {e}")))?;
        serde_json::from_str(text)
            .map_err(|e| invalid(format!("the version data is not valid JSON: {e}")))?
    };
    let Ok(canonical) = serde_json::to_string(&data) else {
        // Plain integers always serialize; refuse rather than panic anyway.
        return Err(invalid("the version data cannot be re-encoded".into()));
    };
    message.body.truncate(4);
    message.body.extend_from_slice(canonical.as_bytes());
    message.body.push(0);
    message.header.message_size = (HEADER_SIZE + message.body.len()) as u32;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u16, message_size: u32) -> Header {
        Header {
            message_id: 1,
            command,
            message_size,
            flags: TYPE_COMMAND,
            error: 0,
        }
    }

    fn version_message(json: &[u8]) -> Message {
        let mut body = vec![0, 0, 2, 0];
        body.extend_from_slice(json);
        Message {
            header: header(1, (HEADER_SIZE + body.len()) as u32),
            body,
            fds: vec![],
        }
    }

    fn json_of(message: &Message) -> serde_json::Value {
        let text = &message.body[4..message.body.len() - 1];
        serde_json::from_slice(text).unwrap()
    }

    #[test]
    fn headers_are_bounded_and_known() {
        assert_eq!(screen_header(&header(4, 32)), HeaderVerdict::ReadBody);
        let errno = |h: Header| match screen_header(&h) {
            HeaderVerdict::Reject(r) => r.errno,
            other => panic!("{other:?}"),
        };
        assert_eq!(errno(header(4, 15)), libc::EINVAL);
        assert_eq!(errno(header(4, MAX_MESSAGE_SIZE + 1)), libc::E2BIG);
        assert_eq!(errno(header(99, 116)), libc::ENOTSUP);
        assert_eq!(errno(header(0, 16)), libc::ENOTSUP);
        assert_eq!(errno(header(6, 16)), libc::ENOTSUP); // GET_REGION_IO_FDS
        let reply = Header {
            flags: TYPE_REPLY,
            ..header(4, 32)
        };
        assert!(matches!(screen_header(&reply), HeaderVerdict::Ignore(_)));
    }

    #[test]
    fn version_json_is_validated_and_re_encoded() {
        let mut qemu_like = version_message(
            br#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"migration":{"pgsize":4096,"max_bitmap_size":1048576},"write_multiple":true}}"#
            .iter()
            .chain(&[0])
            .copied()
            .collect::<Vec<_>>()
            .as_slice(),
        );
        screen_message(
            &mut qemu_like,
            &DeviceShape {
                region_sizes: vec![],
            },
        )
        .unwrap();
        assert_eq!(
            json_of(&qemu_like),
            serde_json::json!({"capabilities": {"max_msg_fds": 16,
                "max_data_xfer_size": 1048576, "migration": {"pgsize": 4096}}})
        );
        assert_eq!(
            qemu_like.header.message_size as usize,
            HEADER_SIZE + qemu_like.body.len()
        );
        // No version data at all: every capability takes its default.
        let mut empty = version_message(b"");
        screen_message(
            &mut empty,
            &DeviceShape {
                region_sizes: vec![],
            },
        )
        .unwrap();
        assert_eq!(json_of(&empty), serde_json::json!({"capabilities": {}}));
    }

    #[test]
    fn bad_version_data_is_einval() {
        let shape = DeviceShape {
            region_sizes: vec![],
        };
        for bad in [
            &b"{\"capabilities\":{}}"[..], // no NUL
            b"{\"capabilities\":{}}\0\0",  // NUL inside
            b"{\"capabilities\":\xff}\0",  // not UTF-8
            b"{\"capabilities\":\0",       // not JSON
            b"[1, 2]\0",                   // not an object
            b"{\"capabilities\":{\"max_msg_fds\":\"x\"}}\0",
            b"{\"capabilities\":{\"max_msg_fds\":-1}}\0",
            b"{\"capabilities\":{\"migration\":{}}}\0", // the crate needs pgsize
        ] {
            let mut message = version_message(bad);
            let rejection = screen_message(&mut message, &shape).unwrap_err();
            assert_eq!(rejection.errno, libc::EINVAL, "{bad:?}: {rejection:?}");
        }
        let mut short = Message {
            header: header(1, 18),
            body: vec![0, 0],
            fds: vec![],
        };
        assert_eq!(
            screen_message(&mut short, &shape).unwrap_err().errno,
            libc::EINVAL
        );
    }

    #[test]
    fn fixed_size_commands_must_be_exact() {
        let shape = DeviceShape {
            region_sizes: vec![],
        };
        // DMA_UNMAP is 40 bytes; 8 more would be read as the next header.
        let mut long = Message {
            header: header(3, 48),
            body: vec![0; 32],
            fds: vec![],
        };
        assert_eq!(
            screen_message(&mut long, &shape).unwrap_err().errno,
            libc::EINVAL
        );
        let mut reset = Message {
            header: header(13, 16),
            body: vec![],
            fds: vec![],
        };
        screen_message(&mut reset, &shape).unwrap();
    }

    fn region_access_message(command: u16, region: u32, offset: u64, count: u32) -> Message {
        let mut body = Vec::new();
        body.extend_from_slice(&offset.to_ne_bytes());
        body.extend_from_slice(&region.to_ne_bytes());
        body.extend_from_slice(&count.to_ne_bytes());
        if command == 10 {
            body.resize(body.len() + count as usize, 0xaa);
        }
        Message {
            header: header(command, (HEADER_SIZE + body.len()) as u32),
            body,
            fds: vec![],
        }
    }

    #[test]
    fn region_accesses_stay_inside_their_region() {
        let shape = DeviceShape {
            region_sizes: vec![0x1000, 0],
        };
        let errno = |mut m: Message| screen_message(&mut m, &shape).map_err(|r| r.errno);
        assert_eq!(errno(region_access_message(9, 0, 0xffc, 4)), Ok(()));
        assert_eq!(errno(region_access_message(10, 0, 0, 8)), Ok(()));
        assert_eq!(
            errno(region_access_message(9, 0, 0xffd, 4)),
            Err(libc::EINVAL)
        );
        assert_eq!(
            errno(region_access_message(9, 0, u64::MAX, 4)),
            Err(libc::EINVAL)
        );
        assert_eq!(errno(region_access_message(9, 1, 0, 1)), Err(libc::EINVAL));
        assert_eq!(errno(region_access_message(9, 2, 0, 1)), Err(libc::EINVAL));
        assert_eq!(
            errno(region_access_message(9, 0, 0, MAX_DATA_XFER + 1)),
            Err(libc::E2BIG)
        );
        // A write whose data is shorter than its count.
        let mut short_write = region_access_message(10, 0, 0, 8);
        short_write.body.truncate(20);
        short_write.header.message_size = (HEADER_SIZE + 20) as u32;
        assert_eq!(errno(short_write), Err(libc::EINVAL));
    }
}
