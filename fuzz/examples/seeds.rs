//! Turns `vmm run --record-device-io DIR` recordings into seed inputs for
//! the fuzz targets, plus a few hand-built ones the boots cannot give
//! (page tables inside the fuzzers' small guest RAM):
//!
//! ```sh
//! cargo run --example seeds -- OUT_DIR RECORDING...
//! ```
//!
//! writes `OUT_DIR/<target>/<name>` for `guard_stream` (the recorded stream
//! in pieces cut at message boundaries), `device_access` (the recorded
//! config-space and BAR0 accesses as ops) and `page_walk`.

use std::path::{Path, PathBuf};

use device_model::abi::{self, check};
use device_model::{DeviceConfig, RangefaultDevice};

use page_walker::LINUX_PAT_MSR;
use rangefault_fuzz::device_ops::{self, DeviceOp};
use rangefault_fuzz::vfio_stream;
use vfio_bindings::bindings::vfio::{VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX};
use vfio_user::Command;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Seeds stay small: libFuzzer mutates short inputs faster (and
/// `guard_stream` reads at most 128 messages of one).
const MAX_STREAM_SEED: usize = 8 << 10;
const MAX_MESSAGES_PER_SEED: usize = 100;
const MAX_OPS_PER_SEED: usize = 256;
/// `device_access`'s geometry byte for the boots' 2 MiB preferred page.
const GEOMETRY_2M: u8 = 21 - 12;

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args.next().expect("usage: seeds OUT_DIR RECORDING...");
    for recording in args {
        let stream =
            std::fs::read(&recording).unwrap_or_else(|e| panic!("{}: {e}", recording.display()));
        let name = recording
            .parent()
            .and_then(Path::file_name)
            .map_or("recording".into(), |n| n.to_string_lossy().into_owned());
        stream_seeds(&out, &name, &stream);
        device_seeds(&out, &name, &stream);
    }
    let host_check = host_check_seed();
    assert_eq!(
        replay_host_check(&host_check),
        check::STATUS_PASS,
        "the hand-built host check passes, so the fuzzer starts from a real walk"
    );
    write(&out, "device_access", "host-check-pass", &host_check);
    for (name, seed) in walk_seeds() {
        write(&out, "page_walk", name, &seed);
    }
}

/// Runs a `device_access` seed's ops on a real device over real guest RAM
/// (as the target does) and returns the host check's status.
fn replay_host_check(seed: &[u8]) -> u32 {
    let config = DeviceConfig::new(64 << 20, 2 << 20).expect("a valid geometry");
    let mut device = RangefaultDevice::new(config).expect("the device");
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 16)]).expect("guest RAM");
    device.set_guest_access(Box::new(std::sync::Arc::new(ram.clone())));
    for op in device_ops::decode(&seed[1..]) {
        match op {
            DeviceOp::RamWrite { slot, value } => ram
                .write_obj(value, GuestAddress(u64::from(slot) * 8))
                .expect("inside guest RAM"),
            DeviceOp::ConfigWrite { offset, data } => device.config_write(offset, &data),
            DeviceOp::Bar0Write { offset, data } => device.regs_write(offset, &data),
            _ => {}
        }
    }
    let mut status = [0u8; 4];
    device.regs_read(check::STATUS, &mut status);
    u32::from_le_bytes(status)
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("the output directory");
    std::fs::write(dir.join(name), bytes).expect("a seed");
}

/// The stream in pieces of whole messages.
fn stream_seeds(out: &Path, name: &str, stream: &[u8]) {
    let mut start = 0;
    let mut piece = 0;
    let mut messages = 0;
    for message in vfio_stream::frame(stream) {
        let end = message.at + message.header.message_size.max(16) as usize;
        let full = end - start > MAX_STREAM_SEED || messages == MAX_MESSAGES_PER_SEED;
        if full && message.at > start {
            write(
                out,
                "guard_stream",
                &format!("{name}-{piece:03}"),
                &stream[start..message.at],
            );
            piece += 1;
            start = message.at;
            messages = 0;
        }
        messages += 1;
    }
    write(
        out,
        "guard_stream",
        &format!("{name}-{piece:03}"),
        &stream[start..],
    );
}

/// The recorded REGION_READ/WRITEs of config space and BAR0, as ops.
fn device_seeds(out: &Path, name: &str, stream: &[u8]) {
    let ops: Vec<DeviceOp> = vfio_stream::frame(stream)
        .into_iter()
        .filter(|m| m.complete && m.body.len() >= 16)
        .filter_map(|m| {
            let body = m.body;
            let offset = u64::from_ne_bytes(body[0..8].try_into().unwrap());
            let region = u32::from_ne_bytes(body[8..12].try_into().unwrap());
            let count = u32::from_ne_bytes(body[12..16].try_into().unwrap()) as usize;
            let data = body.get(16..16 + count).map(<[u8]>::to_vec);
            let config = region == VFIO_PCI_CONFIG_REGION_INDEX;
            let bar0 = region == VFIO_PCI_BAR0_REGION_INDEX;
            match Command::n(m.header.command)? {
                Command::RegionRead if config => Some(DeviceOp::ConfigRead { offset, len: count }),
                Command::RegionRead if bar0 => Some(DeviceOp::Bar0Read { offset, len: count }),
                Command::RegionWrite if config => Some(DeviceOp::ConfigWrite {
                    offset,
                    data: data?,
                }),
                Command::RegionWrite if bar0 => Some(DeviceOp::Bar0Write {
                    offset,
                    data: data?,
                }),
                _ => None,
            }
        })
        .collect();
    for (piece, chunk) in ops.chunks(MAX_OPS_PER_SEED).enumerate() {
        let mut seed = vec![GEOMETRY_2M];
        for op in chunk {
            device_ops::encode(op, &mut seed);
        }
        write(out, "device_access", &format!("{name}-{piece:03}"), &seed);
    }
}

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const HUGE: u64 = 1 << 7;
/// Tables at GPA 0x1000 (root), 0x2000, 0x3000, 0x4000.
const ROOT: u64 = 0x1000;
const VA: u64 = 1 << 30;
const BAR2: u64 = 0x8000_0000;

/// 4-level tables mapping VA 1 GiB onto BAR2 with one 2 MiB WC leaf (PAT
/// slot 1, Linux's WC), as (GPA, entry) pairs.
fn tables_2m() -> Vec<(u64, u64)> {
    vec![
        (ROOT, 0x2000 | PRESENT | WRITABLE),
        (0x2000 + 8, 0x3000 | PRESENT | WRITABLE),
        (0x3000, BAR2 | PRESENT | WRITABLE | HUGE | PWT),
    ]
}

/// The driver's host check of that mapping, through BAR0.
fn host_check_seed() -> Vec<u8> {
    let mut ops = Vec::new();
    for (gpa, entry) in tables_2m() {
        ops.push(DeviceOp::RamWrite {
            slot: (gpa / 8) as u16,
            value: entry,
        });
    }
    let config_write = |offset: u64, value: u32| DeviceOp::ConfigWrite {
        offset,
        data: value.to_le_bytes().to_vec(),
    };
    ops.push(config_write(0x18, BAR2 as u32));
    ops.push(config_write(0x1c, (BAR2 >> 32) as u32));
    ops.push(config_write(0x04, 0x6));
    let bar0_write = |offset: u64, value: u64| DeviceOp::Bar0Write {
        offset,
        data: value.to_le_bytes().to_vec(),
    };
    ops.push(bar0_write(check::ROOT_LO, ROOT));
    ops.push(bar0_write(check::VA_LO, VA));
    ops.push(bar0_write(check::LEN_LO, 2 << 20));
    ops.push(bar0_write(check::OFFSET_LO, 0));
    ops.push(bar0_write(check::PAT_LO, LINUX_PAT_MSR));
    let flags = check::FLAG_REQUIRE_PRESENT | check::STRATEGY_RANGE << check::STRATEGY_SHIFT;
    ops.push(DeviceOp::Bar0Write {
        offset: check::FLAGS,
        data: flags.to_le_bytes().to_vec(),
    });
    ops.push(DeviceOp::Bar0Write {
        offset: check::DOORBELL,
        data: check::RUN.to_le_bytes().to_vec(),
    });
    ops.push(DeviceOp::Bar0Read {
        offset: check::STATUS,
        len: 4,
    });
    ops.push(DeviceOp::ConfigRead {
        offset: u64::from(abi::VENDOR_CAP_OFFSET),
        len: 16,
    });
    let mut seed = vec![GEOMETRY_2M];
    for op in &ops {
        device_ops::encode(op, &mut seed);
    }
    seed
}

/// `page_walk` inputs: the fixed header, then guest RAM from GPA 0.
fn walk_seed(flags: u8, len: u64, gpa: u64, entries: &[(u64, u64)]) -> Vec<u8> {
    let mut seed = Vec::new();
    seed.extend_from_slice(&ROOT.to_le_bytes());
    seed.push(flags);
    seed.push(46); // MAXPHYADDR
    seed.extend_from_slice(&LINUX_PAT_MSR.to_le_bytes());
    seed.extend_from_slice(&VA.to_le_bytes());
    seed.extend_from_slice(&len.to_le_bytes());
    seed.extend_from_slice(&gpa.to_le_bytes());
    seed.push(1); // WC
    let ram_end = entries.iter().map(|&(at, _)| at + 8).max().unwrap_or(0);
    let mut ram = vec![0u8; ram_end as usize];
    for &(at, entry) in entries {
        ram[at as usize..at as usize + 8].copy_from_slice(&entry.to_le_bytes());
    }
    seed.extend_from_slice(&ram);
    seed
}

fn walk_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Flags: bits 1-2 policy (2 = UpTo), bits 3-4 its size (1 = 2M), bit 7
    // require present.
    let up_to_2m = 2 << 1 | 1 << 3 | 0x80;
    let mut ptes = vec![
        (ROOT, 0x2000 | PRESENT | WRITABLE),
        (0x2000 + 8, 0x3000 | PRESENT | WRITABLE),
        (0x3000, 0x4000 | PRESENT | WRITABLE),
    ];
    for page in 0..16 {
        ptes.push((
            0x4000 + 8 * page,
            (BAR2 + (page << 12)) | PRESENT | WRITABLE | PWT,
        ));
    }
    // The same tables pointing back at themselves: a loop the walk must
    // leave after the fixed depth.
    let looping = vec![
        (ROOT, ROOT | PRESENT | WRITABLE),
        (ROOT + 8, ROOT | PRESENT),
    ];
    vec![
        ("leaf-2m", walk_seed(up_to_2m, 2 << 20, BAR2, &tables_2m())),
        ("ptes-64k", walk_seed(up_to_2m, 64 << 10, BAR2, &ptes)),
        (
            "self-reference",
            walk_seed(up_to_2m, 4 << 20, BAR2, &looping),
        ),
        (
            "five-level",
            walk_seed(up_to_2m | 1, 2 << 20, BAR2, &tables_2m()),
        ),
    ]
}
