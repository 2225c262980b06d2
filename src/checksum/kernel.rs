//! BLAKE3 of many short messages at once.
//!
//! Every row message is zero-padded to whole 64-byte blocks (the spec says so), so a
//! message of up to 1,024 bytes is one BLAKE3 chunk and its hash is that chunk's
//! root compression. The blake3 crate can compress many equal-length chunks in one
//! SIMD pass (`platform::hash_many`, 8 or 16 lanes); hashing rows one by one would use
//! one lane. The result is exactly `blake3::hash(message)`, which the tests check.

use blake3::platform::Platform;
use blake3::IncrementCounter;

const BLOCK: usize = 64;
const CHUNK: usize = 1024;
const CHUNK_START: u8 = 1;
const CHUNK_END: u8 = 2;
const ROOT: u8 = 8;
const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];

/// The padded length of a message of `len` bytes: whole blocks, at least one.
#[inline]
pub fn padded(len: usize) -> usize {
    len.div_ceil(BLOCK).max(1) * BLOCK
}

/// Adds the first 16 bytes (little-endian u128) of BLAKE3 of each message to `sum`.
///
/// `buf` holds the padded messages back to back; `starts` has one entry per message
/// plus the end. Reuses `scratch` between calls.
pub(super) struct Kernel {
    platform: Platform,
    groups: Vec<Vec<usize>>,
    out: Vec<u8>,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel {
            platform: Platform::detect(),
            groups: vec![Vec::new(); CHUNK / BLOCK + 1],
            out: Vec::new(),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $buf:ident, $starts:ident, $blocks:expr, $idx:expr, $sum:ident, $each:ident, $($n:literal)*) => {
        match $blocks {
            $($n => $self.many::<{ $n * BLOCK }>($buf, $starts, $idx, $sum, $each),)*
            _ => unreachable!(),
        }
    };
}

impl Kernel {
    /// Sums the message hashes into `sum`, one per `starts` window; with `each`, also
    /// puts message `i`'s hash in `each[i]`.
    pub(super) fn sum(
        &mut self,
        buf: &[u8],
        starts: &[usize],
        sum: &mut u128,
        mut each: Option<&mut [u128]>,
    ) {
        for g in &mut self.groups {
            g.clear();
        }
        for (i, w) in starts.windows(2).enumerate() {
            let len = w[1] - w[0];
            if len <= CHUNK {
                self.groups[len / BLOCK].push(i);
            } else {
                let h = prefix(blake3::hash(&buf[w[0]..w[1]]).as_bytes());
                *sum = sum.wrapping_add(h);
                if let Some(each) = each.as_deref_mut() {
                    each[i] = h;
                }
            }
        }
        let mut groups = std::mem::take(&mut self.groups);
        for (blocks, idx) in groups.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let each = each.as_deref_mut();
            dispatch!(self, buf, starts, blocks, idx, sum, each, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
        std::mem::swap(&mut self.groups, &mut groups);
    }

    /// Hashes messages `idx` (indexes into `starts`), all `N` bytes long.
    fn many<const N: usize>(
        &mut self,
        buf: &[u8],
        starts: &[usize],
        idx: &[usize],
        sum: &mut u128,
        mut each: Option<&mut [u128]>,
    ) {
        const LANES: usize = 64;
        let mut inputs: Vec<&[u8; N]> = Vec::with_capacity(LANES);
        self.out.resize(LANES * 32, 0);
        for chunk in idx.chunks(LANES) {
            inputs.clear();
            inputs.extend(chunk.iter().map(|i| {
                let s = starts[*i];
                <&[u8; N]>::try_from(&buf[s..s + N]).expect("padded message")
            }));
            let out = &mut self.out[..inputs.len() * 32];
            self.platform.hash_many(
                &inputs,
                &IV,
                0,
                IncrementCounter::No,
                0,
                CHUNK_START,
                CHUNK_END | ROOT,
                out,
            );
            for (h, i) in out.chunks_exact(32).zip(chunk) {
                let h = prefix(h);
                *sum = sum.wrapping_add(h);
                if let Some(each) = each.as_deref_mut() {
                    each[*i] = h;
                }
            }
        }
    }
}

#[inline]
pub(super) fn prefix(h: &[u8]) -> u128 {
    u128::from_le_bytes(h[..16].try_into().expect("32-byte hash"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_plain_blake3_for_every_length() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for blocks in 1..=20 {
            let len = blocks * BLOCK;
            let mut buf = Vec::new();
            let mut starts = vec![0];
            let mut want = 0u128;
            for k in 0..70 {
                let msg = &data[k..k + len];
                want = want.wrapping_add(prefix(blake3::hash(msg).as_bytes()));
                buf.extend_from_slice(msg);
                starts.push(buf.len());
            }
            let mut got = 0u128;
            let mut each = vec![0u128; 70];
            Kernel::default().sum(&buf, &starts, &mut got, Some(&mut each));
            assert_eq!(got, want, "{blocks} blocks");
            for (k, h) in each.iter().enumerate() {
                let msg = &data[k..k + len];
                assert_eq!(*h, prefix(blake3::hash(msg).as_bytes()), "{blocks} blocks");
            }
        }
    }

    #[test]
    fn padding_is_whole_blocks_at_least_one() {
        assert_eq!(padded(0), 64);
        assert_eq!(padded(1), 64);
        assert_eq!(padded(64), 64);
        assert_eq!(padded(65), 128);
    }
}
