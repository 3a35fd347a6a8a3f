//! Turning a cube's planes into spectra and back while converting between FITS's big-endian
//! words and native floats: one pass over the bytes each way, in 8 × 8 blocks of 32-bit words
//! (AVX2 shuffles where the CPU has them, plain loops otherwise; the words are moved, never
//! computed on, so both give the same bits, NaN payloads included).
//!
//! Must never: read or write outside the `rows × cols` words it is given.

use std::mem::MaybeUninit;

// Reversing a word's bytes turns big-endian into native only on a little-endian CPU.
const _: () = assert!(cfg!(target_endian = "little"));

/// `dst[c·rows + r] = swap(src[r·cols + c])` for every 4-byte word (`src` and `dst` hold
/// `rows·cols` words): the transpose of a row-major `rows × cols` matrix, each word's bytes
/// reversed (big-endian to native on a little-endian CPU, or back). Every word of `dst` is
/// written.
pub fn transpose_swap32(src: &[u8], rows: usize, cols: usize, dst: &mut [MaybeUninit<u8>]) {
    let n = rows * cols * 4;
    assert!(
        src.len() >= n && dst.len() >= n,
        "transpose_swap32 outside its buffers"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if crate::science::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 (checked just above); the buffers hold rows·cols words
            // (asserted above).
            unsafe { blocks_avx2(src, rows, cols, dst) };
            edges(src, rows, cols, dst, rows / 8 * 8, cols / 8 * 8);
            return;
        }
    }
    edges(src, rows, cols, dst, 0, 0);
}

/// The words the blocks did not cover: rows from `r8` on (every column) and columns from `c8`
/// on (rows before `r8`), one at a time. `(0, 0)` does the whole matrix.
fn edges(src: &[u8], rows: usize, cols: usize, dst: &mut [MaybeUninit<u8>], r8: usize, c8: usize) {
    let mut one = |r: usize, c: usize| {
        let s = (r * cols + c) * 4;
        let d = (c * rows + r) * 4;
        let word: [u8; 4] = src[s..s + 4].try_into().expect("four bytes");
        let word = u32::from_ne_bytes(word).swap_bytes().to_ne_bytes();
        for (o, b) in dst[d..d + 4].iter_mut().zip(word) {
            o.write(b);
        }
    };
    // Tiles of 64 columns keep the destination rows in cache.
    for c0 in (0..cols).step_by(64) {
        let c1 = (c0 + 64).min(cols);
        for r in 0..rows {
            let from = if r < r8 { c8.max(c0) } else { c0 };
            for c in from..c1 {
                one(r, c);
            }
        }
    }
}

/// The whole 8 × 8 blocks (see [`block8`]), in the order that suits the matrix's size, each
/// word's bytes reversed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(src: &[u8], rows: usize, cols: usize, dst: &mut [MaybeUninit<u8>]) {
    use std::arch::x86_64::*;
    // Reverse the bytes of each 4-byte word (both 128-bit lanes).
    let swap = _mm256_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
        15, 14, 13, 12,
    );
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut u8);
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    if rows * cols * 4 <= IN_CACHE {
        // A matrix the core's cache holds: row blocks outermost, so the source is read along
        // 8 rows at a time (a handful of streams the prefetcher follows, where a column strip
        // of many rows is a cache miss a row), and the scattered stores land in the cache.
        for r0 in (0..r8).step_by(8) {
            for c0 in (0..c8).step_by(8) {
                block8(s, d, rows, cols, r0, c0, swap);
            }
        }
    } else {
        // Column blocks outermost: a block's 8 destination rows are written along, and the
        // source column strip (rows × 32 bytes) stays in cache for the next block.
        for c0 in (0..c8).step_by(8) {
            for r0 in (0..r8).step_by(8) {
                block8(s, d, rows, cols, r0, c0, swap);
            }
        }
    }
}

/// The most bytes [`blocks_avx2`] takes as fitting in the core's cache (half a Zen L2).
const IN_CACHE: usize = 512 << 10;

/// The 8 × 8 block at row `r0`, column `c0`: eight rows of eight words loaded, their bytes
/// reversed (`swap`), transposed with unpack/shuffle/permute, stored as eight columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block8(
    s: *const u8,
    d: *mut u8,
    rows: usize,
    cols: usize,
    r0: usize,
    c0: usize,
    swap: std::arch::x86_64::__m256i,
) {
    use std::arch::x86_64::*;
    let mut x = [_mm256_setzero_ps(); 8];
    for (k, v) in x.iter_mut().enumerate() {
        // SAFETY: row r0+k, words c0..c0+8 lie inside src (c0 + 8 ≤ cols, r0 + k < rows).
        let raw = _mm256_loadu_si256(s.add(((r0 + k) * cols + c0) * 4) as *const __m256i);
        *v = _mm256_castsi256_ps(_mm256_shuffle_epi8(raw, swap));
    }
    let t0 = _mm256_unpacklo_ps(x[0], x[1]);
    let t1 = _mm256_unpackhi_ps(x[0], x[1]);
    let t2 = _mm256_unpacklo_ps(x[2], x[3]);
    let t3 = _mm256_unpackhi_ps(x[2], x[3]);
    let t4 = _mm256_unpacklo_ps(x[4], x[5]);
    let t5 = _mm256_unpackhi_ps(x[4], x[5]);
    let t6 = _mm256_unpacklo_ps(x[6], x[7]);
    let t7 = _mm256_unpackhi_ps(x[6], x[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let y = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (k, v) in y.iter().enumerate() {
        // SAFETY: destination row c0+k, words r0..r0+8 lie inside dst.
        _mm256_storeu_ps(d.add(((c0 + k) * rows + r0) * 4) as *mut f32, *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_edges_move_every_word_once_with_its_bytes_reversed() {
        for (rows, cols) in [
            (1, 1),
            (8, 8),
            (9, 17),
            (288, 676),
            (16, 3),
            (3, 16),
            (24, 40),
        ] {
            let src: Vec<u8> = (0..rows * cols * 4)
                .map(|i| (i * 7 + i / 5) as u8)
                .collect();
            for simd in [false, true] {
                let mut dst = vec![MaybeUninit::new(0xAAu8); rows * cols * 4];
                if simd {
                    transpose_swap32(&src, rows, cols, &mut dst);
                } else {
                    edges(&src, rows, cols, &mut dst, 0, 0);
                }
                for r in 0..rows {
                    for c in 0..cols {
                        let s = &src[(r * cols + c) * 4..][..4];
                        // SAFETY: every byte was initialised (filled before the call).
                        let d: Vec<u8> = dst[(c * rows + r) * 4..][..4]
                            .iter()
                            .map(|b| unsafe { b.assume_init() })
                            .collect();
                        assert_eq!(
                            d,
                            [s[3], s[2], s[1], s[0]],
                            "{rows}x{cols} ({r}, {c}) simd {simd}"
                        );
                    }
                }
            }
        }
    }
}
