//! The second pass: the same packets again, each sample's bytes (length-prefixed NAL units, raw
//! AAC frames) gathered per chunk and handed out with the chunk's offset in the output. Pure; the
//! sizes must match the plan's, sample by sample (the input changed otherwise).

use crate::Unsupported;
use crate::adts;
use crate::h264;
use crate::plan::{Plan, TrackMedia};
use crate::ts::{TsDemuxer, TsEvent};

struct TrackCursor {
    track_index: usize,
    pid: u16,
    is_video: bool,
    skip_leading: u64,
    sample: usize,
    chunk: usize,
    buffer: Vec<u8>,
}

/// A chunk ready to be written at `offset`.
pub struct ChunkWrite<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// The copy pass over one input.
pub struct InputCopier<'p> {
    plan: &'p Plan,
    demuxer: TsDemuxer,
    cursors: Vec<TrackCursor>,
}

impl<'p> InputCopier<'p> {
    pub fn new(plan: &'p Plan, input: usize) -> Self {
        let cursors = plan
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, track)| track.source.input == input)
            .map(|(track_index, track)| TrackCursor {
                track_index,
                pid: track.source.pid,
                is_video: matches!(track.media, TrackMedia::Video { .. }),
                skip_leading: track.source.skip_leading,
                sample: 0,
                chunk: 0,
                buffer: Vec::new(),
            })
            .collect();
        InputCopier {
            plan,
            demuxer: TsDemuxer::new(),
            cursors,
        }
    }

    pub fn push_packet(
        &mut self,
        packet: &[u8],
        sink: &mut dyn FnMut(ChunkWrite<'_>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        let plan = self.plan;
        let cursors = &mut self.cursors;
        self.demuxer
            .push_packet(packet, &mut |event| copy_event(plan, cursors, event, sink))
    }

    /// The end of the input: every planned sample must have been written.
    pub fn finish(
        mut self,
        sink: &mut dyn FnMut(ChunkWrite<'_>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        let plan = self.plan;
        let cursors = &mut self.cursors;
        self.demuxer
            .finish(&mut |event| copy_event(plan, cursors, event, sink))?;
        for cursor in &self.cursors {
            if cursor.sample != plan.tracks[cursor.track_index].sample_sizes.len() {
                return Err(Unsupported::new(
                    "the second pass found fewer samples than the first".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

fn changed() -> Unsupported {
    Unsupported::new("the input changed between the two passes".to_owned())
}

/// One sample's bytes have been appended to the cursor's buffer: check, and flush a full chunk.
fn sample_done(
    plan: &Plan,
    cursor: &mut TrackCursor,
    appended: u64,
    sink: &mut dyn FnMut(ChunkWrite<'_>) -> Result<(), Unsupported>,
) -> Result<(), Unsupported> {
    let track = &plan.tracks[cursor.track_index];
    let expected = track.sample_sizes.get(cursor.sample).ok_or_else(changed)?;
    if u64::from(*expected) != appended {
        return Err(changed());
    }
    cursor.sample += 1;
    let chunk = track.chunks.get(cursor.chunk).ok_or_else(changed)?;
    if cursor.sample == (chunk.first_sample + chunk.sample_count) as usize {
        if cursor.buffer.len() as u64 != chunk.bytes {
            return Err(changed());
        }
        sink(ChunkWrite {
            offset: chunk.offset,
            bytes: &cursor.buffer,
        })?;
        cursor.buffer.clear();
        cursor.chunk += 1;
    }
    Ok(())
}

fn copy_event(
    plan: &Plan,
    cursors: &mut [TrackCursor],
    event: TsEvent<'_>,
    sink: &mut dyn FnMut(ChunkWrite<'_>) -> Result<(), Unsupported>,
) -> Result<(), Unsupported> {
    let TsEvent::Pes { pid, payload, .. } = event else {
        return Ok(());
    };
    let Some(cursor) = cursors.iter_mut().find(|cursor| cursor.pid == pid) else {
        return Ok(());
    };
    if cursor.is_video {
        if cursor.skip_leading > 0 {
            cursor.skip_leading -= 1;
            return Ok(());
        }
        let appended = h264::append_sample(payload, &mut cursor.buffer);
        sample_done(plan, cursor, appended, sink)
    } else {
        for frame in adts::frames(payload) {
            let (_, raw) = frame?;
            cursor.buffer.extend_from_slice(raw);
            sample_done(plan, cursor, raw.len() as u64, sink)?;
        }
        Ok(())
    }
}
