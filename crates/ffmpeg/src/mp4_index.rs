//! A small reader of an MP4's index (`moov`), in process: where the index is, the duration and the
//! tracks (handler, codec, size, sample count). Finalize checks a finished file with it instead of
//! a second ffprobe process (issue 18), and learns what an fMP4 part holds from its init segment.
//!
//! Only box headers are read until `moov`, which is read whole (bounded by [`MAXIMUM_MOOV_BYTES`]).
//! Every size is checked before use; malformed input gives an error, never a panic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// A `moov` larger than this is not read (an hour of 60 fps video has a ~3 MB index).
pub const MAXIMUM_MOOV_BYTES: u64 = 64 * 1024 * 1024;
/// Top-level boxes walked at most (a fragmented file has two per fragment).
const MAXIMUM_TOP_LEVEL_BOXES: usize = 1_000_000;

/// One track of a `moov`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mp4Track {
    /// `vide`, `soun`, ... from `hdlr`.
    pub handler: String,
    /// The first sample entry's type from `stsd`: `avc1`, `hvc1`, `mp4a`, ...
    pub codec: String,
    /// From `tkhd` (pixels; 0 for audio).
    pub width: u32,
    pub height: u32,
    /// From `mdhd` (zero in an fMP4 init segment).
    pub duration: Duration,
    /// From `stsz` (zero in an fMP4 init segment).
    pub sample_count: u32,
}

impl Mp4Track {
    pub fn is_video(&self) -> bool {
        self.handler == "vide"
    }

    pub fn is_audio(&self) -> bool {
        self.handler == "soun"
    }
}

/// What a file's top level and `moov` say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mp4Index {
    /// `moov` comes before the first `mdat` (playback can start before the download ends).
    pub moov_before_mdat: bool,
    /// There are `moof` boxes (or `mvex` in `moov`): a fragmented file.
    pub fragmented: bool,
    /// `mvhd` duration (zero when unknown, as in a fragmented file).
    pub duration: Duration,
    pub tracks: Vec<Mp4Track>,
}

impl Mp4Index {
    pub fn video(&self) -> Option<&Mp4Track> {
        self.tracks.iter().find(|track| track.is_video())
    }

    pub fn audio(&self) -> Option<&Mp4Track> {
        self.tracks.iter().find(|track| track.is_audio())
    }
}

fn invalid(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.into())
}

/// Read the index of the MP4 at `path`.
pub fn read_mp4_index(path: &Path) -> io::Result<Mp4Index> {
    let mut file = File::open(path)?;
    let file_length = file.metadata()?.len();
    let mut index = Mp4Index::default();
    let mut offset = 0u64;
    let mut seen_mdat = false;
    let mut seen_moov = false;
    for _ in 0..MAXIMUM_TOP_LEVEL_BOXES {
        if offset + 8 > file_length {
            break;
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut header = [0u8; 16];
        let header_length = if offset + 16 <= file_length { 16 } else { 8 };
        file.read_exact(&mut header[..header_length])?;
        let (size, header_bytes) = box_size(&header[..header_length], file_length - offset)?;
        let box_type = &header[4..8];
        match box_type {
            b"moov" if !seen_moov => {
                seen_moov = true;
                index.moov_before_mdat = !seen_mdat;
                let body_length = size - header_bytes;
                if body_length > MAXIMUM_MOOV_BYTES {
                    return Err(invalid(format!("moov of {body_length} bytes")));
                }
                file.seek(SeekFrom::Start(offset + header_bytes))?;
                let mut body =
                    vec![0u8; usize::try_from(body_length).map_err(|_| invalid("moov size"))?];
                file.read_exact(&mut body)?;
                parse_moov(&body, &mut index)?;
            }
            b"mdat" => seen_mdat = true,
            b"moof" => index.fragmented = true,
            _ => {}
        }
        offset += size;
    }
    if !seen_moov {
        return Err(invalid("no moov box"));
    }
    Ok(index)
}

/// The index of an MP4 held in memory: a whole file, or its start (an fMP4 part's init segment
/// and first bytes; a box cut off by the end of `bytes` ends the walk).
pub fn parse_mp4_index(bytes: &[u8]) -> io::Result<Mp4Index> {
    let mut index = Mp4Index::default();
    let mut seen_mdat = false;
    let mut found = false;
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() && !found {
        let rest = &bytes[offset..];
        let box_type = &rest[4..8];
        let Ok((size, header_bytes)) = box_size(&rest[..rest.len().min(16)], rest.len() as u64)
        else {
            // Cut off by the end of the sample (or broken): only a moov cut off is an error.
            if box_type == b"moov" {
                return Err(invalid("moov cut off"));
            }
            if box_type == b"moof" {
                index.fragmented = true;
            }
            break;
        };
        // Both fit in `rest`, checked by box_size.
        let body = &rest[header_bytes as usize..size as usize];
        match box_type {
            b"moov" => {
                found = true;
                index.moov_before_mdat = !seen_mdat;
                parse_moov(body, &mut index)?;
            }
            b"mdat" => seen_mdat = true,
            b"moof" => index.fragmented = true,
            _ => {}
        }
        offset += size as usize;
    }
    if !found {
        return Err(invalid("no moov box"));
    }
    Ok(index)
}

/// (size of the box, size of its header) from the first 8 or 16 bytes; `remaining` is what the
/// file holds from the box's start.
pub fn box_size(header: &[u8], remaining: u64) -> io::Result<(u64, u64)> {
    let short = header
        .get(..4)
        .map(|bytes| u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])))
        .ok_or_else(|| invalid("short box header"))?;
    let (size, header_bytes) = match short {
        0 => (remaining, 8),
        1 => {
            let large = header
                .get(8..16)
                .ok_or_else(|| invalid("short large-size header"))?;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(large);
            (u64::from_be_bytes(bytes), 16)
        }
        size => (size, 8),
    };
    if size < header_bytes || size > remaining {
        return Err(invalid(format!("box size {size} of {remaining} remaining")));
    }
    Ok((size, header_bytes))
}

/// The child boxes of `bytes`: (type, body).
pub fn child_boxes(bytes: &[u8]) -> io::Result<Vec<([u8; 4], &[u8])>> {
    let mut children = Vec::new();
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() {
        let rest = &bytes[offset..];
        let header_length = rest.len().min(16);
        let (size, header_bytes) = box_size(&rest[..header_length], rest.len() as u64)?;
        let mut box_type = [0u8; 4];
        box_type.copy_from_slice(&rest[4..8]);
        // Both fit in `rest`, checked by box_size.
        let size = size as usize;
        let header_bytes = header_bytes as usize;
        children.push((box_type, &rest[header_bytes..size]));
        offset += size;
    }
    Ok(children)
}

/// The big-endian `u32` at `at`, if `bytes` holds it.
pub fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

/// The big-endian `u64` at `at`, if `bytes` holds it.
pub fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(slice);
    Some(u64::from_be_bytes(array))
}

/// (timescale, duration) of an `mvhd` or `mdhd` body (version 0 or 1).
pub fn timescale_and_duration(body: &[u8]) -> Option<(u32, u64)> {
    match body.first()? {
        1 => Some((read_u32(body, 20)?, read_u64(body, 24)?)),
        _ => Some((read_u32(body, 12)?, u64::from(read_u32(body, 16)?))),
    }
}

fn to_duration(timescale: u32, duration: u64) -> Duration {
    if timescale == 0 || duration == u64::MAX || duration == u64::from(u32::MAX) {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(duration as f64 / f64::from(timescale))
}

fn parse_moov(body: &[u8], index: &mut Mp4Index) -> io::Result<()> {
    for (box_type, child) in child_boxes(body)? {
        match &box_type {
            b"mvhd" => {
                if let Some((timescale, duration)) = timescale_and_duration(child) {
                    index.duration = to_duration(timescale, duration);
                }
            }
            b"mvex" => index.fragmented = true,
            b"trak" => index.tracks.push(parse_trak(child)?),
            _ => {}
        }
    }
    Ok(())
}

fn parse_trak(body: &[u8]) -> io::Result<Mp4Track> {
    let mut track = Mp4Track::default();
    for (box_type, child) in child_boxes(body)? {
        match &box_type {
            // Width and height are the last 8 bytes, 16.16 fixed point.
            b"tkhd" if child.len() >= 8 => {
                let end = child.len();
                track.width = read_u32(child, end - 8).unwrap_or(0) >> 16;
                track.height = read_u32(child, end - 4).unwrap_or(0) >> 16;
            }
            b"mdia" => parse_mdia(child, &mut track)?,
            _ => {}
        }
    }
    Ok(track)
}

fn parse_mdia(body: &[u8], track: &mut Mp4Track) -> io::Result<()> {
    for (box_type, child) in child_boxes(body)? {
        match &box_type {
            b"mdhd" => {
                if let Some((timescale, duration)) = timescale_and_duration(child) {
                    track.duration = to_duration(timescale, duration);
                }
            }
            b"hdlr" => {
                if let Some(handler) = child.get(8..12) {
                    track.handler = String::from_utf8_lossy(handler).into_owned();
                }
            }
            b"minf" => {
                for (inner_type, inner) in child_boxes(child)? {
                    if &inner_type == b"stbl" {
                        parse_stbl(inner, track)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_stbl(body: &[u8], track: &mut Mp4Track) -> io::Result<()> {
    for (box_type, child) in child_boxes(body)? {
        match &box_type {
            // Full box header (4), entry count (4), then the first entry: size (4), type (4).
            b"stsd" => {
                if let Some(codec) = child.get(12..16) {
                    track.codec = String::from_utf8_lossy(codec).into_owned();
                }
            }
            // Full box header (4), sample size (4), sample count (4).
            b"stsz" => track.sample_count = read_u32(child, 8).unwrap_or(0),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut bytes = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(box_type);
        bytes.extend_from_slice(body);
        bytes
    }

    fn full_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut with_version = vec![0u8; 4];
        with_version.extend_from_slice(body);
        mp4_box(box_type, &with_version)
    }

    fn track(handler: &[u8; 4], codec: &[u8; 4], width: u32, height: u32, seconds: u32) -> Vec<u8> {
        let mut tkhd = vec![0u8; 76];
        tkhd.extend_from_slice(&(width << 16).to_be_bytes());
        tkhd.extend_from_slice(&(height << 16).to_be_bytes());
        let mut mdhd = vec![0u8; 8];
        mdhd.extend_from_slice(&1000u32.to_be_bytes());
        mdhd.extend_from_slice(&(seconds * 1000).to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 4]);
        let mut hdlr = vec![0u8; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        let mut stsd = 1u32.to_be_bytes().to_vec();
        stsd.extend(mp4_box(codec, &[0u8; 8]));
        let mut stsz = 0u32.to_be_bytes().to_vec();
        stsz.extend_from_slice(&250u32.to_be_bytes());
        let stbl = mp4_box(
            b"stbl",
            &[full_box(b"stsd", &stsd), full_box(b"stsz", &stsz)].concat(),
        );
        let minf = mp4_box(b"minf", &stbl);
        let mdia = mp4_box(
            b"mdia",
            &[full_box(b"mdhd", &mdhd), full_box(b"hdlr", &hdlr), minf].concat(),
        );
        mp4_box(b"trak", &[full_box(b"tkhd", &tkhd), mdia].concat())
    }

    fn movie(seconds: u32) -> Vec<u8> {
        let mut mvhd = vec![0u8; 8];
        mvhd.extend_from_slice(&1000u32.to_be_bytes());
        mvhd.extend_from_slice(&(seconds * 1000).to_be_bytes());
        mvhd.extend_from_slice(&[0u8; 80]);
        mp4_box(
            b"moov",
            &[
                full_box(b"mvhd", &mvhd),
                track(b"vide", b"avc1", 1280, 720, seconds),
                track(b"soun", b"mp4a", 0, 0, seconds),
            ]
            .concat(),
        )
    }

    /// `ftyp` with `brand`, the `moov`, then boxes of zeros (name, body length), in that order.
    fn mp4_file(brand: &[u8], moov: Vec<u8>, boxes_after: &[(&[u8; 4], usize)]) -> Vec<u8> {
        let mut file = mp4_box(b"ftyp", brand);
        file.extend(moov);
        for (name, length) in boxes_after {
            file.extend(mp4_box(name, &vec![0u8; *length]));
        }
        file
    }

    /// `bytes` as `x.mp4` in a new temporary directory (kept while the first value lives).
    fn written_to_a_file(bytes: &[u8]) -> io::Result<(tempfile::TempDir, std::path::PathBuf)> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("x.mp4");
        std::fs::write(&path, bytes)?;
        Ok((directory, path))
    }

    #[test]
    fn the_index_of_a_faststart_file() -> io::Result<()> {
        let bytes = mp4_file(
            b"isom\0\0\x02\0",
            movie(45),
            &[(b"free", 100), (b"mdat", 1000)],
        );
        let index = parse_mp4_index(&bytes)?;
        assert!(index.moov_before_mdat && !index.fragmented);
        assert_eq!(index.duration, Duration::from_secs(45));
        let video = index.video().expect("video");
        assert_eq!(
            (video.codec.as_str(), video.width, video.height),
            ("avc1", 1280, 720)
        );
        assert_eq!(video.sample_count, 250);
        assert_eq!(
            index.audio().map(|audio| audio.codec.as_str()),
            Some("mp4a")
        );

        let (_directory, path) = written_to_a_file(&bytes)?;
        assert_eq!(read_mp4_index(&path)?, index);
        Ok(())
    }

    #[test]
    fn moov_after_mdat_and_fragments_are_told() -> io::Result<()> {
        let bytes = [
            mp4_box(b"ftyp", b"isom"),
            mp4_box(b"mdat", &[0u8; 50]),
            movie(2),
        ]
        .concat();
        let (_directory, path) = written_to_a_file(&bytes)?;
        assert!(!read_mp4_index(&path)?.moov_before_mdat);
        let fragmented = mp4_file(b"isom", movie(0), &[(b"moof", 16), (b"mdat", 16)]);
        std::fs::write(&path, &fragmented)?;
        let index = read_mp4_index(&path)?;
        assert!(index.fragmented && index.moov_before_mdat);
        Ok(())
    }

    #[test]
    fn malformed_indexes_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\x00\x00\x00\x04moov".to_vec(),
            b"\x00\x00\x00\x01moov\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF".to_vec(),
            b"\x00\x00\x00\x10moov\x00\x00\x00\xFFtrak".to_vec(),
            mp4_box(b"moov", &mp4_box(b"trak", &mp4_box(b"tkhd", &[1, 2]))),
            b"\x00\x00\x00\x08mdat".to_vec(),
        ];
        for bytes in cases {
            let _ = parse_mp4_index(&bytes);
        }
        assert!(parse_mp4_index(b"\x00\x00\x00\x08mdat").is_err());
        // A truncated track is read as far as it goes.
        let index = parse_mp4_index(&mp4_box(
            b"moov",
            &mp4_box(b"trak", &mp4_box(b"tkhd", &[1, 2])),
        ))
        .expect("parses");
        assert_eq!(index.tracks.len(), 1);
    }
}
