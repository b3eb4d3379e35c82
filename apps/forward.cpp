// `reel forward`: one forward (and, with --grad, one backward) of a model described by a JSON
// file, with weights, input and output in safetensors files: the cross-check for people who
// compare reel with PyTorch. Models: torchvision's ResNet-18 and ResNet-34 (any width) and
// PyTorch's nn.LSTM.
//
//   reel forward --model M.json --weights W.safetensors --input X.safetensors
//                --output Y.safetensors [--train] [--grad] [--device cpu|cuda:0]
//
// Nothing is written unless every step succeeded (the output file appears whole or not at all).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "commands.h"
#include "reel/core/reel.h"
#include "reel/layers/lstm.h"
#include "reel/layers/resnet.h"
#include "reel/layers/vgg.h"
#include "reel/layers/video.h"

namespace reel::apps {

namespace {

struct ForwardArgs {
  std::string model, weights, input, output, device = "cpu";
  bool train = false, grad = false;
};

// The model file's fields, with their names checked: a misspelt key is an error, not a default.
nlohmann::json read_model(const std::string& path) {
  std::ifstream in(path);
  REEL_CHECK(in, "--model " << path << ": cannot open the file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--model " + path + ": not valid JSON (" + e.what() + ")");
  }
  REEL_CHECK(j.is_object() && j.contains("arch") && j["arch"].is_string(),
             "--model " << path << ": expected an object with \"arch\" (a backbone: "
                        << backbone_names() << "; lstm or cnn_lstm)");
  return j;
}

int64_t get_int(const nlohmann::json& j, const std::string& path, const char* key, int64_t def) {
  if (!j.contains(key)) return def;
  REEL_CHECK(j[key].is_number_integer(),
             "--model " << path << ": \"" << key << "\" must be an integer, got " << j[key].dump());
  return j[key].get<int64_t>();
}
bool get_bool(const nlohmann::json& j, const std::string& path, const char* key, bool def) {
  if (!j.contains(key)) return def;
  REEL_CHECK(j[key].is_boolean(), "--model " << path << ": \"" << key
                                             << "\" must be true or false, got " << j[key].dump());
  return j[key].get<bool>();
}

std::string get_string(const nlohmann::json& j, const std::string& path, const char* key,
                       const std::string& def) {
  if (!j.contains(key)) return def;
  REEL_CHECK(j[key].is_string(),
             "--model " << path << ": \"" << key << "\" must be a string, got " << j[key].dump());
  return j[key].get<std::string>();
}

// "dropout": the VGG classifier's Dropout probability (0 for a deterministic comparison).
float get_dropout(const nlohmann::json& j, const std::string& path, float def) {
  if (!j.contains("dropout")) return def;
  REEL_CHECK(j["dropout"].is_number(),
             "--model " << path << ": \"dropout\" must be a number, got " << j["dropout"].dump());
  return j["dropout"].get<float>();
}

void check_keys(const nlohmann::json& j, const std::string& path, const std::set<std::string>& ok) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (ok.count(it.key())) continue;
    std::string list;
    for (const auto& k : ok) list += (list.empty() ? "" : ", ") + k;
    throw Error("--model " + path + ": unknown key \"" + it.key() + "\" for " +
                j["arch"].get<std::string>() + " (expected " + list + ")");
  }
}

// "lengths": [B] valid steps per sequence (as pack_padded_sequence's), stored as numbers.
std::vector<int64_t> lengths_of(const TensorMap& in, const std::string& file) {
  std::vector<int64_t> lengths;
  if (!in.count("lengths")) return lengths;
  for (float v : in.at("lengths").to_vector()) {
    REEL_CHECK(v == static_cast<float>(static_cast<int64_t>(v)),
               "--input " << file << ": \"lengths\" holds " << v << ", not a whole number");
    lengths.push_back(static_cast<int64_t>(v));
  }
  return lengths;
}

Tensor find(const TensorMap& m, const std::string& file, const std::string& key) {
  auto it = m.find(key);
  REEL_CHECK(it != m.end(), "--input " << file << ": no tensor named \"" << key << "\"");
  return it->second;
}

int run_forward(const ForwardArgs& a) {
  const nlohmann::json spec = read_model(a.model);
  const std::string arch = spec["arch"].get<std::string>();
  const Device dev = Device::parse(a.device);
  std::shared_ptr<Module> model;
  std::shared_ptr<Backbone> backbone;  // a ResNet or a VGG
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<VideoClassifier> video;
  if (arch == "resnet18" || arch == "resnet34") {
    check_keys(spec, a.model, {"arch", "num_classes", "width", "in_channels"});
    ResNetOptions o;
    o.depth = arch == "resnet18" ? 18 : 34;
    o.num_classes = get_int(spec, a.model, "num_classes", 1000);
    o.width = get_int(spec, a.model, "width", 64);
    o.in_channels = get_int(spec, a.model, "in_channels", 3);
    model = backbone = std::make_shared<ResNet>(o);
  } else if (arch.rfind("vgg", 0) == 0 &&
             std::count(backbones().begin(), backbones().end(), arch)) {
    check_keys(spec, a.model, {"arch", "num_classes", "width", "dropout"});
    VGGOptions o;
    o.depth = std::stoi(arch.substr(3, 2));
    o.batch_norm = arch.size() > 5;
    o.num_classes = get_int(spec, a.model, "num_classes", 1000);
    o.width = get_int(spec, a.model, "width", 64);
    o.dropout = get_dropout(spec, a.model, o.dropout);
    try {
      model = backbone = std::make_shared<VGG>(o);
    } catch (const Error& e) {
      throw Error("--model " + a.model + ": " + e.what());
    }
  } else if (arch == "lstm") {
    check_keys(spec, a.model,
               {"arch", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                "bidirectional"});
    LSTMOptions o;
    o.input_size = get_int(spec, a.model, "input_size", 0);
    o.hidden_size = get_int(spec, a.model, "hidden_size", 0);
    o.num_layers = get_int(spec, a.model, "num_layers", 1);
    o.bias = get_bool(spec, a.model, "bias", true);
    o.batch_first = get_bool(spec, a.model, "batch_first", false);
    o.bidirectional = get_bool(spec, a.model, "bidirectional", false);
    model = lstm = std::make_shared<LSTM>(o);
  } else if (arch == "cnn_lstm") {
    check_keys(spec, a.model,
               {"arch", "backbone", "width", "feature_dim", "hidden_size", "num_layers",
                "num_classes", "fusion", "dropout"});
    VideoClassifierOptions o;
    o.backbone = get_string(spec, a.model, "backbone", o.backbone);
    o.width = get_int(spec, a.model, "width", o.width);
    o.feature_dim = get_int(spec, a.model, "feature_dim", o.feature_dim);
    o.hidden_size = get_int(spec, a.model, "hidden_size", o.hidden_size);
    o.num_layers = get_int(spec, a.model, "num_layers", o.num_layers);
    o.num_classes = get_int(spec, a.model, "num_classes", o.num_classes);
    try {
      o.fusion = parse_fusion(get_string(spec, a.model, "fusion", "last"));
      model = video = std::make_shared<VideoClassifier>(o);
      if (spec.contains("dropout")) {
        VGG* vgg = dynamic_cast<VGG*>(&video->cnn());
        REEL_CHECK(vgg, "\"dropout\" is the VGG classifier's; " << o.backbone << " has none");
        vgg->set_dropout(get_dropout(spec, a.model, 0.5f));
      }
    } catch (const Error& e) {
      throw Error("--model " + a.model + ": " + e.what());
    }
  } else {
    throw Error("--model " + a.model + ": unknown arch \"" + arch + "\" (expected " +
                backbone_names() + ", lstm or cnn_lstm)");
  }
  try {
    model->load_state_dict(load_safetensors(a.weights));
  } catch (const Error& e) {
    throw Error("--weights " + a.weights + ": " + e.what());
  }
  model->to(dev);
  model->train(a.train);

  const TensorMap in = load_safetensors(a.input, dev);
  // Every tensor of the input file must mean something for this model: a misspelt
  // "grad_hn" would otherwise drop its term from the gradients without a word.
  const std::set<std::string> known =
      backbone ? std::set<std::string>{"input", "grad_output"}
      : video  ? std::set<std::string>{"input", "lengths", "grad_output"}
               : std::set<std::string>{"input",       "h0",       "c0",      "lengths",
                                       "grad_output", "grad_h_n", "grad_c_n"};
  for (const auto& [k, t] : in) {
    if (known.count(k)) continue;
    std::string list;
    for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
    throw Error("--input " + a.input + ": unknown tensor \"" + k + "\" for " + arch +
                " (expected " + list + ")");
  }
  Tensor x = find(in, a.input, "input");
  if (a.grad) x.requires_grad_();
  TensorMap out;
  std::vector<std::pair<Tensor, std::string>> heads;  // (output, the key of its gradient)
  Tensor h0, c0;                                      // the LSTM's initial state, if given
  {
    std::unique_ptr<NoGradGuard> no_grad(a.grad ? nullptr : new NoGradGuard());
    if (backbone) {
      Tensor y = backbone->forward(x);
      out["output"] = y;
      heads.push_back({y, "grad_output"});
    } else if (video) {
      Tensor y = video->forward(x, lengths_of(in, a.input));
      out["output"] = y;
      heads.push_back({y, "grad_output"});
    } else {
      REEL_CHECK(in.count("h0") == in.count("c0"),
                 "--input " << a.input << ": give \"h0\" and \"c0\" together, or neither");
      if (in.count("h0")) {
        h0 = in.at("h0");
        c0 = in.at("c0");
        if (a.grad) {
          h0.requires_grad_();
          c0.requires_grad_();
        }
      }
      const LstmOutput y = lstm->forward(x, lengths_of(in, a.input), h0, c0);
      out["output"] = y.output;
      out["h_n"] = y.h_n;
      out["c_n"] = y.c_n;
      heads = {{y.output, "grad_output"}, {y.h_n, "grad_h_n"}, {y.c_n, "grad_c_n"}};
    }
  }
  if (a.grad) {
    // d(sum of output * grad_output over the given heads) by one backward through all of them.
    Tensor loss;
    for (const auto& [y, key] : heads) {
      if (!in.count(key)) {
        REEL_CHECK(key != "grad_output",
                   "--input " << a.input << ": --grad needs a tensor named \"grad_output\"");
        continue;
      }
      const Tensor& g = in.at(key);
      REEL_CHECK(g.shape() == y.shape(), "--input " << a.input << ": \"" << key << "\" is "
                                                    << shape_str(g.shape()) << " but the output is "
                                                    << shape_str(y.shape()));
      Tensor term = sum(y * g);
      loss = loss.defined() ? loss + term : term;
    }
    loss.backward();
    out["grad.input"] = x.grad();
    if (h0.defined()) {
      out["grad.h0"] = h0.grad();
      out["grad.c0"] = c0.grad();
    }
    for (const auto& [name, p] : model->named_parameters())
      if (p.grad().defined()) out["grad." + name] = p.grad();
  }
  if (a.train)
    for (const auto& [name, b] : model->named_buffers()) out[name] = b;
  for (auto& [k, t] : out) t = t.detach();
  save_safetensors(a.output, out, {{"reel", "forward"}, {"arch", arch}});
  std::printf("reel forward: %s%s on %s, input %s -> output %s; wrote %zu tensors to %s\n",
              arch.c_str(), a.train ? " (training mode)" : "", dev.str().c_str(),
              shape_str(x.shape()).c_str(), shape_str(out["output"].shape()).c_str(), out.size(),
              a.output.c_str());
  return 0;
}

}  // namespace

Command add_forward(CLI::App& app) {
  auto a = std::make_shared<ForwardArgs>();
  CLI::App* sub = app.add_subcommand(
      "forward", "run a model on a safetensors input and write its output (and gradients)");
  sub->add_option("--model", a->model,
                  "JSON model description, e.g. {\"arch\": \"resnet18\", \"num_classes\": 10, "
                  "\"width\": 64}")
      ->required();
  sub->add_option("--weights", a->weights, "safetensors file of the model's state_dict")
      ->required();
  sub->add_option("--input", a->input,
                  "safetensors file with a tensor \"input\" (and \"grad_output\" for --grad)")
      ->required();
  sub->add_option("--output", a->output, "safetensors file to write")->required();
  sub->add_flag("--train", a->train,
                "training mode (batch statistics; writes the updated buffers)");
  sub->add_flag("--grad", a->grad,
                "also write the gradients of sum(output * grad_output): grad.input, grad.<param>");
  sub->add_option("--device", a->device, "cpu or cuda:N");
  return [a] { return run_forward(*a); };
}

}  // namespace reel::apps
