#include "reel/data/clip.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <opencv2/imgproc.hpp>

#include "reel/core/error.h"
#include "reel/core/random.h"

namespace reel::data {

SampleMode parse_sample_mode(const std::string& name) {
  if (name == "segments") return SampleMode::Segments;
  if (name == "consecutive") return SampleMode::Consecutive;
  throw Error("unknown clip sampling '" + name + "' (expected segments or consecutive)");
}

ShortPolicy parse_short_policy(const std::string& name) {
  if (name == "loop") return ShortPolicy::Loop;
  if (name == "pad") return ShortPolicy::Pad;
  throw Error("unknown policy for short videos '" + name + "' (expected loop or pad)");
}

ClipIndices sample_clip(int64_t n, const SamplerOptions& o, bool train, int clip, Generator& gen) {
  REEL_CHECK(n > 0, "sample_clip: the video has no frame");
  REEL_CHECK(o.frames > 0 && o.stride > 0 && o.clips_per_video > 0,
             "sample_clip: frames, stride and clips_per_video must be positive");
  REEL_CHECK(clip >= 0 && clip < o.clips_per_video,
             "sample_clip: clip " << clip << " of " << o.clips_per_video);
  const int64_t T = o.frames;
  const int K = o.clips_per_video;
  ClipIndices c;
  c.frames.resize(T);
  if (o.mode == SampleMode::Segments) {
    if (n >= T) {
      const double seg = static_cast<double>(n) / T;
      for (int64_t k = 0; k < T; ++k) {
        const double u = train ? gen.uniform() : (clip + 0.5) / K;
        c.frames[k] = std::min<int64_t>(n - 1, static_cast<int64_t>(k * seg + u * seg));
      }
      c.length = T;
      return c;
    }
    c.length = n;
  } else {
    const int64_t span = (T - 1) * o.stride + 1;
    if (n >= span) {
      const int64_t room = n - span;  // the last possible start
      int64_t start;
      if (train)
        start = std::min<int64_t>(room, static_cast<int64_t>(gen.uniform() * (room + 1)));
      else if (K == 1)
        start = room / 2;
      else
        start = static_cast<int64_t>(std::llround(static_cast<double>(clip) * room / (K - 1)));
      for (int64_t k = 0; k < T; ++k) c.frames[k] = start + k * o.stride;
      c.length = T;
      return c;
    }
    c.length = (n + o.stride - 1) / o.stride;
  }
  // Short video: its real frames first, then loop or pad.
  const int64_t step = o.mode == SampleMode::Segments ? 1 : o.stride;
  for (int64_t k = 0; k < T; ++k) {
    if (k < c.length)
      c.frames[k] = k * step;
    else
      c.frames[k] = o.short_policy == ShortPolicy::Loop ? c.frames[k % c.length] : -1;
  }
  return c;
}

ClipAugment draw_augment(const TransformOptions& o, bool train, Generator& gen) {
  ClipAugment a;
  if (!train) return a;
  // Always draw all three, so that one option does not shift the others' random stream.
  const float f = gen.uniform(), x = gen.uniform(), y = gen.uniform();
  a.flip = o.flip && f < 0.5f;
  a.crop_x = x;
  a.crop_y = y;
  return a;
}

cv::Mat resize_shorter(const cv::Mat& bgr, int resize) {
  if (resize <= 0) return bgr;
  const int h = bgr.rows, w = bgr.cols;
  int nh, nw;
  if (h <= w) {
    nh = resize;
    nw = std::max(1, static_cast<int>(std::lround(static_cast<double>(w) * resize / h)));
  } else {
    nw = resize;
    nh = std::max(1, static_cast<int>(std::lround(static_cast<double>(h) * resize / w)));
  }
  if (nh == h && nw == w) return bgr;
  cv::Mat out;
  cv::resize(bgr, out, cv::Size(nw, nh), 0, 0, nh < h ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

void output_size(const TransformOptions& o, int h, int w, int& out_h, int& out_w) {
  if (o.crop > 0) {
    out_h = out_w = o.crop;
    return;
  }
  if (o.resize > 0) {
    // Same rounding as resize_shorter.
    if (h <= w) {
      out_h = o.resize;
      out_w = std::max(1, static_cast<int>(std::lround(static_cast<double>(w) * o.resize / h)));
    } else {
      out_w = o.resize;
      out_h = std::max(1, static_cast<int>(std::lround(static_cast<double>(h) * o.resize / w)));
    }
    return;
  }
  out_h = h;
  out_w = w;
}

void transform_clip(const std::vector<cv::Mat>& frames, const TransformOptions& o,
                    const ClipAugment& a, float* out, const std::string& what) {
  int H = 0, W = 0;
  for (const cv::Mat& f : frames) {
    if (f.empty()) continue;
    output_size(o, f.rows, f.cols, H, W);
    break;
  }
  REEL_CHECK(H > 0, what << ": the clip has no real frame");
  const size_t plane = static_cast<size_t>(H) * W;
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * o.std[c]);
    shift[c] = -o.mean[c] / o.std[c];
  }
  for (size_t t = 0; t < frames.size(); ++t) {
    float* dst = out + t * 3 * plane;  // [3, H, W]
    if (frames[t].empty()) {
      std::memset(dst, 0, 3 * plane * sizeof(float));
      continue;
    }
    REEL_CHECK(frames[t].type() == CV_8UC3, what << ": frame " << t << " is not 8-bit BGR");
    const cv::Mat r = resize_shorter(frames[t], o.resize);
    int h = H, w = W;
    if (o.crop <= 0) {
      REEL_CHECK(r.rows == H && r.cols == W, what << ": frame " << t << " is " << r.cols << "x"
                                                  << r.rows << ", expected " << W << "x" << H);
    } else {
      REEL_CHECK(r.rows >= h && r.cols >= w, what << ": frame " << t << " of " << r.cols << "x"
                                                  << r.rows << " is smaller than the crop "
                                                  << o.crop << " (raise --resize)");
    }
    const int x0 = static_cast<int>(std::lround(a.crop_x * (r.cols - w)));
    const int y0 = static_cast<int>(std::lround(a.crop_y * (r.rows - h)));
    float* R = dst;
    float* G = dst + plane;
    float* B = dst + 2 * plane;
    for (int y = 0; y < h; ++y) {
      const uint8_t* src = r.ptr<uint8_t>(y0 + y) + 3 * x0;
      const size_t row = static_cast<size_t>(y) * w;
      for (int x = 0; x < w; ++x) {
        const int sx = a.flip ? w - 1 - x : x;
        const uint8_t* p = src + 3 * sx;  // B, G, R
        R[row + x] = p[2] * scale[0] + shift[0];
        G[row + x] = p[1] * scale[1] + shift[1];
        B[row + x] = p[0] * scale[2] + shift[2];
      }
    }
  }
}

}  // namespace reel::data
