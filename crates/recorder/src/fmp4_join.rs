//! One file from several fragmented-MP4 parts (issue 17 item 2): the parts of one recording that an
//! fMP4 packager's restart (or a pause) split are joined byte for byte when their init segments
//! describe the same media, so finalize turns them into one file as it does for MPEG-TS parts.
//!
//! What must match ([`Fmp4Identity`]): per track its id, handler, timescale and sample
//! description (`stsd`: codec, picture size, the decoder configuration with SPS/PPS or the AAC
//! config) and the `trex` defaults. Another encode (another size, profile or codec) has another
//! `stsd` and is never joined: its fragments need their own init.
//!
//! How ([`join_fragmented_parts`]): the first part's `ftyp` and `moov`, then every part's
//! `moof`/`mdat` pairs in order, each `tfdt` (a track fragment's decode time) moved so that a part
//! starts where the one before it ended (one shift per part, the same in seconds for every track,
//! so audio and video stay in step; no track overlaps the one before). `styp`, `sidx` and `mfra`
//! (positions and times of the original segments) and the later parts' init boxes are left out.
//! Nothing else is changed: a `moof` keeps its size, so its data offsets stay right. Parts whose
//! fragments name their data by absolute file position (`base-data-offset`), lack a `tfdt` or use
//! a track the init does not list are not joined (an error; finalize then keeps them apart).
//!
//! Memory is bounded: only box headers, the init and one `moof` at a time are read; `mdat`
//! bodies are copied through.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use streambot_ffmpeg::mp4_index::{
    box_size, child_boxes, read_u32, read_u64, timescale_and_duration,
};

/// An init (everything before the first `moof`) or a `moof` larger than this is not read.
pub const MAXIMUM_FMP4_BOX_BYTES: u64 = 16 * 1024 * 1024;
/// Top-level boxes walked at most in one part (two per fragment).
const MAXIMUM_TOP_LEVEL_BOXES: usize = 1_000_000;

/// tfhd flags.
const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_SAMPLE_DURATION: u32 = 0x00_0008;
/// trun flags.
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
const TRUN_SAMPLE_COMPOSITION_OFFSET: u32 = 0x00_0800;

fn invalid(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.into())
}

/// One track of an fMP4 init segment, as far as joining cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTrack {
    pub track_id: u32,
    /// `vide`, `soun`, ... from `hdlr`.
    pub handler: [u8; 4],
    /// From `mdhd`: the unit of every decode time of this track.
    pub timescale: u32,
    /// The `stsd` box's body: the codec and its decoder configuration.
    pub sample_description: Vec<u8>,
    /// From `trex`: the sample duration a fragment uses when it names none.
    pub default_sample_duration: u32,
}

/// What must be equal for two fMP4 parts to be joined: their init segments' tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmp4Identity {
    pub tracks: Vec<InitTrack>,
}

/// The tracks of an init's `moov` body (pure).
pub fn init_tracks(moov_body: &[u8]) -> io::Result<Vec<InitTrack>> {
    let mut tracks = Vec::new();
    let mut trex_defaults: BTreeMap<u32, u32> = BTreeMap::new();
    for (box_type, child) in child_boxes(moov_body)? {
        match &box_type {
            b"trak" => tracks.push(init_track(child)?),
            b"mvex" => {
                for (inner_type, inner) in child_boxes(child)? {
                    // Full box header (4), track id (4), description index (4), duration (4).
                    if &inner_type == b"trex"
                        && let (Some(track_id), Some(duration)) =
                            (read_u32(inner, 4), read_u32(inner, 12))
                    {
                        trex_defaults.insert(track_id, duration);
                    }
                }
            }
            _ => {}
        }
    }
    for track in &mut tracks {
        track.default_sample_duration = trex_defaults.get(&track.track_id).copied().unwrap_or(0);
    }
    if tracks.is_empty() {
        return Err(invalid("the init lists no track"));
    }
    Ok(tracks)
}

fn init_track(trak_body: &[u8]) -> io::Result<InitTrack> {
    let mut track_id = None;
    let mut handler = None;
    let mut timescale = None;
    let mut sample_description = None;
    for (box_type, child) in child_boxes(trak_body)? {
        match &box_type {
            // Version 1 has 64-bit creation and modification times before the track id.
            b"tkhd" => {
                track_id = match child.first() {
                    Some(1) => read_u32(child, 20),
                    _ => read_u32(child, 12),
                }
            }
            b"mdia" => {
                for (inner_type, inner) in child_boxes(child)? {
                    match &inner_type {
                        b"mdhd" => {
                            timescale = timescale_and_duration(inner).map(|(scale, _)| scale)
                        }
                        b"hdlr" => {
                            handler = inner
                                .get(8..12)
                                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                        }
                        b"minf" => {
                            for (minf_type, minf_child) in child_boxes(inner)? {
                                if &minf_type != b"stbl" {
                                    continue;
                                }
                                for (stbl_type, stbl_child) in child_boxes(minf_child)? {
                                    if &stbl_type == b"stsd" {
                                        sample_description = Some(stbl_child.to_vec());
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match (track_id, handler, timescale, sample_description) {
        (Some(track_id), Some(handler), Some(timescale), Some(sample_description))
            if timescale > 0 =>
        {
            Ok(InitTrack {
                track_id,
                handler,
                timescale,
                sample_description,
                default_sample_duration: 0,
            })
        }
        _ => Err(invalid(
            "a track of the init lacks its id, handler, timescale or stsd",
        )),
    }
}

/// Where a track fragment's decode time is written in its `moof`, and its samples' span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFragmentTiming {
    pub track_id: u32,
    /// Offset of the `tfdt` body (its version byte) in the `moof` body.
    pub tfdt_body_offset: usize,
    /// `tfdt` version: 0 (32-bit time) or 1 (64-bit).
    pub tfdt_version: u8,
    pub base_decode_time: u64,
    /// The sum of the sample durations of every `trun` of the track fragment.
    pub duration: u64,
}

/// The track fragments of a `moof` body with their decode times (pure). `tracks` gives each
/// track's `trex` default sample duration.
pub fn fragment_timings(
    moof_body: &[u8],
    tracks: &[InitTrack],
) -> io::Result<Vec<TrackFragmentTiming>> {
    let mut timings = Vec::new();
    for (box_type, traf) in child_boxes(moof_body)? {
        if &box_type != b"traf" {
            continue;
        }
        let traf_offset = offset_in(moof_body, traf);
        let mut track_id = None;
        let mut default_duration = None;
        let mut tfdt = None;
        let mut duration = 0u64;
        for (inner_type, inner) in child_boxes(traf)? {
            match &inner_type {
                b"tfhd" => {
                    let flags = read_u32(inner, 0).unwrap_or(0) & 0x00FF_FFFF;
                    if flags & TFHD_BASE_DATA_OFFSET != 0 {
                        return Err(invalid(
                            "a fragment names its data by file position (base-data-offset)",
                        ));
                    }
                    let id = read_u32(inner, 4).ok_or_else(|| invalid("short tfhd"))?;
                    track_id = Some(id);
                    if flags & TFHD_DEFAULT_SAMPLE_DURATION != 0 {
                        let at = if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
                            12
                        } else {
                            8
                        };
                        default_duration = read_u32(inner, at);
                    }
                }
                b"tfdt" => {
                    let version = *inner.first().ok_or_else(|| invalid("short tfdt"))?;
                    let time = match version {
                        1 => read_u64(inner, 4),
                        _ => read_u32(inner, 4).map(u64::from),
                    }
                    .ok_or_else(|| invalid("short tfdt"))?;
                    tfdt = Some((traf_offset + offset_in(traf, inner), version, time));
                }
                b"trun" => {
                    let id = track_id.ok_or_else(|| invalid("trun before tfhd"))?;
                    let fallback = default_duration.unwrap_or_else(|| {
                        tracks
                            .iter()
                            .find(|track| track.track_id == id)
                            .map_or(0, |track| track.default_sample_duration)
                    });
                    duration = duration.saturating_add(run_duration(inner, fallback)?);
                }
                _ => {}
            }
        }
        let track_id = track_id.ok_or_else(|| invalid("a traf without tfhd"))?;
        if !tracks.iter().any(|track| track.track_id == track_id) {
            return Err(invalid(format!(
                "a fragment of track {track_id}, which the init does not list"
            )));
        }
        let (tfdt_body_offset, tfdt_version, base_decode_time) =
            tfdt.ok_or_else(|| invalid("a track fragment without a decode time (tfdt)"))?;
        timings.push(TrackFragmentTiming {
            track_id,
            tfdt_body_offset,
            tfdt_version,
            base_decode_time,
            duration,
        });
    }
    Ok(timings)
}

/// The sum of the sample durations of a `trun` body.
fn run_duration(trun: &[u8], default_duration: u32) -> io::Result<u64> {
    let flags = read_u32(trun, 0).ok_or_else(|| invalid("short trun"))? & 0x00FF_FFFF;
    let sample_count = u64::from(read_u32(trun, 4).ok_or_else(|| invalid("short trun"))?);
    if flags & TRUN_SAMPLE_DURATION == 0 {
        return Ok(sample_count.saturating_mul(u64::from(default_duration)));
    }
    let mut at = 8usize;
    if flags & TRUN_DATA_OFFSET != 0 {
        at += 4;
    }
    if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    let per_sample = [
        TRUN_SAMPLE_DURATION,
        TRUN_SAMPLE_SIZE,
        TRUN_SAMPLE_FLAGS,
        TRUN_SAMPLE_COMPOSITION_OFFSET,
    ]
    .iter()
    .filter(|flag| flags & **flag != 0)
    .count()
        * 4;
    // Every sample's fields must be in the box (bounds the loop by the box's size).
    let needed = (sample_count as usize)
        .checked_mul(per_sample)
        .and_then(|bytes| bytes.checked_add(at))
        .ok_or_else(|| invalid("trun sample count"))?;
    if needed > trun.len() {
        return Err(invalid("trun shorter than its samples"));
    }
    let mut total = 0u64;
    for _ in 0..sample_count {
        total = total.saturating_add(u64::from(read_u32(trun, at).unwrap_or(0)));
        at += per_sample;
    }
    Ok(total)
}

/// Where `inner` (a sub-slice of `outer`) starts in `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// A top-level box of a part file.
struct TopLevelBox {
    box_type: [u8; 4],
    offset: u64,
    size: u64,
    header_bytes: u64,
}

/// The top-level boxes of a file, read header by header.
fn top_level_boxes(file: &mut File) -> io::Result<Vec<TopLevelBox>> {
    let file_length = file.metadata()?.len();
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset + 8 <= file_length {
        if boxes.len() >= MAXIMUM_TOP_LEVEL_BOXES {
            return Err(invalid("too many boxes"));
        }
        file.seek(SeekFrom::Start(offset))?;
        let header_length = if offset + 16 <= file_length { 16 } else { 8 };
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..header_length])?;
        let (size, header_bytes) = box_size(&header[..header_length], file_length - offset)?;
        let mut box_type = [0u8; 4];
        box_type.copy_from_slice(&header[4..8]);
        boxes.push(TopLevelBox {
            box_type,
            offset,
            size,
            header_bytes,
        });
        offset += size;
    }
    Ok(boxes)
}

fn read_box(file: &mut File, top: &TopLevelBox) -> io::Result<Vec<u8>> {
    if top.size > MAXIMUM_FMP4_BOX_BYTES {
        return Err(invalid(format!(
            "a {} box of {} bytes",
            String::from_utf8_lossy(&top.box_type),
            top.size
        )));
    }
    file.seek(SeekFrom::Start(top.offset))?;
    let mut bytes = vec![0u8; usize::try_from(top.size).map_err(|_| invalid("box size"))?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The identity of the fMP4 part at `path`: its init's tracks (reads the boxes before the first
/// `moof`).
pub fn read_fmp4_identity(path: &Path) -> io::Result<Fmp4Identity> {
    let mut file = File::open(path)?;
    let boxes = top_level_boxes(&mut file)?;
    let moov = boxes
        .iter()
        .take_while(|top| &top.box_type != b"moof")
        .find(|top| &top.box_type == b"moov")
        .ok_or_else(|| invalid("no init (moov) before the first fragment"))?;
    let bytes = read_box(&mut file, moov)?;
    let body = bytes.get(moov.header_bytes as usize..).unwrap_or_default();
    Ok(Fmp4Identity {
        tracks: init_tracks(body)?,
    })
}

/// A run of fragments whose decode times go forward: from the box `first_box` (a `moof`) to
/// before `end_box`; per track its first decode time and the end of its last sample.
struct Piece {
    first_box: usize,
    end_box: usize,
    first_and_end: BTreeMap<u32, (u64, u64)>,
}

/// One part, scanned: its boxes, its identity, and its pieces. A part holds more than one piece
/// when a track's decode time goes back by more than half a second from one fragment to the next
/// (an encoder that restarted with no discontinuity tag in the playlist).
struct ScannedPart {
    file: File,
    boxes: Vec<TopLevelBox>,
    identity: Fmp4Identity,
    pieces: Vec<Piece>,
}

fn scan_part(path: &Path) -> io::Result<ScannedPart> {
    let mut file = File::open(path)?;
    let boxes = top_level_boxes(&mut file)?;
    let mut identity: Option<Fmp4Identity> = None;
    let mut pieces: Vec<Piece> = Vec::new();
    for (index, top) in boxes.iter().enumerate() {
        match &top.box_type {
            b"moov" if identity.is_none() => {
                let bytes = read_box(&mut file, top)?;
                let body = bytes.get(top.header_bytes as usize..).unwrap_or_default();
                identity = Some(Fmp4Identity {
                    tracks: init_tracks(body)?,
                });
            }
            b"moof" => {
                let tracks = identity
                    .as_ref()
                    .map(|identity| identity.tracks.as_slice())
                    .ok_or_else(|| invalid("a fragment before the init"))?;
                let bytes = read_box(&mut file, top)?;
                let body = bytes.get(top.header_bytes as usize..).unwrap_or_default();
                let timings = fragment_timings(body, tracks)?;
                let goes_back = pieces.last().is_some_and(|piece| {
                    timings.iter().any(|timing| {
                        let half_a_second = tracks
                            .iter()
                            .find(|track| track.track_id == timing.track_id)
                            .map_or(0, |track| u64::from(track.timescale / 2));
                        piece
                            .first_and_end
                            .get(&timing.track_id)
                            .is_some_and(|(_, end)| {
                                timing.base_decode_time.saturating_add(half_a_second) < *end
                            })
                    })
                });
                if pieces.is_empty() || goes_back {
                    pieces.push(Piece {
                        first_box: index,
                        end_box: index + 1,
                        first_and_end: BTreeMap::new(),
                    });
                }
                if let Some(piece) = pieces.last_mut() {
                    for timing in timings {
                        let end = timing.base_decode_time.saturating_add(timing.duration);
                        piece
                            .first_and_end
                            .entry(timing.track_id)
                            .and_modify(|(_, last_end)| *last_end = (*last_end).max(end))
                            .or_insert((timing.base_decode_time, end));
                    }
                }
            }
            _ => {}
        }
        if let Some(piece) = pieces.last_mut() {
            piece.end_box = index + 1;
        }
    }
    let identity = identity.ok_or_else(|| invalid("no init (moov)"))?;
    if pieces.is_empty() {
        return Err(invalid("no fragment"));
    }
    Ok(ScannedPart {
        file,
        boxes,
        identity,
        pieces,
    })
}

/// The shift (in each track's timescale) that makes a part start where the joined file so far
/// ends (pure): one shift in seconds for every track (ceiling per track), at least what each
/// track needs not to overlap its own end. `joined_end` and `first` are per track id; `tracks`
/// gives the timescales.
pub fn part_shifts(
    tracks: &[InitTrack],
    joined_end: &BTreeMap<u32, u64>,
    first: &BTreeMap<u32, u64>,
) -> BTreeMap<u32, i128> {
    let timescale = |track_id: u32| {
        tracks
            .iter()
            .find(|track| track.track_id == track_id)
            .map_or(1, |track| track.timescale.max(1))
    };
    // Ticks each track must move by (may be negative: a part after a pause starts later).
    let needed: BTreeMap<u32, i128> = first
        .iter()
        .filter_map(|(track_id, first_time)| {
            joined_end
                .get(track_id)
                .map(|end| (*track_id, i128::from(*end) - i128::from(*first_time)))
        })
        .collect();
    // The largest of them in seconds, kept as a fraction (ticks, timescale): no rounding.
    let largest = needed
        .iter()
        .map(|(track_id, ticks)| (*ticks, i128::from(timescale(*track_id))))
        .reduce(|largest, candidate| {
            if candidate.0 * largest.1 > largest.0 * candidate.1 {
                candidate
            } else {
                largest
            }
        });
    first
        .keys()
        .map(|track_id| {
            let common = largest.map_or(0, |(ticks, scale)| {
                // ceil(ticks × this track's timescale / scale), scale > 0.
                -((-(ticks * i128::from(timescale(*track_id)))).div_euclid(scale))
            });
            let own = needed.get(track_id).copied().unwrap_or(i128::MIN);
            (*track_id, common.max(own))
        })
        .collect()
}

/// Moves every `tfdt` of a `moof` (whole box bytes, `header_bytes` long header) by `shifts`.
fn shift_fragment(
    moof: &mut [u8],
    header_bytes: usize,
    tracks: &[InitTrack],
    shifts: &BTreeMap<u32, i128>,
) -> io::Result<()> {
    let body = moof.get(header_bytes..).unwrap_or_default();
    let timings = fragment_timings(body, tracks)?;
    for timing in timings {
        let shift = shifts.get(&timing.track_id).copied().unwrap_or(0);
        let moved = i128::from(timing.base_decode_time) + shift;
        let at = header_bytes + timing.tfdt_body_offset + 4;
        match timing.tfdt_version {
            1 => {
                let value = u64::try_from(moved)
                    .map_err(|_| invalid("a moved decode time out of range"))?;
                moof.get_mut(at..at + 8)
                    .ok_or_else(|| invalid("short tfdt"))?
                    .copy_from_slice(&value.to_be_bytes());
            }
            _ => {
                let value = u32::try_from(moved)
                    .map_err(|_| invalid("a moved decode time does not fit a 32-bit tfdt"))?;
                moof.get_mut(at..at + 4)
                    .ok_or_else(|| invalid("short tfdt"))?
                    .copy_from_slice(&value.to_be_bytes());
            }
        }
    }
    Ok(())
}

fn copy_range(
    file: &mut File,
    offset: u64,
    length: u64,
    output: &mut impl Write,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    let copied = io::copy(&mut (&mut *file).take(length), output)?;
    if copied != length {
        return Err(invalid("a part ended inside a box"));
    }
    Ok(())
}

/// Joins the fMP4 parts at `parts` (in order; the same [`Fmp4Identity`]) into one fragmented MP4
/// at `output` with continuous decode times (see the module doc). Blocking IO. On error the
/// output may be left half-written: the caller removes it.
pub fn join_fragmented_parts(parts: &[&Path], output: &Path) -> io::Result<()> {
    let mut scanned = Vec::with_capacity(parts.len());
    for path in parts {
        scanned.push(scan_part(path)?);
    }
    write_continuous(&mut scanned, output)
}

/// Makes the decode times of the fMP4 part at `path` continuous where they go back (an encoder
/// restart the playlist did not announce; see [`ScannedPart`]): the part is rewritten (through a
/// file beside it, renamed over it) and `true` returned; a part whose times only go forward is
/// left as it is. Blocking IO.
pub fn make_decode_times_continuous(path: &Path) -> io::Result<bool> {
    let mut scanned = vec![scan_part(path)?];
    if scanned.iter().all(|part| part.pieces.len() < 2) {
        return Ok(false);
    }
    let rewritten = path.with_extension("continuous.mp4");
    if let Err(error) = write_continuous(&mut scanned, &rewritten) {
        let _ = std::fs::remove_file(&rewritten);
        return Err(error);
    }
    std::fs::rename(&rewritten, path)?;
    Ok(true)
}

/// Writes the first part's init, then every piece of every part, each moved to start where the
/// one before it ended.
fn write_continuous(scanned: &mut [ScannedPart], output: &Path) -> io::Result<()> {
    let Some(first) = scanned.first() else {
        return Err(invalid("no parts to join"));
    };
    let identity = first.identity.clone();
    if scanned.iter().any(|part| part.identity != identity) {
        return Err(invalid("the parts' init segments describe different media"));
    }
    let mut writer = BufWriter::new(File::create(output)?);
    // The first part's init: its ftyp and moov.
    let mut first_part_init = Vec::new();
    if let Some(part) = scanned.first_mut() {
        for top in part.boxes.iter().take_while(|top| &top.box_type != b"moof") {
            if matches!(&top.box_type, b"ftyp" | b"moov") {
                first_part_init.push((top.offset, top.size));
            }
        }
        for (offset, size) in first_part_init {
            copy_range(&mut part.file, offset, size, &mut writer)?;
        }
    }
    let mut joined_end: BTreeMap<u32, u64> = BTreeMap::new();
    for part in scanned.iter_mut() {
        for piece in &part.pieces {
            let first_times: BTreeMap<u32, u64> = piece
                .first_and_end
                .iter()
                .map(|(track_id, (first, _))| (*track_id, *first))
                .collect();
            let shifts = part_shifts(&identity.tracks, &joined_end, &first_times);
            for top in part
                .boxes
                .get(piece.first_box..piece.end_box)
                .unwrap_or_default()
            {
                match &top.box_type {
                    b"moof" => {
                        let mut moof = read_box(&mut part.file, top)?;
                        shift_fragment(
                            &mut moof,
                            top.header_bytes as usize,
                            &identity.tracks,
                            &shifts,
                        )?;
                        writer.write_all(&moof)?;
                    }
                    // Indexes of the original segments' positions and times.
                    b"ftyp" | b"moov" | b"styp" | b"sidx" | b"mfra" => {}
                    _ => copy_range(&mut part.file, top.offset, top.size, &mut writer)?,
                }
            }
            for (track_id, (_, end)) in &piece.first_and_end {
                let shift = shifts.get(track_id).copied().unwrap_or(0);
                let moved_end = u64::try_from(i128::from(*end) + shift)
                    .map_err(|_| invalid("a moved decode time out of range"))?;
                joined_end.insert(*track_id, moved_end);
            }
        }
    }
    writer.flush()?;
    writer.get_ref().sync_all()?;
    Ok(())
}

/// The identity of an fMP4 part (`None` for other formats, or an init that cannot be read: the
/// part is then finalized on its own). Off the async threads.
pub async fn identity_of_part(input: &streambot_ffmpeg::MediaInput) -> Option<Fmp4Identity> {
    if input.format != streambot_ffmpeg::InputFormat::Mp4 {
        return None;
    }
    let path = input.path.clone();
    match tokio::task::spawn_blocking(move || read_fmp4_identity(&path)).await {
        Ok(Ok(identity)) => Some(identity),
        Ok(Err(error)) => {
            tracing::info!(part = %input.path.display(), %error, "the fMP4 part's init is not understood: not joined");
            None
        }
        Err(_) => None,
    }
}

/// [`join_fragmented_parts`] off the async threads, its error as finalize's.
pub async fn join_parts(
    parts: &[std::path::PathBuf],
    output: &Path,
) -> Result<(), streambot_ffmpeg::FfmpegError> {
    let parts = parts.to_vec();
    let destination = output.to_path_buf();
    let joined = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = parts.iter().map(std::path::PathBuf::as_path).collect();
        join_fragmented_parts(&paths, &destination)
    })
    .await
    .unwrap_or_else(|error| Err(io::Error::other(error.to_string())));
    joined.map_err(|source| streambot_ffmpeg::FfmpegError::InvalidInput {
        input: output.to_string_lossy().into_owned(),
        detail: format!("joining the fMP4 parts failed: {source}"),
        stderr_tail: String::new(),
    })
}

/// [`make_decode_times_continuous`] off the async threads for an fMP4 part (other formats are
/// left alone); a failure is logged and the part left as it is.
pub async fn make_part_continuous(input: &streambot_ffmpeg::MediaInput) {
    if input.format != streambot_ffmpeg::InputFormat::Mp4 {
        return;
    }
    let path = input.path.clone();
    match tokio::task::spawn_blocking(move || make_decode_times_continuous(&path)).await {
        Ok(Ok(true)) => tracing::warn!(
            part = %input.path.display(),
            "the part's decode times went back (an encoder restart the playlist did not announce): made continuous"
        ),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => {
            tracing::info!(part = %input.path.display(), %error, "the part's decode times were not checked")
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(track_id: u32, timescale: u32) -> InitTrack {
        InitTrack {
            track_id,
            handler: *b"vide",
            timescale,
            sample_description: vec![1, 2, 3],
            default_sample_duration: 0,
        }
    }

    #[test]
    fn a_part_after_a_restart_starts_where_the_join_ends_in_step() {
        // Video at 90 kHz ended at 10 s, audio at 48 kHz at 10.02 s; the next part starts
        // from zero (a restart): both move by 10.02 s.
        let tracks = vec![track(1, 90_000), track(2, 48_000)];
        let joined_end = BTreeMap::from([(1, 900_000u64), (2, 480_960u64)]);
        let first = BTreeMap::from([(1, 0u64), (2, 0u64)]);
        let shifts = part_shifts(&tracks, &joined_end, &first);
        assert_eq!(shifts, BTreeMap::from([(1, 901_800i128), (2, 480_960i128)]));
    }

    #[test]
    fn a_part_after_a_pause_moves_back_and_nothing_overlaps() {
        // The next part starts 30 s later on the stream's clock: it moves back by 30 s.
        let tracks = vec![track(1, 1000), track(2, 1000)];
        let joined_end = BTreeMap::from([(1, 10_000u64), (2, 10_000u64)]);
        let first = BTreeMap::from([(1, 40_000u64), (2, 39_990u64)]);
        let shifts = part_shifts(&tracks, &joined_end, &first);
        // Audio started 10 ms before video: both move by 29.99 s, so it keeps that lead.
        assert_eq!(shifts, BTreeMap::from([(1, -29_990i128), (2, -29_990i128)]));
        for (track_id, shift) in &shifts {
            assert!(i128::from(first[track_id]) + shift >= i128::from(joined_end[track_id]));
        }
        // The first part is not moved.
        let unmoved = part_shifts(&tracks, &BTreeMap::new(), &first);
        assert_eq!(unmoved, BTreeMap::from([(1, 0i128), (2, 0i128)]));
    }

    #[test]
    fn malformed_fragments_are_errors_not_panics() {
        let tracks = vec![track(1, 1000)];
        for body in [
            vec![],
            vec![0, 0, 0, 9, b't', b'r', b'a', b'f', 0],
            // traf > tfhd with the base-data-offset flag.
            vec![
                0, 0, 0, 24, b't', b'r', b'a', b'f', 0, 0, 0, 16, b't', b'f', b'h', b'd', 0, 0, 0,
                1, 0, 0, 0, 1,
            ],
            // traf > trun claiming 2^32-1 samples.
            vec![
                0, 0, 0, 24, b't', b'r', b'a', b'f', 0, 0, 0, 16, b't', b'r', b'u', b'n', 0, 0, 1,
                0, 255, 255, 255, 255,
            ],
        ] {
            let _ = fragment_timings(&body, &tracks);
            let _ = init_tracks(&body);
        }
        assert!(
            fragment_timings(
                &[
                    0, 0, 0, 24, b't', b'r', b'a', b'f', 0, 0, 0, 16, b't', b'f', b'h', b'd', 0, 0,
                    0, 1, 0, 0, 0, 1,
                ],
                &tracks
            )
            .is_err()
        );
        assert!(run_duration(&[0, 0, 1, 0, 255, 255, 255, 255], 0).is_err());
    }
}
