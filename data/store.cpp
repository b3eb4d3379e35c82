#include "reel/data/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>
#include <thread>

#include "reel/core/error.h"
#include "reel/core/random.h"
#include "reel/data/clip.h"

namespace reel::data {

namespace {

constexpr char kMagic[8] = {'R', 'E', 'E', 'L', 'S', 'T', 'O', 'R'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 64;

void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
void put_str(std::string& s, const std::string& v) {
  put_u32(s, static_cast<uint32_t>(v.size()));
  s += v;
}

// Bounds-checked reading of the index; every failure names the store.
struct Reader {
  const uint8_t* p;
  uint64_t left;
  const std::string& path;

  void need(uint64_t n) {
    REEL_CHECK(n <= left, "store '" << path << "': index cut short (damaged file)");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    left -= sizeof(T);
    return v;
  }
  std::string str() {
    const uint32_t n = get<uint32_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    left -= n;
    return s;
  }
};

class StoredSource : public FrameSource {
 public:
  StoredSource(std::shared_ptr<const Store> store, size_t video)
      : store_(std::move(store)), video_(video), path_(store_->video(video).path) {}
  int64_t frame_count() const override { return store_->video(video_).frames; }
  double fps() const override { return 0.0; }
  const std::string& path() const override { return path_; }
  std::vector<cv::Mat> read(const std::vector<int64_t>& indices, int64_t* true_count) override {
    std::vector<cv::Mat> frames;
    for (int64_t i : indices) {
      if (i >= frame_count()) {
        if (true_count) *true_count = frame_count();
        break;
      }
      frames.push_back(store_->frame(video_, i));
    }
    return frames;
  }

 private:
  std::shared_ptr<const Store> store_;
  size_t video_;
  std::string path_;
};

}  // namespace

std::shared_ptr<Store> Store::open(const std::string& path) {
  std::shared_ptr<Store> s(new Store());
  s->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REEL_CHECK(fd >= 0, "store '" << path << "': " << std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeaderBytes)) {
    ::close(fd);
    throw Error("store '" + path + "': too short to be a reel store");
  }
  void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  const int mmap_errno = errno;  // before close() can change it
  ::close(fd);
  REEL_CHECK(m != MAP_FAILED, "store '" << path << "': mmap failed: " << std::strerror(mmap_errno));
  s->map_ = static_cast<const uint8_t*>(m);
  s->map_size_ = static_cast<size_t>(st.st_size);
  REEL_CHECK(std::memcmp(s->map_, kMagic, 8) == 0, "store '" << path << "': not a reel store");
  Reader h{s->map_ + 8, kHeaderBytes - 8, path};
  const uint32_t version = h.get<uint32_t>();
  REEL_CHECK(version == kVersion, "store '" << path << "': version " << version
                                            << ", this reel reads version " << kVersion);
  h.get<uint32_t>();
  const uint64_t index_offset = h.get<uint64_t>(), index_bytes = h.get<uint64_t>();
  const uint64_t n = h.get<uint64_t>();
  REEL_CHECK(index_offset >= kHeaderBytes && index_offset <= s->map_size_ &&
                 index_bytes == s->map_size_ - index_offset,
             "store '" << path << "': index out of the file (cut short?)");
  Reader r{s->map_ + index_offset, index_bytes, path};
  const uint32_t nc = r.get<uint32_t>();
  for (uint32_t c = 0; c < nc; ++c) s->classes_.push_back(r.str());
  for (uint64_t i = 0; i < n; ++i) {
    StoredVideo v;
    v.offset = r.get<uint64_t>();
    v.frames = r.get<uint32_t>();
    v.height = r.get<uint32_t>();
    v.width = r.get<uint32_t>();
    r.get<uint32_t>();
    v.label = r.get<int64_t>();
    v.source_frames = r.get<int64_t>();
    v.path = r.str();
    // Frames of at most 65535 x 65535 keep frame_bytes far from overflow; the span check
    // divides instead of adding, so a damaged offset cannot wrap around either.
    const bool sizes_ok =
        v.frames > 0 && v.height > 0 && v.width > 0 && v.height <= 65535 && v.width <= 65535;
    const uint64_t frame_bytes = sizes_ok ? static_cast<uint64_t>(v.height) * v.width * 3 : 1;
    REEL_CHECK(sizes_ok && v.offset >= kHeaderBytes && v.offset <= index_offset &&
                   static_cast<uint64_t>(v.frames) <= (index_offset - v.offset) / frame_bytes &&
                   v.label >= 0 && v.label < static_cast<int64_t>(nc),
               "store '" << path << "': video " << i << " has a bad index entry");
    s->videos_.push_back(std::move(v));
  }
  return s;
}

Store::~Store() {
  if (map_) munmap(const_cast<uint8_t*>(map_), map_size_);
}

cv::Mat Store::frame(size_t video, int64_t t) const {
  const StoredVideo& v = videos_.at(video);
  REEL_CHECK(t >= 0 && t < v.frames, "store '" << path_ << "': frame " << t << " of video " << video
                                               << " (" << v.frames << " frames)");
  const uint8_t* p = map_ + v.offset + static_cast<uint64_t>(t) * v.height * v.width * 3;
  return cv::Mat(static_cast<int>(v.height), static_cast<int>(v.width), CV_8UC3,
                 const_cast<uint8_t*>(p));
}

Dataset Store::dataset(const std::shared_ptr<const Store>& store) {
  Dataset ds;
  ds.classes = store->classes();
  for (const StoredVideo& v : store->videos_) ds.items.push_back({v.path, v.label});
  ds.store = store;
  return ds;
}

std::unique_ptr<FrameSource> open_stored(const std::shared_ptr<const Store>& store, size_t video) {
  REEL_CHECK(video < store->size(), "store '" << store->path() << "': no video " << video);
  return std::make_unique<StoredSource>(store, video);
}

StoreWriter::StoreWriter(const std::string& path, std::vector<std::string> classes)
    : path_(path), part_(path + ".part"), classes_(std::move(classes)) {
  file_ = std::fopen(part_.c_str(), "wb");
  REEL_CHECK(file_ != nullptr, "store '" << part_ << "': cannot create: " << std::strerror(errno));
  const std::string zeros(kHeaderBytes, '\0');
  REEL_CHECK(std::fwrite(zeros.data(), 1, zeros.size(), file_) == zeros.size(),
             "store '" << part_ << "': write failed");
  end_ = kHeaderBytes;
}

bool StoreWriter::broken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

StoreWriter::~StoreWriter() {
  if (file_) std::fclose(file_);
  if (!finished_) {
    std::error_code ec;
    std::filesystem::remove(part_, ec);
  }
}

void StoreWriter::add(int64_t order, const std::string& source_path, int64_t label,
                      int64_t source_frames, const std::vector<cv::Mat>& frames) {
  REEL_CHECK(!frames.empty(), "store: no frame to write for '" << source_path << "'");
  const int h = frames[0].rows, w = frames[0].cols;
  for (const cv::Mat& f : frames)
    REEL_CHECK(f.type() == CV_8UC3 && f.rows == h && f.cols == w,
               "store: frames of '" << source_path << "' differ in size or type");
  std::lock_guard<std::mutex> lock(mu_);
  REEL_CHECK(!finished_, "store '" << path_ << "': add() after finish()");
  REEL_CHECK(!broken_, "store '" << part_ << "': an earlier write failed");
  const uint64_t start = (end_ + 63) / 64 * 64;
  const std::string pad(start - end_, '\0');
  bool ok = std::fwrite(pad.data(), 1, pad.size(), file_) == pad.size();
  for (const cv::Mat& f : frames) {
    for (int y = 0; y < h && ok; ++y)
      ok = std::fwrite(f.ptr<uint8_t>(y), 1, static_cast<size_t>(w) * 3, file_) ==
           static_cast<size_t>(w) * 3;
  }
  if (!ok) broken_ = true;  // the file position is past end_ now: nothing more can be added
  REEL_CHECK(ok, "store '" << part_ << "': write failed (disk full?)");
  StoredVideo v;
  v.offset = start;
  v.frames = static_cast<int64_t>(frames.size());
  v.height = h;
  v.width = w;
  v.label = label;
  v.source_frames = source_frames;
  v.path = source_path;
  end_ = start + static_cast<uint64_t>(frames.size()) * h * w * 3;
  videos_.emplace_back(order, std::move(v));
}

void StoreWriter::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  REEL_CHECK(!finished_, "store '" << path_ << "': finish() twice");
  REEL_CHECK(!broken_, "store '" << part_ << "': an earlier write failed; nothing is renamed");
  std::stable_sort(videos_.begin(), videos_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string index;
  put_u32(index, static_cast<uint32_t>(classes_.size()));
  for (const auto& c : classes_) put_str(index, c);
  for (const auto& [order, v] : videos_) {
    put_u64(index, v.offset);
    put_u32(index, static_cast<uint32_t>(v.frames));
    put_u32(index, static_cast<uint32_t>(v.height));
    put_u32(index, static_cast<uint32_t>(v.width));
    put_u32(index, 0);
    put_u64(index, static_cast<uint64_t>(v.label));
    put_u64(index, static_cast<uint64_t>(v.source_frames));
    put_str(index, v.path);
  }
  std::string header(kMagic, 8);
  put_u32(header, kVersion);
  put_u32(header, 0);
  put_u64(header, end_);
  put_u64(header, index.size());
  put_u64(header, videos_.size());
  header.resize(kHeaderBytes, '\0');
  bool ok = std::fwrite(index.data(), 1, index.size(), file_) == index.size();
  ok = ok && std::fseek(file_, 0, SEEK_SET) == 0;
  ok = ok && std::fwrite(header.data(), 1, header.size(), file_) == header.size();
  ok = ok && std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok) broken_ = true;  // the file position is past end_ now: nothing more can be added
  REEL_CHECK(ok, "store '" << part_ << "': write failed (disk full?)");
  std::error_code ec;
  std::filesystem::rename(part_, path_, ec);
  REEL_CHECK(!ec, "store: cannot rename '" << part_ << "' to '" << path_ << "': " << ec.message());
  finished_ = true;
}

PrepareSummary prepare_store(const Dataset& ds, const std::string& out, const PrepareOptions& o,
                             std::ostream* log) {
  REEL_CHECK(o.frames > 0 && o.size > 0, "prepare: --frames and --size must be positive");
  REEL_CHECK(!ds.store, "prepare: the dataset already comes from a store");
  const auto t0 = std::chrono::steady_clock::now();
  PrepareSummary sum;
  sum.videos = static_cast<int64_t>(ds.size());
  quiet_opencv();
  StoreWriter writer(out, ds.classes);
  const int requested =
      o.workers > 0 ? o.workers : static_cast<int>(std::thread::hardware_concurrency());
  const int workers = static_cast<int>(
      std::clamp<int64_t>(requested, 1, std::min<int64_t>(256, static_cast<int64_t>(ds.size()))));
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;  // guards bad, first_error, the log and the counters
  std::map<size_t, std::pair<std::string, std::string>> bad;
  std::string fatal;
  SamplerOptions so;
  so.frames = o.frames;
  so.short_policy = ShortPolicy::Pad;
  auto work = [&] {
    Generator unused(0);
    for (size_t i; !stop && (i = next++) < ds.size();) {
      const VideoItem& item = ds.items[i];
      try {
        auto src = open_source(item.path);
        int64_t n = 0;
        // Segment centres: all frames of a short video, else o.frames spread over it.
        auto frames = decode_frames(
            *src,
            [&](int64_t count) {
              std::vector<int64_t> idx = sample_clip(count, so, false, 0, unused).frames;
              idx.erase(std::remove(idx.begin(), idx.end(), -1), idx.end());
              return idx;
            },
            0, &n);
        for (cv::Mat& f : frames) f = resize_shorter(f, o.size);
        writer.add(static_cast<int64_t>(i), item.path, item.label, n, frames);
        std::lock_guard<std::mutex> lock(mu);
        sum.written += 1;
        sum.frames += static_cast<int64_t>(frames.size());
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (writer.broken()) {  // the store, not the video: fatal whatever --on-bad-video says
          if (fatal.empty()) fatal = e.what();
          stop = true;
          continue;
        }
        bad[i] = {item.path, naming(item.path, e.what())};
        if (o.on_bad == OnBadVideo::Fail) stop = true;
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu);
        bad[i] = {item.path, naming(item.path, std::string("unexpected error: ") + e.what())};
        if (o.on_bad == OnBadVideo::Fail) stop = true;
      }
    }
  };
  std::vector<std::thread> threads;
  try {
    for (int w = 1; w < workers; ++w) threads.emplace_back(work);
  } catch (const std::system_error& e) {
    stop = true;
    for (auto& t : threads) t.join();
    throw Error("prepare: cannot start " + std::to_string(workers) +
                " worker threads (--workers): " + e.what());
  }
  work();
  for (auto& t : threads) t.join();
  if (!fatal.empty()) throw Error("prepare: " + fatal);
  if (!bad.empty() && o.on_bad == OnBadVideo::Fail)
    throw Error("prepare: bad video (on-bad-video fail): " + bad.begin()->second.second);
  for (const auto& [i, b] : bad) {
    if (log) *log << "reel: skipping bad video: " << b.second << "\n";
    sum.bad.push_back(b);
  }
  REEL_CHECK(sum.written > 0, "prepare: no video could be read (" << bad.size() << " bad)");
  writer.finish();
  std::error_code ec;
  sum.bytes = std::filesystem::file_size(out, ec);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace reel::data
