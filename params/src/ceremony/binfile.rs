//! iden3's binary container (`.ptau`, `.r1cs`, `.zkey`): a 4-byte magic, a `u32` version, a
//! `u32` section count, then sections, each a `u32` type, a `u64` byte size and the bytes
//! (all integers little-endian). Sections may appear in any order; each type we read must
//! appear exactly once.

use super::CeremonyError;
use std::io::{Read, Seek, SeekFrom};

/// A container opened for reading: where each section lies.
pub struct BinFile<R> {
    source: R,
    /// `(type, offset of the data, size)`, in file order.
    sections: Vec<(u32, u64, u64)>,
    what: String,
}

impl<R: Read + Seek> BinFile<R> {
    /// Reads the header and the section table of `source`, checking the magic and that every
    /// section lies inside the file.
    pub fn open(
        mut source: R,
        magic: &[u8; 4],
        max_version: u32,
        what: &str,
    ) -> Result<Self, CeremonyError> {
        let malformed = |m: String| CeremonyError::Malformed(format!("{what}: {m}"));
        let len = source
            .seek(SeekFrom::End(0))
            .map_err(|e| malformed(e.to_string()))?;
        source
            .seek(SeekFrom::Start(0))
            .map_err(|e| malformed(e.to_string()))?;
        let mut head = [0u8; 12];
        source
            .read_exact(&mut head)
            .map_err(|_| malformed("shorter than its header (truncated?)".into()))?;
        if &head[..4] != magic {
            return Err(malformed(format!(
                "not a {} file (magic {:?})",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(&head[..4])
            )));
        }
        let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if version == 0 || version > max_version {
            return Err(malformed(format!("unsupported version {version}")));
        }
        let n = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let mut pos = 12u64;
        let mut sections = Vec::new();
        for _ in 0..n {
            let mut sh = [0u8; 12];
            source
                .seek(SeekFrom::Start(pos))
                .map_err(|e| malformed(e.to_string()))?;
            source
                .read_exact(&mut sh)
                .map_err(|_| malformed("section table runs past the end (truncated?)".into()))?;
            let ty = u32::from_le_bytes([sh[0], sh[1], sh[2], sh[3]]);
            let mut sz = [0u8; 8];
            sz.copy_from_slice(&sh[4..12]);
            let size = u64::from_le_bytes(sz);
            let start = pos + 12;
            let end = start
                .checked_add(size)
                .filter(|e| *e <= len)
                .ok_or_else(|| malformed(format!("section {ty} runs past the end (truncated?)")))?;
            sections.push((ty, start, size));
            pos = end;
        }
        if pos != len {
            return Err(malformed(format!("{} trailing bytes", len - pos)));
        }
        Ok(Self {
            source,
            sections,
            what: what.to_owned(),
        })
    }

    fn find(&self, ty: u32) -> Result<(u64, u64), CeremonyError> {
        let mut found = self.sections.iter().filter(|s| s.0 == ty);
        match (found.next(), found.next()) {
            (Some(s), None) => Ok((s.1, s.2)),
            (None, _) => Err(CeremonyError::Malformed(format!(
                "{}: section {ty} is missing",
                self.what
            ))),
            (Some(_), Some(_)) => Err(CeremonyError::Malformed(format!(
                "{}: section {ty} appears twice",
                self.what
            ))),
        }
    }

    /// True if a section of this type exists.
    pub fn has(&self, ty: u32) -> bool {
        self.sections.iter().any(|s| s.0 == ty)
    }

    /// Size in bytes of section `ty`.
    pub fn size(&self, ty: u32) -> Result<u64, CeremonyError> {
        Ok(self.find(ty)?.1)
    }

    /// `len` bytes of section `ty` from byte `offset` within it.
    pub fn read(&mut self, ty: u32, offset: u64, len: u64) -> Result<Vec<u8>, CeremonyError> {
        let (start, size) = self.find(ty)?;
        if offset.checked_add(len).is_none_or(|e| e > size) {
            return Err(CeremonyError::Malformed(format!(
                "{}: section {ty} is {size} bytes, needed {} more from byte {offset}",
                self.what, len
            )));
        }
        let io = |e: std::io::Error| CeremonyError::Malformed(format!("{}: {e}", self.what));
        self.source
            .seek(SeekFrom::Start(start + offset))
            .map_err(io)?;
        let len = usize::try_from(len)
            .map_err(|_| CeremonyError::Malformed(format!("{}: section too large", self.what)))?;
        let mut buf = vec![0u8; len];
        self.source.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The whole of section `ty`.
    pub fn section(&mut self, ty: u32) -> Result<Vec<u8>, CeremonyError> {
        let size = self.size(ty)?;
        self.read(ty, 0, size)
    }
}

/// Writes a container with `sections` in the given order.
pub fn write(magic: &[u8; 4], version: u32, sections: &[(u32, &[u8])]) -> Vec<u8> {
    let total: usize = sections.iter().map(|s| 12 + s.1.len()).sum();
    let mut out = Vec::with_capacity(12 + total);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for (ty, data) in sections {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// A little-endian cursor over a section's bytes, with errors that name the file.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    /// Starts at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8], what: &'a str) -> Self {
        Self {
            bytes,
            pos: 0,
            what,
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CeremonyError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| CeremonyError::Malformed(format!("{}: ends early", self.what)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next `u32`.
    pub fn u32(&mut self) -> Result<u32, CeremonyError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next `u64`.
    pub fn u64(&mut self) -> Result<u64, CeremonyError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, CeremonyError> {
        Ok(self.take(1)?[0])
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CeremonyError> {
        if self.remaining() != 0 {
            return Err(CeremonyError::Malformed(format!(
                "{}: {} unexpected bytes at the end of a section",
                self.what,
                self.remaining()
            )));
        }
        Ok(())
    }
}
