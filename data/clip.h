#pragma once
// Clip sampling (which T frames of a video) and the per-clip transforms (resize, crop, flip,
// normalise) that turn decoded BGR frames into a [T, 3, H, W] float block.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace reel {
class Generator;
}

namespace reel::data {

enum class SampleMode {
  Segments,     // T equal segments: a random frame in each (training), the centre (evaluation)
  Consecutive,  // T frames at a stride from a random start (training), evenly placed (evaluation)
};
// When a video has fewer frames than a clip needs.
enum class ShortPolicy {
  Loop,  // repeat the real frames from the start
  Pad,   // zero frames after the real ones
};

SampleMode parse_sample_mode(const std::string& name);    // "segments" | "consecutive"
ShortPolicy parse_short_policy(const std::string& name);  // "loop" | "pad"

struct SamplerOptions {
  int frames = 8;  // T
  SampleMode mode = SampleMode::Segments;
  int stride = 1;  // Consecutive only
  ShortPolicy short_policy = ShortPolicy::Loop;
  // Evaluation: clips per video (K); the trainer averages their predictions.
  int clips_per_video = 1;
};

struct ClipIndices {
  std::vector<int64_t> frames;  // [T] frame index per step; -1 is a zero (padding) frame
  int64_t length = 0;           // real frames before any loop or padding, for the LSTM mask
};

// The frames of clip `clip` (0 <= clip < clips_per_video, evaluation only) of a video with
// num_frames > 0 frames. Training draws from gen; evaluation is deterministic.
ClipIndices sample_clip(int64_t num_frames, const SamplerOptions& options, bool train, int clip,
                        Generator& gen);

struct TransformOptions {
  int resize = 128;  // shorter side after resizing; 0 keeps the decoded size
  int crop = 112;    // square crop H = W; 0 keeps the resized frame (then all must match)
  bool flip = true;  // random horizontal flip in training (the same for every frame of a clip)
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};  // RGB, ImageNet's
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
};

// The random choices for one clip, drawn once so that every frame gets the same.
struct ClipAugment {
  bool flip = false;
  float crop_x = 0.5f, crop_y = 0.5f;  // crop position as a fraction of the free room
};
ClipAugment draw_augment(const TransformOptions& options, bool train, Generator& gen);

// Resizes the shorter side to `resize` (OpenCV INTER_AREA when shrinking, INTER_LINEAR when
// enlarging); returns the frame itself when it already has that size.
cv::Mat resize_shorter(const cv::Mat& bgr, int resize);

// frames: T BGR uint8 frames (an empty Mat is a zero frame). out: [T, 3, H, W] float, RGB,
// (x / 255 - mean) / std, with H = W = crop (or the resized size when crop is 0). Throws
// reel::Error naming `what` when a frame is smaller than the crop.
void transform_clip(const std::vector<cv::Mat>& frames, const TransformOptions& options,
                    const ClipAugment& augment, float* out, const std::string& what);

// The output size of transform_clip for frames of size h x w.
void output_size(const TransformOptions& options, int h, int w, int& out_h, int& out_w);

}  // namespace reel::data
