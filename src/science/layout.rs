//! How the stages hold a cube's pixels in memory: channel-major planes ([`CubeView`]), spectra
//! ([`to_spectra`]), and the mosaic's blocks of channels ([`ChannelGroups`]).
//! Layout only, no science: the FITS reader and writer use it, and so every stage's code
//! digest holds this file, not the kernels that compute on the pixels.
//!
//! Must never: read or write a file.

/// A cube's pixels, channel-major (`[channel][y][x]`), as the stages hold them.
#[derive(Clone, Copy, Debug)]
pub struct CubeView<'a> {
    /// The pixels, `nchan × ny × nx`.
    pub data: &'a [f32],
    /// Pixels along x.
    pub nx: usize,
    /// Pixels along y.
    pub ny: usize,
    /// Channels.
    pub nchan: usize,
}

impl CubeView<'_> {
    /// The pixel (x, y) of channel `c`.
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.ny + y) * self.nx + x]
    }
}

/// The channels the mosaic's Gaussian beam moves by at a time (linmos's chirp steps), and
/// takes at a time through regrid's `TapSpectra::sample` with AVX2: one AVX2 register.
pub const CHANNEL_RUN: usize = 8;

/// The channels a pixel holds side by side in the mosaic's [`ChannelGroups`]: one AVX-512
/// register, the lanes the mix takes at a time with AVX-512 (two [`CHANNEL_RUN`]s).
pub const CHANNEL_GROUP: usize = 16;

/// A cube's planes (`nchan` of `npix` pixels) as spectra: `out[p·nchan + ch] = planes[ch·npix + p]`.
pub fn to_spectra(planes: &[f32], npix: usize, nchan: usize) -> Vec<f32> {
    let mut out = vec![0f32; planes.len()];
    // In tiles of 64 pixels, so both sides stay in cache.
    for p0 in (0..npix).step_by(64) {
        let p1 = (p0 + 64).min(npix);
        for ch in 0..nchan {
            let row = &planes[ch * npix + p0..ch * npix + p1];
            for (k, &v) in row.iter().enumerate() {
                out[(p0 + k) * nchan + ch] = v;
            }
        }
    }
    out
}

/// How the mosaic holds a block of `w` channels of `npix` pixels: channel group after channel
/// group, each whole group of [`CHANNEL_GROUP`] channels as `[pixel][CHANNEL_GROUP]` and the
/// channels after the last whole group as `[pixel][w − whole]`. Group `g` (first channel `c`,
/// `l` channels) fills `[c·npix, (c + l)·npix)`: a pixel's group is one AVX-512 vector (two
/// AVX2 ones), a neighbourhood's pixels lie a group apart (fixed offsets from one address),
/// and a group goes to its planes, and comes from them, as one transpose of `l` planes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelGroups {
    /// Pixels.
    pub npix: usize,
    /// Channels.
    pub w: usize,
}

impl ChannelGroups {
    /// The channels in whole groups.
    #[inline(always)]
    pub fn whole(&self) -> usize {
        self.w / CHANNEL_GROUP * CHANNEL_GROUP
    }

    /// The group of channel `ch`: its first channel and its length.
    #[inline(always)]
    pub fn group(&self, ch: usize) -> (usize, usize) {
        let whole = self.whole();
        if ch < whole {
            (ch / CHANNEL_GROUP * CHANNEL_GROUP, CHANNEL_GROUP)
        } else {
            (whole, self.w - whole)
        }
    }

    /// Where channel `ch` of pixel `p` is.
    #[inline(always)]
    pub fn at(&self, p: usize, ch: usize) -> usize {
        let (c, l) = self.group(ch);
        c * self.npix + p * l + (ch - c)
    }

    /// The groups in order: (first channel, channels).
    pub fn groups(&self) -> impl Iterator<Item = (usize, usize)> {
        let (w, whole) = (self.w, self.whole());
        (0..whole)
            .step_by(CHANNEL_GROUP)
            .map(|c| (c, CHANNEL_GROUP))
            .chain((whole < w).then_some((whole, w - whole)))
    }

    /// Channels `chans` of pixel-major spectra (`spectra[p·nchan + ch]`) laid out in groups into
    /// `out` (replaced).
    pub fn from_spectra(
        spectra: &[f32],
        nchan: usize,
        chans: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) {
        let layout = ChannelGroups {
            npix: spectra.len() / nchan.max(1),
            w: chans.len(),
        };
        out.clear();
        out.reserve(layout.npix * layout.w);
        for (c, l) in layout.groups() {
            let from = chans.start + c;
            for s in spectra.chunks_exact(nchan) {
                out.extend_from_slice(&s[from..from + l]);
            }
        }
    }
}
