#pragma once
// What `reel eval` computes, for `reel demo` too: a model's clip-level and video-level accuracy
// on a dataset, and the pictures of a run.
#include <cstdint>
#include <string>
#include <vector>

#include "reel/data/dataset.h"
#include "reel/data/loader.h"
#include "reel/layers/video.h"
#include "trainer.h"

namespace reel::apps {

struct EvalResult {
  int64_t clips = 0, videos = 0;
  double clip_top1 = 0, clip_top5 = 0, video_top1 = 0, video_top5 = 0;  // percent
  // confusion[true][predicted], counted over videos (their clips' probabilities averaged).
  std::vector<std::vector<int64_t>> confusion;
};

// clips_per_video evenly placed clips of every video of ds (evaluation sampling, centred crop),
// with the clip settings the checkpoint was trained with. Throws when no video can be read.
EvalResult evaluate(VideoClassifier& model, const CheckpointInfo& info, const data::Dataset& ds,
                    int64_t clips_per_video, int64_t batch, int64_t workers);

// The `clips` evaluation clips of one video (or frame folder) as the checkpoint's model reads
// them: [clips, T, 3, S, S]. Throws reel::Error naming the file when it cannot be read.
data::Batch read_video_clips(const CheckpointInfo& info, const std::string& path, int64_t clips);

// `reel inspect`'s work: the LSTM's gates and states over one clip of `video` as heatmaps,
// the probabilities after each step, the frames, values.safetensors and index.html in `out`.
// Returns a two-line summary. Throws for the pool baseline (no LSTM).
std::string inspect_video(const std::string& checkpoint, const std::string& video,
                          const std::string& out);

// RUN/metrics.jsonl as a PNG: the loss per step and per epoch, and the training and validation
// accuracy. Returns false (writing nothing) when the file holds no line to draw.
bool draw_run_curves(const std::string& metrics_path, const std::string& png);

}  // namespace reel::apps
