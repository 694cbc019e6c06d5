//! The guard with the real crate server and the real device backend, driven
//! by a raw client socket the way QEMU drives it, plus the bad input QEMU
//! never sends.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use device_model::{abi, DeviceConfig, RangefaultDevice};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_BAR3_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_MMAP,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, ServerBackend};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use vfio_user_guard::wire::{
    Header, FLAG_ERROR, FLAG_NO_REPLY, HEADER_SIZE, TYPE_MASK, TYPE_REPLY,
};
use vfio_user_guard::{GuardOptions, GuardedServer};
use vmm::vfio_server::{self, DeviceServer, ServerStats};

const MIB: u64 = 1 << 20;

const VERSION: u16 = 1;
const DMA_MAP: u16 = 2;
const DMA_UNMAP: u16 = 3;
const DEVICE_GET_INFO: u16 = 4;
const DEVICE_GET_REGION_INFO: u16 = 5;
const GET_REGION_IO_FDS: u16 = 6;
const GET_IRQ_INFO: u16 = 7;
const SET_IRQS: u16 = 8;
const REGION_READ: u16 = 9;
const REGION_WRITE: u16 = 10;

/// Config-space offset whose write makes [`PanicOnWrite`] panic.
const PANIC_OFFSET: u64 = 0x40;

struct Harness {
    client: UnixStream,
    server: GuardedServer,
    stats: Arc<ServerStats>,
    next_id: u16,
    _dir: tempfile::TempDir,
}

struct Reply {
    header: Header,
    body: Vec<u8>,
    fd: Option<File>,
}

fn start() -> Harness {
    start_with(DeviceServer::new)
}

/// The guard in front of the crate server serving a 64 MiB device through
/// the backend `make` builds.
fn start_with<B: ServerBackend>(
    make: impl FnOnce(Arc<Mutex<RangefaultDevice>>, Arc<ServerStats>) -> B + Send + 'static,
) -> Harness {
    start_recording(make, None)
}

/// [`start_with`], the guard recording the client's bytes into `record`.
fn start_recording<B: ServerBackend>(
    make: impl FnOnce(Arc<Mutex<RangefaultDevice>>, Arc<ServerStats>) -> B + Send + 'static,
    record: Option<Box<dyn Write + Send>>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = DeviceConfig::new(64 * MIB, 2 * MIB).unwrap();
    let device = Arc::new(Mutex::new(RangefaultDevice::new(config).unwrap()));
    let regions = vfio_server::regions(&device.lock().unwrap());
    let stats = Arc::new(ServerStats::default());
    let socket = dir.path().join("vfio-user.sock");
    let backend_stats = stats.clone();
    let guard_stats = stats.clone();
    let options = GuardOptions {
        stall_timeout: Duration::from_millis(300),
        record,
        ..GuardOptions::new(move || {
            guard_stats.rejected.inc();
        })
    };
    let server = GuardedServer::start(
        &socket,
        &dir.path().join("device.sock"),
        regions,
        vfio_server::irqs(),
        move || make(device, backend_stats),
        options,
    )
    .unwrap();
    let client = UnixStream::connect(&socket).unwrap();
    // A test waiting for a reply that never comes fails instead of hanging.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Harness {
        client,
        server,
        stats,
        next_id: 0,
        _dir: dir,
    }
}

impl Harness {
    fn send_raw(&self, header: Header, body: &[u8]) {
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(body);
        (&self.client).write_all(&bytes).unwrap();
    }

    /// Sends a command; returns its message id.
    fn send_flags(&mut self, command: u16, flags: u32, body: &[u8]) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        let header = Header {
            message_id: self.next_id,
            command,
            message_size: (HEADER_SIZE + body.len()) as u32,
            flags,
            error: 0,
        };
        self.send_raw(header, body);
        self.next_id
    }

    fn send(&mut self, command: u16, body: &[u8]) -> u16 {
        self.send_flags(command, 0, body)
    }

    fn recv(&self) -> Reply {
        let mut bytes = [0u8; HEADER_SIZE];
        let (got, fd) = self.client.recv_with_fd(&mut bytes).unwrap();
        assert_ne!(got, 0, "the guard closed the connection");
        (&self.client).read_exact(&mut bytes[got..]).unwrap();
        let header = Header::from_bytes(&bytes);
        let mut body = vec![0; header.body_size()];
        (&self.client).read_exact(&mut body).unwrap();
        Reply { header, body, fd }
    }

    /// Sends a command and checks that its reply is a success.
    fn call(&mut self, command: u16, body: &[u8]) -> Reply {
        let id = self.send(command, body);
        let reply = self.recv();
        assert_eq!(reply.header.message_id, id);
        assert_eq!(reply.header.command, command);
        assert_eq!(reply.header.flags & TYPE_MASK, TYPE_REPLY);
        assert!(
            !reply.header.is_error(),
            "command {command} failed: {:?}",
            reply.header
        );
        reply
    }

    /// Sends a command and checks that it is refused with `errno`.
    fn refused(&mut self, command: u16, body: &[u8], errno: i32) {
        let id = self.send(command, body);
        self.expect_error(id, errno);
    }

    fn expect_error(&self, id: u16, errno: i32) {
        let reply = self.recv();
        assert_eq!(reply.header.message_id, id);
        assert_eq!(reply.header.flags, TYPE_REPLY | FLAG_ERROR);
        assert_eq!(reply.header.error, errno as u32, "{:?}", reply.header);
        assert_eq!(reply.header.message_size, HEADER_SIZE as u32);
    }

    fn version(&mut self) {
        let reply = self.call(VERSION, &version_body(QEMU_CAPABILITIES));
        let json = &reply.body[4..reply.body.len() - 1];
        let caps: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(caps["capabilities"]["max_data_xfer_size"], 1 << 20);
    }

    /// The client's first command after the handshake; proves the stream
    /// is in step.
    fn device_info(&mut self) {
        let reply = self.call(
            DEVICE_GET_INFO,
            &[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(u32_at(&reply.body, 8), VFIO_PCI_NUM_REGIONS);
        assert_eq!(u32_at(&reply.body, 12), VFIO_PCI_NUM_IRQS);
    }

    fn rejected(&self) -> u64 {
        self.stats.rejected.get()
    }

    /// Closes the client's end and returns the guard's final report.
    fn close(self) -> Option<String> {
        drop(self.client);
        self.server
            .wait_outcome(Duration::from_secs(5))
            .expect("the guard did not stop")
    }
}

const QEMU_CAPABILITIES: &str = r#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"migration":{"pgsize":4096,"max_bitmap_size":1048576}}}"#;

fn version_body(json: &str) -> Vec<u8> {
    let mut body = vec![0, 0, 2, 0];
    body.extend_from_slice(json.as_bytes());
    body.push(0);
    body
}

fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(body[at..at + 4].try_into().unwrap())
}

fn region_access(region: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut body = offset.to_ne_bytes().to_vec();
    body.extend_from_slice(&region.to_ne_bytes());
    body.extend_from_slice(&count.to_ne_bytes());
    body
}

fn region_write(region: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut body = region_access(region, offset, data.len() as u32);
    body.extend_from_slice(data);
    body
}

fn set_irqs(index: u32, flags: u32, start: u32, count: u32) -> Vec<u8> {
    [20, flags, index, start, count]
        .iter()
        .flat_map(|v: &u32| v.to_ne_bytes())
        .collect()
}

#[test]
fn a_valid_handshake_then_device_info() {
    let mut h = start();
    h.version();
    h.device_info();
    assert_eq!(h.rejected(), 0);
    // The client closing its end is a clean stop.
    assert_eq!(h.close(), None);
}

#[test]
fn bad_version_data_is_einval_and_nothing_is_lost() {
    let mut h = start();
    let not_json = version_body("{\"capabilities\":");
    let mut no_nul = version_body(QEMU_CAPABILITIES);
    no_nul.pop();
    let mut not_utf8 = version_body("{\"capabilities\":{}}");
    not_utf8[5] = 0xff;
    let wrong_type = version_body(r#"{"capabilities":{"max_msg_fds":"many"}}"#);
    let bad = [not_json, no_nul, not_utf8, wrong_type, vec![0, 0]];
    for body in &bad {
        h.refused(VERSION, body, libc::EINVAL);
        h.device_info();
    }
    // The handshake still works afterwards, and the device server is alive.
    h.version();
    h.device_info();
    assert_eq!(h.rejected(), bad.len() as u64);
    assert_eq!(h.close(), None);
}

#[test]
fn empty_version_data_takes_the_defaults() {
    let mut h = start();
    h.call(VERSION, &[0, 0, 2, 0]);
    h.device_info();
}

#[test]
fn an_unknown_command_is_skipped_whole() {
    let mut h = start();
    h.version();
    // A payload that itself looks like a message: read as a header, it
    // would be answered, and the stream would be one reply out of step.
    let mut payload = Header {
        message_id: 0x7777,
        command: DEVICE_GET_INFO,
        message_size: 32,
        flags: 0,
        error: 0,
    }
    .to_bytes()
    .to_vec();
    payload.resize(100, 0);
    h.refused(99, &payload, libc::ENOTSUP);
    h.device_info();
    // Commands the crate knows but does not serve, likewise.
    h.refused(GET_REGION_IO_FDS, &payload, libc::ENOTSUP);
    h.device_info();
    assert_eq!(h.rejected(), 2);
}

#[test]
fn a_message_smaller_than_its_header_is_einval() {
    let mut h = start();
    h.version();
    let header = Header {
        message_id: 9,
        command: DEVICE_GET_INFO,
        message_size: 8,
        flags: 0,
        error: 0,
    };
    h.send_raw(header, &[]);
    h.expect_error(9, libc::EINVAL);
    h.device_info();
}

#[test]
fn an_oversized_message_that_is_sent_is_skipped() {
    let mut h = start();
    h.version();
    // A 2 MiB REGION_WRITE: over the 1 MiB transfer limit.
    let body = region_write(VFIO_PCI_CONFIG_REGION_INDEX, 0, &vec![0xaa; 2 << 20]);
    h.refused(REGION_WRITE, &body, libc::E2BIG);
    h.device_info();
    assert_eq!(h.close(), None);
}

#[test]
fn an_oversized_message_that_never_comes_closes_the_connection() {
    let mut h = start();
    h.version();
    let header = Header {
        message_id: 5,
        command: REGION_WRITE,
        message_size: 0xffff_fff0,
        flags: 0,
        error: 0,
    };
    h.send_raw(header, &[]);
    h.expect_error(5, libc::E2BIG);
    // The guard waits for the 4 GiB it was promised, gives up after the
    // stall timeout and closes the connection: the framing is lost.
    let mut byte = [0u8];
    assert_eq!((&h.client).read(&mut byte).unwrap(), 0);
    let outcome = h.close().expect("a lost connection is reported");
    assert!(outcome.contains("stalled"), "{outcome}");
}

#[test]
fn config_space_reads_through_the_guard() {
    let mut h = start();
    h.version();
    let reply = h.call(
        REGION_READ,
        &region_access(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4),
    );
    // The reply echoes offset, region and count, then the data.
    assert_eq!(reply.body.len(), 16 + 4);
    let ids = u32_at(&reply.body, 16);
    assert_eq!(ids & 0xffff, u32::from(abi::VENDOR_ID));
    assert_eq!(ids >> 16, u32::from(abi::DEVICE_ID));
    assert_eq!(abi::VENDOR_ID, 0x1234);
}

#[test]
fn accesses_outside_a_region_are_einval() {
    let mut h = start();
    h.version();
    let absent = VFIO_PCI_BAR3_REGION_INDEX;
    h.refused(REGION_READ, &region_access(absent, 0, 4), libc::EINVAL);
    h.refused(REGION_READ, &region_access(42, 0, 4), libc::EINVAL);
    let config = VFIO_PCI_CONFIG_REGION_INDEX;
    h.refused(REGION_READ, &region_access(config, 254, 4), libc::EINVAL);
    // A write carries its data; refused, the data is skipped too.
    h.refused(
        REGION_WRITE,
        &region_write(absent, 0, &[0x55; 64]),
        libc::EINVAL,
    );
    h.device_info();
    assert_eq!(h.rejected(), 4);
}

#[test]
fn wrongly_sized_commands_are_einval() {
    let mut h = start();
    h.version();
    // DMA_UNMAP is 24 bytes after the header; 8 more would desync the crate.
    h.refused(DMA_UNMAP, &[0; 32], libc::EINVAL);
    h.refused(DEVICE_GET_INFO, &[0; 8], libc::EINVAL);
    h.device_info();
}

#[test]
fn unaligned_dma_maps_and_unmaps_are_einval() {
    let mut h = start();
    h.version();
    // DMA_MAP body: argsz, flags, offset, address, size.
    let map = |offset: u64, address: u64, size: u64| {
        let mut body = vec![32, 0, 0, 0, 3, 0, 0, 0];
        for value in [offset, address, size] {
            body.extend_from_slice(&value.to_ne_bytes());
        }
        body
    };
    h.refused(DMA_MAP, &map(0, 0x1800, 0x1000), libc::EINVAL);
    h.refused(DMA_MAP, &map(0x10, 0x1000, 0x1000), libc::EINVAL);
    h.refused(DMA_MAP, &map(0, 0x1000, 0x1001), libc::EINVAL);
    // DMA_UNMAP body: argsz, flags, address, size.
    let mut unmap = vec![24, 0, 0, 0, 0, 0, 0, 0];
    unmap.extend_from_slice(&0x1800u64.to_ne_bytes());
    unmap.extend_from_slice(&0x1000u64.to_ne_bytes());
    h.refused(DMA_UNMAP, &unmap, libc::EINVAL);
    h.device_info();
}

#[test]
fn dma_map_with_two_fds_is_einval() {
    let mut h = start();
    h.version();
    let mut body = vec![0u8; 32];
    body[4..8].copy_from_slice(&DmaMapFlags::READ_WRITE.bits().to_ne_bytes());
    let header = Header {
        message_id: 77,
        command: DMA_MAP,
        message_size: (HEADER_SIZE + body.len()) as u32,
        flags: 0,
        error: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let (one, two) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    h.client
        .send_with_fds(&[&bytes[..]], &[one.as_raw_fd(), two.as_raw_fd()])
        .unwrap();
    h.expect_error(77, libc::EINVAL);
    h.device_info();
}

#[test]
fn backend_errors_carry_eio() {
    let mut h = start();
    h.version();
    // The device has no INTx: the backend refuses, the crate says errno 0.
    let intx = set_irqs(
        VFIO_PCI_INTX_IRQ_INDEX,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        0,
        1,
    );
    h.refused(SET_IRQS, &intx, libc::EIO);
    h.device_info();
    assert_eq!(h.rejected(), 1, "counted once, by the backend");
}

#[test]
fn no_reply_messages_get_none_even_when_they_fail() {
    let mut h = start();
    h.version();
    // A posted config write, a failing posted SET_IRQS, and a query that
    // asks for no reply (the crate would fail it without reading it).
    h.send_flags(
        REGION_WRITE,
        FLAG_NO_REPLY,
        &region_write(VFIO_PCI_CONFIG_REGION_INDEX, 4, &[6, 0]),
    );
    let intx = set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE, 0, 1);
    h.send_flags(SET_IRQS, FLAG_NO_REPLY, &intx);
    h.send_flags(DEVICE_GET_INFO, FLAG_NO_REPLY, &[0; 16]);
    // A refused NoReply message gets no reply either.
    h.send_flags(99, FLAG_NO_REPLY, &[0; 8]);
    // The next reply is the next command's.
    h.device_info();
    let reply = h.call(
        REGION_READ,
        &region_access(VFIO_PCI_CONFIG_REGION_INDEX, 4, 2),
    );
    assert_eq!(&reply.body[16..], &[6, 0], "the posted write happened");
}

#[test]
fn unsolicited_replies_are_ignored() {
    let mut h = start();
    h.version();
    h.send_flags(DEVICE_GET_INFO, TYPE_REPLY, &[0; 8]);
    h.device_info();
    assert_eq!(h.rejected(), 1);
}

#[test]
fn region_info_relays_the_vram_fd() {
    let mut h = start();
    h.version();
    let mut body = [0u8; 32];
    body[0..4].copy_from_slice(&256u32.to_ne_bytes()); // argsz: room for caps
    body[8..12].copy_from_slice(&VFIO_PCI_BAR2_REGION_INDEX.to_ne_bytes());
    let reply = h.call(DEVICE_GET_REGION_INFO, &body);
    assert!(u32_at(&reply.body, 4) & VFIO_REGION_INFO_FLAG_MMAP != 0);
    let vram = reply.fd.expect("the VRAM memfd");
    assert_eq!(vram.metadata().unwrap().len(), 64 * MIB);
}

/// The real backend, except that one config write panics, as a bug in the
/// crate or the backend would.
struct PanicOnWrite(DeviceServer);

impl ServerBackend for PanicOnWrite {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        self.0.region_read(region, offset, data)
    }
    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if region == VFIO_PCI_CONFIG_REGION_INDEX && offset == PANIC_OFFSET {
            panic!("the test's backend panics here");
        }
        self.0.region_write(region, offset, data)
    }
    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        self.0.dma_map(flags, offset, address, size, fd)
    }
    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        self.0.dma_unmap(flags, address, size)
    }
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.reset()
    }
    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        self.0.set_irqs(index, flags, start, count, fds)
    }
}

#[test]
fn a_dead_device_server_is_reported_and_answers_enodev() {
    let mut h = start_with(|device, stats| PanicOnWrite(DeviceServer::new(device, stats)));
    h.version();
    let write = region_write(VFIO_PCI_CONFIG_REGION_INDEX, PANIC_OFFSET, &[1, 0, 0, 0]);
    h.refused(REGION_WRITE, &write, libc::ENODEV);
    // Later messages are answered, not left hanging.
    h.refused(DEVICE_GET_INFO, &[0; 16], libc::ENODEV);
    h.refused(99, &[0; 4], libc::ENOTSUP);
    let outcome = h.close().expect("the panic is reported");
    assert!(
        outcome.contains("panicked") && outcome.contains("the test's backend panics here"),
        "{outcome}"
    );
}

#[test]
fn fds_with_commands_that_take_none_are_dropped() {
    let mut h = start();
    h.version();
    let header = Header {
        message_id: 3,
        command: DEVICE_GET_INFO,
        message_size: 32,
        flags: 0,
        error: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&[0; 16]);
    let file = tempfile::tempfile().unwrap();
    let fd: OwnedFd = file.into();
    h.client
        .send_with_fds(&[&bytes[..]], &[fd.as_raw_fd()])
        .unwrap();
    let reply = h.recv();
    assert_eq!(reply.header.message_id, 3);
    assert!(!reply.header.is_error());
}

/// What QEMU's vfio-pci does with the ERR irq: asks for its info (and warns
/// "Could not enable error recovery" unless the count is 1), then sends an
/// eventfd for it, then at exit "-1" (no fd).
#[test]
fn the_err_irq_is_offered_and_takes_an_eventfd() {
    let mut h = start();
    h.version();
    let irq_info = |index: u32| -> Vec<u8> {
        [16, 0, index, 0]
            .iter()
            .flat_map(|v: &u32| v.to_ne_bytes())
            .collect()
    };
    let info = h.call(GET_IRQ_INFO, &irq_info(VFIO_PCI_ERR_IRQ_INDEX));
    // Body: argsz, flags, index, count.
    assert_eq!(u32_at(&info.body, 4), VFIO_IRQ_INFO_EVENTFD);
    assert_eq!(u32_at(&info.body, 8), VFIO_PCI_ERR_IRQ_INDEX);
    assert_eq!(u32_at(&info.body, 12), 1);

    let trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    let body = set_irqs(VFIO_PCI_ERR_IRQ_INDEX, trigger, 0, 1);
    let header = Header {
        message_id: 40,
        command: SET_IRQS,
        message_size: (HEADER_SIZE + body.len()) as u32,
        flags: 0,
        error: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let eventfd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap();
    h.client
        .send_with_fds(&[&bytes[..]], &[eventfd.as_raw_fd()])
        .unwrap();
    let reply = h.recv();
    assert_eq!(reply.header.message_id, 40);
    assert!(!reply.header.is_error(), "{:?}", reply.header);
    h.call(SET_IRQS, &body);
    assert_eq!(h.rejected(), 0);

    // Past the last index: refused by the crate, the stream still in step.
    let beyond = VFIO_PCI_NUM_IRQS;
    h.refused(GET_IRQ_INFO, &irq_info(beyond), libc::EINVAL);
    let none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    h.refused(SET_IRQS, &set_irqs(beyond, none, 0, 0), libc::EINVAL);
    h.device_info();
}

/// What `vmm run --record-device-io` writes: every byte the client sent,
/// in order, the bodies of refused and ignored messages included.
#[test]
fn the_recording_is_every_byte_the_client_sent() {
    // A file, as vmm records into.
    let recording = tempfile::NamedTempFile::new().unwrap();
    let file = recording.reopen().unwrap();
    let mut h = start_recording(DeviceServer::new, Some(Box::new(file)));
    let mut sent = Vec::new();
    let mut send = |h: &mut Harness, command: u16, flags: u32, body: &[u8]| {
        let id = h.send_flags(command, flags, body);
        let header = Header {
            message_id: id,
            command,
            message_size: (HEADER_SIZE + body.len()) as u32,
            flags,
            error: 0,
        };
        sent.extend_from_slice(&header.to_bytes());
        sent.extend_from_slice(body);
    };
    send(&mut h, VERSION, 0, &version_body(QEMU_CAPABILITIES));
    h.recv();
    // Refused on its header (its body skipped), ignored, refused whole.
    send(&mut h, 99, 0, &[0x99; 40]);
    h.recv();
    send(&mut h, DEVICE_GET_INFO, TYPE_REPLY, &[0x77; 8]);
    send(&mut h, DMA_UNMAP, 0, &[0x55; 32]);
    h.recv();
    let read = region_access(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4);
    send(&mut h, REGION_READ, 0, &read);
    h.recv();
    assert_eq!(h.rejected(), 3);
    assert_eq!(h.close(), None);
    assert_eq!(std::fs::read(recording.path()).unwrap(), sent);
}

/// QEMU killed mid-message: half a header, then nothing. The guard ends the session (no
/// reply to wait for, no error to report: the client went away) and the device is untouched.
#[test]
fn a_client_killed_mid_message_ends_the_session_cleanly() {
    let mut h = start();
    h.version();
    let header = Header {
        message_id: 5,
        command: DEVICE_GET_INFO,
        message_size: (HEADER_SIZE + 16) as u32,
        flags: 0,
        error: 0,
    };
    (&h.client).write_all(&header.to_bytes()[..7]).unwrap();
    let outcome = h.close();
    assert!(
        outcome.is_none(),
        "a vanished client is not a server error: {outcome:?}"
    );
}

/// The socket closed while a DMA_MAP was on the wire: its header and the guest RAM fd arrived,
/// half of its body did not. Nothing is mapped, the fd is not kept, and the session ends.
#[test]
fn a_socket_closed_during_dma_map_maps_nothing() {
    let mut h = start();
    h.version();
    let ram = tempfile::tempfile().unwrap();
    ram.set_len(2 * MIB).unwrap();
    let mut body = vec![32, 0, 0, 0];
    body.extend_from_slice(&DmaMapFlags::READ_WRITE.bits().to_ne_bytes());
    body.extend_from_slice(&0u64.to_ne_bytes()); // offset
    let header = Header {
        message_id: 9,
        command: DMA_MAP,
        message_size: (HEADER_SIZE + 32) as u32,
        flags: 0,
        error: 0,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&body); // 12 of the body's 32 bytes
    h.client
        .send_with_fds(&[&bytes[..]], &[ram.as_raw_fd()])
        .unwrap();
    let stats = Arc::clone(&h.stats);
    let outcome = h.close();
    assert!(outcome.is_none(), "{outcome:?}");
    assert_eq!(
        stats.dma_maps.get(),
        0,
        "a half-sent DMA_MAP must map nothing"
    );
    assert_eq!(stats.rejected.get(), 0);
}
