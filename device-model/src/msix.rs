//! MSI-X state: the vector table and PBA that live in BAR0, plus the enable
//! and function-mask bits mirrored from the capability in config space.

use crate::abi;

const VECTORS: usize = abi::MSIX_VECTORS as usize;
/// Bytes per table entry: address lo, address hi, data, vector control.
pub(crate) const ENTRY_SIZE: u64 = 16;
pub(crate) const TABLE_SIZE: u64 = VECTORS as u64 * ENTRY_SIZE;
/// One 64-bit PBA qword per 64 vectors.
pub(crate) const PBA_SIZE: u64 = VECTORS.div_ceil(64) as u64 * 8;
/// Vector control bit 0: the vector is masked.
const CTRL_MASKED: u32 = 1;

/// A message the engine should deliver (write `data` to `address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixMessage {
    pub address: u64,
    pub data: u32,
}

/// One table entry as the guest programmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixVector {
    pub address: u64,
    pub data: u32,
    pub masked: bool,
}

/// Guest-programmed MSI-X state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsixState {
    enabled: bool,
    function_masked: bool,
    /// Raw table dwords per vector: addr lo, addr hi, data, control.
    table: [[u32; 4]; VECTORS],
    pending: u64,
}

impl Default for MsixState {
    fn default() -> Self {
        Self {
            enabled: false,
            function_masked: false,
            // The spec requires every vector to come out of reset masked.
            table: [[0, 0, 0, CTRL_MASKED]; VECTORS],
            pending: 0,
        }
    }
}

impl MsixState {
    /// MSI-X enable (message control bit 15).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Function mask (message control bit 14).
    pub fn function_masked(&self) -> bool {
        self.function_masked
    }

    pub fn vector_count(&self) -> usize {
        VECTORS
    }

    /// Table entry `index`, or `None` past the table.
    pub fn vector(&self, index: usize) -> Option<MsixVector> {
        let [lo, hi, data, ctrl] = *self.table.get(index)?;
        Some(MsixVector {
            address: u64::from(lo) | (u64::from(hi) << 32),
            data,
            masked: ctrl & CTRL_MASKED != 0,
        })
    }

    /// Whether vector `index` has a message held back by a mask.
    pub fn is_pending(&self, index: usize) -> bool {
        index < VECTORS && self.pending & (1 << index) != 0
    }

    /// The PBA as a bitmap (bit n = vector n pending).
    pub fn pending_bits(&self) -> u64 {
        self.pending
    }

    pub(crate) fn set_control(&mut self, enabled: bool, function_masked: bool) {
        self.enabled = enabled;
        self.function_masked = function_masked;
    }

    /// Raises vector `index`: returns the message to deliver now, or records
    /// it as pending while masked. Nothing happens while MSI-X is disabled
    /// (the device has no INTx fallback) or for vectors past the table.
    pub(crate) fn signal(&mut self, index: usize) -> Option<MsixMessage> {
        let v = self.vector(index)?;
        if !self.enabled {
            return None;
        }
        if self.function_masked || v.masked {
            self.pending |= 1 << index;
            return None;
        }
        Some(MsixMessage {
            address: v.address,
            data: v.data,
        })
    }

    /// Clears and returns pending vectors that a mask change has made
    /// deliverable, as the spec requires the device to send them then.
    pub(crate) fn take_deliverable(&mut self) -> Vec<(u16, MsixMessage)> {
        if !self.enabled || self.function_masked {
            return Vec::new();
        }
        let mut out = Vec::new();
        for index in 0..VECTORS {
            if !self.is_pending(index) {
                continue;
            }
            if let Some(v) = self.vector(index).filter(|v| !v.masked) {
                self.pending &= !(1 << index);
                out.push((
                    index as u16,
                    MsixMessage {
                        address: v.address,
                        data: v.data,
                    },
                ));
            }
        }
        out
    }

    /// Table dword at byte offset `off` (relative to the table, 4-aligned).
    pub(crate) fn table_read(&self, off: u64) -> u32 {
        let (entry, word) = (
            (off / ENTRY_SIZE) as usize,
            ((off % ENTRY_SIZE) / 4) as usize,
        );
        self.table.get(entry).map_or(0, |e| e[word])
    }

    pub(crate) fn table_write(&mut self, off: u64, value: u32) {
        let (entry, word) = (
            (off / ENTRY_SIZE) as usize,
            ((off % ENTRY_SIZE) / 4) as usize,
        );
        if let Some(e) = self.table.get_mut(entry) {
            // Vector control has only the mask bit; the rest is reserved.
            e[word] = if word == 3 {
                value & CTRL_MASKED
            } else {
                value
            };
        }
    }

    /// PBA dword at byte offset `off` (relative to the PBA, 4-aligned).
    pub(crate) fn pba_read(&self, off: u64) -> u32 {
        match off / 4 {
            0 => self.pending as u32,
            1 => (self.pending >> 32) as u32,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(m: &mut MsixState, index: u64, addr: u64, data: u32, masked: bool) {
        let base = index * ENTRY_SIZE;
        m.table_write(base, addr as u32);
        m.table_write(base + 4, (addr >> 32) as u32);
        m.table_write(base + 8, data);
        m.table_write(base + 12, u32::from(masked));
    }

    #[test]
    fn reset_state_is_disabled_and_masked() {
        let m = MsixState::default();
        assert!(!m.enabled());
        assert!(!m.function_masked());
        assert_eq!(m.vector_count(), abi::MSIX_VECTORS as usize);
        for i in 0..m.vector_count() {
            assert!(m.vector(i).unwrap().masked);
            assert!(!m.is_pending(i));
        }
        assert_eq!(m.vector(m.vector_count()), None);
    }

    #[test]
    fn table_round_trip_and_reserved_control_bits() {
        let mut m = MsixState::default();
        program(&mut m, 1, 0x1_fee0_1000, 0x4041, false);
        m.table_write(ENTRY_SIZE + 12, 0xffff_fffe);
        assert_eq!(
            m.vector(1),
            Some(MsixVector {
                address: 0x1_fee0_1000,
                data: 0x4041,
                masked: false
            })
        );
        assert_eq!(m.table_read(ENTRY_SIZE + 12), 0);
        assert_eq!(m.table_read(ENTRY_SIZE), 0xfee0_1000);
        // Past the table: ignored, reads 0.
        m.table_write(TABLE_SIZE, 5);
        assert_eq!(m.table_read(TABLE_SIZE), 0);
    }

    #[test]
    fn signal_respects_enable_and_masks() {
        let mut m = MsixState::default();
        program(&mut m, 0, 0xfee0_0000, 0x21, false);
        // Disabled: dropped, not pending.
        assert_eq!(m.signal(0), None);
        assert_eq!(m.pending_bits(), 0);

        m.set_control(true, false);
        let msg = MsixMessage {
            address: 0xfee0_0000,
            data: 0x21,
        };
        assert_eq!(m.signal(0), Some(msg));

        // Function mask: held in the PBA until unmasked.
        m.set_control(true, true);
        assert_eq!(m.signal(0), None);
        assert!(m.is_pending(0));
        assert_eq!(m.pba_read(0), 1);
        assert!(m.take_deliverable().is_empty());
        m.set_control(true, false);
        assert_eq!(m.take_deliverable(), vec![(0, msg)]);
        assert_eq!(m.pending_bits(), 0);

        // Vector mask (vector 1 is masked from reset).
        assert_eq!(m.signal(1), None);
        assert!(m.is_pending(1));
        assert!(m.take_deliverable().is_empty());
        m.table_write(ENTRY_SIZE + 12, 0);
        assert_eq!(m.take_deliverable().len(), 1);
        assert_eq!(m.signal(99), None);
    }
}
