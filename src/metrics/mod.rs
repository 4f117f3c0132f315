//! Segmentation quality: StarDist/EmbedSeg matching (AP at IoU thresholds,
//! mean matched IoU) and the Cell Tracking Challenge SEG.

pub mod matching;
pub mod seg;

pub use matching::{ap_thresholds, match_at, overlap, overlap_volumes, pool, MatchStats, Overlap};
pub use seg::{seg, seg_parts};
pub mod scores;

pub use scores::{FrameScores, Scores};
