//! Reading a beam cube a plane or a row range at a time, holding one open file per cube: plain
//! BITPIX −32 data without scaling is byte-swapped straight out of a populated memory map
//! (bit-identical to cfitsio's read), its header read there too when it is plain (one open a
//! cube: a linmos opens thousands of small cutouts); other data through cfitsio. A cube whose
//! digest the build asked for ([`crate::hash::witness`]) is hashed from that map as the reads
//! go through it (a plane just before its rows are read, so they come from the cache), the rest
//! when the reader is dropped: the cube is read from memory once.
//!
//! Must never: read past the data the header describes.

use std::fs::File;
use std::path::Path;

use fitsio::sys;

use super::*;

/// Reads a cube one channel plane at a time (cutouts read only what they need, once).
pub struct PlaneReader {
    source: Pixels,
    /// The map's digest as it is read, if the build asked for it: the hasher and the bytes
    /// hashed so far (from the file's start).
    hashing: Option<(crate::hash::witness::Streaming, File, usize)>,
    /// Pixels along x.
    pub nx: usize,
    /// Pixels along y.
    pub ny: usize,
    /// Channels.
    pub nchan: usize,
    /// The header.
    pub header: Header,
}

/// Where a [`PlaneReader`]'s pixels come from: one open file either way.
enum Pixels {
    /// Plain float32: the file mapped into memory and the byte offset of its first pixel,
    /// byte-swapped straight out of the page cache (no copy into a buffer first, no cfitsio
    /// 2880-byte buffers or per-pixel conversion; the same values, bit for bit). The pages
    /// are the ones the input hash read, so a cube is read from the disk once.
    Mapped(memmap2::Mmap, usize),
    /// Anything else (BITPIX −64, scaled data) through cfitsio.
    Cfitsio(Handle),
}

impl PlaneReader {
    /// Open a cube for plane reads.
    pub fn open(path: &Path) -> Result<PlaneReader, FitsError> {
        Self::open_with(path, true)
    }

    /// `direct`: read plain float32 pixels without cfitsio (tests compare both ways).
    fn open_with(path: &Path, direct: bool) -> Result<PlaneReader, FitsError> {
        if let Some(r) = direct.then(|| Self::open_plain(path)).flatten() {
            return Ok(r);
        }
        let handle = Handle::open(path)?;
        let header = Header {
            cards: handle.cards()?,
        };
        let (nx, ny, nchan) = dims(&header, path)?;
        check_complete(&header, &handle, nx * ny * nchan)?;
        let mut hashing = None;
        let source = if direct && plain_f32(&header) {
            let start = handle.data_start()?;
            handle.close()?;
            let file = File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
            // SAFETY: the map is only read; a file truncated while mapped would fault, as the
            // input hash's map would (inputs are not rewritten during a build: outputs are
            // renamed into place).
            // Populated at once: one call maps every page already in the page cache instead of
            // a fault per 4 KiB page as the rows are read.
            let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
                .map_err(|e| err(path, format!("cannot map: {e}")))?;
            if (map.len() as u64) < start + (nx * ny * nchan * 4) as u64 {
                return Err(err(
                    path,
                    "the file is shorter than its header says".to_string(),
                ));
            }
            // A build that asked for this cube's digest (a source of a target that runs
            // anyway) gets it from the map as the reads go through it.
            hashing = crate::hash::witness::Streaming::begin(path, &file).map(|h| (h, file, 0));
            Pixels::Mapped(map, start as usize)
        } else {
            Pixels::Cfitsio(handle)
        };
        Ok(PlaneReader {
            source,
            hashing,
            nx,
            ny,
            nchan,
            header,
        })
    }

    /// A plain float32 cube whose header is read here, without cfitsio (see
    /// [`quick_header`]): the file opened once, its header read and checked, then mapped. `None` for
    /// anything else, or anything wrong (cfitsio reads it then, and says what is wrong with it).
    fn open_plain(path: &Path) -> Option<PlaneReader> {
        use std::os::unix::fs::FileExt;
        let (file, md) = crate::hash::open_regular(path).ok()?;
        // The header's first blocks (288 cards), then more for a longer one; a cube that is
        // not plain float32 is not mapped here (its pages populated for nothing).
        let mut head = Vec::new();
        let mut found = None;
        for blocks in [8, 256] {
            head.resize((blocks * FITS_BLOCK).min(md.len()) as usize, 0);
            file.read_exact_at(&mut head, 0).ok()?;
            found = quick_header(&head);
            if found.is_some() || head.len() as u64 == md.len() {
                break;
            }
        }
        let (header, start) = found?;
        if !plain_f32(&header) {
            return None;
        }
        let (nx, ny, nchan) = dims(&header, path).ok()?;
        check_complete_at(&header, path, md.len(), start, nx * ny * nchan, |at| {
            extension_at(path, at)
        })
        .ok()?;
        // SAFETY: as in `open_with`.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
        if (map.len() as u64) < start + (nx * ny * nchan * 4) as u64 {
            return None;
        }
        let hashing = crate::hash::witness::Streaming::begin(path, &file).map(|h| (h, file, 0));
        Some(PlaneReader {
            source: Pixels::Mapped(map, start as usize),
            hashing,
            nx,
            ny,
            nchan,
            header,
        })
    }

    /// Hash the mapped file up to the end of channel `c` (all of it: `None`) if its digest is
    /// being taken, before that part is read.
    fn hash_through(&mut self, c: Option<usize>) {
        let (Some((h, _, done)), Pixels::Mapped(map, start)) = (&mut self.hashing, &self.source)
        else {
            return;
        };
        let end = match c {
            Some(c) => start + (c + 1) * self.nx * self.ny * 4,
            None => map.len(),
        };
        if end > *done {
            h.update(&map[*done..end]);
            *done = end;
        }
    }

    /// Read channel `c` into `out` (nx·ny floats, [y][x]).
    pub fn read_plane(&mut self, c: usize, out: &mut [f32]) -> Result<(), FitsError> {
        self.read_rows(c, 0..self.ny, out)
    }

    /// Read rows `rows` of channel `c` into `out` (nx floats per row, [y][x]): one contiguous
    /// read of only the rows asked for.
    pub fn read_rows(
        &mut self,
        c: usize,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) -> Result<(), FitsError> {
        let n = rows.len() * self.nx;
        assert!(
            rows.end <= self.ny && c < self.nchan && out.len() >= n,
            "read_rows outside the cube"
        );
        let first = c * self.nx * self.ny + rows.start * self.nx;
        self.hash_through(Some(c));
        let handle = match &self.source {
            Pixels::Mapped(map, start) => {
                let at = start + first * 4;
                decode_be(&map[at..at + n * 4], &mut out[..n]);
                return Ok(());
            }
            Pixels::Cfitsio(handle) => handle,
        };
        let mut status = 0;
        let mut anynul = 0;
        // nulval 0: no per-pixel null check (cfitsio's slow path); blank float pixels are IEEE
        // NaNs in the file and arrive as NaN anyway.
        // SAFETY: `out` holds at least n floats; firstelem is 1-based and the range lies inside
        // the image (checked above).
        unsafe {
            sys::ffgpve(
                handle.fptr,
                0,
                (first + 1) as i64,
                n as i64,
                0.0,
                out.as_mut_ptr(),
                &mut anynul,
                &mut status,
            )
        };
        handle.check(status, &format!("reading channel {c}"))
    }
}

impl PlaneReader {
    /// Channel `c`'s pixels in `runs` (ranges of consecutive offsets `y·nx + x`), in that
    /// order, appended to `out`: of a plain cube only those pixels, decoded straight out of the
    /// map a run at a time; otherwise the plane is read whole first. An offset outside the
    /// plane panics.
    pub fn gather(
        &mut self,
        c: usize,
        runs: &[std::ops::Range<usize>],
        out: &mut Vec<f32>,
    ) -> Result<(), FitsError> {
        self.gather_with(c, runs, out, decode_be_append, |v, out| {
            out.extend_from_slice(v)
        })
    }

    /// [`PlaneReader::gather`]'s pixels without the blank (NaN) and infinite ones, widened to
    /// f64: the values an annulus's statistics take. Of a plain cube decoded, widened and
    /// filtered straight out of the map in one pass.
    pub fn gather_finite(
        &mut self,
        c: usize,
        runs: &[std::ops::Range<usize>],
        out: &mut Vec<f64>,
    ) -> Result<(), FitsError> {
        self.gather_with(c, runs, out, decode_be_finite_f64_append, |v, out| {
            out.extend(v.iter().filter(|x| x.is_finite()).map(|&x| f64::from(x)))
        })
    }

    /// Each run of channel `c` given to `mapped` as the map's big-endian words (a plain
    /// cube), else to `plain` as decoded values (the plane read whole first).
    fn gather_with<T>(
        &mut self,
        c: usize,
        runs: &[std::ops::Range<usize>],
        out: &mut Vec<T>,
        mapped: impl Fn(&[u8], &mut Vec<T>),
        plain: impl Fn(&[f32], &mut Vec<T>),
    ) -> Result<(), FitsError> {
        if let Some(plane) = self.mapped_plane(c, runs) {
            for r in runs {
                mapped(&plane[4 * r.start..4 * r.end], out);
            }
            return Ok(());
        }
        let mut plane = vec![0f32; self.nx * self.ny];
        self.read_plane(c, &mut plane)?;
        for r in runs {
            plain(&plane[r.clone()], out);
        }
        Ok(())
    }

    /// Channel `c`'s plane of a plain cube as the map holds it (big-endian words, hashed
    /// through as read), the same `runs` of the next channel asked for now: they are read
    /// next (rmsynth goes channel by channel), and waiting for them out of memory was most of a
    /// gather. `None` for a cube read through cfitsio.
    fn mapped_plane(&mut self, c: usize, runs: &[std::ops::Range<usize>]) -> Option<&[u8]> {
        let npix = self.nx * self.ny;
        assert!(c < self.nchan, "gather outside the cube");
        self.hash_through(Some(c));
        let Pixels::Mapped(map, start) = &self.source else {
            return None;
        };
        if c + 1 < self.nchan {
            let next = &map[start + (c + 1) * npix * 4..start + (c + 2) * npix * 4];
            for r in runs {
                prefetch_lines(&next[4 * r.start..4 * r.end]);
            }
        }
        Some(&map[start + c * npix * 4..start + (c + 1) * npix * 4])
    }

    /// The whole cube, plane after plane ([`Cube`]'s order): of a plain cube, decoded out of
    /// the map in one pass into memory never zeroed.
    pub fn planes(&mut self) -> Result<Vec<f32>, FitsError> {
        let n = self.nx * self.ny * self.nchan;
        self.hash_through(None);
        let Pixels::Mapped(map, start) = &self.source else {
            let mut planes = vec![0f32; n];
            let npix = self.nx * self.ny;
            for c in 0..self.nchan {
                self.read_plane(c, &mut planes[c * npix..(c + 1) * npix])?;
            }
            return Ok(planes);
        };
        let mut planes = Vec::with_capacity(n);
        decode_be_append(&map[*start..*start + n * 4], &mut planes);
        Ok(planes)
    }

    /// The whole cube as spectra (`out[(y·nx + x)·nchan + ch]`, see [`Spectra`]): of a plain
    /// cube, decoded out of the map and transposed in one pass into memory never zeroed.
    pub fn spectra(&mut self) -> Result<Vec<f32>, FitsError> {
        let mut out = Vec::new();
        self.spectra_of(0..self.nchan, &mut out)?;
        Ok(out)
    }

    /// Channels `chans` of every pixel as spectra into `out` (its contents replaced:
    /// `out[(y·nx + x)·w + j]` = channel `chans.start + j`, w = `chans.len()`): of a plain cube,
    /// those planes decoded out of the map and transposed in one pass into memory never zeroed.
    pub fn spectra_of(
        &mut self,
        chans: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), FitsError> {
        let w = chans.len();
        self.transposed_groups(chans, out, std::iter::once((0, w)))
    }

    /// Channels `chans` of every pixel laid out as the mosaic's
    /// [`ChannelGroups`](crate::science::layout::ChannelGroups) into `out` (its contents
    /// replaced): each group of channels decoded out of the map and transposed, as
    /// [`PlaneReader::spectra_of`] does.
    pub fn groups_of(
        &mut self,
        chans: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), FitsError> {
        let layout = crate::science::layout::ChannelGroups {
            npix: self.nx * self.ny,
            w: chans.len(),
        };
        self.transposed_groups(chans, out, layout.groups())
    }

    /// Channels `chans` into `out`, group after group (first channel relative to
    /// `chans.start`, channels; in order, covering `chans`), each group's planes transposed to
    /// `[pixel][channel]`.
    fn transposed_groups(
        &mut self,
        chans: std::ops::Range<usize>,
        out: &mut Vec<f32>,
        groups: impl Iterator<Item = (usize, usize)>,
    ) -> Result<(), FitsError> {
        assert!(
            chans.start <= chans.end && chans.end <= self.nchan,
            "spectra_of outside the cube"
        );
        let (npix, w) = (self.nx * self.ny, chans.len());
        let n = npix * w;
        out.clear();
        if let Some(last) = chans.end.checked_sub(1) {
            self.hash_through(Some(last));
        }
        let Pixels::Mapped(map, start) = &self.source else {
            let mut planes = vec![0f32; n];
            for (j, c) in chans.clone().enumerate() {
                self.read_plane(c, &mut planes[j * npix..(j + 1) * npix])?;
            }
            for (c, l) in groups {
                let group = &planes[c * npix..(c + l) * npix];
                out.extend(crate::science::layout::to_spectra(group, npix, l));
            }
            assert_eq!(out.len(), n, "the groups cover the channels");
            return Ok(());
        };
        let at = start + chans.start * npix * 4;
        let bytes = &map[at..at + n * 4];
        out.reserve(n);
        let spare = out.spare_capacity_mut();
        // SAFETY: the spare capacity's n floats as bytes (MaybeUninit either way).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                spare.as_mut_ptr() as *mut std::mem::MaybeUninit<u8>,
                n * 4,
            )
        };
        let mut next = 0;
        for (c, l) in groups {
            assert_eq!(c, next, "the groups cover the channels in order");
            let span = c * npix * 4..(c + l) * npix * 4;
            super::transpose::transpose_swap32(&bytes[span.clone()], l, npix, &mut dst[span]);
            next = c + l;
        }
        assert_eq!(next, w, "the groups cover the channels");
        // SAFETY: the transposes wrote every element (the groups cover 0..w).
        unsafe { out.set_len(n) };
        Ok(())
    }

    /// Rows `rows` of channel `c` as FITS stores them (big-endian float32, nx per row): of a
    /// plain cube, the mapped file's own bytes (nothing copied or converted, for a cutout that
    /// writes them out as they are); otherwise read and encoded into `scratch`.
    pub fn rows_be<'a>(
        &'a mut self,
        c: usize,
        rows: std::ops::Range<usize>,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], FitsError> {
        let n = rows.len() * self.nx;
        assert!(
            rows.end <= self.ny && c < self.nchan,
            "rows_be outside the cube"
        );
        if matches!(self.source, Pixels::Cfitsio(_)) {
            let mut values = vec![0f32; n];
            self.read_rows(c, rows, &mut values)?;
            scratch.clear();
            append_f32_be(scratch, &values);
            return Ok(&scratch[..]);
        }
        self.hash_through(Some(c));
        let Pixels::Mapped(map, start) = &self.source else {
            unreachable!("checked above")
        };
        let at = start + (c * self.nx * self.ny + rows.start * self.nx) * 4;
        Ok(&map[at..at + n * 4])
    }
}

/// Ask for every cache line of `bytes` to be brought into the cache ahead of its use (a hint:
/// it reads nothing and faults on nothing).
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn prefetch_lines(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = bytes.as_ptr() as usize;
        // From the line holding the first byte to the one holding the last.
        let mut line = p & !63;
        while line < p + bytes.len() {
            // SAFETY: a prefetch reads nothing and faults on nothing.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8)
            };
            line += 64;
        }
    }
}

impl Drop for PlaneReader {
    /// The digest being taken is finished with the bytes not read (and left if the file kept
    /// its signature).
    fn drop(&mut self) {
        self.hash_through(None);
        if let Some((h, file, _)) = self.hashing.take() {
            h.finish(&file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asked_digest_is_taken_as_the_reads_go_and_left_when_the_reader_goes() {
        use crate::hash::{hash_file, witness, StatSig};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.fits");
        let (nx, ny, nchan) = (67, 45, 5);
        Cube {
            nx,
            ny,
            nchan,
            data: (0..nx * ny * nchan).map(|i| i as f32 * 0.25).collect(),
            header: Header::default(),
        }
        .write(&p)
        .unwrap();
        let asked = witness::want(&p);
        let mut r = PlaneReader::open(&p).unwrap();
        // Out of order and in parts: channel 1's rows, then channel 0, then channel 3's bytes.
        let mut out = vec![0f32; nx * ny];
        r.read_rows(1, 10..20, &mut out).unwrap();
        r.read_plane(0, &mut out).unwrap();
        let mut scratch = Vec::new();
        assert_eq!(r.rows_be(3, 0..2, &mut scratch).unwrap().len(), 2 * nx * 4);
        let mut part = Vec::new();
        r.spectra_of(2..4, &mut part).unwrap();
        assert_eq!(part.len(), 2 * nx * ny);
        assert!(witness::wanted(&p), "not left before the reader is done");
        drop(r);
        let sig = StatSig::of_path(&p).unwrap().unwrap();
        assert_eq!(witness::take(&p, sig), Some(hash_file(&p).unwrap()));
        drop(asked);
    }

    #[test]
    fn direct_row_reads_equal_cfitsio_reads_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.fits");
        // Planes of 77 357 floats: a whole-plane read takes two of the reader's pieces.
        let (nx, ny, nchan) = (301, 257, 3);
        let data: Vec<f32> = (0..nx * ny * nchan)
            .map(|i| match i % 11 {
                0 => f32::NAN,
                1 => -0.0,
                2 => f32::INFINITY,
                3 => f32::MIN_POSITIVE / 4.0,
                _ => (i as f32 * 0.37).sin() * 1e-3,
            })
            .collect();
        let mut header = Header::default();
        header.set_str("CTYPE1", "RA---SIN", "");
        Cube {
            nx,
            ny,
            nchan,
            data,
            header,
        }
        .write(&p)
        .unwrap();
        let mut direct = PlaneReader::open(&p).unwrap();
        assert!(
            matches!(direct.source, Pixels::Mapped(..)),
            "a plain float32 cube is read directly"
        );
        let mut via_cfitsio = PlaneReader::open_with(&p, false).unwrap();
        assert!(matches!(via_cfitsio.source, Pixels::Cfitsio(_)));
        // Its header read without cfitsio, card for card the same.
        assert_eq!(direct.header, via_cfitsio.header);
        for (c, rows) in [(0, 0..ny), (2, 5..6), (1, 3..ny), (1, 0..1), (2, 100..ny)] {
            let n = rows.len() * nx;
            let (mut a, mut b) = (vec![0f32; n], vec![1f32; n]);
            direct.read_rows(c, rows.clone(), &mut a).unwrap();
            via_cfitsio.read_rows(c, rows.clone(), &mut b).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "channel {c}");
            // The same pixels as the file's big-endian bytes, mapped or encoded.
            let (mut s1, mut s2) = (Vec::new(), Vec::new());
            let be: Vec<u8> = a.iter().flat_map(|v| v.to_be_bytes()).collect();
            assert_eq!(direct.rows_be(c, rows.clone(), &mut s1).unwrap(), &be[..]);
            assert_eq!(
                via_cfitsio.rows_be(c, rows.clone(), &mut s2).unwrap(),
                &be[..]
            );
        }
        // The whole cube at once, both ways, plane after plane and as spectra; and channels
        // 1 and 2 as spectra, both ways, the same as those of the whole.
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (mut a, mut b) = (vec![7.0], Vec::new());
        direct.spectra_of(1..3, &mut a).unwrap();
        via_cfitsio.spectra_of(1..3, &mut b).unwrap();
        let whole = direct.spectra().unwrap();
        let part: Vec<f32> = whole.chunks(nchan).flat_map(|s| s[1..3].to_vec()).collect();
        assert_eq!(bits(a.clone()), bits(part));
        assert_eq!(bits(a), bits(b.clone()));
        direct.spectra_of(2..2, &mut b).unwrap();
        assert!(b.is_empty());
        assert_eq!(
            bits(direct.planes().unwrap()),
            bits(via_cfitsio.planes().unwrap())
        );
        assert_eq!(
            bits(direct.spectra().unwrap()),
            bits(via_cfitsio.spectra().unwrap())
        );
        // Runs of pixels of one channel, appended in order, both ways: the plane's own values.
        let runs = [5..9, 3..4, nx * ny - 2..nx * ny, 700..1500];
        let planes = direct.planes().unwrap();
        let plane = &planes[2 * nx * ny..3 * nx * ny];
        let want: Vec<f32> = runs
            .iter()
            .flat_map(|r| plane[r.clone()].to_vec())
            .collect();
        let (mut a, mut b32) = (vec![7.0], Vec::new());
        direct.gather(2, &runs, &mut a).unwrap();
        via_cfitsio.gather(2, &runs, &mut b32).unwrap();
        assert_eq!(a[0], 7.0);
        assert_eq!(bits(a[1..].to_vec()), bits(want.clone()));
        // Their finite values widened (blanks and infinities left out), both ways.
        let wide = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let finite: Vec<f64> = want
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| f64::from(x))
            .collect();
        assert!(finite.len() < want.len() && !finite.is_empty());
        let (mut a, mut b) = (vec![7.0f64], Vec::new());
        direct.gather_finite(2, &runs, &mut a).unwrap();
        via_cfitsio.gather_finite(2, &runs, &mut b).unwrap();
        assert_eq!(a[0], 7.0);
        assert_eq!(wide(&a[1..]), wide(&finite));
        assert_eq!(wide(&b), wide(&finite));
        assert_eq!(bits(b32), bits(want));
    }
}
