//! What the host's page-table check found, as the guest reads it back from BAR0 (the `CHECK`
//! ioctl) and puts it into a result (`host_check`).

use rangefault_abi::check as c;
use rangefault_abi::uapi::CheckArgs;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostCheck {
    pub pass: bool,
    /// `pass`, `mismatch`, `walk_error`, `bad_request`, `unsupported` (or `idle`).
    pub status: String,
    pub pages: u32,
    pub present: u32,
    pub leaves: Leaves,
    /// Pages mapped correctly by smaller leaves than possible (THP disabled, an existing PTE
    /// table): not a mismatch.
    pub smaller_pages: u32,
    /// The memory type of every present page (`WC` for VRAM), or `mixed`.
    pub memtype: String,
    pub first_mismatch: Option<Mismatch>,
    /// Index + 1 of the full record in the host report's `host_checks.records`.
    pub seq: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaves {
    #[serde(rename = "4K")]
    pub k4: u32,
    #[serde(rename = "2M")]
    pub m2: u32,
    #[serde(rename = "1G")]
    pub g1: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub va: String,
    /// `not_present`, `outside_range`, `wrong_gpa`, `wrong_size`, `wrong_memtype`,
    /// `root_not_cr3`.
    pub kind: String,
}

impl HostCheck {
    /// The first mismatch's kind, if any.
    pub fn mismatch_kind(&self) -> Option<&str> {
        self.first_mismatch.as_ref().map(|m| m.kind.as_str())
    }
}

impl From<CheckArgs> for HostCheck {
    fn from(a: CheckArgs) -> Self {
        let status = match a.status {
            c::STATUS_PASS => "pass",
            c::STATUS_MISMATCH => "mismatch",
            c::STATUS_WALK_ERROR => "walk_error",
            c::STATUS_BAD_REQUEST => "bad_request",
            c::STATUS_UNSUPPORTED => "unsupported",
            _ => "idle",
        };
        let memtype = match a.memtype {
            c::MEMTYPE_UC => "UC",
            c::MEMTYPE_WC => "WC",
            c::MEMTYPE_WT => "WT",
            c::MEMTYPE_WP => "WP",
            c::MEMTYPE_WB => "WB",
            c::MEMTYPE_UC_MINUS => "UC-",
            _ => "mixed",
        };
        let kind = match a.mismatch_kind {
            c::MISMATCH_NOT_PRESENT => Some("not_present"),
            c::MISMATCH_OUTSIDE_RANGE => Some("outside_range"),
            c::MISMATCH_WRONG_GPA => Some("wrong_gpa"),
            c::MISMATCH_WRONG_SIZE => Some("wrong_size"),
            c::MISMATCH_WRONG_MEMTYPE => Some("wrong_memtype"),
            c::MISMATCH_ROOT_NOT_CR3 => Some("root_not_cr3"),
            _ => None,
        };
        HostCheck {
            pass: a.status == c::STATUS_PASS,
            status: status.into(),
            pages: a.pages,
            present: a.present,
            leaves: Leaves {
                k4: a.leaves_4k,
                m2: a.leaves_2m,
                g1: a.leaves_1g,
            },
            smaller_pages: a.smaller_pages,
            memtype: memtype.into(),
            first_mismatch: kind.map(|kind| Mismatch {
                va: format!("{:#x}", a.mismatch_va),
                kind: kind.into(),
            }),
            seq: a.seq,
        }
    }
}
