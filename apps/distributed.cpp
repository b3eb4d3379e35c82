#include "distributed.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#ifdef REEL_HAVE_MPI
#include <mpi.h>
#endif

#include "config.h"
#include "reel/core/error.h"

namespace reel::apps {

namespace {

// FNV-1a, 64 bits.
uint64_t fnv(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

#ifdef REEL_HAVE_MPI
using Clock = std::chrono::steady_clock;

void check_mpi(int code, int rank, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error("rank " + std::to_string(rank) + ": MPI failed in " + what + ": " +
              std::string(text, static_cast<size_t>(len)));
}

// The watchdog: a collective that has waited longer than the timeout for the other ranks (one
// died, or hangs) makes this rank say so and exit; the launcher then stops every rank. It runs
// on its own thread and calls no MPI function (MPI is initialised for one thread).
struct Watchdog {
  std::atomic<int64_t> since{0};  // steady-clock nanoseconds when the collective began; 0: none
  std::atomic<const char*> what{""};
  int rank = 0;
  double timeout = 300.0;
  std::once_flag started;

  static Watchdog& get() {
    static Watchdog w;
    return w;
  }
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
  }
  void start() {
    std::call_once(started, [this] {
      std::thread([this] {
        for (;;) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          const int64_t s = since.load();
          const double waited = s ? static_cast<double>(now() - s) * 1e-9 : 0.0;
          if (s && waited > timeout) {
            std::fprintf(stderr,
                         "reel: error: rank %d: no answer from the other ranks for %.0f s (%s); "
                         "a rank died or hangs; stopping every rank\n",
                         rank, waited, what.load());
            std::fflush(stderr);
            std::_Exit(1);
          }
        }
      }).detach();
    });
  }
};

// Arms the watchdog for one collective.
struct Watched {
  explicit Watched(const char* what) {
    Watchdog::get().what = what;
    Watchdog::get().since = Watchdog::now();
  }
  ~Watched() { Watchdog::get().since = 0; }
};

// Waits for req, testing it: MPI moves a non-blocking collective along inside MPI calls only.
void wait_for(MPI_Request& req, const Ranks& ranks, const char* what) {
  const Watched watch(what);
  const auto t0 = Clock::now();
  for (;;) {
    int done = 0;
    check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), ranks.rank(), what);
    if (done) return;
    // Poll as a blocking call would for a second, then more gently (a rank far behind).
    if (std::chrono::duration<double>(Clock::now() - t0).count() > 1.0)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}
#endif

}  // namespace

int launcher_ranks() {
  for (const char* key : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(key);
    if (v && *v) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 1;
}

void Ranks::set_timeout(double seconds) {
  timeout_ = seconds;
#ifdef REEL_HAVE_MPI
  Watchdog::get().timeout = seconds;
#endif
}

Ranks& Ranks::world() {
  static Ranks r;
  static bool started = false;
  if (started) return r;
  started = true;
  const int asked = launcher_ranks();
#ifdef REEL_HAVE_MPI
  if (asked > 1) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &r.rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &r.size_);
    Watchdog& w = Watchdog::get();
    w.rank = r.rank_;
    w.start();
  }
#else
  if (asked > 1)
    throw UsageError("this reel was built without MPI, but a launcher started it as one of " +
                     std::to_string(asked) +
                     " ranks: install libopenmpi-dev and rebuild (scripts/deps.sh), or run "
                     "one process");
#endif
  return r;
}

void Ranks::finalize() {
#ifdef REEL_HAVE_MPI
  int init = 0, done = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&done);
  if (init && !done) MPI_Finalize();
#endif
}

void Ranks::sum(std::vector<double>& v, const char* what) const {
  if (!distributed() || v.empty()) return;
#ifdef REEL_HAVE_MPI
  const Watched watch(what);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD),
            rank_, what);
#else
  (void)what;
#endif
}

void Ranks::broadcast(float* data, int64_t n, const char* what) const {
  if (!distributed() || n == 0) return;
#ifdef REEL_HAVE_MPI
  const Watched watch(what);
  check_mpi(MPI_Bcast(data, static_cast<int>(n), MPI_FLOAT, 0, MPI_COMM_WORLD), rank_, what);
#else
  (void)data, (void)what;
#endif
}

void Ranks::check_same(uint64_t value, const std::string& what) const {
  if (!distributed()) return;
#ifdef REEL_HAVE_MPI
  std::vector<uint64_t> all(static_cast<size_t>(size_));
  const Watched watch(what.c_str());
  check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
            rank_, what.c_str());
  for (int r = 1; r < size_; ++r)
    if (all[static_cast<size_t>(r)] != all[0]) {
      if (rank_ != 0) throw ExitQuietly{1};  // rank 0 says it, once
      throw Error(what + " differs between the ranks: rank " + std::to_string(r) +
                  "'s is not rank 0's");
    }
#else
  (void)value, (void)what;
#endif
}

uint64_t checksum(const NamedTensors& tensors) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& [name, t] : tensors) {
    h = fnv(name.data(), name.size(), h);
    const std::vector<float> v = t.to_vector();
    h = fnv(v.data(), v.size() * sizeof(float), h);
  }
  return h;
}

uint64_t checksum(const std::string& text) { return fnv(text.data(), text.size()); }

struct GradientAverager::Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  std::vector<float> buf;
  size_t ready = 0;
  bool started = false;
#ifdef REEL_HAVE_MPI
  MPI_Request req = MPI_REQUEST_NULL;
#endif
};

GradientAverager::GradientAverager(const Ranks& ranks, const NamedTensors& params,
                                   double bucket_mib)
    : ranks_(ranks) {
  const auto cap = static_cast<int64_t>(bucket_mib * 1048576.0 / sizeof(float));
  bucket_of_.resize(params.size());
  for (const auto& [name, p] : params) params_.push_back(p);
  int64_t filled = 0;
  for (size_t k = params.size(); k-- > 0;) {  // the last layers first
    if (buckets_.empty() || (filled >= cap && cap > 0)) {
      buckets_.push_back(std::make_unique<Bucket>());
      filled = 0;
    }
    Bucket& b = *buckets_.back();
    b.params.push_back(k);
    b.offsets.push_back(filled);
    filled += params_[k].numel();
    b.buf.resize(static_cast<size_t>(filled));
    bucket_of_[k] = buckets_.size() - 1;
  }
  if (!ranks_.distributed()) return;
  for (size_t k = 0; k < params_.size(); ++k)
    params_[k].add_grad_ready_hook([this, k](const Tensor&) { ready(k); });
}

GradientAverager::~GradientAverager() {
  if (ranks_.distributed())
    for (const Tensor& p : params_) p.clear_grad_ready_hooks();
}

void GradientAverager::ready(size_t param) {
  Bucket& b = *buckets_[bucket_of_[param]];
  if (b.started) return;
  if (++b.ready == b.params.size()) {
    start(b);
    if (!in_finish_) ++started_early_;
  }
#ifdef REEL_HAVE_MPI
  // MPI moves a non-blocking collective along only inside MPI calls: test the ones in flight.
  for (auto& other : buckets_)
    if (other->started && other->req != MPI_REQUEST_NULL) {
      int done = 0;
      MPI_Test(&other->req, &done, MPI_STATUS_IGNORE);
    }
#endif
}

void GradientAverager::start(Bucket& b) {
#ifdef REEL_HAVE_MPI
  for (size_t i = 0; i < b.params.size(); ++i) {
    const Tensor& p = params_[b.params[i]];
    float* dst = b.buf.data() + b.offsets[i];
    const Tensor g = p.grad();
    if (!g.defined()) {
      std::memset(dst, 0, static_cast<size_t>(p.numel()) * sizeof(float));
    } else {
      const Tensor h = g.device().is_cuda() ? g.to(Device::cpu()) : g;
      std::memcpy(dst, h.data(), static_cast<size_t>(h.numel()) * sizeof(float));
    }
  }
  const char* what = "the gradient all-reduce";
  if (in_finish_) {
    // After backward, nothing is left to overlap: the blocking all-reduce is MPI's fastest.
    const Watched watch(what);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, b.buf.data(), static_cast<int>(b.buf.size()), MPI_FLOAT,
                            MPI_SUM, MPI_COMM_WORLD),
              ranks_.rank(), what);
    b.req = MPI_REQUEST_NULL;
  } else {
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, b.buf.data(), static_cast<int>(b.buf.size()), MPI_FLOAT,
                             MPI_SUM, MPI_COMM_WORLD, &b.req),
              ranks_.rank(), what);
  }
#endif
  b.started = true;
}

void GradientAverager::finish() {
  if (!ranks_.distributed()) return;
  const auto t0 = std::chrono::steady_clock::now();
  in_finish_ = true;
  const float inv = 1.0f / static_cast<float>(ranks_.size());
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    // Those backward did not start go one at a time: concurrent non-blocking all-reduces share
    // the link and MPI's progress, and end no sooner.
    if (!b.started) start(b);
#ifdef REEL_HAVE_MPI
    wait_for(b.req, ranks_, "the gradient all-reduce");
#endif
    for (size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& p = params_[b.params[i]];
      const float* src = b.buf.data() + b.offsets[i];
      Tensor g = p.grad();
      if (!g.defined() || g.device().is_cuda()) {
        std::vector<float> v(src, src + p.numel());
        for (float& e : v) e *= inv;
        Tensor avg = Tensor::from_vector(v, p.shape(), p.device());
        if (g.defined())
          g.copy_(avg);
        else
          p.set_grad(avg);
      } else {  // in place: the gradient is the parameter's own
        float* dst = g.data();
        const int64_t n = p.numel();
        for (int64_t e = 0; e < n; ++e) dst[e] = src[e] * inv;
      }
    }
    b.ready = 0;
    b.started = false;
  }
  in_finish_ = false;
  finish_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  last_started_early_ = started_early_;
  started_early_ = 0;
}

}  // namespace reel::apps
