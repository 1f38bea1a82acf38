//! Which variant (and audio rendition) of a master playlist a `Quality` picks. Pure.

use serde::Serialize;
use streambot_core::Quality;

use crate::playlist::{MasterPlaylist, Rendition, RenditionType, Variant};

/// What to record from a master playlist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantChoice {
    /// The media playlist URI to record as the main track (relative to the master).
    pub main_uri: String,
    /// The chosen variant, when the main track is a variant (not an audio rendition).
    pub variant: Option<Variant>,
    /// An audio rendition to fetch beside the main track and mux in at finalize.
    pub audio_rendition: Option<Rendition>,
    /// True when the main track carries audio only.
    pub audio_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariantSelectionError {
    #[error("the master playlist lists no variant streams")]
    NoVariants,
}

const AUDIO_CODEC_PREFIXES: [&str; 7] = ["mp4a", "ac-3", "ec-3", "opus", "mp3", "flac", "alac"];

/// True when a variant's CODECS name only audio codecs.
pub fn is_audio_only_variant(variant: &Variant) -> bool {
    if variant.resolution.is_some() {
        return false;
    }
    match &variant.codecs {
        Some(codecs) => {
            let names: Vec<&str> = codecs
                .split(',')
                .map(|name| name.trim())
                .filter(|name| !name.is_empty())
                .collect();
            !names.is_empty()
                && names.iter().all(|name| {
                    let lowered = name.to_ascii_lowercase();
                    AUDIO_CODEC_PREFIXES
                        .iter()
                        .any(|prefix| lowered.starts_with(prefix))
                })
        }
        None => false,
    }
}

fn audio_rendition_for(master: &MasterPlaylist, variant: &Variant) -> Option<Rendition> {
    let group = variant.audio_group.as_ref()?;
    let in_group: Vec<&Rendition> = master
        .renditions
        .iter()
        .filter(|rendition| {
            rendition.media_type == RenditionType::Audio
                && &rendition.group_id == group
                && rendition.uri.is_some()
        })
        .collect();
    in_group
        .iter()
        .find(|rendition| rendition.default)
        .or_else(|| in_group.iter().find(|rendition| rendition.autoselect))
        .or_else(|| in_group.first())
        .map(|rendition| (*rendition).clone())
}

/// Picks the variant for a quality. Variants are ordered by bandwidth; ties keep playlist order.
pub fn choose_variant(
    master: &MasterPlaylist,
    quality: Quality,
) -> Result<VariantChoice, VariantSelectionError> {
    let mut by_bandwidth: Vec<&Variant> = master.variants.iter().collect();
    if by_bandwidth.is_empty() {
        return Err(VariantSelectionError::NoVariants);
    }
    by_bandwidth.sort_by_key(|variant| variant.bandwidth);
    let with_video: Vec<&Variant> = by_bandwidth
        .iter()
        .copied()
        .filter(|variant| !is_audio_only_variant(variant))
        .collect();
    let video_or_all = if with_video.is_empty() {
        by_bandwidth.clone()
    } else {
        with_video.clone()
    };
    let highest = video_or_all[video_or_all.len() - 1];
    let chosen: &Variant = match quality {
        Quality::Best | Quality::High => highest,
        Quality::Medium => video_or_all[(video_or_all.len() - 1) / 2],
        Quality::Low => video_or_all[0],
        Quality::Worst => by_bandwidth[0],
        Quality::Height(height) => {
            let with_resolution: Vec<&Variant> = video_or_all
                .iter()
                .copied()
                .filter(|variant| variant.resolution.is_some())
                .collect();
            with_resolution
                .iter()
                .copied()
                .min_by_key(|variant| {
                    let variant_height = variant.resolution.as_ref().map_or(0, |r| r.height);
                    (
                        variant_height.abs_diff(height),
                        std::cmp::Reverse(variant.bandwidth),
                    )
                })
                .unwrap_or(highest)
        }
        Quality::Audio => {
            if let Some(audio_variant) = by_bandwidth
                .iter()
                .rev()
                .copied()
                .find(|variant| is_audio_only_variant(variant))
            {
                return Ok(VariantChoice {
                    main_uri: audio_variant.uri.clone(),
                    variant: Some(audio_variant.clone()),
                    audio_rendition: None,
                    audio_only: true,
                });
            }
            if let Some(rendition) = audio_rendition_for(master, highest)
                && let Some(uri) = &rendition.uri
            {
                return Ok(VariantChoice {
                    main_uri: uri.clone(),
                    variant: None,
                    audio_rendition: None,
                    audio_only: true,
                });
            }
            // Audio is muxed into the variants: record the smallest one; audio is kept at finalize.
            let smallest = video_or_all[0];
            return Ok(VariantChoice {
                main_uri: smallest.uri.clone(),
                variant: Some(smallest.clone()),
                audio_rendition: None,
                audio_only: false,
            });
        }
    };
    Ok(VariantChoice {
        main_uri: chosen.uri.clone(),
        variant: Some(chosen.clone()),
        audio_rendition: audio_rendition_for(master, chosen),
        audio_only: is_audio_only_variant(chosen),
    })
}
