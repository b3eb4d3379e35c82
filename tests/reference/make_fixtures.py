#!/usr/bin/env python3
"""Makes ops.safetensors, lstm.safetensors and cnn.safetensors: inputs, outputs and gradients of
every differentiable op of reel's core, of nn.LSTM, and of the CNN layers (conv2d, batch_norm,
max_pool2d, adaptive_avg_pool2d) and a narrow torchvision ResNet-18/34, optim.safetensors:
torch.optim's updates, schedules and gradient clipping, video.safetensors: the CNN-LSTM video
classifier with each of its five fusions, and vgg.safetensors: narrow torchvision VGGs and the
classifier on a VGG backbone (keys above their parts), computed by PyTorch
in float64 and stored as float32 (int64 buffers as I64). tests/core/test_reference.cpp and the layer
tests run the same ops in reel on the same inputs and compare. reel itself never needs Python;
run this only to change the fixtures:

    pip install torch torchvision && python3 tests/reference/make_fixtures.py

Each part has its own seed, so adding one leaves the others' bytes as they were. The keys of
lstm.safetensors, cnn.safetensors, optim.safetensors and video.safetensors are described above
their parts below.

Keys of ops.safetensors: "<case>.in<i>" inputs, "<case>.gout" the upstream gradient, "<case>.out" the output and
"<case>.grad<i>" d(sum(out * gout))/d(in<i>). Cross-entropy targets are "<case>.targets".
"""
import json
import os
import struct

import torch

torch.manual_seed(0)
F = torch.nn.functional
tensors = {}


def rand(*shape, positive=False):
    x = torch.randn(*shape, dtype=torch.float64)
    return x.abs() + 0.5 if positive else x


def case(name, fn, *inputs, extra=None):
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    gout = torch.randn(out.shape, dtype=torch.float64)
    out.backward(gout)
    for i, x in enumerate(leaves):
        tensors[f"{name}.in{i}"] = x.detach()
        tensors[f"{name}.grad{i}"] = x.grad
    tensors[f"{name}.gout"] = gout
    tensors[f"{name}.out"] = out.detach()
    for k, v in (extra or {}).items():
        tensors[f"{name}.{k}"] = v


case("add", lambda a, b: a + b, rand(3, 4), rand(4))
case("sub", lambda a, b: a - b, rand(3, 4), rand(3, 1))
case("mul", lambda a, b: a * b, rand(2, 3, 4), rand(()))
case("div", lambda a, b: a / b, rand(3, 4), rand(3, 4, positive=True))
case("div_bcast", lambda a, b: a / b, rand(2, 1, 4), rand(3, 1, positive=True))
case("neg", lambda x: -x, rand(4, 5))
case("exp", torch.exp, rand(4, 5))
case("log", torch.log, rand(4, 5, positive=True))
case("tanh", torch.tanh, rand(4, 5))
case("sigmoid", torch.sigmoid, rand(4, 5))
case("relu", torch.relu, rand(4, 5))
case("matmul", torch.matmul, rand(5, 7), rand(7, 3))
case("bmm", torch.matmul, rand(2, 5, 7), rand(2, 7, 3))
case("matmul_3x2", torch.matmul, rand(2, 5, 7), rand(7, 3))
case("matmul_2x3", torch.matmul, rand(5, 7), rand(2, 7, 3))
case("transpose", lambda x: x.transpose(0, 1).contiguous(), rand(3, 5))
case("permute", lambda x: x.permute(2, 0, 1).contiguous(), rand(2, 3, 4))
case("reshape", lambda x: x.reshape(4, -1) * 2.0, rand(2, 6))
case("sum_02", lambda x: x.sum(dim=(0, 2)), rand(2, 3, 4))
case("mean_1_keep", lambda x: x.mean(dim=1, keepdim=True), rand(2, 3, 4))
case("mean_all", lambda x: x.mean(), rand(2, 3, 4))
case("softmax_1", lambda x: torch.softmax(x, 1), rand(3, 5))
case("softmax_0", lambda x: torch.softmax(x, 0), rand(2, 3, 4))
case("log_softmax_2", lambda x: torch.log_softmax(x, 2), rand(2, 3, 4))
case("concat", lambda a, b: torch.cat([a, b, a], 1), rand(2, 3), rand(2, 2))
case("stack", lambda a, b: torch.stack([a, b], 1), rand(2, 3), rand(2, 3))
case("slice", lambda x: x[:, 1:5:2], rand(3, 6))
targets = torch.tensor([0, 4, 2, -100, 1, 3])
case("cross_entropy", lambda x: F.cross_entropy(x, targets), rand(6, 5),
     extra={"targets": targets.double()})
case("cross_entropy_smooth", lambda x: F.cross_entropy(x, targets, label_smoothing=0.1),
     rand(6, 5), extra={"targets": targets.double()})
case("mlp", lambda x, w1, b1, w2: F.cross_entropy(torch.tanh(x @ w1 + b1) @ w2, targets[:3].abs()),
     rand(3, 4), rand(4, 6), rand(6), rand(6, 5), extra={"targets": targets[:3].abs().double()})
case("linear", F.linear, rand(2, 3, 4), rand(5, 4), rand(5))
case("linear_nobias", F.linear, rand(3, 4), rand(2, 4))

def write(path, tensors):
    """safetensors, written by hand so that only torch is needed: int64 tensors as I64, the rest F32."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        dtype = "I64" if t.dtype == torch.int64 else "F32"
        data = t.to(torch.int64 if dtype == "I64" else torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"torch": torch.__version__}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"wrote {len(tensors)} tensors to {path}")


here = os.path.dirname(os.path.abspath(__file__))
write(os.path.join(here, "ops.safetensors"), tensors)

# ---- lstm.safetensors: nn.LSTM in float64 on the cases tests/layers/test_lstm.cpp runs. Keys:
# "<case>.input" [B, T, D] (batch first), "<case>.h0"/"<case>.c0" when given, "<case>.lengths"
# when given (through pack_padded_sequence, unsorted), "<case>.p.<parameter>", the outputs
# "<case>.output", "<case>.h_n", "<case>.c_n", the upstream gradients "<case>.g_output",
# "<case>.g_h_n", "<case>.g_c_n", and "<case>.grad.<input|h0|c0|parameter>".
lstm = {}


def lstm_case(name, D, H, L, B, T, bidirectional=False, bias=True, state=False, lengths=None):
    m = torch.nn.LSTM(D, H, num_layers=L, bias=bias, batch_first=True,
                      bidirectional=bidirectional).double()
    dirs = 2 if bidirectional else 1
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(L * dirs, B, H, dtype=torch.float64, requires_grad=True) if state else None
    c0 = torch.randn(L * dirs, B, H, dtype=torch.float64, requires_grad=True) if state else None
    hx = (h0, c0) if state else None
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         batch_first=True, enforce_sorted=False)
        out, (hn, cn) = m(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        lstm[f"{name}.lengths"] = torch.tensor(lengths, dtype=torch.float64)
    else:
        out, (hn, cn) = m(x, hx)
    go, gh, gc = (torch.randn_like(t) for t in (out, hn, cn))
    ((out * go).sum() + (hn * gh).sum() + (cn * gc).sum()).backward()
    lstm[f"{name}.input"] = x.detach()
    lstm[f"{name}.grad.input"] = x.grad
    if state:
        lstm[f"{name}.h0"], lstm[f"{name}.c0"] = h0.detach(), c0.detach()
        lstm[f"{name}.grad.h0"], lstm[f"{name}.grad.c0"] = h0.grad, c0.grad
    for k, p in m.named_parameters():
        lstm[f"{name}.p.{k}"] = p.detach()
        lstm[f"{name}.grad.{k}"] = p.grad
    for k, v in (("output", out), ("h_n", hn), ("c_n", cn)):
        lstm[f"{name}.{k}"] = v.detach()
    lstm[f"{name}.g_output"], lstm[f"{name}.g_h_n"], lstm[f"{name}.g_c_n"] = go, gh, gc


torch.manual_seed(1)
lstm_case("one_layer", D=5, H=7, L=1, B=3, T=4)
lstm_case("two_layers_state_T33", D=6, H=5, L=2, B=2, T=33, state=True)
lstm_case("bidirectional_T1", D=3, H=4, L=1, B=3, T=1, bidirectional=True)
lstm_case("bidirectional_two_layers_lengths", D=4, H=3, L=2, B=4, T=6, bidirectional=True,
          state=True, lengths=[6, 2, 4, 1])
lstm_case("lengths", D=3, H=5, L=1, B=3, T=5, lengths=[3, 5, 1])
lstm_case("no_bias", D=4, H=3, L=1, B=2, T=3, bias=False)
write(os.path.join(here, "lstm.safetensors"), lstm)

# ---- cnn.safetensors: the CNN layers of tests/layers (conv, batch norm, pooling) and a narrow
# torchvision ResNet-18/34, in float64 from their own seed, so the two files above do not move.
# Every input is first rounded to float32, so the stored float32 values are exactly what was run.
# Keys (all f"<prefix>.<name>." + ...):
#   conv.<case>.    x, w, b (bias cases), config [sh, sw, ph, pw, dh, dw], out, gout, grad.x/w/b
#   bn.<case>.      x, weight, bias, running_mean_in, running_var_in, config [training, momentum,
#                   eps], out, gout, grad.x/weight/bias, running_mean_out, running_var_out
#   maxpool.<case>. x, config [kh, kw, sh, sw, ph, pw], out, gout, grad.x
#   avgpool.<case>. x, config [P, Q] (adaptive), out, gout, grad.x
#   resnet18.       p.<state_dict name> (num_batches_tracked as I64); for <mode> in eval, train:
#                   <mode>.input, .output, .grad_output, .grad.input, .grad.<parameter>, and for
#                   train .buffers.<BN buffer> after the one forward; eval_nonsquare.input/.output
#   resnet34.       p.<state_dict name>, eval.input, eval.output
# gout/grad_output is the upstream gradient; grad.* are d(sum(out * gout))/d(*).
cnn = {}


def f32(x):
    return x.to(torch.float32).to(torch.float64)


def grads_of(name, fn, inputs, extra):
    """Runs fn on float32-rounded leaves; stores inputs, out, gout and grad.<input name>."""
    leaves = {k: f32(v).requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves)
    gout = f32(torch.randn(out.shape, dtype=torch.float64))
    out.backward(gout)
    for k, v in leaves.items():
        cnn[f"{name}.{k}"] = v.detach()
        cnn[f"{name}.grad.{k}"] = v.grad
    cnn[f"{name}.out"], cnn[f"{name}.gout"] = out.detach(), gout
    for k, v in extra.items():
        cnn[f"{name}.{k}"] = v


def pair(v):
    return (v, v) if isinstance(v, int) else v


def conv_case(name, N, C, H, W, K, kernel, stride=1, pad=0, dilation=1, bias=True):
    (R, S), stride, pad, dilation = pair(kernel), pair(stride), pair(pad), pair(dilation)
    inputs = {"x": torch.randn(N, C, H, W, dtype=torch.float64),
              "w": torch.randn(K, C, R, S, dtype=torch.float64) / (C * R * S) ** 0.5}
    if bias:
        inputs["b"] = torch.randn(K, dtype=torch.float64)
    config = torch.tensor([*stride, *pad, *dilation], dtype=torch.float64)
    grads_of(f"conv.{name}", lambda x, w, b=None: F.conv2d(x, w, b, stride, pad, dilation), inputs,
             {"config": config})


def bn_case(name, N, C, H, W, training, offset=0.0, momentum=0.1, eps=1e-5):
    x = offset + torch.randn(N, C, H, W, dtype=torch.float64) * (0.5 + torch.rand(C, 1, 1, dtype=torch.float64))
    weight = 1 + 0.2 * torch.randn(C, dtype=torch.float64)
    bias = 0.2 * torch.randn(C, dtype=torch.float64)
    mean_in = f32(offset + 0.3 * torch.randn(C, dtype=torch.float64))
    var_in = f32(0.5 + torch.rand(C, dtype=torch.float64))
    mean, var = mean_in.clone(), var_in.clone()
    grads_of(f"bn.{name}", lambda x, weight, bias: F.batch_norm(x, mean, var, weight, bias, training,
                                                                momentum, eps),
             {"x": x, "weight": weight, "bias": bias},
             {"running_mean_in": mean_in, "running_var_in": var_in,
              "config": torch.tensor([float(training), momentum, eps], dtype=torch.float64)})
    cnn[f"bn.{name}.running_mean_out"], cnn[f"bn.{name}.running_var_out"] = mean, var


def maxpool_case(name, N, C, H, W, kernel, stride, pad):
    kernel, stride, pad = pair(kernel), pair(stride), pair(pad)
    # distinct values, also after rounding to float32: no ties for the arg max to break
    x = (torch.randperm(N * C * H * W, dtype=torch.float64) - N * C * H * W / 2).reshape(N, C, H, W) / 16
    grads_of(f"maxpool.{name}", lambda x: F.max_pool2d(x, kernel, stride, pad), {"x": x},
             {"config": torch.tensor([*kernel, *stride, *pad], dtype=torch.float64)})


def avgpool_case(name, N, C, H, W, P, Q):
    grads_of(f"avgpool.{name}", lambda x: F.adaptive_avg_pool2d(x, (P, Q)),
             {"x": torch.randn(N, C, H, W, dtype=torch.float64)},
             {"config": torch.tensor([P, Q], dtype=torch.float64)})


torch.manual_seed(2)
conv_case("basic", 2, 3, 9, 7, K=5, kernel=3, pad=1)
conv_case("stride2_nobias", 2, 4, 10, 11, K=6, kernel=3, stride=2, pad=1, bias=False)
conv_case("stem", 1, 3, 20, 18, K=4, kernel=7, stride=2, pad=3, bias=False)
conv_case("dilated_rect", 2, 3, 11, 9, K=2, kernel=(3, 2), stride=(2, 1), pad=(1, 0), dilation=(2, 1))
conv_case("pointwise_s2", 2, 6, 8, 8, K=4, kernel=1, stride=2, bias=False)
conv_case("valid", 1, 2, 5, 5, K=3, kernel=5)
bn_case("train", 4, 3, 5, 6, training=True)
bn_case("eval", 4, 3, 5, 6, training=False)
bn_case("train_small", 2, 5, 1, 1, training=True)
bn_case("train_offset", 3, 2, 4, 4, training=True, offset=1000.0)
maxpool_case("resnet", 2, 3, 9, 10, kernel=3, stride=2, pad=1)
maxpool_case("k2s2", 1, 2, 6, 7, kernel=2, stride=2, pad=0)
maxpool_case("rect", 1, 2, 7, 8, kernel=(3, 2), stride=(1, 2), pad=(1, 1))
avgpool_case("global", 2, 3, 7, 5, 1, 1)
avgpool_case("overlap", 1, 2, 7, 5, 3, 2)
avgpool_case("up", 1, 2, 2, 2, 3, 3)
avgpool_case("same", 1, 1, 4, 4, 4, 4)

import torchvision  # noqa: E402  (only this part needs it)
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402


class NarrowResNet(ResNet):
    """torchvision's ResNet with BasicBlocks of widths w, 2w, 4w, 8w instead of 64..512: the same
    modules, names, forward and initialisation; only the widths differ."""

    def __init__(self, layers, width, num_classes):
        torch.nn.Module.__init__(self)
        nn = torch.nn
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, width, layers[0])
        self.layer2 = self._make_layer(BasicBlock, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def nontrivial_bn_f32(m):
    """Gives every BatchNorm2d of m random affine parameters and running statistics (so that BN is
    not the identity) and rounds every floating-point tensor of m's state to float32."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                C = mod.num_features
                mod.weight.copy_(1 + 0.2 * torch.randn(C, dtype=torch.float64))
                mod.bias.copy_(0.2 * torch.randn(C, dtype=torch.float64))
                mod.running_mean.copy_(0.2 * torch.randn(C, dtype=torch.float64))
                mod.running_var.copy_(0.5 + torch.rand(C, dtype=torch.float64))
                mod.num_batches_tracked.fill_(3)
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(f32(t))


def narrow_resnet(name, layers, reference, width=8):
    m = NarrowResNet(layers, width, num_classes=10).double()
    assert list(m.state_dict()) == list(reference(num_classes=10).state_dict()), name
    nontrivial_bn_f32(m)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    for k, v in state.items():
        cnn[f"{name}.p.{k}"] = v
    return m, state


def resnet_eval(m, name, *shape):
    m.eval()
    x = f32(torch.randn(*shape, dtype=torch.float64))
    with torch.no_grad():
        cnn[f"{name}.input"], cnn[f"{name}.output"] = x, m(x)


def modes_case(m, state, store, name):
    """For mode in eval, train, from `state`: a [2, 3, 32, 32] input, the output, an upstream
    gradient and every gradient, and in train mode the buffers after the forward, into store
    under <name>.<mode>.*."""
    for mode in ("eval", "train"):
        m.load_state_dict(state)
        m.zero_grad(set_to_none=True)
        m.train(mode == "train")
        x = f32(torch.randn(2, 3, 32, 32, dtype=torch.float64)).requires_grad_(True)
        out = m(x)
        gout = f32(torch.randn(out.shape, dtype=torch.float64))
        out.backward(gout)
        p = f"{name}.{mode}"
        store[f"{p}.input"], store[f"{p}.output"] = x.detach(), out.detach()
        store[f"{p}.grad_output"], store[f"{p}.grad.input"] = gout, x.grad
        for k, v in m.named_parameters():
            store[f"{p}.grad.{k}"] = v.grad
        if mode == "train":
            for k, v in m.named_buffers():
                store[f"{p}.buffers.{k}"] = v.clone()


torch.manual_seed(3)
m, state = narrow_resnet("resnet18", [2, 2, 2, 2], torchvision.models.resnet18)
modes_case(m, state, cnn, "resnet18")
m.load_state_dict(state)
resnet_eval(m, "resnet18.eval_nonsquare", 1, 3, 40, 56)
m, _ = narrow_resnet("resnet34", [3, 4, 6, 3], torchvision.models.resnet34)
resnet_eval(m, "resnet34.eval", 1, 3, 32, 32)
write(os.path.join(here, "cnn.safetensors"), cnn)

# ---- optim.safetensors: torch.optim's optimizers, learning-rate schedules and gradient
# clipping, for tests/optim/test_optim.cpp, in float64 from their own seed. Every input is
# rounded to float32 first. Keys:
#   param.w [4, 3], param.b [3]      the parameters before the first step
#   grad.<k>.w, grad.<k>.b           the gradients of step k (0 to 9); the case "adam_skip" gives
#                                    b no gradient at steps 3 and 6
#   <case>.w, <case>.b               the parameters after ten steps of the case's optimizer
#   sched.<case>.lr [N + 1]          get_last_lr()[0] after the constructor and after each of N
#                                    steps; sched.<case>.momentum alike (the group's momentum or
#                                    beta1) for OneCycleLR
#   clip.g.<i>                       three gradients; clip.<case>.total (0-d) the total norm and
#                                    clip.<case>.g.<i> the gradients after clip_grad_norm_
optim = {}
torch.manual_seed(4)
opt_init = {"w": f32(torch.randn(4, 3, dtype=torch.float64)),
            "b": f32(torch.randn(3, dtype=torch.float64))}
opt_grads = [{k: f32(torch.randn(v.shape, dtype=torch.float64)) for k, v in opt_init.items()}
             for _ in range(10)]
for k, v in opt_init.items():
    optim[f"param.{k}"] = v
for step, g in enumerate(opt_grads):
    for k, v in g.items():
        optim[f"grad.{step}.{k}"] = v


def optim_case(name, make, skip=()):
    """Ten steps of make(w, b) on the stored gradients; skip: (step, param) pairs with no grad."""
    w, b = (opt_init[k].clone().requires_grad_(True) for k in ("w", "b"))
    opt = make(w, b)
    for step, g in enumerate(opt_grads):
        w.grad, b.grad = g["w"].clone(), g["b"].clone()
        if (step, "b") in skip:
            b.grad = None
        opt.step()
    optim[f"{name}.w"], optim[f"{name}.b"] = w.detach().clone(), b.detach().clone()


SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
optim_case("sgd_plain", lambda w, b: SGD([w, b], lr=0.1))
optim_case("sgd_momentum", lambda w, b: SGD([w, b], lr=0.05, momentum=0.9, dampening=0.1,
                                            weight_decay=0.01))
optim_case("sgd_nesterov", lambda w, b: SGD([w, b], lr=0.05, momentum=0.8, nesterov=True,
                                            weight_decay=0.001))
optim_case("adam_wd", lambda w, b: Adam([w, b], lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                        weight_decay=0.1))
optim_case("adam_amsgrad", lambda w, b: Adam([w, b], lr=0.02, amsgrad=True))
optim_case("adam_skip", lambda w, b: Adam([w, b], lr=0.01), skip={(3, "b"), (6, "b")})
optim_case("adamw", lambda w, b: AdamW([w, b], lr=0.01, weight_decay=0.1))
optim_case("sgd_groups", lambda w, b: SGD([{"params": [w], "lr": 0.05, "weight_decay": 0.01},
                                           {"params": [b]}], lr=0.1, momentum=0.9))
optim_case("adamw_groups", lambda w, b: AdamW([{"params": [w], "weight_decay": 0.1},
                                               {"params": [b], "lr": 0.001, "weight_decay": 0.0}],
                                              lr=0.01))


def sched_case(name, steps, make_opt, make_sched):
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = make_opt([p])
    sched = make_sched(opt)
    group = opt.param_groups[0]

    def momentum():
        return group["betas"][0] if "betas" in group else group["momentum"]

    lrs, moms = [sched.get_last_lr()[0]], [momentum()]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        moms.append(momentum())
    optim[f"sched.{name}.lr"] = torch.tensor(lrs, dtype=torch.float64)
    optim[f"sched.{name}.momentum"] = torch.tensor(moms, dtype=torch.float64)


LR = torch.optim.lr_scheduler
sched_case("step", 12, lambda p: SGD(p, lr=0.1), lambda o: LR.StepLR(o, step_size=3, gamma=0.5))
sched_case("multistep", 12, lambda p: SGD(p, lr=0.1),
           lambda o: LR.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3))
sched_case("warmup_cosine", 20, lambda p: SGD(p, lr=0.1),
           lambda o: LR.SequentialLR(o, [LR.LinearLR(o, start_factor=0.1, total_iters=4),
                                         LR.CosineAnnealingLR(o, T_max=16, eta_min=1e-4)],
                                     milestones=[4]))
sched_case("onecycle_sgd", 20, lambda p: SGD(p, lr=0.1, momentum=0.9),
           lambda o: LR.OneCycleLR(o, max_lr=0.1, total_steps=20))
sched_case("onecycle_adam_three_phase", 20, lambda p: Adam(p, lr=0.01),
           lambda o: LR.OneCycleLR(o, max_lr=0.01, total_steps=20, three_phase=True))

clip_in = [f32(torch.randn(*s, dtype=torch.float64)) for s in ((4, 3), (3,), (2, 2, 2))]
for i, g in enumerate(clip_in):
    optim[f"clip.g.{i}"] = g
for name, max_norm, norm_type in (("l2", 1.0, 2.0), ("l2_unclipped", 100.0, 2.0),
                                  ("l1", 2.0, 1.0), ("inf", 0.5, float("inf")),
                                  ("l3", 1.0, 3.0)):
    ps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in clip_in]
    for p, g in zip(ps, clip_in):
        p.grad = g.clone()
    optim[f"clip.{name}.total"] = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    for i, p in enumerate(ps):
        optim[f"clip.{name}.g.{i}"] = p.grad
write(os.path.join(here, "optim.safetensors"), optim)

# ---- video.safetensors: reel's CNN-LSTM video classifier (a narrow ResNet-18 per frame, an LSTM
# over the frames, a linear head) with each fusion of the frame features, in float64 from its own
# seed, for the video model's tests. Width 4, feature dim 12, hidden 10, 2 LSTM layers, 5 classes;
# input [B=3, T=4, 3, 32, 32] with lengths [4, 2, 3]; every input and parameter rounded to
# float32 first. All five fusions share one CNN state and one input; each has its own LSTM,
# attention and head parameters. Keys:
#   video.input [3, 4, 3, 32, 32], video.lengths [3] (as float)
#   video.p.cnn.<cnn state_dict name>    the shared CNN (cnn.fc included; num_batches_tracked as I64)
#   <fusion>.p.<name>                    for fusion in last, mean, concat, attention, pool: the
#                                        parameters that are not the CNN's (lstm.*, attention.*, fc.*)
#   <fusion>.output [3, 5], <fusion>.grad_output [3, 5], <fusion>.grad.input [3, 4, 3, 32, 32],
#   <fusion>.grad.<parameter>            every parameter, cnn.* included, after one train-mode
#                                        forward from the state above (all B*T frames through the
#                                        CNN, so BN's batch statistics include the padded frames)
#   <fusion>.buffers.<BN buffer>         cnn.*.running_mean/running_var/num_batches_tracked after it
#   last_eval.lengths [3] (all 4), last_eval.output, last_eval.grad_output, last_eval.grad.input
#                                        the state of "last" in eval mode, on video.input
# grad_output is the upstream gradient; grad.* are d(sum(output * grad_output))/d(*).
video = {}


def video_cnn(width, feature_dim):
    cnn_net = NarrowResNet([2, 2, 2, 2], width, num_classes=10)
    cnn_net.fc = torch.nn.Linear(8 * width, feature_dim)
    return cnn_net


class CnnLstm(torch.nn.Module):
    """The PyTorch twin of reel's CNN-LSTM video classifier; fusion: last, mean, concat,
    attention or pool (no LSTM: the mean of the valid frames' features)."""

    def __init__(self, width, feature_dim, hidden, num_layers, num_classes, fusion):
        super().__init__()
        self.fusion, self.feature_dim = fusion, feature_dim
        self.cnn = video_cnn(width, feature_dim)
        if fusion != "pool":
            self.lstm = torch.nn.LSTM(feature_dim, hidden, num_layers, batch_first=True)
        if fusion == "attention":
            self.attention = torch.nn.Linear(hidden, 1)
        head_in = {"last": hidden, "mean": hidden, "attention": hidden,
                   "concat": feature_dim + hidden, "pool": feature_dim}[fusion]
        self.fc = torch.nn.Linear(head_in, num_classes)

    def forward(self, x, lengths):  # x [B, T, 3, S, S], lengths int64 [B] in 1..T
        B, T = x.shape[:2]
        feats = self.cnn(x.flatten(0, 1)).view(B, T, self.feature_dim)  # padded frames too
        mask = torch.arange(T)[None, :] < lengths[:, None]  # [B, T] valid steps
        mean_feat = (feats * mask[..., None]).sum(1) / lengths[:, None]
        if self.fusion == "pool":
            return self.fc(mean_feat)
        packed = torch.nn.utils.rnn.pack_padded_sequence(feats, lengths, batch_first=True,
                                                         enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        last = out[torch.arange(B), lengths - 1]  # [B, H]
        if self.fusion == "last":
            fused = last
        elif self.fusion == "mean":
            fused = out.sum(1) / lengths[:, None]
        elif self.fusion == "concat":
            fused = torch.cat([mean_feat, last], dim=1)  # the CNN's feature first, then the LSTM's
        else:  # attention
            s = self.attention(out).squeeze(-1).masked_fill(~mask, float("-inf"))
            w = torch.softmax(s, 1)
            fused = (w[..., None] * out).sum(1)
        return self.fc(fused)


torch.manual_seed(5)
V_WIDTH, V_FEAT, V_HIDDEN, V_LAYERS, V_CLASSES = 4, 12, 10, 2, 5
shared_cnn = video_cnn(V_WIDTH, V_FEAT).double()
nontrivial_bn_f32(shared_cnn)
cnn_state = {k: v.clone() for k, v in shared_cnn.state_dict().items()}
for k, v in cnn_state.items():
    video[f"video.p.cnn.{k}"] = v
v_input = f32(torch.randn(3, 4, 3, 32, 32, dtype=torch.float64))
v_lengths = torch.tensor([4, 2, 3])
video["video.input"], video["video.lengths"] = v_input, v_lengths.double()


def video_case(name, m, lengths, training):
    m.zero_grad(set_to_none=True)
    m.train(training)
    x = v_input.clone().requires_grad_(True)
    out = m(x, lengths)
    gout = f32(torch.randn(out.shape, dtype=torch.float64))
    out.backward(gout)
    video[f"{name}.output"], video[f"{name}.grad_output"] = out.detach(), gout
    video[f"{name}.grad.input"] = x.grad
    if training:
        for k, v in m.named_parameters():
            video[f"{name}.grad.{k}"] = v.grad
        for k, v in m.named_buffers():
            video[f"{name}.buffers.{k}"] = v.clone()


for fusion in ("last", "mean", "concat", "attention", "pool"):
    m = CnnLstm(V_WIDTH, V_FEAT, V_HIDDEN, V_LAYERS, V_CLASSES, fusion).double()
    m.cnn.load_state_dict(cnn_state)
    with torch.no_grad():
        for k, p in m.named_parameters():
            if not k.startswith("cnn."):
                p.copy_(f32(p))
                video[f"{fusion}.p.{k}"] = p.detach().clone()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    video_case(fusion, m, v_lengths, training=True)
    if fusion == "last":
        m.load_state_dict(state)
        eval_lengths = torch.tensor([4, 4, 4])
        video["last_eval.lengths"] = eval_lengths.double()
        video_case("last_eval", m, eval_lengths, training=False)
path = os.path.join(here, "video.safetensors")
write(path, video)
print(f"{path}: {os.path.getsize(path)} bytes")

# ---- vgg.safetensors: narrow torchvision VGGs, width 2 (convolutions of 2, 4, 8, 16 and 16
# channels, the classifier's hidden layers 128 wide: torchvision's structure with every width
# divided by 32), from their own seed, with dropout 0 so that train mode is deterministic. Keys:
#   <net>.p.<state_dict name>      for net in vgg11_bn, vgg16, vgg13_bn (num_batches_tracked as I64)
#   <net>.<mode>.input [2, 3, 32, 32], .output [2, 10], .grad_output, .grad.input,
#   <net>.<mode>.grad.<parameter>  for net in vgg11_bn, vgg16 and mode in eval, train
#   <net>.train.buffers.<name>     BatchNorm's buffers after the train-mode forward (vgg11_bn)
#   vgg13_bn.eval.input [1, 3, 40, 56], vgg13_bn.eval.output
#   video_vgg.*                    the classifier of video.safetensors ("last" fusion, width 2,
#                                  F 12, H 10, 2 layers, 5 classes) on a vgg11_bn backbone
#                                  whose classifier.6 is the projection to F: .p.<name> every
#                                  state tensor, .input [3, 4, 3, 32, 32], .lengths [3] (float),
#                                  .output, .grad_output, .grad.input, .grad.<parameter> (train)
from torchvision.models.vgg import VGG, cfgs, make_layers  # noqa: E402

vgg = {}
VGG_WIDTH = 2


def narrow_vgg(cfg, batch_norm, reference, num_classes=10, width=VGG_WIDTH):
    nn = torch.nn
    layers = make_layers([v if v == "M" else v * width // 64 for v in cfgs[cfg]], batch_norm)
    m = VGG(layers, num_classes=num_classes, init_weights=False, dropout=0.0)
    hidden = 64 * width
    m.classifier = nn.Sequential(
        nn.Linear(8 * width * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(0.0),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(0.0), nn.Linear(hidden, num_classes))
    for mod in m.modules():  # torchvision's initialisation
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(mod.bias, 0)
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0, 0.01)
            nn.init.constant_(mod.bias, 0)
    names = list(reference(weights=None, num_classes=num_classes).state_dict())
    assert list(m.state_dict()) == names, cfg
    m = m.double()
    nontrivial_bn_f32(m)
    return m


def vgg_case(m, name):
    state = {k: v.clone() for k, v in m.state_dict().items()}
    for k, v in state.items():
        vgg[f"{name}.p.{k}"] = v
    modes_case(m, state, vgg, name)


torch.manual_seed(7)
vgg_case(narrow_vgg("A", True, torchvision.models.vgg11_bn), "vgg11_bn")
vgg_case(narrow_vgg("D", False, torchvision.models.vgg16), "vgg16")
m = narrow_vgg("B", True, torchvision.models.vgg13_bn)
for k, v in m.state_dict().items():
    vgg[f"vgg13_bn.p.{k}"] = v.clone()
m.eval()
x = f32(torch.randn(1, 3, 40, 56, dtype=torch.float64))
with torch.no_grad():
    vgg["vgg13_bn.eval.input"], vgg["vgg13_bn.eval.output"] = x, m(x)

m = CnnLstm(V_WIDTH, V_FEAT, V_HIDDEN, V_LAYERS, V_CLASSES, "last")
m.cnn = narrow_vgg("A", True, torchvision.models.vgg11_bn, num_classes=V_FEAT).float()
m = m.double()
nontrivial_bn_f32(m)
for k, v in m.state_dict().items():
    vgg[f"video_vgg.p.{k}"] = v.clone()
m.train()
x = f32(torch.randn(3, 4, 3, 32, 32, dtype=torch.float64)).requires_grad_(True)
lengths = torch.tensor([4, 2, 3])
out = m(x, lengths)
gout = f32(torch.randn(out.shape, dtype=torch.float64))
out.backward(gout)
vgg["video_vgg.input"], vgg["video_vgg.lengths"] = x.detach(), lengths.double()
vgg["video_vgg.output"], vgg["video_vgg.grad_output"] = out.detach(), gout
vgg["video_vgg.grad.input"] = x.grad
for k, v in m.named_parameters():
    vgg[f"video_vgg.grad.{k}"] = v.grad
path = os.path.join(here, "vgg.safetensors")
write(path, vgg)
print(f"{path}: {os.path.getsize(path)} bytes")
