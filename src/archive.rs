//! `arrakis archive FIELD`: the cleanup stage of Arrakis, made safe. The per-beam cutouts of
//! every up-to-date cutout target go into `cutouts.tar` in the field directory (uncompressed,
//! members named by their path in the field), the tarball is checked member by member against
//! the recorded digests, the cache records each file as archived (with its place in the
//! tarball), and only then are the files removed. With `--remove-beam-cubes` the beam cubes the
//! cutouts were made from are removed too (recorded as deleted without a copy: imaging makes
//! them again).
//!
//! Archived files make nothing stale. A target that must run again and reads an archived file
//! gets it back from the tarball first (`restore`: one seek and read), checked against its
//! digest.
//! Must never: remove a file before the tarball holding it is in place and verified, or remove a
//! file whose bytes differ from its record.
//! The transaction ([`archive_field`]): verify (every cutout target up to date, every file still
//! its recorded bytes) → write and read back the tarball → record each member in the cache and
//! flush → only then remove the files. A crash at any step leaves every file either on disk or
//! recorded in a verified tarball.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::cache::{ArchivedFile, Cache, CacheError};
use crate::exec::local::{BuildResult, Status};
use crate::exec::{Engine, EngineError};
use crate::graph::InputFile;
use crate::hash::Digest;

/// The tarball, relative to the field directory.
pub const TARBALL: &str = "cutouts.tar";

/// Why archiving (or restoring an archived file) failed; nothing was removed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A tarball or an archived file is not what was recorded.
    #[error("{0}")]
    Integrity(String),
    /// The field is not ready to archive.
    #[error("{0}")]
    NotReady(String),
    /// The cache could not record it.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Evaluating the field failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Put the archived file back at `dest` (atomically) from `tar`, checking its digest.
pub fn restore(tar: &Path, rel: &str, a: &ArchivedFile, dest: &Path) -> Result<(), ArchiveError> {
    let mut file = std::fs::File::open(tar).map_err(|e| {
        ArchiveError::Integrity(format!(
            "{rel} was archived into {}, which cannot be opened: {e}",
            tar.display()
        ))
    })?;
    let mut bytes = vec![0u8; a.size as usize];
    file.seek(SeekFrom::Start(a.offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(io(tar))?;
    if blake3::hash(&bytes).as_bytes() != &a.digest.0 {
        return Err(ArchiveError::Integrity(format!(
            "{rel} in {} is not the file that was archived (digest differs); the tarball was changed",
            tar.display()
        )));
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    crate::atomic::write_atomic(dest, &bytes).map_err(io(dest))
}

/// Visit every member of a tarball in order: (name, offset of its bytes, size, a reader of its
/// bytes). Members are streamed, never held whole: a field's tarball can be far larger than RAM.
fn each_member(
    tar: &Path,
    mut f: impl FnMut(&str, u64, u64, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let bad = io(tar);
    let file = std::fs::File::open(tar).map_err(&bad)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive.entries().map_err(&bad)? {
        let mut entry = entry.map_err(&bad)?;
        let name = entry.path().map_err(&bad)?.to_string_lossy().to_string();
        let (offset, size) = (entry.raw_file_position(), entry.size());
        f(&name, offset, size, &mut entry)?;
    }
    Ok(())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// Write the files `rels` (relative to `field_dir`), plus the members of an existing tarball
/// that are not being replaced, into `field_dir/tar_rel`, atomically; read it back and check
/// every new member. Returns each new member's record.
pub fn write_tarball(
    field_dir: &Path,
    tar_rel: &str,
    rels: &[String],
) -> Result<BTreeMap<String, ArchivedFile>, ArchiveError> {
    let tar_path = field_dir.join(tar_rel);
    let tmp = crate::atomic::temp_path_for(&tar_path);
    let fail = io(&tmp);
    let out = std::fs::File::create(&tmp).map_err(&fail)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    // Keep what an earlier archive run put there (files long gone from disk).
    if tar_path.exists() {
        each_member(&tar_path, |name, _, size, bytes| {
            if rels.iter().any(|r| r == name) {
                return Ok(());
            }
            builder
                .append_data(&mut header(size), name, bytes)
                .map_err(&fail)
        })?;
    }
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    for rel in rels {
        let src = field_dir.join(rel);
        let bytes = std::fs::read(&src).map_err(io(&src))?;
        digests.insert(rel.clone(), Digest(*blake3::hash(&bytes).as_bytes()));
        builder
            .append_data(&mut header(bytes.len() as u64), rel, bytes.as_slice())
            .map_err(&fail)?;
    }
    let f = builder
        .into_inner()
        .map_err(&fail)?
        .into_inner()
        .map_err(|e| fail(e.into_error()))?;
    f.sync_all().map_err(&fail)?;
    drop(f);
    // Read it back before it replaces anything.
    let mut records = BTreeMap::new();
    each_member(&tmp, |name, offset, size, bytes| {
        let Some(d) = digests.get(name) else {
            return Ok(());
        };
        let mut h = blake3::Hasher::new();
        std::io::copy(bytes, &mut h).map_err(&fail)?;
        if h.finalize().as_bytes() != &d.0 {
            return Err(ArchiveError::Integrity(format!(
                "{}: member {name} did not read back intact",
                tmp.display()
            )));
        }
        let a = ArchivedFile {
            tar: Some(tar_rel.to_string()),
            digest: *d,
            offset,
            size,
        };
        records.insert(name.to_string(), a);
        Ok(())
    })?;
    if records.len() != digests.len() {
        return Err(ArchiveError::Integrity(format!(
            "{}: {} of {} members read back",
            tmp.display(),
            records.len(),
            digests.len()
        )));
    }
    std::fs::rename(&tmp, &tar_path).map_err(io(&tar_path))?;
    Ok(records)
}

/// What [`archive_field`] did.
#[derive(Clone, Debug, Default)]
pub struct Archived {
    /// Per-beam cutout files now in the tarball and removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Beam cubes removed without a copy.
    pub cubes: usize,
    /// Their bytes.
    pub cube_bytes: u64,
}

/// The archive transaction for the field `engine` evaluated (`res`: a dry run over every
/// target): every target of the `cutout` stage must be up to date; its outputs go into
/// [`TARBALL`], are recorded in `cache` as archived, and are removed; with `remove_beam_cubes`
/// the FITS sources those targets read are recorded and removed too (no copy kept).
pub fn archive_field(
    engine: &Engine,
    cache: &Cache,
    res: &BuildResult,
    remove_beam_cubes: bool,
) -> Result<Archived, ArchiveError> {
    let graph = engine.graph;
    let cutouts: Vec<usize> = (0..graph.targets.len())
        .filter(|&i| graph.stage_of(i) == "cutout")
        .collect();
    let not_ready = cutouts
        .iter()
        .filter(|&&i| {
            res.outcomes[i]
                .as_ref()
                .is_none_or(|o| o.status != Status::Skipped)
        })
        .count();
    if not_ready > 0 {
        return Err(ArchiveError::NotReady(format!(
            "{not_ready} cutout target(s) of {} are not up to date; run `{}` first, then archive",
            graph.field,
            crate::diag::field_command("build", &graph.field_dir, &graph.field)
        )));
    }
    // Verify: every cutout output still on disk, with its recorded digest.
    let mut members: Vec<(String, Digest)> = Vec::new();
    let mut cubes: Vec<String> = Vec::new();
    for &i in &cutouts {
        let t = &graph.targets[i];
        let rec = cache.get_state(&graph.field, &t.id)?.ok_or_else(|| {
            ArchiveError::NotReady(format!("{}: no record; build the field first", t.id))
        })?;
        for (o, r) in t.outputs.iter().zip(&rec.outputs) {
            if engine.abs(&o.rel).exists() {
                members.push((o.rel.clone(), r.digest));
            }
        }
        for slot in &t.inputs {
            for f in &slot.files {
                if let InputFile::Source(rel) = f {
                    if rel.ends_with(".fits") && !cubes.contains(rel) {
                        cubes.push(rel.clone());
                    }
                }
            }
        }
    }
    let mut done = Archived::default();
    let names: Vec<String> = members.iter().map(|(r, _)| r.clone()).collect();
    if !members.is_empty() {
        // Write and read back.
        let written = write_tarball(&graph.field_dir, TARBALL, &names)?;
        for (rel, recorded) in &members {
            if written.get(rel).map(|a| a.digest) != Some(*recorded) {
                return Err(ArchiveError::Integrity(format!(
                    "{} changed since it was built; rebuild (`{}`) before archiving. {TARBALL} holds the current bytes, nothing was removed",
                    engine.abs(rel).display(),
                    crate::diag::field_command("build", &graph.field_dir, &graph.field)
                )));
            }
        }
        // Record, durably.
        for (rel, a) in &written {
            cache.put_archived(&graph.field, rel, a)?;
        }
        cache.flush()?;
        // Only then remove.
        for rel in &names {
            let p = engine.abs(rel);
            done.bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
        done.files = names.len();
    }
    if remove_beam_cubes {
        for rel in &cubes {
            let Some(digest) = engine.source_digest(rel)? else {
                continue;
            };
            let gone = ArchivedFile {
                tar: None,
                digest,
                offset: 0,
                size: 0,
            };
            cache.put_archived(&graph.field, rel, &gone)?;
            cache.flush()?;
            let p = engine.abs(rel);
            done.cube_bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&p).map_err(io(&p))?;
            done.cubes += 1;
        }
    }
    cache.flush()?;
    Ok(done)
}
