//! MPEG-TS demultiplexing, sans IO: 188-byte packets in, PAT/PMT followed, PES packets of the
//! program's elementary streams out (with their 33-bit PTS/DTS as written).
//!
//! Only what a remux of an HLS part needs is accepted; everything else is an [`Unsupported`]
//! refusal (the caller falls back to ffmpeg): lost sync, transport errors, scrambling, more than
//! one program, a program map that changes its streams, a PES packet of a mapped stream that
//! begins before the map (ffmpeg reads those), a continuity error inside a PES packet,
//! a repeated continuity counter with other bytes (an exact duplicate is dropped), a PES packet
//! over [`MAXIMUM_PES_BYTES`], shorter or longer than it says. Memory: one PES packet being
//! assembled per stream, at most [`MAXIMUM_PES_BYTES`] each and [`MAXIMUM_ASSEMBLING_BYTES`]
//! together, and one PSI section.

use crate::Unsupported;

pub const TS_PACKET_BYTES: usize = 188;
const SYNC_BYTE: u8 = 0x47;
/// A PES packet (one access unit of video, a few frames of audio) larger than this is refused.
pub const MAXIMUM_PES_BYTES: usize = 8 * 1024 * 1024;
/// All PES packets being assembled (one per stream) together: a program map of many streams
/// does not multiply [`MAXIMUM_PES_BYTES`].
pub const MAXIMUM_ASSEMBLING_BYTES: usize = MAXIMUM_PES_BYTES + 2 * 1024 * 1024;
/// An assembly buffer larger than this is given back after its PES packet (a stream that once
/// had a huge PES packet does not keep it allocated).
const RETAINED_ASSEMBLY_BYTES: usize = 1024 * 1024;
/// A PSI section (PAT, PMT) is at most 1021 bytes after its 3-byte header.
const MAXIMUM_SECTION_BYTES: usize = 1024 + 3;
/// PIDs remembered with a payload unit before the program map, at most.
const MAXIMUM_EARLY_UNIT_PIDS: usize = 64;
/// Elementary streams in one program map, at most.
const MAXIMUM_PROGRAM_STREAMS: usize = 32;

/// What an elementary stream is to the remuxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    H264,
    AdtsAac,
    /// Timed metadata, SCTE-35, subtitles, teletext: not mapped (ffmpeg's `-map 0:v? -map 0:a?`
    /// leaves them out too); only its first timestamp is reported (it can move the start time).
    Data,
}

/// One stream of the program map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramStream {
    pub pid: u16,
    pub stream_type: u8,
    pub kind: StreamKind,
}

/// What the demuxer hands out.
#[derive(Debug)]
pub enum TsEvent<'a> {
    /// A whole PES packet of a mapped stream (H.264 or AAC).
    Pes {
        pid: u16,
        kind: StreamKind,
        pts: Option<u64>,
        dts: Option<u64>,
        payload: &'a [u8],
    },
    /// The PTS of a PES packet of a data stream (first packets only matter).
    DataTimestamp { pid: u16, pts: u64 },
}

/// Classify a PMT entry: `Ok(Some(kind))` mapped or data, `Err` a stream ffmpeg would map that
/// the remuxer cannot copy (HEVC, MP3, AC-3, ...).
fn classify(stream_type: u8, descriptors: &[u8]) -> Result<StreamKind, Unsupported> {
    match stream_type {
        0x1B => Ok(StreamKind::H264),
        0x0F => Ok(StreamKind::AdtsAac),
        // ID3 timed metadata, private sections, DSM-CC, SCTE-35.
        0x05 | 0x0B..=0x0D | 0x15 | 0x86 => Ok(StreamKind::Data),
        0x06 => {
            // Private PES: fine when a descriptor says subtitles/teletext/VBI; anything else may
            // be audio ffmpeg would map (AC-3, E-AC-3, DTS, Opus, ...).
            let mut position = 0usize;
            let mut harmless = false;
            while position + 2 <= descriptors.len() {
                let tag = descriptors[position];
                let length = usize::from(descriptors[position + 1]);
                match tag {
                    0x45 | 0x46 | 0x56 | 0x59 => harmless = true,
                    0x05 | 0x6A | 0x7A | 0x7B | 0x7C | 0x7F => {
                        return Err(Unsupported::new(format!(
                            "a private stream with descriptor 0x{tag:02x} (audio ffmpeg maps)"
                        )));
                    }
                    _ => {}
                }
                position += 2 + length;
            }
            if harmless {
                Ok(StreamKind::Data)
            } else {
                Err(Unsupported::new(
                    "a private PES stream of unknown content".to_owned(),
                ))
            }
        }
        0x24 => Err(Unsupported::new("HEVC video".to_owned())),
        0x03 | 0x04 => Err(Unsupported::new("MPEG audio (MP2/MP3)".to_owned())),
        0x11 => Err(Unsupported::new("AAC in LATM".to_owned())),
        0x81 | 0x87 => Err(Unsupported::new("AC-3/E-AC-3 audio".to_owned())),
        other => Err(Unsupported::new(format!("stream type 0x{other:02x}"))),
    }
}

#[derive(Default)]
struct SectionBuffer {
    bytes: Vec<u8>,
    last_continuity: Option<u8>,
}

struct PesAssembly {
    pid: u16,
    kind: StreamKind,
    bytes: Vec<u8>,
    in_progress: bool,
    last_continuity: Option<u8>,
    /// The last packet with a payload (a packet repeated with the same continuity counter must
    /// be this one, byte for byte).
    last_packet: Vec<u8>,
}

/// The demuxer's state. Feed it packets with [`TsDemuxer::push_packet`], then call
/// [`TsDemuxer::finish`].
#[derive(Default)]
pub struct TsDemuxer {
    pmt_pid: Option<u16>,
    program_number: Option<u16>,
    streams: Option<Vec<ProgramStream>>,
    pat_section: SectionBuffer,
    pmt_section: SectionBuffer,
    assemblies: Vec<PesAssembly>,
    data_pids: Vec<(u16, Option<u8>)>,
    /// PIDs on which a payload unit started before the program map was known (at most
    /// [`MAXIMUM_EARLY_UNIT_PIDS`]; more sets `many_early_units`).
    early_unit_pids: Vec<u16>,
    many_early_units: bool,
    packets: u64,
}

fn parse_timestamp(bytes: &[u8]) -> Option<u64> {
    let [a, b, c, d, e] = *bytes.get(..5)? else {
        return None;
    };
    Some(
        (u64::from(a >> 1) & 0x07) << 30
            | u64::from(b) << 22
            | u64::from(c >> 1) << 15
            | u64::from(d) << 7
            | u64::from(e >> 1),
    )
}

/// A PES header's timestamps and where its payload starts.
struct PesHeader {
    pts: Option<u64>,
    dts: Option<u64>,
    payload_offset: usize,
    declared_length: usize,
}

fn parse_pes_header(bytes: &[u8]) -> Result<PesHeader, Unsupported> {
    let refuse = |what: &str| Err(Unsupported::new(format!("a PES packet with {what}")));
    if bytes.len() < 9 {
        return refuse("a truncated header");
    }
    if bytes[0..3] != [0, 0, 1] {
        return refuse("no start code");
    }
    let stream_id = bytes[3];
    if matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return refuse("a stream id without timestamps");
    }
    let declared_length = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if bytes[6] & 0xC0 != 0x80 {
        return refuse("a malformed header");
    }
    if bytes[6] & 0x30 != 0 {
        return refuse("scrambled payload");
    }
    let flags = bytes[7] >> 6;
    let header_length = usize::from(bytes[8]);
    let payload_offset = 9 + header_length;
    if bytes.len() < payload_offset {
        return refuse("a header longer than the packet");
    }
    let (pts, dts) = match flags {
        2 if header_length >= 5 => (parse_timestamp(&bytes[9..]), None),
        3 if header_length >= 10 => (parse_timestamp(&bytes[9..]), parse_timestamp(&bytes[14..])),
        0 => (None, None),
        _ => return refuse("malformed timestamps"),
    };
    Ok(PesHeader {
        pts,
        dts,
        payload_offset,
        declared_length,
    })
}

/// Append a PSI payload to `section`, returning a whole section (header included) when complete.
fn gather_section(
    section: &mut SectionBuffer,
    payload: &[u8],
    payload_unit_start: bool,
    continuity: u8,
) -> Option<Vec<u8>> {
    let in_sequence = section
        .last_continuity
        .is_none_or(|last| (last + 1) & 0x0F == continuity);
    section.last_continuity = Some(continuity);
    if payload_unit_start {
        let pointer = usize::from(*payload.first()?);
        section.bytes.clear();
        section.bytes.extend_from_slice(payload.get(1 + pointer..)?);
    } else if section.bytes.is_empty() || !in_sequence {
        section.bytes.clear();
        return None;
    } else {
        section.bytes.extend_from_slice(payload);
    }
    if section.bytes.len() > MAXIMUM_SECTION_BYTES + TS_PACKET_BYTES {
        section.bytes.clear();
        return None;
    }
    if section.bytes.len() < 3 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([section.bytes[1], section.bytes[2]]) & 0x0FFF);
    if section.bytes.len() < 3 + length {
        return None;
    }
    let whole = section.bytes[..3 + length].to_vec();
    section.bytes.clear();
    Some(whole)
}

impl TsDemuxer {
    pub fn new() -> Self {
        TsDemuxer::default()
    }

    /// The program's streams, once its map was read.
    pub fn streams(&self) -> Option<&[ProgramStream]> {
        self.streams.as_deref()
    }

    /// Packets pushed so far.
    pub fn packet_count(&self) -> u64 {
        self.packets
    }

    /// One 188-byte packet; completed PES packets go to `sink`.
    pub fn push_packet(
        &mut self,
        packet: &[u8],
        sink: &mut dyn FnMut(TsEvent<'_>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        if packet.len() != TS_PACKET_BYTES || packet[0] != SYNC_BYTE {
            return Err(Unsupported::new(format!(
                "lost MPEG-TS sync at packet {}",
                self.packets
            )));
        }
        self.packets += 1;
        if packet[1] & 0x80 != 0 {
            return Err(Unsupported::new("a transport error indicator".to_owned()));
        }
        let payload_unit_start = packet[1] & 0x40 != 0;
        let pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
        let scrambling = packet[3] >> 6;
        let adaptation_field_control = (packet[3] >> 4) & 0x03;
        let continuity = packet[3] & 0x0F;
        if pid == 0x1FFF || adaptation_field_control & 0x01 == 0 {
            return Ok(());
        }
        let mut payload_offset = 4usize;
        let mut discontinuity = false;
        if adaptation_field_control & 0x02 != 0 {
            let length = usize::from(packet[4]);
            if length > 0 {
                discontinuity = packet[5] & 0x80 != 0;
            }
            payload_offset = 5 + length;
            if payload_offset > TS_PACKET_BYTES {
                return Err(Unsupported::new(
                    "an adaptation field longer than its packet".to_owned(),
                ));
            }
        }
        let payload = &packet[payload_offset..];
        if self.streams.is_none() && payload_unit_start && pid != 0 {
            if self.early_unit_pids.len() >= MAXIMUM_EARLY_UNIT_PIDS {
                self.many_early_units = true;
            } else if !self.early_unit_pids.contains(&pid) {
                self.early_unit_pids.push(pid);
            }
        }
        if pid == 0 {
            if let Some(section) = gather_section(
                &mut self.pat_section,
                payload,
                payload_unit_start,
                continuity,
            ) {
                self.read_pat(&section)?;
            }
            return Ok(());
        }
        if Some(pid) == self.pmt_pid {
            if let Some(section) = gather_section(
                &mut self.pmt_section,
                payload,
                payload_unit_start,
                continuity,
            ) {
                self.read_pmt(&section)?;
            }
            return Ok(());
        }
        if let Some(entry) = self
            .data_pids
            .iter_mut()
            .find(|(data_pid, _)| *data_pid == pid)
        {
            if entry.1 == Some(continuity) {
                return Ok(());
            }
            entry.1 = Some(continuity);
            if payload_unit_start
                && scrambling == 0
                && let Ok(header) = parse_pes_header(payload)
                && let Some(pts) = header.pts
            {
                sink(TsEvent::DataTimestamp { pid, pts })?;
            }
            return Ok(());
        }
        let Some(index) = self
            .assemblies
            .iter()
            .position(|assembly| assembly.pid == pid)
        else {
            return Ok(());
        };
        if scrambling != 0 {
            return Err(Unsupported::new("scrambled packets".to_owned()));
        }
        let assembling_elsewhere: usize = self
            .assemblies
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, assembly)| assembly.bytes.len())
            .sum();
        let assembly = &mut self.assemblies[index];
        if let Some(last) = assembly.last_continuity {
            if last == continuity && !discontinuity {
                // A duplicate packet (allowed once by the standard): ignored. A different packet
                // with the same counter is not a duplicate (ffmpeg keeps its bytes).
                if assembly.last_packet != packet {
                    return Err(Unsupported::new(format!(
                        "a repeated continuity counter with other bytes on PID {pid}"
                    )));
                }
                return Ok(());
            }
            let expected = (last + 1) & 0x0F;
            if continuity != expected && !discontinuity && !payload_unit_start {
                return Err(Unsupported::new(format!(
                    "a continuity error inside a PES packet on PID {pid}"
                )));
            }
        }
        assembly.last_continuity = Some(continuity);
        assembly.last_packet.clear();
        assembly.last_packet.extend_from_slice(packet);
        if payload_unit_start {
            Self::flush(assembly, sink)?;
            assembly.bytes.clear();
            assembly.in_progress = true;
        } else if !assembly.in_progress {
            return Ok(());
        }
        if assembly.bytes.len() + payload.len() > MAXIMUM_PES_BYTES {
            return Err(Unsupported::new(format!(
                "a PES packet over {MAXIMUM_PES_BYTES} bytes"
            )));
        }
        if assembling_elsewhere + assembly.bytes.len() + payload.len() > MAXIMUM_ASSEMBLING_BYTES {
            return Err(Unsupported::new(format!(
                "PES packets of several streams over {MAXIMUM_ASSEMBLING_BYTES} bytes together"
            )));
        }
        assembly.bytes.extend_from_slice(payload);
        if assembly.bytes.len() >= 6 {
            let declared = usize::from(u16::from_be_bytes([assembly.bytes[4], assembly.bytes[5]]));
            if declared > 0 && assembly.bytes.len() > 6 + declared {
                // ffmpeg does not cut there: it keeps the rest as the start of another PES
                // packet (its parser joins them), or keeps the stuffing in the sample.
                return Err(Unsupported::new(format!(
                    "a PES packet longer than its declared length on PID {pid}"
                )));
            }
            if declared > 0 && assembly.bytes.len() == 6 + declared {
                Self::flush(assembly, sink)?;
            }
        }
        Ok(())
    }

    /// The end of the input: the PES packets in progress are complete.
    pub fn finish(
        &mut self,
        sink: &mut dyn FnMut(TsEvent<'_>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        for assembly in &mut self.assemblies {
            Self::flush(assembly, sink)?;
        }
        Ok(())
    }

    fn flush(
        assembly: &mut PesAssembly,
        sink: &mut dyn FnMut(TsEvent<'_>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        if !assembly.in_progress {
            return Ok(());
        }
        assembly.in_progress = false;
        let bytes = std::mem::take(&mut assembly.bytes);
        let result = (|| {
            let header = parse_pes_header(&bytes)?;
            if header.declared_length > 0 && bytes.len() < 6 + header.declared_length {
                return Err(Unsupported::new(
                    "a PES packet shorter than its declared length".to_owned(),
                ));
            }
            sink(TsEvent::Pes {
                pid: assembly.pid,
                kind: assembly.kind,
                pts: header.pts,
                dts: header.dts,
                payload: &bytes[header.payload_offset..],
            })
        })();
        if bytes.capacity() <= RETAINED_ASSEMBLY_BYTES {
            assembly.bytes = bytes;
            assembly.bytes.clear();
        }
        result
    }

    fn read_pat(&mut self, section: &[u8]) -> Result<(), Unsupported> {
        // table_id 0, then 5 bytes of header after the length, entries of 4, CRC of 4.
        if section.first() != Some(&0x00) || section.len() < 12 {
            return Ok(());
        }
        let entries = &section[8..section.len() - 4];
        let mut programs = entries
            .chunks_exact(4)
            .map(|entry| {
                (
                    u16::from_be_bytes([entry[0], entry[1]]),
                    u16::from_be_bytes([entry[2], entry[3]]) & 0x1FFF,
                )
            })
            .filter(|(number, _)| *number != 0);
        let Some((number, pmt_pid)) = programs.next() else {
            return Ok(());
        };
        if programs.next().is_some() {
            return Err(Unsupported::new("more than one program".to_owned()));
        }
        match (self.program_number, self.pmt_pid) {
            (Some(known_number), Some(known_pid))
                if known_number != number || known_pid != pmt_pid =>
            {
                Err(Unsupported::new("the program changed".to_owned()))
            }
            _ => {
                self.program_number = Some(number);
                self.pmt_pid = Some(pmt_pid);
                Ok(())
            }
        }
    }

    fn read_pmt(&mut self, section: &[u8]) -> Result<(), Unsupported> {
        if section.first() != Some(&0x02) || section.len() < 16 {
            return Ok(());
        }
        let program_number = u16::from_be_bytes([section[3], section[4]]);
        if Some(program_number) != self.program_number {
            return Ok(());
        }
        let program_info_length =
            usize::from(u16::from_be_bytes([section[10], section[11]]) & 0x0FFF);
        let end = section.len() - 4;
        let mut position = 12 + program_info_length;
        let mut streams = Vec::new();
        while position + 5 <= end {
            let stream_type = section[position];
            let pid = u16::from_be_bytes([section[position + 1], section[position + 2]]) & 0x1FFF;
            let info_length = usize::from(
                u16::from_be_bytes([section[position + 3], section[position + 4]]) & 0x0FFF,
            );
            let descriptors = section
                .get(position + 5..(position + 5 + info_length).min(end))
                .unwrap_or(&[]);
            let kind = classify(stream_type, descriptors)?;
            streams.push(ProgramStream {
                pid,
                stream_type,
                kind,
            });
            if streams.len() > MAXIMUM_PROGRAM_STREAMS {
                return Err(Unsupported::new("too many streams".to_owned()));
            }
            position += 5 + info_length;
        }
        if let Some(known) = &self.streams {
            if *known != streams {
                return Err(Unsupported::new("the program map changed".to_owned()));
            }
            return Ok(());
        }
        // ffmpeg finds the program map first and then reads the input from its start: PES
        // packets before the map are in its remux, and not in one that starts at the map.
        if streams.iter().any(|stream| {
            stream.kind != StreamKind::Data
                && (self.many_early_units || self.early_unit_pids.contains(&stream.pid))
        }) {
            return Err(Unsupported::new(
                "a PES packet before the program map".to_owned(),
            ));
        }
        self.early_unit_pids = Vec::new();
        for stream in &streams {
            match stream.kind {
                StreamKind::Data => self.data_pids.push((stream.pid, None)),
                kind => self.assemblies.push(PesAssembly {
                    pid: stream.pid,
                    kind,
                    bytes: Vec::new(),
                    in_progress: false,
                    last_continuity: None,
                    last_packet: Vec::new(),
                }),
            }
        }
        self.streams = Some(streams);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_headers() {
        // PTS 0x1_2345_6789 (33 bits) encoded as in the standard.
        let pts: u64 = 0x1_2345_6789;
        let bytes = [
            0x21 | (((pts >> 30) as u8 & 0x07) << 1),
            (pts >> 22) as u8,
            (((pts >> 15) as u8) << 1) | 1,
            (pts >> 7) as u8,
            ((pts as u8) << 1) | 1,
        ];
        assert_eq!(parse_timestamp(&bytes), Some(pts));
        assert!(parse_pes_header(&[0, 0, 1]).is_err());
        assert!(parse_pes_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 200]).is_err());
    }
}
