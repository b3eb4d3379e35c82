#pragma once
// Learning-rate schedules with torch.optim.lr_scheduler's conventions: constructing one sets
// every group's lr to the schedule's value at epoch 0 (last_epoch() == 0); each step() moves
// to the next epoch (or iteration: a schedule counts whatever you step it on) and sets every
// group's lr; get_last_lr() is what was set last. The base learning rates are each group's lr
// when the schedule is made (rounded to float32, as the optimizers use them).
#include <cstdint>
#include <vector>

#include "reel/core/serialize.h"
#include "reel/optim/optimizer.h"

namespace reel {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  void step();
  // One lr per group, as set by the constructor or the last step().
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  // {"last_epoch": 0-d, "base_lrs": [groups]}: with the optimizer's state_dict(), what a
  // resumed run needs. load_state_dict() sets the groups' lr (and momentum) for last_epoch.
  TensorMap state_dict() const;
  void load_state_dict(const TensorMap& state);

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  // Called at the end of each derived constructor: epoch 0.
  void start();
  // The lr of group g at `epoch`.
  virtual double lr_at(size_t g, int64_t epoch) const = 0;
  // Sets every group's hyper-parameters for last_epoch_ (the lr; OneCycleLR also momentum).
  virtual void apply();
  virtual const char* name() const = 0;

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  int64_t last_epoch_ = -1;
};

// lr = base * gamma^floor(epoch / step_size) (torch.optim.lr_scheduler.StepLR).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(size_t g, int64_t epoch) const override;
  const char* name() const override { return "StepLR"; }

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = base * gamma^(number of milestones <= epoch) (torch's MultiStepLR). Milestones must
// increase.
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  double lr_at(size_t g, int64_t epoch) const override;
  const char* name() const override { return "MultiStepLR"; }

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// Linear warm-up then cosine annealing:
//   epoch < warmup:  base * (start_factor + (1 - start_factor) * epoch / warmup)
//   else:            eta_min + (base - eta_min) * (1 + cos(pi * (epoch - warmup) / (total -
//   warmup))) / 2
// and eta_min from epoch `total` on. The same values as torch's SequentialLR of LinearLR(
// start_factor, total_iters=warmup) and CosineAnnealingLR(T_max=total - warmup, eta_min) with
// milestone warmup, up to epoch total (past it torch's cosine rises again; this one stays).
// start_factor 0 is the warm-up of Hugging Face's get_cosine_schedule_with_warmup.
class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                 double start_factor = 0.0, double eta_min = 0.0);

 protected:
  double lr_at(size_t g, int64_t epoch) const override;
  const char* name() const override { return "WarmupCosineLR"; }

 private:
  int64_t warmup_, total_;
  double start_factor_, eta_min_;
};

struct OneCycleOptions {
  // The peak lr: one for every group, or one per group.
  std::vector<double> max_lr;
  int64_t total_steps = 0;
  double pct_start = 0.3;
  bool cos_anneal = true;  // false: linear annealing
  bool cycle_momentum = true;
  double base_momentum = 0.85, max_momentum = 0.95;
  double div_factor = 25.0;       // initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min lr = initial lr / final_div_factor
  bool three_phase = false;
};

// torch.optim.lr_scheduler.OneCycleLR: from max_lr / div_factor up to max_lr over pct_start of
// total_steps, then down to the minimum (three_phase: back to the initial lr, then down), and,
// when cycle_momentum, the momentum (SGD's momentum, Adam's beta1) the opposite way between
// max_momentum and base_momentum. It may be stepped total_steps times; one more step throws
// reel::Error, as torch's ValueError.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, OneCycleOptions options);
  // The momentum of group g that the last step set (when cycle_momentum).
  double momentum_at(size_t g, int64_t epoch) const;

 protected:
  double lr_at(size_t g, int64_t epoch) const override;
  void apply() override;
  const char* name() const override { return "OneCycleLR"; }

 private:
  struct Phase {
    double end_step;
    int start_lr, end_lr;             // 0 initial, 1 max, 2 min
    bool start_max_mom, end_max_mom;  // max_momentum, else base_momentum
  };
  // The phase of `epoch` and how far into it (pct).
  const Phase& phase_of(int64_t epoch, double* pct) const;
  double anneal(double start, double end, double pct) const;

  OneCycleOptions o_;
  std::vector<double> initial_lr_, max_lr_, min_lr_;
  std::vector<Phase> phases_;
};

}  // namespace reel
