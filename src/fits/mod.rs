//! FITS I/O for image cubes and binary tables, on the bundled cfitsio (`fitsio` crate).
//!
//! Owns: reading a float cube (whole, or one channel plane at a time), its header cards, and
//! writing cubes and tables. Files are opened with cfitsio's *diskfile* calls, which take the path
//! literally: island names with brackets or spaces are never read as cfitsio filename syntax.
//! Must never: decide where files go (stages pass paths; the engine renames them into place).
//! Errors name the file and, for header problems, the keyword.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::raw::{c_char, c_int, c_long};
use std::path::{Path, PathBuf};

use fitsio::sys;

mod reader;
mod table;
pub(crate) mod transpose;

pub use reader::PlaneReader;
pub use table::{write_table, Column};

/// A FITS problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FitsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> FitsError {
    FitsError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 31];
    // SAFETY: ffgerr writes at most 30 characters plus NUL into the buffer.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    // SAFETY: the buffer is NUL-terminated by ffgerr.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .to_string();
    format!("cfitsio error {status} ({s})")
}

/// An open FITS file; closed on drop.
struct Handle {
    fptr: *mut sys::fitsfile,
    path: PathBuf,
}

impl Handle {
    fn open(path: &Path) -> Result<Handle, FitsError> {
        // A FIFO would block cfitsio's open, a device would never end.
        crate::hash::check_regular(path)
            .map_err(|e| err(path, format!("cannot open as FITS: {e}")))?;
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| err(path, "path contains a NUL byte"))?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: valid C string and out-pointers; cfitsio sets fptr on success.
        unsafe { sys::ffdkopn(&mut fptr, c.as_ptr(), 0, &mut status) };
        if status != 0 {
            return Err(err(
                path,
                format!("cannot open as FITS: {}", status_text(status)),
            ));
        }
        Ok(Handle {
            fptr,
            path: path.to_path_buf(),
        })
    }

    /// The byte offset of the current HDU's data.
    fn data_start(&self) -> Result<u64, FitsError> {
        let (mut head, mut data, mut end) = (0, 0, 0);
        let mut status = 0;
        // SAFETY: an open fitsfile and valid out-pointers.
        unsafe { sys::ffghadll(self.fptr, &mut head, &mut data, &mut end, &mut status) };
        self.check(status, "locating the data")?;
        Ok(data.max(0) as u64)
    }

    fn create(path: &Path) -> Result<Handle, FitsError> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| err(path, "path contains a NUL byte"))?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: as in `open`.
        unsafe { sys::ffdkinit(&mut fptr, c.as_ptr(), &mut status) };
        if status != 0 {
            return Err(err(path, format!("cannot create: {}", status_text(status))));
        }
        Ok(Handle {
            fptr,
            path: path.to_path_buf(),
        })
    }

    fn check(&self, status: c_int, what: &str) -> Result<(), FitsError> {
        if status == 0 {
            Ok(())
        } else {
            Err(err(&self.path, format!("{what}: {}", status_text(status))))
        }
    }

    fn cards(&self) -> Result<Vec<String>, FitsError> {
        let (mut n, mut more, mut status) = (0, 0, 0);
        // SAFETY: valid handle and out-pointers.
        unsafe { sys::ffghsp(self.fptr, &mut n, &mut more, &mut status) };
        self.check(status, "reading the header")?;
        let mut out = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let mut buf = [0 as c_char; 81];
            // SAFETY: a card is at most 80 characters plus NUL.
            unsafe { sys::ffgrec(self.fptr, i, buf.as_mut_ptr(), &mut status) };
            self.check(status, "reading a header card")?;
            // SAFETY: NUL-terminated by cfitsio.
            out.push(
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .to_string(),
            );
        }
        Ok(out)
    }

    fn close(mut self) -> Result<(), FitsError> {
        let mut status = 0;
        // SAFETY: the handle is open; it is nulled so Drop does not close it again.
        unsafe { sys::ffclos(self.fptr, &mut status) };
        self.fptr = std::ptr::null_mut();
        self.check(status, "closing")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.fptr.is_null() {
            let mut status = 0;
            // SAFETY: the handle is open.
            unsafe { sys::ffclos(self.fptr, &mut status) };
        }
    }
}

/// A FITS header as its 80-character cards (structural keywords included as read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// The cards, in order, without END.
    pub cards: Vec<String>,
}

const STRUCTURAL: &[&str] = &[
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "END", "XTENSION",
];

fn card_key(card: &str) -> &str {
    card.get(..8).unwrap_or(card).trim_end()
}

fn is_structural(key: &str) -> bool {
    STRUCTURAL.contains(&key)
        || (key.starts_with("NAXIS") && key[5..].chars().all(|c| c.is_ascii_digit()))
}

/// The two COMMENT cards cfitsio writes into every new primary header ("FITS (Flexible Image
/// Transport System) format is defined in ..."): copying them would add another pair each time a
/// header passes from one file to the next.
fn is_standard_note(card: &str) -> bool {
    card.starts_with("COMMENT   FITS (Flexible Image Transport System) format is defined")
        || card.starts_with("COMMENT   and Astrophysics', volume 376, page 359")
}

/// The value part of a `HIERARCH KEY = value` card, if it is one for `key`.
fn hierarch_value<'a>(card: &'a str, key: &str) -> Option<&'a str> {
    let rest = card.strip_prefix("HIERARCH")?.trim_start();
    let rest = rest.strip_prefix(key)?.trim_start();
    rest.strip_prefix('=')
}

impl Header {
    fn raw_value(&self, key: &str) -> Option<&str> {
        if key.len() > 8 {
            // ESO's HIERARCH convention (how astropy writes Arrakis's
            // INSTRUMENT_RECEPTOR_ANGLE): `HIERARCH KEY = value`.
            return self.cards.iter().find_map(|c| hierarch_value(c, key));
        }
        let card = self
            .cards
            .iter()
            .find(|c| card_key(c) == key && c.get(8..10) == Some("= "))?;
        Some(card.get(10..).unwrap_or(""))
    }

    /// A string keyword's value (quotes removed, trailing blanks trimmed).
    pub fn get_str(&self, key: &str) -> Option<String> {
        let v = self.raw_value(key)?.trim_start();
        if let Some(rest) = v.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        out.push('\'');
                        chars.next();
                        continue;
                    }
                    break;
                }
                out.push(c);
            }
            Some(out.trim_end().to_string())
        } else {
            Some(v.split('/').next().unwrap_or("").trim().to_string())
        }
    }

    /// A numeric keyword's value.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        let v = self.raw_value(key)?;
        v.split('/')
            .next()?
            .trim()
            .replace(['D', 'd'], "E")
            .parse()
            .ok()
    }

    /// A numeric keyword that must be present, or an error naming it.
    pub fn require_f64(&self, key: &str, path: &Path) -> Result<f64, FitsError> {
        self.get_f64(key).ok_or_else(|| err(path, format!("missing or non-numeric header keyword {key}; the cube needs a celestial (RA---SIN/DEC--SIN) and FREQ WCS")))
    }

    /// Set a numeric keyword (replacing an existing card).
    pub fn set_f64(&mut self, key: &str, value: f64, comment: &str) {
        self.set_raw(key, &format!("{value:>20.12E}"), comment);
    }

    /// Set a string keyword.
    pub fn set_str(&mut self, key: &str, value: &str, comment: &str) {
        let v = format!("'{:<8}'", value.replace('\'', "''"));
        self.set_raw(key, &format!("{v:<20}"), comment);
    }

    fn set_raw(&mut self, key: &str, value: &str, comment: &str) {
        if key.len() > 8 {
            let mut card = format!("HIERARCH {key} = {}", value.trim());
            if !comment.is_empty() {
                card.push_str(" / ");
                card.push_str(comment);
            }
            card.truncate(80);
            match self
                .cards
                .iter()
                .position(|c| hierarch_value(c, key).is_some())
            {
                Some(i) => self.cards[i] = card,
                None => self.cards.push(card),
            }
            return;
        }
        let mut card = format!("{key:<8}= {value}");
        if !comment.is_empty() {
            card.push_str(" / ");
            card.push_str(comment);
        }
        card.truncate(80);
        match self.cards.iter().position(|c| card_key(c) == key) {
            Some(i) => self.cards[i] = card,
            None => self.cards.push(card),
        }
    }

    /// Remove every card with this keyword.
    pub fn remove(&mut self, key: &str) {
        self.cards.retain(|c| card_key(c) != key);
    }

    /// Append a HISTORY card.
    pub fn history(&mut self, text: &str) {
        let mut card = format!("HISTORY {text}");
        card.truncate(80);
        self.cards.push(card);
    }
}

/// A float image cube: data in FITS order flattened as [channel][y][x].
#[derive(Clone, Debug)]
pub struct Cube {
    /// Pixels along x (NAXIS1).
    pub nx: usize,
    /// Pixels along y (NAXIS2).
    pub ny: usize,
    /// Channels (NAXIS3; a fourth axis of length 1 is accepted and dropped).
    pub nchan: usize,
    /// The pixels.
    pub data: Vec<f32>,
    /// The header.
    pub header: Header,
}

/// The axis lengths of a floating-point image (an error for integer data).
fn float_shape(h: &Header, path: &Path) -> Result<Vec<usize>, FitsError> {
    let bitpix = h.get_f64("BITPIX").unwrap_or(0.0) as i64;
    if bitpix != -32 && bitpix != -64 {
        return Err(err(
            path,
            format!(
                "BITPIX = {bitpix}: the image must hold floating-point data (BITPIX -32 or -64)"
            ),
        ));
    }
    let naxis = h.get_f64("NAXIS").unwrap_or(0.0) as usize;
    if naxis > 999 {
        return Err(err(
            path,
            format!("NAXIS = {naxis}: FITS allows at most 999 axes"),
        ));
    }
    let shape: Vec<usize> = (1..=naxis)
        .map(|i| h.get_f64(&format!("NAXIS{i}")).unwrap_or(0.0) as usize)
        .collect();
    // Bounded by what the file can hold: no product may overflow (and `check_complete` then
    // compares it with the file's size before anything is allocated).
    if shape
        .iter()
        .try_fold(8u64, |acc, &x| acc.checked_mul(x as u64))
        .is_none()
    {
        return Err(err(
            path,
            format!("shape {shape:?}: the header describes more pixels than any file can hold"),
        ));
    }
    Ok(shape)
}

/// An error unless the file holds exactly its header and the `n` pixels the header promises:
/// shorter is a truncated file; longer is a header that describes less data than there is (a
/// wrong NAXISn would otherwise be read silently as other pixels), unless an extension follows
/// (`XTENSION` at the next 2880-byte block) or the excess is the padding to the block.
fn check_complete(h: &Header, handle: &Handle, n: usize) -> Result<(), FitsError> {
    let path = &handle.path;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let start = handle.data_start()?;
    check_complete_at(h, path, size, start, n, |at| extension_at(path, at))
}

/// [`check_complete`] of a file of `size` bytes whose data start at byte `start`;
/// `extension_at(at)`: whether an extension header starts at byte `at`.
fn check_complete_at(
    h: &Header,
    path: &Path,
    size: u64,
    start: u64,
    n: usize,
    extension_at: impl Fn(u64) -> bool,
) -> Result<(), FitsError> {
    let bytes = (h.get_f64("BITPIX").unwrap_or(-32.0).abs() / 8.0) as u64;
    let need = (n as u64).saturating_mul(bytes);
    let end = start.saturating_add(need);
    if size < end {
        return Err(err(path, format!("truncated: the header ({start} bytes) promises {need} bytes of pixels after it but the file has {size} bytes in all (an interrupted copy or write?); copy or image it again")));
    }
    let padded = end.div_ceil(FITS_BLOCK) * FITS_BLOCK;
    if size > padded && !extension_at(padded) {
        let shape: Vec<String> = (1..=h.get_f64("NAXIS").unwrap_or(0.0) as usize)
            .map(|i| {
                format!(
                    "NAXIS{i} = {}",
                    h.get_f64(&format!("NAXIS{i}")).unwrap_or(0.0)
                )
            })
            .collect();
        return Err(err(path, format!(
            "the header ({}) describes {need} bytes of pixels, but the file holds {} bytes after its header and no extension follows: the header does not describe the data (a wrong NAXIS?); fix the header or write the file again",
            shape.join(", "),
            size - start
        )));
    }
    Ok(())
}

/// FITS's block size.
const FITS_BLOCK: u64 = 2880;

/// A primary header read from a file's first bytes as cfitsio reads it (each card without
/// its trailing blanks, the blank cards just before END left out: what `ffgrec` gives for
/// the keywords `ffghsp` counts) and where its data start (the block after END's), for the
/// plain headers this crate reads without cfitsio: SIMPLE = T in fixed format, every card
/// printable ASCII, an END within the bytes. `None` otherwise: cfitsio reads it (and says
/// what is wrong with it).
fn quick_header(bytes: &[u8]) -> Option<(Header, u64)> {
    let first = bytes.get(..80)?;
    // SIMPLE's value T in column 30, nothing but blanks before it after the '= '.
    if &first[..10] != b"SIMPLE  = "
        || first[29] != b'T'
        || first[10..29].iter().any(|&b| b != b' ')
    {
        return None;
    }
    let mut cards = Vec::new();
    let mut blanks = 0;
    for (i, rec) in bytes.chunks_exact(80).enumerate() {
        if !rec.iter().all(|b| (0x20..0x7f).contains(b)) {
            return None;
        }
        if &rec[..3] == b"END" && rec[3..8].iter().all(|&b| b == b' ') {
            cards.truncate(cards.len() - blanks);
            let start = ((i as u64 + 1) * 80).div_ceil(FITS_BLOCK) * FITS_BLOCK;
            return Some((Header { cards }, start));
        }
        // Printable ASCII (checked above) is UTF-8.
        let card = std::str::from_utf8(rec).ok()?.trim_end_matches(' ');
        blanks = if card.is_empty() { blanks + 1 } else { 0 };
        cards.push(card.to_string());
    }
    None
}

/// Whether an extension header starts at byte `at` of the file.
fn extension_at(path: &Path, at: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 9];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut buf, at))
        .map(|_| &buf == b"XTENSION=")
        .unwrap_or(false)
}

/// Plain big-endian float32 pixels (BITPIX −32, BSCALE 1 and BZERO 0 or absent), which can be
/// read without cfitsio's conversion.
fn plain_f32(h: &Header) -> bool {
    // A scaling keyword that is present must parse to the identity.
    let is = |key: &str, v: f64| h.raw_value(key).is_none() || h.get_f64(key) == Some(v);
    h.get_f64("BITPIX") == Some(-32.0) && is("BSCALE", 1.0) && is("BZERO", 0.0)
}

fn dims(h: &Header, path: &Path) -> Result<(usize, usize, usize), FitsError> {
    let n = float_shape(h, path)?;
    let ok = (n.len() == 3 || (n.len() == 4 && n[3] == 1)) && n[..3].iter().all(|&x| x > 0);
    if !ok {
        return Err(err(path, format!("shape {n:?}: expected a 3-axis cube (RA, Dec, FREQ), optionally with a 4th axis of length 1")));
    }
    Ok((n[0], n[1], n[2]))
}

/// Read the header and shape of a cube without its data.
pub fn read_header(path: &Path) -> Result<(Header, (usize, usize, usize)), FitsError> {
    let h = Handle::open(path)?;
    let header = Header { cards: h.cards()? };
    let d = dims(&header, path)?;
    h.close()?;
    Ok((header, d))
}

impl Cube {
    /// Read a whole cube.
    pub fn read(path: &Path) -> Result<Cube, FitsError> {
        let mut planes = PlaneReader::open(path)?;
        let (nx, ny, nchan) = (planes.nx, planes.ny, planes.nchan);
        let data = planes.planes()?;
        Ok(Cube {
            nx,
            ny,
            nchan,
            data,
            header: planes.header.clone(),
        })
    }

    /// Write as a 3-axis float32 cube with this header (structural cards are regenerated).
    pub fn write(&self, path: &Path) -> Result<(), FitsError> {
        write_image(
            path,
            &[self.nx, self.ny, self.nchan],
            &self.data,
            &self.header,
        )
    }

    /// Pixel value at (channel, y, x).
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.ny + y) * self.nx + x]
    }

    /// The pixels as the science kernels take them.
    pub fn view(&self) -> crate::science::layout::CubeView<'_> {
        crate::science::layout::CubeView {
            data: &self.data,
            nx: self.nx,
            ny: self.ny,
            nchan: self.nchan,
        }
    }
}

/// A cube held pixel by pixel: every channel of pixel (x, y) together,
/// `data[(y·nx + x)·nchan + ch]` (what kernels that work a spectrum at a time take; the
/// transpose of [`Cube`]'s order, done as the file is read and written).
#[derive(Clone, Debug)]
pub struct Spectra {
    /// Pixels along x (NAXIS1).
    pub nx: usize,
    /// Pixels along y (NAXIS2).
    pub ny: usize,
    /// Channels (NAXIS3).
    pub nchan: usize,
    /// The spectra, pixel after pixel.
    pub data: Vec<f32>,
    /// The header.
    pub header: Header,
}

impl Spectra {
    /// Read a whole cube as spectra (one pass over the file's bytes: decoded and transposed
    /// together, nothing zeroed first).
    pub fn read(path: &Path) -> Result<Spectra, FitsError> {
        let mut planes = PlaneReader::open(path)?;
        let data = planes.spectra()?;
        Ok(Spectra {
            nx: planes.nx,
            ny: planes.ny,
            nchan: planes.nchan,
            data,
            header: planes.header.clone(),
        })
    }

    /// Write as a 3-axis float32 cube with this header (structural cards are regenerated),
    /// the bytes [`Cube::write`] writes for the same pixels.
    pub fn write(&self, path: &Path) -> Result<(), FitsError> {
        let mut img = ImageBytes::new(path, &[self.nx, self.ny, self.nchan], &self.header)?;
        img.put_spectra(&self.data, self.nx * self.ny, self.nchan);
        img.write(path)
    }
}

fn write_cards(h: &Handle, header: &Header) -> Result<(), FitsError> {
    let mut status = 0;
    for card in &header.cards {
        let key = card_key(card);
        if is_structural(key) || key.is_empty() && card.trim().is_empty() || is_standard_note(card)
        {
            continue;
        }
        let c = CString::new(card.as_str())
            .map_err(|_| err(&h.path, "header card contains a NUL byte"))?;
        // SAFETY: valid handle and C string.
        unsafe { sys::ffprec(h.fptr, c.as_ptr(), &mut status) };
        h.check(status, &format!("writing header card {key}"))?;
    }
    Ok(())
}

/// Start a float32 primary image of `shape` (NAXIS1 first) in an open file.
fn create_image(h: &Handle, shape: &[usize]) -> Result<(), FitsError> {
    let mut status = 0;
    let mut naxes: Vec<c_long> = shape.iter().map(|&n| n as c_long).collect();
    // SAFETY: valid handle; naxes has NAXIS entries.
    unsafe {
        sys::ffcrim(
            h.fptr,
            -32,
            naxes.len() as c_int,
            naxes.as_mut_ptr(),
            &mut status,
        )
    };
    h.check(status, "creating the image")
}

/// The header of a float32 primary image of `shape` (NAXIS1 first) with `header`'s
/// non-structural cards, as the bytes a file holds: cfitsio lays the cards out (in a memory
/// file, as it would on disk: its structural cards, its formatting of each card) and gives
/// them back with END; the block is filled with blanks to 2880 bytes.
fn header_bytes(path: &Path, shape: &[usize], header: &Header) -> Result<Vec<u8>, FitsError> {
    let mut fptr = std::ptr::null_mut();
    let mut status = 0;
    let name = CString::new("mem://").expect("no NUL");
    // SAFETY: a fresh memory file cfitsio owns and frees when closed.
    unsafe { sys::ffinit(&mut fptr, name.as_ptr(), &mut status) };
    if status != 0 {
        return Err(err(
            path,
            format!("cannot lay out the header: {}", status_text(status)),
        ));
    }
    let h = Handle {
        fptr,
        path: path.to_path_buf(),
    };
    // Laid out with the last axis 0: closing a memory file whose image has data would first
    // allocate and zero the whole data unit (a cube's size, for 80-byte cards). That axis's
    // card gets its length below, as cfitsio formats an integer value.
    let last = shape.len().checked_sub(1);
    let mut laid = shape.to_vec();
    if let Some(l) = last {
        laid[l] = 0;
    }
    create_image(&h, &laid)?;
    write_cards(&h, header)?;
    let (mut text, mut nkeys) = (std::ptr::null_mut::<c_char>(), 0);
    // SAFETY: valid handle; cfitsio allocates `text` (freed below with its own free).
    unsafe {
        sys::ffhdr2str(
            h.fptr,
            0,
            std::ptr::null_mut(),
            0,
            &mut text,
            &mut nkeys,
            &mut status,
        )
    };
    h.check(status, "laying out the header")?;
    // SAFETY: on success `text` holds nkeys 80-byte cards (END last) and a NUL.
    let mut bytes =
        unsafe { std::slice::from_raw_parts(text as *const u8, nkeys as usize * 80) }.to_vec();
    // SAFETY: allocated by cfitsio with malloc.
    unsafe { libc::free(text.cast()) };
    // The memory file goes with its handle (closing it writes only into memory).
    let _ = h.close();
    if let Some(l) = last {
        let key = format!("{:<8}= ", format!("NAXIS{}", l + 1));
        let card = bytes
            .chunks_exact_mut(80)
            .find(|c| c.starts_with(key.as_bytes()))
            .ok_or_else(|| err(path, format!("cfitsio laid out no {} card", key.trim_end())))?;
        card[10..30].copy_from_slice(format!("{:>20}", shape[l]).as_bytes());
    }
    bytes.resize(
        bytes.len().div_ceil(FITS_BLOCK as usize) * FITS_BLOCK as usize,
        b' ',
    );
    Ok(bytes)
}

/// A float32 primary image file's bytes being put together: the header, then the pixels as
/// FITS stores them (big-endian, NAXIS1 fastest) appended in order, then zeros to the end of
/// the block when written.
pub struct ImageBytes {
    bytes: Vec<u8>,
    /// Where the pixels start and end.
    data_start: usize,
    data_end: usize,
}

impl ImageBytes {
    /// The header laid out for `shape`, with room reserved for its pixels.
    pub fn new(path: &Path, shape: &[usize], header: &Header) -> Result<ImageBytes, FitsError> {
        let mut bytes = header_bytes(path, shape, header)?;
        let data_start = bytes.len();
        let data_end = data_start + shape.iter().product::<usize>() * 4;
        bytes.reserve_exact(
            data_end.div_ceil(FITS_BLOCK as usize) * FITS_BLOCK as usize - data_start,
        );
        Ok(ImageBytes {
            bytes,
            data_start,
            data_end,
        })
    }

    /// Append pixels already big-endian (as a plain float32 FITS file holds them).
    pub fn extend_be(&mut self, be: &[u8]) {
        assert!(
            self.bytes.len() + be.len() <= self.data_end,
            "more pixels than the shape holds"
        );
        self.bytes.extend_from_slice(be);
    }

    /// Append pixels.
    pub fn put_f32(&mut self, data: &[f32]) {
        let n = data.len() * 4;
        assert!(
            self.bytes.len() + n <= self.data_end,
            "more pixels than the shape holds"
        );
        append_f32_be(&mut self.bytes, data);
    }

    /// Append a whole cube given as spectra (`spectra[p·nchan + ch]`, p = y·nx + x, `npix`
    /// pixels): written plane after plane, big-endian, in one pass.
    pub fn put_spectra(&mut self, spectra: &[f32], npix: usize, nchan: usize) {
        let n = npix * nchan;
        assert!(
            spectra.len() == n && self.bytes.len() + n * 4 <= self.data_end,
            "more pixels than the shape holds"
        );
        append_planes_be(&mut self.bytes, spectra, npix, nchan);
    }

    /// The pixels appended so far, big-endian.
    pub fn pixels_be(&self) -> &[u8] {
        &self.bytes[self.data_start..]
    }

    /// Write the file at `path` (which must not exist: outputs go to fresh temporary names);
    /// if the build asked for its digest ([`crate::hash::witness`]), hash the bytes here, so
    /// that nothing reads the file back to hash it: piece by piece, each just before it is
    /// written, so the kernel copies it out of the cache.
    pub fn write(self, path: &Path) -> Result<(), FitsError> {
        let mut f = create_new(path)?;
        let mut img = self;
        assert_eq!(
            img.bytes.len(),
            img.data_end,
            "fewer pixels than the shape holds"
        );
        img.bytes.resize(
            img.data_end.div_ceil(FITS_BLOCK as usize) * FITS_BLOCK as usize,
            0,
        );
        let mut hasher = crate::hash::witness::wanted(path).then(blake3::Hasher::new);
        for piece in img.bytes.chunks(PIECE) {
            put_piece(&mut f, path, hasher.as_mut(), piece)?;
        }
        leave_digest(path, &f, img.bytes.len() as u64, hasher);
        Ok(())
    }
}

/// Append `data` to `bytes` big-endian, in one vectorised pass (a byte iterator's `extend`
/// went a byte at a time: 5 % of frion).
pub(crate) fn append_f32_be(bytes: &mut Vec<u8>, data: &[f32]) {
    let (len, n) = (bytes.len(), data.len());
    bytes.reserve(n * 4);
    // SAFETY: n words from `data`, into the n·4 bytes reserved just above (no overlap).
    unsafe {
        swap_words(
            data.as_ptr() as *const u8,
            bytes.spare_capacity_mut().as_mut_ptr() as *mut u8,
            n,
        );
        bytes.set_len(len + n * 4);
    }
}

/// `out` filled with the big-endian float32 words of `bytes` (`out.len()` of them).
pub(crate) fn decode_be(bytes: &[u8], out: &mut [f32]) {
    assert!(bytes.len() >= out.len() * 4, "decode_be past its bytes");
    // SAFETY: out.len() words each side (asserted), distinct buffers.
    unsafe { swap_words(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, out.len()) };
}

/// The big-endian float32 words of `bytes` appended to `out`.
pub(crate) fn decode_be_append(bytes: &[u8], out: &mut Vec<f32>) {
    let (len, n) = (out.len(), bytes.len() / 4);
    out.reserve(n);
    // SAFETY: n words from `bytes`, into the n floats reserved just above (no overlap).
    unsafe {
        swap_words(
            bytes.as_ptr(),
            out.spare_capacity_mut().as_mut_ptr() as *mut u8,
            n,
        );
        out.set_len(len + n);
    }
}

/// The finite values among the big-endian float32 words of `bytes`, in order, appended to `out`
/// as f64 (a blank or infinite word left out): decoded, widened and filtered in one pass (eight
/// words a vector where the CPU has AVX-512). The same values, in the same order, as decoding
/// the words and then keeping the finite ones.
pub(crate) fn decode_be_finite_f64_append(bytes: &[u8], out: &mut Vec<f64>) {
    out.reserve(bytes.len() / 4);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::science::simd::avx512() {
            // SAFETY: the CPU has AVX-512F, and AVX2 as every AVX-512 CPU has (checked above).
            return unsafe { finite_f64_avx512(bytes, out) };
        }
        if crate::science::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { finite_f64_avx2(bytes, out) };
        }
    }
    finite_f64_body(bytes, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn finite_f64_avx512(bytes: &[u8], out: &mut Vec<f64>) {
    use std::arch::x86_64::*;
    let n = bytes.len() / 4;
    // Each word's bytes reversed (the shuffle works within each 128-bit lane).
    let swap = _mm256_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
        15, 14, 13, 12,
    );
    let zero = _mm512_setzero_pd();
    let mut len = out.len();
    let dst = out.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: words i..i + 8 of `bytes` (an unaligned load); at most eight values stored
        // at `len`, within the n reserved past the length the call began with.
        unsafe {
            let w = _mm256_loadu_si256(bytes.as_ptr().add(4 * i) as *const __m256i);
            let x = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_shuffle_epi8(w, swap)));
            // x − x is 0 exactly where x is finite (NaN for a NaN or an infinity).
            let finite = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(_mm512_sub_pd(x, x), zero);
            if finite == 0xff {
                _mm512_storeu_pd(dst.add(len), x);
                len += 8;
            } else {
                _mm512_mask_compressstoreu_pd(dst.add(len) as _, finite, x);
                len += finite.count_ones() as usize;
            }
        }
        i += 8;
    }
    // SAFETY: the `len` first values are written (those before the call, then each vector's
    // finite ones).
    unsafe { out.set_len(len) };
    finite_f64_body(&bytes[4 * i..], out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn finite_f64_avx2(bytes: &[u8], out: &mut Vec<f64>) {
    finite_f64_body(bytes, out)
}

/// [`decode_be_finite_f64_append`] eight words at a time (decoded and checked in one vector
/// where the compiler can), a word at a time after them.
#[inline(always)]
fn finite_f64_body(bytes: &[u8], out: &mut Vec<f64>) {
    let eights = bytes.chunks_exact(32);
    let rest = eights.remainder();
    for e in eights {
        let x: [f32; 8] =
            std::array::from_fn(|k| f32::from_be_bytes(e[4 * k..4 * k + 4].try_into().unwrap()));
        if x.iter().fold(true, |all, v| all & v.is_finite()) {
            out.extend(x.map(f64::from));
        } else {
            out.extend(x.iter().filter(|v| v.is_finite()).map(|&v| f64::from(v)));
        }
    }
    for w in rest.chunks_exact(4) {
        let x = f32::from_be_bytes(w.try_into().unwrap());
        if x.is_finite() {
            out.push(f64::from(x));
        }
    }
}

/// Copy `n` 4-byte words from `src` to `dst`, each word's bytes reversed (big-endian to native
/// or back), with AVX2's byte shuffle where the CPU has it (the baseline's SSE2 has none: its
/// swap is six instructions per four words). Either way the bytes are moved, never computed
/// on: the same bits.
///
/// # Safety
/// `src` and `dst` valid for `n` words each (any alignment), not overlapping.
unsafe fn swap_words(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::science::simd::avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked just above); the buffers as the caller promised.
        return unsafe { swap_words_avx2(src, dst, n) };
    }
    // SAFETY: as the caller promised.
    unsafe { swap_words_body(src, dst, n) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn swap_words_avx2(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: as the caller promised.
    unsafe { swap_words_body(src, dst, n) }
}

#[inline(always)]
unsafe fn swap_words_body(src: *const u8, dst: *mut u8, n: usize) {
    let (src, dst) = (src as *const u32, dst as *mut u32);
    for i in 0..n {
        // SAFETY: word i of both buffers (the caller's promise), unaligned accesses.
        unsafe {
            dst.add(i)
                .write_unaligned(src.add(i).read_unaligned().swap_bytes())
        };
    }
}

/// Append `spectra` (`[p·nchan + ch]`, `npix` pixels) to `bytes` as their `nchan` planes,
/// big-endian, in one pass.
fn append_planes_be(bytes: &mut Vec<u8>, spectra: &[f32], npix: usize, nchan: usize) {
    let n = npix * nchan * 4;
    assert_eq!(spectra.len() * 4, n, "spectra of npix × nchan");
    let at = bytes.len();
    bytes.reserve(n);
    // SAFETY: the bytes of `spectra`'s floats.
    let src = unsafe { std::slice::from_raw_parts(spectra.as_ptr() as *const u8, n) };
    transpose::transpose_swap32(src, npix, nchan, &mut bytes.spare_capacity_mut()[..n]);
    // SAFETY: the transpose wrote every one of the n bytes after `at` (reserved above).
    unsafe { bytes.set_len(at + n) };
}

/// A new file at `path` for writing (which must not exist: outputs go to fresh temporary
/// names).
fn create_new(path: &Path) -> Result<File, FitsError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| err(path, format!("cannot create: {e}")))
}

/// The bytes a writer hashes and writes at a time (each hashed just before it is written, so
/// the kernel copies it out of the cache).
const PIECE: usize = 256 << 10;

/// Hash `piece` (if asked) and write it to `f`.
fn put_piece(
    f: &mut File,
    path: &Path,
    hasher: Option<&mut blake3::Hasher>,
    piece: &[u8],
) -> Result<(), FitsError> {
    use std::io::Write;
    if let Some(h) = hasher {
        h.update(piece);
    }
    f.write_all(piece)
        .map_err(|e| err(path, format!("cannot write: {e}")))
}

/// Leave the digest of the `len` bytes written to `f` at `path`, if it was asked for.
fn leave_digest(path: &Path, f: &File, len: u64, hasher: Option<blake3::Hasher>) {
    if let Some(h) = hasher {
        crate::cputime::add_hashed(len);
        let digest = crate::hash::Digest(*h.finalize().as_bytes());
        crate::hash::witness::leave_written(path, f, len, digest);
    }
}

/// A float32 primary image written to its file as its pixels come, in the same bytes as
/// [`ImageBytes`] (header, big-endian pixels, zero fill): the planes are encoded into one
/// small buffer, hashed and written a piece at a time while it is in the cache, so a cube
/// larger than the cache never passes through memory as a whole (linmos's mosaics, frion's
/// corrected Q and U).
pub struct ImageStream {
    file: File,
    path: PathBuf,
    hasher: Option<blake3::Hasher>,
    /// Bytes encoded and not yet written (the header, at first).
    buf: Vec<u8>,
    /// Bytes of the file written or in `buf`; where the pixels end.
    len: usize,
    data_end: usize,
}

impl ImageStream {
    /// Create the file at `path` (which must not exist: outputs go to fresh temporary names)
    /// with the header laid out for `shape`.
    pub fn create(path: &Path, shape: &[usize], header: &Header) -> Result<ImageStream, FitsError> {
        let head = header_bytes(path, shape, header)?;
        let file = create_new(path)?;
        let data_end = head.len() + shape.iter().product::<usize>() * 4;
        // Room for the header and the first planes (a growing buffer copied itself over).
        let mut buf = Vec::with_capacity(data_end.min(head.len() + 4 * PIECE));
        buf.extend_from_slice(&head);
        Ok(ImageStream {
            file,
            path: path.to_path_buf(),
            hasher: crate::hash::witness::wanted(path).then(blake3::Hasher::new),
            len: buf.len(),
            data_end,
            buf,
        })
    }

    /// Append `layout.w` whole planes given laid out in channel groups
    /// ([`ChannelGroups`](crate::science::layout::ChannelGroups)): each group transposed into
    /// its planes.
    pub fn put_groups(
        &mut self,
        data: &[f32],
        layout: crate::science::layout::ChannelGroups,
    ) -> Result<(), FitsError> {
        let n = layout.npix * layout.w;
        assert!(
            data.len() == n && self.len + n * 4 <= self.data_end,
            "more pixels than the shape holds"
        );
        for (c, l) in layout.groups() {
            let group = &data[c * layout.npix..(c + l) * layout.npix];
            append_planes_be(&mut self.buf, group, layout.npix, l);
        }
        self.len += n * 4;
        self.flush(false)
    }

    /// Append pixels, as [`ImageBytes::put_f32`].
    pub fn put_f32(&mut self, data: &[f32]) -> Result<(), FitsError> {
        assert!(
            self.len + data.len() * 4 <= self.data_end,
            "more pixels than the shape holds"
        );
        append_f32_be(&mut self.buf, data);
        self.len += data.len() * 4;
        self.flush(false)
    }

    /// Hash and write what is buffered once it is a piece or more (`all`: whatever there is).
    fn flush(&mut self, all: bool) -> Result<(), FitsError> {
        if !all && self.buf.len() < PIECE {
            return Ok(());
        }
        for piece in self.buf.chunks(PIECE) {
            put_piece(&mut self.file, &self.path, self.hasher.as_mut(), piece)?;
        }
        self.buf.clear();
        Ok(())
    }

    /// The zero fill to the end of the last block written, and the digest left if asked for
    /// (every pixel must have been given).
    pub fn finish(mut self) -> Result<(), FitsError> {
        assert_eq!(self.len, self.data_end, "fewer pixels than the shape holds");
        let end = self.data_end.div_ceil(FITS_BLOCK as usize) * FITS_BLOCK as usize;
        let at = self.buf.len();
        self.buf.resize(at + end - self.data_end, 0);
        self.flush(true)?;
        leave_digest(&self.path, &self.file, end as u64, self.hasher.take());
        Ok(())
    }
}

/// Write a float32 primary image of `shape` (NAXIS1 first) with the header's non-structural
/// cards: the bytes cfitsio writes (its header layout, big-endian pixels, zero fill), put
/// together in memory and written at once.
fn write_image(
    path: &Path,
    shape: &[usize],
    data: &[f32],
    header: &Header,
) -> Result<(), FitsError> {
    let mut img = ImageBytes::new(path, shape, header)?;
    img.put_f32(data);
    img.write(path)
}

/// cfitsio's own writing of an image, which [`write_image`] must match byte for byte.
#[cfg(test)]
fn write_image_cfitsio(
    path: &Path,
    shape: &[usize],
    data: &[f32],
    header: &Header,
) -> Result<(), FitsError> {
    let h = Handle::create(path)?;
    let mut status = 0;
    create_image(&h, shape)?;
    write_cards(&h, header)?;
    let mut data = data.to_vec();
    // SAFETY: the buffer holds exactly nelem floats.
    unsafe {
        sys::ffppre(
            h.fptr,
            0,
            1,
            data.len() as i64,
            data.as_mut_ptr(),
            &mut status,
        )
    };
    h.check(status, "writing the pixels")?;
    h.close()
}

/// A float image of any number of axes (the holography beam model is 4-D: x, y, FREQ, BEAM).
pub struct Image {
    /// Axis lengths, NAXIS1 first.
    pub shape: Vec<usize>,
    /// The pixels, NAXIS1 varying fastest.
    pub data: Vec<f32>,
    /// The header.
    pub header: Header,
}

impl Image {
    /// Read the primary image, whatever its number of axes (floating-point data only).
    pub fn read(path: &Path) -> Result<Image, FitsError> {
        let handle = Handle::open(path)?;
        let header = Header {
            cards: handle.cards()?,
        };
        let shape = float_shape(&header, path)?;
        let n: usize = shape.iter().product();
        if shape.is_empty() || n == 0 {
            return Err(err(path, format!("shape {shape:?}: the image is empty")));
        }
        check_complete(&header, &handle, n)?;
        let mut data = vec![0f32; n];
        let (mut status, mut anynul) = (0, 0);
        // SAFETY: `data` holds n floats; firstelem is 1-based.
        unsafe {
            sys::ffgpve(
                handle.fptr,
                0,
                1,
                n as i64,
                f32::NAN,
                data.as_mut_ptr(),
                &mut anynul,
                &mut status,
            )
        };
        handle.check(status, "reading the pixels")?;
        handle.close()?;
        Ok(Image {
            shape,
            data,
            header,
        })
    }

    /// Write as a float32 image with this header (structural cards are regenerated).
    pub fn write(&self, path: &Path) -> Result<(), FitsError> {
        write_image(path, &self.shape, &self.data, &self.header)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::layout::{ChannelGroups, CHANNEL_GROUP, CHANNEL_RUN};

    /// A FITS file of these header records (each padded to 80 characters, END added unless
    /// `end` is false, the header padded to its block) and `n` float32 pixels.
    fn raw_fits(path: &Path, records: &[impl AsRef<[u8]>], end: bool, n: usize) {
        let mut bytes = Vec::new();
        for r in records {
            let mut card = r.as_ref().to_vec();
            card.resize(80, b' ');
            bytes.extend(card);
        }
        if end {
            let mut card = b"END".to_vec();
            card.resize(80, b' ');
            bytes.extend(card);
        }
        bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
        let data = (0..n).flat_map(|i| (i as f32 * 0.5).to_be_bytes());
        bytes.extend(data);
        bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_header_read_without_cfitsio_has_the_cards_and_data_start_cfitsio_gives() {
        let dir = tempfile::tempdir().unwrap();
        let simple: &[&[u8]] = &[
            b"SIMPLE  =                    T / conforms",
            b"BITPIX  =                  -32",
            b"NAXIS   =                    3",
            b"NAXIS1  =                    4",
            b"NAXIS2  =                    3",
            b"NAXIS3  =                    2",
        ];
        let filler = |k: usize| format!("KEY{k:<5}= {:>20} / filler", k as f64 * 0.25);
        let fillers: Vec<String> = (0..40).map(filler).collect();
        let blank: &[u8] = b"";
        let mut cases: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
        let with = |extra: &[&[u8]]| -> Vec<Vec<u8>> {
            simple.iter().chain(extra).map(|r| r.to_vec()).collect()
        };
        // Blank cards between keywords stay; those just before END go.
        cases.push((
            "blanks",
            with(&[
                blank,
                b"HISTORY a line of history   ",
                blank,
                b"COMMENT   indented comment",
                b"HIERARCH ESO DET CHIP = 'x' / long keyword",
                b"OBJECT  = 'it''s a long string value&'",
                b"CONTINUE  'that continues'",
                blank,
                blank,
            ]),
        ));
        // END the last card of the first block, and the first of the second.
        let upto = |k: usize| -> Vec<Vec<u8>> {
            let mut v = with(&[]);
            v.extend(fillers[..k].iter().map(|f| f.as_bytes().to_vec()));
            v
        };
        cases.push(("end-last-in-block", upto(29)));
        cases.push(("end-first-in-block", upto(30)));
        // Two blocks of cards, a blank at the end of the first.
        let mut two = upto(29);
        two.push(Vec::new());
        two.extend(fillers[29..].iter().map(|f| f.as_bytes().to_vec()));
        cases.push(("two-blocks", two));
        for (name, records) in &cases {
            let p = dir.path().join(format!("{name}.fits"));
            raw_fits(&p, records, true, 24);
            let bytes = std::fs::read(&p).unwrap();
            let (header, start) = quick_header(&bytes).unwrap_or_else(|| panic!("{name}"));
            let h = Handle::open(&p).unwrap();
            assert_eq!(header.cards, h.cards().unwrap(), "{name}");
            assert_eq!(start, h.data_start().unwrap(), "{name}");
        }
        // Junk after END's keyword: still the end, as for cfitsio.
        let p = dir.path().join("junk.fits");
        raw_fits(&p, &with(&[b"END      junk after it"]), false, 24);
        let bytes = std::fs::read(&p).unwrap();
        let (header, start) = quick_header(&bytes).unwrap();
        let h = Handle::open(&p).unwrap();
        assert_eq!(header.cards, h.cards().unwrap());
        assert_eq!(start, h.data_start().unwrap());
        // The writer's own files, with a header of several blocks.
        let mut header = Header::default();
        header.set_str("CTYPE1", "RA---SIN", "");
        header.history("made by a test");
        header.cards.push(String::new());
        for k in 0..50 {
            header.set_f64(&format!("KEY{k}"), k as f64 * 1.5, "a value");
        }
        let p = dir.path().join("written.fits");
        write_image(&p, &[5, 4, 3], &vec![1.5; 60], &header).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let (quick, start) = quick_header(&bytes).unwrap();
        let h = Handle::open(&p).unwrap();
        assert_eq!(quick.cards, h.cards().unwrap());
        assert_eq!(start, h.data_start().unwrap());
        // Left to cfitsio: a byte that is not printable ASCII, SIMPLE in free format or not
        // T, no END, and not FITS at all.
        // The header with another first card.
        let first = |card: &[u8]| -> Vec<Vec<u8>> {
            std::iter::once(card.to_vec())
                .chain(with(&[]).into_iter().skip(1))
                .collect()
        };
        let refuse: Vec<(&str, Vec<Vec<u8>>, bool)> = vec![
            ("utf8", with(&["COMMENT caf\u{e9}".as_bytes()]), true),
            ("latin1", with(&[b"COMMENT caf\xe9"]), true),
            ("free", first(b"SIMPLE = T"), true),
            ("false", first(b"SIMPLE  =                    F"), true),
            ("no-end", with(&[]), false),
        ];
        for (name, records, end) in refuse {
            let p = dir.path().join(format!("{name}.fits"));
            raw_fits(&p, &records, end, 24);
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(quick_header(&bytes), None, "{name}");
        }
        assert_eq!(quick_header(b"\x1f\x8b gzip"), None);
        assert_eq!(quick_header(b""), None);
    }

    #[test]
    fn floats_go_to_big_endian_and_back_bit_for_bit() {
        for n in [0usize, 1, 7, 8, 9, 31, 100] {
            // NaN payloads and signed zeros too: the bytes are moved, never computed on.
            let data: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => f32::from_bits(0x7fc0_0001 + i as u32),
                    1 => -0.0,
                    _ => i as f32 * -1.25e-3,
                })
                .collect();
            let mut bytes = vec![0xAB];
            append_f32_be(&mut bytes, &data);
            let want: Vec<u8> = data.iter().flat_map(|v| v.to_be_bytes()).collect();
            assert_eq!(bytes[0], 0xAB);
            assert_eq!(&bytes[1..], &want[..]);
            let mut back = vec![9.0f32];
            decode_be_append(&bytes[1..], &mut back);
            let mut into = vec![0f32; n];
            decode_be(&bytes[1..], &mut into);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back[1..]), bits(&data));
            assert_eq!(bits(&into), bits(&data));
            // The plain loop moves the same bytes as this CPU's widest.
            let mut plain = vec![0u8; n * 4];
            // SAFETY: n words each side, distinct buffers.
            unsafe { swap_words_body(data.as_ptr() as *const u8, plain.as_mut_ptr(), n) };
            assert_eq!(plain, want);
        }
    }

    #[test]
    fn finite_words_widened_are_the_decoded_finite_values_in_order() {
        // Blanks, infinities, signed zeros, subnormals and the largest floats, at every
        // position of the eight-word vectors and their tails, appended after what is there.
        let special = [
            f32::NAN,
            f32::from_bits(0xffc0_1234),
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
        ];
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 40] {
            for seed in 0..12u32 {
                let data: Vec<f32> = (0..n as u32)
                    .map(|i| {
                        let h = (i ^ seed.wrapping_mul(0x9e37)).wrapping_mul(2_654_435_761);
                        if h % 3 == 0 && seed > 0 {
                            special[(h >> 8) as usize % special.len()]
                        } else {
                            (h >> 9) as f32 * 1.0e-4 - 400.0
                        }
                    })
                    .collect();
                let mut bytes = Vec::new();
                append_f32_be(&mut bytes, &data);
                let want: Vec<u64> = std::iter::once(7.5f64)
                    .chain(data.iter().filter(|v| v.is_finite()).map(|&v| f64::from(v)))
                    .map(f64::to_bits)
                    .collect();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let mut got = vec![7.5f64];
                decode_be_finite_f64_append(&bytes, &mut got);
                assert_eq!(bits(&got), want, "n {n} seed {seed}");
                // The plain loop, whatever this CPU runs.
                let mut plain = vec![7.5f64];
                plain.reserve(n);
                finite_f64_body(&bytes, &mut plain);
                assert_eq!(bits(&plain), want, "plain, n {n} seed {seed}");
            }
        }
    }

    #[test]
    fn cubes_round_trip_with_their_header_even_with_odd_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("J12[3] a b.fits");
        let mut header = Header::default();
        header.set_str("CTYPE1", "RA---SIN", "");
        header.set_f64("CRVAL1", 189.25, "deg");
        header.set_str("OBJECT", "it's", "");
        let cube = Cube {
            nx: 3,
            ny: 2,
            nchan: 4,
            data: (0..24).map(|i| i as f32 * 0.5).collect(),
            header,
        };
        cube.write(&p).unwrap();
        let back = Cube::read(&p).unwrap();
        assert_eq!((back.nx, back.ny, back.nchan), (3, 2, 4));
        assert_eq!(back.data, cube.data);
        assert_eq!(back.header.get_f64("CRVAL1"), Some(189.25));
        assert_eq!(back.header.get_str("CTYPE1").as_deref(), Some("RA---SIN"));
        assert_eq!(back.header.get_str("OBJECT").as_deref(), Some("it's"));
        // Truncation is reported, not read as zeros.
        let bytes = std::fs::read(&p).unwrap();
        let t = dir.path().join("t.fits");
        std::fs::write(&t, &bytes[..bytes.len() - 2880]).unwrap();
        // The header counts: here only the data block is gone, far more than the 96 bytes of
        // pixels, and both readers say so before reading.
        for e in [
            Cube::read(&t).unwrap_err().to_string(),
            Image::read(&t).err().unwrap().to_string(),
        ] {
            assert!(
                e.contains("t.fits")
                    && e.contains("truncated")
                    && e.contains("copy or image it again"),
                "{e}"
            );
        }
    }

    #[test]
    fn images_are_written_byte_for_byte_as_cfitsio_writes_them_and_hashed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = Header::default();
        header.set_str("CTYPE1", "RA---SIN", "");
        header.set_f64("CRVAL1", 189.25, "deg");
        header.set_str("OBJECT", "an island's name that is long enough", "island");
        header.set_f64("INSTRUMENT_RECEPTOR_ANGLE", -45.0, "");
        header.history("made by a test");
        // Cards cfitsio puts in every new primary header, and blank ones: not copied twice.
        header.cards.push(
            "COMMENT   FITS (Flexible Image Transport System) format is defined in 'Astronomy"
                .into(),
        );
        header.cards.push(String::new());
        // Many cards: a header of several blocks.
        for k in 0..70 {
            header.set_f64(&format!("KEY{k}"), k as f64 * 1.5, "");
        }
        let values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| match i % 7 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => f32::INFINITY,
                    3 => f32::from_bits(0x7fc0_1234), // a NaN with a payload
                    _ => (i as f32 * 0.37).sin(),
                })
                .collect()
        };
        // Data ending inside a block, on a block's end (720 floats = 2880 bytes), 4-D, and
        // written (and hashed) in more than one piece.
        for (k, shape) in [
            vec![3usize, 2, 4],
            vec![30, 24, 1],
            vec![5, 4, 3, 2],
            vec![300, 301, 1],
            // Enough planes for a whole channel group, a run and more.
            vec![7, 5, 40],
        ]
        .into_iter()
        .enumerate()
        {
            let data = values(shape.iter().product());
            let (ours, theirs) = (
                dir.path().join(format!("ours{k}.fits")),
                dir.path().join(format!("cfitsio{k}.fits")),
            );
            let asked = crate::hash::witness::want(&ours);
            write_image(&ours, &shape, &data, &header).unwrap();
            write_image_cfitsio(&theirs, &shape, &data, &header).unwrap();
            let (a, b) = (
                std::fs::read(&ours).unwrap(),
                std::fs::read(&theirs).unwrap(),
            );
            assert_eq!(a.len(), b.len(), "shape {shape:?}");
            assert!(a == b, "shape {shape:?}: the bytes differ");
            let sig = crate::hash::StatSig::of_path(&ours).unwrap().unwrap();
            assert_eq!(
                crate::hash::witness::take(&ours, sig),
                Some(crate::hash::hash_file(&ours).unwrap()),
                "the digest left as written is the file's"
            );
            // Written as it comes, in the same bytes: the last axis's first plane as pixels,
            // the rest as spectra in runs of one and two planes; its digest left as written.
            let streamed = dir.path().join(format!("stream{k}.fits"));
            let asked_too = crate::hash::witness::want(&streamed);
            let mut s = ImageStream::create(&streamed, &shape, &header).unwrap();
            let npix: usize = shape[..shape.len() - 1].iter().product();
            let planes = data.len() / npix;
            s.put_f32(&data[..npix]).unwrap();
            // Blocks of a whole group, a run and more, then of one and two planes, laid out in
            // channel groups.
            let mut c0 = 1;
            while c0 < planes {
                let want = if c0 == 1 {
                    CHANNEL_GROUP + CHANNEL_RUN + 2
                } else {
                    2 - c0 % 2
                };
                let w = (planes - c0).min(want);
                let run = &data[c0 * npix..(c0 + w) * npix];
                let layout = ChannelGroups { npix, w };
                let mut laid = vec![f32::NAN; npix * w];
                for p in 0..npix {
                    for j in 0..w {
                        laid[layout.at(p, j)] = run[j * npix + p];
                    }
                }
                s.put_groups(&laid, layout).unwrap();
                c0 += w;
            }
            s.finish().unwrap();
            assert!(
                std::fs::read(&streamed).unwrap() == b,
                "shape {shape:?}: streamed"
            );
            let sig_s = crate::hash::StatSig::of_path(&streamed).unwrap().unwrap();
            assert_eq!(
                crate::hash::witness::take(&streamed, sig_s),
                Some(crate::hash::hash_file(&streamed).unwrap()),
                "the streamed file's digest left as written"
            );
            drop(asked_too);
            // Not asked for: nothing is left.
            std::fs::remove_file(&ours).unwrap();
            write_image(&ours, &shape, &data, &header).unwrap();
            assert_eq!(crate::hash::witness::take(&ours, sig), None);
            drop(asked);
            assert!(
                !crate::hash::witness::wanted(&ours),
                "withdrawn with its request"
            );
        }
        // An output name that exists already is an error, not an overwrite.
        let p = dir.path().join("ours0.fits");
        let e = write_image(&p, &[1, 1, 1], &[0.0], &header).unwrap_err();
        assert!(e.to_string().contains("ours0.fits") && e.to_string().contains("cannot create"));
    }

    #[test]
    fn spectra_are_read_and_written_as_the_planes_are_transposed() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = Header::default();
        header.set_str("CTYPE1", "RA---SIN", "");
        // More pixels than a transpose tile, a count that is not a multiple of it; odd values.
        for (nx, ny, nchan) in [(13usize, 11usize, 5usize), (3, 2, 1), (64, 1, 3)] {
            let data: Vec<f32> = (0..nx * ny * nchan)
                .map(|i| match i % 5 {
                    0 => f32::from_bits(0x7fc0_1234),
                    1 => -0.0,
                    _ => (i as f32 * 0.91).cos(),
                })
                .collect();
            let planes = dir.path().join(format!("planes{nx}.fits"));
            Cube {
                nx,
                ny,
                nchan,
                data: data.clone(),
                header: header.clone(),
            }
            .write(&planes)
            .unwrap();
            let s = Spectra::read(&planes).unwrap();
            assert_eq!((s.nx, s.ny, s.nchan), (nx, ny, nchan));
            let npix = nx * ny;
            for p in 0..npix {
                for ch in 0..nchan {
                    assert_eq!(
                        s.data[p * nchan + ch].to_bits(),
                        data[ch * npix + p].to_bits(),
                        "pixel {p} channel {ch} of {nx}x{ny}x{nchan}"
                    );
                }
            }
            // Written back from spectra: the very bytes of the planes' file.
            let back = dir.path().join(format!("spectra{nx}.fits"));
            s.write(&back).unwrap();
            assert!(std::fs::read(&back).unwrap() == std::fs::read(&planes).unwrap());
        }
    }
}
