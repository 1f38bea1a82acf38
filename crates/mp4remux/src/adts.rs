//! AAC in ADTS framing → raw AAC frames and the AudioSpecificConfig for `esds`. Pure.

use crate::Unsupported;

pub const SAMPLES_PER_FRAME: u32 = 1024;
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The fields that must stay the same for the whole track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// MPEG-4 audio object type (ADTS profile + 1).
    pub object_type: u8,
    pub sampling_index: u8,
    pub channel_configuration: u8,
}

impl AudioConfig {
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES
            .get(usize::from(self.sampling_index))
            .copied()
            .unwrap_or(0)
    }

    pub fn channel_count(&self) -> u16 {
        match self.channel_configuration {
            7 => 8,
            other => u16::from(other),
        }
    }

    /// The two-byte AudioSpecificConfig (as ffmpeg's `aac_adtstoasc` writes it).
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let bits: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.sampling_index) << 7)
            | (u16::from(self.channel_configuration) << 3);
        bits.to_be_bytes()
    }
}

/// One ADTS frame inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsFrame {
    pub config: AudioConfig,
    /// Header bytes (7, or 9 with CRC) to skip.
    pub header_bytes: usize,
    /// Whole frame, header included.
    pub frame_bytes: usize,
}

impl AdtsFrame {
    pub fn raw_bytes(&self) -> usize {
        self.frame_bytes - self.header_bytes
    }
}

/// Parse the ADTS header at the start of `data`.
pub fn parse_adts_header(data: &[u8]) -> Result<AdtsFrame, Unsupported> {
    let refuse = |what: &str| Err(Unsupported::new(format!("ADTS: {what}")));
    let Some(header) = data.get(..7) else {
        return refuse("a truncated header");
    };
    if header[0] != 0xFF || header[1] & 0xF6 != 0xF0 {
        return refuse("no sync word where a frame should start");
    }
    let protection_absent = header[1] & 0x01 == 1;
    let profile = header[2] >> 6;
    let sampling_index = (header[2] >> 2) & 0x0F;
    let channel_configuration = ((header[2] & 0x01) << 2) | (header[3] >> 6);
    let frame_bytes = (usize::from(header[3] & 0x03) << 11)
        | (usize::from(header[4]) << 3)
        | usize::from(header[5] >> 5);
    let raw_data_blocks = header[6] & 0x03;
    let header_bytes = if protection_absent { 7 } else { 9 };
    if sampling_index > 12 {
        return refuse("a reserved sample rate");
    }
    if sampling_index < 2 {
        return refuse("a sample rate over 64 kHz");
    }
    if channel_configuration == 0 {
        return refuse("channels given by a program config element");
    }
    if raw_data_blocks != 0 {
        return refuse("more than one raw data block per frame");
    }
    if frame_bytes <= header_bytes {
        return refuse("a frame shorter than its header");
    }
    Ok(AdtsFrame {
        config: AudioConfig {
            object_type: profile + 1,
            sampling_index,
            channel_configuration,
        },
        header_bytes,
        frame_bytes,
    })
}

/// The ADTS frames of one PES payload, which must hold whole frames only.
pub fn frames(payload: &[u8]) -> impl Iterator<Item = Result<(AdtsFrame, &[u8]), Unsupported>> {
    let mut position = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || position >= payload.len() {
            return None;
        }
        let rest = &payload[position..];
        let result = parse_adts_header(rest).and_then(|frame| {
            if frame.frame_bytes > rest.len() {
                Err(Unsupported::new(
                    "ADTS: a frame split across PES packets".to_owned(),
                ))
            } else {
                Ok((frame, &rest[frame.header_bytes..frame.frame_bytes]))
            }
        });
        match &result {
            Ok((frame, _)) => position += frame.frame_bytes,
            Err(_) => failed = true,
        }
        Some(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_config() {
        // AAC LC, 44.1 kHz (index 4), stereo, 20-byte frame, no CRC.
        let length = 20usize;
        let header = [
            0xFF,
            0xF1,
            (1 << 6) | (4 << 2),
            (2 << 6) | ((length >> 11) as u8 & 0x03),
            (length >> 3) as u8,
            ((length as u8 & 0x07) << 5) | 0x1F,
            0xFC,
        ];
        let frame = parse_adts_header(&header).expect("parsed");
        assert_eq!(frame.frame_bytes, 20);
        assert_eq!(frame.config.sample_rate(), 44100);
        assert_eq!(frame.config.audio_specific_config(), [0x12, 0x10]);
        let mut payload = header.to_vec();
        payload.resize(20, 0);
        assert_eq!(frames(&payload).count(), 1);
        payload.truncate(15);
        assert!(frames(&payload).next().is_some_and(|frame| frame.is_err()));
        assert!(parse_adts_header(&[0xFF]).is_err());
    }
}
