#include "reel/layers/video.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"

namespace reel {

namespace {

const char* const kFusionNames[] = {"last", "mean", "concat", "attention", "pool"};

// The [B, T] step weights that turn a sum over time into a fusion: 1 / length at the valid
// steps of each clip (a mean) or 1 at its last valid step only (a selection), 0 elsewhere.
Tensor step_weights(int64_t B, int64_t T, const std::vector<int64_t>& lengths, bool mean,
                    Device device) {
  std::vector<float> w(static_cast<size_t>(B * T), 0.0f);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
    if (mean)
      for (int64_t t = 0; t < n; ++t) w[static_cast<size_t>(b * T + t)] = 1.0f / n;
    else
      w[static_cast<size_t>(b * T + n - 1)] = 1.0f;
  }
  return Tensor::from_vector(w, {B, T}, device);
}

// x: [B, T, D], w: [B, T] -> [B, D] = sum over t of w[b, t] x[b, t, :].
Tensor weighted_sum_over_time(const Tensor& x, const Tensor& w) {
  return sum(x * reshape(w, {w.size(0), w.size(1), 1}), {1});
}

}  // namespace

Fusion parse_fusion(const std::string& name) {
  for (int i = 0; i < 5; ++i)
    if (name == kFusionNames[i]) return static_cast<Fusion>(i);
  throw Error("unknown fusion '" + name + "': expected last, mean, concat, attention or pool");
}

std::string fusion_name(Fusion fusion) { return kFusionNames[static_cast<int>(fusion)]; }

VideoClassifier::VideoClassifier(const VideoClassifierOptions& o) : opts_(o) {
  REEL_CHECK(o.feature_dim >= 1 && o.hidden_size >= 1 && o.num_layers >= 1 && o.num_classes >= 1,
             "video classifier: feature_dim "
                 << o.feature_dim << ", hidden_size " << o.hidden_size << ", num_layers "
                 << o.num_layers << " and num_classes " << o.num_classes << " must be >= 1");
  // The backbone's last Linear is the projection to F: cnn.fc (ResNet), cnn.classifier.6 (VGG).
  try {
    cnn_ = register_module("cnn", make_backbone(o.backbone, o.width, o.feature_dim));
  } catch (const Error& e) {
    throw Error(std::string("video classifier: ") + e.what());
  }
  if (o.fusion != Fusion::pool) {
    LSTMOptions lo;
    lo.input_size = o.feature_dim;
    lo.hidden_size = o.hidden_size;
    lo.num_layers = o.num_layers;
    lo.batch_first = true;
    lstm_ = register_module("lstm", std::make_shared<LSTM>(lo));
  }
  if (o.fusion == Fusion::attention)
    attention_ = register_module("attention", std::make_shared<Linear>(o.hidden_size, 1));
  fc_ = register_module("fc", std::make_shared<Linear>(fused_size(), o.num_classes));
  set_freeze_backbone(o.freeze_backbone);
  set_recompute(o.recompute);
}

int64_t VideoClassifier::fused_size() const {
  switch (opts_.fusion) {
    case Fusion::concat:
      return opts_.feature_dim + opts_.hidden_size;
    case Fusion::pool:
      return opts_.feature_dim;
    default:
      return opts_.hidden_size;
  }
}

void VideoClassifier::set_freeze_backbone(bool on) {
  opts_.freeze_backbone = on;
  const NamedTensors head = cnn_->head().named_parameters();
  for (auto& [name, p] : cnn_->named_parameters()) {
    bool is_head = false;
    for (auto& h : head) is_head = is_head || h.second.same_storage(p);
    if (!is_head) p.requires_grad_(!on);
  }
  if (!on) cnn_->train(is_training());  // forward() keeps a frozen backbone in eval mode
}

void VideoClassifier::set_recompute(bool on) {
  opts_.recompute = on;
  cnn_->set_recompute(on);
}

Tensor VideoClassifier::forward(const Tensor& clips, const std::vector<int64_t>& lengths) {
  return fc_->forward(fused(clips, lengths));
}

Tensor VideoClassifier::fused(const Tensor& clips, const std::vector<int64_t>& lengths) {
  REEL_CHECK(clips.defined() && clips.dim() == 5 && clips.size(2) == 3,
             "video classifier: expected clips of shape [B, T, 3, H, W], got "
                 << (clips.defined() ? shape_str(clips.shape()) : std::string("none")));
  const int64_t B = clips.size(0), T = clips.size(1);
  REEL_CHECK(B >= 1 && T >= 1,
             "video classifier: the clips " << shape_str(clips.shape()) << " hold no frame");
  REEL_CHECK(lengths.empty() || static_cast<int64_t>(lengths.size()) == B,
             "video classifier: " << lengths.size() << " lengths for a batch of " << B
                                  << " clips (one per clip, or none)");
  for (size_t b = 0; b < lengths.size(); ++b)
    REEL_CHECK(lengths[b] >= 1 && lengths[b] <= T,
               "video classifier: clip " << b << " has length " << lengths[b] << ", outside 1.."
                                         << T << " (the clips' T)");
  const Device dev = clips.device();
  const Tensor frames = reshape(clips, {B * T, 3, clips.size(3), clips.size(4)});
  Tensor pooled;  // [B * T, 8 * width]
  if (opts_.freeze_backbone) {
    cnn_->eval();  // its BatchNorm too, whatever mode the classifier is in
    NoGradGuard no_grad;
    pooled = cnn_->features(frames);
  } else {
    pooled = cnn_->features(frames);
  }
  const Tensor feats = reshape(cnn_->head().forward(pooled), {B, T, opts_.feature_dim});
  Tensor vec;
  if (opts_.fusion == Fusion::pool) {
    vec = weighted_sum_over_time(feats, step_weights(B, T, lengths, true, dev));
  } else {
    const Tensor out = lstm_->forward(feats, lengths).output;  // [B, T, H], 0 past the lengths
    switch (opts_.fusion) {
      case Fusion::last:
        vec = weighted_sum_over_time(out, step_weights(B, T, lengths, false, dev));
        break;
      case Fusion::mean:
        vec = weighted_sum_over_time(out, step_weights(B, T, lengths, true, dev));
        break;
      case Fusion::concat:
        vec = concat({weighted_sum_over_time(feats, step_weights(B, T, lengths, true, dev)),
                      weighted_sum_over_time(out, step_weights(B, T, lengths, false, dev))},
                     1);
        break;
      case Fusion::attention: {
        // Scores of the steps past a clip's length are -inf: their softmax weight is 0.
        std::vector<float> mask(static_cast<size_t>(B * T), 0.0f);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = lengths.empty() ? T : lengths[static_cast<size_t>(b)]; t < T; ++t)
            mask[static_cast<size_t>(b * T + t)] = -std::numeric_limits<float>::infinity();
        const Tensor scores = reshape(attention_->forward(out), {B, T});
        const Tensor w = softmax(scores + Tensor::from_vector(mask, {B, T}, dev), 1);
        vec = weighted_sum_over_time(out, w);
        break;
      }
      default:
        break;
    }
  }
  return vec;
}

Tensor VideoClassifier::stream_step(const Tensor& frame, VideoStreamState& s) {
  REEL_CHECK(frame.defined() && frame.dim() == 4 && frame.size(0) == 1 && frame.size(1) == 3,
             "video classifier: a streamed frame must be [1, 3, H, W], got "
                 << (frame.defined() ? shape_str(frame.shape()) : std::string("none")));
  REEL_CHECK(!is_training(),
             "video classifier: stream_step needs eval mode (call eval() first): BatchNorm "
             "cannot take the statistics of one frame");
  NoGradGuard no_grad;
  const Tensor feat = cnn_->head().forward(cnn_->features(frame));  // [1, F]
  s.frames += 1;
  const float inv = 1.0f / static_cast<float>(s.frames);
  s.feature_sum = s.feature_sum.defined() ? s.feature_sum + feat : feat;
  if (opts_.fusion == Fusion::pool) return fc_->forward(s.feature_sum * inv);
  const LstmOutput o = lstm_->forward(reshape(feat, {1, 1, opts_.feature_dim}), {}, s.h, s.c);
  s.h = o.h_n;
  s.c = o.c_n;
  const Tensor out = reshape(o.output, {1, opts_.hidden_size});
  Tensor fused;
  switch (opts_.fusion) {
    case Fusion::mean:
      s.output_sum = s.output_sum.defined() ? s.output_sum + out : out;
      fused = s.output_sum * inv;
      break;
    case Fusion::concat:
      fused = concat({s.feature_sum * inv, out}, 1);
      break;
    case Fusion::attention: {
      // Online softmax: rescale the running sums whenever the largest score grows.
      const float score = attention_->forward(out).item();
      if (s.frames == 1) {
        s.attention_max = score;
        s.attention_den = 1.0f;
        s.attention_sum = out;
      } else {
        const float m = std::max(s.attention_max, score);
        const float old_scale = std::exp(s.attention_max - m), new_w = std::exp(score - m);
        s.attention_den = s.attention_den * old_scale + new_w;
        s.attention_sum = s.attention_sum * old_scale + out * new_w;
        s.attention_max = m;
      }
      fused = s.attention_sum * (1.0f / s.attention_den);
      break;
    }
    default:  // last
      fused = out;
      break;
  }
  return fc_->forward(fused);
}

}  // namespace reel
