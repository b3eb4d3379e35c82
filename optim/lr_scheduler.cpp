#include "reel/optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace reel {

namespace {

constexpr double kPi = 3.14159265358979323846;

double rounded(double v) { return static_cast<double>(static_cast<float>(v)); }

}  // namespace

// ---- LRScheduler ----

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(rounded(optimizer.lr(g)));
}

void LRScheduler::start() {
  last_epoch_ = 0;
  apply();
}

void LRScheduler::apply() {
  REEL_CHECK(optimizer_.num_groups() == base_lrs_.size(),
             name() << ": the optimizer has " << optimizer_.num_groups()
                    << " parameter groups, the schedule was made for " << base_lrs_.size());
  std::vector<double> lrs;
  for (size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(lr_at(g, last_epoch_));
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
  last_lr_ = lrs;
}

void LRScheduler::step() {
  ++last_epoch_;
  try {
    apply();
  } catch (...) {
    --last_epoch_;
    throw;
  }
}

TensorMap LRScheduler::state_dict() const {
  std::vector<float> base(base_lrs_.begin(), base_lrs_.end());
  return {{"last_epoch", Tensor::scalar(static_cast<float>(last_epoch_))},
          {"base_lrs", Tensor::from_vector(base, {static_cast<int64_t>(base.size())})}};
}

void LRScheduler::load_state_dict(const TensorMap& state) {
  std::vector<std::string> problems;
  auto e = state.find("last_epoch");
  auto b = state.find("base_lrs");
  if (e == state.end()) {
    problems.push_back("missing 'last_epoch'");
  } else if (e->second.numel() != 1 || !(e->second.item() >= 0.0f) ||
             e->second.item() != std::floor(e->second.item())) {
    problems.push_back("'last_epoch' must be one integer >= 0");
  }
  if (b == state.end()) {
    problems.push_back("missing 'base_lrs'");
  } else if (b->second.dim() != 1 || static_cast<size_t>(b->second.numel()) != base_lrs_.size()) {
    problems.push_back("'base_lrs' has shape " + shape_str(b->second.shape()) + ", expected [" +
                       std::to_string(base_lrs_.size()) + "] (one per parameter group)");
  }
  for (const auto& [k, v] : state)
    if (k != "last_epoch" && k != "base_lrs") problems.push_back("unexpected key '" + k + "'");
  if (!problems.empty()) {
    std::ostringstream os;
    os << name() << ".load_state_dict: the state does not fit:";
    for (const std::string& p : problems) os << "\n  " << p;
    throw Error(os.str());
  }
  const std::vector<float> base = b->second.to_vector();
  const std::vector<double> old_base = base_lrs_;
  const int64_t old_epoch = last_epoch_;
  base_lrs_.assign(base.begin(), base.end());
  last_epoch_ = static_cast<int64_t>(e->second.item());
  try {
    apply();
  } catch (...) {
    base_lrs_ = old_base;
    last_epoch_ = old_epoch;
    throw;
  }
}

// ---- StepLR, MultiStepLR ----

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  REEL_CHECK(step_size > 0, "StepLR: step_size " << step_size << " must be > 0");
  REEL_CHECK(gamma >= 0.0, "StepLR: gamma " << gamma << " must be >= 0");
  start();
}

double StepLR::lr_at(size_t g, int64_t epoch) const {
  return base_lrs_[g] * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  for (size_t i = 0; i < milestones_.size(); ++i)
    REEL_CHECK(milestones_[i] >= 0 && (i == 0 || milestones_[i] > milestones_[i - 1]),
               "MultiStepLR: milestones must be >= 0 and increasing; milestone " << i << " is "
                                                                                 << milestones_[i]);
  REEL_CHECK(gamma >= 0.0, "MultiStepLR: gamma " << gamma << " must be >= 0");
  start();
}

double MultiStepLR::lr_at(size_t g, int64_t epoch) const {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
  return base_lrs_[g] * std::pow(gamma_, static_cast<double>(passed));
}

// ---- WarmupCosineLR ----

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                               double start_factor, double eta_min)
    : LRScheduler(optimizer),
      warmup_(warmup_steps),
      total_(total_steps),
      start_factor_(start_factor),
      eta_min_(eta_min) {
  REEL_CHECK(warmup_steps >= 0 && total_steps > warmup_steps,
             "WarmupCosineLR: needs 0 <= warmup_steps < total_steps, got warmup_steps "
                 << warmup_steps << " and total_steps " << total_steps);
  REEL_CHECK(start_factor >= 0.0 && start_factor <= 1.0,
             "WarmupCosineLR: start_factor " << start_factor << " is outside [0, 1]");
  REEL_CHECK(eta_min >= 0.0, "WarmupCosineLR: eta_min " << eta_min << " must be >= 0");
  start();
}

double WarmupCosineLR::lr_at(size_t g, int64_t epoch) const {
  const double base = base_lrs_[g];
  if (epoch < warmup_)
    return base * (start_factor_ + (1.0 - start_factor_) * static_cast<double>(epoch) /
                                       static_cast<double>(warmup_));
  if (epoch >= total_) return eta_min_;
  const double t = static_cast<double>(epoch - warmup_) / static_cast<double>(total_ - warmup_);
  return eta_min_ + (base - eta_min_) * (1.0 + std::cos(kPi * t)) / 2.0;
}

// ---- OneCycleLR ----

OneCycleLR::OneCycleLR(Optimizer& optimizer, OneCycleOptions options)
    : LRScheduler(optimizer), o_(std::move(options)) {
  const size_t groups = optimizer.num_groups();
  REEL_CHECK(o_.total_steps > 0, "OneCycleLR: total_steps " << o_.total_steps << " must be > 0");
  REEL_CHECK(o_.pct_start >= 0.0 && o_.pct_start <= 1.0,
             "OneCycleLR: pct_start " << o_.pct_start << " is outside [0, 1]");
  REEL_CHECK(o_.max_lr.size() == 1 || o_.max_lr.size() == groups,
             "OneCycleLR: " << o_.max_lr.size() << " max_lr values for " << groups
                            << " parameter groups (give one, or one per group)");
  REEL_CHECK(o_.div_factor > 0.0 && o_.final_div_factor > 0.0,
             "OneCycleLR: div_factor " << o_.div_factor << " and final_div_factor "
                                       << o_.final_div_factor << " must be > 0");
  for (size_t g = 0; g < groups; ++g) {
    const double max_lr = o_.max_lr[o_.max_lr.size() == 1 ? 0 : g];
    REEL_CHECK(max_lr >= 0.0, "OneCycleLR: max_lr " << max_lr << " must be >= 0");
    max_lr_.push_back(max_lr);
    initial_lr_.push_back(max_lr / o_.div_factor);
    min_lr_.push_back(initial_lr_.back() / o_.final_div_factor);
  }
  const double total = static_cast<double>(o_.total_steps);
  if (o_.three_phase) {
    phases_ = {{o_.pct_start * total - 1.0, 0, 1, true, false},
               {2.0 * o_.pct_start * total - 2.0, 1, 0, false, true},
               {total - 1.0, 0, 2, true, true}};
  } else {
    phases_ = {{o_.pct_start * total - 1.0, 0, 1, true, false}, {total - 1.0, 1, 2, false, true}};
  }
  // torch divides by zero here: a phase must last.
  for (size_t i = 0; i < phases_.size(); ++i)
    REEL_CHECK(phases_[i].end_step > (i == 0 ? 0.0 : phases_[i - 1].end_step),
               "OneCycleLR: phase " << i << " of the schedule is empty with total_steps "
                                    << o_.total_steps << " and pct_start " << o_.pct_start);
  start();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (o_.cos_anneal) return end + (start - end) / 2.0 * (std::cos(kPi * pct) + 1.0);
  return (end - start) * pct + start;
}

const OneCycleLR::Phase& OneCycleLR::phase_of(int64_t epoch, double* pct) const {
  REEL_CHECK(epoch <= o_.total_steps,
             "OneCycleLR: tried to step " << epoch << " times; total_steps is " << o_.total_steps);
  const double step = static_cast<double>(epoch);
  double start = 0.0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& p = phases_[i];
    if (step <= p.end_step || i + 1 == phases_.size()) {
      *pct = (step - start) / (p.end_step - start);
      return p;
    }
    start = p.end_step;
  }
  return phases_.back();  // not reached
}

double OneCycleLR::lr_at(size_t g, int64_t epoch) const {
  double pct = 0.0;
  const Phase& p = phase_of(epoch, &pct);
  const double lrs[3] = {initial_lr_[g], max_lr_[g], min_lr_[g]};
  return anneal(lrs[p.start_lr], lrs[p.end_lr], pct);
}

double OneCycleLR::momentum_at(size_t g, int64_t epoch) const {
  (void)g;
  double pct = 0.0;
  const Phase& p = phase_of(epoch, &pct);
  return anneal(p.start_max_mom ? o_.max_momentum : o_.base_momentum,
                p.end_max_mom ? o_.max_momentum : o_.base_momentum, pct);
}

void OneCycleLR::apply() {
  LRScheduler::apply();
  if (!o_.cycle_momentum) return;
  for (size_t g = 0; g < base_lrs_.size(); ++g)
    optimizer_.set_momentum(g, momentum_at(g, last_epoch_));
}

}  // namespace reel
