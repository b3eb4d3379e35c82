// The optimizers, schedules and gradient clipping against torch.optim
// (tests/reference/optim.safetensors, made by tests/reference/make_fixtures.py in float64),
// state_dict() round trips that resume bit for bit, and the errors for bad input.
#include <cmath>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "../test_util.h"
#include "reel/optim/optim.h"

using namespace reel;
using reel::test::check_close;
using reel::test::error_of;

namespace {

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/optim.safetensors");
  return m;
}

// float32 against float64 over ten steps.
constexpr float kTol = 1e-6f;

struct Params {
  Tensor w, b;
};

Params fresh_params() {
  const TensorMap& f = fixtures();
  Params p{f.at("param.w").clone(), f.at("param.b").clone()};
  p.w.requires_grad_();
  p.b.requires_grad_();
  return p;
}

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const Params&)>;

// Steps [from, to) of the fixture's gradients; `skip` names (step, "b") pairs left without one.
void run_steps(Optimizer& opt, const Params& p, int from, int to,
               const std::set<int>& skip_b = {}) {
  const TensorMap& f = fixtures();
  for (int k = from; k < to; ++k) {
    opt.zero_grad();
    p.w.set_grad(f.at("grad." + std::to_string(k) + ".w").clone());
    if (!skip_b.count(k)) p.b.set_grad(f.at("grad." + std::to_string(k) + ".b").clone());
    opt.step();
  }
}

void check_case(const std::string& name, const MakeOptimizer& make,
                const std::set<int>& skip_b = {}) {
  INFO(name);
  Params p = fresh_params();
  std::unique_ptr<Optimizer> opt = make(p);
  run_steps(*opt, p, 0, 10, skip_b);
  check_close(p.w, fixtures().at(name + ".w"), kTol, name + ".w");
  check_close(p.b, fixtures().at(name + ".b"), kTol, name + ".b");
}

SGDOptions sgd(double lr, double momentum = 0.0, double dampening = 0.0, double weight_decay = 0.0,
               bool nesterov = false) {
  SGDOptions o;
  o.lr = lr;
  o.momentum = momentum;
  o.dampening = dampening;
  o.weight_decay = weight_decay;
  o.nesterov = nesterov;
  return o;
}

AdamOptions adam(double lr, double weight_decay = 0.0, bool amsgrad = false) {
  AdamOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.amsgrad = amsgrad;
  return o;
}

// Relative comparison for learning rates (which span several decades).
void check_sequence(const std::vector<double>& got, const Tensor& want, const std::string& what) {
  INFO(what);
  const std::vector<float> w = want.to_vector();
  REQUIRE(got.size() == w.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("epoch " << i << ": " << got[i] << " against " << w[i]);
    CHECK(std::fabs(got[i] - w[i]) <= 1e-6 * std::fabs(w[i]) + 1e-12);
  }
}

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("SGD against torch.optim.SGD") {
  check_case("sgd_plain", [](const Params& p) {
    return std::make_unique<SGD>(std::vector<Tensor>{p.w, p.b}, sgd(0.1));
  });
  check_case("sgd_momentum", [](const Params& p) {
    return std::make_unique<SGD>(std::vector<Tensor>{p.w, p.b}, sgd(0.05, 0.9, 0.1, 0.01));
  });
  check_case("sgd_nesterov", [](const Params& p) {
    return std::make_unique<SGD>(std::vector<Tensor>{p.w, p.b}, sgd(0.05, 0.8, 0.0, 0.001, true));
  });
  check_case("sgd_groups", [](const Params& p) {
    const SGDOptions base = sgd(0.1, 0.9);
    SGDOptions w = base;
    w.lr = 0.05;
    w.weight_decay = 0.01;
    return std::make_unique<SGD>(std::vector<ParamGroup<SGDOptions>>{{{p.w}, w}, {{p.b}, base}},
                                 base);
  });
}

TEST_CASE("Adam and AdamW against torch.optim") {
  check_case("adam_wd", [](const Params& p) {
    AdamOptions o = adam(0.01, 0.1);
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-6;
    return std::make_unique<Adam>(std::vector<Tensor>{p.w, p.b}, o);
  });
  check_case("adam_amsgrad", [](const Params& p) {
    return std::make_unique<Adam>(std::vector<Tensor>{p.w, p.b}, adam(0.02, 0.0, true));
  });
  // A parameter without a gradient is skipped: no step, and its step count stays.
  check_case("adam_skip",
             [](const Params& p) {
               return std::make_unique<Adam>(std::vector<Tensor>{p.w, p.b}, adam(0.01));
             },
             {3, 6});
  check_case("adamw", [](const Params& p) {
    return std::make_unique<AdamW>(std::vector<Tensor>{p.w, p.b}, adam(0.01, 0.1));
  });
  check_case("adamw_groups", [](const Params& p) {
    AdamWOptions base;
    base.lr = 0.01;
    base.weight_decay = 0.1;
    AdamOptions b = base;
    b.lr = 0.001;
    b.weight_decay = 0.0;
    return std::make_unique<AdamW>(std::vector<ParamGroup<AdamOptions>>{{{p.w}, base}, {{p.b}, b}},
                                   base);
  });
}

TEST_CASE("a step updates in place, bumps the version and skips parameters without gradient") {
  Params p = fresh_params();
  SGD opt({p.w, p.b}, sgd(0.1, 0.9));
  const float* data = p.w.data();
  const uint64_t vw = p.w.version(), vb = p.b.version();
  p.w.set_grad(Tensor::ones(p.w.shape()));
  opt.step();
  CHECK(p.w.data() == data);
  CHECK(p.w.version() == vw + 1);
  CHECK(p.b.version() == vb);  // no gradient: untouched
  CHECK(opt.state_dict().count("state.0.momentum_buffer") == 1);
  CHECK(opt.state_dict().count("state.1.momentum_buffer") == 0);
  // zero_grad: set_to_none drops the gradient, otherwise zeroes it.
  opt.zero_grad(false);
  REQUIRE(p.w.grad().defined());
  CHECK(values(p.w.grad()) == std::vector<float>(12, 0.0f));
  opt.zero_grad();
  CHECK(!p.w.grad().defined());
  // A saved tensor changed by a step makes its backward throw.
  Tensor y = (p.w * p.w).sum();
  p.w.set_grad(Tensor::ones(p.w.shape()));
  opt.step();
  CHECK_FALSE(error_of([&] { y.backward(); }).empty());
}

TEST_CASE("weight_decay_groups puts 1-D parameters in a group without decay") {
  Params p = fresh_params();
  NamedTensors named = {{"fc.weight", p.w}, {"fc.bias", p.b}};
  AdamWOptions o;
  auto groups = weight_decay_groups<AdamOptions>(named, o);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].params.size() == 1);
  CHECK(groups[0].params[0].same_storage(p.w));
  CHECK(groups[0].options.weight_decay == doctest::Approx(1e-2));
  CHECK(groups[1].params[0].same_storage(p.b));
  CHECK(groups[1].options.weight_decay == 0.0);
  AdamW opt(groups, o);
  CHECK(opt.num_groups() == 2);
  CHECK(opt.param_groups()[1].options.weight_decay == 0.0);
}

TEST_CASE("learning-rate schedules against torch.optim.lr_scheduler") {
  const TensorMap& f = fixtures();
  auto run = [&](const std::string& name, Optimizer& opt, LRScheduler& sched, int steps,
                 bool momentum) {
    std::vector<double> lrs = sched.get_last_lr(), moms = {opt.momentum(0)};
    CHECK(opt.lr(0) == lrs[0]);
    for (int i = 0; i < steps; ++i) {
      sched.step();
      lrs.push_back(sched.get_last_lr()[0]);
      moms.push_back(opt.momentum(0));
      CHECK(opt.lr(0) == lrs.back());
    }
    CHECK(sched.last_epoch() == steps);
    check_sequence(lrs, f.at("sched." + name + ".lr"), name + " lr");
    if (momentum) check_sequence(moms, f.at("sched." + name + ".momentum"), name + " momentum");
  };
  Tensor p = Tensor::zeros({1});
  p.requires_grad_();
  {
    SGD opt({p}, sgd(0.1));
    StepLR s(opt, 3, 0.5);
    run("step", opt, s, 12, false);
  }
  {
    SGD opt({p}, sgd(0.1));
    MultiStepLR s(opt, {2, 5, 9}, 0.3);
    run("multistep", opt, s, 12, false);
  }
  {
    SGD opt({p}, sgd(0.1));
    WarmupCosineLR s(opt, 4, 20, 0.1, 1e-4);
    run("warmup_cosine", opt, s, 20, false);
  }
  {
    SGD opt({p}, sgd(0.1, 0.9));
    OneCycleOptions o;
    o.max_lr = {0.1};
    o.total_steps = 20;
    OneCycleLR s(opt, o);
    run("onecycle_sgd", opt, s, 20, true);
    std::string e = error_of([&] { s.step(); });
    CHECK(e.find("OneCycleLR: tried to step 21 times; total_steps is 20") != std::string::npos);
    CHECK(s.last_epoch() == 20);
  }
  {
    Adam opt({p}, adam(0.01));
    OneCycleOptions o;
    o.max_lr = {0.01};
    o.total_steps = 20;
    o.three_phase = true;
    OneCycleLR s(opt, o);
    run("onecycle_adam_three_phase", opt, s, 20, true);
  }
}

TEST_CASE("a schedule sets every group's lr from its own base") {
  Params p = fresh_params();
  SGD opt(std::vector<ParamGroup<SGDOptions>>{{{p.w}, sgd(0.1)}, {{p.b}, sgd(0.01)}});
  StepLR s(opt, 2, 0.5);
  s.step();
  s.step();
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.005));
  CHECK(s.get_last_lr().size() == 2);
}

TEST_CASE("clip_grad_norm against torch.nn.utils.clip_grad_norm_") {
  const TensorMap& f = fixtures();
  struct Case {
    const char* name;
    double max_norm, norm_type;
  };
  for (const Case c : {Case{"l2", 1.0, 2.0}, Case{"l2_unclipped", 100.0, 2.0}, Case{"l1", 2.0, 1.0},
                       Case{"inf", 0.5, kInfNorm}, Case{"l3", 1.0, 3.0}}) {
    INFO(c.name);
    std::vector<Tensor> ps;
    for (int i = 0; i < 3; ++i) {
      Tensor g = f.at("clip.g." + std::to_string(i)).clone();
      Tensor p = Tensor::zeros(g.shape());
      p.requires_grad_();
      p.set_grad(g);
      ps.push_back(p);
    }
    ps.push_back(Tensor::zeros({2}));  // no gradient: counts as zero
    const double total = clip_grad_norm(ps, c.max_norm, c.norm_type);
    const double want = f.at(std::string("clip.") + c.name + ".total").item();
    CHECK(total == doctest::Approx(want).epsilon(1e-6));
    for (int i = 0; i < 3; ++i)
      check_close(ps[i].grad(), f.at(std::string("clip.") + c.name + ".g." + std::to_string(i)),
                  1e-6f, c.name);
  }
}

TEST_CASE("clip_grad_norm names the parameter whose gradient is not finite") {
  Tensor a = Tensor::zeros({3}), b = Tensor::zeros({2, 2});
  a.requires_grad_();
  b.requires_grad_();
  a.set_grad(Tensor::ones({3}));
  b.set_grad(Tensor::from_vector({1.0f, NAN, 2.0f, 3.0f}, {2, 2}));
  const NamedTensors named = {{"fc.bias", a}, {"fc.weight", b}};
  const std::string e = error_of([&] { clip_grad_norm(named, 1.0); });
  CHECK(e.find("fc.weight of shape [2, 2]") != std::string::npos);
  CHECK(e.find("nan") != std::string::npos);
  CHECK(values(a.grad()) == std::vector<float>(3, 1.0f));  // nothing changed
  b.set_grad(Tensor::from_vector({1.0f, INFINITY, 2.0f, 3.0f}, {2, 2}));
  CHECK(error_of([&] {
          clip_grad_norm({a, b}, 1.0, kInfNorm);
        }).find("parameter 1 of shape") != std::string::npos);
  // error_if_nonfinite false: scaled as torch does (inf total: coefficient 0).
  CHECK(std::isinf(clip_grad_norm({a, b}, 1.0, 2.0, false)));
  CHECK(values(a.grad()) == std::vector<float>(3, 0.0f));
  CHECK(error_of([&] { clip_grad_norm({a}, 1.0, 0.0); }).find("norm_type") != std::string::npos);
}

TEST_CASE(
    "NonFiniteCheck: a NaN or Inf loss or gradient stops the run naming the step, or is skipped") {
  Tensor a = Tensor::zeros({3}), b = Tensor::zeros({2, 2});
  a.requires_grad_();
  b.requires_grad_();
  const NamedTensors named = {{"fc.bias", a}, {"fc.weight", b}};
  a.set_grad(Tensor::ones({3}));
  b.set_grad(Tensor::ones({2, 2}));
  NonFiniteCheck check;
  CHECK(check.ok(0, 1.5f, named));
  CHECK(first_nonfinite_grad(named).empty());
  CHECK(error_of([&] { check.ok(7, NAN, named); }).find("step 7: the loss is nan") !=
        std::string::npos);
  b.set_grad(Tensor::from_vector({1.0f, 2.0f, -INFINITY, 3.0f}, {2, 2}));
  const std::string e = error_of([&] { check.ok(8, 0.5f, named); });
  CHECK(e.find("step 8: the gradient of fc.weight of shape [2, 2] (its gradient's norm is inf) "
               "is not finite") != std::string::npos);
  CHECK(a.grad().defined());  // an error changes nothing
  // skip: the step's gradients are dropped and counted, the next step goes on.
  check.skip = true;
  CHECK_FALSE(check.ok(8, 0.5f, named));
  CHECK(check.skipped == 1);
  CHECK(check.last_problem.find("fc.weight") != std::string::npos);
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  CHECK_FALSE(check.ok(9, INFINITY, named));
  CHECK(check.skipped == 2);
  CHECK(check.last_problem == "the loss is inf");
  a.set_grad(Tensor::ones({3}));
  CHECK(check.ok(10, 0.25f, named));
  CHECK(check.skipped == 2);
}

TEST_CASE("state_dict round trip resumes bit for bit") {
  const std::string path = REEL_TEST_TMP_DIR "/optim_state.safetensors";
  const std::vector<std::pair<std::string, MakeOptimizer>> makers = {
      {"SGD",
       [](const Params& p) {
         return std::make_unique<SGD>(std::vector<Tensor>{p.w, p.b},
                                      sgd(0.05, 0.9, 0.1, 0.01, false));
       }},
      {"Adam amsgrad",
       [](const Params& p) {
         return std::make_unique<Adam>(std::vector<Tensor>{p.w, p.b}, adam(0.01, 0.1, true));
       }},
      {"AdamW groups", [](const Params& p) {
         AdamWOptions o;
         o.lr = 0.01;
         return std::make_unique<AdamW>(
             weight_decay_groups<AdamOptions>({{"w", p.w}, {"b", p.b}}, o), o);
       }}};
  for (const auto& [name, make] : makers) {
    INFO(name);
    Params whole = fresh_params();
    auto a = make(whole);
    WarmupCosineLR sa(*a, 3, 10, 0.2);
    for (int k = 0; k < 10; ++k) {
      run_steps(*a, whole, k, k + 1, {2});
      sa.step();
    }

    Params first = fresh_params();
    auto b = make(first);
    WarmupCosineLR sb(*b, 3, 10, 0.2);
    for (int k = 0; k < 4; ++k) {
      run_steps(*b, first, k, k + 1, {2});
      sb.step();
    }
    TensorMap saved = b->state_dict();
    for (const auto& [k, v] : sb.state_dict()) saved["scheduler." + k] = v;
    saved["model.w"] = first.w;
    saved["model.b"] = first.b;
    save_safetensors(path, saved);

    // A new process, as it were: fresh parameters, optimizer and schedule, then the state.
    const TensorMap loaded = load_safetensors(path);
    Params resumed = fresh_params();
    resumed.w.detach().copy_(loaded.at("model.w"));
    resumed.b.detach().copy_(loaded.at("model.b"));
    auto c = make(resumed);
    WarmupCosineLR sc(*c, 3, 10, 0.2);
    TensorMap opt_state, sched_state;
    for (const auto& [k, v] : loaded) {
      if (k.rfind("scheduler.", 0) == 0)
        sched_state[k.substr(10)] = v;
      else if (k.rfind("model.", 0) != 0)
        opt_state[k] = v;
    }
    c->load_state_dict(opt_state);
    sc.load_state_dict(sched_state);
    CHECK(sc.last_epoch() == 4);
    for (int k = 4; k < 10; ++k) {
      run_steps(*c, resumed, k, k + 1, {2});
      sc.step();
    }
    CHECK(values(resumed.w) == values(whole.w));
    CHECK(values(resumed.b) == values(whole.b));
    CHECK(c->lr(0) == a->lr(0));
  }
}

TEST_CASE("state_dict keys") {
  Params p = fresh_params();
  Adam opt({p.w, p.b}, adam(0.01));
  run_steps(opt, p, 0, 2, {0, 1});
  const TensorMap s = opt.state_dict();
  std::set<std::string> keys;
  for (const auto& [k, v] : s) keys.insert(k);
  const std::set<std::string> want = {"optimizer.Adam",
                                      "param_groups.0.params",
                                      "param_groups.0.lr",
                                      "param_groups.0.beta1",
                                      "param_groups.0.beta2",
                                      "param_groups.0.eps",
                                      "param_groups.0.amsgrad",
                                      "param_groups.0.weight_decay",
                                      "state.0.exp_avg",
                                      "state.0.exp_avg_sq",
                                      "state.0.step"};
  CHECK(keys == want);
  CHECK(s.at("state.0.step").item() == 2.0f);
  CHECK(values(s.at("param_groups.0.params")) == std::vector<float>{0.0f, 1.0f});
}

TEST_CASE("bad hyper-parameters, groups and states give clear errors") {
  Params p = fresh_params();
  auto has = [](const std::string& e, const std::string& what) {
    INFO(e);
    CHECK(e.find(what) != std::string::npos);
  };
  has(error_of([&] { SGD({p.w}, sgd(-0.1)); }),
      "SGD: parameter group 0: invalid learning rate -0.1");
  has(error_of([&] { SGD({p.w}, sgd(0.1, 0.0, 0.0, 0.0, true)); }), "Nesterov momentum needs");
  has(error_of([&] { SGD({p.w}, sgd(0.1, -0.5)); }), "invalid momentum -0.5");
  {
    AdamOptions o;
    o.beta1 = 1.0;
    has(error_of([&] { Adam({p.w}, o); }), "invalid beta1 1 (must be in [0, 1))");
    o.beta1 = 0.9;
    o.beta2 = -0.1;
    has(error_of([&] { AdamW({p.w}, o); }), "AdamW: parameter group 0: invalid beta2 -0.1");
  }
  has(error_of([&] { SGD(std::vector<Tensor>{}); }), "SGD: got an empty parameter list");
  has(error_of([&] {
        SGD(std::vector<ParamGroup<SGDOptions>>{{{p.w, p.b}, sgd(0.1)}, {{p.w}, sgd(0.1)}});
      }),
      "parameter group 1: parameter 0 of shape [4, 3] appears in more than one parameter group");
  has(error_of([&] { SGD({p.w * 2.0f}); }), "is not a leaf tensor");

  SGD opt(std::vector<ParamGroup<SGDOptions>>{{{p.w}, sgd(0.1)}, {{p.b}, sgd(0.1)}});
  has(error_of([&] { opt.set_lr(2, 0.1); }),
      "SGD: parameter group 2 does not exist (the optimizer has 2 groups)");
  has(error_of([&] { opt.group_params(5); }), "parameter group 5 does not exist");
  has(error_of([&] { opt.set_lr(0, -1.0); }), "invalid learning rate -1");
  // A change through param_groups() is checked at the next step.
  opt.param_groups()[1].options.lr = -0.5;
  p.b.set_grad(Tensor::ones({3}));
  has(error_of([&] { opt.step(); }), "SGD.step: parameter group 1: invalid learning rate -0.5");
  opt.param_groups()[1].options.lr = 0.5;
  opt.add_param_group({Tensor::zeros({2}).requires_grad_()});
  CHECK(opt.num_groups() == 3);
  CHECK(opt.lr(2) == doctest::Approx(1e-3));  // the defaults
  has(error_of([&] { opt.add_param_group({p.b}); }), "appears in more than one parameter group");

  // Schedules.
  has(error_of([&] { StepLR(opt, 0); }), "StepLR: step_size 0 must be > 0");
  has(error_of([&] { MultiStepLR(opt, {3, 2}); }), "milestones must be >= 0 and increasing");
  has(error_of([&] { WarmupCosineLR(opt, 5, 5); }), "needs 0 <= warmup_steps < total_steps");
  {
    OneCycleOptions o;
    o.max_lr = {0.1, 0.2};
    o.total_steps = 10;
    has(error_of([&] { OneCycleLR(opt, o); }), "2 max_lr values for 3 parameter groups");
  }
}

TEST_CASE("load_state_dict refuses another optimizer's state and wrong shapes, changing nothing") {
  Params p = fresh_params();
  SGD sgd_opt({p.w, p.b}, sgd(0.1, 0.9));
  run_steps(sgd_opt, p, 0, 1);
  Adam adam_opt({p.w, p.b}, adam(0.01));
  const std::string e = error_of([&] { adam_opt.load_state_dict(sgd_opt.state_dict()); });
  INFO(e);
  CHECK(e.find("Adam.load_state_dict: the state does not fit") != std::string::npos);
  CHECK(e.find("it is the state of SGD, not of Adam") != std::string::npos);
  CHECK(e.find("missing 'param_groups.0.beta1'") != std::string::npos);
  CHECK(e.find("unexpected key 'state.0.momentum_buffer'") != std::string::npos);

  // Another AdamW state over parameters of other shapes.
  Tensor w2 = Tensor::zeros({3, 4}), b2 = Tensor::zeros({3});
  w2.requires_grad_();
  b2.requires_grad_();
  AdamW other({w2, b2});
  w2.set_grad(Tensor::ones({3, 4}));
  other.step();
  AdamW mine({p.w, p.b}, adam(0.02));
  TensorMap bad = other.state_dict();
  bad["state.7.exp_avg"] = Tensor::zeros({3});
  bad["param_groups.0.beta2"] = Tensor::scalar(1.5f);
  const std::string e2 = error_of([&] { mine.load_state_dict(bad); });
  INFO(e2);
  CHECK(e2.find("'state.0.exp_avg' has shape [3, 4], parameter 0 has shape [4, 3]") !=
        std::string::npos);
  CHECK(e2.find("'state.7.exp_avg' is for parameter 7, but there are only 2 parameters") !=
        std::string::npos);
  CHECK(e2.find("invalid beta2 1.5") != std::string::npos);
  CHECK(mine.lr(0) == doctest::Approx(0.02));  // unchanged
  CHECK(mine.state_dict().count("state.0.exp_avg") == 0);

  // A state with another grouping.
  SGD two(std::vector<ParamGroup<SGDOptions>>{{{p.w}, sgd(0.1)}, {{p.b}, sgd(0.1)}});
  const std::string e3 = error_of([&] { two.load_state_dict(SGD({p.w, p.b}).state_dict()); });
  CHECK(e3.find("'param_groups.0.params' holds 2 parameter indices; group 0 has 1 parameters") !=
        std::string::npos);
  CHECK(e3.find("missing 'param_groups.1.params'") != std::string::npos);
}
