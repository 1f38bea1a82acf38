//! Native MPEG-TS → MP4 remux for the common case of an HLS recording: H.264 video and/or AAC
//! (ADTS) audio, in one or two TS inputs (the part, and a separately recorded audio rendition).
//!
//! Two passes over the input, one over the output: the first pass ([`scan`]) reads every packet
//! and keeps only sample sizes, timestamps and sync flags (bounded by [`Limits`]); the plan
//! ([`plan`]) computes ffmpeg-compatible sample times and edit lists ([`timeline`]), chunks and
//! their offsets, and the `moov` ([`mp4`]) that goes before `mdat`; the second pass ([`copy`])
//! reads the packets again and writes each chunk's bytes at its offset. Everything but [`file`]
//! is pure (bytes in, decisions and bytes out) and never panics on any input: what it does not
//! fully understand is an [`Unsupported`] refusal, and the caller runs ffmpeg instead.
//!
//! What this crate must not know: files other than those it is given ([`file`] only), ffmpeg,
//! the recorder's parts, ledgers or jobs.

pub mod adts;
pub mod bits;
pub mod copy;
pub mod file;
pub mod h264;
pub mod mp4;
pub mod plan;
pub mod scan;
pub mod timeline;
pub mod ts;

pub use file::{RemuxError, RemuxInput, RemuxSummary, remux_to_mp4, remux_to_mp4_in_one_pass};
pub use plan::{Brand, Plan, estimated_index_bytes, plan_output};
pub use scan::{InputRole, InputScanner, InputSummary, Limits};

/// Why the native remuxer declined an input: a reason for the log; the caller falls back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not remuxed natively: {reason}")]
pub struct Unsupported {
    pub reason: String,
}

impl Unsupported {
    pub fn new(reason: String) -> Self {
        Unsupported { reason }
    }
}

fn packets(bytes: &[u8]) -> std::slice::ChunksExact<'_, u8> {
    bytes.chunks_exact(ts::TS_PACKET_BYTES)
}

/// The whole remux in memory (tests, fuzzing, small inputs): the same passes as
/// [`remux_to_mp4`] over byte slices. Trailing partial packets are ignored.
pub fn remux_bytes(
    inputs: &[(&[u8], InputRole)],
    brand: Brand,
    limits: Limits,
) -> Result<Vec<u8>, Unsupported> {
    let mut summaries = Vec::with_capacity(inputs.len());
    for (bytes, role) in inputs {
        let mut scanner = InputScanner::new(*role, limits);
        for packet in packets(bytes) {
            scanner.push_packet(packet)?;
        }
        summaries.push(scanner.finish()?);
    }
    if brand == Brand::M4a && summaries.iter().any(|summary| summary.video.is_some()) {
        return Err(Unsupported::new("video in an audio-only output".to_owned()));
    }
    let plan = plan_output(&summaries, brand)?;
    let total = usize::try_from(plan.total_bytes)
        .map_err(|_| Unsupported::new("too large for memory".to_owned()))?;
    let mut output = plan.header.clone();
    output.resize(total, 0);
    for (index, (bytes, _)) in inputs.iter().enumerate() {
        let mut copier = copy::InputCopier::new(&plan, index);
        let mut sink = |chunk: copy::ChunkWrite<'_>| -> Result<(), Unsupported> {
            let start =
                usize::try_from(chunk.offset).map_err(|_| Unsupported::new("offset".to_owned()))?;
            output
                .get_mut(start..start + chunk.bytes.len())
                .ok_or_else(|| Unsupported::new("a chunk outside the plan".to_owned()))?
                .copy_from_slice(chunk.bytes);
            Ok(())
        };
        for packet in packets(bytes) {
            copier.push_packet(packet, &mut sink)?;
        }
        copier.finish(&mut sink)?;
    }
    Ok(output)
}
