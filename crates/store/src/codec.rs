//! The little binary encoding the event log's records and the event blocks share: integers
//! little-endian, strings with a `u32` length ahead, optional strings behind a 0/1 byte, and an
//! event's read-only and management marks as bits of one flags byte.

use crate::EventRow;

/// Bits of an event's flags byte (blocks add bits of their own above these).
pub(crate) const READ_ONLY: u8 = 1;
pub(crate) const MANAGEMENT: u8 = 2;

/// `row`'s read-only and management marks as flag bits.
pub(crate) fn event_flags(row: &EventRow) -> u8 {
    let mut flags = 0;
    if row.read_only {
        flags |= READ_ONLY;
    }
    if row.management {
        flags |= MANAGEMENT;
    }
    flags
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

/// Reads what the `put_*` functions wrote; `None` where the bytes run out or do not fit.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    pub(crate) fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
