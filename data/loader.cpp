#include "reel/data/loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>

#include <opencv2/core.hpp>

#include "reel/core/error.h"
#include "reel/core/random.h"
#include "reel/data/store.h"

namespace reel::data {

namespace {

uint64_t splitmix(uint64_t x) { return splitmix64(x); }  // a hash of x: x is a copy

}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t sample, uint64_t stream) {
  uint64_t h = splitmix(seed);
  h = splitmix(h ^ static_cast<uint64_t>(epoch));
  h = splitmix(h ^ static_cast<uint64_t>(sample));
  return splitmix(h ^ stream);
}

Loader::Loader(Dataset dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), opts_(options), counts_(dataset_.size()) {
  REEL_CHECK(!dataset_.items.empty(), "loader: the dataset has no video");
  REEL_CHECK(opts_.batch_size > 0, "loader: batch_size must be positive");
  REEL_CHECK(opts_.transform.crop > 0, "loader: transform.crop must be positive");
  REEL_CHECK(opts_.transform.resize <= 0 || opts_.transform.crop <= opts_.transform.resize,
             "loader: transform.crop " << opts_.transform.crop << " is larger than "
                                       << "transform.resize " << opts_.transform.resize
                                       << " (the shorter side after resizing)");
  REEL_CHECK(opts_.workers <= 1024, "loader: " << opts_.workers << " workers is too many");
  REEL_CHECK(opts_.shards >= 1 && opts_.shard >= 0 && opts_.shard < opts_.shards,
             "loader: shard " << opts_.shard << " of " << opts_.shards << " does not exist");
  REEL_CHECK(
      opts_.sampler.frames > 0 && opts_.sampler.clips_per_video > 0 && opts_.sampler.stride > 0,
      "loader: frames, clips_per_video and stride must be positive");
  check_device_usable(opts_.device);
  quiet_opencv();  // sets OpenCV's environment before any worker thread reads it
  workers_ = opts_.workers > 0 ? opts_.workers
                               : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  prefetch_ = opts_.prefetch > 0 ? opts_.prefetch : 2 * workers_;
  clip_numel_ =
      static_cast<int64_t>(opts_.sampler.frames) * 3 * opts_.transform.crop * opts_.transform.crop;
  for (auto& c : counts_) c = 0;
}

Loader::~Loader() { stop_workers(); }

int64_t Loader::samples() const {
  return static_cast<int64_t>(dataset_.size()) * (opts_.train ? 1 : opts_.sampler.clips_per_video);
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = samples(), b = static_cast<int64_t>(opts_.batch_size) * opts_.shards;
  if (opts_.drop_last || n % b < opts_.shards) return n / b;  // a remainder every shard can share
  return (n + b - 1) / b;
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  REEL_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(),
             "loader: batch " << first_batch << " is outside the epoch's " << batches_per_epoch()
                              << " batches");
  stop_workers();
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t n = samples();
  order_.resize(n);
  for (int64_t i = 0; i < n; ++i) order_[i] = i;
  if (opts_.shuffle) {
    // Fisher-Yates with our generator: the same order on every platform.
    Generator g(sample_seed(opts_.seed, epoch, -1));
    for (int64_t i = n - 1; i > 0; --i) {
      const int64_t j = static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(i + 1));
      std::swap(order_[i], order_[j]);
    }
  }
  if (opts_.shards > 1) {  // this shard's part of every global batch, in order
    const int64_t G = static_cast<int64_t>(opts_.batch_size) * opts_.shards, N = opts_.shards;
    std::vector<int64_t> mine;
    for (int64_t k = 0; k < batches_per_epoch(); ++k) {
      const int64_t M = std::min(G, n - k * G);
      mine.insert(mine.end(), order_.begin() + k * G + opts_.shard * M / N,
                  order_.begin() + k * G + (opts_.shard + 1) * M / N);
    }
    order_ = std::move(mine);
  }
  epoch_ = epoch;
  end_pos_ = batches_per_epoch() * opts_.batch_size;
  end_pos_ = std::min(end_pos_, static_cast<int64_t>(order_.size()));
  next_pos_ = start_pos_ = std::min(first_batch * opts_.batch_size, end_pos_);
  next_batch_ = first_batch;
  pending_.clear();
  summary_ = EpochSummary();
  stop_ = false;
  fatal_.clear();
  for (int w = 0; w < workers_; ++w) threads_.emplace_back(&Loader::worker, this);
}

void Loader::worker() {
  // OpenCV's own thread pool would run every cv::resize of every worker on all cores at once,
  // oversubscribing them (and the trainer's threads); the workers are the parallelism here.
  // The setting is OpenCV's, for the whole process.
  cv::setNumThreads(1);
  const int64_t B = opts_.batch_size;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || next_pos_ >= end_pos_ || next_pos_ / B < next_batch_ + prefetch_;
    });
    if (stop_ || next_pos_ >= end_pos_) return;
    const int64_t pos = next_pos_++;
    const int64_t b = pos / B;
    Pending& p = pending_[b];
    if (!p.clips.defined()) {
      const int size = static_cast<int>(std::min(B, end_pos_ - b * B));
      const int c = opts_.transform.crop;
      try {
        // Bound for a GPU: build the batch in pinned memory, so that next() can queue its copy
        // asynchronously (the pinned pool holds the block back until that copy is done).
        const Shape shape{size, opts_.sampler.frames, 3, c, c};
        p.clips = opts_.device.is_cuda() ? Tensor::empty_pinned(shape) : Tensor::empty(shape);
      } catch (const std::exception& e) {
        // Out of memory, say: the epoch cannot go on; next() reports it.
        fatal_ = std::string("cannot allocate a batch: ") + e.what();
        stop_ = true;
        ready_cv_.notify_all();
        work_cv_.notify_all();
        return;
      }
      p.size = size;
      p.lengths.assign(p.size, 0);
      p.labels.assign(p.size, 0);
      p.videos.assign(p.size, 0);
      p.clip_indices.assign(p.size, 0);
      p.errors.assign(p.size, "");
    }
    lock.unlock();
    // Each slot is this worker's alone; the batch's vectors do not move while it is pending.
    produce(pos, p, static_cast<int>(pos - b * B));
    lock.lock();
    if (++p.done == p.size) ready_cv_.notify_all();
  }
}

void Loader::produce(int64_t pos, Pending& p, int slot) {
  const int64_t s = order_[pos];
  const int K = opts_.train ? 1 : opts_.sampler.clips_per_video;
  const int64_t video = s / K;
  const int clip = static_cast<int>(s % K);
  const VideoItem& item = dataset_.items[video];
  p.labels[slot] = item.label;
  p.videos[slot] = video;
  p.clip_indices[slot] = clip;
  float* out = p.clips.data() + slot * clip_numel_;
  try {
    std::unique_ptr<FrameSource> src =
        dataset_.store ? open_stored(dataset_.store, video) : open_source(item.path);
    const Generator base(sample_seed(opts_.seed, epoch_, s, 0));
    ClipIndices ci;
    int64_t n = 0, true_n = 0;
    const double fps = src->fps();
    const std::vector<cv::Mat> frames = decode_frames(
        *src,
        [&](int64_t count) {
          // A fresh copy per call: a retry with the true count draws what a first try would.
          Generator g = base;
          // A segment: the frames in [start, end) seconds, cut at the video's end.
          int64_t first = 0, n = count;
          if (item.end >= 0.0) {
            first = static_cast<int64_t>(std::floor(item.start * fps));
            REEL_CHECK(first < count, "the segment [" << item.start << " s, " << item.end
                                                      << " s] starts past the video's end ("
                                                      << count << " frames at " << fps << " fps)");
            const int64_t last = std::min<int64_t>(
                count,
                std::max<int64_t>(first + 1, static_cast<int64_t>(std::ceil(item.end * fps))));
            n = last - first;
          }
          ci = sample_clip(n, opts_.sampler, opts_.train, clip, g);
          for (int64_t& f : ci.frames)
            if (f >= 0) f += first;
          return ci.frames;
        },
        counts_[video].load(), &n, &true_n);
    // Only a count found by decoding to the end is kept: it saves that decode next time and
    // never changes which frames are chosen (decode_frames), so batches stay the same whatever
    // ran before or on which worker.
    if (true_n > 0) counts_[video] = true_n;
    Generator ga(sample_seed(opts_.seed, epoch_, s, 1));
    const ClipAugment aug = draw_augment(opts_.transform, opts_.train, ga);
    transform_clip(frames, opts_.transform, aug, out, "video '" + item.path + "'");
    p.lengths[slot] = ci.length;
  } catch (const std::exception& e) {
    p.errors[slot] = naming(item.path, e.what());
  } catch (...) {
    p.errors[slot] = naming(item.path, "unknown error while decoding");
  }
}

bool Loader::next(Batch& batch) {
  REEL_CHECK(epoch_ >= 0, "loader: call start_epoch() before next()");
  for (;;) {
    Pending p;
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (next_batch_ >= batches_per_epoch()) return false;
      index = next_batch_;
      ready_cv_.wait(lock, [&] {
        auto it = pending_.find(index);
        return !fatal_.empty() ||
               (it != pending_.end() && it->second.size > 0 && it->second.done == it->second.size);
      });
      if (!fatal_.empty()) {
        next_batch_ = batches_per_epoch();
        throw Error("loader: " + fatal_);
      }
      p = std::move(pending_[index]);
      pending_.erase(index);
      ++next_batch_;
    }
    work_cv_.notify_all();
    std::vector<int> good;
    for (int i = 0; i < p.size; ++i) {
      if (p.errors[i].empty()) {
        good.push_back(i);
        continue;
      }
      const std::string& path = dataset_.items[p.videos[i]].path;
      if (opts_.on_bad == OnBadVideo::Fail) {
        stop_workers();
        {
          std::lock_guard<std::mutex> lock(mu_);
          next_batch_ = batches_per_epoch();  // the epoch is over: next() returns false
        }
        throw Error("loader: bad video (on-bad-video fail): " + p.errors[i]);
      }
      std::lock_guard<std::mutex> lock(mu_);
      summary_.bad.push_back(path);
      if (logged_.insert(path).second)
        (opts_.log ? *opts_.log : std::cerr) << "reel: skipping bad video: " << p.errors[i] << "\n";
    }
    // Every clip of the batch was bad: skip it, but a shard hands it on empty, since every
    // rank of a data-parallel run must take part in every step.
    if (good.empty() && opts_.shards == 1) continue;
    batch = Batch();
    batch.index = index;
    if (static_cast<int>(good.size()) == p.size) {
      batch.clips = p.clips;
    } else {
      Shape shape = p.clips.shape();
      shape[0] = static_cast<int64_t>(good.size());
      batch.clips = opts_.device.is_cuda() ? Tensor::empty_pinned(shape) : Tensor::empty(shape);
      for (size_t k = 0; k < good.size(); ++k)
        std::memcpy(batch.clips.data() + k * clip_numel_, p.clips.data() + good[k] * clip_numel_,
                    sizeof(float) * clip_numel_);
    }
    for (int i : good) {
      batch.lengths.push_back(p.lengths[i]);
      batch.labels.push_back(p.labels[i]);
      batch.videos.push_back(p.videos[i]);
      batch.clip_indices.push_back(p.clip_indices[i]);
      batch.paths.push_back(dataset_.items[p.videos[i]].path);
    }
    if (opts_.device != Device::cpu()) batch.clips = batch.clips.to(opts_.device, true);
    std::lock_guard<std::mutex> lock(mu_);
    summary_.batches += 1;
    summary_.clips += static_cast<int64_t>(good.size());
    return true;
  }
}

int64_t Loader::clips_started() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_pos_ - start_pos_;
}

EpochSummary Loader::summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  return summary_;
}

}  // namespace reel::data
