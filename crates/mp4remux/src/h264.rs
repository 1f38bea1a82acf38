//! H.264 in Annex B (as MPEG-TS carries it) → length-prefixed NAL units for MP4, the SPS fields the
//! sample entry needs, and what makes an access unit a sync sample. Pure.
//!
//! Access unit delimiters and in-band SPS/PPS are dropped from the samples (the parameter sets
//! go once into `avcC`); an SPS or PPS that differs from the first one with its id is refused
//! (the stream changed mid-part: ffmpeg handles it). Each PES packet must hold exactly one access
//! unit as ffmpeg's parser splits the stream (it splits at start codes, not at PES packets): no
//! bytes before the first start code, a first NAL unit that begins an access unit, no second
//! picture; anything else is refused.

use crate::Unsupported;
use crate::bits::{BitReader, unescape_rbsp};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR_SLICE: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_ACCESS_UNIT_DELIMITER: u8 = 9;
/// PPS with distinct ids kept at most (the standard allows 256).
const MAXIMUM_PPS: usize = 32;
/// The SEI payload type of a recovery point (a sync sample without IDR, as ffmpeg's parser reads it).
const SEI_RECOVERY_POINT: u32 = 6;

/// Position of the next `00 00 01` at or after `from` (SIMD search: the scan of every video byte
/// is most of the remux's own CPU).
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    static START_CODE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(&[0, 0, 1]));
    let rest = data.get(from..)?;
    START_CODE.find(rest).map(|position| from + position)
}

/// The NAL units of an Annex B buffer (start codes and trailing zero bytes removed; empty units
/// skipped). Bytes before the first start code are not a NAL unit and are ignored.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = find_start_code(data, 0);
    std::iter::from_fn(move || {
        loop {
            let start = next? + 3;
            next = find_start_code(data, start);
            let mut end = next.unwrap_or(data.len());
            while end > start && data[end - 1] == 0 {
                end -= 1;
            }
            if end > start {
                return Some(&data[start..end]);
            }
            next?;
        }
    })
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |header| header & 0x1F)
}

/// NAL units that do not go into the MP4 samples.
fn is_dropped(kind: u8) -> bool {
    matches!(kind, NAL_ACCESS_UNIT_DELIMITER | NAL_SPS | NAL_PPS)
}

/// What the sample entry needs from the SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceParameters {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
    /// Sample aspect ratio from the VUI (`None`: not given).
    pub sample_aspect_ratio: Option<(u32, u32)>,
}

const ASPECT_RATIOS: [(u32, u32); 17] = [
    (0, 1),
    (1, 1),
    (12, 11),
    (10, 11),
    (16, 11),
    (40, 33),
    (24, 11),
    (20, 11),
    (32, 11),
    (80, 33),
    (18, 11),
    (15, 11),
    (64, 33),
    (160, 99),
    (4, 3),
    (3, 2),
    (2, 1),
];

fn skip_scaling_list(reader: &mut BitReader<'_>, size: usize) -> Option<()> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = reader.signed_golomb()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Parse an SPS NAL unit (header byte included). `None` when malformed; refusals for what the
/// remuxer does not copy (interlaced coding).
pub fn parse_sps(nal: &[u8]) -> Result<SequenceParameters, Unsupported> {
    let malformed = || Unsupported::new("a malformed SPS".to_owned());
    let rbsp = unescape_rbsp(nal.get(1..).ok_or_else(malformed)?);
    let mut reader = BitReader::new(&rbsp);
    let parsed = (|| {
        let profile_idc = reader.bits(8)? as u8;
        let constraint_flags = reader.bits(8)? as u8;
        let level_idc = reader.bits(8)? as u8;
        let _id = reader.unsigned_golomb()?;
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = reader.unsigned_golomb()?;
            if chroma_format_idc > 3 {
                return None;
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = reader.flag()?;
            }
            bit_depth_luma = reader.unsigned_golomb()?.checked_add(8)?;
            bit_depth_chroma = reader.unsigned_golomb()?.checked_add(8)?;
            let _qpprime = reader.flag()?;
            if reader.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for list in 0..lists {
                    if reader.flag()? {
                        skip_scaling_list(&mut reader, if list < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num = reader.unsigned_golomb()?;
        match reader.unsigned_golomb()? {
            0 => {
                let _log2_max_poc_lsb = reader.unsigned_golomb()?;
            }
            1 => {
                let _always_zero = reader.flag()?;
                let _non_ref = reader.signed_golomb()?;
                let _top_bottom = reader.signed_golomb()?;
                let cycle = reader.unsigned_golomb()?;
                if cycle > 255 {
                    return None;
                }
                for _ in 0..cycle {
                    reader.signed_golomb()?;
                }
            }
            2 => {}
            _ => return None,
        }
        let _max_refs = reader.unsigned_golomb()?;
        let _gaps = reader.flag()?;
        let width_mbs = u64::from(reader.unsigned_golomb()?) + 1;
        let height_map_units = u64::from(reader.unsigned_golomb()?) + 1;
        let frame_mbs_only = reader.flag()?;
        if !frame_mbs_only {
            let _adaptive = reader.flag()?;
        }
        let _direct_8x8 = reader.flag()?;
        let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
        if reader.flag()? {
            left = u64::from(reader.unsigned_golomb()?);
            right = u64::from(reader.unsigned_golomb()?);
            top = u64::from(reader.unsigned_golomb()?);
            bottom = u64::from(reader.unsigned_golomb()?);
        }
        let mut sample_aspect_ratio = None;
        if reader.flag()? && reader.flag()? {
            let idc = reader.bits(8)?;
            sample_aspect_ratio = if idc == 255 {
                Some((reader.bits(16)?, reader.bits(16)?))
            } else {
                ASPECT_RATIOS.get(idc as usize).copied()
            };
        }
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let frame_height_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = if chroma_array_type == 0 {
            (1, frame_height_factor)
        } else {
            (sub_width, sub_height * frame_height_factor)
        };
        let width = (width_mbs * 16).checked_sub(crop_x * (left + right))?;
        let height =
            (frame_height_factor * height_map_units * 16).checked_sub(crop_y * (top + bottom))?;
        Some((
            SequenceParameters {
                profile_idc,
                constraint_flags,
                level_idc,
                chroma_format_idc,
                bit_depth_luma,
                bit_depth_chroma,
                width: u32::try_from(width).ok().filter(|&w| w > 0 && w <= 16384)?,
                height: u32::try_from(height)
                    .ok()
                    .filter(|&h| h > 0 && h <= 16384)?,
                sample_aspect_ratio,
            },
            frame_mbs_only,
        ))
    })();
    match parsed {
        Some((_, false)) => Err(Unsupported::new("interlaced H.264".to_owned())),
        Some((parameters, true)) => Ok(parameters),
        None => Err(malformed()),
    }
}

/// The parameter sets of a track: the first SPS, the PPS by id. Every later copy must be equal.
#[derive(Debug, Default, Clone)]
pub struct ParameterSets {
    pub sps: Option<Vec<u8>>,
    pub sequence: Option<SequenceParameters>,
    pub pps: Vec<(u32, Vec<u8>)>,
}

impl ParameterSets {
    fn absorb(&mut self, nal: &[u8]) -> Result<(), Unsupported> {
        match nal_type(nal) {
            NAL_SPS => match &self.sps {
                Some(known) if known.as_slice() == nal => Ok(()),
                Some(_) => Err(Unsupported::new("the SPS changed mid-part".to_owned())),
                None => {
                    self.sequence = Some(parse_sps(nal)?);
                    self.sps = Some(nal.to_vec());
                    Ok(())
                }
            },
            NAL_PPS => {
                let rbsp = unescape_rbsp(nal.get(1..).unwrap_or(&[]));
                let id = BitReader::new(&rbsp)
                    .unsigned_golomb()
                    .ok_or_else(|| Unsupported::new("a malformed PPS".to_owned()))?;
                match self.pps.iter().find(|(known_id, _)| *known_id == id) {
                    Some((_, known)) if known.as_slice() == nal => Ok(()),
                    Some(_) => Err(Unsupported::new("a PPS changed mid-part".to_owned())),
                    None if self.pps.len() >= MAXIMUM_PPS => {
                        Err(Unsupported::new("too many PPS".to_owned()))
                    }
                    None => {
                        self.pps.push((id, nal.to_vec()));
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    pub fn complete(&self) -> bool {
        self.sps.is_some() && !self.pps.is_empty()
    }
}

/// An SEI NAL unit carries a recovery point message.
fn has_recovery_point(nal: &[u8]) -> bool {
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or(&[]));
    let mut position = 0usize;
    // At most a few messages; each header walk is bounded by the buffer.
    while position < rbsp.len() && rbsp[position] != 0x80 {
        let mut payload_type = 0u32;
        while let Some(&byte) = rbsp.get(position) {
            position += 1;
            payload_type = payload_type.saturating_add(u32::from(byte));
            if byte != 0xFF {
                break;
            }
        }
        let mut payload_size = 0usize;
        while let Some(&byte) = rbsp.get(position) {
            position += 1;
            payload_size = payload_size.saturating_add(usize::from(byte));
            if byte != 0xFF {
                break;
            }
        }
        if payload_type == SEI_RECOVERY_POINT {
            return true;
        }
        position = position.saturating_add(payload_size);
    }
    false
}

/// One access unit as the sample table needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessUnitSummary {
    /// Bytes of the MP4 sample: 4-byte length + NAL unit, for each kept NAL unit.
    pub sample_bytes: u64,
    /// IDR, or a recovery point (what ffmpeg's parser flags as a keyframe).
    pub sync: bool,
    /// Has at least one coded slice.
    pub has_picture: bool,
}

/// This NAL unit starts an access unit, as ffmpeg's parser splits them (after a coded slice:
/// the next one): an access unit delimiter, SEI, SPS or PPS, or the first slice of a picture
/// (`first_mb_in_slice` 0: the slice header's first bit is set). Other types (end of sequence,
/// filler, prefix NAL units, ...) stay with the access unit before them.
fn begins_another_access_unit(nal: &[u8]) -> bool {
    match nal_type(nal) {
        NAL_SEI | NAL_SPS | NAL_PPS | NAL_ACCESS_UNIT_DELIMITER => true,
        NAL_SLICE | 2 | NAL_IDR_SLICE => nal.get(1).is_some_and(|byte| byte & 0x80 != 0),
        _ => false,
    }
}

/// `first_mb_in_slice` of a slice NAL unit (the first field of its header; `None` when the unit
/// is too short to hold it, which ffmpeg's parser does not compare either).
fn first_macroblock(nal: &[u8]) -> Option<u32> {
    let header = unescape_rbsp(nal.get(1..nal.len().min(12))?);
    BitReader::new(&header).unsigned_golomb()
}

/// Read an access unit: its parameter sets go into `parameter_sets` (changes refused).
pub fn summarize_access_unit(
    data: &[u8],
    parameter_sets: &mut ParameterSets,
) -> Result<AccessUnitSummary, Unsupported> {
    let mut summary = AccessUnitSummary {
        sample_bytes: 0,
        sync: false,
        has_picture: false,
    };
    let leading = find_start_code(data, 0).unwrap_or(data.len());
    if data[..leading].iter().any(|&byte| byte != 0) {
        // ffmpeg's parser appends them to the previous access unit's last NAL unit.
        return Err(Unsupported::new(
            "bytes before the first start code of a PES packet".to_owned(),
        ));
    }
    let mut recovery_point = false;
    let mut last_first_macroblock: Option<u32> = None;
    for (position, nal) in nal_units(data).enumerate() {
        let kind = nal_type(nal);
        if nal[0] & 0x80 != 0 {
            return Err(Unsupported::new(
                "a NAL unit with the forbidden bit".to_owned(),
            ));
        }
        if position == 0 && !begins_another_access_unit(nal) {
            // An end of sequence, filler, a second slice, ...: ffmpeg's parser appends it to the
            // previous access unit.
            return Err(Unsupported::new(
                "a PES packet that does not begin an access unit".to_owned(),
            ));
        }
        // ffmpeg's parser also starts a new picture at a slice whose first macroblock is not
        // after the previous slice's.
        let first_macroblock = match kind {
            NAL_SLICE | 2 | NAL_IDR_SLICE => first_macroblock(nal),
            _ => None,
        };
        let slice_goes_back = first_macroblock
            .zip(last_first_macroblock)
            .is_some_and(|(this, last)| this <= last);
        if summary.has_picture && (begins_another_access_unit(nal) || slice_goes_back) {
            // ffmpeg's parser splits such a PES packet into two samples; one sample holding two
            // pictures does not decode.
            return Err(Unsupported::new(
                "more than one picture in a PES packet".to_owned(),
            ));
        }
        last_first_macroblock = first_macroblock.or(last_first_macroblock);
        parameter_sets.absorb(nal)?;
        match kind {
            NAL_IDR_SLICE => {
                summary.sync = true;
                summary.has_picture = true;
            }
            NAL_SLICE | 2..=4 => summary.has_picture = true,
            NAL_SEI if !recovery_point => recovery_point = has_recovery_point(nal),
            _ => {}
        }
        if !is_dropped(kind) {
            summary.sample_bytes += 4 + nal.len() as u64;
        }
    }
    if recovery_point && summary.has_picture {
        summary.sync = true;
    }
    Ok(summary)
}

/// Append the MP4 sample of an access unit (length-prefixed NAL units, dropped types left out).
/// Returns the bytes appended.
pub fn append_sample(data: &[u8], output: &mut Vec<u8>) -> u64 {
    let before = output.len();
    for nal in nal_units(data) {
        if is_dropped(nal_type(nal)) {
            continue;
        }
        let length = u32::try_from(nal.len()).unwrap_or(u32::MAX);
        output.extend_from_slice(&length.to_be_bytes());
        output.extend_from_slice(nal);
    }
    (output.len() - before) as u64
}

/// The `avcC` body (AVCDecoderConfigurationRecord).
pub fn avc_configuration_record(parameter_sets: &ParameterSets) -> Option<Vec<u8>> {
    let sps = parameter_sets.sps.as_ref()?;
    let sequence = parameter_sets.sequence.as_ref()?;
    let mut record = vec![
        1,
        sequence.profile_idc,
        sequence.constraint_flags,
        sequence.level_idc,
        0xFF,
        0xE1,
    ];
    record.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    record.extend_from_slice(sps);
    record.push(u8::try_from(parameter_sets.pps.len()).ok()?);
    for (_, pps) in &parameter_sets.pps {
        record.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
        record.extend_from_slice(pps);
    }
    if !matches!(sequence.profile_idc, 66 | 77 | 88) {
        record.push(0xFC | (sequence.chroma_format_idc as u8 & 0x03));
        record.push(0xF8 | (sequence.bit_depth_luma.saturating_sub(8) as u8 & 0x07));
        record.push(0xF8 | (sequence.bit_depth_chroma.saturating_sub(8) as u8 & 0x07));
        record.push(0);
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_are_split_on_three_and_four_byte_start_codes() {
        let data = [
            0xFF, 0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 0, 1, 0x41, 7,
        ];
        let units: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            units,
            vec![&[9, 0xF0][..], &[0x65, 1, 2][..], &[0x41, 7][..]]
        );
        let mut output = Vec::new();
        assert_eq!(append_sample(&data, &mut output), 7 + 6);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1]).count(), 0);
    }

    #[test]
    fn two_pictures_in_one_access_unit_are_refused() {
        let mut parameter_sets = ParameterSets::default();
        let one = [0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 1, 0x65, 0x00, 0x21];
        let summary = summarize_access_unit(&one, &mut parameter_sets).expect("one picture");
        assert!(summary.sync && summary.has_picture);
        let two = [0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 1, 0x41, 0x9A, 0x21];
        assert!(summarize_access_unit(&two, &mut parameter_sets).is_err());
    }

    #[test]
    fn sps_of_a_libx264_stream() {
        // 160x90 High profile from `ffmpeg -f lavfi -i testsrc2=size=160x90 -c:v libx264`.
        let sps = hex("6764000bacd9428df93011000003000100000300320f142996");
        let parameters = parse_sps(&sps).expect("parsed");
        assert_eq!((parameters.width, parameters.height), (160, 90));
        assert_eq!(parameters.profile_idc, 100);
        assert!(parse_sps(&[0x67]).is_err());
        assert!(parse_sps(&[0x67, 100, 0, 0xFF, 0xFF, 0xFF]).is_err());
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|index| u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).expect("hex"))
            .collect()
    }
}
